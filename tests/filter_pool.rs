//! The filter engine through the library API: instances are pooled and reused, a trapped
//! instance is replaced, and incompatible components are refused at load time.

mod harness;
use harness::*;
use std::path::Path;
use weir::config::FilterConfig;
use weir::filter::{FilterEngine, RequestHead, Verdict};

fn filter_config(dir: &Path, plugin: &str, config_json: &str) -> FilterConfig {
    FilterConfig::standalone("f", dir.join(plugin), config_json)
}

fn head(extra: Option<(&'static str, &'static str)>) -> RequestHead {
    let mut b = http::Request::get("/x").header("host", "a.test");
    if let Some((n, v)) = extra {
        b = b.header(n, v);
    }
    RequestHead::new(
        b.body(()).unwrap().into_parts().0,
        "127.0.0.1".parse().unwrap(),
        "http",
    )
}

#[tokio::test]
async fn instances_are_reused_across_calls() {
    let engine = FilterEngine::new().unwrap();
    let cfg = filter_config(
        &plugins_dir(),
        "headers.wasm",
        r#"{"request":{"set":{"x-a":"1"}}}"#,
    );
    let filter = engine.load_all(&[cfg], &[]).await.unwrap().remove(0);
    assert_eq!(
        filter.instances_created(),
        1,
        "one instance is made (and init'ed) at load"
    );
    // Its start time and linear memory are recorded (a small filter: a few MiB at most).
    let (took, memory) = filter.instance_start();
    assert!(took > std::time::Duration::ZERO && took < std::time::Duration::from_secs(5));
    assert!((64 << 10..16 << 20).contains(&memory), "{memory}");
    for _ in 0..200 {
        let mut h = head(None);
        let r = filter.on_request(&mut h).await.unwrap();
        assert!(matches!(r.verdict, Verdict::Continue) && r.changed);
        assert_eq!(h.parts.headers["x-a"], "1");
    }
    assert_eq!(
        filter.instances_created(),
        1,
        "sequential calls reuse the pooled instance"
    );
    assert_eq!(filter.idle_instances(), 1);
    assert!(!filter.runs_on_fiber(), "headers cannot wait: plain calls");
}

