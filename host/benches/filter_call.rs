//! Criterion benchmark: one pooled filter call, through the same code path the proxy uses
//! (instance checkout, head moved into the store, call, checkin), for every standard filter.
//! Needs the filters built (`make plugins`).
//!
//! Filters that change what they see (rewrite, security-headers, cors) get a fresh copy of the
//! head before each call, as every request does; the `copy of the heads only` row is that
//! copy's own cost, to subtract.
//!
//! `WEIR_BENCH_ONLY=<part of a row's name>` loads only the matching filters (criterion's own
//! filter still loads all of them), so that a profile of one row holds nothing else.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::config::FilterConfig;
use weir::filter::{Filter, FilterEngine, HookResult, RequestHead, ResponseHead, Verdict};

fn filter_config(plugin: &str, config_json: &str) -> FilterConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(plugin);
    assert!(
        path.exists(),
        "{} missing: run `make plugins`",
        path.display()
    );
    let mut config = FilterConfig::standalone(plugin, path, config_json);
    // auth-basic's first check hashes (SHA-256-crypt, 5000 rounds); the rest hit its cache.
    config.cpu_deadline = Duration::from_secs(1);
    config
}

/// `GET /products/42?ref=home` from `client`, with `extra` headers.
fn head(client: &str, extra: &[(&'static str, String)]) -> RequestHead {
    let mut req = http::Request::get("/products/42?ref=home")
        .header("host", "shop.example")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .header("x-request-id", "0d6f3e1c");
    for (name, value) in extra {
        req = req.header(*name, value);
    }
    let req = req.body(()).expect("request");
    RequestHead::new(req.into_parts().0, client.parse().expect("ip"), "https")
}

fn response() -> ResponseHead {
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", "text/html")
        .header("content-length", "1234")
        .header("server", "origin/1.0")
        .body(())
        .expect("response");
    ResponseHead {
        parts: resp.into_parts().0,
        body: None,
    }
}

/// An ES256 token for `claims` and the JWK of the key that signed it.
fn es256(claims: &str) -> (String, String) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key");
    let p = pair.public_key().as_ref();
    let jwk = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&p[1..33]),
        URL_SAFE_NO_PAD.encode(&p[33..65])
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = pair.sign(&rng, input.as_bytes()).expect("sign");
    (
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())),
        jwk,
    )
}

