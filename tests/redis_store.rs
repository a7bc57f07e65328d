//! Filter state shared across Weir nodes on a real `redis-server`: a rate limit over three
//! nodes admits what one limit admits, a windowed counter written through one node is seen
//! by the others, each `on-store-failure` policy does what it says while Redis is killed
//! mid-load (and every node recovers when it is back, empty), a frozen Redis costs at most
//! the call timeout, and credentials (an ACL user) are used and never shown.

mod harness;
use harness::pki;
use harness::redis::RedisServer;
use harness::*;
use std::time::{Duration, Instant};

/// A node: one listener, the `rate-limit` plugin and the `services` fixture (windowed
/// counters through the kv store), with `store` as its top-level store. Routes:
/// `/local`, `/open`, `/closed`: a per-client limit of `burst` per hour under each
/// `on-store-failure` policy; `/count`: counter of 3 per client per 10 s.
fn node(up: std::net::SocketAddr, store: &str, burst: u32) -> String {
    let limit = |name: &str, policy: &str| {
        format!(
            "[filters.{name}]\nplugin = \"rate-limit.wasm\"\non-store-failure = \"{policy}\"\n\
             [filters.{name}.config]\nlimits = [{{ name = \"per-client\", rate = {burst}, per = \"1h\", key = [\"header:x-client\"] }}]\n\n"
        )
    };
    let mut m = format!(
        "plugins-dir = \"{{dir}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 2\n\
         store = {store}\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n"
    );
    for (path, filter) in [
        ("/local", "local"),
        ("/open", "open"),
        ("/closed", "closed"),
        ("/closed-open", "closed-open"),
        ("/count", "count"),
    ] {
        m.push_str(&format!(
            "[[routes]]\npath = \"{path}\"\nupstream = \"app\"\nfilters = [\"{filter}\"]\n\n"
        ));
    }
    m.push_str(&limit("local", "local"));
    m.push_str(&limit("open", "fail-open"));
    m.push_str(&limit("closed", "fail-closed"));
    // fail-closed on the store wins over the filter's own fail-open.
    m.push_str(&limit("closed-open", "fail-closed").replace(
        "on-store-failure",
        "on-failure = \"fail-open\"\non-store-failure",
    ));
    m.push_str(
        "[filters.count]\nplugin = \"services.wasm\"\n\
         config = { counter = { limit = 3, window-ms = 10000 } }\n",
    );
    m
}

/// Start a node in a folder holding its two plugins.
fn start(manifest: &str) -> Weir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_filter(
        &plugins_dir(),
        "rate-limit.wasm",
        dir.path(),
        "rate-limit.wasm",
    );
    copy_filter(
        &fixtures_dir(),
        "services.wasm",
        dir.path(),
        "services.wasm",
    );
    Weir::start_in(dir, manifest)
}

fn redis_store(redis: &RedisServer) -> String {
    format!(
        "{{ backend = \"redis\", url = \"{}\", timeout = \"200ms\" }}",
        redis.url()
    )
}

async fn status_of(weir: &Weir, path: &str, client: &str) -> u16 {
    get(&weir.url(path), &[("x-client", client)])
        .await
        .status
        .as_u16()
}

async fn nodes(up: std::net::SocketAddr, redis: &RedisServer, n: usize, burst: u32) -> Vec<Weir> {
    let nodes: Vec<Weir> = (0..n)
        .map(|_| start(&node(up, &redis_store(redis), burst)))
        .collect();
    for w in &nodes {
        w.wait_for_status("the store up", |s| s["stores"][0]["up"] == true)
            .await;
    }
    nodes
}

