//! `@detectSQLi` and `@detectXSS` use `libinjectionrs`, a Rust port of libinjection. This
//! test runs it and the C libinjection that ModSecurity v3 carries (exported by Debian's
//! libmodsecurity3; `libinjection/detect.c` calls it) on the same generated inputs: SQL,
//! HTML and JavaScript fragments and ordinary text, spliced together by a seeded generator,
//! and requires the same verdicts (and SQL fingerprints) on every input.
//!
//! Needs `cc` and `libmodsecurity-dev` (`.ci/run` installs them).

mod common;

const PIECES: &[&str] = &[
    "1",
    "0",
    "-1",
    "42",
    "'",
    "\"",
    "`",
    ")",
    "(",
    " ",
    "  ",
    "\t",
    "\n",
    ";",
    "--",
    "#",
    "/*",
    "*/",
    "=",
    "<>",
    "!=",
    "||",
    "&&",
    ",",
    ".",
    "OR",
    "or",
    "AND",
    "and",
    "UNION",
    "union",
    "SELECT",
    "select",
    "ALL",
    "FROM",
    "from",
    "WHERE",
    "users",
    "password",
    "admin",
    "sleep(5)",
    "benchmark(1000000,md5(1))",
    "version()",
    "@@version",
    "NULL",
    "CHAR(65)",
    "0x41",
    "CONCAT(",
    "DROP TABLE",
    "INSERT INTO",
    "VALUES",
    "LIKE",
    "'%'",
    "waitfor delay '0:0:5'",
    "ORDER BY 1",
    "GROUP BY",
    "HAVING 1=1",
    "LIMIT 1",
    "xp_cmdshell",
    "<",
    ">",
    "/>",
    "<script>",
    "</script>",
    "<img",
    "src=x",
    "onerror=",
    "onload=",
    "alert(1)",
    "javascript:",
    "<svg",
    "<iframe",
    "<body",
    "style=",
    "expression(",
    "href=",
    "<a",
    "data:text/html,",
    "vbscript:",
    "&#x3C;",
    "&lt;",
    "document.cookie",
    "<!--",
    "-->",
    "blue",
    "shoes",
    "hello world",
    "O'Brien",
    "don't",
    "café",
    "München",
    "東京",
    "e-mail",
    "user@example.com",
    "2026-12-06",
    "page=2",
    "q=a+b",
    "100%",
    "a/b/c",
    "C:\\temp",
];

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn inputs(n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out: Vec<Vec<u8>> = PIECES.iter().map(|p| p.as_bytes().to_vec()).collect();
    while out.len() < n {
        let parts = 1 + rng.below(8);
        let mut s = Vec::new();
        for _ in 0..parts {
            s.extend_from_slice(PIECES[rng.below(PIECES.len())].as_bytes());
            if rng.below(3) == 0 {
                s.push(b' ');
            }
        }
        out.push(s);
    }
    out
}

#[test]
fn the_port_agrees_with_the_c_library() {
    let dir = tempfile::tempdir().unwrap();
    let exe = common::build_c(dir.path(), "libinjection/detect.c", "detect");
    let cases = inputs(20_000);
    let mut input = String::new();
    for c in &cases {
        for b in c {
            input.push_str(&format!("{b:02x}"));
        }
        input.push('\n');
    }
    let theirs: Vec<String> = common::run(&exe, &[], input)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(theirs.len(), cases.len(), "one verdict per input");
    let (mut sqli_hits, mut xss_hits, mut differ) = (0, 0, Vec::new());
    for (c, t) in cases.iter().zip(&theirs) {
        let s = libinjectionrs::detect_sqli(c);
        let fp = match (&s.fingerprint, s.is_injection()) {
            (Some(f), true) => f.to_string(),
            _ => "-".to_string(),
        };
        let x = libinjectionrs::detect_xss(c).is_injection();
        let ours = format!("{} {fp} {}", u8::from(s.is_injection()), u8::from(x));
        sqli_hits += usize::from(s.is_injection());
        xss_hits += usize::from(x);
        if &ours != t {
            differ.push(format!(
                "  {:?}: C {t}, port {ours}",
                String::from_utf8_lossy(c)
            ));
        }
    }
    println!(
        "{} inputs: {sqli_hits} SQL injections, {xss_hits} XSS by the port; {} differ",
        cases.len(),
        differ.len()
    );
    assert!(
        sqli_hits > 1000 && xss_hits > 1000,
        "the inputs exercise both detectors"
    );
    assert!(
        differ.is_empty(),
        "{} of {} inputs differ:\n{}",
        differ.len(),
        cases.len(),
        differ
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
