//! Durations and sizes for filter configs, written as in the manifest: `"250ms"`, `"30s"`,
//! `"2m"`, `"1h"`; `"512KiB"`, `"16MiB"`, `"1GiB"`.
//!
//! ```
//! use weir_sdk::units::{ByteSize, Duration};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     window: Duration,
//!     max_body: ByteSize,
//! }
//!
//! let s: Settings = weir_sdk::Config::from_json(r#"{"window": "10s", "max_body": "1MiB"}"#)
//!     .parse()
//!     .unwrap();
//! assert_eq!(s.window.get(), std::time::Duration::from_secs(10));
//! assert_eq!(s.max_body.bytes(), 1 << 20);
//! ```

use serde::{de, Deserialize, Deserializer};

/// A duration greater than zero, from `"<whole number><ms|s|m|h>"`.
///
/// ```
/// let d: weir_sdk::units::Duration = "250ms".parse().unwrap();
/// assert_eq!(d.get().as_millis(), 250);
/// assert!("1.5s".parse::<weir_sdk::units::Duration>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// The duration.
    ///
    /// ```
    /// let d: weir_sdk::units::Duration = "2m".parse().unwrap();
    /// assert_eq!(d.get().as_secs(), 120);
    /// ```
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration {text:?}: expected a whole number followed by ms, s, m or h (e.g. \"30s\")")
        };
        let (n, unit) = split_quantity(text).ok_or_else(bad)?;
        let d = match unit {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
            "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        if d.is_zero() {
            return Err(format!(
                "invalid duration {text:?}: must be greater than zero"
            ));
        }
        Ok(Duration(d))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// A size in bytes, from `"<whole number><KiB|MiB|GiB>"`.
///
/// ```
/// let s: weir_sdk::units::ByteSize = "512KiB".parse().unwrap();
/// assert_eq!(s.bytes(), 512 * 1024);
/// assert!("1MB".parse::<weir_sdk::units::ByteSize>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// The size in bytes.
    ///
    /// ```
    /// let s: weir_sdk::units::ByteSize = "1GiB".parse().unwrap();
    /// assert_eq!(s.bytes(), 1 << 30);
    /// ```
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid size {text:?}: expected a whole number followed by KiB, MiB or GiB (e.g. \"16MiB\")")
        };
        let (n, unit) = split_quantity(text).ok_or_else(bad)?;
        let shift = match unit {
            "KiB" => 10,
            "MiB" => 20,
            "GiB" => 30,
            _ => return Err(bad()),
        };
        n.checked_mul(1 << shift).map(ByteSize).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Split `"<integer><unit>"` into the number and the unit.
fn split_quantity(text: &str) -> Option<(u64, &str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    Some((digits.parse().ok()?, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_syntax_and_nothing_else() {
        for (text, ms) in [
            ("250ms", 250),
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.get().as_millis(), ms, "{text}");
        }
        for bad in ["", "s", "10", "1.5s", "10 s", "-1s", "0s", "3d", "1S"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
        assert_eq!("16MiB".parse::<ByteSize>().unwrap().bytes(), 16 << 20);
        for bad in [
            "",
            "16",
            "16MB",
            "1.5MiB",
            "99999999999999999999GiB",
            "20000000000GiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_errors_name_the_key_and_the_syntax() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            window: Duration,
        }
        let err = crate::Config::from_json(r#"{"window": "10 seconds"}"#)
            .parse::<S>()
            .unwrap_err();
        assert!(
            err.starts_with("window: invalid duration \"10 seconds\": expected a whole number"),
            "{err}"
        );
    }
}
