//! Health: active HTTP checks take a failing target out after `fall` failures and back after
//! `rise` successes; TCP checks notice a closed port; passive ejection takes a target that
//! keeps failing out for a cooldown; with no healthy target the answer is 503 at once.

mod harness;
use harness::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An echo-like upstream named `name` whose `/healthz` answers 200 while `healthy` is set.
async fn checked(name: &'static str, healthy: Arc<AtomicBool>) -> Upstream {
    Upstream::start(move |req: http::Request<hyper::body::Incoming>| {
        let healthy = healthy.clone();
        async move {
            let status = if req.uri().path() == "/healthz" && !healthy.load(Ordering::Relaxed) {
                500
            } else {
                200
            };
            http::Response::builder()
                .status(status)
                .header("x-upstream", name)
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"ok\n",
                )))
                .unwrap()
        }
    })
    .await
}

async fn seen(weir: &Weir, n: usize) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for _ in 0..n {
        let r = get(&weir.url("/"), &[]).await;
        s.insert(format!(
            "{} {}",
            r.status.as_u16(),
            r.header("x-upstream").unwrap_or("-")
        ));
    }
    s
}

async fn wait_until_seen(weir: &Weir, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    for _ in 0..100 {
        if seen(weir, 6).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never saw exactly {want:?}; logs:\n{}", weir.logs());
}

#[tokio::test]
async fn active_http_checks_take_targets_out_and_back() {
    let a_ok = Arc::new(AtomicBool::new(true));
    let a = checked("a", a_ok.clone()).await;
    let b = checked("b", Arc::new(AtomicBool::new(true))).await;
    let weir = Weir::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\", \"{}\"]\n\
         health = {{ path = \"/healthz\", interval = \"100ms\", timeout = \"500ms\", rise = 2, fall = 2 }}\n\n\
         [[routes]]\nupstream = \"app\"\n",
        a.addr, b.addr
    ));
    wait_until_seen(&weir, &["200 a", "200 b"]).await;
    a_ok.store(false, Ordering::Relaxed);
    wait_until_seen(&weir, &["200 b"]).await;
    weir.wait_for_log("target is down: 2 active checks failed");
    a_ok.store(true, Ordering::Relaxed);
    wait_until_seen(&weir, &["200 a", "200 b"]).await;
    weir.wait_for_log("target is up again");
}

#[tokio::test]
async fn no_healthy_target_answers_503_at_once() {
    let dead = closed_port();
    let weir = Weir::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{dead}\"]\n\
         health = {{ interval = \"50ms\", timeout = \"200ms\", fall = 1 }}\n\n\
         [[routes]]\nupstream = \"app\"\n"
    ));
    weir.wait_for_log("target is down");
    let start = Instant::now();
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "503 Service Unavailable\n");
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    weir.wait_for_log("no healthy target");
}

#[tokio::test]
async fn passive_ejection_takes_a_failing_target_out_for_a_cooldown() {
    let b = Upstream::echo("b").await;
    let dead = closed_port();
    let weir = Weir::start(&format!(
        "workers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{dead}\", \"{}\"]\n\
         retries = 0\npassive = {{ consecutive-failures = 2, cooldown = \"700ms\" }}\n\n\
         [[routes]]\nupstream = \"app\"\n",
        b.addr
    ));
    // Round robin sends every other request to the dead target until it is ejected.
    let statuses = statuses(&weir, 4).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        2,
        "{statuses:?}"
    );
    weir.wait_for_log("target ejected after 2 consecutive failures");
    assert_eq!(seen(&weir, 10).await, BTreeSet::from(["200 b".to_string()]));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = seen(&weir, 4).await;
    assert!(
        after.contains("502 -"),
        "tried again after the cooldown: {after:?}"
    );
}
