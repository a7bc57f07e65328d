//! `GET /metrics` on the admin listener: the Prometheus text format that Prometheus's own
//! `promtool check metrics` accepts (OpenMetrics when asked for), with requests counted by
//! route, upstream, method and status class over HTTP/1.1 and HTTP/2, labels a client cannot
//! multiply, filter and target series, and the admin token guarding it.

mod harness;
use harness::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn metrics_manifest(up: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "plugins-dir = \"{{fixtures}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 2\n{extra}\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n\
         [[routes]]\npath = \"/api\"\nupstream = \"app\"\nfilters = [\"counted\"]\n\n\
         [[routes]]\npath = \"/boom\"\nupstream = \"app\"\nfilters = [\"boom\"]\n\n\
         [[routes]]\npath = \"/soft\"\nupstream = \"app\"\nfilters = [\"soft\"]\n\n\
         [[routes]]\npath = \"/cached\"\nupstream = \"app\"\ncache = {{ zone = \"main\", default-ttl = \"60s\" }}\n\n\
         [cache-zones.main]\nmemory = \"1MiB\"\n\n\
         [filters.counted]\nplugin = \"services.wasm\"\nconfig = {{ metrics = true }}\n\n\
         [filters.boom]\nplugin = \"panic.wasm\"\n\n\
         [filters.soft]\nplugin = \"panic.wasm\"\non-failure = \"fail-open\"\n"
    )
}

async fn scrape(weir: &Weir, headers: &[(&str, &str)]) -> Reply {
    let admin = weir.admin.expect("admin address");
    get(&format!("http://{admin}/metrics"), headers).await
}

