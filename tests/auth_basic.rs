//! The `auth-basic` filter end to end: 401 with the challenge, users by bcrypt, argon2id and
//! SHA-256-crypt over HTTP/1.1 and HTTP/2, the user forwarded (a client's claim never is),
//! the credentials stripped, ambiguous raw requests refused, and a slow hash checked once
//! then served from the cache within a tight CPU deadline.

mod harness;
use harness::*;

/// s3cret (bcrypt cost 4), hunter2 (argon2id), pa55 (SHA-256-crypt).
const USERS: &str = r#"users = [
  "ada:$2y$04$KBCwKxOzLha2MUDgW0PjXe9b1DxIEkVo6xSca/TrCtEXnT7desnbu",
  "bob:$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$TG3TNh0UlIp7ZkGKbHzVmoKy3QnTx9+peBju9GgIUrQ",
  "cy:$5$3KqWxnweoKxPAg.T$tYFLLJi.NDBazeHITtT6JCkNXl9zpVg6EWR38I7MEEA",
]"#;

/// s3cret at bcrypt cost 10: tens of milliseconds per check.
const SLOW_USER: &str =
    r#"users = ["ada:$2b$10$KBCwKxOzLha2MUDgW0PjXemsTCxQll1vgZNFHqgxrB3qVi83aJMSu"]"#;

fn filter(settings: &str, users: &str) -> String {
    format!(
        "[filters.staff]\nplugin = \"auth-basic.wasm\"\n{settings}\n[filters.staff.config]\n\
         realm = \"staff\"\nforward-user = \"x-remote-user\"\n{users}\n"
    )
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

fn h2(url: &str, headers: &[(&str, &str)]) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut b = http::Request::get(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn users_pass_as_themselves_and_everyone_else_gets_the_challenge() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["staff"],
        &filter("cpu-deadline = \"500ms\"", USERS),
    ));
    for (user, pw) in [("ada", "s3cret"), ("bob", "hunter2"), ("cy", "pa55")] {
        let auth = basic(user, pw);
        let headers = [("authorization", auth.as_str()), ("x-remote-user", "root")];
        for r in [
            get(&weir.url("/"), &headers).await,
            send_h2(h2(&weir.url("/"), &headers)).await,
        ] {
            assert_eq!(r.status, 200, "{user}");
            assert!(
                r.body.contains(&format!("x-remote-user: {user}\n")),
                "{}",
                r.body
            );
            assert!(
                !r.body.contains("root"),
                "the client's claim is dropped: {}",
                r.body
            );
            assert!(
                !r.body.contains("authorization:"),
                "credentials stripped: {}",
                r.body
            );
        }
    }
    let wrong = [
        basic("ada", "hunter2"),
        basic("nobody", "s3cret"),
        basic("bob", ""),
        "Basic".to_string(),
        "Bearer x".to_string(),
    ];
    for auth in wrong.iter().map(String::as_str).chain([""]) {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![("x-remote-user", "ada")]
        } else {
            vec![("authorization", auth)]
        };
        for r in [
            get(&weir.url("/"), &headers).await,
            send_h2(h2(&weir.url("/"), &headers)).await,
        ] {
            assert_eq!(r.status, 401, "{auth:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Basic realm=\"staff\", charset=\"UTF-8\"")
            );
            assert_eq!(r.header("x-upstream"), None);
        }
    }
}

#[tokio::test]
async fn raw_requests_with_two_or_odd_authorization_headers_are_refused() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["staff"],
        &filter("cpu-deadline = \"500ms\"", USERS),
    ));
    let addr: std::net::SocketAddr = weir
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let good = basic("ada", "s3cret");
    let bad = basic("ada", "nope");
    let ok = raw::exchange(
        addr,
        format!("GET / HTTP/1.1\r\nHost: a\r\nAUTHORIZATION:   {good}  \r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    for twice in [
        format!("{good}\r\nAuthorization: {bad}"),
        format!("{bad}\r\nauthorization: {good}"),
    ] {
        let r = raw::exchange(
            addr,
            format!("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: {twice}\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // The same over HTTP/2: two fields of one name, as sent.
    let url = format!("http://{addr}/");
    let both = [
        ("authorization", good.as_str()),
        ("authorization", bad.as_str()),
    ];
    assert_eq!(raw::h2_request(addr, &url, &both).await, Ok(401));
    assert_eq!(raw::h2_request(addr, &url, &both[..1]).await, Ok(200));
}

#[tokio::test]
async fn a_slow_hash_is_checked_once_and_then_served_from_the_cache() {
    let up = Upstream::echo("app").await;
    // The first check needs tens of milliseconds: within 500ms, but not within 5ms.
    let m = manifest(
        &[up.addr],
        &["staff"],
        &filter("cpu-deadline = \"500ms\"", SLOW_USER),
    );
    let weir = Weir::start(&format!("admin = \"127.0.0.1:0\"\n{m}"));
    let auth = basic("ada", "s3cret");
    for _ in 0..5 {
        let r = get(&weir.url("/"), &[("authorization", &auth)]).await;
        assert_eq!(r.status, 200);
    }
    let s = weir.status().await;
    let m = &s["filters"][0]["metrics"];
    assert!(m["counters"]["cache-hits"].as_u64().unwrap() >= 3, "{m:#}");
    drop(weir);

    // With the default 5 ms deadline the uncached check cannot finish: the filter fails its
    // request (503), as the README says, and nothing is let through.
    let weir = Weir::start(&manifest(&[up.addr], &["staff"], &filter("", SLOW_USER)));
    let r = get(&weir.url("/"), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("x-upstream"), None);
    weir.wait_for_log("exceeded its CPU deadline of 5ms");
}
