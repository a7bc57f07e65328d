//! Rough per-request cost of the CRS (not a benchmark of record): `timing [n]` runs n
//! benign requests through phases 1-2 and prints the mean; under callgrind, the difference
//! of two runs' instruction counts over the difference of their n is the per-request count.
use weir_plugin_waf::{
    engine,
    transaction::{Data, RequestHead},
    Waf,
};
use weir_sdk::testing;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let t = std::time::Instant::now();
    let config = serde_json::json!({"rules": ["/etc/modsecurity/crs/crs-setup.conf", "/usr/share/modsecurity-crs/rules/*.conf"]});
    let waf = testing::init::<Waf>(&config.to_string()).unwrap();
    eprintln!("load {:?}", t.elapsed());
    let headers: Vec<(String, String)> = [
        ("host", "shop.example"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=abc123; theme=dark"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let head = RequestHead {
        method: "GET",
        raw_uri: "/products?id=42&sort=price&page=2&q=blue+shoes",
        protocol: "HTTP/1.1",
        headers: &headers,
        client_addr: "192.0.2.1",
        host: "shop.example",
    };
    let t = std::time::Instant::now();
    for _ in 0..n {
        let d = Data::request(&head);
        let mut st = engine::State::new(waf.rules());
        let mut c = engine::Cache::new(waf.rules());
        engine::run_phase(waf.rules(), 1, &d, &mut st, &mut c);
        engine::run_phase(waf.rules(), 2, &d, &mut st, &mut c);
        assert!(st.interruption.is_none(), "{:?}", st.hits);
        std::hint::black_box(st);
    }
    eprintln!("benign {:?}/req", t.elapsed() / n.max(1));
}
