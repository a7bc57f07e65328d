//! Durations written as text in the manifest: `"250ms"`, `"30s"`, `"2m"`, `"1h"`.

use serde::{de, Deserialize, Deserializer};
use std::time::Duration;

/// A manifest duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestDuration(pub Duration);

/// Split `"<integer><unit>"` (as in `"30s"`, `"16MiB"`) into the number and the unit.
pub fn split_quantity(text: &str) -> Option<(u64, &str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    Some((digits.parse().ok()?, unit))
}

/// Parse `"<integer><unit>"` with unit `ms`, `s`, `m` or `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {text:?}: expected a whole number followed by ms, s, m or h (e.g. \"30s\")")
    };
    let (n, unit) = split_quantity(text).ok_or_else(bad)?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        ));
    }
    Ok(d)
}

impl<'de> Deserialize<'de> for ManifestDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text)
            .map(ManifestDuration)
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "10", "1.5s", "10 s", "-1s", "0s", "3d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
