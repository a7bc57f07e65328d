//! The admin dashboard in a real browser: headless Chromium opens `/dashboard` (which loads
//! nothing from elsewhere) while requests flow, with the admin token in the page's fragment,
//! and the page's DOM shows the request rate and totals moving, the status mix, latency, the
//! upstream target up and the filter with its version; a screenshot is taken under load
//! (kept in a temporary folder, not the repository). Without the token the data is refused.

mod harness;
use harness::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Run headless Chromium on `url` with `action` (`--dump-dom` or `--screenshot=...`);
/// its stdout.
async fn browse(url: String, action: String) -> String {
    let out = browser::headless(&url, 6000, &action).await;
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text inside the element with `id` in `dom`.
fn element<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap_or(0) + 1;
    let close = rest[open..].find("</").unwrap_or(0);
    &rest[open..open + close]
}

#[tokio::test]
async fn the_dashboard_shows_live_numbers_in_a_real_browser() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&format!(
        "plugins-dir = \"{{plugins}}\"\nadmin = \"127.0.0.1:0\"\nadmin-token = \"dash-token-0123456789\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nupstream = \"app\"\nfilters = [\"tag\"]\n\n\
         [filters.tag]\nplugin = \"headers.wasm\"\nconfig = {{ request = {{ set = {{ \"x-a\" = \"1\" }} }} }}\n",
        up.addr
    ));
    let admin = weir.admin.unwrap();
    // Load: requests all along, some of them 404s.
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for n in 0..4 {
        let (url, running) = (
            weir.url(if n == 3 { "/missing" } else { "/" }),
            running.clone(),
        );
        load.push(tokio::spawn(async move {
            let client = keep_alive_client();
            while running.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let _ = client.request(req).await;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let page = format!("http://{admin}/dashboard#token=dash-token-0123456789");
    let dom = browse(page.clone(), "--dump-dom".into()).await;
    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("dashboard.png");
    browse(page, format!("--screenshot={}", shot.display())).await;
    running.store(false, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }

    assert_eq!(element(&dom, "error"), "", "{dom}");
    assert_eq!(element(&dom, "generation"), "generation 1");
    // The numbers moved while the page watched: totals grew between polls, and a rate was seen.
    let history = element(&dom, "history");
    let (rates, totals) = history
        .strip_prefix("rates ")
        .and_then(|h| h.split_once(" totals "))
        .unwrap_or_else(|| panic!("history: {history}"));
    let rates: Vec<f64> = rates
        .split_whitespace()
        .map(|r| r.parse().unwrap())
        .collect();
    let totals: Vec<u64> = totals
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(totals.len() >= 3, "several polls: {history}");
    assert!(totals.last() > totals.first(), "totals moved: {history}");
    assert!(rates.iter().any(|r| *r > 0.0), "a rate was seen: {history}");
    assert!(element(&dom, "total").parse::<u64>().unwrap() > 0);
    assert_ne!(element(&dom, "p50"), "-", "{dom}");
    // The status mix, the target and the filter with its version.
    for class in ["s2xx", "s4xx"] {
        assert!(
            element(&dom, class).parse::<u64>().is_ok(),
            "{class}: {dom}"
        );
    }
    let auth = [("authorization", "Bearer dash-token-0123456789")];
    let status = get(&format!("http://{admin}/status"), &auth).await.body;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let sha = status["filters"][0]["sha256"].as_str().unwrap();
    assert!(
        dom.contains(&format!("<code>{}</code>", &sha[..12])),
        "{dom}"
    );
    assert!(dom.contains(&format!("<td>{}</td>", up.addr)), "{dom}");
    assert!(dom.contains("<span class=\"ok\">up</span>"), "{dom}");
    // The screenshot under load, outside the repository.
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    // The page is open to a browser; its data is not without the token.
    assert_eq!(
        get(&format!("http://{admin}/dashboard"), &[]).await.status,
        200
    );
    assert_eq!(
        get(&format!("http://{admin}/dashboard/data"), &[])
            .await
            .status,
        401
    );
}
