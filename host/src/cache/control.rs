//! `Cache-Control` directives (RFC 9111 §5.2) of requests and responses, parsed leniently.

use http::HeaderMap;

/// Delta-seconds beyond this are taken as this (RFC 9111 §1.2.2).
const MAX_DELTA: u64 = 2_147_483_648;

/// The directives of one message's `Cache-Control` lines (all of them, as one list).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `max-age`: an invalid value counts as 0 (stale), the first of several wins.
    pub max_age: Option<u64>,
    /// `s-maxage` (responses; shared caches only).
    pub s_maxage: Option<u64>,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`, with or without field names (a shared cache revalidates either way).
    pub no_cache: bool,
    /// `private`, with or without field names (a shared cache stores neither).
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `stale-while-revalidate` (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// `max-stale` (requests): `Some(None)` accepts any staleness.
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh` (requests).
    pub min_fresh: Option<u64>,
    /// `only-if-cached` (requests).
    pub only_if_cached: bool,
}

impl Directives {
    /// The directives of `headers`' `Cache-Control` lines. A request without any that has
    /// `Pragma: no-cache` counts as `no-cache` (RFC 9111 §5.4).
    pub fn of(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        let mut any = false;
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            any = true;
            for (name, arg) in split(text) {
                d.apply(&name, arg.as_deref());
            }
        }
        if !any
            && headers
                .get_all(http::header::PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
        {
            d.no_cache = true;
        }
        d
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        let seconds = || arg.map_or(Some(0), parse_delta).unwrap_or(0);
        match name {
            "max-age" if self.max_age.is_none() => self.max_age = Some(seconds()),
            "s-maxage" if self.s_maxage.is_none() => self.s_maxage = Some(seconds()),
            "no-store" => self.no_store = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "no-transform" => self.no_transform = true,
            "stale-while-revalidate" if self.stale_while_revalidate.is_none() => {
                self.stale_while_revalidate = arg.and_then(parse_delta)
            }
            "stale-if-error" if self.stale_if_error.is_none() => {
                self.stale_if_error = arg.and_then(parse_delta)
            }
            "max-stale" if self.max_stale.is_none() => {
                self.max_stale = Some(arg.and_then(parse_delta))
            }
            "min-fresh" if self.min_fresh.is_none() => self.min_fresh = Some(seconds()),
            "only-if-cached" => self.only_if_cached = true,
            _ => {}
        }
    }
}

/// Delta-seconds: digits only, capped at [`MAX_DELTA`]; `None` when not a number.
fn parse_delta(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().map_or(MAX_DELTA, |n| n.min(MAX_DELTA)))
}

/// The `Age` field's value: leniently, the digits it starts with; `None` without any.
pub fn age(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(http::header::AGE)?.to_str().ok()?.trim();
    let digits = value
        .get(..value.bytes().take_while(u8::is_ascii_digit).count())
        .unwrap_or("");
    if digits.is_empty() {
        return None;
    }
    Some(
        digits
            .parse::<u64>()
            .map_or(MAX_DELTA, |n| n.min(MAX_DELTA)),
    )
}

/// `name[=value]` items of a comma-separated list, names lower-cased, quoted values
/// unquoted; commas inside quotes do not split.
fn split(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (item, tail) = next_item(rest);
        rest = tail;
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.split_once('=') {
            Some((name, value)) => {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                out.push((name.trim().to_ascii_lowercase(), Some(value.to_string())));
            }
            None => out.push((item.to_ascii_lowercase(), None)),
        }
    }
    out
}

/// The text up to the first comma outside quotes, and what follows that comma.
fn next_item(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                return (text.get(..i).unwrap_or(""), text.get(i + 1..).unwrap_or(""))
            }
            _ => {}
        }
    }
    (text, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(lines: &[&str]) -> Directives {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(http::header::CACHE_CONTROL, l.parse().unwrap());
        }
        Directives::of(&h)
    }

    #[test]
    fn parses_directives_across_lines() {
        let d = of(&[
            "public, max-age=60",
            "s-maxage=\"120\", stale-while-revalidate=30",
        ]);
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(120));
        assert_eq!(d.stale_while_revalidate, Some(30));
        assert!(d.public && !d.private && !d.no_store);
    }

    #[test]
    fn invalid_or_repeated_values_are_conservative() {
        assert_eq!(of(&["max-age=abc"]).max_age, Some(0));
        assert_eq!(of(&["max-age=10, max-age=99"]).max_age, Some(10));
        assert_eq!(
            of(&["max-age=99999999999999999999"]).max_age,
            Some(MAX_DELTA)
        );
        assert_eq!(of(&["max-age=-1"]).max_age, Some(0));
    }

    #[test]
    fn field_name_forms_and_quoted_commas() {
        let d = of(&["private=\"set-cookie, x-a\", no-cache=\"x-b\", max-age=5"]);
        assert!(d.private && d.no_cache);
        assert_eq!(d.max_age, Some(5));
        assert_eq!(of(&["MAX-AGE=7"]).max_age, Some(7));
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(http::header::PRAGMA, "no-cache".parse().unwrap());
        assert!(Directives::of(&h).no_cache);
        h.insert(http::header::CACHE_CONTROL, "max-age=5".parse().unwrap());
        assert!(!Directives::of(&h).no_cache);
    }

    #[test]
    fn age_is_lenient() {
        let mut h = HeaderMap::new();
        for (v, want) in [
            ("12", Some(12)),
            (" 7 ", Some(7)),
            ("3, 4", Some(3)),
            ("x", None),
        ] {
            h.insert(http::header::AGE, v.parse().unwrap());
            assert_eq!(age(&h), want, "{v}");
        }
    }
}
