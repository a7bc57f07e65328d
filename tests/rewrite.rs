//! The `rewrite` filter end to end: redirects (prefix, regex, host-conditioned) answered by
//! the proxy over HTTP/1.1 and HTTP/2, rewrites of path, query and Host that the upstream
//! receives, and raw request targets that try to turn a redirect into another host.

mod harness;
use harness::*;

const RULES: &str = r#"
[filters.moves]
plugin = "rewrite.wasm"
[[filters.moves.config.rules]]
prefix = "/old"
redirect = "/new{rest}"
status = 301
[[filters.moves.config.rules]]
prefix = "/go"
redirect = "/{rest}"
[[filters.moves.config.rules]]
regex = '^/u/(?P<id>\d+)$'
redirect = "https://{host}/users/{id}"
status = 308
[[filters.moves.config.rules]]
regex = '^/api/v1/(.*)$'
rewrite = "/v2/{1}"
host = "api.internal"
query-set = { src = "weir" }
query-remove = ["debug"]
"#;

fn h2(url: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(url)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn redirects_are_answered_by_the_proxy_over_h1_and_h2() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &["moves"], RULES));
    for (path, status, location) in [
        ("/old/a/b?x=1", 301, "/new/a/b?x=1"),
        ("/old", 301, "/new"),
        ("/u/42", 308, "https://127.0.0.1/users/42"),
        ("/go/elsewhere", 302, "/elsewhere"),
    ] {
        let url = weir.url(path);
        for r in [
            get(&url, &[("host", "127.0.0.1")]).await,
            send_h2(h2(&url)).await,
        ] {
            assert_eq!(r.status, status, "{path}");
            let got = r.header("location").unwrap();
            // Over h2 the authority is the listener's address, port included.
            assert!(
                got == location
                    || got == location.replace("127.0.0.1", url[7..].split('/').next().unwrap()),
                "{path}: {got}"
            );
            assert_eq!(
                r.header("x-upstream"),
                None,
                "{path}: answered by the proxy"
            );
        }
    }
    let r = get(&weir.url("/older"), &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-upstream")),
        (200, Some("app"))
    );
}

#[tokio::test]
async fn rewrites_reach_the_upstream() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &["moves"], RULES));
    for r in [
        get(&weir.url("/api/v1/items?debug=1&page=2"), &[]).await,
        send_h2(h2(&weir.url("/api/v1/items?debug=1&page=2"))).await,
    ] {
        assert_eq!(r.status, 200);
        assert!(
            r.body.starts_with("GET /v2/items?page=2&src=weir\n"),
            "{}",
            r.body
        );
        assert!(r.body.contains("\nhost: api.internal\n"), "{}", r.body);
    }
}

#[tokio::test]
async fn raw_targets_cannot_make_a_redirect_leave_the_site() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &["moves"], RULES));
    let addr: std::net::SocketAddr = weir
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    for target in [
        "/go//evil.example",
        "/go/./evil.example",
        "/x/../go//evil.example",
        "//go//evil.example",
        "/%67o//evil.example",
    ] {
        let r = raw::exchange(
            addr,
            format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 302, "{target}: {}", r.text);
        let location = r
            .text
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or_else(|| panic!("{target}: {}", r.text));
        assert_eq!(location, "/evil.example", "{target}");
    }
    // Over HTTP/2 too, with the path exactly as sent.
    let r = raw::h2_request(addr, &format!("http://{addr}//go//evil.example"), &[]).await;
    assert_eq!(r, Ok(302));
}
