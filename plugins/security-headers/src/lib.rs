//! `security-headers`: the response headers that make browsers safer, from a preset with
//! overrides.
//!
//! ```toml
//! [filters.secure]
//! plugin = "security-headers.wasm"
//! [filters.secure.config]
//! preset = "strict"                 # "strict", "moderate" or "none" (default: only what is set)
//! hsts = { max-age = 63072000, include-subdomains = true, preload = false }   # https only
//! csp = "default-src 'self'"        # Content-Security-Policy; false: none
//! csp-report-only = "default-src 'self'; report-uri /csp"
//! frame-options = "DENY"            # X-Frame-Options
//! content-type-options = true       # X-Content-Type-Options: nosniff
//! referrer-policy = "no-referrer"
//! permissions-policy = "camera=(), microphone=()"
//! coop = "same-origin"              # Cross-Origin-Opener-Policy
//! coep = "require-corp"             # Cross-Origin-Embedder-Policy
//! corp = "same-origin"              # Cross-Origin-Resource-Policy
//! remove = ["server", "x-powered-by"]   # response headers dropped (the presets drop these two)
//! override = false                  # true: replace a header the upstream set; default keep it
//! ```
//! Any header can be set to `false` to leave a preset's value out. HSTS is sent only on
//! responses to `https` requests (RFC 6797 §7.2: not over plain HTTP).

use serde::Deserialize;
use weir_sdk::{header, Action, Config, Filter, Hooks, Request, Response};

/// A header's setting: a value, or `false` for none.
#[derive(Clone)]
enum Setting<T> {
    Off(bool),
    On(T),
}

/// `false`/`true`, or the value itself (a string or a table), whose own errors (an unknown
/// key, a wrong type) are reported as they are.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Setting<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{value, IntoDeserializer, MapAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Setting<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value, or false")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Setting::Off(b))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(s.into_deserializer()).map(Setting::On)
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<Self::Value, M::Error> {
                T::deserialize(value::MapAccessDeserializer::new(m)).map(Setting::On)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Hsts {
    max_age: u64,
    #[serde(default)]
    include_subdomains: bool,
    #[serde(default)]
    preload: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    preset: Option<String>,
    hsts: Option<Setting<Hsts>>,
    csp: Option<Setting<String>>,
    csp_report_only: Option<Setting<String>>,
    frame_options: Option<Setting<String>>,
    content_type_options: Option<bool>,
    referrer_policy: Option<Setting<String>>,
    permissions_policy: Option<Setting<String>>,
    coop: Option<Setting<String>>,
    coep: Option<Setting<String>>,
    corp: Option<Setting<String>>,
    remove: Option<Vec<String>>,
    #[serde(default, rename = "override")]
    replace: bool,
}

/// The headers of a preset: (name, value), HSTS apart.
struct Preset {
    hsts: Option<Hsts>,
    headers: Vec<(&'static str, &'static str)>,
    remove: &'static [&'static str],
}

fn preset(name: &str) -> Result<Preset, String> {
    const DROPPED: &[&str] = &["server", "x-powered-by"];
    Ok(match name {
        "strict" => Preset {
            hsts: Some(Hsts {
                max_age: 63_072_000,
                include_subdomains: true,
                preload: false,
            }),
            headers: vec![
                (
                    "content-security-policy",
                    "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
                ),
                ("x-frame-options", "DENY"),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
                (
                    "permissions-policy",
                    "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
                ),
                ("cross-origin-opener-policy", "same-origin"),
                ("cross-origin-embedder-policy", "require-corp"),
                ("cross-origin-resource-policy", "same-origin"),
            ],
            remove: DROPPED,
        },
        "moderate" => Preset {
            hsts: Some(Hsts {
                max_age: 31_536_000,
                include_subdomains: false,
                preload: false,
            }),
            headers: vec![
                ("x-frame-options", "SAMEORIGIN"),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "strict-origin-when-cross-origin"),
                ("cross-origin-opener-policy", "same-origin-allow-popups"),
                ("cross-origin-resource-policy", "same-site"),
            ],
            remove: DROPPED,
        },
        "none" => Preset {
            hsts: None,
            headers: Vec::new(),
            remove: &[],
        },
        other => {
            return Err(format!(
                "preset: {other:?} is not \"strict\", \"moderate\" or \"none\""
            ))
        }
    })
}