/// An HS256 token for `claims` under `secret`.
fn hs256(claims: &str, secret: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Which hook a case calls.
enum Hook {
    /// `on-request` on the same head each time (the filter leaves it as it is).
    Request,
    /// `on-request` on a fresh copy of the head.
    RequestFresh,
    /// `on-response` on a fresh copy of the request and response heads.
    ResponseFresh,
}

struct Case {
    name: &'static str,
    plugin: &'static str,
    config: String,
    client: &'static str,
    headers: Vec<(&'static str, String)>,
    hook: Hook,
}

fn case(name: &'static str, plugin: &'static str, config: &str, hook: Hook) -> Case {
    Case {
        name,
        plugin,
        config: config.to_string(),
        client: "10.1.2.3",
        headers: Vec::new(),
        hook,
    }
}

fn cases() -> Vec<Case> {
    // 1000 of the even /24s of 10.0.0.0/13 (the client, 10.1.2.3, is in one).
    let ranges: Vec<String> = (0..1000u32)
        .map(|i| format!("\"10.{}.{}.0/24\"", i / 128, (i % 128) * 2))
        .collect();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 86_400;
    let claims = format!(r#"{{"iss":"https://bench","aud":"api","sub":"ada","exp":{exp}}}"#);
    let (es_token, jwk) = es256(&claims);
    let secret = "bench-secret-bench-secret-bench-secret";
    let hs_token = hs256(&claims, secret);
    let jwt = |keys: &str, alg: &str| {
        format!(
            r#"{{"algorithms":["{alg}"],"keys":[{keys}],"issuer":"https://bench","audience":"api","forward-claims":{{"sub":"x-user"}}}}"#
        )
    };
    vec![
        case(
            "headers: set one request header",
            "headers.wasm",
            r#"{"request":{"set":{"x-served-by":"weir"}}}"#,
            Hook::Request,
        ),
        case(
            "block: path + header check, passes",
            "block.wasm",
            r#"{"paths":["/admin"],"headers":{"x-debug":"*"}}"#,
            Hook::Request,
        ),
        Case {
            headers: vec![("x-api-key", "k2".into())],
            ..case(
                "api-key: valid key, kept",
                "api-key.wasm",
                r#"{"keys":["k1","k2"],"forward-key":true}"#,
                Hook::Request,
            )
        },
        case(
            "ip-filter: 1000 allowed ranges, admitted",
            "ip-filter.wasm",
            &format!(r#"{{"allow":[{}]}}"#, ranges.join(",")),
            Hook::Request,
        ),
        Case {
            client: "81.2.69.7",
            ..case(
                "geo: EU only, GB client admitted with its location",
                "geo.wasm",
                r#"{"allow-continents":["EU"]}"#,
                Hook::RequestFresh,
            )
        },
        case(
            "rate-limit: per client IP, admitted",
            "rate-limit.wasm",
            r#"{"limits":[{"name":"per-ip","rate":1000000000,"per":"1s","key":["client-ip"]}]}"#,
            Hook::Request,
        ),
        Case {
            headers: vec![("authorization", format!("Bearer {hs_token}"))],
            ..case(
                "auth-jwt: HS256 token verified, claim forwarded",
                "auth-jwt.wasm",
                &jwt(&format!(r#"{{"secret":"{secret}"}}"#), "HS256"),
                Hook::RequestFresh,
            )
        },
        Case {
            headers: vec![("authorization", format!("Bearer {es_token}"))],
            ..case(
                "auth-jwt: ES256 token verified, claim forwarded",
                "auth-jwt.wasm",
                &jwt(&format!(r#"{{"jwk":{jwk}}}"#), "ES256"),
                Hook::RequestFresh,
            )
        },
        Case {
            headers: vec![(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("ada:bench-password")
                ),
            )],
            ..case(
                "auth-basic: SHA-256-crypt user, cached success",
                "auth-basic.wasm",
                r#"{"users":["ada:$5$benchsalt0123$xJTigL1EtF9XVL/mTHTTWb/FrluOB/40zVjKByawIL/"]}"#,
                Hook::RequestFresh,
            )
        },
        case(
            "rewrite: prefix rule, path rewritten",
            "rewrite.wasm",
            r#"{"rules":[{"prefix":"/old","redirect":"/new{rest}"},{"prefix":"/products","rewrite":"/p{rest}"}]}"#,
            Hook::RequestFresh,
        ),
        case(
            "security-headers: strict preset (on-response)",
            "security-headers.wasm",
            r#"{"preset":"strict"}"#,
            Hook::ResponseFresh,
        ),
        Case {
            headers: vec![("origin", "https://app.example".into())],
            ..case(
                "cors: allowed origin granted (on-response)",
                "cors.wasm",
                r#"{"allow-origins":["https://app.example","https://*.example.com"],"expose-headers":["x-request-id"]}"#,
                Hook::ResponseFresh,
            )
        },
    ]
}

fn copy(resp: &ResponseHead) -> ResponseHead {
    ResponseHead {
        parts: resp.parts.clone(),
        body: None,
    }
}

/// One call of `c`'s hook on `h` (and a copy of `resp`).
async fn call(filter: &Filter, c: &Case, h: &mut RequestHead, resp: &ResponseHead) -> HookResult {
    let result = match c.hook {
        Hook::Request => filter.on_request(h).await,
        Hook::RequestFresh => filter.on_request(&mut h.clone()).await,
        Hook::ResponseFresh => filter.on_response(&mut h.clone(), &mut copy(resp)).await,
    };
    result.unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

/// Time `iters` calls of `filter`'s hook.
async fn calls(filter: &Filter, c: &Case, iters: u64) -> Duration {
    let (mut h, resp) = (head(c.client, &c.headers), response());
    let start = Instant::now();
    for _ in 0..iters {
        black_box(call(filter, c, &mut h, &resp).await);
    }
    start.elapsed()
}

/// The case measures what its name says: the filter lets the request on (and, when it
/// copies the head, changes it).
async fn check(filter: &Filter, c: &Case) {
    let (mut h, resp) = (head(c.client, &c.headers), response());
    let result = call(filter, c, &mut h, &resp).await;
    assert!(
        matches!(result.verdict, Verdict::Continue),
        "{}: the filter answered {:?}",
        c.name,
        result.verdict
    );
    let copies = !matches!(c.hook, Hook::Request);
    assert!(
        !copies || result.changed,
        "{}: the filter changed nothing",
        c.name
    );
}

fn bench(c: &mut Criterion) {
    // Hooks are async fns (most filters are called directly inside them; filters that can
    // wait, such as auth-jwt, run on a fiber): drive them as the proxy's workers do.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = FilterEngine::new().expect("engine");
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/geo-demo.mmdb");
    let db = weir::geo::GeoDb::open(&[db]).expect("examples/geo-demo.mmdb");
    engine.set_geo(Some(Arc::new(db)));
    let only = std::env::var("WEIR_BENCH_ONLY").ok();
    let mut group = c.benchmark_group("pooled call");
    group.bench_function(
        "copy of the heads only (subtract from the fresh-copy rows)",
        |b| {
            let (h, resp) = (head("10.1.2.3", &[]), response());
            b.iter(|| black_box((h.clone(), copy(&resp))));
        },
    );
    for case in cases() {
        if only
            .as_ref()
            .is_some_and(|o| !case.name.contains(o.as_str()))
        {
            continue;
        }
        let filters = rt
            .block_on(engine.load_all(&[filter_config(case.plugin, &case.config)], &[]))
            .unwrap_or_else(|e| panic!("{}: {:?}", case.plugin, e[0].1));
        let filter = filters[0].clone();
        rt.block_on(check(&filter, &case));
        // Calls back to back inside one task, as a proxy worker makes them.
        group.bench_function(case.name, |b| {
            b.iter_custom(|iters| rt.block_on(calls(&filter, &case, iters)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
