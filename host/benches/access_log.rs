//! Criterion benchmark: one JSON access log line, from taking the request's fields
//! (`AccessLog::begin`) to the line queued for the writer thread (`finish`), as the proxy
//! does per request with `access-log-format = "json"` and one logged header. The writer
//! thread writes to /dev/null.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::Instant;
use weir::access_log::{AccessLog, Destination, Format, Output, Served};
use weir::filter::chain::Report;

fn line(c: &mut Criterion) {
    let output = Arc::new(Output {
        format: Format::Json,
        destination: Destination::File("/dev/null".into()),
        query: true,
        headers: vec![(http::header::USER_AGENT, false)],
        buffer: 1 << 20,
    });
    weir::access_log::sink::global().configure(&output.destination);
    let (parts, ()) = http::Request::get("/products/42?ref=home")
        .header("host", "shop.example")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        )
        .header("accept", "*/*")
        .body(())
        .expect("request")
        .into_parts();
    let id = http::HeaderValue::from_static("35f39fea880e4be500000000000afc83");
    let trace =
        http::HeaderValue::from_static("00-2aefea0f4b862025c3b465f119431457-35f39fea880e4be5-01");
    let target: http::uri::Authority = "127.0.0.1:19500".parse().expect("authority");
    let report = Report::default();
    c.bench_function("access log: one JSON line (begin + finish)", |b| {
        b.iter(|| {
            let mut log = AccessLog::begin(
                "203.0.113.9".parse().expect("ip"),
                &parts,
                Instant::now(),
                Some(&output),
            );
            log.request_id = Some(id.clone());
            log.traceparent = Some(trace.clone());
            log.finish(
                Instant::now(),
                Some(&output),
                Served {
                    status: http::StatusCode::OK,
                    route: Some("/"),
                    upstream: Some("app"),
                    target: Some(&target),
                    filters: &report,
                },
            );
        })
    });
}

criterion_group!(benches, line);
criterion_main!(benches);
