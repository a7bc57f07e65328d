//! Host services seen end to end through the `services` fixture: per-request context shared
//! by filters and phases, the shared store's windowed counters (across workers), request
//! and response bodies (read, replaced, limited), outbound HTTP and HTTPS (allow-listed,
//! budgeted, verified), filter metrics and secure random.

mod harness;
use harness::*;
use std::time::{Duration, Instant};

fn services_manifest(up: std::net::SocketAddr, routes_and_filters: &str) -> String {
    format!(
        "plugins-dir = \"{{fixtures}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 2\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n{routes_and_filters}"
    )
}

#[tokio::test]
async fn context_passes_between_filters_and_phases() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&services_manifest(
        up.addr,
        "[[routes]]\nupstream = \"app\"\nfilters = [\"setter\", \"reader\"]\n\n\
         [filters.setter]\nplugin = \"services.wasm\"\nconfig = { context = true }\n\n\
         [filters.reader]\nplugin = \"services.wasm\"\nconfig = { read-context = true }\n",
    ));
    let r = get(&weir.url("/"), &[("x-user", "ann")]).await;
    assert!(r.body.contains("x-seen-user: ann"), "{}", r.body);
    assert_eq!(r.header("x-context-user"), Some("ann"));
    let r = get(&weir.url("/"), &[]).await;
    assert!(
        r.body.contains("x-seen-user: -"),
        "no leak between requests: {}",
        r.body
    );
    assert_eq!(r.header("x-context-user"), None);
}

#[tokio::test]
async fn windowed_counters_are_shared_by_all_workers() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&services_manifest(
        up.addr,
        "[[routes]]\nupstream = \"app\"\nfilters = [\"limit\"]\n\n\
         [filters.limit]\nplugin = \"services.wasm\"\n\
         config = { counter = { limit = 5, window-ms = 1500 } }\n",
    ));
    // Each request is a new connection, so they spread over both workers.
    for i in 1..=5 {
        let r = get(&weir.url("/"), &[("x-client", "a")]).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains(&format!("x-count: {i}")), "{}", r.body);
        let reset: u64 = r
            .body
            .lines()
            .find_map(|l| l.strip_prefix("x-reset-ms: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("x-reset-ms");
        assert!(reset <= 1500, "{reset}");
    }
    let r = get(&weir.url("/"), &[("x-client", "a")]).await;
    assert_eq!(r.status, 429, "the sixth request in the window");
    // incr-window (WIT 0.2.2) says when the window ends: within its 1.5 s, rounded up.
    assert_eq!(
        r.header("retry-after"),
        Some("2"),
        "{:?}",
        r.header("retry-after")
    );
    assert_eq!(get(&weir.url("/"), &[("x-client", "b")]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = get(&weir.url("/"), &[("x-client", "a")]).await;
    assert_eq!(r.status, 200, "a new window");
    assert!(r.body.contains("x-count: 1"), "{}", r.body);
}

#[tokio::test]
async fn bodies_are_read_replaced_and_limited() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&services_manifest(
        up.addr,
        "[[routes]]\nupstream = \"app\"\nfilters = [\"body\"]\n\n\
         [filters.body]\nplugin = \"services.wasm\"\nbody-limit = \"2KiB\"\n\
         config = { upper-request-body = true, tag-response-body = true }\n",
    ));
    let r = post(&weir.url("/"), &[], "hello body").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("content-length: 10"), "{}", r.body);
    assert!(r.body.ends_with("\nHELLO BODY [filtered]"), "{}", r.body);
    assert_eq!(
        r.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(r.body.len()),
        "Content-Length follows the replaced body"
    );

    let r = post(&weir.url("/"), &[], &"x".repeat(3000)).await;
    assert_eq!(r.status, 413, "request body over the filter's body-limit");

    // The echo answers with the request's headers and body: just under the limit going up,
    // over it coming back.
    let r = post(&weir.url("/"), &[], &"x".repeat(2000)).await;
    assert_eq!(r.status, 502, "response body over the filter's body-limit");
    weir.wait_for_log("response body over the filters' body-limit");
}

