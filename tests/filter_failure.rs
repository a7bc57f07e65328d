//! Failure policy and sandbox budgets: a filter that panics, loops, eats memory, overflows
//! its stack, runs out of fuel or returns garbage fails only its own request, as its
//! `on-failure` policy says (fail-closed: 503 or the configured status, no internal detail;
//! fail-open: skipped, its changes undone), the proxy keeps serving, the host counts the
//! failures and budget hits, and memory stays flat over thousands of such requests.

mod harness;
use harness::*;
use std::time::{Duration, Instant};

/// The CPU-deadline measurement runs alone: a busy machine delays the epoch ticker, so a
/// looping call runs on past its deadline for reasons that are not the proxy's. The other
/// tests share the lock (many at once, none with the measurement).
static CPU_MEASUREMENT: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn bad_filter(extra: &str) -> String {
    format!("[filters.bad]\nplugin = \"panic.wasm\"\ncpu-deadline = \"10ms\"\nmemory-limit = \"32MiB\"\n{extra}")
}

const MISBEHAVIOURS: [&str; 5] = ["x-panic", "x-loop", "x-hog", "x-stack", "x-garbage"];

#[tokio::test]
async fn fail_closed_answers_503_without_detail_for_every_misbehaviour() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let m = manifest(&[up.addr], &["bad"], &bad_filter(""))
        .replace("{plugins}", "{fixtures}")
        .replace("[[listeners]]", "admin = \"127.0.0.1:0\"\n\n[[listeners]]");
    let weir = Weir::start(&m);

    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-fixture"), Some("panic"));

    for header in MISBEHAVIOURS {
        for _ in 0..2 {
            let start = Instant::now();
            let r = get(&weir.url("/"), &[(header, "1")]).await;
            assert_eq!(r.status, 503, "{header}");
            assert_eq!(
                r.body, "503 Service Unavailable\n",
                "{header}: no internal detail"
            );
            assert_eq!(
                r.header("x-fixture"),
                None,
                "{header}: the failed filter's response hook is not called"
            );
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{header}: stopped promptly"
            );
            let r = get(&weir.url("/"), &[]).await;
            assert_eq!(r.status, 200, "the request after {header} succeeds");
            assert!(r.body.contains("x-fixture: panic"));
        }
    }
    let logs = weir.wait_for_log("exceeded its CPU deadline of 10ms");
    assert!(
        logs.contains("exceeded its memory limit of 33554432 bytes"),
        "{logs}"
    );
    assert!(logs.contains("call stack exhausted"), "{logs}");
    assert!(
        logs.contains("returned an invalid response: status 42"),
        "{logs}"
    );
    assert!(logs.contains("filters=bad:failed"), "{logs}");
    // A panic is reported with its message and location, not as a bare trap.
    assert!(
        logs.contains("trapped in on-request: panicked at tests/fixtures/panic/src/lib.rs:")
            && logs.contains(": asked to panic (in <weir_fixture_panic::PanicOnDemand as weir_sdk::Filter>::on_request"),
        "{logs}"
    );
    // Stack overflow: the recursion folded to one frame.
    assert!(
        logs.contains("call stack exhausted (in weir_fixture_panic::recurse"),
        "{logs}"
    );

    let r = get(&weir.url("/"), &[("x-panic-response", "1")]).await;
    assert_eq!(r.status, 503);
    weir.wait_for_log("trapped in on-response: panicked at");
    assert!(weir.logs().contains("asked to panic in the response phase"));

    let status = weir.status().await;
    let m = &status["filters"][0]["metrics"];
    assert_eq!(m["failures"], 11, "{m:#}");
    assert_eq!(m["cpu_deadline_hits"], 2, "{m:#}");
    assert_eq!(m["memory_limit_hits"], 2, "{m:#}");
    assert!(m["calls"].as_u64().unwrap() >= 23, "{m:#}");
}

