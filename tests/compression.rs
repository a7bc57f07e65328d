//! Response compression end to end: negotiation, the encodings × types × statuses ×
//! existing encodings matrix, streaming, `Vary`, weakened ETags, and a cached response
//! compressed on its way out.

mod harness;
use harness::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use std::collections::HashMap;
use std::io::Read;

/// Answers with `n` bytes of text (default 4000) and the query's `ct`, `ce`, `status`,
/// `cc`, `etag`.
async fn origin() -> Upstream {
    Upstream::start(|req: Request<Incoming>| async move {
        let q: HashMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.replace("%2F", "/")
                        .replace("%3D", "=")
                        .replace("%2B", "+")
                        .replace("%22", "\""),
                )
            })
            .collect();
        let n: usize = q.get("n").map_or(4000, |n| n.parse().unwrap());
        let body: String = (0..n).map(|i| (b'a' + (i % 7) as u8) as char).collect();
        let mut b =
            Response::builder().status(q.get("status").map_or(200, |s| s.parse::<u16>().unwrap()));
        for (key, name) in [
            ("ct", "content-type"),
            ("ce", "content-encoding"),
            ("cc", "cache-control"),
            ("etag", "etag"),
        ] {
            if let Some(v) = q.get(key) {
                b = b.header(name, v.as_str());
            }
        }
        b.body(Full::new(Bytes::from(body))).unwrap()
    })
    .await
}

