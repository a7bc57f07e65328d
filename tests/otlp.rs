//! OpenTelemetry export end to end, against a collector stand-in that takes OTLP/HTTP JSON:
//! a server span per request in the client's trace, a client span per upstream attempt
//! (the upstream's parent), an internal span per filter call; and nothing without `otlp`.

mod harness;
use harness::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Takes `POST /v1/traces` and keeps every span it was sent.
async fn collector() -> (Upstream, Arc<Mutex<Vec<Value>>>) {
    let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = spans.clone();
    let up = Upstream::start(move |req: Request<Incoming>| {
        let kept = kept.clone();
        async move {
            let ok = req.method() == "POST"
                && req.uri().path() == "/v1/traces"
                && req.headers()["content-type"] == "application/json";
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                let service = &rs["resource"]["attributes"][0]["value"]["stringValue"];
                assert_eq!(service, "edge-proxy");
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for s in ss["spans"].as_array().into_iter().flatten() {
                        kept.lock().unwrap().push(s.clone());
                    }
                }
            }
            Response::builder()
                .status(if ok { 200 } else { 400 })
                .body(Full::new(Bytes::from("{}")))
                .unwrap()
        }
    })
    .await;
    (up, spans)
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test]
async fn a_request_is_exported_as_server_client_and_filter_spans_in_its_trace() {
    let (col, spans) = collector().await;
    let app = Upstream::echo("app").await;
    let m = manifest(&[app.addr], &["tag"], "[filters.tag]\nplugin = \"headers.wasm\"\nconfig = { request = { set = { \"x-a\" = \"1\" } } }\n")
        .replace(
            "[[listeners]]",
            &format!("otlp = {{ endpoint = \"http://{}/v1/traces\", service-name = \"edge-proxy\", flush-interval = \"100ms\" }}\n\n[[listeners]]", col.addr),
        );
    let weir = Weir::start(&m);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get(
        &weir.url("/hello"),
        &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
    )
    .await;
    assert_eq!(r.status, 200);
    let upstream_parent = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .map(|t| t[36..52].to_string())
        .expect("the upstream got a traceparent");
    let mut got = Vec::new();
    for _ in 0..100 {
        got = spans.lock().unwrap().clone();
        if got.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kind = |k: u64| {
        got.iter()
            .filter(|s| s["kind"] == k)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (server, client, internal) = (kind(2), kind(3), kind(1));
    assert_eq!(
        (server.len(), client.len(), internal.len()),
        (1, 1, 1),
        "{got:#?}"
    );
    let (server, client, internal) = (&server[0], &client[0], &internal[0]);
    for s in [server, client, internal] {
        assert_eq!(s["traceId"], trace, "one trace: {s}");
    }
    assert_eq!(
        server["parentSpanId"], "00f067aa0ba902b7",
        "the client's span is the parent"
    );
    assert_eq!(server["name"], "GET /");
    assert_eq!(
        attr(server, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    assert_eq!(
        attr(server, "http.request.method").unwrap()["stringValue"],
        "GET"
    );
    assert_eq!(attr(server, "url.path").unwrap()["stringValue"], "/hello");
    assert_eq!(client["parentSpanId"], server["spanId"]);
    assert_eq!(
        client["spanId"],
        upstream_parent.as_str(),
        "the upstream's parent is the attempt"
    );
    assert_eq!(
        attr(client, "server.address").unwrap()["stringValue"],
        app.addr.to_string()
    );
    assert_eq!(internal["parentSpanId"], server["spanId"]);
    assert_eq!(internal["name"], "filter tag on-request");
    let start = |s: &Value| {
        s["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    let end = |s: &Value| {
        s["endTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    assert!(start(server) <= start(client) && end(client) <= end(server));
    assert!(start(server) <= start(internal) && end(internal) <= start(client));

    // A request without a trace gets one of its own, with no parent; a failing upstream
    // attempt is an error span.
    spans.lock().unwrap().clear();
    let r = get(&weir.url("/again"), &[]).await;
    assert_eq!(r.status, 200);
    for _ in 0..100 {
        if spans.lock().unwrap().iter().any(|s| s["kind"] == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = spans.lock().unwrap().clone();
    let server = got.iter().find(|s| s["kind"] == 2).expect("a server span");
    assert!(server.get("parentSpanId").is_none(), "{server}");
    assert_ne!(server["traceId"], trace);
}

#[tokio::test]
async fn failures_are_error_spans_and_a_down_collector_loses_nothing_but_spans() {
    let (col, spans) = collector().await;
    let m = manifest(&[closed_port()], &[], "").replace(
        "[[listeners]]",
        &format!("otlp = {{ endpoint = \"http://{}/v1/traces\", service-name = \"edge-proxy\", flush-interval = \"100ms\" }}\n\n[[listeners]]", col.addr),
    );
    let weir = Weir::start(&m);
    assert_eq!(get(&weir.url("/"), &[]).await.status, 502);
    let mut got = Vec::new();
    for _ in 0..100 {
        got = spans.lock().unwrap().clone();
        if got.iter().any(|s| s["kind"] == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = got.iter().find(|s| s["kind"] == 3).expect("a client span");
    assert_eq!(client["status"]["code"], 2);
    assert_eq!(
        attr(client, "error.type").unwrap()["stringValue"],
        "connection"
    );
    let server = got.iter().find(|s| s["kind"] == 2).unwrap();
    assert_eq!(server["status"]["code"], 2, "a 502 is an error");

    // The collector goes away: requests are served as before.
    drop(col);
    let app = Upstream::echo("app").await;
    let m2 = manifest(&[app.addr], &[], "").replace(
        "[[listeners]]",
        &format!("otlp = {{ endpoint = \"http://{}/v1/traces\", flush-interval = \"50ms\" }}\n\n[[listeners]]", closed_port()),
    );
    let weir2 = Weir::start(&m2);
    for _ in 0..20 {
        assert_eq!(get(&weir2.url("/"), &[]).await.status, 200);
    }
    weir2.wait_for_log("OTLP export failed");
    drop(weir);
}

#[test]
fn a_bad_endpoint_is_located() {
    let base = "[[listeners]]\naddress = \"127.0.0.1:0\"\n[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"app\"\n";
    let (ok, _, err) = check(&format!(
        "otlp = {{ endpoint = \"collector:4318\" }}\n{base}"
    ));
    assert!(!ok);
    assert!(
        err.contains("weir.toml:1:21: otlp.endpoint: \"collector:4318\" is not an http:// URL"),
        "{err}"
    );
    let (ok, _, err) = check(&format!(
        "otlp = {{ endpoint = \"https://c/v1/traces\" }}\n{base}"
    ));
    assert!(!ok);
    assert!(err.contains("https is not supported"), "{err}");
}
