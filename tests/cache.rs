//! The response cache end to end: freshness and each directive, Vary, validators and 304s,
//! revalidation, stale-while-revalidate / stale-if-error, coalescing, invalidation, purges,
//! and filters (auth runs on hits; response filters run on hits as on misses).

mod harness;
use harness::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An origin whose responses are set by the query: `cc` (Cache-Control), `etag`, `lm`
/// (Last-Modified), `vary`, `sk` (Surrogate-Key), `cookie`, `status`, `delay` (ms),
/// `expires`. It counts requests per path (`x-count`), answers a matching `If-None-Match`
/// with 304, and fails with 503 while `down` is set.
struct Origin {
    up: Upstream,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    down: Arc<AtomicBool>,
}

impl Origin {
    async fn start() -> Origin {
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (c, d) = (counts.clone(), down.clone());
        let up = Upstream::start(move |req: Request<Incoming>| {
            let counts = c.clone();
            let down = d.clone();
            async move { respond(req, &counts, &down).await }
        })
        .await;
        Origin { up, counts, down }
    }

    fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn respond(
    req: Request<Incoming>,
    counts: &Mutex<HashMap<String, usize>>,
    down: &AtomicBool,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let n = {
        let mut c = counts.lock().unwrap();
        let n = c.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let q: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.replace("%20", " ")
                    .replace("%3D", "=")
                    .replace("%2C", ",")
                    .replace("%3F", "?")
                    .replace("%25", "%"),
            )
        })
        .collect();
    if let Some(ms) = q.get("delay") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    if down.load(Ordering::SeqCst) {
        return Response::builder()
            .status(503)
            .body(Full::new(Bytes::from("down")))
            .unwrap();
    }
    let mut b = Response::builder().header("x-count", n.to_string());
    let etag = q.get("etag").map(|e| format!("\"{e}\""));
    if let (Some(etag), Some(inm)) = (&etag, req.headers().get("if-none-match")) {
        if inm.to_str().unwrap() == etag {
            b = b.status(304).header("etag", etag.as_str());
            if let Some(cc) = q.get("cc") {
                b = b.header("cache-control", cc.as_str());
            }
            return b
                .header("x-revalidated", "yes")
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
    }
    for (key, name) in [
        ("cc", "cache-control"),
        ("lm", "last-modified"),
        ("vary", "vary"),
        ("sk", "surrogate-key"),
        ("cookie", "set-cookie"),
        ("expires", "expires"),
        ("loc", "location"),
        ("ct", "content-type"),
    ] {
        if let Some(v) = q.get(key) {
            b = b.header(name, v.as_str());
        }
    }
    if let Some(etag) = etag {
        b = b.header("etag", etag);
    }
    let status: u16 = q.get("status").map_or(200, |s| s.parse().unwrap());
    let lang = req
        .headers()
        .get("accept-language")
        .map(|v| v.to_str().unwrap().to_string());
    let body = format!(
        "{path} #{n} lang={lang:?} {}",
        q.get("pad")
            .map_or(String::new(), |p| "x".repeat(p.parse().unwrap()))
    );
    b.status(status).body(Full::new(Bytes::from(body))).unwrap()
}

fn cache_manifest(origin: &Origin, route_extra: &str, zone_extra: &str) -> String {
    format!(
        "plugins-dir = \"{{plugins}}\"\nadmin = \"127.0.0.1:0\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [cache-zones.main]\nmemory = \"16MiB\"\n{zone_extra}\n\n\
         [[routes]]\nupstream = \"app\"\ncache = {{ zone = \"main\"{route_extra} }}\n",
        origin.up.addr
    )
}

async fn start(route_extra: &str, zone_extra: &str) -> (Origin, Weir) {
    let origin = Origin::start().await;
    let weir = Weir::start(&cache_manifest(&origin, route_extra, zone_extra));
    (origin, weir)
}

fn status_of(r: &Reply) -> &str {
    r.header("cache-status").unwrap_or("")
}

