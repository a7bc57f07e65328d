//! Routing: host (exact, wildcard), path (prefix, exact, regex), method and header matches,
//! most specific first; weighted backends; 404 when nothing matches.

mod harness;
use harness::*;

#[tokio::test]
async fn routes_by_host_and_path_and_answers_404_otherwise() {
    let default = Upstream::echo("default").await;
    let api = Upstream::echo("api").await;
    let example = Upstream::echo("example").await;
    let weir = Weir::start(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[upstreams.default]
targets = ["{}"]
[upstreams.api]
targets = ["{}"]
[upstreams.example]
targets = ["{}"]

[[routes]]
host = "www.test"
path = "/"
upstream = "default"
[[routes]]
host = "www.test"
path = "/api"
upstream = "api"
[[routes]]
host = "Example.Test"
upstream = "example"
"#,
        default.addr, api.addr, example.addr
    ));

    let cases = [
        ("www.test", "/", Some("default")),
        ("www.test", "/api", Some("api")),
        ("www.test", "/api/v1/items?x=1", Some("api")),
        ("www.test", "/apix", Some("default")),
        ("example.test:8080", "/api", Some("example")),
        ("other.test", "/", None),
    ];
    for (host, path, want) in cases {
        let r = get(&weir.url(path), &[("host", host)]).await;
        match want {
            Some(name) => {
                assert_eq!(r.status, 200, "{host}{path}");
                assert_eq!(r.header("x-upstream"), Some(name), "{host}{path}");
                assert!(r.body.starts_with(&format!("GET {path}\n")), "{}", r.body);
            }
            None => {
                assert_eq!(r.status, 404, "{host}{path}");
                assert_eq!(r.body, "404 Not Found\n");
            }
        }
    }
    weir.wait_for_log("status=404");
}

#[tokio::test]
async fn wildcard_hosts_exact_and_regex_paths_methods_and_headers() {
    let ups = [
        Upstream::echo("any").await,
        Upstream::echo("wild").await,
        Upstream::echo("exact").await,
        Upstream::echo("regex").await,
        Upstream::echo("writes").await,
        Upstream::echo("canary").await,
    ];
    let mut m = String::from("[[listeners]]\naddress = \"127.0.0.1:0\"\n\n");
    for (u, name) in ups
        .iter()
        .zip(["any", "wild", "exact", "regex", "writes", "canary"])
    {
        m.push_str(&format!("[upstreams.{name}]\ntargets = [\"{}\"]\n", u.addr));
    }
    m.push_str(
        r#"
[[routes]]
upstream = "any"
[[routes]]
host = "*.shop.test"
upstream = "wild"
[[routes]]
path-exact = "/health"
upstream = "exact"
[[routes]]
path-regex = "^/items/[0-9]+$"
upstream = "regex"
[[routes]]
path = "/items"
methods = ["POST", "PUT"]
upstream = "writes"
[[routes]]
headers = { x-canary = "yes" }
upstream = "canary"
"#,
    );
    let weir = Weir::start(&m);
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 9] = [
        ("GET", "/", &[], "any"),
        ("GET", "/", &[("host", "eu.shop.test")], "wild"),
        ("GET", "/", &[("host", "shop.test")], "any"),
        ("GET", "/health", &[], "exact"),
        ("GET", "/health/x", &[], "any"),
        ("GET", "/items/42", &[], "regex"),
        ("GET", "/items/abc", &[], "any"),
        ("POST", "/items/abc", &[], "writes"),
        ("GET", "/x", &[("x-canary", "yes")], "canary"),
    ];
    for (method, path, headers, want) in cases {
        let mut b = http::Request::builder().method(method).uri(weir.url(path));
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let r = send(
            b.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(
            r.header("x-upstream"),
            Some(want),
            "{method} {path} {headers:?}"
        );
    }
}

#[tokio::test]
async fn weighted_backends_split_traffic_and_weight_zero_drains() {
    let blue = Upstream::echo("blue").await;
    let green = Upstream::echo("green").await;
    let old = Upstream::echo("old").await;
    let weir = Weir::start(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
[upstreams.blue]
targets = ["{}"]
[upstreams.green]
targets = ["{}"]
[upstreams.old]
targets = ["{}"]

[[routes]]
backends = [
    {{ upstream = "blue", weight = 3 }},
    {{ upstream = "green", weight = 1 }},
    {{ upstream = "old", weight = 0 }},
]
[[routes]]
path = "/drained"
backends = [{{ upstream = "old", weight = 0 }}, {{ upstream = "blue", weight = 1 }}]
"#,
        blue.addr, green.addr, old.addr
    ));
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let r = get(&weir.url("/"), &[]).await;
        *counts
            .entry(r.header("x-upstream").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.get("blue"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("green"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("old"), None, "weight 0 gets nothing: {counts:?}");
    for _ in 0..5 {
        let r = get(&weir.url("/drained"), &[]).await;
        assert_eq!(r.header("x-upstream"), Some("blue"));
    }
}
