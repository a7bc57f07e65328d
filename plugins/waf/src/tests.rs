//! The filter over the OWASP Core Rule Set as Debian ships it (`modsecurity-crs`, which CI
//! installs): attacks blocked, ordinary requests passed.

use super::*;
use weir_sdk::testing::{self, MockRequest};

const CRS: &str = "/usr/share/modsecurity-crs/rules";
const SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

fn crs(extra: &str) -> Waf {
    assert!(
        std::path::Path::new(CRS).is_dir(),
        "the OWASP CRS is not installed at {CRS}: apt-get install modsecurity-crs"
    );
    let config = serde_json::json!({
        "rules": [SETUP, format!("{CRS}/*.conf")],
        "directives": extra,
    });
    testing::init::<Waf>(&config.to_string()).unwrap()
}

#[test]
fn crs_loads_and_blocks_attacks() {
    let waf = crs("");
    assert!(waf.rules().rules > 500, "{} rules", waf.rules().rules);
    for uri in [
        "/search?q=1%27%20OR%20%271%27%3D%271",
        "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/files?name=../../../../etc/passwd",
        "/run?cmd=%3Bcat%20/etc/shadow",
    ] {
        let mut req = MockRequest::get(uri)
            .with_raw_path_and_query(uri)
            .with_header("host", "shop.example")
            .with_header("user-agent", "Mozilla/5.0")
            .with_header("accept", "text/html");
        let action = testing::on_request(&waf, &mut req);
        testing::assert_responds(&action, 403);
        assert_eq!(
            req.context.get("waf.action").map(String::as_str),
            Some("blocked"),
            "{uri}"
        );
    }
}

#[test]
fn crs_passes_ordinary_requests() {
    let waf = crs("");
    for uri in [
        "/",
        "/products?id=42&sort=price&page=2&q=blue+shoes",
        "/caf%C3%A9/menu?lang=fr",
    ] {
        let mut req = MockRequest::get(uri)
            .with_raw_path_and_query(uri)
            .with_header("host", "shop.example")
            .with_header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
            .with_header("accept", "text/html,application/xhtml+xml")
            .with_header("accept-language", "en-GB,en;q=0.9")
            .with_header("cookie", "session=abc123; theme=dark");
        let action = testing::on_request(&waf, &mut req);
        testing::assert_continues(&action);
        assert_eq!(
            req.context.get("waf.action").map(String::as_str),
            Some("passed"),
            "{uri}"
        );
    }
}

#[test]
fn too_many_arguments_are_refused_before_rules_run() {
    let waf = testing::init::<Waf>(
        r#"{"directives": "SecRule ARGS \"@rx never\" \"id:1,phase:1,deny\"", "max-args": 3}"#,
    )
    .unwrap();
    let mut ok = MockRequest::get("/?a=1&b=2&c=3").with_raw_path_and_query("/?a=1&b=2&c=3");
    testing::assert_continues(&testing::on_request(&waf, &mut ok));
    let mut many =
        MockRequest::get("/?a=1&b=2&c=3&d=4").with_raw_path_and_query("/?a=1&b=2&c=3&d=4");
    testing::assert_responds(&testing::on_request(&waf, &mut many), 400);
    // Body arguments count too.
    let mut body = MockRequest::post("/?a=1")
        .with_raw_path_and_query("/?a=1")
        .with_header("content-type", "application/x-www-form-urlencoded")
        .with_body("b=2&c=3&d=4");
    testing::assert_responds(&testing::on_request(&waf, &mut body), 400);
}
