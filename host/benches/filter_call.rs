//! Criterion benchmark: one pooled filter call (`on-request`), through the same code path the
//! proxy uses (instance checkout, head moved into the store, call, checkin).
//! Needs the filters built (`make plugins`).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;
use weir::config::FilterConfig;
use weir::filter::{FilterEngine, RequestHead};

fn filter_config(plugin: &str, config_json: &str) -> FilterConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(plugin);
    assert!(
        path.exists(),
        "{} missing: run `make plugins`",
        path.display()
    );
    FilterConfig::standalone(plugin, path, config_json)
}

fn head() -> RequestHead {
    let req = http::Request::get("/products/42?ref=home")
        .header("host", "shop.example")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .header("x-request-id", "0d6f3e1c")
        .body(())
        .expect("request");
    RequestHead::new(req.into_parts().0, "10.1.2.3".parse().expect("ip"), "http")
}

fn bench(c: &mut Criterion) {
    // Hooks are async fns (these filters are called directly inside them; filters that can
    // wait run on a fiber): drive them as the proxy's workers do.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = FilterEngine::new().expect("engine");
    // 1000 of the even /24s of 10.0.0.0/13 (the client, 10.1.2.3, is in one).
    let ranges: Vec<String> = (0..1000u32)
        .map(|i| format!("\"10.{}.{}.0/24\"", i / 128, (i % 128) * 2))
        .collect();
    let ip_lists = format!(r#"{{"allow":[{}]}}"#, ranges.join(","));
    let cases: [(&str, &str, &str); 4] = [
        (
            "headers: set one request header",
            "headers.wasm",
            r#"{"request":{"set":{"x-served-by":"weir"}}}"#,
        ),
        (
            "block: path + header check, passes",
            "block.wasm",
            r#"{"paths":["/admin"],"headers":{"x-debug":"*"}}"#,
        ),
        (
            "api-key: valid key, stripped",
            "api-key.wasm",
            r#"{"keys":["k1","k2"],"forward-key":true}"#,
        ),
        (
            "ip-filter: 1000 allowed ranges, admitted",
            "ip-filter.wasm",
            &ip_lists,
        ),
    ];
    let mut group = c.benchmark_group("pooled on-request");
    for (name, plugin, config) in cases {
        let filters = rt
            .block_on(engine.load_all(&[filter_config(plugin, config)], &[]))
            .unwrap_or_else(|e| panic!("{plugin}: {:?}", e[0].1));
        let filter = filters[0].clone();
        let mut h = head();
        let _ = h
            .parts
            .headers
            .insert("x-api-key", http::HeaderValue::from_static("k2"));
        // Calls back to back inside one task, as a proxy worker makes them.
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(filter.on_request(&mut h).await.expect("call"));
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
