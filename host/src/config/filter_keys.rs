//! Where each key of a filter's `config` table is in the manifest, so an `init` that refuses
//! its config (`request.set.x-a: invalid type ...`, the SDK's form) is reported at that key's
//! line and column rather than at the filter entry.

use super::{Diagnostic, FilterConfig, SourceMap};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Fill in `config_keys` of every filter whose entry is in `source`.
pub(super) fn locate(map: &SourceMap, source: &str, filters: &mut [FilterConfig]) {
    let Ok(doc) = DeTable::parse(source) else {
        return;
    };
    let Some(DeValue::Table(entries)) = get(doc.get_ref(), "filters") else {
        return;
    };
    for filter in filters {
        let Some(DeValue::Table(entry)) = get(entries, &filter.name) else {
            continue;
        };
        if let Some(DeValue::Table(config)) = get(entry, "config") {
            let mut keys = Vec::new();
            walk_table(config, "", map, &mut keys);
            filter.config_keys = keys;
        }
    }
}

/// The location of the longest key path that `message` starts with (followed by `: `).
pub fn key_location<'a>(keys: &'a [(String, Diagnostic)], message: &str) -> Option<&'a Diagnostic> {
    keys.iter()
        .filter(|(path, _)| {
            message
                .strip_prefix(path.as_str())
                .is_some_and(|rest| rest.starts_with(": "))
        })
        .max_by_key(|(path, _)| path.len())
        .map(|(_, at)| at)
}

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t DeValue<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v.get_ref())
}

fn walk_table(
    table: &DeTable<'_>,
    prefix: &str,
    map: &SourceMap,
    out: &mut Vec<(String, Diagnostic)>,
) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.push((path.clone(), map.at(Some(key.span()), String::new())));
        walk_value(value, &path, map, out);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    map: &SourceMap,
    out: &mut Vec<(String, Diagnostic)>,
) {
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, path, map, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push((path.clone(), map.at(Some(item.span()), String::new())));
                walk_value(item, &path, map, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_key_and_item_is_located_in_both_table_forms() {
        let source = "[filters.a]\nplugin = \"a.wasm\"\nconfig = { request = { set = { \"x-a\" = 1 } }, keys = [\"k\", \"l\"] }\n\n[filters.b]\nplugin = \"b.wasm\"\n\n[filters.b.config]\nlimits = [{ rate = 1 }, { rate = \"fast\" }]\n";
        let map = SourceMap::new(Path::new("w.toml"), source);
        let mut filters = vec![
            FilterConfig::standalone("a", "a.wasm".into(), "{}"),
            FilterConfig::standalone("b", "b.wasm".into(), "{}"),
        ];
        locate(&map, source, &mut filters);
        let at = |f: &FilterConfig, msg: &str| {
            key_location(&f.config_keys, msg).map(|d| (d.line, d.column))
        };
        assert_eq!(at(&filters[0], "request.set.x-a: bad"), Some((3, 32)));
        assert_eq!(at(&filters[0], "request.set: bad"), Some((3, 24)));
        assert_eq!(at(&filters[0], "keys[1]: bad"), Some((3, 60)));
        assert_eq!(at(&filters[0], "request.sets: bad"), None);
        assert_eq!(at(&filters[0], "unknown field `x`"), None);
        assert_eq!(
            at(&filters[1], "limits[1].rate: invalid type"),
            Some((9, 27))
        );
    }
}
