//! The `block` filter answers 403 for denied paths, methods and headers; the rest passes.

mod harness;
use harness::*;

#[tokio::test]
async fn denies_by_path_method_and_header() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["deny"],
        r#"
[filters.deny]
plugin = "block.wasm"
config = { paths = ["/admin"], methods = ["DELETE"], headers = { "x-debug" = "*" }, body = "blocked by policy\n" }
"#,
    ));
    for path in ["/admin", "/admin/users"] {
        let r = get(&weir.url(path), &[]).await;
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.body, "blocked by policy\n");
        assert_eq!(r.header("x-upstream"), None, "the upstream was not called");
    }
    let r = get(&weir.url("/ok"), &[("x-debug", "1")]).await;
    assert_eq!(r.status, 403);
    let del = http::Request::delete(weir.url("/ok"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(del).await.status, 403);

    let r = get(&weir.url("/administrator"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("app"));
    weir.wait_for_log("filters=deny:responded");
}
