//! Checking a verified token's claims: times (`exp`, `nbf`, `iat`, with leeway), issuer,
//! audience, required claims and required values.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What the claims must satisfy.
pub struct Rules {
    pub leeway: u64,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub required: Vec<String>,
    /// Claim → accepted values (a claim that is a list passes if one of its items is accepted).
    pub values: BTreeMap<String, Vec<String>>,
}

/// Why claims were refused: 401 (`invalid_token`) or 403 (`insufficient_scope`).
#[derive(Debug, PartialEq)]
pub enum Refusal {
    Invalid(&'static str),
    Forbidden(String),
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The text of a claim value that is a string, number or boolean.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Rules {
    /// Check `claims` at `now` (seconds since the Unix epoch).
    pub fn check(&self, claims: &Map<String, Value>, now: u64) -> Result<(), Refusal> {
        let now = now as f64;
        let leeway = self.leeway as f64;
        let time = |name: &str| -> Result<Option<f64>, Refusal> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => number(v)
                    .map(Some)
                    .ok_or(Refusal::Invalid("a time claim is not a number")),
            }
        };
        if let Some(exp) = time("exp")? {
            if now >= exp + leeway {
                return Err(Refusal::Invalid("the token has expired"));
            }
        }
        if let Some(nbf) = time("nbf")? {
            if now + leeway < nbf {
                return Err(Refusal::Invalid("the token is not valid yet"));
            }
        }
        if let Some(iat) = time("iat")? {
            if now + leeway < iat {
                return Err(Refusal::Invalid("the token was issued in the future"));
            }
        }
        for name in &self.required {
            if !claims.contains_key(name) {
                return Err(Refusal::Invalid("the token lacks a required claim"));
            }
        }
        if !self.issuers.is_empty() {
            let iss = claims.get("iss").and_then(Value::as_str);
            if !iss.is_some_and(|i| self.issuers.iter().any(|x| x == i)) {
                return Err(Refusal::Invalid("the token's issuer is not accepted"));
            }
        }
        if !self.audiences.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => self.audiences.contains(a),
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audiences.iter().any(|x| x == a)),
                _ => false,
            };
            if !ok {
                return Err(Refusal::Invalid("the token is not for this audience"));
            }
        }
        for (name, accepted) in &self.values {
            let values: Vec<String> = match claims.get(name) {
                Some(Value::Array(list)) => list.iter().filter_map(scalar).collect(),
                Some(v) => scalar(v).into_iter().collect(),
                None => Vec::new(),
            };
            if !values.iter().any(|v| accepted.contains(v)) {
                return Err(Refusal::Forbidden(format!(
                    "claim {name} does not have an accepted value"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        Rules {
            leeway: 30,
            issuers: vec!["https://issuer".into()],
            audiences: vec!["api".into()],
            required: vec!["sub".into()],
            values: [(
                "role".to_string(),
                vec!["admin".to_string(), "ops".to_string()],
            )]
            .into(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn times_with_leeway() {
        let r = Rules {
            issuers: vec![],
            audiences: vec![],
            required: vec![],
            values: BTreeMap::new(),
            leeway: 30,
        };
        assert!(r.check(&claims(json!({"exp": 1000})), 1029).is_ok());
        assert_eq!(
            r.check(&claims(json!({"exp": 1000})), 1030),
            Err(Refusal::Invalid("the token has expired"))
        );
        assert!(r.check(&claims(json!({"nbf": 1030.5})), 1001).is_ok());
        assert!(r.check(&claims(json!({"nbf": 1031})), 1000).is_err());
        assert!(r.check(&claims(json!({"iat": 2000})), 1000).is_err());
        assert!(r.check(&claims(json!({"exp": "soon"})), 1000).is_err());
    }

    #[test]
    fn issuer_audience_required_and_values() {
        let r = rules();
        let ok = json!({"iss": "https://issuer", "aud": ["x", "api"], "sub": "ada", "role": ["dev", "ops"]});
        assert!(r.check(&claims(ok.clone()), 0).is_ok());
        let mut bad = ok.clone();
        bad["iss"] = json!("https://evil");
        assert!(matches!(r.check(&claims(bad), 0), Err(Refusal::Invalid(_))));
        let mut bad = ok.clone();
        bad["aud"] = json!("other");
        assert!(matches!(r.check(&claims(bad), 0), Err(Refusal::Invalid(_))));
        let mut bad = ok.clone();
        bad.as_object_mut().unwrap().remove("sub");
        assert!(matches!(r.check(&claims(bad), 0), Err(Refusal::Invalid(_))));
        let mut bad = ok;
        bad["role"] = json!("dev");
        assert!(matches!(
            r.check(&claims(bad), 0),
            Err(Refusal::Forbidden(_))
        ));
    }
}