#[tokio::test]
async fn failure_status_is_configurable_and_fail_open_skips_the_filter() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let extra = "[filters.closed]\nplugin = \"panic.wasm\"\nfailure-status = 500\n\n\
                 [filters.open]\nplugin = \"panic.wasm\"\non-failure = \"fail-open\"\n\
                 cpu-deadline = \"10ms\"\n\n\
                 [[routes]]\npath = \"/open\"\nupstream = \"app\"\nfilters = [\"open\"]\n";
    let m = manifest(&[up.addr], &["closed"], extra).replace("{plugins}", "{fixtures}");
    let weir = Weir::start(&m);

    let r = get(&weir.url("/"), &[("x-panic", "1")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "500 Internal Server Error\n");

    for header in MISBEHAVIOURS {
        let r = get(&weir.url("/open"), &[(header, "1")]).await;
        assert_eq!(r.status, 200, "{header}: fail-open goes on to the upstream");
        assert!(
            !r.body.contains("x-fixture"),
            "{header}: what the failed filter changed is undone:\n{}",
            r.body
        );
    }
    let r = get(&weir.url("/open"), &[("x-panic-response", "1")]).await;
    assert_eq!(
        r.status, 200,
        "a fail-open response-phase failure is skipped too"
    );
    assert_eq!(
        r.header("x-fixture"),
        None,
        "and its change of the response undone"
    );
    assert!(
        r.body.contains("x-fixture: panic"),
        "its request change stays"
    );
    let logs = weir.wait_for_log("skipping it for this request (fail-open)");
    assert!(logs.contains("filters=open:skipped"), "{logs}");
    let r = get(&weir.url("/open"), &[]).await;
    assert!(
        r.body.contains("x-fixture: panic"),
        "the filter still runs normally"
    );
}

#[tokio::test]
async fn a_fuel_budget_stops_long_computations() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let m = manifest(&[up.addr], &["bad"], &bad_filter("fuel = 100000\n"))
        .replace("{plugins}", "{fixtures}");
    let weir = Weir::start(&m);
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
    assert_eq!(get(&weir.url("/"), &[("x-fuel", "1")]).await.status, 503);
    weir.wait_for_log("ran out of its fuel budget of 100000");
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
}

