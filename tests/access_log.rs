//! The access log written off the request path: JSON lines with the request's fields over
//! HTTP/1.1, HTTP/2 and raw bytes (escaped, never broken), sensitive headers redacted, the
//! query only when asked, text lines, reopening on SIGUSR1 after a logrotate-style rename,
//! lines dropped and counted (never a stalled request) when the destination does not take
//! them, located manifest errors, and JSON process logs.

mod harness;
use harness::*;
use std::path::Path;
use std::time::Duration;

fn log_manifest(up: std::net::SocketAddr, keys: &str) -> String {
    format!(
        "plugins-dir = \"{{plugins}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 2\n{keys}\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n\
         [[routes]]\npath = \"/api\"\nupstream = \"app\"\n"
    )
}

/// The JSON lines of `path`, waiting (up to 5 s) until there are at least `n`.
fn json_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("fewer than {n} lines in {}", path.display());
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-12-07T08:35:01.123Z`).
fn unix_seconds(t: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| t[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from 1970-01-01 to y-m-d (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

#[tokio::test]
async fn json_lines_carry_the_request_and_redact_what_is_sensitive() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&log_manifest(
        up.addr,
        "access-log-format = \"json\"\naccess-log-to = \"{dir}/access.log\"\n\
         access-log-query = true\naccess-log-headers = [\"x-api-key\", \"authorization\", \"x-tenant\"]\n\
         access-log-redact = [\"x-api-key\"]",
    ));
    let log = weir.dir().join("access.log");
    let r = get(
        &weir.url("/api/items?page=2&q=shoes"),
        &[
            ("user-agent", "curl/8.0"),
            ("referer", "https://shop.example/"),
            ("x-api-key", "k-123-secret"),
            ("authorization", "Bearer t0ken"),
            ("x-tenant", "acme"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h2 = http::Request::get(weir.url("/api/h2"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send_h2(h2).await.status, 200);
    assert_eq!(get(&weir.url("/elsewhere"), &[]).await.status, 404);
    // Raw bytes: quotes and backslashes stay inside one JSON string; a non-UTF-8 value is
    // not logged.
    let raw = raw::exchange(
        weir.addr,
        b"GET /api/%22quoted%22 HTTP/1.1\r\nHost: x\r\nUser-Agent: a\"b\\c\r\nReferer: \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 200, "{raw:?}");
    let lines = json_lines(&log, 4);
    // Two workers: lines come in per-worker batches, so find them by path.
    let by_path = |p: &str| {
        lines
            .iter()
            .find(|l| l["path"] == p)
            .unwrap_or_else(|| panic!("no line for {p}: {lines:?}"))
    };
    let first = by_path("/api/items");
    for (key, want) in [
        ("method", "GET"),
        ("path", "/api/items"),
        ("query", "page=2&q=shoes"),
        ("protocol", "HTTP/1.1"),
        ("route", "/api"),
        ("upstream", "app"),
        ("user_agent", "curl/8.0"),
        ("referer", "https://shop.example/"),
        ("client", "127.0.0.1"),
    ] {
        assert_eq!(first[key], want, "{key} in {first}");
    }
    assert_eq!(first["status"], 200);
    // The time (derived from the request's clock reading) is the wall clock's, in UTC.
    let time = first["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 24, "{first}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(unix_seconds("2026-12-06T22:35:01.123Z"), 1_796_596_501);
    assert_eq!(unix_seconds("2000-02-29T00:00:00.005Z"), 951_782_400);
    let logged = unix_seconds(time);
    assert!((0..10).contains(&(now - logged)), "{time} against {now}");
    assert!(first["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(first["request_id"].as_str().unwrap().len(), 32, "{first}");
    assert_eq!(first["headers"]["x-api-key"], "[redacted]");
    assert_eq!(
        first["headers"]["authorization"], "[redacted]",
        "always redacted"
    );
    assert_eq!(first["headers"]["x-tenant"], "acme");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("k-123-secret") && !text.contains("t0ken"),
        "{text}"
    );
    assert_eq!(by_path("/api/h2")["protocol"], "HTTP/2");
    let missing = by_path("/elsewhere");
    assert_eq!(
        (missing["status"].as_u64(), missing["route"].as_str()),
        (Some(404), Some("-"))
    );
    let odd = by_path("/api/%22quoted%22");
    assert_eq!(odd["user_agent"], "a\"b\\c");
    assert_eq!(
        odd["referer"], "-",
        "a value that is not text is not logged"
    );
}

#[tokio::test]
async fn text_lines_and_sigusr1_reopens_the_file_after_a_rename() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&log_manifest(
        up.addr,
        "access-log-format = \"text\"\naccess-log-to = \"{dir}/access.log\"",
    ));
    let log = weir.dir().join("access.log");
    let rotated = weir.dir().join("access.log.1");
    assert_eq!(get(&weir.url("/api/one?secret=1"), &[]).await.status, 200);
    let wait_for = |path: &Path, needle: &str| {
        for _ in 0..100 {
            if std::fs::read_to_string(path)
                .unwrap_or_default()
                .contains(needle)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} never had {needle:?}", path.display());
    };
    wait_for(&log, "path=/api/one");
    let line = std::fs::read_to_string(&log).unwrap();
    assert!(
        line.contains(" status=200 ") && line.contains(" route=/api "),
        "{line}"
    );
    assert!(!line.contains("secret"), "no query unless asked: {line}");
    // logrotate: rename, then SIGUSR1. Lines before the signal still reach the old file.
    std::fs::rename(&log, &rotated).unwrap();
    assert_eq!(get(&weir.url("/api/two"), &[]).await.status, 200);
    wait_for(&rotated, "path=/api/two");
    weir.signal("USR1");
    weir.wait_for_log("reopening the access log");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(&weir.url("/api/three"), &[]).await.status, 200);
    wait_for(&log, "path=/api/three");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("/api/two"));
}

#[tokio::test]
async fn a_destination_that_takes_nothing_costs_lines_not_requests() {
    let up = Upstream::echo("app").await;
    // stdout: the harness stops reading it once weir is ready, so writes fail or block.
    let weir = Weir::start(&log_manifest(
        up.addr,
        "access-log-format = \"json\"\naccess-log-to = \"stdout\"\naccess-log-buffer = \"4KiB\"",
    ));
    let started = std::time::Instant::now();
    let client = keep_alive_client();
    for i in 0..3000 {
        let req = http::Request::get(weir.url(&format!("/api/{i}")))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let r = client.request(req).await.expect("request");
        assert_eq!(r.status(), 200);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");
    let admin = weir.admin.unwrap();
    let metrics = get(&format!("http://{admin}/metrics"), &[]).await.body;
    let count = |result: &str| -> f64 {
        let series = format!("weir_access_log_lines_total{{result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    assert!(count("dropped") + count("failed") > 0.0, "{metrics}");
}

#[test]
fn bad_access_log_keys_are_located() {
    let base = "[[listeners]]\naddress = \"127.0.0.1:0\"\n[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"app\"\n";
    for (keys, needle) in [
        (
            "access-log-format = \"xml\"",
            "access-log-format: \"xml\" is not \"json\" or \"text\"",
        ),
        (
            "access-log-to = \"/nonexistent/dir/a.log\"",
            "access-log-to: the folder /nonexistent/dir does not exist",
        ),
        (
            "access-log-format = \"json\"\naccess-log-redact = [\"x-key\"]",
            "access-log-redact: \"x-key\" is not in access-log-headers",
        ),
        (
            "access-log-format = \"json\"\naccess-log-headers = [\"bad header\"]",
            "access-log-headers: \"bad header\" is not a header name",
        ),
        (
            "access-log-format = \"json\"\naccess-log-buffer = \"1KiB\"",
            "access-log-buffer: must be between 4KiB and 256MiB",
        ),
        (
            "access-log-query = true",
            "access-log-query: needs access-log-format",
        ),
    ] {
        let (ok, out, err) = check(&format!("{keys}\n{base}"));
        assert!(!ok, "{keys}");
        let said = format!("{out}{err}");
        assert!(
            said.contains(needle),
            "{keys}: missing {needle:?} in {said}"
        );
    }
}

#[test]
fn process_logs_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("weir.toml");
    std::fs::write(
        &manifest,
        expand(
            "plugins-dir = \"{plugins}\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"app\"\nfilters = [\"h\"]\n\
             [filters.h]\nplugin = \"headers.wasm\"\nconfig = { request = { set = { \"x-a\" = \"1\" } } }\n",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["--log-format", "json", "check"])
        .arg(&manifest)
        .env("RUST_LOG", "info")
        .env("XDG_CACHE_HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The process log's lines (check's own report is plain text on the same stream).
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "some process log lines: {stderr}");
    assert!(!stderr.contains(" INFO "), "no text log lines: {stderr}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{v}");
    }
}
