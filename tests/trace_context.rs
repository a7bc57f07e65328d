//! W3C Trace Context through the proxy, over HTTP/1.1, HTTP/2 and raw bytes: a valid
//! `traceparent` reaches the upstream with its trace id and flags and the proxy's own parent
//! id, `tracestate` with it; a malformed or repeated one becomes a new trace and its state is
//! dropped; the access log carries the trace id the upstream got.

mod harness;
use harness::*;

const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The value of `name` in the echo upstream's body.
fn echoed<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    body.lines()
        .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
        .collect()
}

#[tokio::test]
async fn traces_continue_through_the_proxy_and_bad_ones_restart() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&format!(
        "plugins-dir = \"{{plugins}}\"\naccess-log-format = \"json\"\naccess-log-to = \"{{dir}}/access.log\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nupstream = \"app\"\n",
        up.addr
    ));
    let r = get(
        &weir.url("/a"),
        &[
            ("traceparent", GOOD),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ],
    )
    .await;
    let tp = echoed(&r.body, "traceparent");
    assert_eq!(tp.len(), 1, "{}", r.body);
    assert!(
        tp[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && tp[0].ends_with("-01"),
        "{}",
        tp[0]
    );
    assert!(
        !tp[0].contains("00f067aa0ba902b7"),
        "the proxy's span is the parent now"
    );
    assert_eq!(echoed(&r.body, "tracestate"), ["rojo=00f067aa0ba902b7"]);

    // HTTP/2: the same.
    let req = http::Request::get(weir.url("/b"))
        .header("traceparent", GOOD)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = send_h2(req).await;
    assert!(echoed(&r.body, "traceparent")[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));

    // Upper-case hex, and two headers in raw bytes: a new trace, the state dropped.
    let r = get(
        &weir.url("/c"),
        &[("traceparent", &GOOD.to_uppercase()), ("tracestate", "x=1")],
    )
    .await;
    let tp = echoed(&r.body, "traceparent");
    assert!(!tp[0].contains("4bf92f3577b34da6"), "{}", tp[0]);
    assert!(echoed(&r.body, "tracestate").is_empty(), "{}", r.body);
    let raw = raw::exchange(
        weir.addr,
        format!("GET /d HTTP/1.1\r\nHost: x\r\ntraceparent: {GOOD}\r\ntraceparent: {GOOD}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(raw.status, 200, "{raw:?}");
    let tp = echoed(&raw.text, "traceparent");
    assert_eq!(tp.len(), 1, "{}", raw.text);
    assert!(!tp[0].contains("4bf92f3577b34da6"), "{}", tp[0]);
    let new_trace = tp[0].get(3..35).unwrap().to_string();

    // The access log has the trace ids the upstream saw.
    let log = weir.dir().join("access.log");
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        text.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"trace_id\":\"{new_trace}\"")),
        "{text}"
    );
}
