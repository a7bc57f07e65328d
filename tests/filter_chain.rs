//! Chains: `on-request` in manifest order, `on-response` in reverse; a local response stops
//! the request phase and is still seen by the filters that ran.

mod harness;
use harness::*;

const FILTERS: &str = r#"
[filters.first]
plugin = "headers.wasm"
config = { request = { append = { "x-order" = "first" } }, response = { append = { "x-order" = "first" } } }
[filters.second]
plugin = "headers.wasm"
config = { request = { append = { "x-order" = "second" } }, response = { append = { "x-order" = "second" } } }
[filters.deny]
plugin = "block.wasm"
config = { paths = ["/denied"] }
[filters.third]
plugin = "headers.wasm"
config = { request = { append = { "x-order" = "third" } }, response = { append = { "x-order" = "third" } } }
"#;

#[tokio::test]
async fn request_in_order_response_in_reverse() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["first", "second", "deny", "third"],
        FILTERS,
    ));

    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("x-order: first\nx-order: second\nx-order: third\n"),
        "{}",
        r.body
    );
    assert_eq!(r.header_all("x-order"), ["third", "second", "first"]);

    // `deny` answers: `third` never runs, and the response goes back through deny, second, first.
    let r = get(&weir.url("/denied"), &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-upstream"), None);
    assert_eq!(r.header_all("x-order"), ["second", "first"]);
}
