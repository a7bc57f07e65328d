//! The `ip-filter` filter admits and refuses by the trusted client address: the TCP peer, or
//! the client a `trusted-proxies` peer names in `X-Forwarded-For` — never an address an
//! untrusted client claims — over HTTP/1.1 (raw bytes too) and HTTP/2.

mod harness;
use harness::*;
use std::io::{Read, Write};

const FILTER: &str = r#"
[filters.office]
plugin = "ip-filter.wasm"
config = { allow = ["10.0.0.0/8", "2001:db8::/32"], deny = ["10.6.6.0/24"], body = "not from here\n" }
"#;

fn get_h2(url: &str, xff: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(url)
        .header("x-forwarded-for", xff)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn clients_named_by_a_trusted_proxy_are_admitted_or_refused_by_their_address() {
    let up = Upstream::echo("app").await;
    let m = manifest(&[up.addr], &["office"], FILTER).replace(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\ntrusted-proxies = [\"127.0.0.0/8\"]",
    );
    let weir = Weir::start(&m);
    let cases = [
        ("10.1.2.3", 200),
        ("2001:db8::5", 200),
        ("10.6.6.6", 403),
        ("192.0.2.1", 403),
        ("2001:db9::1", 403),
        // The right-most untrusted hop is the client, whatever it put before.
        ("10.1.2.3, 192.0.2.1", 403),
        ("192.0.2.1, 10.1.2.3", 200),
    ];
    for (xff, status) in cases {
        let r = get(&weir.url("/"), &[("x-forwarded-for", xff)]).await;
        assert_eq!(r.status, status, "h1 {xff}");
        let r2 = send_h2(get_h2(&weir.url("/"), xff)).await;
        assert_eq!(r2.status, status, "h2 {xff}");
        if status == 403 {
            assert_eq!(r.body, "not from here\n");
            assert_eq!(r.header("x-upstream"), None, "the upstream was not called");
        } else {
            assert_eq!(r.header("x-upstream"), Some("app"));
        }
    }
    weir.wait_for_log("filters=office:responded");
}

#[tokio::test]
async fn an_untrusted_client_cannot_claim_an_allowed_address() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &["office"], FILTER));
    for header in ["x-forwarded-for", "x-real-ip", "forwarded"] {
        let value = match header {
            "forwarded" => "for=10.1.2.3",
            _ => "10.1.2.3",
        };
        let r = get(&weir.url("/"), &[(header, value)]).await;
        assert_eq!(r.status, 403, "{header} from 127.0.0.1 is not believed");
        let r2 = send_h2(
            http::Request::get(weir.url("/"))
                .header(header, value)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r2.status, 403, "h2 {header}");
    }
    // Raw bytes: duplicated and odd forwarding headers change nothing.
    let addr = weir
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.2.3\r\nX-Forwarded-For: 10.1.2.4\r\n\
          X-Real-IP: 10.0.0.1\r\nForwarded: for=\"[2001:db8::1]\"\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[tokio::test]
async fn a_bad_list_is_refused_at_load_with_the_entry() {
    let up = Upstream::echo("app").await;
    let m = manifest(
        &[up.addr],
        &["office"],
        "[filters.office]\nplugin = \"ip-filter.wasm\"\nconfig = { allow = [\"10.0.0.0/8\", \"10.1.2.3/8\"] }\n",
    );
    let (ok, _, err) = check(&m);
    assert!(!ok);
    let expected = "filters.office: init refused the config: allow[1]: \"10.1.2.3/8\" has bits \
                    set past its /8 prefix (the network is 10.0.0.0/8)";
    assert!(err.contains(expected), "{err}");
}
