//! Zero-downtime binary upgrade: SIGUSR2 starts the binary again on the same listening
//! sockets; the old process exits once the new one serves, and no request fails meanwhile,
//! on new connections or on kept-alive ones. A new process that cannot start leaves the old
//! one serving.

mod harness;
use harness::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The pid the old process logged for its successor.
fn successor(logs: &str) -> Option<i32> {
    let line = logs
        .lines()
        .find(|l| l.contains("upgrade: the new process serves"))?;
    let pid = line.split("pid=").nth(1)?;
    pid.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

// Multi-threaded: the load keeps running while the test waits for the old process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_hands_the_sockets_to_a_new_process_without_failing_a_request() {
    let app = Upstream::echo("app").await;
    let m = manifest(&[app.addr], &[], "")
        .replace("[[listeners]]", "admin = \"127.0.0.1:0\"\n\n[[listeners]]");
    let mut weir = Weir::start(&m);
    let url = weir.url("/x");
    let admin = weir.admin.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for keep_alive in [false, true] {
        let (url, stop, ok, failed) = (url.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let mut client = keep_alive_client();
            while !stop.load(Ordering::SeqCst) {
                if !keep_alive {
                    // A new connection for every request.
                    client = keep_alive_client();
                }
                let req = http::Request::get(&url)
                    .body(http_body_util::Full::new(hyper::body::Bytes::new()))
                    .unwrap();
                let status = match client.request(req).await {
                    Ok(r) => r.status().as_u16(),
                    Err(e) => {
                        eprintln!("request failed (keep-alive {keep_alive}): {e:?}");
                        0
                    }
                };
                if status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst)
                } else {
                    failed.fetch_add(1, Ordering::SeqCst)
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    weir.signal("USR2");
    let (status, weir) =
        tokio::task::spawn_blocking(move || (weir.wait_exit(Duration::from_secs(20)), weir))
            .await
            .unwrap();
    let status = status.expect("the old process exits");
    assert!(status.success(), "{status}");
    let logs = weir.logs();
    let pid = successor(&logs).unwrap_or_else(|| panic!("no successor logged:\n{logs}"));
    // The new process serves the same address (and the admin endpoint) on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    let r = get(&url, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(&format!("http://{admin}/healthz"), &[]).await.status,
        200
    );
    // Stop the successor (it is no child of this test).
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "{} served, logs:\n{logs}",
        ok.load(Ordering::SeqCst)
    );
    assert!(ok.load(Ordering::SeqCst) > 20);
}

#[tokio::test]
async fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let app = Upstream::echo("app").await;
    let m =
        manifest(&[app.addr], &[], "").replace("[[listeners]]", "watch = false\n\n[[listeners]]");
    let mut weir = Weir::start(&m);
    // The manifest the new process reads is broken now (the old one does not watch it).
    let path = weir.manifest_path();
    std::fs::write(&path, "this is = not [ a manifest").unwrap();
    weir.signal("USR2");
    weir.wait_for_log("upgrade failed, this process keeps serving");
    assert!(
        weir.wait_exit(Duration::from_millis(300)).is_none(),
        "still running"
    );
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_running_at_the_upgrade_closes_its_kept_alive_connection() {
    let slow = Upstream::slow(Duration::from_millis(800)).await;
    let mut weir = Weir::start(&manifest(&[slow.addr], &[], ""));
    let url = weir.url("/");
    // HTTP/1.1 keep-alive: without `Connection: close` the client would send its next
    // request on this connection, which the old process closes once it lingered.
    let in_flight = tokio::spawn(async move { get(&url, &[]).await });
    // The same as raw bytes (a keep-alive request: the proxy must close it after), and over
    // HTTP/2, where a GOAWAY does that and a `Connection` header has no place.
    let addr = weir.addr;
    let raw = tokio::spawn(async move {
        harness::raw::exchange(addr, b"GET /raw HTTP/1.1\r\nHost: shop.test\r\n\r\n").await
    });
    let h2_url = weir.url("/h2");
    let h2 = tokio::spawn(async move {
        send_h2(
            http::Request::get(&h2_url)
                .body(http_body_util::Full::new(hyper::body::Bytes::new()))
                .unwrap(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    weir.signal("USR2");
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    let raw = raw.await.unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(
        raw.text
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{}",
        raw.text
    );
    assert!(
        raw.closed,
        "the proxy left the connection open: {}",
        raw.text
    );
    let h2 = h2.await.unwrap();
    assert_eq!(h2.status, 200);
    assert_eq!(h2.header("connection"), None, "{:?}", h2.headers);
    let (status, weir) =
        tokio::task::spawn_blocking(move || (weir.wait_exit(Duration::from_secs(20)), weir))
            .await
            .unwrap();
    assert!(status.is_some_and(|s| s.success()));
    if let Some(pid) = successor(&weir.logs()) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
}
