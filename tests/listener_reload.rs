//! Listeners follow the manifest on reload, without a restart: a listener added is bound on
//! every worker and serves, one removed stops accepting while its requests in flight finish,
//! one whose settings change (TLS on, trusted proxies) keeps its socket and applies them to
//! new connections, and a listener that cannot be bound refuses the whole reload.

mod harness;
use harness::pki::*;
use harness::*;
use std::net::SocketAddr;
use std::time::Duration;

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `listeners` (TOML tables' bodies) in front of `up`, with an admin endpoint.
fn with_listeners(up: SocketAddr, listeners: &[String]) -> String {
    let mut m = String::from("admin = \"127.0.0.1:0\"\nworkers = 2\n\n");
    for l in listeners {
        m.push_str(&format!("[[listeners]]\n{l}\n\n"));
    }
    m.push_str(&format!(
        "[upstreams.app]\ntargets = [\"{up}\"]\n\n[[routes]]\nupstream = \"app\"\n"
    ));
    m
}

/// Write `manifest` (the proxy watches it) and wait until the reload took or was refused.
async fn reload(weir: &Weir, manifest: &str) -> serde_json::Value {
    let before = weir.status().await;
    let (generation, failed) = (
        before["generation"].as_u64(),
        before["reloads"]["failed"].as_u64(),
    );
    std::fs::write(weir.manifest_path(), expand(manifest)).unwrap();
    weir.wait_for_status("the reload done", |s| {
        s["generation"].as_u64() > generation || s["reloads"]["failed"].as_u64() > failed
    })
    .await
}

async fn status_at(addr: SocketAddr, path: &str) -> Option<u16> {
    let url = format!("http://{addr}{path}");
    let req = http::Request::get(&url)
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), keep_alive_client().request(req)).await {
        Ok(Ok(r)) => Some(r.status().as_u16()),
        _ => None,
    }
}

