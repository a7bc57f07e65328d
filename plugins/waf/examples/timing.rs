//! Rough per-request cost of the CRS, not a benchmark of record (that is
//! `host/benches/waf_vs_modsecurity.sh`): `timing [n]` loads Debian's CRS, warms up, runs n
//! benign requests through phases 1 and 2 and prints the load time and the mean. Under
//! callgrind, `--toggle-collect='*measured*'` counts the requests' instructions only.
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
    let config = serde_json::json!({
        "rules": ["/etc/modsecurity/crs/crs-setup.conf", "/usr/share/modsecurity-crs/rules/*.conf"]
    });
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
    // Warm-up: patterns compile and automata fill at first use.
    warm(&waf, &head);
    let t = std::time::Instant::now();
    measured(&waf, &head, n);
    eprintln!("benign {:?}/req", t.elapsed() / n.max(1));
}

/// `n` benign requests through phases 1 and 2 (called once by `main` to be measured).
#[inline(never)]
fn measured(waf: &Waf, head: &RequestHead<'_>, n: u32) {
    for _ in 0..n {
        let d = Data::request(head);
        let mut st = engine::State::new(waf.rules());
        let mut c = engine::Cache::new(waf.rules());
        engine::run_phase(waf.rules(), 1, &d, &mut st, &mut c);
        engine::run_phase(waf.rules(), 2, &d, &mut st, &mut c);
        assert!(st.interruption.is_none(), "{:?}", st.hits);
        std::hint::black_box(st);
    }
}

/// The same requests, unmeasured.
#[inline(never)]
fn warm(waf: &Waf, head: &RequestHead<'_>) {
    for _ in 0..20 {
        measured(waf, head, 1);
    }
}
