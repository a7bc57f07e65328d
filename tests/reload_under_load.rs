//! Reload under load: while concurrent keep-alive clients send requests without pause, the
//! plugin is rewritten v1 → v2 → broken → v3. No request fails, each client sees the
//! versions in order, and the responses switch to each good version.

mod harness;
use harness::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_fails_while_plugins_change() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let plugin = plugins.join("version.wasm");
    std::fs::write(&plugin, version_fixture("v1")).unwrap();
    let manifest = format!(
        "plugins-dir = \"plugins\"\nadmin = \"127.0.0.1:0\"\ncompile-cache = false\n\
         access-log = false\nworkers = 2\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nupstream = \"app\"\nfilters = [\"ver\"]\n\n\
         [filters.ver]\nplugin = \"version.wasm\"\n",
        up.addr
    );
    let weir = Weir::start_in(dir, &manifest);

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (stop, url) = (stop.clone(), weir.url("/"));
        clients.push(tokio::spawn(async move {
            let client = keep_alive_client();
            let mut seen: Vec<(String, u32)> = Vec::new();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                match client.request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let v = resp
                            .headers()
                            .get("x-version")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("none")
                            .to_string();
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                        match seen.last_mut() {
                            Some((last, n)) if *last == v => *n += 1,
                            _ => seen.push((v, 1)),
                        }
                    }
                    Ok(resp) => failures.push(format!("status {}", resp.status())),
                    Err(e) => failures.push(format!("error {e}")),
                }
            }
            (seen, failures)
        }));
    }

    let pause = Duration::from_millis(700);
    tokio::time::sleep(pause).await;
    std::fs::write(&plugin, version_fixture("v2")).unwrap();
    weir.wait_for_status("v2 live", |s| s["generation"] == 2)
        .await;
    tokio::time::sleep(pause).await;
    let v3 = version_fixture("v3");
    std::fs::write(&plugin, &v3[..v3.len() / 3]).unwrap();
    weir.wait_for_status("the broken file refused", |s| s["reloads"]["failed"] == 1)
        .await;
    tokio::time::sleep(pause).await;
    std::fs::write(&plugin, &v3).unwrap();
    weir.wait_for_status("v3 live", |s| s["generation"] == 3)
        .await;
    tokio::time::sleep(pause).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    let mut versions_seen = std::collections::BTreeSet::new();
    for c in clients {
        let (seen, failures) = c.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        let order: Vec<&str> = seen.iter().map(|(v, _)| v.as_str()).collect();
        let mut sorted = order.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            order, sorted,
            "each client sees the versions in order, once each"
        );
        assert_eq!(order.last(), Some(&"v3"), "every client ends on v3");
        total += seen.iter().map(|(_, n)| n).sum::<u32>();
        versions_seen.extend(order.iter().map(|v| v.to_string()));
    }
    assert_eq!(
        versions_seen.into_iter().collect::<Vec<_>>(),
        ["v1", "v2", "v3"],
        "responses switched to each good version"
    );
    eprintln!("{total} requests during the reloads, none failed");
    assert!(total > 500, "the load was sustained: only {total} requests");
}