fn manifest_for(up: &Upstream, compress: &str) -> String {
    format!(
        "admin = \"127.0.0.1:0\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [cache-zones.main]\nmemory = \"8MiB\"\n\n\
         [[routes]]\npath = \"/cached\"\nupstream = \"app\"\ncompress = {compress}\ncache = {{ zone = \"main\" }}\n\n\
         [[routes]]\nupstream = \"app\"\ncompress = {compress}\n",
        up.addr
    )
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(body).unwrap(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

/// GET with raw bytes kept (the harness's `Reply` body is text).
async fn fetch(url: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    let client = keep_alive_client();
    let mut b = Request::get(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let resp = client
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn expected_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 7) as u8).collect()
}

#[tokio::test]
async fn the_compression_matrix() {
    let up = origin().await;
    let weir = Weir::start(&manifest_for(&up, "true"));
    for (accept, want) in [
        ("gzip, br, zstd", Some("zstd")),
        ("gzip, br", Some("br")),
        ("gzip", Some("gzip")),
        ("br;q=0.5, gzip;q=0.9", Some("gzip")),
        ("identity", None),
        ("*;q=0", None),
    ] {
        for (ct, compressible) in [
            ("text/html;%20charset=utf-8", true),
            ("application/json", true),
            ("application/problem%2Bjson", true),
            ("image/png", false),
            ("text/event-stream", false),
        ] {
            for (status, existing) in [200, 404, 500, 204, 304, 206]
                .into_iter()
                .flat_map(|s| [(s, ""), (s, "identity"), (s, "gzip")])
            {
                let ce = if existing.is_empty() {
                    String::new()
                } else {
                    format!("&ce={existing}")
                };
                let url = weir.url(&format!("/t?ct={ct}&status={status}{ce}"));
                let (got, headers, body) = fetch(&url, &[("accept-encoding", accept)]).await;
                assert_eq!(got, status);
                let bodyless = matches!(status, 204 | 304);
                let coding = headers
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap().to_string());
                let case = format!("{accept} / {ct} / {status} / encoded {existing:?}");
                if existing == "gzip" {
                    // Already encoded upstream: passed on untouched.
                    assert_eq!(coding.as_deref(), Some("gzip"), "{case}");
                    if !bodyless {
                        assert_eq!(body, expected_body(4000), "{case}");
                    }
                    assert!(headers.get("vary").is_none(), "{case}");
                    continue;
                }
                let eligible = compressible && !bodyless && status != 206;
                let coding = coding.filter(|c| c != "identity");
                match (eligible, want) {
                    (true, Some(w)) => {
                        assert_eq!(coding.as_deref(), Some(w), "{case}");
                        assert!(headers.get("content-length").is_none(), "{case}");
                        assert_eq!(decode(w, &body), expected_body(4000), "{case}");
                    }
                    _ => {
                        assert!(coding.is_none(), "{case}");
                        if !bodyless {
                            assert_eq!(body, expected_body(4000), "{case}");
                        }
                    }
                }
                let vary = headers
                    .get_all("vary")
                    .iter()
                    .any(|v| v.to_str().unwrap().contains("accept-encoding"));
                assert_eq!(vary, eligible, "{case}: Vary");
            }
        }
        // The same over HTTP/2.
        let h2 = send_h2(
            Request::get(weir.url("/t?ct=text/html"))
                .header("accept-encoding", accept)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(h2.header("content-encoding"), want, "h2 {accept}");
    }
}

#[tokio::test]
async fn what_is_left_alone() {
    let up = origin().await;
    let weir = Weir::start(&manifest_for(
        &up,
        "{ min-size = 1000, codings = [\"gzip\"] }",
    ));
    let ae = [("accept-encoding", "gzip, br, zstd")];
    // Already encoded: passed on as it is.
    let (_, h, body) = fetch(&weir.url("/t?ct=text/plain&ce=br"), &ae).await;
    assert_eq!(h["content-encoding"], "br");
    assert_eq!(body, expected_body(4000));
    // no-transform (how a filter switches compression off for a page).
    let (_, h, _) = fetch(&weir.url("/t?ct=text/plain&cc=no-transform"), &ae).await;
    assert!(h.get("content-encoding").is_none());
    // Under min-size.
    let (_, h, _) = fetch(&weir.url("/t?ct=text/plain&n=999"), &ae).await;
    assert!(h.get("content-encoding").is_none());
    // Only the offered codings.
    let (_, h, body) = fetch(&weir.url("/t?ct=text/plain"), &ae).await;
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(decode("gzip", &body), expected_body(4000));
    // HEAD: no body, no encoding, but Vary.
    let r = send(
        Request::head(weir.url("/t?ct=text/plain"))
            .header("accept-encoding", "gzip")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert!(r.header("content-encoding").is_none());
    assert!(r
        .header_all("vary")
        .iter()
        .any(|v| v.contains("accept-encoding")));
    // A strong ETag is weakened.
    let (_, h, _) = fetch(&weir.url("/t?ct=text/plain&etag=%22v1%22"), &ae).await;
    assert_eq!(h["etag"], "W/\"v1\"");
}

#[tokio::test]
async fn streamed_responses_are_compressed_as_they_come() {
    let up = Upstream::streaming(vec![
        (std::time::Duration::ZERO, "first part of the stream "),
        (std::time::Duration::from_millis(800), "second part"),
    ])
    .await;
    // The stream has no type: a response filter gives it one (filters run before
    // compression).
    let m = format!(
        "plugins-dir = \"{{plugins}}\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nupstream = \"app\"\nfilters = [\"typed\"]\ncompress = {{ types = [\"text/*\"], min-size = 0 }}\n\
         [filters.typed]\nplugin = \"headers.wasm\"\nconfig = {{ response = {{ set = {{ \"content-type\" = \"text/plain\" }} }} }}\n",
        up.addr
    );
    let weir = Weir::start(&expand(&m));
    use http_body_util::BodyExt;
    let client = keep_alive_client();
    let req = Request::get(weir.url("/"))
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let start = std::time::Instant::now();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let mut body = resp.into_body();
    let mut first = Vec::new();
    // The first part arrives, decodable, before the second is sent.
    while start.elapsed() < std::time::Duration::from_millis(600) {
        let frame = body.frame().await.unwrap().unwrap();
        first.extend_from_slice(&frame.into_data().unwrap());
        let mut d = flate2::read::GzDecoder::new(&first[..]);
        let mut out = vec![0u8; 64];
        let n = d.read(&mut out).unwrap_or(0);
        if String::from_utf8_lossy(&out[..n]).starts_with("first part") {
            break;
        }
    }
    assert!(
        start.elapsed() < std::time::Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
    let rest = body.collect().await.unwrap().to_bytes();
    first.extend_from_slice(&rest);
    assert_eq!(
        decode("gzip", &first),
        b"first part of the stream second part"
    );
}

#[tokio::test]
async fn cached_responses_are_compressed_once_then_served_from_a_compressed_copy() {
    let up = origin().await;
    let weir = Weir::start(&manifest_for(&up, "true"));
    let admin = weir.admin.unwrap();
    let entries = || async move {
        let r = get(&format!("http://{admin}/cache"), &[]).await;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["zones"][0]["entries"].as_u64().unwrap()
    };
    let url = weir.url("/cached?ct=text/plain&cc=max-age%3D60&etag=%22e1%22");
    let (_, h, plain) = fetch(&url, &[]).await;
    assert!(h.get("content-encoding").is_none());
    assert_eq!(entries().await, 1);
    for (i, coding) in ["gzip", "br", "zstd"].into_iter().enumerate() {
        // The first compressed hit is compressed as it goes, and its copy stored...
        let (_, h, body) = fetch(&url, &[("accept-encoding", coding)]).await;
        assert!(h["cache-status"].to_str().unwrap().contains("hit"), "{h:?}");
        assert_eq!(h["content-encoding"], coding);
        assert!(h.get("content-length").is_none(), "streamed: {h:?}");
        assert_eq!(decode(coding, &body), plain);
        assert_eq!(entries().await, 2 + i as u64);
        // ...the next is that copy, whole, with its length and the same fields.
        let (_, h2, body2) = fetch(&url, &[("accept-encoding", coding)]).await;
        assert_eq!(h2["content-encoding"], coding);
        assert_eq!(h2["content-length"], body2.len().to_string().as_str());
        assert_eq!(h2["etag"], "W/\"e1\"");
        assert!(
            h2.get_all("vary").iter().any(|v| v == "accept-encoding"),
            "{h2:?}"
        );
        assert_eq!(decode(coding, &body2), plain);
    }
    // A client that takes no coding still gets the identity entry.
    let (_, h, body) = fetch(&url, &[("accept-encoding", "identity")]).await;
    assert!(h.get("content-encoding").is_none());
    assert_eq!(body, plain);
    // Purging the key removes its copies too.
    let key = format!(
        "key={}",
        url.replace("&", "%26")
            .replace("%3D", "%253D")
            .replace("%22", "%2522")
    );
    let r = post(&format!("http://{admin}/cache/purge?{key}"), &[], "").await;
    assert!(r.body.contains("\"purged\": 4"), "{r:?}");
}
