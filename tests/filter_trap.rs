//! A filter that traps, loops or eats memory answers that request with 500 (no internal
//! detail), is logged with its name and reason, and the proxy keeps serving.

mod harness;
use harness::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn trap_fails_only_its_request() {
    let up = Upstream::echo("app").await;
    let m = manifest(
        &[up.addr],
        &["boom"],
        "[filters.boom]\nplugin = \"panic.wasm\"\n",
    )
    .replace("{plugins}", "{fixtures}");
    let weir = Weir::start(&m);

    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-fixture"), Some("panic"));

    for _ in 0..3 {
        let r = get(&weir.url("/"), &[("x-panic", "1")]).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.body, "500 Internal Server Error\n", "no internal detail");
        let r = get(&weir.url("/"), &[]).await;
        assert_eq!(r.status, 200, "the next request succeeds");
        assert!(r.body.contains("x-fixture: panic"));
    }
    let logs = weir.wait_for_log("trapped in on-request");
    assert!(
        logs.contains("filter=\"boom\"") || logs.contains("filter=boom"),
        "{logs}"
    );
    assert!(logs.contains("filters=boom:failed"), "{logs}");

    let r = get(&weir.url("/"), &[("x-panic-response", "1")]).await;
    assert_eq!(r.status, 500);
    weir.wait_for_log("trapped in on-response");
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
}

#[tokio::test]
async fn loops_hit_the_cpu_deadline_and_memory_hogs_the_limit() {
    let up = Upstream::echo("app").await;
    let m = manifest(
        &[up.addr],
        &["bad"],
        "[filters.bad]\nplugin = \"panic.wasm\"\ncpu-deadline = \"20ms\"\nmemory-limit = \"32MiB\"\n",
    )
    .replace("{plugins}", "{fixtures}");
    let weir = Weir::start(&m);

    for _ in 0..3 {
        let start = Instant::now();
        let r = get(&weir.url("/"), &[("x-loop", "1")]).await;
        assert_eq!(r.status, 500);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "stopped promptly: {:?}",
            start.elapsed()
        );
        assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
    }
    weir.wait_for_log("exceeded its CPU deadline of 20ms");

    let r = get(&weir.url("/"), &[("x-hog", "1")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "500 Internal Server Error\n");
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
    weir.wait_for_log("filters=bad:failed");
}
