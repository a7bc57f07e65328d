//! Resilience: connect failures are retried on another target for any method, 502/503
//! answers only for idempotent methods; `retries = 0` turns retrying off; a circuit breaker
//! answers 503 at once when too many requests are in flight (`max-requests`, counting
//! responses still streaming) or waiting for a response head (`max-pending`).

mod harness;
use harness::*;
use std::time::{Duration, Instant};

async fn always(status: u16, name: &'static str) -> Upstream {
    Upstream::start(move |_req| async move {
        http::Response::builder()
            .status(status)
            .header("x-upstream", name)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x\n")))
            .unwrap()
    })
    .await
}

fn manifest(targets: &[std::net::SocketAddr], extra: &str) -> String {
    let t: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "workers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [{}]\npassive = {{ consecutive-failures = 1000 }}\n{extra}\n\n\
         [[routes]]\nupstream = \"app\"\n",
        t.join(", ")
    )
}

#[tokio::test]
async fn connect_failures_are_retried_on_another_target() {
    let b = Upstream::echo("b").await;
    let weir = Weir::start(&manifest(&[closed_port(), b.addr], ""));
    for _ in 0..6 {
        let r = post(&weir.url("/"), &[], "").await;
        assert_eq!(r.status, 200, "even POST: the dead target never saw it");
        assert_eq!(r.header("x-upstream"), Some("b"));
    }
    weir.wait_for_log("retrying on another target");
}

#[tokio::test]
async fn unavailable_answers_are_retried_only_for_idempotent_methods() {
    let a = always(503, "a").await;
    let b = Upstream::echo("b").await;
    let weir = Weir::start(&manifest(&[a.addr, b.addr], ""));
    for _ in 0..4 {
        let r = get(&weir.url("/"), &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-upstream")),
            (200, Some("b"))
        );
    }
    let mut posts = Vec::new();
    for _ in 0..4 {
        posts.push(post(&weir.url("/"), &[], "").await.status.as_u16());
    }
    assert!(
        posts.contains(&503),
        "a POST that reached a 503 is not retried: {posts:?}"
    );
    assert!(posts.contains(&200), "{posts:?}");
}

#[tokio::test]
async fn retries_can_be_turned_off() {
    let b = Upstream::echo("b").await;
    let weir = Weir::start(&manifest(&[closed_port(), b.addr], "retries = 0"));
    let statuses = statuses(&weir, 4).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        2,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_circuit_breaker_answers_503_at_once_beyond_max_requests() {
    let slow = Upstream::slow(Duration::from_millis(600)).await;
    let weir = Weir::start(&manifest(&[slow.addr], "max-requests = 2"));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let url = weir.url("/");
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 60)).await;
            let start = Instant::now();
            let r = get(&url, &[]).await;
            (r.status.as_u16(), start.elapsed())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!((ok, refused.len()), (2, 2), "{results:?}");
    assert!(
        refused.iter().all(|(_, t)| *t < Duration::from_millis(200)),
        "fast: {results:?}"
    );
    weir.wait_for_log("max-requests in flight reached");
}

#[tokio::test]
async fn max_requests_counts_responses_still_streaming() {
    let up = Upstream::streaming(vec![
        (Duration::ZERO, "a"),
        (Duration::from_millis(800), "b"),
    ])
    .await;
    let weir = Weir::start(&manifest(&[up.addr], "max-requests = 1"));
    let url = weir.url("/");
    let first = tokio::spawn(async move { get(&url, &[]).await.body });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let start = Instant::now();
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 503, "the first response is still streaming");
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(first.await.unwrap(), "ab");
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200, "free again");
}

#[tokio::test]
async fn max_pending_answers_503_at_once_beyond_the_requests_waiting_for_a_head() {
    let slow = Upstream::slow(Duration::from_millis(600)).await;
    let weir = Weir::start(&manifest(&[slow.addr], "max-pending = 1"));
    let url = weir.url("/");
    let first = tokio::spawn(async move { get(&url, &[]).await.status.as_u16() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let start = Instant::now();
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 503);
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(first.await.unwrap(), 200);
    weir.wait_for_log("max-pending requests waiting for a response head");
}

/// A target that reads each request and then resets the connection without answering (as a
/// process killed under load does).
async fn resetting() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.set_zero_linger();
                drop(s);
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_target_reset_before_answering_costs_no_idempotent_request() {
    let (dead, _task) = resetting().await;
    let b = Upstream::echo("b").await;
    let weir = Weir::start(&manifest(&[dead, b.addr], ""));
    for _ in 0..6 {
        let r = get(&weir.url("/"), &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-upstream")),
            (200, Some("b"))
        );
    }
    let mut posts = Vec::new();
    for _ in 0..6 {
        posts.push(post(&weir.url("/"), &[], "").await.status.as_u16());
    }
    assert!(
        posts.contains(&502),
        "a POST the target may have seen is not sent again: {posts:?}"
    );
}