#[tokio::test]
async fn outbound_http_is_allow_listed_and_budgeted() {
    let up = Upstream::echo("app").await;
    let auth = Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        let from = req.headers().get("x-from").cloned();
        let body = if from.is_some_and(|v| v == "weir-filter") {
            "user-42"
        } else {
            "unknown-caller"
        };
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)))
    })
    .await;
    let slow = Upstream::slow(Duration::from_secs(3)).await;
    let routes = format!(
        "[[routes]]\npath = \"/ok\"\nupstream = \"app\"\nfilters = [\"auth\"]\n\n\
         [[routes]]\npath = \"/refused\"\nupstream = \"app\"\nfilters = [\"sneaky\"]\n\n\
         [[routes]]\npath = \"/slow\"\nupstream = \"app\"\nfilters = [\"impatient\"]\n\n\
         [filters.auth]\nplugin = \"services.wasm\"\nallow-hosts = [\"{auth}\"]\n\
         config = {{ callout = \"http://{auth}/check\" }}\n\n\
         [filters.sneaky]\nplugin = \"services.wasm\"\nallow-hosts = [\"{auth}\"]\n\
         config = {{ callout = \"http://{slow}/exfiltrate\" }}\n\n\
         [filters.impatient]\nplugin = \"services.wasm\"\nallow-hosts = [\"{slow}\"]\n\
         outbound-timeout = \"300ms\"\nconfig = {{ callout = \"http://{slow}/\" }}\n",
        auth = auth.addr,
        slow = slow.addr
    );
    let weir = Weir::start(&services_manifest(up.addr, &routes));

    let r = get(&weir.url("/ok"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("x-callout: user-42"), "{}", r.body);

    let r = get(&weir.url("/refused"), &[]).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains(&format!(
            "host {} is not in this filter's allow-hosts",
            slow.addr
        )),
        "{}",
        r.body
    );

    let start = Instant::now();
    let r = get(&weir.url("/slow"), &[]).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("outbound time budget of 300ms"),
        "{}",
        r.body
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    let s = weir.status().await;
    let by_name = |n: &str| {
        s["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()["metrics"]
            .clone()
    };
    assert_eq!(by_name("auth")["outbound_calls"], 1);
    assert_eq!(by_name("sneaky")["outbound_refused"], 1);
    assert_eq!(by_name("sneaky")["outbound_calls"], 0);
}

/// A filter can't pick another virtual host behind an allowed address, and with
/// `outbound-deny` it never connects into a denied range, whatever name it was allowed.
#[tokio::test]
async fn outbound_http_keeps_its_host_and_stays_out_of_denied_ranges() {
    let up = Upstream::echo("app").await;
    let auth = Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        let host = req.headers().get("host").cloned();
        let host = host.map(|h| h.to_str().unwrap_or("").to_string());
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            host.unwrap_or_default(),
        )))
    })
    .await;
    let port = auth.addr.port();
    let routes = format!(
        "[[routes]]\npath = \"/vhost\"\nupstream = \"app\"\nfilters = [\"vhost\"]\n\n\
         [[routes]]\npath = \"/fenced\"\nupstream = \"app\"\nfilters = [\"fenced\"]\n\n\
         [[routes]]\npath = \"/named\"\nupstream = \"app\"\nfilters = [\"named\"]\n\n\
         [filters.vhost]\nplugin = \"services.wasm\"\nallow-hosts = [\"{auth}\"]\n\
         config = {{ callout = \"http://{auth}/\", callout-host = \"admin.internal\" }}\n\n\
         [filters.fenced]\nplugin = \"services.wasm\"\nallow-hosts = [\"localhost:{port}\"]\n\
         outbound-deny = [\"private\"]\nconfig = {{ callout = \"http://localhost:{port}/\" }}\n\n\
         [filters.named]\nplugin = \"services.wasm\"\nallow-hosts = [\"localhost:{port}\"]\n\
         outbound-deny = [\"10.0.0.0/8\", \"::1\"]\nconfig = {{ callout = \"http://localhost:{port}/\" }}\n",
        auth = auth.addr,
    );
    let weir = Weir::start(&services_manifest(up.addr, &routes));

    let r = get(&weir.url("/vhost"), &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("is not the URL's host"), "{}", r.body);

    let r = get(&weir.url("/fenced"), &[]).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("localhost resolves to") && r.body.contains("outbound-deny"),
        "{}",
        r.body
    );

    // Connected to the checked address, with Host still the allowed name.
    let r = get(&weir.url("/named"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&format!("x-callout: localhost:{port}")),
        "{}",
        r.body
    );
}

