//! Rough per-request cost of the CRS, not a benchmark of record (that is
//! `host/benches/waf_vs_modsecurity.sh`): `timing [n]` loads Debian's CRS, warms up, runs n
//! benign requests (browser headers; two of the four arguments differ from request to
//! request) through phases 1 and 2 with the cross-request memo, and prints the load time
//! and the mean. Under callgrind, `--toggle-collect='*measured*'` counts the requests'
//! instructions only.
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
    let memo = std::cell::RefCell::new(engine::Memo::new(16_384));
    // Warm-up: patterns compile and automata fill at first use.
    let t = std::time::Instant::now();
    requests(&waf, &memo, &headers, 1);
    eprintln!("first request {:?}", t.elapsed());
    warm(&waf, &memo, &headers);
    let t = std::time::Instant::now();
    measured(&waf, &memo, &headers, n);
    eprintln!("benign {:?}/req", t.elapsed() / n.max(1));
    let t = std::time::Instant::now();
    let attacks = n.div_ceil(10);
    attack_requests(&waf, &memo, &headers, attacks);
    eprintln!("attack {:?}/req", t.elapsed() / attacks.max(1));
}

/// `n` requests carrying SQL injection, XSS, traversal and shell strings (each blocked),
/// different in every request so that the memo does not answer them.
#[inline(never)]
fn attack_requests(
    waf: &Waf,
    memo: &std::cell::RefCell<engine::Memo>,
    headers: &[(String, String)],
    n: u32,
) {
    for i in 0..n {
        let uri = format!(
            "/search?q=1%27+UNION+SELECT+password+FROM+users--+{i}&x=%3Cscript%3Ealert({i})%3C/script%3E\
             &f=../../../../etc/passwd&c=;cat+/etc/shadow+{i}"
        );
        let st = inspect(waf, memo, headers, &uri);
        assert!(st.interruption.is_some(), "{:?}", st.hits);
        recycle(st);
    }
}

/// `n` benign requests through phases 1 and 2 (called once by `main` to be measured).
#[inline(never)]
fn measured(
    waf: &Waf,
    memo: &std::cell::RefCell<engine::Memo>,
    headers: &[(String, String)],
    n: u32,
) {
    requests(waf, memo, headers, n)
}

/// `n` benign requests.
#[inline(never)]
fn requests(
    waf: &Waf,
    memo: &std::cell::RefCell<engine::Memo>,
    headers: &[(String, String)],
    n: u32,
) {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    for _ in 0..n {
        let i = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uri = format!(
            "/products?id={i}&sort=price&page=2&q=blue+shoes+{}",
            i * 7919 % 10007
        );
        let st = inspect(waf, memo, headers, &uri);
        assert!(st.interruption.is_none(), "{:?}", st.hits);
        recycle(st);
    }
}

/// A GET of `uri` through phases 1 and 2.
fn inspect(
    waf: &Waf,
    memo: &std::cell::RefCell<engine::Memo>,
    headers: &[(String, String)],
    uri: &str,
) -> engine::State {
    let d = Data::request(&RequestHead {
        method: "GET",
        raw_uri: uri,
        protocol: "HTTP/1.1",
        headers,
        client_addr: "192.0.2.1",
        host: "shop.example",
    });
    // As the filter does, with the strings of the transaction before.
    let mut st = engine::State::with_spare(waf.rules(), SPARE.take());
    let mut c = engine::Cache::with_memo(waf.rules(), memo);
    engine::run_phase(waf.rules(), 1, &d, &mut st, &mut c);
    engine::run_phase(waf.rules(), 2, &d, &mut st, &mut c);
    st
}

/// The same requests, unmeasured.
#[inline(never)]
fn warm(waf: &Waf, memo: &std::cell::RefCell<engine::Memo>, headers: &[(String, String)]) {
    requests(waf, memo, headers, 20);
}

thread_local! {
    /// What the last request's state left for the next (see [`recycle`]).
    static SPARE: std::cell::RefCell<Vec<String>> = Default::default();
}

/// Give the state's strings to the next request, as the filter does.
fn recycle(st: engine::State) {
    SPARE.set(std::hint::black_box(st).into_spare());
}