#[tokio::test]
async fn filters_that_can_wait_run_on_a_fiber_and_the_others_directly() {
    let engine = FilterEngine::new().unwrap();
    let fixtures = fixtures_dir();
    let cases = [
        (plugins_dir(), "block.wasm", r#"{"paths":["/a"]}"#, false),
        // Outbound HTTP.
        (fixtures.clone(), "services.wasm", "{}", true),
        // Sleeps (a monotonic-clock timer).
        (fixtures, "panic.wasm", "{}", true),
    ];
    for (dir, plugin, config, fiber) in cases {
        let f = engine
            .load(&filter_config(&dir, plugin, config))
            .await
            .unwrap_or_else(|e| panic!("{plugin}: {e}"));
        assert_eq!(f.runs_on_fiber(), fiber, "{plugin}");
        let r = f.on_request(&mut head(None)).await.unwrap();
        assert!(matches!(r.verdict, Verdict::Continue), "{plugin}");
    }
}

#[tokio::test]
async fn only_the_declared_hooks_are_called() {
    let engine = FilterEngine::new().unwrap();
    let loaded = engine
        .load_all(
            &[
                filter_config(&plugins_dir(), "block.wasm", r#"{"paths":["/a"]}"#),
                filter_config(
                    &plugins_dir(),
                    "headers.wasm",
                    r#"{"response":{"remove":["server"]}}"#,
                ),
                filter_config(&fixtures_dir(), "panic.wasm", "{}"),
            ],
            &[],
        )
        .await
        .unwrap();
    let hooks: Vec<(bool, bool)> = loaded
        .iter()
        .map(|f| (f.wants_request(), f.wants_response()))
        .collect();
    assert_eq!(hooks, [(true, false), (false, true), (true, true)]);
}

#[tokio::test]
async fn a_trapped_instance_is_discarded_and_replaced() {
    let engine = FilterEngine::new().unwrap();
    let cfg = filter_config(&fixtures_dir(), "panic.wasm", "{}");
    let filter = engine.load_all(&[cfg], &[]).await.unwrap().remove(0);
    let mut h = head(Some(("x-panic", "1")));
    let err = filter.on_request(&mut h).await.unwrap_err();
    assert!(
        err.to_string().starts_with("trapped in on-request"),
        "{err}"
    );
    assert_eq!(
        h.parts.uri.path(),
        "/x",
        "the request head comes back after a trap"
    );
    assert_eq!(
        filter.idle_instances(),
        0,
        "the trapped instance was not returned"
    );
    let mut h = head(None);
    assert!(filter.on_request(&mut h).await.is_ok());
    assert_eq!(
        filter.instances_created(),
        2,
        "a fresh instance replaced it"
    );
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let engine = FilterEngine::new().unwrap();
    let cfg = filter_config(&fixtures_dir(), "not-a-filter.wasm", "{}");
    let errors = match engine.load_all(&[cfg], &[]).await {
        Ok(_) => panic!("loaded a component that is not a filter"),
        Err(e) => e,
    };
    let msg = errors[0].1.to_string();
    assert!(
        msg.contains("not-a-filter.wasm is not a compatible Weir filter"),
        "{msg}"
    );
    assert!(
        msg.contains("does not export weir:filter/filter@0.2.4"),
        "{msg}"
    );
    assert!(msg.contains("example:other/greet@1.0.0"), "{msg}");
}

/// A filter built against WIT 0.2.0 (before `raw-path-and-query` was added; the committed
/// fixture is `headers.wasm` as built then) still loads and runs on this 0.2.4 host.
#[tokio::test]
async fn a_filter_of_the_previous_wit_version_still_loads() {
    let dir = workspace().join("tests/fixtures/wit-0.2.0");
    let bytes = std::fs::read(dir.join("headers.wasm")).unwrap();
    let export = b"weir:filter/filter@0.2.0";
    assert!(
        bytes.windows(export.len()).any(|w| w == export),
        "the fixture is a 0.2.0 filter"
    );
    let engine = FilterEngine::new().unwrap();
    let cfg = filter_config(&dir, "headers.wasm", r#"{"request":{"set":{"x-a":"1"}}}"#);
    let filter = engine.load_all(&[cfg], &[]).await.unwrap().remove(0);
    let mut h = head(None);
    let r = filter.on_request(&mut h).await.unwrap();
    assert!(matches!(r.verdict, Verdict::Continue) && r.changed);
    assert_eq!(h.parts.headers["x-a"], "1");
}

#[tokio::test]
async fn per_request_isolation_and_max_requests_recycle_instances() {
    let engine = FilterEngine::new().unwrap();
    let base = filter_config(
        &plugins_dir(),
        "headers.wasm",
        r#"{"request":{"set":{"x-a":"1"}}}"#,
    );
    let isolated = FilterConfig {
        isolation: weir::config::Isolation::PerRequest,
        ..base.clone()
    };
    let filter = engine.load(&isolated).await.unwrap();
    for _ in 0..10 {
        filter.on_request(&mut head(None)).await.unwrap();
    }
    assert_eq!(
        filter.instances_created(),
        10,
        "a fresh instance per request (the first is the unused one made at load)"
    );
    assert_eq!(filter.idle_instances(), 0, "none is kept");

    let recycled = FilterConfig {
        max_requests_per_instance: Some(4),
        ..base
    };
    let filter = engine.load(&recycled).await.unwrap();
    for _ in 0..12 {
        filter.on_request(&mut head(None)).await.unwrap();
    }
    assert_eq!(
        filter.instances_created(),
        3,
        "12 requests at 4 per instance: the load-time instance and 2 more"
    );
}

#[tokio::test]
async fn reloading_keeps_unchanged_filters_and_replaces_changed_ones() {
    let engine = FilterEngine::new().unwrap();
    let a = filter_config(
        &plugins_dir(),
        "headers.wasm",
        r#"{"request":{"set":{"x-a":"1"}}}"#,
    );
    let b = FilterConfig {
        name: "g".into(),
        ..filter_config(&plugins_dir(), "block.wasm", r#"{"paths":["/a"]}"#)
    };
    let first = engine.load_all(&[a.clone(), b.clone()], &[]).await.unwrap();
    let b2 = FilterConfig {
        config_json: r#"{"paths":["/b"]}"#.into(),
        ..b
    };
    let second = engine.load_all(&[a, b2], &first).await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first[0], &second[0]),
        "unchanged: kept, warm"
    );
    assert!(
        !std::sync::Arc::ptr_eq(&first[1], &second[1]),
        "config changed: reloaded"
    );
    assert_eq!(first[1].version().sha256, second[1].version().sha256);
}

#[tokio::test]
async fn a_snapshot_start_runs_init_once_and_every_instance_starts_from_its_state() {
    use weir::config::{InstanceStart, Isolation};
    let engine = FilterEngine::new().unwrap();
    let config = r#"{"count-init":true}"#;
    let isolated = FilterConfig {
        isolation: Isolation::PerRequest,
        ..filter_config(&fixtures_dir(), "services.wasm", config)
    };
    for (start, inits) in [(InstanceStart::Snapshot, 1), (InstanceStart::Init, 10)] {
        let filter = engine
            .load(&FilterConfig {
                instance_start: start,
                ..isolated.clone()
            })
            .await
            .unwrap();
        for _ in 0..10 {
            let mut h = head(None);
            filter.on_request(&mut h).await.unwrap();
            assert_eq!(h.parts.headers["x-init"], config, "{start:?}");
        }
        assert_eq!(filter.instances_created(), 10, "{start:?}");
        assert_eq!(
            filter.metrics().counters.get("inits"),
            Some(&inits),
            "{start:?}: init runs once when instances start from its snapshot"
        );
        assert_eq!(
            filter.snapshot_took().is_some(),
            start == InstanceStart::Snapshot
        );
    }

    // A filter called directly (no fiber) starts from its snapshot too: the header its
    // config names is set by every instance, none of which ran init.
    let direct = FilterConfig {
        isolation: Isolation::PerRequest,
        instance_start: InstanceStart::Snapshot,
        ..filter_config(
            &plugins_dir(),
            "headers.wasm",
            r#"{"request":{"set":{"x-a":"1"}}}"#,
        )
    };
    let filter = engine.load(&direct).await.unwrap();
    assert!(!filter.runs_on_fiber());
    for _ in 0..5 {
        let mut h = head(None);
        filter.on_request(&mut h).await.unwrap();
        assert_eq!(h.parts.headers["x-a"], "1");
    }
    assert_eq!(filter.instances_created(), 5);

    // A trapped instance is replaced by a fresh one from the same snapshot.
    let panics = FilterConfig {
        instance_start: InstanceStart::Snapshot,
        ..filter_config(&fixtures_dir(), "panic.wasm", "{}")
    };
    let filter = engine.load(&panics).await.unwrap();
    let err = filter
        .on_request(&mut head(Some(("x-panic", "1"))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("asked to panic"), "{err}");
    filter.on_request(&mut head(None)).await.unwrap();
    assert_eq!(filter.instances_created(), 2);
}

#[tokio::test]
async fn a_snapshot_start_refused_by_init_fails_the_load_like_init() {
    use weir::config::InstanceStart;
    let engine = FilterEngine::new().unwrap();
    let bad = FilterConfig {
        instance_start: InstanceStart::Snapshot,
        ..filter_config(&fixtures_dir(), "services.wasm", r#"{"no-such-setting":1}"#)
    };
    let err = engine.load(&bad).await.err().expect("refused");
    assert!(
        err.to_string().starts_with("init refused the config: ")
            && err.to_string().contains("no-such-setting"),
        "{err}"
    );
}
