//! Query-string edits: parameters set (replaced or added) and removed, the rest kept in order.

/// Whether `s` can go into a query as it is.
pub fn is_clean(s: &str) -> bool {
    !s.bytes()
        .any(|b| b"&=#? ".contains(&b) || b.is_ascii_control())
}

/// `query` with every parameter named in `remove` or `set` dropped, then `set` appended;
/// `None` when nothing is left.
pub fn edit(query: Option<&str>, set: &[(String, String)], remove: &[String]) -> Option<String> {
    if set.is_empty() && remove.is_empty() {
        return query.map(str::to_string);
    }
    let mut parts: Vec<String> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            !remove.iter().any(|r| r == name) && !set.iter().any(|(k, _)| k == name)
        })
        .map(str::to_string)
        .collect();
    parts.extend(set.iter().map(|(k, v)| format!("{k}={v}")));
    (!parts.is_empty()).then(|| parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replace_and_remove_parameters() {
        let set = vec![("src".to_string(), "weir".to_string())];
        let rm = vec!["debug".to_string()];
        assert_eq!(
            edit(Some("a=1&debug=1&src=x&b"), &set, &rm).as_deref(),
            Some("a=1&b&src=weir")
        );
        assert_eq!(edit(None, &set, &[]).as_deref(), Some("src=weir"));
        assert_eq!(edit(Some("debug=1"), &[], &rm), None);
        assert_eq!(edit(Some("x=1"), &[], &[]).as_deref(), Some("x=1"));
        assert!(!is_clean("a b") && !is_clean("a&b") && is_clean("a%26b"));
    }
}