#[tokio::test]
async fn listeners_are_added_changed_and_removed_by_a_reload() {
    let up = Upstream::echo("app").await;
    let slow = Upstream::slow(Duration::from_millis(800)).await;
    let (p1, p2) = (free_port(), free_port());
    let first = format!("address = \"127.0.0.1:{p1}\"");
    let second = format!("address = \"127.0.0.1:{p2}\"");
    let weir = Weir::start(&with_listeners(up.addr, std::slice::from_ref(&first)));
    let (a1, a2): (SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{p1}").parse().unwrap(),
        format!("127.0.0.1:{p2}").parse().unwrap(),
    );
    assert_eq!(status_at(a1, "/").await, Some(200));
    assert_eq!(status_at(a2, "/").await, None, "nothing there yet");

    // Added: served at once, by every worker (many connections all answered).
    let s = reload(
        &weir,
        &with_listeners(up.addr, &[first.clone(), second.clone()]),
    )
    .await;
    assert_eq!(s["reloads"]["failed"], 0, "{s:#}");
    for _ in 0..20 {
        assert_eq!(status_at(a2, "/").await, Some(200));
    }
    assert_eq!(status_at(a1, "/").await, Some(200));
    assert!(weir
        .logs()
        .contains(&format!("now listening on http://{a2}")));

    // Removed: requests in flight on it finish; new connections are refused at once, while
    // a connection accepted before is still being served (its socket is closed, not kept
    // until its last connection ends).
    let slow_manifest = |ls: &[String]| with_listeners(slow.addr, ls);
    reload(&weir, &slow_manifest(&[first.clone(), second.clone()])).await;
    let in_flight = tokio::spawn(async move { status_at(a1, "/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = tokio::spawn(async move { status_at(a1, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = reload(&weir, &slow_manifest(std::slice::from_ref(&second))).await;
    assert_eq!(s["reloads"]["failed"], 0, "{s:#}");
    assert_eq!(
        in_flight.await.unwrap(),
        Some(200),
        "in flight on the removed listener"
    );
    assert!(
        !later.is_finished(),
        "the later request is still being served"
    );
    assert!(
        tokio::net::TcpStream::connect(a1).await.is_err(),
        "still accepting"
    );
    assert_eq!(
        later.await.unwrap(),
        Some(200),
        "the later one finishes too"
    );
    assert_eq!(status_at(a2, "/").await, Some(200));

    // Refused as a whole: a new listener on a taken port names itself; nothing changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = format!("address = \"{}\"", taken.local_addr().unwrap());
    let s = reload(
        &weir,
        &slow_manifest(&[second.clone(), first.clone(), busy]),
    )
    .await;
    assert_eq!(s["reloads"]["failed"], 1, "{s:#}");
    let why = s["reloads"]["last_error"].as_str().unwrap();
    assert!(
        why.contains("listeners[2]: cannot listen on") && why.contains("weir.toml:"),
        "{why}"
    );
    assert!(
        tokio::net::TcpStream::connect(a1).await.is_err(),
        "half applied"
    );
    assert_eq!(status_at(a2, "/").await, Some(200));
}

#[tokio::test]
async fn tls_is_turned_on_for_a_listener_without_closing_its_socket() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.leaf(&["a.test"], dir.path(), "a");
    let port = free_port();
    let plain = format!("address = \"127.0.0.1:{port}\"");
    let weir = Weir::start_in(dir, &with_listeners(up.addr, std::slice::from_ref(&plain)));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A connection opened before the change stays plain HTTP.
    let (mut before, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    let get = || {
        http::Request::get("/")
            .header("host", "a.test")
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .unwrap()
    };
    assert_eq!(before.send_request(get()).await.unwrap().status(), 200);

    let tls = format!(
        "{plain}\ntls = {{ certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}] }}\n\
         trusted-proxies = [\"127.0.0.1/32\"]"
    );
    let s = reload(&weir, &with_listeners(up.addr, &[tls])).await;
    assert_eq!(s["reloads"]["failed"], 0, "{s:#}");
    let conn = connect_as(addr, "a.test", &[], None)
        .await
        .expect("TLS now");
    let r = get_over_with(conn, "a.test", "/", &[("x-forwarded-for", "203.0.113.9")])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = text(r).await;
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    assert!(
        body.contains("x-real-ip: 203.0.113.9\n"),
        "trusted-proxies applied: {body}"
    );
    assert_eq!(
        status_at(addr, "/").await,
        None,
        "plain HTTP on the TLS listener"
    );
    assert_eq!(
        before.send_request(get()).await.unwrap().status(),
        200,
        "the connection from before keeps its settings"
    );
    let metrics = get_metrics(&weir).await;
    assert!(
        metrics.contains(&format!(
            "weir_connections_open{{listener=\"{addr}\",tls=\"true\"}}"
        )),
        "{metrics}"
    );
}

async fn get_metrics(weir: &Weir) -> String {
    get(&format!("http://{}/metrics", weir.admin.unwrap()), &[])
        .await
        .body
}

#[tokio::test]
async fn a_reload_refused_for_its_listeners_leaves_the_cache_as_it_was() {
    let up = Upstream::echo("app").await;
    let port = free_port();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let manifest = |memory: &str, extra_listener: Option<SocketAddr>| {
        let mut listeners = vec![format!("address = \"127.0.0.1:{port}\"")];
        if let Some(addr) = extra_listener {
            listeners.push(format!("address = \"{addr}\""));
        }
        with_listeners(up.addr, &listeners).replace(
            "[[routes]]\nupstream = \"app\"\n",
            &format!(
                "[cache-zones.main]\nmemory = \"{memory}\"\n\n\
                 [[routes]]\nupstream = \"app\"\ncache = {{ zone = \"main\", default-ttl = \"1h\" }}\n"
            ),
        )
    };
    let weir = Weir::start(&manifest("1MiB", None));
    let url = weir.url("/page");
    let status = |r: &Reply| r.header("cache-status").unwrap_or("").to_string();
    assert!(status(&get(&url, &[]).await).contains("fwd=miss"));
    assert!(status(&get(&url, &[]).await).contains("hit"));
    // Refused (a taken port), with a zone of other settings: nothing of it may stay.
    let s = reload(&weir, &manifest("2MiB", Some(taken.local_addr().unwrap()))).await;
    assert_eq!(s["reloads"]["failed"], 1, "{s:#}");
    // The next reload keeps the zone that serves, entries and all.
    let s = reload(&weir, &format!("{}\n# again\n", manifest("1MiB", None))).await;
    assert_eq!(s["reloads"]["failed"], 1, "{s:#}");
    assert!(
        status(&get(&url, &[]).await).contains("hit"),
        "the serving zone was replaced by the refused reload's"
    );
}
