//! HTTP/2: cleartext (prior knowledge) clients are served through the same path; h2c upstreams
//! are spoken to over HTTP/2, with gRPC-style trailers (and `TE: trailers`) passed through.

mod harness;
use bytes::Bytes;
use harness::*;
use http_body_util::Full;

#[tokio::test]
async fn h2c_client_through_the_proxy() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["tag"],
        "[filters.tag]\nplugin = \"headers.wasm\"\nconfig = { response = { set = { \"x-h2\" = \"yes\" } } }\n",
    ));
    let req = http::Request::get(format!("http://{}/over/h2?q=1", weir.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send_h2(req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-h2"), Some("yes"));
    assert!(r.body.starts_with("GET /over/h2?q=1\n"), "{}", r.body);
    // The upstream (HTTP/1.1) gets the :authority as Host (a disagreeing `host` is refused:
    // see canonical_request.rs).
    let host_line = format!("host: {}\n", weir.addr);
    assert!(r.body.contains(&host_line), "{}", r.body);
}

/// An HTTP/2 (h2c) upstream answering like a gRPC server: `content-type: application/grpc`,
/// a body, then trailers `grpc-status: 0` and `x-echo-te: <the te header it got>`.
async fn grpc_like_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use http_body_util::BodyExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let te = req
                            .headers()
                            .get("te")
                            .cloned()
                            .unwrap_or(http::HeaderValue::from_static("none"));
                        let version = format!("{:?}", req.version());
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        trailers.insert("x-echo-te", te);
                        let body = http_body_util::Full::new(bytes::Bytes::from(version))
                            .with_trailers(async move {
                                Some(Ok::<_, std::convert::Infallible>(trailers))
                            });
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap(),
                        )
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn h2c_upstreams_get_http2_and_grpc_trailers_come_back() {
    use http_body_util::BodyExt as _;
    let (up, _task) = grpc_like_upstream().await;
    let m = manifest(&[up], &[], "").replace(
        &format!("targets = [\"{up}\"]"),
        &format!("targets = [\"{up}\"]\nprotocol = \"h2c\""),
    );
    let weir = Weir::start(&m);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(weir.url("/pkg.Service/Method"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\0",
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers came through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(
        trailers["x-echo-te"], "trailers",
        "TE: trailers reaches the upstream"
    );
    assert_eq!(
        &collected.to_bytes()[..],
        b"HTTP/2.0",
        "the upstream was spoken to over HTTP/2"
    );
}

#[tokio::test]
async fn rapid_reset_and_stream_floods_close_the_abusing_connection_only() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &[], "").replace(
        "[[listeners]]",
        "http2-max-concurrent-streams = 10\n\n[[listeners]]",
    ));
    let tcp = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    // Open streams and reset each at once (CVE-2023-44487), many more than allowed.
    for _ in 0..500 {
        let req = http::Request::get(format!("http://{}/", weir.addr))
            .body(())
            .unwrap();
        match client.send_request(req, false) {
            Ok((_, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => break,
        }
        match client.ready().await {
            Ok(c) => client = c,
            Err(_) => break,
        }
    }
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), conn)
        .await
        .expect("the proxy closes an abusing connection");
    let err = ended.unwrap().expect_err("closed with an error (GOAWAY)");
    // GOAWAY, or — when the client was still writing as the proxy closed — a write on the
    // closed socket: either way the proxy ended this connection.
    let closed_under_us = err.get_io().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        )
    });
    assert!(
        err.to_string().to_lowercase().contains("calm") || err.is_go_away() || closed_under_us,
        "{err}"
    );
    // Everyone else is still served.
    let r = send_h2(
        http::Request::get(weir.url("/"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
}
