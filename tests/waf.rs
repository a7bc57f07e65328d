//! The `waf` filter through the proxy with the OWASP Core Rule Set as Debian ships it
//! (`modsecurity-crs`, installed by `.ci/run`): attacks in the query, the raw path, form,
//! JSON and multipart bodies are refused with a bare 403 over HTTP/1.1, HTTP/2 and raw
//! bytes; ordinary requests pass; detection-only passes and logs; exclusions work; a rule
//! change reloads and a broken rule file is refused with its file and line.

mod harness;
use harness::raw::exchange;
use harness::*;
use http::Request;
use http_body_util::Full;
use hyper::body::Bytes;

const CRS: &str = "/usr/share/modsecurity-crs";
const SETUP: &str = "/etc/modsecurity/crs";

/// A manifest with the waf on the catch-all route, CRS granted, `config` extra TOML lines
/// for the filter's config table, and `files` extra grants.
fn waf_manifest(up: std::net::SocketAddr, config: &str, files: &str) -> String {
    assert!(
        std::path::Path::new(CRS).join("rules").is_dir(),
        "the OWASP CRS is not installed at {CRS}: apt-get install modsecurity-crs"
    );
    manifest(
        &[up],
        &["waf"],
        &format!(
            "[filters.waf]\nplugin = \"waf.wasm\"\nmemory-limit = \"256MiB\"\n\
             cpu-deadline = \"500ms\"\n\
             files = {{ \"/crs\" = \"{CRS}\", \"/crs-setup\" = \"{SETUP}\"{files} }}\n\
             [filters.waf.config]\nrules = [\"/crs-setup/crs-setup.conf\", \"/crs/rules/*.conf\"]\n{config}\n"
        ),
    )
}

const BROWSER: [(&str, &str); 4] = [
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-GB,en;q=0.9"),
    ("cookie", "session=abc123; theme=dark"),
];

const ATTACKS: [&str; 5] = [
    "/search?q=1%27%20OR%20%271%27%3D%271",
    "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
    "/download?file=../../../../etc/passwd",
    "/run?cmd=%3Bcat%20%2Fetc%2Fshadow",
    "/page?id=1%20UNION%20SELECT%20password%20FROM%20users--",
];

const ORDINARY: [&str; 4] = [
    "/",
    "/products?id=42&sort=price&page=2&q=blue+shoes",
    "/caf%C3%A9/menu?lang=fr&q=cr%C3%A8me+br%C3%BBl%C3%A9e",
    "/blog/2026/12/weir-release-notes?utm_source=news&utm_medium=email",
];

#[tokio::test]
async fn crs_refuses_attacks_and_passes_ordinary_requests_over_h1_and_h2() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&waf_manifest(up.addr, "", ""));
    for path in ORDINARY {
        let r = get(&weir.url(path), &BROWSER).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            r.body.starts_with("GET "),
            "{path} reached the upstream: {}",
            r.body
        );
        let mut req = Request::get(weir.url(path));
        for (n, v) in BROWSER {
            req = req.header(n, v);
        }
        let r = send_h2(req.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(r.status, 200, "h2 {path}: {}", r.body);
    }
    for path in ATTACKS {
        let r = get(&weir.url(path), &BROWSER).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert_eq!(r.body, "forbidden\n", "no rule details in the answer");
        let mut req = Request::get(weir.url(path));
        for (n, v) in BROWSER {
            req = req.header(n, v);
        }
        let r = send_h2(req.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(r.status, 403, "h2 {path}: {}", r.body);
    }
    // The audit line names the rules, the score and what matched.
    let log = weir.wait_for_log("waf blocked (request) GET /search?q=1%27");
    let line = log
        .lines()
        .find(|l| l.contains("waf blocked (request) GET /search?q=1%27"))
        .unwrap();
    assert!(
        line.contains("942100") && line.contains("949110") && line.contains("score="),
        "{line}"
    );
}