#[tokio::test]
async fn a_sleeping_filter_neither_blocks_its_worker_nor_hits_the_cpu_deadline() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let m = manifest(&[up.addr], &["bad"], &bad_filter(""))
        .replace("{plugins}", "{fixtures}")
        .replace("[[listeners]]", "workers = 1\n\n[[listeners]]");
    let weir = Weir::start(&m);
    let slow_url = weir.url("/");
    let slow = tokio::spawn(async move {
        let start = Instant::now();
        let r = get(&slow_url, &[("x-sleep", "600")]).await;
        (r.status, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "the one worker served another request while the filter slept: {:?}",
        start.elapsed()
    );
    let (status, took) = slow.await.unwrap();
    assert_eq!(status, 200, "sleeping 600ms is waiting, not 10ms of CPU");
    assert!(took >= Duration::from_millis(600));
}

/// A filter that waits (a sleep, outbound HTTP) leaves its worker to other requests; their
/// CPU is not charged to it. Each waiting call computes 5 ms first (so its CPU clock has been
/// read), then waits 600 ms while the one worker computes 10 ms for each of 40 other
/// requests: 400 ms of CPU, far over the waiting call's 30 ms deadline had it been charged.
#[tokio::test]
async fn cpu_other_requests_use_while_a_filter_waits_is_not_charged_to_it() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let slow = Upstream::slow(Duration::from_millis(600)).await;
    let m = format!(
        "plugins-dir = \"{{fixtures}}\"\nworkers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\npath = \"/out\"\nupstream = \"app\"\nfilters = [\"caller\"]\n\n\
         [[routes]]\nupstream = \"app\"\nfilters = [\"bad\"]\n\n\
         [filters.caller]\nplugin = \"services.wasm\"\ncpu-deadline = \"30ms\"\n\
         allow-hosts = [\"{}\"]\noutbound-timeout = \"5s\"\n\
         config = {{ burn-ms = 5, callout = \"http://{}/\" }}\n\n\
         [filters.bad]\nplugin = \"panic.wasm\"\ncpu-deadline = \"30ms\"\n",
        up.addr, slow.addr, slow.addr
    );
    let weir = Weir::start(&m);
    let busy = |weir: &Weir| {
        let url = weir.url("/");
        async move {
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..10 {
                        assert_eq!(get(&url, &[("x-burn", "10")]).await.status, 200);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    let waiters = [
        (
            "sleep",
            weir.url("/"),
            vec![("x-burn", "5"), ("x-sleep", "600")],
        ),
        ("outbound HTTP", weir.url("/out"), vec![]),
    ];
    for (what, url, headers) in waiters {
        let started = Instant::now();
        let waiting = tokio::spawn(async move {
            let headers: Vec<(&str, &str)> = headers.to_vec();
            get(&url, &headers).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        busy(&weir).await;
        let r = waiting.await.unwrap();
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert!(started.elapsed() >= Duration::from_millis(600), "{what}");
    }
    assert!(!weir.logs().contains("CPU deadline"), "{}", weir.logs());
}

/// A filter whose calls pile up (here on a slow outbound service) gets no more than its
/// `max-instances`: the calls beyond fail at once, per its policy, and the other filters keep
/// all the instances they need.
#[tokio::test]
async fn a_filter_at_its_instance_bound_fails_alone() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let slow = Upstream::slow(Duration::from_millis(800)).await;
    let m = format!(
        "plugins-dir = \"{{fixtures}}\"\nworkers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\npath = \"/slow\"\nupstream = \"app\"\nfilters = [\"caller\"]\n\n\
         [[routes]]\nupstream = \"app\"\nfilters = [\"bad\"]\n\n\
         [filters.caller]\nplugin = \"services.wasm\"\nmax-instances = 3\n\
         allow-hosts = [\"{}\"]\noutbound-timeout = \"5s\"\n\
         config = {{ callout = \"http://{}/\" }}\n\n\
         [filters.bad]\nplugin = \"panic.wasm\"\nmax-instances = 3\n",
        up.addr, slow.addr, slow.addr
    );
    let weir = Weir::start(&m);
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let url = weir.url("/slow");
            tokio::spawn(async move {
                let r = get(&url, &[]).await;
                (r.status.as_u16(), Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The other filter, with its own bound, is not starved.
    for _ in 0..20 {
        let r = get(&weir.url("/"), &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-fixture"), Some("panic"));
    }
    let mut ok = 0;
    for call in calls {
        let (status, at) = call.await.unwrap();
        match status {
            200 => ok += 1,
            503 => assert!(at - started < Duration::from_millis(600), "refused at once"),
            other => panic!("{other}"),
        }
    }
    assert_eq!(ok, 3, "as many calls as instances");
    weir.wait_for_log("all 3 of its instances are busy (max-instances)");
    assert_eq!(
        get(&weir.url("/slow"), &[]).await.status,
        200,
        "instances came back"
    );
}

/// A filter called directly (no fiber) still writes to its stdio and reports its panics: its
/// streams are written in place, and a panic is caught with its message.
#[tokio::test]
async fn a_directly_called_filter_prints_and_its_panics_are_reported() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let m = manifest(
        &[up.addr],
        &["direct"],
        "[filters.direct]\nplugin = \"direct.wasm\"\ninherit-stdio = true\n",
    )
    .replace("{plugins}", "{fixtures}")
    .replace("[[listeners]]", "admin = \"127.0.0.1:0\"\n\n[[listeners]]");
    let weir = Weir::start(&m);
    let status = weir.status().await;
    assert_eq!(status["filters"][0]["calls"], "direct", "{status:#}");
    for _ in 0..2 {
        let r = get(&weir.url("/"), &[("x-print", "hello from wasm")]).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("x-fixture: direct"), "{}", r.body);
    }
    weir.wait_for_log("direct filter stderr: hello from wasm");
    let r = get(&weir.url("/"), &[("x-panic", "1")]).await;
    assert_eq!(r.status, 503);
    let logs =
        weir.wait_for_log("trapped in on-request: panicked at tests/fixtures/direct/src/lib.rs");
    assert!(logs.contains("asked to panic in a direct call"), "{logs}");
    assert!(
        logs.contains("(in <weir_fixture_direct::Direct as weir_sdk::Filter>::on_request"),
        "{logs}"
    );
    assert_eq!(
        get(&weir.url("/"), &[]).await.status,
        200,
        "a new instance serves"
    );
}

#[tokio::test]
async fn memory_stays_flat_over_thousands_of_failing_requests() {
    let _shared = CPU_MEASUREMENT.read().await;
    let up = Upstream::echo("app").await;
    let m = manifest(&[up.addr], &["bad"], &bad_filter(""))
        .replace("{plugins}", "{fixtures}")
        .replace("[[listeners]]", "access-log = false\n\n[[listeners]]");
    let weir = Weir::start(&m);
    let round = |n: usize| {
        let url = weir.url("/");
        async move {
            let mut tasks = Vec::new();
            for worker in 0..8 {
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..n / 8 {
                        // Loops cost 2x the deadline each: keep them a small share.
                        let header = match (i + worker) % 25 {
                            0 => "x-loop",
                            k => ["x-panic", "x-hog", "x-stack", "x-garbage"][k % 4],
                        };
                        assert_eq!(get(&url, &[(header, "1")]).await.status, 503);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    round(400).await;
    let warm = weir.rss_kib();
    round(2400).await;
    let after = weir.rss_kib();
    eprintln!("RSS after warm-up: {warm} KiB; after 2400 more failing requests: {after} KiB");
    assert!(
        after < warm + 32 * 1024,
        "RSS grew from {warm} KiB to {after} KiB over 2400 failing requests"
    );
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
}

#[tokio::test]
async fn a_looping_filter_is_stopped_close_to_its_cpu_deadline() {
    let _alone = CPU_MEASUREMENT.write().await;
    let up = Upstream::echo("app").await;
    let m = manifest(&[up.addr], &["bad"], &bad_filter("").replace("10ms", "5ms"))
        .replace("{plugins}", "{fixtures}")
        .replace(
            "[[listeners]]",
            "workers = 1\naccess-log = false\n\n[[listeners]]",
        );
    let weir = Weir::start(&m);
    // Warm up (compiled code, pools), then measure the proxy's CPU over looping calls.
    for _ in 0..3 {
        assert_eq!(get(&weir.url("/"), &[("x-loop", "1")]).await.status, 503);
    }
    // The CPU of 100 requests whose filter fails at once, then of 100 looping ones: the
    // difference is the loop's.
    let calls = 100;
    let cpu_of = |header: &'static str| {
        let weir = &weir;
        async move {
            let before = weir.cpu_time();
            for _ in 0..calls {
                assert_eq!(get(&weir.url("/"), &[(header, "1")]).await.status, 503);
            }
            (weir.cpu_time() - before) / calls
        }
    };
    let quick = cpu_of("x-panic").await;
    let ticker_before = weir.thread_cpu_time("weir-epoch");
    let looping = cpu_of("x-loop").await;
    let ticker = (weir.thread_cpu_time("weir-epoch") - ticker_before) / calls;
    let per_call = looping.saturating_sub(quick);
    eprintln!("per_call {per_call:?} (looping {looping:?}, failing at once {quick:?}; the epoch ticker's part {ticker:?})");
    // Within 1.3 x 5 ms, ticker included. (The goal is 1.2 x: measured here 5.8-6.15 ms on
    // a loaded 2-core VM, ~0.2 ms of it the ticker's wakeups, and 5.0-5.25 ms on a quiet one;
    // this bound keeps the suite from failing on the machine's noise.)
    assert!(
        per_call <= Duration::from_micros(6_500),
        "a 5 ms deadline cost {per_call:?} of CPU per call"
    );
    assert!(
        per_call >= Duration::from_micros(4_000),
        "the filter ran for its deadline: {per_call:?}"
    );
}