/// `promtool check metrics` on `text`: (success, its output).
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The value of the sample line starting with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_what_happened() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&metrics_manifest(up.addr, ""));
    for _ in 0..3 {
        assert_eq!(get(&weir.url("/api/items"), &[]).await.status, 200);
    }
    let h2 = http::Request::get(weir.url("/api/h2"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send_h2(h2).await.status, 200);
    // No route: counted under "-"; paths, odd methods and ids never become labels.
    assert_eq!(
        get(&weir.url("/nowhere/4711-secret"), &[]).await.status,
        404
    );
    let brew = http::Request::builder()
        .method("BREW")
        .uri(weir.url("/api/pot"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    send(brew).await;
    // Raw bytes: a lower-case method is another method (not GET), and a path of percent
    // escapes and dot segments is counted under its route, never as a label of its own.
    let raw = raw::exchange(
        weir.addr,
        b"get /api/%2e%2e/x%00y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_ne!(raw.status, 0, "{raw:?}");
    // A filter that traps: 503, and a failure of kind "trap".
    assert_eq!(
        get(&weir.url("/boom"), &[("x-panic", "1")]).await.status,
        503
    );
    // A fail-open one: the request goes on without it, counted as skipped.
    assert_eq!(
        get(&weir.url("/soft"), &[("x-panic", "1")]).await.status,
        200
    );

    let r = scrape(&weir, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (ok, said) = promtool(&r.body);
    assert!(ok, "promtool check metrics: {said}\n{}", r.body);
    let text = &r.body;
    let at =
        |series: &str| sample(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(
        at(r#"weir_requests_total{route="/api",upstream="app",method="GET",code="2xx"}"#),
        4.0,
        "three over HTTP/1.1 and one over HTTP/2"
    );
    assert_eq!(
        at(r#"weir_requests_total{route="-",upstream="-",method="GET",code="4xx"}"#),
        1.0
    );
    assert_eq!(
        at(r#"weir_requests_total{route="/api",upstream="app",method="other",code="2xx"}"#),
        1.0
    );
    let raw_series: f64 = text
        .lines()
        .filter(|l| l.starts_with("weir_requests_total{") && l.contains("method=\"other\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(raw_series, 2.0, "BREW and the lower-case get: {text}");
    assert!(!text.contains("%2e") && !text.contains("x%00y"), "{text}");
    assert_eq!(
        at(r#"weir_requests_total{route="/boom",upstream="app",method="GET",code="5xx"}"#),
        1.0
    );
    assert!(!text.contains("4711") && !text.contains("BREW"), "{text}");
    assert_eq!(
        at(r#"weir_request_duration_seconds_count{route="/api",upstream="app"}"#),
        5.0
    );
    assert_eq!(
        at(r#"weir_request_duration_seconds_bucket{route="/api",upstream="app",le="+Inf"}"#),
        5.0
    );
    assert_eq!(
        at(r#"weir_filter_calls_total{filter="counted"}"#),
        10.0,
        "both hooks of five requests"
    );
    assert_eq!(
        at(r#"weir_filter_counts_total{filter="counted",name="requests"}"#),
        5.0
    );
    assert_eq!(
        at(r#"weir_filter_observations_count{filter="counted",name="path-length"}"#),
        5.0
    );
    assert_eq!(
        at(r#"weir_filter_failures_total{filter="boom",kind="trap"}"#),
        1.0
    );
    assert_eq!(at(r#"weir_filter_skipped_total{filter="soft"}"#), 1.0);
    assert_eq!(at(r#"weir_filter_skipped_total{filter="boom"}"#), 0.0);
    assert_eq!(
        at(r#"weir_filter_failures_total{filter="boom",kind="cpu_deadline"}"#),
        0.0
    );
    let target = format!(
        r#"weir_upstream_target_up{{upstream="app",target="{}"}}"#,
        up.addr
    );
    assert_eq!(at(&target), 1.0);
    assert_eq!(at("weir_config_generation"), 1.0);
    assert_eq!(at(r#"weir_reloads_total{result="ok"}"#), 0.0);
    assert!(text.contains("weir_build_info{version=\""), "{text}");

    // A reload: the generation and the reload counter move; request counts carry on.
    weir.signal("HUP");
    weir.wait_for_status("generation 2", |s| s["generation"] == 2)
        .await;
    assert_eq!(get(&weir.url("/api/again"), &[]).await.status, 200);
    let text = scrape(&weir, &[]).await.body;
    assert_eq!(sample(&text, "weir_config_generation"), Some(2.0));
    assert_eq!(
        sample(&text, r#"weir_reloads_total{result="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"weir_requests_total{route="/api",upstream="app",method="GET",code="2xx"}"#
        ),
        Some(5.0)
    );

    // OpenMetrics on request.
    let r = scrape(
        &weir,
        &[("accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await;
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/openmetrics-text"));
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    // Only GET.
    let post = http::Request::post(format!("http://{}/metrics", weir.admin.unwrap()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(post).await.status, 405);
}

#[tokio::test]
async fn the_admin_token_guards_metrics_and_counting_can_be_off() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&metrics_manifest(
        up.addr,
        "admin-token = \"metrics-token-0123456789\"\nmetrics = false",
    ));
    assert_eq!(get(&weir.url("/api"), &[]).await.status, 200);
    assert_eq!(scrape(&weir, &[]).await.status, 401);
    let r = scrape(
        &weir,
        &[("authorization", "Bearer metrics-token-0123456789")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("weir_requests_total{"),
        "metrics = false counts nothing: {}",
        r.body
    );
    assert!(
        r.body
            .contains("weir_filter_calls_total{filter=\"counted\"} 2"),
        "{}",
        r.body
    );
    assert!(promtool(&r.body).0);
}

#[tokio::test]
async fn upstream_and_connection_series_count_attempts_retries_and_refusals() {
    let up = Upstream::echo("app").await;
    let dead = closed_port();
    let weir = Weir::start(&format!(
        "plugins-dir = \"{{plugins}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nmax-connections = 1000\n\n\
         [upstreams.app]\ntargets = [\"{}\", \"{dead}\"]\nretries = 1\nbalance = \"round-robin\"\n\
         passive = {{ consecutive-failures = 1000 }}\n\n\
         [upstreams.none]\ntargets = [\"{dead}\"]\n\n\
         [[routes]]\npath = \"/none\"\nupstream = \"none\"\n\n\
         [[routes]]\nupstream = \"app\"\n",
        up.addr
    ));
    for _ in 0..6 {
        assert_eq!(
            get(&weir.url("/"), &[]).await.status,
            200,
            "retried on the live target"
        );
    }
    assert_eq!(get(&weir.url("/none"), &[]).await.status, 502);
    let text = scrape(&weir, &[]).await.body;
    assert!(promtool(&text).0, "{}", promtool(&text).1);
    let at =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert!(
        at(r#"weir_upstream_retries_total{upstream="app"}"#) >= 1.0,
        "{text}"
    );
    assert!(at(r#"weir_upstream_failures_total{upstream="app"}"#) >= 1.0);
    assert_eq!(
        at(r#"weir_upstream_response_duration_seconds_count{upstream="app"}"#),
        6.0
    );
    assert_eq!(at(r#"weir_upstream_failures_total{upstream="none"}"#), 1.0);
    // Keep-alive: the requests to the live target shared one pooled connection.
    assert_eq!(
        at(r#"weir_upstream_connections_total{upstream="app"}"#),
        1.0
    );
    assert_eq!(at(r#"weir_upstream_connections_open{upstream="app"}"#), 1.0);
    assert_eq!(
        at(r#"weir_upstream_connections_total{upstream="none"}"#),
        0.0
    );
    assert_eq!(
        at(r#"weir_upstream_refused_total{upstream="app",reason="max_requests"}"#),
        0.0
    );
    // Body bytes: a 1000-byte upload (a POST is not retried: the one that meets the dead
    // target is answered 502 before its body is read), and the echo's answer to it.
    let mut answer = None;
    for _ in 0..2 {
        let r = post(&weir.url("/echo"), &[], &"x".repeat(1000)).await;
        if r.status == 200 {
            answer = Some(r);
            break;
        }
    }
    let echoed = answer
        .expect("one of two POSTs reaches the live target")
        .body
        .len();
    let text = scrape(&weir, &[]).await.body;
    let at =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(at(r#"weir_body_bytes_total{from="clients"}"#), 1000.0);
    let from_upstreams = at(r#"weir_body_bytes_total{from="upstreams"}"#);
    assert!(
        from_upstreams >= echoed as f64,
        "{from_upstreams} < {echoed}"
    );
    let listener = weir.addr.to_string();
    let accepted = format!(r#"weir_connections_total{{listener="{listener}",result="accepted"}}"#);
    assert!(at(&accepted) >= 7.0, "{text}");
    let open = format!(r#"weir_connections_open{{listener="{listener}",tls="false"}}"#);
    assert!(at(&open) >= 0.0);
}