#[tokio::test]
async fn raw_bytes_and_bodies_are_inspected() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&waf_manifest(up.addr, "", ""));
    // Quotes and traversal as the client wrote them, which no well-behaved client sends.
    for raw in [
        "GET /search?q=1'%20or%20'1'='1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: x/1\r\nAccept: */*\r\n\r\n",
        "GET /static?f=..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: shop\r\nUser-Agent: x/1\r\nAccept: */*\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop\r\nUser-Agent: () { :; }; /bin/bash -c id\r\nAccept: */*\r\n\r\n",
    ] {
        let r = exchange(weir.addr, raw.as_bytes()).await;
        assert_eq!(r.status, 403, "{raw:?}: {}", r.text);
    }
    let ok = exchange(
        weir.addr,
        b"GET /ok?x=1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: x/1\r\nAccept: */*\r\n\r\n",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        BROWSER[0],
        BROWSER[1],
    ];
    let r = post(&weir.url("/login"), &form, "user=ada&note=hello+there").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        &weir.url("/login"),
        &form,
        "user=admin%27--&pass=x%27%20or%201%3D1--",
    )
    .await;
    assert_eq!(r.status, 403, "form SQLi: {}", r.body);

    let json = [("content-type", "application/json"), BROWSER[0], BROWSER[1]];
    let r = post(
        &weir.url("/api/items"),
        &json,
        r#"{"name":"blue shoes","tags":["a","b"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        &weir.url("/api/items"),
        &json,
        r#"{"name":"x","comment":{"text":"<script>alert(1)</script>"}}"#,
    )
    .await;
    assert_eq!(r.status, 403, "JSON XSS: {}", r.body);

    let multipart = [
        ("content-type", "multipart/form-data; boundary=XyZ"),
        BROWSER[0],
        BROWSER[1],
    ];
    let part = |value: &str| {
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{value}\r\n--XyZ--\r\n"
        )
    };
    let r = post(&weir.url("/upload"), &multipart, &part("holiday photos")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        &weir.url("/upload"),
        &multipart,
        &part("<img src=x onerror=alert(1)>"),
    )
    .await;
    assert_eq!(r.status, 403, "multipart XSS: {}", r.body);
}

#[tokio::test]
async fn detection_only_passes_and_logs() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&waf_manifest(up.addr, "engine = \"detection-only\"", ""));
    let r = get(&weir.url(ATTACKS[0]), &BROWSER).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let log = weir.wait_for_log("waf detected (request)");
    assert!(log.contains("by=949110"), "{log}");
}

#[tokio::test]
async fn exclusions_lift_rules_where_the_operator_says() {
    let up = Upstream::echo("app").await;
    // A search box whose `q` may hold SQL-looking text; everywhere else the rules apply.
    let directives = "directives = '''\nSecRule REQUEST_FILENAME \"@beginsWith /search\" \
        \"id:1000,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=attack-sqli;ARGS:q\"\n'''";
    let weir = Weir::start(&waf_manifest(up.addr, directives, ""));
    let r = get(&weir.url(ATTACKS[0]), &BROWSER).await;
    assert_eq!(r.status, 200, "excluded: {}", r.body);
    let r = get(
        &weir.url(&ATTACKS[0].replace("/search", "/other")),
        &BROWSER,
    )
    .await;
    assert_eq!(r.status, 403, "not excluded: {}", r.body);
    let r = get(&weir.url(&ATTACKS[0].replace("?q=", "?name=")), &BROWSER).await;
    assert_eq!(r.status, 403, "another argument: {}", r.body);
}

#[tokio::test]
async fn a_rule_change_reloads_and_a_broken_rule_keeps_the_old_rules() {
    rule_change_reloads("init").await;
}

#[tokio::test]
async fn a_rule_change_reloads_instances_that_start_from_a_snapshot() {
    rule_change_reloads("snapshot").await;
}

