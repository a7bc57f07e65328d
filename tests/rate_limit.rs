//! The `rate-limit` filter on the host's GCRA limiter, end to end: 429 with `Retry-After`
//! and the RateLimit headers over HTTP/1.1 and HTTP/2, exact across two workers under
//! concurrent load, keyed by the trusted client (forged forwarding headers and huge key
//! values change nothing), and state kept across a reload (here into shadow mode).

mod harness;
use harness::*;

fn limit_manifest(up: std::net::SocketAddr, config: &str) -> String {
    format!(
        "plugins-dir = \"{{plugins}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 2\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n\
         [[routes]]\nupstream = \"app\"\nfilters = [\"limits\"]\n\n\
         [filters.limits]\nplugin = \"rate-limit.wasm\"\n[filters.limits.config]\n{config}\n"
    )
}

const PER_IP: &str = r#"[[filters.limits.config.limits]]
name = "per-ip"
rate = 4
per = "1h"
key = ["client-ip"]
"#;

fn h2_get(
    url: &str,
    headers: &[(&str, &str)],
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut b = http::Request::get(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn a_client_over_its_limit_gets_429_with_retry_after_over_h1_and_h2() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&limit_manifest(up.addr, PER_IP));
    for i in 0..3 {
        let r = get(&weir.url("/"), &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-upstream")),
            (200, Some("app")),
            "h1 {i}"
        );
    }
    let r = send_h2(h2_get(&weir.url("/"), &[])).await;
    assert_eq!(
        r.status, 200,
        "the fourth, over h2: one budget for both protocols"
    );
    for r in [
        get(&weir.url("/"), &[]).await,
        send_h2(h2_get(&weir.url("/"), &[])).await,
    ] {
        assert_eq!(r.status, 429);
        assert_eq!(r.body, "too many requests\n");
        assert_eq!(r.header("x-upstream"), None, "the upstream was not called");
        // One unit every 15 minutes.
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((890..=900).contains(&retry), "{retry}");
        assert_eq!(r.header("ratelimit-policy"), Some("\"per-ip\";q=4;w=3600"));
        assert_eq!(r.header("ratelimit"), Some("\"per-ip\";r=0;t=3600"));
    }
    weir.wait_for_log("filters=limits:responded");
}

#[tokio::test]
async fn the_limit_is_exact_across_two_workers_under_concurrent_load() {
    let up = Upstream::echo("app").await;
    let config = PER_IP.replace("rate = 4", "rate = 50");
    let weir = Weir::start(&limit_manifest(up.addr, &config));
    let url = weir.url("/");
    // New connections each, so they spread over both workers; all from 127.0.0.1.
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    get(&url, &[]).await.status
                } else {
                    send_h2(h2_get(&url, &[])).await.status
                }
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            200 => ok += 1,
            429 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(
        ok, 50,
        "exactly the burst passes, however the workers interleave"
    );
}

#[tokio::test]
async fn keys_come_from_the_trusted_client_and_forged_or_huge_values_change_nothing() {
    let up = Upstream::echo("app").await;
    let config = format!(
        "{PER_IP}\n[[filters.limits.config.limits]]\nname = \"per-key\"\nrate = 2\nper = \"1h\"\n\
         key = [\"header:x-api-key\"]\n"
    );
    let weir = Weir::start(&limit_manifest(up.addr, &config));
    // Different claimed clients: still one untrusted peer, 127.0.0.1, one budget of 4.
    for xff in ["192.0.2.1", "192.0.2.2", "198.51.100.7"] {
        let r = get(
            &weir.url("/"),
            &[("x-forwarded-for", xff), ("forwarded", "for=10.0.0.1")],
        )
        .await;
        assert_eq!(r.status, 200, "{xff}");
    }
    let addr: std::net::SocketAddr = weir
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let raw = raw::exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.9.9.9\r\nx-forwarded-for: 10.8.8.8\r\n\
          X-Real-IP: 10.7.7.7\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    let raw = raw::exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.6.6.6\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 429, "the fifth from 127.0.0.1: {}", raw.text);
    assert!(
        raw.text.to_ascii_lowercase().contains("retry-after: "),
        "{}",
        raw.text
    );
    drop(weir);

    // A key limit with a 6000-byte key: limited like any other (hashed, not refused).
    let weir = Weir::start(&limit_manifest(
        up.addr,
        &config.replace("rate = 4", "rate = 1000"),
    ));
    let huge = "k".repeat(6000);
    let statuses = [
        get(&weir.url("/"), &[("x-api-key", &huge)])
            .await
            .status
            .as_u16(),
        send_h2(h2_get(&weir.url("/"), &[("x-api-key", &huge)]))
            .await
            .status
            .as_u16(),
        get(&weir.url("/"), &[("x-api-key", &huge)])
            .await
            .status
            .as_u16(),
        get(&weir.url("/"), &[("x-api-key", &format!("{huge}x"))])
            .await
            .status
            .as_u16(),
    ];
    assert_eq!(statuses, [200, 200, 429, 200]);
    assert!(
        !weir.logs().contains("rate-limit keys are"),
        "no key was refused by the host"
    );
}

#[tokio::test]
async fn state_is_kept_across_a_reload_and_shadow_mode_only_counts() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&limit_manifest(up.addr, PER_IP));
    for _ in 0..4 {
        assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
    }
    assert_eq!(get(&weir.url("/"), &[]).await.status, 429);
    // Same limit, new body: the filter is reloaded, its keys are not forgotten.
    std::fs::write(
        weir.manifest_path(),
        expand(&limit_manifest(
            up.addr,
            &format!("body = \"slow down\\n\"\n{PER_IP}"),
        )),
    )
    .unwrap();
    weir.wait_for_status("generation 2", |s| s["generation"] == 2)
        .await;
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (429, "slow down\n"));
    // Shadow mode: the same spent budget, but requests pass and are logged.
    std::fs::write(
        weir.manifest_path(),
        expand(&limit_manifest(
            up.addr,
            &format!("shadow = true\n{PER_IP}"),
        )),
    )
    .unwrap();
    weir.wait_for_status("generation 3", |s| s["generation"] == 3)
        .await;
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-upstream")),
        (200, Some("app"))
    );
    weir.wait_for_log("shadow: limit per-ip would refuse 127.0.0.1");
}
