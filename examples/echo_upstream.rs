//! Demo upstream: answers every request with what it received (request line, headers, body)
//! as plain text, so the demo shows what Weir's filters changed.
//!
//! Usage: `echo_upstream <ip:port> <name>`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

async fn echo(name: &'static str, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let mut text = format!(
        "upstream {name} received:\n{} {}\n",
        req.method(),
        req.uri()
    );
    for (n, v) in req.headers() {
        text.push_str(&format!(
            "  {n}: {}\n",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if !body.is_empty() {
        text.push_str(&format!("body: {}\n", String::from_utf8_lossy(&body)));
    }
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut().insert(
        "server",
        hyper::header::HeaderValue::from_static("echo-upstream"),
    );
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let name: &'static str = Box::leak(
        args.next()
            .unwrap_or_else(|| "echo".into())
            .into_boxed_str(),
    );
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo upstream {name} on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let svc =
                service_fn(move |req| async move { Ok::<_, Infallible>(echo(name, req).await) });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