/// A rule change reloads, and a broken rule keeps the old rules, with `instance-start`
/// `start`.
async fn rule_change_reloads(start: &str) {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom");
    std::fs::create_dir(&custom).unwrap();
    let rule = |word: &str| {
        format!("SecRule ARGS:x \"@streq {word}\" \"id:10001,phase:1,deny,status:451,msg:'no {word}'\"\n")
    };
    std::fs::write(custom.join("local.conf"), rule("one")).unwrap();
    let manifest = manifest(
        &[up.addr],
        &["waf"],
        // A fresh instance per call: each one loads the rules, as new instances do.
        &format!(
            "[filters.waf]\nplugin = \"waf.wasm\"\nfiles = {{ \"/custom\" = \"custom\" }}\n\
             isolation = \"per-request\"\ninstance-start = \"{start}\"\n\
             config = {{ rules = [\"/custom/*.conf\"] }}\n"
        ),
    );
    let weir = Weir::start_in(dir, &manifest);
    assert_eq!(get(&weir.url("/?x=one"), &[]).await.status, 451);
    assert_eq!(get(&weir.url("/?x=two"), &[]).await.status, 200);

    std::fs::write(custom.join("local.conf"), rule("two")).unwrap();
    weir.wait_for_log("a file the manifest names changed: reloading");
    let mut statuses = (0, 0);
    for _ in 0..200 {
        statuses = (
            get(&weir.url("/?x=one"), &[]).await.status.as_u16(),
            get(&weir.url("/?x=two"), &[]).await.status.as_u16(),
        );
        if statuses == (200, 451) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(statuses, (200, 451), "the changed rule is in force");

    // A syntax error: refused with the file and line, the last good rules keep serving.
    std::fs::write(
        custom.join("local.conf"),
        format!(
            "{}\nSecRule ARGS \"@rx (\" \"id:10002,phase:1,deny\"\n",
            rule("two")
        ),
    )
    .unwrap();
    let log = weir.wait_for_log("/custom/local.conf:3: SecRule: bad regular expression");
    assert!(log.contains("reload refused"), "{log}");
    // The last good rules keep serving, in instances made after the change too: they read
    // the files as they were when their filter loaded.
    let mut calls = Vec::new();
    for i in 0..24 {
        let url = weir.url(if i % 2 == 0 { "/?x=two" } else { "/?x=one" });
        calls.push(tokio::spawn(
            async move { (i, get(&url, &[]).await.status) },
        ));
    }
    for call in calls {
        let (i, status) = call.await.unwrap();
        let want = if i % 2 == 0 { 451 } else { 200 };
        assert_eq!(status, want, "request {i}: {}", weir.logs());
    }
}

#[tokio::test]
async fn crs_runs_in_instances_that_start_from_a_snapshot() {
    // `init` (reading and compiling the CRS) runs once at load; every request here gets a
    // fresh instance that starts from the state it left, and decides as the CRS does.
    let up = Upstream::echo("app").await;
    let manifest = waf_manifest(up.addr, "", "").replace(
        "cpu-deadline = \"500ms\"\n",
        "cpu-deadline = \"500ms\"\ninstance-start = \"snapshot\"\nisolation = \"per-request\"\n",
    );
    let weir = Weir::start(&format!("admin = \"127.0.0.1:0\"\n{manifest}"));
    for path in ORDINARY {
        let r = get(&weir.url(path), &BROWSER).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    for path in ATTACKS {
        let r = get(&weir.url(path), &BROWSER).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        let mut req = Request::get(weir.url(path));
        for (n, v) in BROWSER {
            req = req.header(n, v);
        }
        let r = send_h2(req.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(r.status, 403, "h2 {path}: {}", r.body);
    }
    // Raw bytes no well-behaved client sends, decided the same from a snapshot.
    let raw = exchange(
        weir.addr,
        b"GET /search?q=1'%20or%20'1'='1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: x/1\r\nAccept: */*\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 403, "{}", raw.text);
    let status = weir.status().await;
    let waf = &status["filters"][0];
    assert_eq!(waf["instance_start"], "snapshot", "{status}");
    assert!(waf["snapshot_ms"].as_f64().is_some(), "{status}");
    let made = waf["instances_created"].as_u64().unwrap_or(0);
    let requests = (ORDINARY.len() + 2 * ATTACKS.len() + 1) as u64;
    assert!(made >= requests, "a fresh instance per request: {status}");
    // The state the CRS left in memory is what each instance starts with.
    assert!(
        waf["instance_memory_bytes"].as_u64().unwrap_or(0) > 4 << 20,
        "{status}"
    );
    assert_eq!(
        waf["metrics"]["counters"]["blocked"].as_u64(),
        Some(2 * ATTACKS.len() as u64 + 1),
        "{status}"
    );
}

#[test]
fn weir_check_names_the_broken_rule_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/a.conf"),
        "SecRuleEngine On\nSecRule ARGS \"@rx a\" \"id:1,phase:2,deny\"\nSecRule ARGS \"@rx b\" \"id:1,phase:2,deny\"\n",
    )
    .unwrap();
    let (ok, _, err) = check_in(
        dir.path(),
        &manifest(
            &["127.0.0.1:9".parse().unwrap()],
            &["waf"],
            "[filters.waf]\nplugin = \"waf.wasm\"\nfiles = { \"/rules\" = \"rules\" }\n\
             config = { rules = [\"/rules/a.conf\"] }\n",
        ),
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("/rules/a.conf:3: SecRule: rule id 1 is already used at /rules/a.conf:2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_burst_at_startup_is_served_while_instances_load_their_rules() {
    // Each new instance reads and compiles the whole CRS: a burst of requests must not fail
    // for it, and no worker should meet it on the request path: a filter this slow to
    // start has an instance for every worker (one per CPU) before the proxy serves.
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&format!(
        "admin = \"127.0.0.1:0\"\n{}",
        waf_manifest(up.addr, "", "")
    ));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let status = weir.status().await;
    assert_eq!(
        status["filters"][0]["instances_created"].as_u64(),
        Some(cpus),
        "{status}"
    );
    // What an instance costs is reported: the CRS takes milliseconds to load and megabytes
    // of linear memory (a rule-less filter takes well under a millisecond and 1-2 MiB).
    let start_ms = status["filters"][0]["instance_start_ms"]
        .as_f64()
        .unwrap_or(0.0);
    let memory = status["filters"][0]["instance_memory_bytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(start_ms > 5.0, "{status}");
    assert!(memory > 4 << 20, "{status}");
    let client = keep_alive_client();
    let mut calls = Vec::new();
    for i in 0..48 {
        let path = if i % 4 == 0 { ATTACKS[0] } else { ORDINARY[1] };
        let mut req = Request::get(weir.url(path));
        for (n, v) in BROWSER {
            req = req.header(n, v);
        }
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            (i, client.request(req).await.map(|r| r.status().as_u16()))
        }));
    }
    for call in calls {
        let (i, status) = call.await.unwrap();
        let want = if i % 4 == 0 { 403 } else { 200 };
        assert_eq!(status.ok(), Some(want), "request {i}: {}", weir.logs());
    }
    let status = weir.status().await;
    assert_eq!(
        status["filters"][0]["instances_created"].as_u64(),
        Some(cpus),
        "the burst found an instance on every worker: {status}"
    );
}

#[tokio::test]
async fn response_phases_see_the_response_and_what_the_request_phase_set() {
    // Rules of their own, no CRS: a value set in phase 1 is read in phase 4, where the
    // response body (a text page repeating the request's query) is inspected.
    let up = Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        let query = req.uri().query().unwrap_or_default().to_string();
        http::Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .body(Full::new(Bytes::from(format!("<p>{query}</p>"))))
            .expect("response")
    })
    .await;
    let rules = r#"SecResponseBodyAccess On
