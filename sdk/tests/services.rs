//! The host services' native doubles: a filter using the shared store, context, bodies,
//! metrics and outbound HTTP is unit-tested with `cargo test`, no proxy, no Wasm.

use std::time::Duration;
use weir_sdk::http_client::{HttpRequest, HttpResponse};
use weir_sdk::testing::{self, MockRequest, MockResponse};
use weir_sdk::{kv, metrics, Action, Config, Filter, Hooks, Request, Response};

/// At most 2 requests per client per second; asks an auth service who the user is;
/// upper-cases request bodies; tags responses with the user.
struct Example;

impl Filter for Example {
    fn init(_: Config) -> Result<Self, String> {
        Ok(Example)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ALL.with_request_body()
    }

    fn on_request(&self, req: &mut Request) -> Action {
        let client = req.client_addr();
        match kv::incr(&client, 1, Some(Duration::from_secs(1))) {
            Ok(n) if n > 2 => return Action::respond_text(429, "slow down\n"),
            Ok(_) => {}
            Err(e) => return Action::respond_text(500, e.to_string()),
        }
        let who = match HttpRequest::get("http://auth.local/whoami").send() {
            Ok(r) if r.status == 200 => String::from_utf8_lossy(&r.body).into_owned(),
            _ => return Action::respond_text(403, "no\n"),
        };
        metrics::counter_add("authenticated", 1);
        let _ = req.set_context("user", &who);
        if let Some(body) = req.body() {
            let _ = req.set_body(body.to_ascii_uppercase());
        }
        Action::Continue
    }

    fn on_response(&self, req: &Request, resp: &mut Response) -> Action {
        if let Some(user) = req.context("user") {
            let _ = resp.set_header("x-user", &user);
        }
        Action::Continue
    }
}

#[test]
fn services_work_natively() {
    testing::reset_kv();
    testing::mock_http(|req| {
        assert_eq!(req.url, "http://auth.local/whoami");
        let mut r = HttpResponse::new(200);
        r.body = b"ann".to_vec();
        Ok(r)
    });
    let f: Example = testing::init("{}").unwrap();
    let mut req = MockRequest::post("/upload").with_body("abc");
    assert_eq!(testing::on_request(&f, &mut req), Action::Continue);
    assert_eq!(req.body.as_deref(), Some(&b"ABC"[..]));
    assert_eq!(req.context.get("user").map(String::as_str), Some("ann"));
    let mut resp = MockResponse::new(200);
    assert_eq!(
        testing::on_response(&f, &mut req, &mut resp),
        Action::Continue
    );
    assert_eq!(resp.headers.get("x-user"), Some("ann"));

    let mut again = MockRequest::get("/");
    assert_eq!(testing::on_request(&f, &mut again), Action::Continue);
    let mut third = MockRequest::get("/");
    let limited = testing::on_request(&f, &mut third);
    assert_eq!(limited.response().map(|r| r.status), Some(429));
    let (counters, _) = testing::take_metrics();
    assert_eq!(counters.get("authenticated"), Some(&2));
}

#[test]
fn kv_double_follows_the_host_semantics() {
    testing::reset_kv();
    kv::set("k", b"v", Some(Duration::from_millis(20))).unwrap();
    assert_eq!(kv::get("k").as_deref(), Some(&b"v"[..]));
    assert!(kv::incr("k", 1, None).is_err(), "not a counter");
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(kv::get("k"), None, "expired");
    assert_eq!(kv::incr("k", 5, None), Ok(5));
    assert_eq!(kv::get("k").as_deref(), Some(&b"5"[..]));
    kv::delete("k");
    assert_eq!(kv::get("k"), None);
}

#[test]
fn the_test_clock_drives_ttls_and_windows() {
    testing::reset_kv();
    testing::freeze_clock();
    let start = weir_sdk::clock::now();
    let wall = weir_sdk::clock::system_time();
    kv::set("session", b"s", Some(Duration::from_secs(60))).unwrap();
    assert_eq!(kv::incr("hits", 1, Some(Duration::from_secs(10))), Ok(1));
    testing::advance_clock(Duration::from_secs(9));
    assert_eq!(
        kv::incr("hits", 1, Some(Duration::from_secs(10))),
        Ok(2),
        "same window"
    );
    testing::advance_clock(Duration::from_secs(2));
    assert_eq!(
        kv::incr("hits", 1, Some(Duration::from_secs(10))),
        Ok(1),
        "a new window"
    );
    assert!(kv::get("session").is_some());
    testing::advance_clock(Duration::from_secs(60));
    assert_eq!(kv::get("session"), None, "expired after its TTL");
    assert_eq!(weir_sdk::clock::now() - start, Duration::from_secs(71));
    assert_eq!(
        weir_sdk::clock::system_time().duration_since(wall).unwrap(),
        Duration::from_secs(71)
    );
    testing::reset_clock();
}

#[test]
fn outbound_without_a_mock_is_an_error_not_a_panic() {
    let e = std::thread::spawn(|| HttpRequest::get("http://x/").send().unwrap_err())
        .join()
        .unwrap();
    assert!(e.to_string().contains("no mock HTTP handler"), "{e}");
    assert_eq!(weir_sdk::random::hex_token(8).len(), 16);
}
