//! The filter against tokens signed here, natively, with every supported algorithm.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use weir_sdk::testing::{self, MockRequest};

const RSA_PRIVATE: &str = include_str!("../testdata/rsa-test-key.pem");
const RSA_PUBLIC: &str = include_str!("../testdata/rsa-test-key.pub");
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn es256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn es384_key() -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::from_slice(&[5u8; 48]).unwrap()
}

fn ed_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
}

/// A token of `claims`, signed with this file's key for `alg`.
pub fn sign(alg: &str, kid: Option<&str>, claims: Value) -> String {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(k) = kid {
        header["kid"] = json!(k);
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let msg = input.as_bytes();
    let rsa_key = || rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PRIVATE).unwrap();
    let sig: Vec<u8> = match alg {
        "HS256" => {
            let mut m =
                <Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
            hmac::Mac::update(&mut m, msg);
            hmac::Mac::finalize(m).into_bytes().to_vec()
        }
        "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key())
            .sign(msg)
            .to_vec(),
        "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(rsa_key())
            .sign(msg)
            .to_vec(),
        "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(rsa_key())
            .sign_with_rng(&mut rsa::rand_core::OsRng, msg)
            .to_vec(),
        "ES256" => {
            let s: p256::ecdsa::Signature = es256_key().sign(msg);
            s.to_bytes().to_vec()
        }
        "ES384" => {
            let s: p384::ecdsa::Signature = es384_key().sign(msg);
            s.to_bytes().to_vec()
        }
        "EdDSA" => {
            use ed25519_dalek::Signer as _;
            ed_key().sign(msg).to_bytes().to_vec()
        }
        "none" => Vec::new(),
        other => panic!("{other}"),
    };
    format!("{input}.{}", b64(&sig))
}

use hmac::Hmac;

fn es256_jwk() -> Value {
    let point = es256_key().verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

fn es384_jwk() -> Value {
    let point = es384_key().verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-384", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

fn ed_jwk() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed_key().verifying_key().as_bytes())})
}

