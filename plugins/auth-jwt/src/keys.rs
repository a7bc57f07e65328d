//! Verification keys and the algorithms each may verify: from PEM (SPKI, or PKCS#1 for RSA),
//! JWK, or a shared secret. A key verifies only the algorithms of its own type (an RSA or EC
//! public key is never used as an HMAC secret), and only its JWK `alg` if it names one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Sha256, Sha384, Sha512};

/// A JWS algorithm this filter verifies. `none` is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    /// The algorithm named `name` (as in a JWS header), if supported.
    pub fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }

    /// HS256/384/512: a shared secret, as cheap to check as to digest.
    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::Hs256 | Alg::Hs384 | Alg::Hs512)
    }

    pub const NAMES: &'static str =
        "HS256, HS384, HS512, RS256, RS384, RS512, PS256, ES256, ES384, EdDSA";
}

/// Key material.
pub enum Material {
    Secret(Vec<u8>),
    Rsa(Box<rsa::RsaPublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// One verification key.
pub struct Key {
    /// Its `kid`, if any.
    pub kid: Option<String>,
    /// The one algorithm it is for, if its JWK says so.
    pub alg: Option<Alg>,
    pub material: Material,
}

/// A JWK, as far as verification needs it (RFC 7517, 7518, 8037).
#[derive(Deserialize)]
pub struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    k: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64(field: &str, v: &Option<String>) -> Result<Vec<u8>, String> {
    let v = v.as_deref().ok_or(format!("has no {field:?}"))?;
    URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .map_err(|e| format!("{field:?} is not base64url: {e}"))
}

impl Key {
    /// The key of a JWK; `Ok(None)` for one that is not for signatures (`use: enc`).
    pub fn from_jwk(jwk: &Jwk) -> Result<Option<Key>, String> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let alg = match &jwk.alg {
            None => None,
            Some(a) => {
                Some(Alg::parse(a).ok_or(format!("alg {a:?} is not supported ({})", Alg::NAMES))?)
            }
        };
        let material = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("oct", _) => Material::Secret(b64("k", &jwk.k)?),
            ("RSA", _) => {
                let n = rsa::BigUint::from_bytes_be(&b64("n", &jwk.n)?);
                let e = rsa::BigUint::from_bytes_be(&b64("e", &jwk.e)?);
                let key = rsa::RsaPublicKey::new(n, e)
                    .map_err(|e| format!("is not a valid RSA key: {e}"))?;
                rsa_material(key)?
            }
            ("EC", Some("P-256")) => {
                let point = ec_point(&b64("x", &jwk.x)?, &b64("y", &jwk.y)?, 32)?;
                Material::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| "is not a point on P-256".to_string())?,
                )
            }
            ("EC", Some("P-384")) => {
                let point = ec_point(&b64("x", &jwk.x)?, &b64("y", &jwk.y)?, 48)?;
                Material::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| "is not a point on P-384".to_string())?,
                )
            }
            ("OKP", Some("Ed25519")) => {
                let x: [u8; 32] = b64("x", &jwk.x)?
                    .try_into()
                    .map_err(|_| "x is not 32 bytes".to_string())?;
                Material::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(&x)
                        .map_err(|e| format!("is not an Ed25519 key: {e}"))?,
                )
            }
            (kty, crv) => return Err(format!("kty {kty:?} (crv {crv:?}) is not supported")),
        };
        let key = Key {
            kid: jwk.kid.clone(),
            alg,
            material,
        };
        if let Some(a) = alg {
            if !key.fits(a) {
                return Err(format!(
                    "its alg {a:?} does not match its kty {:?}",
                    jwk.kty
                ));
            }
        }
        Ok(Some(key))
    }

    /// The key of a PEM public key (SPKI `PUBLIC KEY`, or `RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Key, String> {
        use p256::pkcs8::DecodePublicKey;
        let pem = pem.trim();
        let material = if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
            use rsa::pkcs1::DecodeRsaPublicKey;
            rsa_material(
                rsa::RsaPublicKey::from_pkcs1_pem(pem)
                    .map_err(|e| format!("is not an RSA public key: {e}"))?,
            )?
        } else if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
            if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem) {
                rsa_material(k)?
            } else if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
                Material::P256(k)
            } else if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
                Material::P384(k)
            } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
                Material::Ed25519(k)
            } else {
                return Err("is not an RSA, P-256, P-384 or Ed25519 public key".into());
            }
        } else if pem.contains("PRIVATE KEY") {
            return Err("is a private key: give the public key (openssl pkey -pubout)".into());
        } else {
            return Err("is not a PEM public key (-----BEGIN PUBLIC KEY-----)".into());
        };
        Ok(Key {
            kid,
            alg: None,
            material,
        })
    }

    /// Whether this key may verify `alg`: its type's algorithms, and its own `alg` if set.
    pub fn fits(&self, alg: Alg) -> bool {
        let family = match &self.material {
            Material::Secret(_) => matches!(alg, Alg::Hs256 | Alg::Hs384 | Alg::Hs512),
            Material::Rsa(_) => matches!(alg, Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256),
            Material::P256(_) => alg == Alg::Es256,
            Material::P384(_) => alg == Alg::Es384,
            Material::Ed25519(_) => alg == Alg::EdDsa,
        };
        family && self.alg.is_none_or(|a| a == alg)
    }

    /// Whether `sig` is this key's signature of `input` under `alg` (false if it does not fit).
    pub fn verify(&self, alg: Alg, input: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match (&self.material, alg) {
            (Material::Secret(k), Alg::Hs256) => hmac_ok::<Hmac<Sha256>>(k, input, sig),
            (Material::Secret(k), Alg::Hs384) => hmac_ok::<Hmac<Sha384>>(k, input, sig),
            (Material::Secret(k), Alg::Hs512) => hmac_ok::<Hmac<Sha512>>(k, input, sig),
            (Material::Rsa(k), Alg::Rs256) => pkcs1::<Sha256>(k, input, sig),
            (Material::Rsa(k), Alg::Rs384) => pkcs1::<Sha384>(k, input, sig),
            (Material::Rsa(k), Alg::Rs512) => pkcs1::<Sha512>(k, input, sig),
            (Material::Rsa(k), Alg::Ps256) => {
                use rsa::signature::Verifier;
                let v = rsa::pss::VerifyingKey::<Sha256>::new((**k).clone());
                rsa::pss::Signature::try_from(sig).is_ok_and(|s| v.verify(input, &s).is_ok())
            }
            (Material::P256(k), Alg::Es256) => {
                use p256::ecdsa::signature::Verifier;
                p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(input, &s).is_ok())
            }
            (Material::P384(k), Alg::Es384) => {
                use p384::ecdsa::signature::Verifier;
                p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(input, &s).is_ok())
            }
            (Material::Ed25519(k), Alg::EdDsa) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(input, &s).is_ok()),
            _ => false,
        }
    }
}

/// An RSA key of at least 2048 bits (RFC 7518 §3.3).
fn rsa_material(key: rsa::RsaPublicKey) -> Result<Material, String> {
    use rsa::traits::PublicKeyParts;
    if key.size() < 256 {
        return Err(format!(
            "is an RSA key of {} bits: at least 2048 are required",
            key.size() * 8
        ));
    }
    Ok(Material::Rsa(Box::new(key)))
}

/// The SEC1 uncompressed point of `x` and `y`, each `len` bytes.
fn ec_point(x: &[u8], y: &[u8], len: usize) -> Result<Vec<u8>, String> {
    if x.len() != len || y.len() != len {
        return Err(format!("x and y must be {len} bytes each"));
    }
    let mut point = vec![4u8];
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    Ok(point)
}

fn hmac_ok<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8], sig: &[u8]) -> bool {
    let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(input);
    // Constant-time comparison.
    mac.verify_slice(sig).is_ok()
}

fn pkcs1<D>(key: &rsa::RsaPublicKey, input: &[u8], sig: &[u8]) -> bool
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    use rsa::signature::Verifier;
    let v = rsa::pkcs1v15::VerifyingKey::<D>::new(key.clone());
    rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| v.verify(input, &s).is_ok())
}
