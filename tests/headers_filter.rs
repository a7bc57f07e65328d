//! The `headers` filter edits request headers (seen by the upstream) and response headers
//! (seen by the client).

mod harness;
use harness::*;

#[tokio::test]
async fn edits_request_and_response_headers() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["tag"],
        r#"
[filters.tag]
plugin = "headers.wasm"
[filters.tag.config.request]
set = { "x-served-by" = "weir" }
append = { "x-trace" = ["one", "two"] }
remove = ["x-internal"]
[filters.tag.config.response]
set = { "x-frame-options" = "DENY" }
remove = ["server"]
"#,
    ));
    let r = get(
        &weir.url("/page"),
        &[("x-internal", "secret"), ("x-trace", "zero")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("x-served-by: weir\n"), "{}", r.body);
    assert!(
        r.body
            .contains("x-trace: zero\nx-trace: one\nx-trace: two\n"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("x-internal"), "{}", r.body);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("server"), None, "server header removed");
    assert_eq!(r.header("x-upstream"), Some("app"));
    weir.wait_for_log("filters=tag:changed,tag:changed");
}
