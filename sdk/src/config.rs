//! A filter's configuration: the `config` table of its manifest entry.

use serde::de::DeserializeOwned;

/// The filter's `config` table from the manifest, as the host passed it (JSON).
///
/// Deserialize it into your own type; use `#[serde(deny_unknown_fields)]` so a typo in the
/// manifest is refused at load time (by `weir check` and at startup) instead of ignored.
///
/// ```
/// use weir_sdk::Config;
///
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(deny_unknown_fields)]
/// struct Settings { header: String, #[serde(default)] required: bool }
///
/// // The manifest's `config = { header = "x-api-key" }` arrives as this JSON.
/// let s: Settings = Config::from_json(r#"{"header": "x-api-key"}"#).parse().unwrap();
/// assert_eq!((s.header.as_str(), s.required), ("x-api-key", false));
/// let typo = Config::from_json(r#"{"haeder": "x"}"#).parse::<Settings>();
/// assert!(typo.unwrap_err().starts_with("haeder: unknown field"));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    json: String,
}

impl Config {
    /// A configuration from its JSON text (what the host passes; also handy in tests).
    ///
    /// ```
    /// let c = weir_sdk::Config::from_json(r#"{"limit": 10}"#);
    /// assert_eq!(c.as_json(), r#"{"limit": 10}"#);
    /// ```
    pub fn from_json(json: impl Into<String>) -> Self {
        Config { json: json.into() }
    }

    /// An empty configuration (`{}`), as for a filter entry without a `config` table.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Settings { #[serde(default)] verbose: bool }
    /// let s: Settings = weir_sdk::Config::empty().parse().unwrap();
    /// assert!(!s.verbose);
    /// ```
    pub fn empty() -> Self {
        Config::from_json("{}")
    }

    /// Deserialize into `T`. The error starts with the path of the offending key in the
    /// `config` table (`request.set.x-a: invalid type: ...`, `keys[2]: ...`), which the
    /// host turns into the key's line and column in the manifest.
    ///
    /// ```
    /// #[derive(serde::Deserialize, Debug)]
    /// #[serde(deny_unknown_fields)]
    /// struct Limit { rate: u32 }
    /// #[derive(serde::Deserialize, Debug)]
    /// #[serde(deny_unknown_fields)]
    /// struct Settings { limits: Vec<Limit> }
    ///
    /// let c = weir_sdk::Config::from_json(r#"{"limits": [{"rate": 5}, {"rate": "fast"}]}"#);
    /// let err = c.parse::<Settings>().unwrap_err();
    /// assert!(err.starts_with("limits[1].rate: invalid type"), "{err}");
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        let mut de = serde_json::Deserializer::from_str(&self.json);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            // serde_json's position is in the JSON the host generated: no use to anyone.
            let message = e.inner().to_string();
            let message = match message.rfind(" at line ") {
                Some(at) => message.get(..at).unwrap_or(&message).to_string(),
                None => message,
            };
            if path == "." {
                message
            } else {
                format!("{path}: {message}")
            }
        })
    }

    /// The raw JSON text.
    ///
    /// ```
    /// let c = weir_sdk::Config::empty();
    /// assert_eq!(c.as_json(), "{}");
    /// ```
    pub fn as_json(&self) -> &str {
        &self.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct C {
        #[allow(dead_code)]
        name: String,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        limits: Vec<Limit>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limit {
        rate: u32,
    }

    #[test]
    fn parse_reports_the_field() {
        let err = Config::from_json(r#"{"nmae": "x"}"#)
            .parse::<C>()
            .unwrap_err();
        assert!(err.contains("nmae"), "{err}");
        assert!(
            !err.contains("line 1"),
            "no position in generated JSON: {err}"
        );
        assert!(Config::from_json(r#"{"name": "x"}"#).parse::<C>().is_ok());
    }

    #[test]
    fn parse_errors_start_with_the_key_path() {
        let err = Config::from_json(r#"{"limits": [{"rate": 1}, {"rate": "fast"}]}"#)
            .parse::<Nested>()
            .unwrap_err();
        assert!(
            err.starts_with("limits[1].rate: invalid type: string \"fast\", expected u32"),
            "{err}"
        );
        let err = Config::from_json(r#"{"limits": [{"rtae": 1}]}"#)
            .parse::<Nested>()
            .unwrap_err();
        assert!(
            err.starts_with("limits[0].rtae: unknown field `rtae`"),
            "{err}"
        );
        let err = Config::from_json(r#"{}"#).parse::<Nested>().unwrap_err();
        assert_eq!(err, "missing field `limits`");
    }
}