fn filter(extra: Value) -> AuthJwt {
    let mut cfg = json!({
        "algorithms": ["HS256", "RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        "keys": [
            {"secret": SECRET, "kid": "hs"},
            {"pem": RSA_PUBLIC, "kid": "rsa"},
            {"jwk": es256_jwk(), "kid": "ec"},
            {"jwk": es384_jwk()},
            {"jwk": ed_jwk(), "kid": "ed"},
        ],
        "issuer": "https://issuer",
        "audience": "api",
        "leeway": "30s",
        "forward-claims": {"sub": "x-user", "roles": "x-roles"},
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    testing::init::<AuthJwt>(&cfg.to_string()).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn good_claims() -> Value {
    json!({"iss": "https://issuer", "aud": ["api"], "sub": "ada", "roles": ["dev", "ops"], "exp": now() + 600})
}

fn call(f: &AuthJwt, token: &str) -> (Action, MockRequest) {
    let mut req = MockRequest::get("/")
        .with_header("authorization", &format!("Bearer {token}"))
        .with_header("x-user", "forged");
    (testing::on_request(f, &mut req), req)
}

fn challenge(act: &Action, status: u16) -> String {
    let r = testing::assert_responds(act, status);
    r.header_value("www-authenticate").unwrap_or("").to_string()
}

#[test]
fn every_algorithm_verifies_and_claims_are_forwarded() {
    let f = filter(json!({}));
    for (alg, kid) in [
        ("HS256", Some("hs")),
        ("RS256", Some("rsa")),
        ("RS512", None),
        ("PS256", Some("rsa")),
        ("ES256", Some("ec")),
        ("ES384", None),
        ("EdDSA", Some("ed")),
    ] {
        let (act, mut req) = call(&f, &sign(alg, kid, good_claims()));
        testing::assert_continues(&act);
        let r = req.request();
        assert_eq!(r.header("x-user").as_deref(), Some("ada"), "{alg}");
        assert_eq!(r.header("x-roles").as_deref(), Some("dev,ops"), "{alg}");
        assert_eq!(r.header("authorization"), None, "{alg}: stripped");
        assert_eq!(r.context("jwt.sub").as_deref(), Some("ada"), "{alg}");
    }
}

#[test]
fn none_confusion_and_tampering_are_refused() {
    let f = filter(json!({}));
    // alg none, with or without a signature.
    let none = sign("none", None, good_claims());
    assert!(challenge(&call(&f, &none).0, 401).contains("invalid_token"));
    // Algorithm confusion: an HS256 token "signed" with the RSA public key as secret.
    let input = {
        let t = sign("HS256", None, good_claims());
        t.rsplit_once('.').unwrap().0.to_string()
    };
    let mut m = <Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(RSA_PUBLIC.as_bytes()).unwrap();
    hmac::Mac::update(&mut m, input.as_bytes());
    let forged = format!("{input}.{}", b64(&hmac::Mac::finalize(m).into_bytes()));
    assert!(challenge(&call(&f, &forged).0, 401).contains("signature does not verify"));
    // A kid naming the RSA key on an ES256 token: the EC key type decides, not the kid.
    let t = sign("ES256", Some("rsa"), good_claims());
    testing::assert_responds(&call(&f, &t).0, 401);
    // Changed claims, same signature.
    let t = sign("ES256", Some("ec"), good_claims());
    let parts: Vec<&str> = t.split('.').collect();
    let mut evil = good_claims();
    evil["sub"] = json!("root");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(evil.to_string().as_bytes()),
        parts[2]
    );
    testing::assert_responds(&call(&f, &tampered).0, 401);
    // An algorithm outside the configured list.
    let only_es = filter(json!({"algorithms": ["ES256"], "keys": [{"jwk": es256_jwk()}]}));
    let hs = sign("HS256", None, good_claims());
    assert!(challenge(&call(&only_es, &hs).0, 401).contains("algorithm is not accepted"));
    for junk in ["", "a.b", "a.b.c.d", "!!!.???.***", &"x".repeat(9000)] {
        testing::assert_responds(&call(&f, junk).0, 401);
    }
}

#[test]
fn claims_decide_401_or_403() {
    let f = filter(json!({"claims": {"roles": ["admin", "ops"]}, "require": ["sub"]}));
    testing::assert_continues(&call(&f, &sign("ES256", None, good_claims())).0);
    let mut c = good_claims();
    c["exp"] = json!(now() - 60);
    assert!(challenge(&call(&f, &sign("ES256", None, c)).0, 401).contains("expired"));
    let mut c = good_claims();
    c["exp"] = json!(now() - 10);
    testing::assert_continues(&call(&f, &sign("ES256", None, c)).0);
    let mut c = good_claims();
    c["aud"] = json!("other");
    assert!(challenge(&call(&f, &sign("ES256", None, c)).0, 401).contains("audience"));
    let mut c = good_claims();
    c["roles"] = json!(["dev"]);
    assert!(challenge(&call(&f, &sign("ES256", None, c)).0, 403).contains("insufficient_scope"));
}

#[test]
fn tokens_from_cookies_and_queries_and_missing_ones() {
    let f = filter(
        json!({"token-from": ["header:authorization", "cookie:session", "query:access_token"]}),
    );
    let t = sign("ES256", None, good_claims());
    let mut by_cookie = MockRequest::get("/").with_header("cookie", &format!("a=1; session={t}"));
    testing::assert_continues(&testing::on_request(&f, &mut by_cookie));
    let mut by_query = MockRequest::get(&format!("/x?access_token={t}"));
    testing::assert_continues(&testing::on_request(&f, &mut by_query));
    let act = testing::on_request(&f, &mut MockRequest::get("/"));
    assert_eq!(challenge(&act, 401), "Bearer realm=\"api\"");
    let mut two = MockRequest::get("/")
        .with_header("authorization", &format!("Bearer {t}"))
        .with_header("authorization", "Bearer x");
    testing::assert_responds(&testing::on_request(&f, &mut two), 401);
    let mut basic = MockRequest::get("/").with_header("authorization", "Basic YTpi");
    testing::assert_responds(&testing::on_request(&f, &mut basic), 401);
}

#[test]
fn configs_are_checked() {
    let err = |cfg: Value| testing::init::<AuthJwt>(&cfg.to_string()).err().unwrap();
    assert!(
        err(json!({"algorithms": ["none"], "keys": [{"secret": SECRET}]}))
            .contains("algorithms[0]")
    );
    assert!(err(json!({"algorithms": [], "keys": []})).contains("algorithms"));
    assert!(err(json!({"algorithms": ["ES256"]})).contains("jwks-url"));
    assert!(
        err(json!({"algorithms": ["ES256"], "keys": [{"secret": SECRET}]}))
            .contains("keys[0]: cannot verify")
    );
    assert!(
        err(json!({"algorithms": ["HS256"], "keys": [{"secret": "short"}]})).contains("32 bytes")
    );
    assert!(
        err(json!({"algorithms": ["ES256"], "keys": [{"pem": "nope"}]})).contains("keys[0]: pem")
    );
    assert!(
        err(json!({"algorithms": ["RS256"], "keys": [{"pem": RSA_PRIVATE}]}))
            .contains("private key")
    );
    let bad_alg = json!({"kty": "EC", "crv": "P-256", "alg": "RS256", "x": es256_jwk()["x"], "y": es256_jwk()["y"]});
    assert!(
        err(json!({"algorithms": ["ES256"], "keys": [{"jwk": bad_alg}]}))
            .contains("does not match")
    );
    assert!(err(json!({"algorithms": ["ES256"], "jwks-url": "ftp://x"})).contains("jwks-url"));
    assert!(err(
        json!({"algorithms": ["ES256"], "keys": [{"jwk": es256_jwk()}], "token-from": ["body"]})
    )
    .contains("token-from[0]"));
}

#[test]
fn jwks_documents_parse_and_skip_what_they_cannot_use() {
    let doc = json!({"keys": [es256_jwk(), {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}, {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]});
    let keys = jwks::parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(keys.len(), 1);
    assert!(jwks::parse(b"{\"keys\": []}")
        .err()
        .unwrap()
        .contains("no usable"));
    assert!(jwks::parse(b"<html>").is_err());
}

#[test]
fn public_key_signatures_are_verified_once_per_token_and_claims_every_time() {
    testing::freeze_clock();
    // Signatures verified since the last look.
    let verified = || {
        testing::take_metrics()
            .0
            .get("signatures-verified")
            .copied()
            .unwrap_or(0)
    };
    let f = filter(json!({}));
    let token = sign("ES256", Some("ec"), good_claims());
    for _ in 0..3 {
        testing::assert_continues(&call(&f, &token).0);
    }
    assert_eq!(verified(), 1, "the same token is verified once");
    // Another signature over the same claims is another token: checked, and refused.
    let (input, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", b64(&[1u8; 64]));
    assert!(challenge(&call(&f, &forged).0, 401).contains("does not verify"));
    testing::assert_continues(&call(&f, &token).0);
    assert_eq!(
        verified(),
        0,
        "a refusal is not remembered, the good token still is"
    );
    // HMAC tokens are not remembered: checking one costs what its digest would.
    let hs = sign("HS256", Some("hs"), good_claims());
    testing::assert_continues(&call(&f, &hs).0);
    testing::assert_continues(&call(&f, &hs).0);
    assert_eq!(verified(), 2);
    // A remembered token still expires.
    testing::advance_clock(Duration::from_secs(700));
    let expired = challenge(&call(&f, &token).0, 401);
    assert!(expired.contains("expired"), "{expired}");
    // With the cache off, every request verifies.
    testing::reset_clock();
    let f = filter(json!({"verified-cache": 0}));
    let _ = verified();
    testing::assert_continues(&call(&f, &token).0);
    testing::assert_continues(&call(&f, &token).0);
    assert_eq!(verified(), 2);
}