#[tokio::test]
async fn fresh_responses_are_served_from_the_zone_with_age() {
    let (origin, weir) = start("", "").await;
    let url = weir.url("/a?cc=max-age%3D60");
    let first = get(&url, &[]).await;
    assert_eq!(first.status, 200);
    assert!(
        status_of(&first).contains("fwd=miss") && status_of(&first).contains("stored"),
        "{first:?}"
    );
    let second = get(&url, &[]).await;
    assert_eq!(second.body, first.body);
    assert!(
        status_of(&second).starts_with("weir; hit; ttl="),
        "{second:?}"
    );
    assert_eq!(second.header("age"), Some("0"));
    assert_eq!(origin.count("/a"), 1);
    // Over HTTP/2 too, and HEAD from the stored GET.
    let h2 = send_h2(Request::get(&url).body(Full::new(Bytes::new())).unwrap()).await;
    assert!(status_of(&h2).contains("hit"), "{h2:?}");
    let head = send(Request::head(&url).body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
    assert_eq!(origin.count("/a"), 1);
    // Age grows with residence.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = get(&url, &[]).await;
    let age: u64 = later.header("age").unwrap().parse().unwrap();
    assert!((2..=5).contains(&age), "{later:?}");
    // The zone's counters on /metrics.
    let metrics = get(&format!("http://{}/metrics", weir.admin.unwrap()), &[])
        .await
        .body;
    for want in [
        "weir_cache_lookups_total{zone=\"main\",result=\"hit\"} 4",
        "weir_cache_lookups_total{zone=\"main\",result=\"miss\"} 1",
        "weir_cache_stored_total{zone=\"main\"} 1",
        "weir_cache_entries{zone=\"main\"} 1",
        "weir_cache_bytes{zone=\"main\",kind=\"limit\"} 16777216",
    ] {
        assert!(metrics.contains(want), "{want}\n{metrics}");
    }
}

#[tokio::test]
async fn what_is_never_stored() {
    let (origin, weir) = start("", "").await;
    for (path, query, detail) in [
        ("/ns", "cc=no-store%2C%20max-age%3D60", "no-store"),
        ("/pv", "cc=private%2C%20max-age%3D60", "private"),
        ("/ck", "cc=max-age%3D60&cookie=s%3D1", "set-cookie"),
        ("/vs", "cc=max-age%3D60&vary=*", "vary-star"),
        ("/nf", "", "no-freshness"),
        ("/pa", "cc=max-age%3D60&status=206", "status"),
    ] {
        let url = weir.url(&format!("{path}?{query}"));
        get(&url, &[]).await;
        let r = get(&url, &[]).await;
        assert!(
            status_of(&r).contains(&format!("detail={detail}")),
            "{path}: {r:?}"
        );
        assert_eq!(origin.count(path), 2, "{path} went upstream twice");
    }
    // A request with Authorization: only a response that allows it is stored.
    let url = weir.url("/auth?cc=max-age%3D60");
    get(&url, &[("authorization", "Bearer x")]).await;
    let r = get(&url, &[("authorization", "Bearer x")]).await;
    assert!(status_of(&r).contains("detail=authorization"), "{r:?}");
    let url = weir.url("/auth2?cc=public%2C%20max-age%3D60");
    get(&url, &[("authorization", "Bearer x")]).await;
    assert!(status_of(&get(&url, &[("authorization", "Bearer x")]).await).contains("hit"));
    // A request's no-store keeps its response out; its no-cache goes upstream.
    let url = weir.url("/rq?cc=max-age%3D60");
    get(&url, &[("cache-control", "no-store")]).await;
    assert!(status_of(&get(&url, &[]).await).contains("fwd=miss"));
    let r = get(&url, &[("cache-control", "no-cache")]).await;
    assert!(status_of(&r).contains("fwd=request"), "{r:?}");
    let r = get(&url, &[("pragma", "no-cache")]).await;
    assert!(status_of(&r).contains("fwd=request"), "{r:?}");
    assert_eq!(origin.count("/rq"), 4);
}

#[tokio::test]
async fn s_maxage_beats_max_age_and_expires_counts_from_date() {
    let (origin, weir) = start("", "").await;
    let url = weir.url("/s?cc=max-age%3D0%2C%20s-maxage%3D60");
    get(&url, &[]).await;
    assert!(status_of(&get(&url, &[]).await).contains("hit"));
    // An invalid Expires is in the past.
    let url = weir.url("/e?expires=0");
    get(&url, &[]).await;
    assert!(!status_of(&get(&url, &[]).await).contains("hit"));
    assert_eq!(origin.count("/e"), 2);
    // min-fresh and max-age from the client.
    let url = weir.url("/m?cc=max-age%3D30");
    get(&url, &[]).await;
    let r = get(&url, &[("cache-control", "min-fresh=40")]).await;
    assert!(!status_of(&r).contains("hit"), "{r:?}");
    let r = get(&url, &[("cache-control", "max-age=100")]).await;
    assert!(status_of(&r).contains("hit"), "{r:?}");
}

#[tokio::test]
async fn vary_selects_variants_and_default_ttl_gives_a_lifetime() {
    let (origin, weir) = start(", default-ttl = \"60s\"", "").await;
    let url = weir.url("/v?vary=accept-language");
    let en = get(&url, &[("accept-language", "en")]).await;
    let de = get(&url, &[("accept-language", "de")]).await;
    assert!(de.body.contains("lang=Some(\"de\")"), "{de:?}");
    let en2 = get(&url, &[("accept-language", "en")]).await;
    assert_eq!(en2.body, en.body);
    assert!(status_of(&en2).contains("hit"));
    let de2 = get(&url, &[("accept-language", "de")]).await;
    assert_eq!(de2.body, de.body);
    assert_eq!(origin.count("/v"), 2);
    let none = get(&url, &[]).await;
    assert!(status_of(&none).contains("fwd=miss"), "{none:?}");
}

#[tokio::test]
async fn client_conditions_get_304_and_stale_entries_revalidate() {
    let (origin, weir) = start("", "").await;
    let lm = "Mon, 01 Jan 2024 00:00:00 GMT";
    let url = weir.url(
        "/c?cc=max-age%3D1&etag=v1&lm=Mon, 01 Jan 2024 00:00:00 GMT"
            .replace(' ', "%20")
            .as_str(),
    );
    let first = get(&url, &[]).await;
    assert_eq!(first.header("etag"), Some("\"v1\""));
    let r = get(&url, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some("\"v1\""));
    // If-None-Match wins: a non-matching one is not rescued by If-Modified-Since.
    let r = get(
        &url,
        &[("if-none-match", "\"v0\""), ("if-modified-since", lm)],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(&url, &[("if-modified-since", lm)]).await;
    assert_eq!(r.status, 304);
    assert_eq!(origin.count("/c"), 1);
    // Stale: revalidated with the stored ETag; the 304 refreshes the entry.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&url, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, first.body, "served from the zone after a 304");
    assert!(status_of(&r).contains("fwd=stale; fwd-status=304"), "{r:?}");
    assert_eq!(
        r.header("x-revalidated"),
        Some("yes"),
        "the 304's fields updated the entry"
    );
    assert_eq!(origin.count("/c"), 2);
    // Fresh again for a second (or, on a slow machine, revalidated again): from the zone.
    let again = get(&url, &[]).await;
    assert_eq!(again.body, first.body, "{again:?}");
}

#[tokio::test]
async fn stale_while_revalidate_and_stale_if_error() {
    let (origin, weir) = start("", "").await;
    let url = weir.url("/w?cc=max-age%3D1%2C%20stale-while-revalidate%3D30");
    get(&url, &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&url, &[]).await;
    assert!(
        status_of(&r).contains("detail=stale-while-revalidate"),
        "{r:?}"
    );
    assert!(r.body.contains("#1"), "the stale copy, at once");
    // The background refresh stores the new response.
    let mut refreshed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = get(&url, &[]).await;
        // Served from the zone, with the refreshed body (under load a later refresh may
        // already have replaced it: any body but the first).
        if !r.body.contains("#1") && status_of(&r).contains("hit") {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed);
    assert!(origin.count("/w") >= 2);

    let url = weir.url("/x?cc=max-age%3D1%2C%20stale-if-error%3D30");
    get(&url, &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    origin.down.store(true, Ordering::SeqCst);
    let r = get(&url, &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(status_of(&r).contains("detail=stale-if-error"), "{r:?}");
    assert!(status_of(&r).contains("fwd-status=503"), "{r:?}");
    // must-revalidate forbids it.
    origin.down.store(false, Ordering::SeqCst);
    let url = weir.url("/y?cc=max-age%3D1%2C%20must-revalidate%2C%20stale-if-error%3D30");
    get(&url, &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    origin.down.store(true, Ordering::SeqCst);
    assert_eq!(get(&url, &[]).await.status, 503);
}

#[tokio::test]
async fn fifty_concurrent_misses_make_one_upstream_request() {
    let (origin, weir) = start("", "").await;
    let url = weir.url("/co?cc=max-age%3D60&delay=300");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                get(&url, &[]).await
            } else {
                send_h2(Request::get(&url).body(Full::new(Bytes::new())).unwrap()).await
            }
        }));
    }
    let (mut collapsed, mut hits) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body.contains("#1"), "{r:?}");
        collapsed += status_of(&r).contains("collapsed") as usize;
        hits += status_of(&r).contains("hit") as usize;
    }
    assert_eq!(origin.count("/co"), 1);
    // The others waited for that one fetch (a request that came after it ended is a plain
    // hit: possible on a slow machine, where 50 tasks take a while to start).
    assert_eq!(hits, 49);
    assert!(collapsed > 0);
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_uri_and_same_origin_locations() {
    let (origin, weir) = start("", "").await;
    let a = weir.url("/item?cc=max-age%3D60");
    let b = weir.url("/other?cc=max-age%3D60");
    get(&a, &[]).await;
    get(&b, &[]).await;
    assert!(status_of(&get(&a, &[]).await).contains("hit"));
    // A POST to another URI (another query) leaves this one.
    let post = send(
        Request::post(weir.url("/item?cc=max-age%3D60&status=201"))
            .body(Full::new(Bytes::from("x")))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 201);
    assert!(status_of(&get(&a, &[]).await).contains("hit"));
    let post = send(Request::post(&a).body(Full::new(Bytes::from("x"))).unwrap()).await;
    assert_eq!(post.status, 200);
    let r = get(&a, &[]).await;
    assert!(status_of(&r).contains("fwd=miss"), "{r:?}");
    // A failed DELETE invalidates nothing.
    let del = send(
        Request::delete(weir.url("/other?cc=max-age%3D60&status=500"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(del.status, 500);
    assert!(status_of(&get(&b, &[]).await).contains("hit"));
    assert_eq!(origin.count("/item"), 4);
    // A PUT whose response names /other (same origin, relative) as its Location takes it too;
    // one naming another origin's URL takes nothing here.
    let put = |loc: &'static str| {
        let url = weir.url(&format!("/new?status=201&loc={loc}"));
        async move { send(Request::put(url).body(Full::new(Bytes::from("x"))).unwrap()).await }
    };
    assert_eq!(
        put("http://elsewhere.example/other%3Fcc%3Dmax-age%253D60")
            .await
            .status,
        201
    );
    assert!(status_of(&get(&b, &[]).await).contains("hit"));
    let r = put("/other%3Fcc%3Dmax-age%253D60").await;
    assert_eq!(r.header("location"), Some("/other?cc=max-age%3D60"));
    let r = get(&b, &[]).await;
    assert!(status_of(&r).contains("fwd=miss"), "{r:?}");
}

#[tokio::test]
async fn purges_by_key_prefix_tag_and_the_purge_method() {
    let (origin, weir) = start("", "purge-from = [\"127.0.0.1\"]").await;
    let admin = weir.admin.unwrap();
    let host = weir
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let urls: Vec<String> = [
        "/p/1?cc=max-age%3D60&sk=red",
        "/p/2?cc=max-age%3D60&sk=blue%20red",
        "/q?cc=max-age%3D60&sk=blue",
    ]
    .iter()
    .map(|p| weir.url(p))
    .collect();
    for u in &urls {
        let r = get(u, &[]).await;
        assert!(
            r.header("surrogate-key").is_none(),
            "tags are not shown to clients"
        );
    }
    let purge = |q: String| async move {
        let r = post(&format!("http://{admin}/cache/purge?{q}"), &[], "").await;
        assert_eq!(r.status, 200, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["purged"].as_u64().unwrap()
    };
    assert_eq!(purge("tag=red".into()).await, 2);
    assert!(status_of(&get(&urls[2], &[]).await).contains("hit"));
    assert_eq!(purge(format!("prefix=http://{host}/q")).await, 1);
    get(&urls[0], &[]).await;
    let key = format!(
        "key=http://{}/p/1?cc=max-age%253D60%26sk=red",
        host.to_uppercase()
    );
    assert_eq!(purge(key).await, 1);
    assert!(status_of(&get(&urls[0], &[]).await).contains("fwd=miss"));
    let bad = post(&format!("http://{admin}/cache/purge?size=1"), &[], "").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown parameter \"size\""), "{bad:?}");
    let bad = post(
        &format!("http://{admin}/cache/purge?tag=x&zone=nope"),
        &[],
        "",
    )
    .await;
    assert_eq!(bad.status, 404);
    // PURGE from an allowed client.
    let r = send(
        Request::builder()
            .method("PURGE")
            .uri(&urls[0])
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.trim(), "{\"purged\":1}");
    let zones = get(&format!("http://{admin}/cache"), &[]).await;
    assert!(zones.body.contains("\"name\": \"main\""), "{zones:?}");
    assert!(origin.count("/p/1") >= 2);
}

#[tokio::test]
async fn purge_is_refused_from_other_clients() {
    let (_origin, weir) = start("", "").await;
    let r = send(
        Request::builder()
            .method("PURGE")
            .uri(weir.url("/x"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn auth_runs_on_hits_and_response_filters_on_hits_and_misses() {
    let origin = Origin::start().await;
    let m = cache_manifest(&origin, "", "")
        .replace("cache = {", "filters = [\"key\", \"stamp\"]\ncache = {")
        + "\n[filters.key]\nplugin = \"api-key.wasm\"\nconfig = { keys = [\"k-1\"] }\n\n\
           [filters.stamp]\nplugin = \"headers.wasm\"\nconfig = { response = { set = { \"x-stamp\" = \"1\" } } }\n";
    let weir = Weir::start(&m);
    let url = weir.url("/secret?cc=public%2C%20max-age%3D60");
    let r = get(&url, &[("x-api-key", "k-1")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-stamp"), Some("1"));
    let hit = get(&url, &[("x-api-key", "k-1")]).await;
    assert!(status_of(&hit).contains("hit"), "{hit:?}");
    assert_eq!(
        hit.header_all("x-stamp"),
        vec!["1"],
        "set once on the hit, not stored"
    );
    let denied = get(&url, &[]).await;
    assert_eq!(denied.status, 401, "a hit never skips the auth filter");
    assert!(!denied.body.contains("/secret"));
    assert_eq!(origin.count("/secret"), 1);
}

#[tokio::test]
async fn filter_decisions_steer_the_cache_and_compression() {
    let origin = Origin::start().await;
    let m = cache_manifest(&origin, "", "").replace(
        "cache = {",
        "filters = [\"policy\"]\ncompress = true\ncache = {",
    ) + r#"
[filters.policy]
plugin = "cache-policy.wasm"
[filters.policy.config]
rules = [
  { path = "/private/", bypass = true },
  { path = "/tenant/", key-header = "x-tenant" },
  { path = "/secret/", no-compress = true, ttl = "60s" },
  { status = [500], uncacheable = true },
  { path = "/tagged/", ttl = "60s", tags = ["catalog"] },
  { path = "/", ttl = "60s" },
]
"#;
    let weir = Weir::start(&m);
    // A response without freshness information is stored with the filter's TTL.
    let url = weir.url("/plain");
    let first = get(&url, &[]).await;
    assert!(status_of(&first).contains("stored"), "{first:?}");
    assert!(status_of(&get(&url, &[]).await).contains("hit"));
    // Bypass: never looked up, never stored.
    let url = weir.url("/private/x?cc=max-age%3D60");
    get(&url, &[]).await;
    let r = get(&url, &[]).await;
    assert!(status_of(&r).contains("fwd=bypass"), "{r:?}");
    assert_eq!(origin.count("/private/x"), 2);
    // Key parts: one entry per tenant.
    let url = weir.url("/tenant/t?cc=max-age%3D60");
    let a = get(&url, &[("x-tenant", "a")]).await;
    let b = get(&url, &[("x-tenant", "b")]).await;
    assert_ne!(a.body, b.body);
    assert_eq!(get(&url, &[("x-tenant", "a")]).await.body, a.body);
    assert_eq!(get(&url, &[("x-tenant", "b")]).await.body, b.body);
    let none = get(&url, &[("weir-key-parts", "x-tenant=a")]).await;
    assert!(
        status_of(&none).contains("fwd=miss"),
        "a client cannot send key parts: {none:?}"
    );
    assert_eq!(origin.count("/tenant/t"), 3);
    // Uncacheable by status, though its headers allow storing.
    let url = weir.url("/err?cc=max-age%3D60&status=500");
    let r = get(&url, &[]).await;
    assert!(status_of(&r).contains("detail=uncacheable"), "{r:?}");
    get(&url, &[]).await;
    assert_eq!(origin.count("/err"), 2);
    // Tags from the filter purge like the origin's.
    get(&weir.url("/tagged/1"), &[]).await;
    let admin = weir.admin.unwrap();
    let r = post(&format!("http://{admin}/cache/purge?tag=catalog"), &[], "").await;
    assert_eq!(r.body.trim(), "{\n  \"purged\": 1\n}", "{r:?}");
    // no-compress beats the route's compression.
    let pad = "pad=3000&ct=text/plain";
    let r = get(
        &weir.url(&format!("/secret/s?{pad}")),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert!(r.header("content-encoding").is_none(), "{r:?}");
    let r = get(
        &weir.url(&format!("/open?{pad}")),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

#[tokio::test]
async fn a_response_to_an_authorized_client_is_not_shared_though_a_filter_removed_the_header() {
    use base64::Engine as _;
    let origin = Origin::start().await;
    // auth-basic removes Authorization before the request goes on (and before the cache).
    let m = cache_manifest(&origin, "", "")
        .replace("cache = {", "filters = [\"staff\"]\ncache = {")
        + "\n[filters.staff]\nplugin = \"auth-basic.wasm\"\n[filters.staff.config]\nrealm = \"staff\"\n\
           users = [\"ada:$2y$04$KBCwKxOzLha2MUDgW0PjXe9b1DxIEkVo6xSca/TrCtEXnT7desnbu\"]\n";
    let weir = Weir::start(&m);
    let ada = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ada:s3cret")
    );
    let url = weir.url("/mine?cc=max-age%3D60");
    let r = get(&url, &[("authorization", &ada)]).await;
    assert_eq!(r.status, 200);
    assert!(status_of(&r).contains("detail=authorization"), "{r:?}");
    get(&url, &[("authorization", &ada)]).await;
    assert_eq!(origin.count("/mine"), 2);
    // A response that says it may be shared is.
    let url = weir.url("/all?cc=public%2C%20max-age%3D60");
    get(&url, &[("authorization", &ada)]).await;
    assert!(status_of(&get(&url, &[("authorization", &ada)]).await).contains("hit"));
}

#[tokio::test]
async fn the_disk_tier_survives_a_restart_and_skips_broken_files() {
    let origin = Origin::start().await;
    let disk = tempfile::tempdir().unwrap();
    let zone = format!(
        "disk = {{ path = \"{}\", size = \"8MiB\" }}",
        disk.path().display()
    );
    let m = cache_manifest(&origin, "", &zone);
    let weir = Weir::start(&m);
    let url = |w: &Weir, p: &str| w.url(p);
    // Keys name the host: the same one before and after (the port changes).
    const SITE: &[(&str, &str)] = &[("host", "site.example")];
    let first = get(&url(&weir, "/kept?cc=max-age%3D600&sk=t1"), SITE).await;
    get(&url(&weir, "/gone?cc=max-age%3D600&sk=t2"), SITE).await;
    // The writer thread puts both on disk.
    let files = || files_ending(disk.path(), ".entry");
    for _ in 0..100 {
        if files() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files(), 2);
    // A purge removes the file too.
    let r = post(
        &format!("http://{}/cache/purge?tag=t2", weir.admin.unwrap()),
        &[],
        "",
    )
    .await;
    assert!(r.body.contains("\"purged\": 1"), "{r:?}");
    // A torn write and a garbage file, as a crash might leave.
    std::fs::write(disk.path().join("0123.tmp"), b"half").unwrap();
    std::fs::write(disk.path().join("abcd.entry"), b"WEIRC001 garbage").unwrap();
    assert!(weir.terminate().success());

    let weir = Weir::start(&m);
    let r = get(&url(&weir, "/kept?cc=max-age%3D600&sk=t1"), SITE).await;
    assert!(status_of(&r).contains("hit"), "{r:?}");
    assert_eq!(r.body, first.body);
    let age: u64 = r.header("age").unwrap().parse().unwrap();
    assert!(age < 600, "{r:?}");
    let r = get(&url(&weir, "/gone?cc=max-age%3D600&sk=t2"), SITE).await;
    assert!(
        status_of(&r).contains("fwd=miss"),
        "purged before the restart: {r:?}"
    );
    assert_eq!(origin.count("/kept"), 1);
    assert!(!disk.path().join("0123.tmp").exists());
    assert!(!disk.path().join("abcd.entry").exists());
    weir.wait_for_log("cache file unreadable: removed");
}

#[tokio::test]
async fn ranges_are_served_from_a_stored_response() {
    let (origin, weir) = start("", "").await;
    let url = weir.url("/r?cc=max-age%3D60");
    let full = get(&url, &[]).await;
    let r = get(&url, &[("range", "bytes=0-3")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[..4]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-3/{}", full.body.len()).as_str())
    );
    let r = get(&url, &[("range", "bytes=9999-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(origin.count("/r"), 1);
}

#[tokio::test]
async fn a_raw_request_cannot_poison_another_key() {
    let (origin, weir) = start(", query-allow = [\"page\"]", "").await;
    let addr = weir
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    // `%70age` is `page` to the upstream: it must be part of the key, not dropped.
    let poison = raw::exchange(
        addr,
        b"GET /list?%70age=evil&cc=max-age%3D60 HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(poison.status, 200);
    let clean = raw::exchange(
        addr,
        b"GET /list?cc=max-age%3D60 HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !clean.text.contains("collapsed") && clean.text.contains("fwd=miss"),
        "{}",
        clean.text
    );
    assert_eq!(origin.count("/list"), 2);
    // Different hosts are different keys.
    let other = raw::exchange(
        addr,
        b"GET /list?cc=max-age%3D60 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(other.text.contains("fwd=miss"), "{}", other.text);
}

#[test]
fn bad_cache_settings_are_located() {
    let base =
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n";
    let (ok, _, err) = check(&format!(
        "{base}[cache-zones.main]\nmemory = \"1KiB\"\nmax-variants = 0\npurge-from = [\"x\"]\n\
         [cache-zones.other]\nmemory = \"1MiB\"\ndisk = {{ path = \"d\", size = \"1KiB\" }}\n\
         [[routes]]\nupstream = \"app\"\ncache = {{ zone = \"mian\" }}\ncompress = {{ gzip-level = 12, codings = [\"lz4\"] }}\n"
    ));
    assert!(!ok);
    for want in [
        "cache-zones.main.memory: at least 64KiB",
        "cache-zones.main.max-variants: 0 is not in 1..=64",
        "cache-zones.main.purge-from: \"x\" is not an address or CIDR",
        "routes[0].cache.zone: no cache zone named \"mian\" (defined: main, other)",
        "routes[0].compress.gzip-level: 12 is not in 1..=9",
        "cache-zones.other.disk.size: at least 1MiB",
        "routes[0].compress.codings: \"lz4\" is not \"zstd\", \"br\" or \"gzip\"",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
    assert!(err.contains("weir.toml:14:18:"), "{err}");
}
