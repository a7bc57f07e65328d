//! Upstream failures: 502 when refused, 504 when too slow; round robin over targets.

mod harness;
use harness::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn refused_upstream_is_502() {
    let weir = Weir::start(&manifest(&[closed_port()], &[], ""));
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body, "502 Bad Gateway\n");
    weir.wait_for_log("upstream failed");
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_timeout() {
    let slow = Upstream::slow(Duration::from_secs(5)).await;
    let weir = Weir::start(&format!(
        "timeout = \"300ms\"\n{}",
        manifest(&[slow.addr], &[], "")
    ));
    let start = Instant::now();
    let r = get(&weir.url("/"), &[]).await;
    let took = start.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.body, "504 Gateway Timeout\n");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn per_upstream_timeout_overrides_the_default() {
    let slow = Upstream::slow(Duration::from_millis(600)).await;
    let m = manifest(&[slow.addr], &[], "")
        .replace("[upstreams.app]\n", "[upstreams.app]\ntimeout = \"3s\"\n");
    let weir = Weir::start(&format!("timeout = \"100ms\"\n{m}"));
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
}

#[tokio::test]
async fn targets_take_turns() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let weir = Weir::start(&manifest(&[a.addr, b.addr], &[], ""));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = get(&weir.url("/"), &[]).await;
        seen.push(r.header("x-upstream").unwrap_or("?").to_string());
    }
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 2, "{seen:?}");
    assert_ne!(seen[0], seen[1]);
}
