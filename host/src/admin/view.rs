//! What the admin endpoint shows of the configuration: the live routes (`GET /routes`) and
//! the manifest as loaded, with its secrets redacted (`GET /config`).

use super::{text, Admin, Answer};
use crate::live::Live;
use http::StatusCode;
use serde::Serialize;

/// One live route.
#[derive(Serialize)]
pub struct RouteView {
    /// Its host and path conditions (its `route` label in metrics and logs).
    pub route: String,
    /// Allowed methods (empty: any).
    pub methods: Vec<String>,
    /// Its upstreams with their weights.
    pub upstreams: Vec<(String, u32)>,
    /// Its filters, in request order.
    pub filters: Vec<String>,
}

/// `GET /routes`: the live routes in the order they are tried (most specific first).
pub fn routes(live: &Live) -> Vec<RouteView> {
    let g = live.current();
    g.routes
        .in_order()
        .map(|r| RouteView {
            route: r.label.to_string(),
            methods: r.methods.iter().map(|m| m.to_string()).collect(),
            upstreams: r
                .backends
                .list()
                .iter()
                .map(|(u, w)| (u.name().to_string(), *w))
                .collect(),
            filters: r.filters.iter().map(|f| f.name().to_string()).collect(),
        })
        .collect()
}

/// Keys whose values are secrets wherever they appear (in filter configs too).
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "key",
        "credential",
        "pem",
        "users",
        "keys",
    ]
    .iter()
    .any(|s| k.contains(s))
        && k != "key-header"
}

/// `GET /config`: the manifest the live generation was loaded from (not the file as it is
/// now, should a reload have been refused), as TOML, with every secret (admin token,
/// passwords in URLs, filter settings named like secrets) replaced by `"[redacted]"`.
pub fn config(admin: &Admin) -> Answer {
    let live = admin.live.current();
    let source = live.config.source.text();
    let mut doc = match source.parse::<toml_edit::DocumentMut>() {
        Ok(d) => d,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    redact_table(doc.as_table_mut());
    (
        StatusCode::OK,
        "application/toml; charset=utf-8",
        doc.to_string().into_bytes(),
    )
}

fn redact_table(table: &mut dyn toml_edit::TableLike) {
    for (key, item) in table.iter_mut() {
        let key = key.get().to_string();
        redact_item(&key, item);
    }
}

fn redact_item(key: &str, item: &mut toml_edit::Item) {
    match item {
        toml_edit::Item::Table(t) => redact_table(t),
        toml_edit::Item::ArrayOfTables(a) => {
            for t in a.iter_mut() {
                redact_table(t);
            }
        }
        toml_edit::Item::Value(v) => redact_value(key, v),
        toml_edit::Item::None => {}
    }
}

fn redact_value(key: &str, v: &mut toml_edit::Value) {
    match v {
        toml_edit::Value::InlineTable(t) => redact_table(t),
        toml_edit::Value::Array(a) => {
            for item in a.iter_mut() {
                redact_value(key, item);
            }
        }
        toml_edit::Value::String(s) if secret_key(key) => {
            *v = toml_edit::Value::from("[redacted]");
        }
        toml_edit::Value::String(s) if s.value().contains("://") && s.value().contains('@') => {
            let shown = crate::store::redact(s.value());
            *v = toml_edit::Value::from(shown);
        }
        _ => {}
    }
}