/// The `security-headers` filter.
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`'s value, for https responses.
    hsts: Option<String>,
    /// The other headers, checked names and values.
    headers: Vec<(String, String)>,
    remove: Vec<String>,
    replace: bool,
}

impl SecurityHeaders {
    /// Put `value` in `name` of `resp` (unless the upstream set it and `override` is off).
    /// Set `name` unless the upstream sent it (`present`) and `override` is off.
    fn put(&self, resp: &mut Response, present: &[String], name: &str, value: &str) {
        if self.replace || !present.iter().any(|p| p == name) {
            let _ = resp.set_header(name, value);
        }
    }
}

impl Filter for SecurityHeaders {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        let base = preset(s.preset.as_deref().unwrap_or("none"))?;
        let mut headers: Vec<(String, String)> = base
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let settings = [
            ("content-security-policy", "csp", &s.csp),
            (
                "content-security-policy-report-only",
                "csp-report-only",
                &s.csp_report_only,
            ),
            ("x-frame-options", "frame-options", &s.frame_options),
            ("referrer-policy", "referrer-policy", &s.referrer_policy),
            (
                "permissions-policy",
                "permissions-policy",
                &s.permissions_policy,
            ),
            ("cross-origin-opener-policy", "coop", &s.coop),
            ("cross-origin-embedder-policy", "coep", &s.coep),
            ("cross-origin-resource-policy", "corp", &s.corp),
        ];
        for (name, key, setting) in settings {
            match setting {
                None => {}
                Some(Setting::Off(true)) => {
                    return Err(format!(
                        "{key}: true is not a value (give the header's value, or false for none)"
                    ))
                }
                Some(Setting::Off(false)) => headers.retain(|(n, _)| n != name),
                Some(Setting::On(value)) => {
                    header::validate_value(value).map_err(|e| format!("{key}: {e}"))?;
                    headers.retain(|(n, _)| n != name);
                    headers.push((name.to_string(), value.clone()));
                }
            }
        }
        match s.content_type_options {
            None => {}
            Some(true) => {
                headers.retain(|(n, _)| n != "x-content-type-options");
                headers.push(("x-content-type-options".into(), "nosniff".into()));
            }
            Some(false) => headers.retain(|(n, _)| n != "x-content-type-options"),
        }
        let hsts = match s.hsts {
            None => base.hsts,
            Some(Setting::Off(false)) => None,
            Some(Setting::Off(true)) => {
                return Err("hsts: true is not a setting (give { max-age = ... }, or false)".into())
            }
            Some(Setting::On(h)) => Some(h),
        };
        let hsts = hsts.map(|h| {
            let mut v = format!("max-age={}", h.max_age);
            if h.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if h.preload {
                v.push_str("; preload");
            }
            v
        });
        let remove = match s.remove {
            Some(list) => list,
            None => base.remove.iter().map(|n| n.to_string()).collect(),
        };
        for name in &remove {
            header::validate_name(name).map_err(|e| format!("remove: {e}"))?;
        }
        if hsts.is_none() && headers.is_empty() && remove.is_empty() {
            return Err("nothing to do: choose a preset or set at least one header".into());
        }
        Ok(SecurityHeaders {
            hsts,
            headers,
            remove: remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
            replace: s.replace,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::RESPONSE
    }

    fn on_response(&self, req: &Request, resp: &mut Response) -> Action {
        // One call for the names the upstream sent, rather than one per header to set.
        let present: Vec<String> = resp.headers().into_iter().map(|(n, _)| n).collect();
        if let Some(hsts) = &self.hsts {
            if req.scheme() == "https" {
                self.put(resp, &present, "strict-transport-security", hsts);
            }
        }
        for (name, value) in &self.headers {
            self.put(resp, &present, name, value);
        }
        for name in &self.remove {
            if present.iter().any(|p| p == name) {
                resp.remove_header(name);
            }
        }
        Action::Continue
    }
}

weir_sdk::export_filter!(SecurityHeaders);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest, MockResponse};

    fn run(config: &str, mut req: MockRequest, resp: MockResponse) -> MockResponse {
        let f: SecurityHeaders = testing::init(config).unwrap();
        let mut resp = resp;
        testing::assert_continues(&testing::on_response(&f, &mut req, &mut resp));
        resp
    }

    fn https() -> MockRequest {
        MockRequest::get("/").with_scheme("https")
    }

    #[test]
    fn strict_preset_sets_everything_and_drops_server() {
        let r = run(
            r#"{"preset": "strict"}"#,
            https(),
            MockResponse::new(200)
                .with_header("server", "nginx")
                .with_header("x-powered-by", "PHP"),
        );
        assert_eq!(
            r.headers.get("strict-transport-security"),
            Some("max-age=63072000; includeSubDomains")
        );
        assert_eq!(r.headers.get("x-frame-options"), Some("DENY"));
        assert_eq!(r.headers.get("x-content-type-options"), Some("nosniff"));
        assert!(r.headers.get("content-security-policy").is_some());
        assert_eq!(
            r.headers.get("cross-origin-embedder-policy"),
            Some("require-corp")
        );
        assert_eq!(r.headers.get("server"), None);
        assert_eq!(r.headers.get("x-powered-by"), None);
    }

    #[test]
    fn hsts_only_over_https() {
        let r = run(
            r#"{"preset": "moderate"}"#,
            MockRequest::get("/"),
            MockResponse::new(200),
        );
        assert_eq!(r.headers.get("strict-transport-security"), None);
        assert_eq!(r.headers.get("x-frame-options"), Some("SAMEORIGIN"));
        let r = run(r#"{"preset": "moderate"}"#, https(), MockResponse::new(200));
        assert_eq!(
            r.headers.get("strict-transport-security"),
            Some("max-age=31536000")
        );
    }

    #[test]
    fn the_upstreams_headers_win_unless_override() {
        let upstream = || MockResponse::new(200).with_header("x-frame-options", "ALLOW-FROM x");
        let r = run(r#"{"preset": "strict"}"#, https(), upstream());
        assert_eq!(
            r.headers.get_all("x-frame-options"),
            ["ALLOW-FROM x"],
            "not duplicated"
        );
        let r = run(
            r#"{"preset": "strict", "override": true}"#,
            https(),
            upstream(),
        );
        assert_eq!(r.headers.get_all("x-frame-options"), ["DENY"]);
    }

    #[test]
    fn overrides_change_and_remove_preset_values() {
        let r = run(
            r#"{"preset": "strict", "csp": false, "coep": false, "frame-options": "SAMEORIGIN",
                "hsts": {"max-age": 300, "preload": true}, "csp-report-only": "default-src 'self'",
                "content-type-options": false, "remove": ["x-aspnet-version"]}"#,
            https(),
            MockResponse::new(200)
                .with_header("server", "kept")
                .with_header("x-aspnet-version", "4"),
        );
        assert_eq!(r.headers.get("content-security-policy"), None);
        assert_eq!(r.headers.get("cross-origin-embedder-policy"), None);
        assert_eq!(r.headers.get("x-content-type-options"), None);
        assert_eq!(r.headers.get("x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(
            r.headers.get("strict-transport-security"),
            Some("max-age=300; preload")
        );
        assert_eq!(
            r.headers.get("content-security-policy-report-only"),
            Some("default-src 'self'")
        );
        assert_eq!(
            r.headers.get("server"),
            Some("kept"),
            "remove replaces the preset's list"
        );
        assert_eq!(r.headers.get("x-aspnet-version"), None);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let err = |c: &str| testing::init::<SecurityHeaders>(c).err().unwrap();
        assert!(err(r#"{"preset": "paranoid"}"#).contains("preset: \"paranoid\""));
        assert!(err(r#"{"csp": "a\nb"}"#).starts_with("csp: "));
        assert!(err(r#"{"csp": true}"#).starts_with("csp: true is not a value"));
        assert!(err(r#"{"remove": ["bad name"]}"#).starts_with("remove: "));
        assert!(err(r#"{"hsts": {"max-age": 1, "subdomains": true}}"#).contains("subdomains"));
        assert_eq!(
            err("{}"),
            "nothing to do: choose a preset or set at least one header"
        );
    }
}