SecRule REQUEST_HEADERS:x-tenant "@rx ^(\w+)$" "id:1,phase:1,pass,nolog,capture,setvar:tx.tenant=%{tx.1}"
SecRule RESPONSE_STATUS "@streq 200" "id:2,phase:3,pass,log,msg:'status seen'"
SecRule RESPONSE_BODY "@contains leaked-%{tx.tenant}" "id:3,phase:4,deny,status:502,msg:'leak of %{tx.tenant}'"
"#;
    let manifest = manifest(
        &[up.addr],
        &["waf"],
        &format!(
            "[filters.waf]\nplugin = \"waf.wasm\"\n[filters.waf.config]\ndirectives = '''\n{rules}'''\n"
        ),
    );
    let weir = Weir::start(&manifest);
    let r = get(&weir.url("/page?x=leaked-acme"), &[("x-tenant", "acme")]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body, "forbidden\n", "the upstream's body is replaced");
    let log = weir.wait_for_log("waf blocked (response)");
    assert!(
        log.contains("leak of acme") && log.contains("status seen"),
        "{log}"
    );
    // Another tenant's name in the body is not this tenant's leak.
    let r = get(&weir.url("/page?x=leaked-acme"), &[("x-tenant", "zeta")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("leaked-acme"), "{}", r.body);
}

#[tokio::test]
async fn instances_are_prepared_for_the_workers_there_are() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&format!(
        "workers = 1\nadmin = \"127.0.0.1:0\"\n{}",
        waf_manifest(up.addr, "", "")
    ));
    let status = weir.status().await;
    assert_eq!(
        status["filters"][0]["instances_created"].as_u64(),
        Some(1),
        "one worker, one instance: {status}"
    );
    assert_eq!(get(&weir.url(ATTACKS[0]), &BROWSER).await.status, 403);
}
