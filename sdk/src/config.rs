//! A filter's configuration: the `config` table of its manifest entry.

use serde::de::DeserializeOwned;

/// The filter's `config` table from the manifest, as the host passed it (JSON).
///
/// Deserialize it into your own type; use `#[serde(deny_unknown_fields)]` so a typo in the
/// manifest is refused at load time (by `weir check` and at startup) instead of ignored.
#[derive(Debug, Clone)]
pub struct Config {
    json: String,
}

impl Config {
    /// A configuration from its JSON text (what the host passes; also handy in tests).
    pub fn from_json(json: impl Into<String>) -> Self {
        Config { json: json.into() }
    }

    /// An empty configuration (`{}`), as for a filter entry without a `config` table.
    pub fn empty() -> Self {
        Config::from_json("{}")
    }

    /// Deserialize into `T`. The error names the offending field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.json).map_err(|e| format!("invalid config: {e}"))
    }

    /// The raw JSON text.
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

    #[test]
    fn parse_reports_the_field() {
        let err = Config::from_json(r#"{"nmae": "x"}"#)
            .parse::<C>()
            .unwrap_err();
        assert!(err.contains("nmae"), "{err}");
        assert!(Config::from_json(r#"{"name": "x"}"#).parse::<C>().is_ok());
    }
}
