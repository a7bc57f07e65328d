//! The `api-key` filter: 401 without a known key, proxied (key stripped) with one.

mod harness;
use harness::*;

#[tokio::test]
async fn requires_a_known_key() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["key"],
        r#"
[filters.key]
plugin = "api-key.wasm"
config = { keys = ["s3cret-1", "s3cret-2"] }
"#,
    ));
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, "missing API key\n");
    assert_eq!(
        r.header("www-authenticate"),
        Some("ApiKey header=\"x-api-key\"")
    );

    let r = get(&weir.url("/"), &[("x-api-key", "s3cret-3")]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, "invalid API key\n");

    let r = get(&weir.url("/data"), &[("x-api-key", "s3cret-2")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("app"));
    assert!(r.body.starts_with("GET /data\n"));
    assert!(
        !r.body.contains("s3cret"),
        "key must not reach the upstream: {}",
        r.body
    );
}
