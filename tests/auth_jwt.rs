//! The `auth-jwt` filter end to end with ES256 tokens (signed here with ring) and keys from
//! a JWKS served over HTTPS by a local TLS server: accepted tokens pass with their claims
//! forwarded (over HTTP/1.1 and HTTP/2), bad ones get 401 / 403 with the RFC 6750
//! challenge, a rotated key is picked up by its `kid`, a revoked one stops verifying even
//! tokens already verified, a failing JWKS keeps the last good keys, and no keys at all is
//! a 503.

mod harness;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use harness::*;
use http_body_util::Full;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Signer {
    kid: &'static str,
    pair: EcdsaKeyPair,
}

impl Signer {
    fn new(kid: &'static str) -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Signer { kid, pair }
    }

    fn jwk(&self) -> Value {
        let p = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
               "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
    }

    fn token(&self, claims: Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, role: &str) -> Value {
    json!({"iss": "https://issuer.test", "aud": "api", "sub": sub, "role": role, "exp": now() + 300})
}

/// A JWKS server whose answer (status, document) the test changes, counting fetches.
struct Jwks {
    server: Upstream,
    answer: Arc<Mutex<(u16, String)>>,
    fetches: Arc<Mutex<u32>>,
}

async fn jwks(ca: &pki::Ca, keys: &[&Signer]) -> Jwks {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string();
    let answer = Arc::new(Mutex::new((200u16, doc)));
    let fetches = Arc::new(Mutex::new(0));
    let (a, f) = (answer.clone(), fetches.clone());
    let server = pki::tls_start(&ca.issue(&["localhost"]), move |_req| {
        let (status, body) = a.lock().unwrap().clone();
        *f.lock().unwrap() += 1;
        async move {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }
    })
    .await;
    Jwks {
        server,
        answer,
        fetches,
    }
}

fn start(ca: &pki::Ca, app: &Upstream, jwks: &Jwks, refresh: &str) -> Weir {
    let dir = tempfile::tempdir().unwrap();
    ca.write(&dir.path().join("ca.pem"));
    let port = jwks.server.addr.port();
    let filter = format!(
        r#"
[filters.jwt]
plugin = "auth-jwt.wasm"
allow-hosts = ["localhost:{port}"]
outbound-ca = "ca.pem"
[filters.jwt.config]
algorithms = ["ES256"]
jwks-url = "https://localhost:{port}/.well-known/jwks.json"
jwks-refresh = "{refresh}"
issuer = "https://issuer.test"
audience = "api"
claims = {{ role = ["admin", "ops"] }}
forward-claims = {{ sub = "x-user" }}
"#
    );
    let m = manifest(&[app.addr], &["jwt"], &filter);
    Weir::start_in(dir, &format!("admin = \"127.0.0.1:0\"\n{m}"))
}

fn h2(url: &str, auth: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .header("authorization", auth)
        .header("x-user", "forged")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn tokens_are_checked_against_keys_fetched_over_https() {
    let ca = pki::Ca::new();
    let app = Upstream::echo("app").await;
    let a = Signer::new("a");
    let server = jwks(&ca, &[&a]).await;
    let weir = start(&ca, &app, &server, "10m");
    let bearer = format!("Bearer {}", a.token(claims("ada", "admin")));
    for r in [
        get(
            &weir.url("/"),
            &[("authorization", &bearer), ("x-user", "forged")],
        )
        .await,
        send_h2(h2(&weir.url("/"), &bearer)).await,
    ] {
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("\nx-user: ada\n"), "{}", r.body);
        assert!(
            !r.body.contains("forged") && !r.body.contains("authorization"),
            "{}",
            r.body
        );
    }
    let mut expired = claims("ada", "admin");
    expired["exp"] = json!(now() - 120);
    let cases = [
        (String::new(), 401, "Bearer realm=\"api\""),
        (
            format!("Bearer {}", a.token(expired)),
            401,
            "error=\"invalid_token\", error_description=\"the token has expired\"",
        ),
        (
            format!("Bearer {}", a.token(claims("bob", "dev"))),
            403,
            "error=\"insufficient_scope\"",
        ),
        (
            format!("Bearer {}", Signer::new("a").token(claims("eve", "admin"))),
            401,
            "signature does not verify",
        ),
        ("Bearer not.a.token".into(), 401, "invalid_token"),
    ];
    for (auth, status, challenge) in cases {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("authorization", &auth)]
        };
        let r = get(&weir.url("/"), &headers).await;
        assert_eq!(r.status, status, "{auth}: {}", r.body);
        let got = r.header("www-authenticate").unwrap_or("");
        assert!(got.contains(challenge), "{auth}: {got}");
        assert_eq!(r.header("x-upstream"), None);
    }
    assert_eq!(
        *server.fetches.lock().unwrap(),
        1,
        "one fetch serves every worker and instance"
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_by_its_kid_and_a_failing_jwks_keeps_the_last_keys() {
    let ca = pki::Ca::new();
    let app = Upstream::echo("app").await;
    let (a, b) = (Signer::new("a"), Signer::new("b"));
    let server = jwks(&ca, &[&a]).await;
    let weir = start(&ca, &app, &server, "1s");
    let with = |s: &Signer| format!("Bearer {}", s.token(claims("ada", "ops")));
    assert_eq!(
        get(&weir.url("/"), &[("authorization", &with(&a))])
            .await
            .status,
        200
    );
    // The issuer rotates to b: a token naming kid b makes the filter fetch at once.
    server.answer.lock().unwrap().1 = json!({"keys": [a.jwk(), b.jwk()]}).to_string();
    let r = get(&weir.url("/"), &[("authorization", &with(&b))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The JWKS endpoint breaks: refreshes fail, the last good keys keep working.
    *server.answer.lock().unwrap() = (500, "oops".into());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for s in [&a, &b] {
        let r = get(&weir.url("/"), &[("authorization", &with(s))]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    weir.wait_for_log("JWKS refresh from https://localhost");
    weir.wait_for_log("keeping the last good keys: answered 500");
}

#[tokio::test]
async fn without_any_good_keys_requests_get_503() {
    let ca = pki::Ca::new();
    let app = Upstream::echo("app").await;
    let a = Signer::new("a");
    let server = jwks(&ca, &[&a]).await;
    *server.answer.lock().unwrap() = (200, "{\"keys\": []}".into());
    let weir = start(&ca, &app, &server, "10m");
    let r = get(
        &weir.url("/"),
        &[(
            "authorization",
            &format!("Bearer {}", a.token(claims("ada", "ops"))),
        )],
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body, "signing keys are unavailable\n");
    weir.wait_for_log("no usable signing key");
}

#[tokio::test]
async fn a_key_dropped_from_the_jwks_stops_verifying_tokens_already_seen() {
    let ca = pki::Ca::new();
    let app = Upstream::echo("app").await;
    let (a, b) = (Signer::new("a"), Signer::new("b"));
    let server = jwks(&ca, &[&a]).await;
    let weir = start(&ca, &app, &server, "1s");
    // One token, sent again and again: after its first check it is remembered.
    let bearer = format!("Bearer {}", a.token(claims("ada", "ops")));
    for _ in 0..4 {
        let r = get(&weir.url("/"), &[("authorization", &bearer)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The issuer revokes a: once the JWKS is refreshed, a's token is refused.
    server.answer.lock().unwrap().1 = json!({"keys": [b.jwk()]}).to_string();
    let mut status = 200;
    for _ in 0..50 {
        status = get(&weir.url("/"), &[("authorization", &bearer)])
            .await
            .status
            .as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        401,
        "a revoked key's token is refused; logs:\n{}",
        weir.logs()
    );
    // ... by every instance, however often it saw the token, once each has looked at the
    // shared store again (an instance looks at most once a second: one that looked just
    // before the refresh may still accept the token for up to that second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..6 {
        let r = get(&weir.url("/"), &[("authorization", &bearer)]).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = get(
        &weir.url("/"),
        &[(
            "authorization",
            &format!("Bearer {}", b.token(claims("ada", "ops"))),
        )],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