#[tokio::test]
async fn one_limit_over_three_nodes_admits_what_one_node_would() {
    let up = Upstream::echo("app").await;
    let redis = RedisServer::start(&[]);
    let nodes = nodes(up.addr, &redis, 3, 30).await;
    // The first check loads the script (EVALSHA refused, then EVAL); the others are one
    // EVALSHA each.
    assert_eq!(status_of(&nodes[0], "/local", "c1").await, 200);
    let before = redis.command_calls("evalsha") + redis.command_calls("eval");
    let mut admitted = 1;
    for i in 1..90 {
        let s = status_of(&nodes[i % 3], "/local", "c1").await;
        assert!(s == 200 || s == 429, "{s}");
        admitted += usize::from(s == 200);
    }
    assert_eq!(admitted, 30, "a burst of 30 per hour over all nodes");
    // One round trip per check: one script call per request.
    let calls = redis.command_calls("evalsha") + redis.command_calls("eval") - before;
    assert_eq!(calls, 89, "script calls for 89 checks");
    // Keys are namespaced per filter and hash-tagged per key.
    let keys = redis.command(None, &["KEYS", "*"]);
    assert!(keys.contains("weir:rl:{local:per-client"), "{keys}");
    let s = nodes[0].status().await;
    let store = &s["stores"][0];
    assert_eq!(store["backend"], "redis");
    assert!(store["filters"].as_array().unwrap().len() >= 4, "{store}");
    assert!(store["calls"].as_u64().unwrap() >= 30, "{store}");
    assert_eq!(store["errors"], 0);
    // HTTP/2 reaches the same limit.
    let r = send_h2(
        http::Request::get(nodes[1].url("/local"))
            .header("x-client", "c1")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn a_counter_written_through_one_node_is_seen_by_the_others() {
    let up = Upstream::echo("app").await;
    let redis = RedisServer::start(&[]);
    let nodes = nodes(up.addr, &redis, 3, 5).await;
    for (i, node) in nodes.iter().enumerate() {
        let r = get(&node.url("/count"), &[("x-client", "mallory")]).await;
        assert_eq!(r.status, 200);
        assert!(
            r.body.contains(&format!("x-count: {}", i + 1)),
            "{}",
            r.body
        );
    }
    // The fourth attempt is refused by whichever node gets it: the lock-out is shared.
    for node in &nodes {
        let r = get(&node.url("/count"), &[("x-client", "mallory")]).await;
        assert_eq!(r.status, 429, "{}", r.body);
    }
    assert_eq!(status_of(&nodes[2], "/count", "alice").await, 200);
    let v = redis.command(None, &["GET", "weir:kv:{count:mallory}"]);
    assert_eq!(v, "6");
    let ttl: i64 = redis
        .command(None, &["PTTL", "weir:kv:{count:mallory}"])
        .parse()
        .unwrap();
    assert!(
        (1..=10_000).contains(&ttl),
        "the window is the key's expiry: {ttl}"
    );
}

/// Requests from `client` to `path` on `weir` until `stop`, counting statuses.
async fn load(weir_url: String, client: &'static str, stop: Instant) -> Vec<u16> {
    let mut out = Vec::new();
    while Instant::now() < stop {
        let r = get(&weir_url, &[("x-client", client)]).await;
        out.push(r.status.as_u16());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

#[tokio::test]
async fn redis_killed_mid_load_each_policy_holds_and_every_node_recovers() {
    let up = Upstream::echo("app").await;
    let mut redis = RedisServer::start(&[]);
    let nodes = nodes(up.addr, &redis, 2, 3).await;
    // Spend the shared burst of `k` for each policy before the outage.
    for path in ["/local", "/open", "/closed"] {
        for _ in 0..3 {
            assert_eq!(status_of(&nodes[0], path, "k").await, 200, "{path}");
        }
        assert_eq!(status_of(&nodes[1], path, "k").await, 429, "{path}");
    }
    // Load on every route while Redis dies.
    let stop = Instant::now() + Duration::from_secs(3);
    let loads: Vec<_> = ["/local", "/open", "/closed"]
        .iter()
        .map(|p| tokio::spawn(load(nodes[0].url(p), "load", stop)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // local: this node's own limiter (a fresh budget for `k`, then its own limit).
    let local: Vec<u16> = statuses_of(&nodes[1], "/local", "k2", 5).await;
    assert_eq!(
        local,
        [200, 200, 200, 429, 429],
        "per-node limit while Redis is down"
    );
    // fail-open: the filter allows (its on-store-error default); fail-closed: 503.
    assert_eq!(
        statuses_of(&nodes[1], "/open", "k", 3).await,
        [200, 200, 200]
    );
    assert_eq!(statuses_of(&nodes[1], "/closed", "k", 2).await, [503, 503]);
    assert_eq!(
        statuses_of(&nodes[1], "/closed-open", "k", 2).await,
        [503, 503],
        "fail-closed on the store wins over the filter's fail-open"
    );
    let mut seen = Vec::new();
    for l in loads {
        seen.push(l.await.unwrap());
    }
    for (path, statuses) in ["/local", "/open", "/closed"].iter().zip(&seen) {
        assert!(
            statuses.len() > 50,
            "{path}: the load kept flowing: {}",
            statuses.len()
        );
        let allowed: &[u16] = match *path {
            "/closed" => &[200, 429, 503],
            _ => &[200, 429],
        };
        assert!(
            statuses.iter().all(|s| allowed.contains(s)),
            "{path}: {statuses:?}"
        );
    }
    assert!(
        seen[2].contains(&503),
        "fail-closed answered 503 during the outage"
    );
    let logs = nodes[1].logs();
    assert_eq!(
        logs.matches("using this node's own store until it is back")
            .count(),
        1,
        "one line per outage for the local policy:\n{logs}"
    );
    let s = nodes[1].status().await;
    assert_eq!(s["stores"][0]["up"], false);
    assert!(s["stores"][0]["fallbacks"].as_u64().unwrap() >= 5, "{s}");
    // Back, and empty: the nodes reconnect by themselves and limits resume from scratch.
    redis.restart();
    for node in &nodes {
        node.wait_for_status("the store up again", |s| s["stores"][0]["up"] == true)
            .await;
    }
    for path in ["/local", "/open", "/closed"] {
        let got = statuses_of(&nodes[0], path, "after", 4).await;
        assert_eq!(got, [200, 200, 200, 429], "{path} after the restart");
    }
    assert!(nodes[1].logs().contains("shared store connected"));
}

/// `n` sequential requests' statuses.
async fn statuses_of(weir: &Weir, path: &str, client: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status_of(weir, path, client).await);
    }
    out
}

#[tokio::test]
async fn a_frozen_redis_costs_at_most_the_timeout_and_no_queue() {
    let up = Upstream::echo("app").await;
    let redis = RedisServer::start(&[]);
    let nodes = nodes(up.addr, &redis, 1, 100).await;
    assert_eq!(status_of(&nodes[0], "/local", "f").await, 200);
    redis.freeze(true);
    // The first call waits for its timeout (200ms) and marks the store down; the next ones
    // fall back at once instead of queueing behind it.
    let started = Instant::now();
    let first = status_of(&nodes[0], "/local", "f").await;
    let first_took = started.elapsed();
    assert_eq!(first, 200);
    assert!(first_took < Duration::from_millis(1500), "{first_took:?}");
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(status_of(&nodes[0], "/local", "f").await, 200);
    }
    let per_request = started.elapsed() / 20;
    assert!(
        per_request < Duration::from_millis(100),
        "{per_request:?} per request while down"
    );
    let s = nodes[0].status().await;
    assert!(s["stores"][0]["timeouts"].as_u64().unwrap() >= 1, "{s}");
    redis.freeze(false);
    nodes[0]
        .wait_for_status("the store up again", |s| s["stores"][0]["up"] == true)
        .await;
}

#[tokio::test]
async fn an_acl_user_is_used_and_its_password_never_shown() {
    let up = Upstream::echo("app").await;
    let acl = "user default off\nuser weir on >s3cret ~weir:* +@all\n";
    let redis = RedisServer::start(&[]);
    std::fs::write(redis.dir().join("users.acl"), acl).unwrap();
    drop(redis);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.acl"), acl).unwrap();
    let acl_file = dir.path().join("users.acl").display().to_string();
    let redis = RedisServer::start(&["--aclfile", &acl_file]);
    let url = |pw: &str| format!("redis://weir:{pw}@127.0.0.1:{}/0", redis.port);
    // A wrong password: the store stays down (and the limit is this node's), logged without
    // the password.
    let store = format!("{{ backend = \"redis\", url = \"{}\" }}", url("wrong-pw"));
    let weir = start(&node(up.addr, &store, 2));
    weir.wait_for_log("cannot connect to the shared store");
    let s = weir.status().await;
    assert_eq!(s["stores"][0]["up"], false);
    assert_eq!(
        s["stores"][0]["urls"],
        format!("redis://weir:***@127.0.0.1:{}/0", redis.port)
    );
    assert_eq!(statuses_of(&weir, "/local", "a", 3).await, [200, 200, 429]);
    assert!(!weir.logs().contains("wrong-pw"), "{}", weir.logs());
    drop(weir);
    // The right one: keys land under the user's permitted prefix.
    let store = format!(
        "{{ backend = \"redis\", url = \"{}\", timeout = \"1s\" }}",
        url("s3cret")
    );
    let weir = start(&node(up.addr, &store, 2));
    weir.wait_for_status("the store up", |s| s["stores"][0]["up"] == true)
        .await;
    assert_eq!(statuses_of(&weir, "/local", "a", 3).await, [200, 200, 429]);
    let keys = redis.command(Some(("weir", "s3cret")), &["KEYS", "*"]);
    assert!(keys.contains("weir:rl:{local:per-client"), "{keys}");
    assert!(!weir.logs().contains("s3cret"));
}

#[tokio::test]
async fn tls_to_redis_verifies_the_server_against_the_configured_ca() {
    let up = Upstream::echo("app").await;
    let ca = pki::Ca::new();
    let redis = RedisServer::start_tls(&ca);
    let ca_file = redis.dir().join("ca.pem").display().to_string();
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    // Verified against the CA: up, and two nodes share the limit. (A generous call timeout:
    // a TLS handshake on a loaded machine must not turn a call into a local fallback.)
    let store = format!(
        "{{ backend = \"redis\", url = \"{url}\", ca = \"{ca_file}\", timeout = \"1s\", connect-timeout = \"5s\" }}"
    );
    let a = start(&node(up.addr, &store, 2));
    let b = start(&node(up.addr, &store, 2));
    for w in [&a, &b] {
        w.wait_for_status("the store up", |s| s["stores"][0]["up"] == true)
            .await;
    }
    assert_eq!(status_of(&a, "/local", "t").await, 200);
    assert_eq!(status_of(&b, "/local", "t").await, 200);
    assert_eq!(status_of(&a, "/local", "t").await, 429);
    // Against the system's CAs the server is not trusted: no connection, and it says why.
    let store = format!("{{ backend = \"redis\", url = \"{url}\" }}");
    let c = start(&node(up.addr, &store, 2));
    let logs = c.wait_for_log("cannot connect to the shared store");
    assert!(logs.to_lowercase().contains("certificate"), "{logs}");
    assert_eq!(c.status().await["stores"][0]["up"], false);
}

#[tokio::test]
async fn a_redis_cluster_spreads_the_keys_and_keeps_one_limit() {
    let up = Upstream::echo("app").await;
    let cluster = harness::redis::cluster(3);
    let seeds: Vec<String> = cluster
        .iter()
        .take(2)
        .map(|r| format!("\"{}\"", r.url()))
        .collect();
    let store = format!(
        "{{ backend = \"redis\", cluster-nodes = [{}], timeout = \"1s\" }}",
        seeds.join(", ")
    );
    let a = start(&node(up.addr, &store, 2));
    let b = start(&node(up.addr, &store, 2));
    for w in [&a, &b] {
        w.wait_for_status("the cluster up", |s| s["stores"][0]["up"] == true)
            .await;
    }
    assert_eq!(a.status().await["stores"][0]["backend"], "redis-cluster");
    for i in 0..30 {
        let client = format!("c{i}");
        assert_eq!(status_of(&a, "/local", &client).await, 200);
        assert_eq!(status_of(&b, "/local", &client).await, 200);
        assert_eq!(status_of(&a, "/local", &client).await, 429, "{client}");
    }
    // A counter through both nodes.
    for expected in [200, 200, 200, 429] {
        let node = if expected == 429 { &b } else { &a };
        assert_eq!(status_of(node, "/count", "m").await, expected);
    }
    let held: Vec<u64> = cluster
        .iter()
        .map(|r| r.command(None, &["DBSIZE"]).parse().unwrap())
        .collect();
    assert_eq!(held.iter().sum::<u64>(), 31, "{held:?}");
    assert!(
        held.iter().filter(|n| **n > 0).count() >= 2,
        "keys on several shards: {held:?}"
    );

    // Cache purges through the cluster: numbered on the shard owning the counter, published
    // there and delivered to subscribers on every cluster node (these subscribe through the
    // first seed).
    let (origin, _) = cacheable_origin().await;
    let (c, d) = (
        Weir::start(&caching_node(&store, &origin, "")),
        Weir::start(&caching_node(&store, &origin, "")),
    );
    for w in [&c, &d] {
        wait_subscribed(w).await;
        assert_eq!(cached(w, "/k").await, "miss");
        assert_eq!(cached(w, "/k").await, "hit");
    }
    admin_purge(&c, "key=http://shop.example/k").await;
    wait_shared(&d, "received", 1).await;
    assert_eq!(cached(&d, "/k").await, "miss");
}

#[tokio::test]
async fn a_reload_moves_a_filter_between_the_local_store_and_redis() {
    let up = Upstream::echo("app").await;
    let redis = RedisServer::start(&[]);
    let manifest = |store: &str| {
        format!(
            "plugins-dir = \"{{dir}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 2\nstore = {store}\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
             [upstreams.app]\ntargets = [\"{}\"]\n\n\
             [[routes]]\nupstream = \"app\"\nfilters = [\"limit\"]\n\n\
             [filters.limit]\nplugin = \"rate-limit.wasm\"\n\
             config.limits = [{{ name = \"c\", rate = 3, per = \"1h\", key = [\"header:x-client\"] }}]\n",
            up.addr
        )
    };
    let weir = start(&manifest("{ backend = \"memory\" }"));
    let calls = |s: &serde_json::Value| s["filters"][0]["calls"].clone();
    assert_eq!(calls(&weir.status().await), "direct");
    assert_eq!(statuses_of(&weir, "/", "r", 4).await, [200, 200, 200, 429]);
    let write = |m: String| {
        let text = expand(&m).replace("{dir}", &weir.dir().display().to_string());
        std::fs::write(weir.manifest_path(), text).unwrap();
    };
    // To Redis: the filter is loaded anew, called on a fiber, its keys on Redis (fresh).
    write(manifest(&redis_store(&redis)));
    let s = weir
        .wait_for_status("generation 2 on Redis", |s| {
            s["generation"] == 2 && s["stores"][0]["up"] == true
        })
        .await;
    assert_eq!(calls(&s), "fiber");
    assert_eq!(statuses_of(&weir, "/", "r", 4).await, [200, 200, 200, 429]);
    assert!(redis
        .command(None, &["KEYS", "*"])
        .contains("weir:rl:{limit:"));
    // And back: direct calls on the node's own keys again, where `r` is still spent.
    write(manifest("{ backend = \"memory\" }"));
    let s = weir
        .wait_for_status("generation 3", |s| s["generation"] == 3)
        .await;
    assert_eq!(calls(&s), "direct");
    assert_eq!(s["stores"], serde_json::json!([]));
    assert_eq!(statuses_of(&weir, "/", "r", 1).await, [429]);
    assert!(!weir.logs().contains("ERROR"), "{}", weir.logs());
}

type Counts = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// An origin whose every response is `max-age=300`, tagged by `?sk=`; its request counts
/// per path.
async fn cacheable_origin() -> (Upstream, Counts) {
    let counts: Counts = Counts::default();
    let c = counts.clone();
    let up = Upstream::start(move |req: http::Request<hyper::body::Incoming>| {
        let counts = c.clone();
        async move {
            *counts
                .lock()
                .unwrap()
                .entry(req.uri().path().to_string())
                .or_default() += 1;
            let tag = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("sk="))
                .unwrap_or("none")
                .to_string();
            http::Response::builder()
                .header("cache-control", "max-age=300")
                .header("surrogate-key", tag)
                .body(http_body_util::Full::new(hyper::body::Bytes::from("page")))
                .unwrap()
        }
    })
    .await;
    (up, counts)
}

/// A node caching `up` in zone `main` (with `extra_zone` settings), its top-level `store`.
fn caching_node(store: &str, up: &Upstream, extra_zone: &str) -> String {
    format!(
        "admin = \"127.0.0.1:0\"\nstore = {}\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [cache-zones.main]\nmemory = \"1MiB\"\n{extra_zone}\n\n\
         [[routes]]\nupstream = \"app\"\ncache = {{ zone = \"main\" }}\n",
        store, up.addr
    )
}

/// Wait until `node` is subscribed to the shared purges.
async fn wait_subscribed(node: &Weir) {
    for _ in 0..200 {
        if shared_purges(node).await["subscribed"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never subscribed: {}", node.logs());
}

/// Two nodes caching one origin, with their purges shared through `redis`.
async fn caching_nodes(redis: &RedisServer, extra_zone: &str) -> (Upstream, Counts, Weir, Weir) {
    let (up, counts) = cacheable_origin().await;
    let manifest = caching_node(&redis_store(redis), &up, extra_zone);
    let (a, b) = (Weir::start(&manifest), Weir::start(&manifest));
    if !extra_zone.contains("share-purges = false") {
        for w in [&a, &b] {
            wait_subscribed(w).await;
        }
    }
    (up, counts, a, b)
}

/// `Cache-Status` of a GET of `path` on `node` for the site `shop.example`: "hit" or "miss".
async fn cached(node: &Weir, path: &str) -> &'static str {
    let r = get(&node.url(path), &[("host", "shop.example")]).await;
    assert_eq!(r.status, 200);
    match r.header("cache-status") {
        Some(s) if s.contains("; hit") => "hit",
        Some(_) => "miss",
        None => panic!("no cache-status"),
    }
}

async fn admin_purge(node: &Weir, query: &str) {
    let url = format!("http://{}/cache/purge?{query}", node.admin.unwrap());
    let r = post(&url, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `GET /cache` of `node`, `shared_purges` part.
async fn shared_purges(node: &Weir) -> serde_json::Value {
    let r = get(&format!("http://{}/cache", node.admin.unwrap()), &[]).await;
    serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["shared_purges"].clone()
}

/// Wait until `node` has applied `n` purges from other nodes (or found `gaps` gaps).
async fn wait_shared(node: &Weir, field: &str, n: u64) {
    for _ in 0..200 {
        if shared_purges(node).await[field].as_u64() >= Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{field} never reached {n}: {}\n{}",
        shared_purges(node).await,
        node.logs()
    );
}

#[tokio::test]
async fn a_purge_on_one_node_reaches_the_others_cache() {
    let mut redis = RedisServer::start(&[]);
    let (_up, counts, a, b) = caching_nodes(&redis, "").await;
    let fetched = |path: &str| counts.lock().unwrap().get(path).copied().unwrap_or(0);
    for path in ["/p1?sk=red", "/p2?sk=blue", "/p3"] {
        for node in [&a, &b] {
            assert_eq!(cached(node, path).await, "miss");
            assert_eq!(cached(node, path).await, "hit");
        }
    }
    assert_eq!(fetched("/p1"), 2);
    let s = shared_purges(&b).await;
    assert_eq!(s["zones"], serde_json::json!(["main"]));

    // By key, through A's admin API: B loses it too, and nothing else.
    admin_purge(&a, "key=http://shop.example/p1%3Fsk%3Dred").await;
    wait_shared(&b, "received", 1).await;
    assert_eq!(cached(&b, "/p1?sk=red").await, "miss");
    assert_eq!(cached(&b, "/p2?sk=blue").await, "hit");
    // By tag through B: A loses it.
    admin_purge(&b, "tag=blue").await;
    wait_shared(&a, "received", 1).await;
    assert_eq!(cached(&a, "/p2?sk=blue").await, "miss");
    // An unsafe method through A invalidates its URI on B (RFC 9111 §4.4, on every node).
    let r = post(&a.url("/p3"), &[("host", "shop.example")], "x").await;
    assert_eq!(r.status, 200);
    wait_shared(&b, "received", 2).await;
    assert_eq!(cached(&b, "/p3").await, "miss");
    assert_eq!(shared_purges(&a).await["sent"], 2);
    assert_eq!(shared_purges(&b).await["gaps"], 0);

    // Redis down: A purges at once, keeps the purge and sends it when Redis is back (empty);
    // B either receives it or, having missed numbers, empties its shared zone.
    assert_eq!(cached(&b, "/p3").await, "hit");
    redis.kill();
    let started = Instant::now();
    admin_purge(&a, "key=http://shop.example/p3").await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a purge waits on Redis"
    );
    assert_eq!(cached(&b, "/p3").await, "hit");
    redis.restart();
    let mut gone = false;
    for _ in 0..200 {
        let s = shared_purges(&b).await;
        if s["received"].as_u64() >= Some(3) || s["gaps"].as_u64() >= Some(1) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        gone,
        "B never heard of A's purge: {}",
        shared_purges(&b).await
    );
    assert_eq!(cached(&b, "/p3").await, "miss");
    wait_shared(&a, "sent", 3).await;

    // Numbers that skip ahead (published while B could not hear): B empties its zone.
    let p2 = cached(&b, "/p2?sk=blue").await;
    assert_eq!(cached(&b, "/p2?sk=blue").await, "hit", "{p2}");
    let gaps = shared_purges(&b).await["gaps"].as_u64().unwrap();
    redis.command(
        None,
        &[
            "PUBLISH",
            "weir:purges",
            r#"999 {"node":"x","zone":"main","tag":"nothing"}"#,
        ],
    );
    wait_shared(&b, "gaps", gaps + 1).await;
    assert_eq!(cached(&b, "/p2?sk=blue").await, "miss");
    assert!(
        b.logs()
            .contains("shared purges while not subscribed: emptied"),
        "{}",
        b.logs()
    );
    // Anything else on the channel is counted and ignored.
    redis.command(None, &["PUBLISH", "weir:purges", "not a purge"]);
    wait_shared(&b, "malformed", 1).await;
    assert_eq!(cached(&b, "/p2?sk=blue").await, "hit");
    let metrics = get(&format!("http://{}/metrics", b.admin.unwrap()), &[]).await;
    let s = shared_purges(&b).await;
    for line in [
        format!(
            "weir_cache_shared_purges_total{{kind=\"received\"}} {}",
            s["received"]
        ),
        "weir_cache_shared_purges_total{kind=\"malformed\"} 1".to_string(),
        format!("weir_cache_shared_purge_gaps_total {}", s["gaps"]),
    ] {
        assert!(metrics.body.contains(&line), "{line} in\n{}", metrics.body);
    }
}

#[tokio::test]
async fn a_zone_can_keep_its_purges_and_sharing_needs_redis() {
    let redis = RedisServer::start(&[]);
    let (_up, _counts, a, b) = caching_nodes(&redis, "share-purges = false").await;
    for node in [&a, &b] {
        assert_eq!(cached(node, "/k").await, "miss");
    }
    admin_purge(&a, "key=http://shop.example/k").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cached(&b, "/k").await, "hit");
    assert_eq!(shared_purges(&a).await, serde_json::Value::Null);

    let (ok, _, err) = check(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n\
         [cache-zones.main]\nmemory = \"1MiB\"\nshare-purges = true\n\
         [[routes]]\nupstream = \"app\"\ncache = { zone = \"main\" }\n",
    );
    assert!(!ok);
    assert!(
        err.contains("cache-zones.main.share-purges") && err.contains("weir.toml:7:"),
        "{err}"
    );
}

#[tokio::test]
async fn a_restarted_node_keeps_its_disk_tier_only_if_it_missed_no_purge() {
    let redis = RedisServer::start(&[]);
    let (up, counts) = cacheable_origin().await;
    let disk = tempfile::tempdir().unwrap();
    let a = Weir::start(&caching_node(&redis_store(&redis), &up, ""));
    let with_disk = caching_node(
        &redis_store(&redis),
        &up,
        &format!(
            "disk = {{ path = \"{}\", size = \"8MiB\" }}",
            disk.path().display()
        ),
    );
    let b = Weir::start(&with_disk);
    for w in [&a, &b] {
        wait_subscribed(w).await;
    }
    assert_eq!(cached(&b, "/d").await, "miss");
    let on_disk = || files_ending(disk.path(), ".entry");
    for _ in 0..100 {
        if on_disk() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(on_disk(), 1);
    // Restarted with no purge in between: the disk tier answers.
    assert!(b.terminate().success());
    let b = Weir::start(&with_disk);
    wait_subscribed(&b).await;
    assert_eq!(cached(&b, "/d").await, "hit");
    // A purge (of anything) while it is down: it cannot know what went, so it starts empty.
    assert!(b.terminate().success());
    admin_purge(&a, "tag=elsewhere").await;
    wait_shared(&a, "sent", 1).await;
    let b = Weir::start(&with_disk);
    wait_subscribed(&b).await;
    assert_eq!(cached(&b, "/d").await, "miss");
    assert!(
        b.logs().contains("cannot tell which shared purges"),
        "{}",
        b.logs()
    );
    assert_eq!(counts.lock().unwrap().get("/d"), Some(&2));
}
