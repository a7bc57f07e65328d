//! Routing by host and path prefix, most specific first; 404 when nothing matches.

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
