//! PROXY protocol listeners: the v1 or v2 header a TCP load balancer sends names the client,
//! which X-Forwarded-For, the access log and filters then see; a connection without a
//! valid header is closed unanswered.

mod harness;
use harness::raw::{exchange, Recorder};
use harness::*;

fn manifest(up: &Recorder) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy-protocol = true\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\nupstream = \"app\"\n",
        up.addr
    )
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 6.6.6.6\r\n\r\n";

fn v2_tcp4(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    b.extend_from_slice(&src);
    b.extend_from_slice(&[127, 0, 0, 1]);
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(&8080u16.to_be_bytes());
    b
}

#[tokio::test]
async fn the_header_names_the_client() {
    let up = Recorder::start().await;
    let weir = Weir::start(&manifest(&up));

    let mut v1 = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 8080\r\n".to_vec();
    v1.extend_from_slice(GET);
    let r = exchange(weir.addr, &v1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = up.only().to_ascii_lowercase();
    assert!(
        seen.contains("\r\nx-forwarded-for: 198.51.100.7\r\n"),
        "{seen}"
    );
    weir.wait_for_log("client=198.51.100.7");

    up.clear();
    let mut v2 = v2_tcp4([203, 0, 113, 9], 50000);
    v2.extend_from_slice(GET);
    let r = exchange(weir.addr, &v2).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(up
        .only()
        .to_ascii_lowercase()
        .contains("\r\nx-forwarded-for: 203.0.113.9\r\n"));

    // A balancer's health check (LOCAL) keeps the TCP peer.
    up.clear();
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend_from_slice(GET);
    assert_eq!(exchange(weir.addr, &local).await.status, 200);
    assert!(up
        .only()
        .to_ascii_lowercase()
        .contains("\r\nx-forwarded-for: 127.0.0.1\r\n"));
}

#[tokio::test]
async fn connections_without_a_valid_header_are_closed_unanswered() {
    let up = Recorder::start().await;
    let weir = Weir::start(&manifest(&up));
    for bad in [
        GET.to_vec(),
        [&b"PROXY TCP4 198.51.100.7 127.0.0.1 40000\r\n"[..], GET].concat(),
        [&b"PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n"[..], GET].concat(),
        [
            &b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04"[..],
            &[1, 2, 3, 4],
            GET,
        ]
        .concat(),
    ] {
        let r = exchange(weir.addr, &bad).await;
        assert_eq!(r.status, 0, "answered {:?}", String::from_utf8_lossy(&bad));
        assert!(r.closed);
    }
    assert!(up.requests().is_empty(), "nothing reached the upstream");

    let (ok, _, err) = check(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy-protocol = \"yes\"\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"app\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("weir.toml:3:18") && err.contains("expected a boolean"),
        "{err}"
    );
}
