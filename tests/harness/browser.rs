//! Headless Chromium for the end-to-end tests that need a real browser.

use std::time::Duration;

/// The Chromium binary (Debian's package; `.ci/run` installs it).
pub fn chromium() -> &'static str {
    for c in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if std::path::Path::new(c).exists() {
            return c;
        }
    }
    panic!("this test needs Chromium: apt-get install chromium (.ci/run installs it)");
}

/// Run headless Chromium on `url` with a fresh profile, `--virtual-time-budget` of
/// `budget_ms` and `action` (`--dump-dom`, `--screenshot=<file>`), off the test's runtime
/// (which may be serving the page meanwhile); its output, within 90 s.
pub async fn headless(url: &str, budget_ms: u32, action: &str) -> std::process::Output {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = std::process::Command::new(chromium());
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1200,1400",
    ])
    .arg(format!("--virtual-time-budget={budget_ms}"))
    .arg(action)
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output());
    tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium task")
        .expect("chromium runs")
}