/// `https://` callouts: verified against the filter's `outbound-ca` (or the system's CAs),
/// with the URL's host as the name checked; a certificate of another CA or name fails the
/// call, and the filter decides (here: 403 with the reason).
#[tokio::test]
async fn outbound_https_is_verified_against_the_filters_ca() {
    let up = Upstream::echo("app").await;
    let ca = pki::Ca::new();
    let keys = pki::tls_upstream(&ca.issue(&["localhost"]), &[b"http/1.1"], None).await;
    let port = keys.addr.port();
    let dir = tempfile::tempdir().unwrap();
    ca.write(&dir.path().join("ca.pem"));
    let routes = format!(
        "[[routes]]\npath = \"/trusting\"\nupstream = \"app\"\nfilters = [\"trusting\"]\n\n\
         [[routes]]\npath = \"/system\"\nupstream = \"app\"\nfilters = [\"system\"]\n\n\
         [[routes]]\npath = \"/by-address\"\nupstream = \"app\"\nfilters = [\"by-address\"]\n\n\
         [filters.trusting]\nplugin = \"services.wasm\"\nallow-hosts = [\"localhost:{port}\"]\n\
         outbound-ca = \"ca.pem\"\nconfig = {{ callout = \"https://localhost:{port}/jwks\" }}\n\n\
         [filters.system]\nplugin = \"services.wasm\"\nallow-hosts = [\"localhost:{port}\"]\n\
         config = {{ callout = \"https://localhost:{port}/jwks\" }}\n\n\
         [filters.by-address]\nplugin = \"services.wasm\"\nallow-hosts = [\"127.0.0.1:{port}\"]\n\
         outbound-ca = \"ca.pem\"\nconfig = {{ callout = \"https://127.0.0.1:{port}/jwks\" }}\n"
    );
    let weir = Weir::start_in(dir, &services_manifest(up.addr, &routes));
    let r = get(&weir.url("/trusting"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("x-callout: secure upstream"), "{}", r.body);
    // Not our CA among the system's; a certificate for localhost is not one for 127.0.0.1.
    for (path, why) in [("/system", "certificate"), ("/by-address", "certificate")] {
        let r = get(&weir.url(path), &[]).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(
            r.body.contains("callout failed") && r.body.contains(why),
            "{path}: {}",
            r.body
        );
    }
}

/// Filters match on the canonical path but can read what the client sent (WIT 0.2.1).
#[tokio::test]
async fn filters_can_read_the_raw_path_the_client_sent() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&services_manifest(
        up.addr,
        "[[routes]]\nupstream = \"app\"\nfilters = [\"raw\"]\n\n\
         [filters.raw]\nplugin = \"services.wasm\"\nconfig = { raw-path = true }\n",
    ));
    let r = get(&weir.url("/%61pi/./items?q=%2e1"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("GET /api/items?q=%2e1\n"), "{}", r.body);
    assert!(
        r.body.contains("x-raw-path: /%61pi/./items?q=%2e1\n"),
        "{}",
        r.body
    );
    // Unchanged by normalising: the raw path is the path.
    let r = get(&weir.url("/plain?x=1"), &[]).await;
    assert!(r.body.contains("x-raw-path: /plain?x=1\n"), "{}", r.body);
}

#[tokio::test]
async fn filter_metrics_and_random_are_available() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&services_manifest(
        up.addr,
        "[[routes]]\nupstream = \"app\"\nfilters = [\"m\"]\n\n\
         [filters.m]\nplugin = \"services.wasm\"\nconfig = { metrics = true, random = true }\n",
    ));
    let mut tokens = std::collections::BTreeSet::new();
    for path in ["/a", "/bb", "/ccc"] {
        let r = get(&weir.url(path), &[]).await;
        let token = r
            .body
            .lines()
            .find_map(|l| l.strip_prefix("x-random: "))
            .expect("x-random")
            .to_string();
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        tokens.insert(token);
    }
    assert_eq!(tokens.len(), 3, "random tokens differ");
    let s = weir.status().await;
    let m = &s["filters"][0]["metrics"];
    assert_eq!(m["counters"]["requests"], 3, "{m:#}");
    assert_eq!(m["histograms"]["path-length"]["count"], 3, "{m:#}");
    assert_eq!(m["histograms"]["path-length"]["sum"], 9.0, "{m:#}");
    assert!(
        m["calls"].as_u64().unwrap() >= 6,
        "both hooks counted: {m:#}"
    );
    assert!(m["call_time_ns"]["count"].as_u64().unwrap() >= 6, "{m:#}");
}

#[tokio::test]
async fn header_edits_are_checked_in_both_phases() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&services_manifest(
        up.addr,
        "[[routes]]\nupstream = \"app\"\nfilters = [\"edits\"]\n\n\
         [filters.edits]\nplugin = \"services.wasm\"\nconfig = { edits = true }\n",
    ));
    // Twice: the second time the names and values come from the instance's recent list.
    for _ in 0..2 {
        let r = get(&weir.url("/"), &[]).await;
        assert_eq!(r.status, 200);
        let expected = "header \"content-length\" is managed by the proxy (framing and connection \
                        headers; a body is set with set-body) | invalid header name \"bad name\" \
                        | invalid value for header \"x-edited\"";
        assert!(
            r.body.contains(&format!("x-edit-errors: {expected}")),
            "{}",
            r.body
        );
        assert_eq!(r.body.matches("x-edited: ").count(), 3, "{}", r.body);
        assert_eq!(r.header("x-edit-errors"), Some(expected));
        let edited: Vec<_> = r.headers.get_all("x-edited").iter().collect();
        assert_eq!(edited, ["1", "2", "3"]);
    }
    // The same over HTTP/2.
    let r = send_h2(
        http::Request::get(weir.url("/"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.matches("x-edited: ").count(), 3, "{}", r.body);
    let edited: Vec<_> = r.headers.get_all("x-edited").iter().collect();
    assert_eq!(edited, ["1", "2", "3"]);
    assert!(r
        .header("x-edit-errors")
        .is_some_and(|e| e.contains("invalid header name")));
}
