//! The cache key (the URI a `GET` is sent upstream with: scheme, host, path, query under the
//! route's query lists) and the request fields a stored response is selected by (`Vary`
//! and the route's key headers, RFC 9111 §4.1).

use http::{HeaderMap, HeaderName};

/// Which query parameters are part of the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueryRule {
    /// All of them, in the order sent.
    #[default]
    All,
    /// Only these (by decoded name).
    Allow(Vec<String>),
    /// All but these (by decoded name).
    Deny(Vec<String>),
}

/// How a route's requests are keyed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRules {
    /// Query parameters in the key.
    pub query: QueryRule,
    /// Request fields every response on the route varies on, besides its own `Vary`.
    pub headers: Vec<HeaderName>,
}

/// The key of a request for `path_and_query` on `host` over `scheme`. Both `GET` and
/// `HEAD` use it (only `GET` responses are stored; `HEAD` is answered from them). The path
/// is the one sent upstream, so what is stored is what the key names.
pub fn primary(
    scheme: &str,
    host: &str,
    path: &str,
    query: Option<&str>,
    rules: &KeyRules,
) -> String {
    let mut key = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
    key.push_str(scheme);
    key.push_str("://");
    key.push_str(&host.to_ascii_lowercase());
    key.push_str(path);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let kept = filter_query(query, &rules.query);
        if !kept.is_empty() {
            key.push('?');
            key.push_str(&kept);
        }
    }
    key
}

/// The parameters of `query` that `rule` keeps, in their order. Names are compared
/// percent-decoded, so `%70age` counts as `page`: a parameter the key drops is one the
/// upstream cannot read under another spelling.
fn filter_query(query: &str, rule: &QueryRule) -> String {
    let names = match rule {
        QueryRule::All => return query.to_string(),
        QueryRule::Allow(names) | QueryRule::Deny(names) => names,
    };
    let allow = matches!(rule, QueryRule::Allow(_));
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            let decoded = decode(name);
            names.contains(&decoded) == allow
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-decoding of a query component (`+` as space), lossy on invalid UTF-8.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The names a response's `Vary` lists (lower-case), or `None` for `Vary: *` (never
/// served from a cache).
pub fn vary(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(http::header::VARY) {
        let Ok(text) = value.to_str() else {
            return None;
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                return None;
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

/// A request's value of `name` as selection compares it: its lines joined, whitespace
/// around commas removed; `None` when absent.
pub fn selecting_value(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for part in text.split(',') {
            let s = out.get_or_insert_with(String::new);
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(part.trim());
        }
    }
    out
}

/// Stands for the parts filters added to a request's key among the selecting fields (never
/// read from the request's headers, so a client cannot send it).
pub const KEY_PARTS: HeaderName = HeaderName::from_static("weir-key-parts");

/// The request's selecting values for `names`, and the key parts its filters added.
pub fn selecting(
    headers: &HeaderMap,
    names: &[HeaderName],
    parts: Option<&str>,
) -> Vec<(HeaderName, Option<String>)> {
    let mut out: Vec<(HeaderName, Option<String>)> = names
        .iter()
        .filter(|n| **n != KEY_PARTS)
        .map(|n| (n.clone(), selecting_value(headers, n)))
        .collect();
    out.push((KEY_PARTS, parts.map(str::to_string)));
    out
}

/// Whether a request with `headers` and key `parts` selects a response stored with
/// `stored` values.
pub fn selects(
    headers: &HeaderMap,
    parts: Option<&str>,
    stored: &[(HeaderName, Option<String>)],
) -> bool {
    stored.iter().all(|(name, value)| {
        if *name == KEY_PARTS {
            value.as_deref() == parts
        } else {
            selecting_value(headers, name) == *value
        }
    })
}

/// Key parts as selection compares them: joined, `None` when there are none.
pub fn joined_parts(parts: &[String]) -> Option<String> {
    (!parts.is_empty()).then(|| parts.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(query: QueryRule) -> KeyRules {
        KeyRules {
            query,
            headers: Vec::new(),
        }
    }

    #[test]
    fn keys_name_scheme_host_path_and_query() {
        let all = rules(QueryRule::All);
        assert_eq!(
            primary("https", "Example.COM", "/a", Some("x=1&y=2"), &all),
            "https://example.com/a?x=1&y=2"
        );
        assert_eq!(primary("http", "h:8080", "/", None, &all), "http://h:8080/");
        assert_eq!(primary("http", "h", "/", Some(""), &all), "http://h/");
    }

    #[test]
    fn query_lists_compare_decoded_names() {
        let allow = rules(QueryRule::Allow(vec!["page".into()]));
        assert_eq!(
            primary("http", "h", "/l", Some("%70age=2&utm=x"), &allow),
            "http://h/l?%70age=2"
        );
        assert_eq!(
            primary("http", "h", "/l", Some("utm=x"), &allow),
            "http://h/l"
        );
        let deny = rules(QueryRule::Deny(vec!["utm_source".into()]));
        assert_eq!(
            primary("http", "h", "/l", Some("a=1&%75tm_source=z&b"), &deny),
            "http://h/l?a=1&b"
        );
    }

    #[test]
    fn vary_star_and_bad_names_refuse_storage() {
        let mut h = HeaderMap::new();
        h.append("vary", "Accept-Encoding, accept-language".parse().unwrap());
        h.append("vary", "accept-encoding".parse().unwrap());
        assert_eq!(
            vary(&h).unwrap(),
            vec![http::header::ACCEPT_ENCODING, http::header::ACCEPT_LANGUAGE]
        );
        h.append("vary", "*".parse().unwrap());
        assert!(vary(&h).is_none());
    }

    #[test]
    fn selection_normalises_whitespace_and_lines() {
        let mut a = HeaderMap::new();
        a.append("accept-encoding", "gzip,  br".parse().unwrap());
        let mut b = HeaderMap::new();
        b.append("accept-encoding", "gzip".parse().unwrap());
        b.append("accept-encoding", " br".parse().unwrap());
        let names = [http::header::ACCEPT_ENCODING];
        assert!(selects(&b, None, &selecting(&a, &names, None)));
        assert!(!selects(
            &HeaderMap::new(),
            None,
            &selecting(&a, &names, None)
        ));
        assert!(selects(
            &HeaderMap::new(),
            None,
            &selecting(&HeaderMap::new(), &names, None)
        ));
    }

    #[test]
    fn key_parts_select_and_cannot_be_sent_by_clients() {
        let stored = selecting(&HeaderMap::new(), &[], Some("tenant-a"));
        assert!(selects(&HeaderMap::new(), Some("tenant-a"), &stored));
        assert!(!selects(&HeaderMap::new(), Some("tenant-b"), &stored));
        let mut spoof = HeaderMap::new();
        spoof.insert(KEY_PARTS, "tenant-a".parse().unwrap());
        assert!(!selects(&spoof, None, &stored));
        let plain = selecting(&spoof, &[KEY_PARTS], None);
        assert!(
            !selects(&HeaderMap::new(), Some("tenant-a"), &plain),
            "no parts is a value too"
        );
    }
}
