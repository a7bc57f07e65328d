//! Validating `[cache-zones.*]` and routes' `cache` and `compress` settings.

use super::*;
use crate::cache::key::{KeyRules, QueryRule};
use crate::cache::ZoneSettings;
use crate::compress::{Coding, CompressSettings};
use manifest::{CacheZoneSpec, RouteCacheSpec};

/// Default largest body stored.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 8 << 20;
/// Default variants per key.
pub const DEFAULT_MAX_VARIANTS: usize = 8;
/// Default wait for another request's fetch of the same key.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// A route's validated `cache` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCacheConfig {
    /// Index into [`Config::cache_zones`].
    pub zone: usize,
    /// How its requests are keyed.
    pub key: KeyRules,
    /// Lifetime of responses without freshness information.
    pub default_ttl: Option<Duration>,
    /// `stale-while-revalidate` for responses that do not set it, seconds.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` for responses that do not set it, seconds.
    pub stale_if_error: Option<u64>,
    /// Store responses that set cookies.
    pub store_set_cookie: bool,
    /// Response header listing surrogate keys.
    pub tag_header: http::HeaderName,
}

impl Validator {
    /// `[cache-zones.*]`, in name order.
    pub(super) fn cache_zones(&mut self, m: &Manifest, base: &Path) -> Vec<(String, ZoneSettings)> {
        let zones: Vec<(String, ZoneSettings)> = m
            .cache_zones
            .iter()
            .map(|(name, spec)| {
                (
                    name.get_ref().clone(),
                    self.cache_zone(name.get_ref(), spec.get_ref(), base),
                )
            })
            .collect();
        // Two zones in one directory would evict each other's files.
        let mut dirs: Vec<(&str, &Path)> = Vec::new();
        for (name, z) in &zones {
            let Some(d) = &z.disk else { continue };
            if let Some((other, _)) = dirs.iter().find(|(_, p)| *p == d.path.as_path()) {
                let span = m
                    .cache_zones
                    .iter()
                    .find(|(k, _)| k.get_ref() == name)
                    .map(|(_, v)| v.span());
                self.error(
                    span.unwrap_or(0..0),
                    format!("cache-zones.{name}.disk.path: zone {other:?} uses the same directory"),
                );
            }
            dirs.push((name, &d.path));
        }
        zones
    }

    /// Which zones share their purges through the top-level store (by default all, when it
    /// is Redis).
    pub(super) fn shared_purges(
        &mut self,
        m: &Manifest,
        store: &crate::store::StoreSettings,
    ) -> Option<(crate::store::RedisSettings, Vec<String>)> {
        let mut sharing = Vec::new();
        for (name, spec) in &m.cache_zones {
            let wanted = spec.get_ref().share_purges.as_ref();
            match (store, wanted) {
                (crate::store::StoreSettings::Redis(_), None) => {
                    sharing.push(name.get_ref().clone())
                }
                (_, Some(s)) if !*s.get_ref() => {}
                (crate::store::StoreSettings::Redis(_), Some(_)) => {
                    sharing.push(name.get_ref().clone())
                }
                (crate::store::StoreSettings::Memory, Some(s)) => self.error(
                    s.span(),
                    format!(
                        "cache-zones.{}.share-purges: purges are shared through Redis: set the \
                         top-level store = {{ backend = \"redis\", url = ... }}",
                        name.get_ref()
                    ),
                ),
                (crate::store::StoreSettings::Memory, None) => {}
            }
        }
        match store {
            crate::store::StoreSettings::Redis(r) if !sharing.is_empty() => {
                Some((r.clone(), sharing))
            }
            _ => None,
        }
    }

    fn cache_zone(&mut self, name: &str, z: &CacheZoneSpec, base: &Path) -> ZoneSettings {
        let field = |f: &str| format!("cache-zones.{name}.{f}");
        let memory = match parse_size(z.memory.get_ref()) {
            Ok(n) if n >= 64 * 1024 => n as u64,
            Ok(_) => {
                self.error(
                    z.memory.span(),
                    format!("{}: at least 64KiB", field("memory")),
                );
                64 * 1024
            }
            Err(e) => {
                self.error(z.memory.span(), format!("{}: {e}", field("memory")));
                64 * 1024
            }
        };
        let max_object_size = match &z.max_object_size {
            None => DEFAULT_MAX_OBJECT_SIZE.min(memory),
            Some(s) => match parse_size(s.get_ref()) {
                Ok(n) if n as u64 <= memory => n as u64,
                Ok(_) => {
                    self.error(
                        s.span(),
                        format!("{}: larger than memory", field("max-object-size")),
                    );
                    memory
                }
                Err(e) => {
                    self.error(s.span(), format!("{}: {e}", field("max-object-size")));
                    memory
                }
            },
        };
        let max_variants = match &z.max_variants {
            None => DEFAULT_MAX_VARIANTS,
            Some(n) if (1..=64).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                self.error(
                    n.span(),
                    format!(
                        "{}: {} is not in 1..=64",
                        field("max-variants"),
                        n.get_ref()
                    ),
                );
                DEFAULT_MAX_VARIANTS
            }
        };
        let purge_from = self.purge_from(&z.purge_from, &field("purge-from"));
        let disk = z
            .disk
            .as_ref()
            .and_then(|d| self.zone_disk(d.get_ref(), base, &field));
        ZoneSettings {
            disk,
            memory,
            max_object_size,
            max_variants,
            lock_timeout: z.lock_timeout.map_or(DEFAULT_LOCK_TIMEOUT, |d| d.0),
            purge_from,
        }
    }

    /// `purge-from`: addresses and networks allowed to purge.
    fn purge_from(&mut self, list: &[toml::Spanned<String>], field: &str) -> Vec<ipnet::IpNet> {
        let mut purge_from = Vec::new();
        for entry in list {
            let text = entry.get_ref();
            match text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(net) => purge_from.push(net),
                Err(_) => self.error(
                    entry.span(),
                    format!("{field}: {text:?} is not an address or CIDR"),
                ),
            }
        }
        purge_from
    }

    /// `disk`: the zone's disk tier, its folder made now.
    fn zone_disk(
        &mut self,
        spec: &manifest::DiskSpec,
        base: &Path,
        field: &dyn Fn(&str) -> String,
    ) -> Option<crate::cache::disk::DiskSettings> {
        let size = match parse_size(spec.size.get_ref()) {
            Ok(n) if n >= 1 << 20 => n as u64,
            Ok(_) => {
                self.error(
                    spec.size.span(),
                    format!("{}: at least 1MiB", field("disk.size")),
                );
                return None;
            }
            Err(e) => {
                self.error(spec.size.span(), format!("{}: {e}", field("disk.size")));
                return None;
            }
        };
        let path = base.join(spec.path.get_ref());
        if let Err(e) = std::fs::create_dir_all(&path) {
            self.error(
                spec.path.span(),
                format!(
                    "{}: cannot make {}: {e}",
                    field("disk.path"),
                    path.display()
                ),
            );
            return None;
        }
        Some(crate::cache::disk::DiskSettings { path, size })
    }

    /// `routes[i].cache`.
    pub(super) fn route_cache(
        &mut self,
        i: usize,
        spec: &toml::Spanned<RouteCacheSpec>,
        m: &Manifest,
    ) -> Option<RouteCacheConfig> {
        let c = spec.get_ref();
        let zone = m
            .cache_zones
            .keys()
            .position(|k| k.get_ref() == c.zone.get_ref());
        if zone.is_none() {
            let defined: Vec<&str> = m.cache_zones.keys().map(|k| k.get_ref().as_str()).collect();
            self.error(
                c.zone.span(),
                format!(
                    "routes[{i}].cache.zone: no cache zone named {:?} (defined: {})",
                    c.zone.get_ref(),
                    if defined.is_empty() {
                        "none; add [cache-zones.<name>]".to_string()
                    } else {
                        defined.join(", ")
                    }
                ),
            );
        }
        let mut headers = Vec::new();
        for h in &c.key_headers {
            match http::HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(n) => headers.push(n),
                Err(_) => self.error(
                    h.span(),
                    format!(
                        "routes[{i}].cache.key-headers: {:?} is not a header name",
                        h.get_ref()
                    ),
                ),
            }
        }
        let names =
            |list: &Vec<toml::Spanned<String>>| list.iter().map(|s| s.get_ref().clone()).collect();
        let query = match (&c.query_allow, &c.query_deny) {
            (Some(_), Some(_)) => {
                self.error(
                    spec.span(),
                    format!("routes[{i}].cache: query-allow and query-deny cannot both be set"),
                );
                QueryRule::All
            }
            (Some(allow), None) => QueryRule::Allow(names(allow)),
            (None, Some(deny)) => QueryRule::Deny(names(deny)),
            (None, None) => QueryRule::All,
        };
        let tag_header = match &c.tag_header {
            None => crate::cache::DEFAULT_TAG_HEADER,
            Some(h) => match http::HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(n) => n,
                Err(_) => {
                    self.error(
                        h.span(),
                        format!(
                            "routes[{i}].cache.tag-header: {:?} is not a header name",
                            h.get_ref()
                        ),
                    );
                    crate::cache::DEFAULT_TAG_HEADER
                }
            },
        };
        Some(RouteCacheConfig {
            zone: zone?,
            key: KeyRules { query, headers },
            default_ttl: c.default_ttl.map(|d| d.0),
            stale_while_revalidate: c.stale_while_revalidate.map(|d| d.0.as_secs()),
            stale_if_error: c.stale_if_error.map(|d| d.0.as_secs()),
            store_set_cookie: c.store_set_cookie.unwrap_or(false),
            tag_header,
        })
    }

    /// `routes[i].compress`: `true`/`false`, or a table of settings.
    pub(super) fn route_compress(
        &mut self,
        i: usize,
        spec: &toml::Spanned<toml::Value>,
    ) -> Option<CompressSettings> {
        let span = spec.span();
        let table = match spec.get_ref() {
            toml::Value::Boolean(on) => return on.then(CompressSettings::default),
            toml::Value::Table(t) => t,
            other => {
                self.error(
                    span,
                    format!(
                        "routes[{i}].compress: expected true, false or a table, found {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        let mut s = CompressSettings::default();
        for (k, v) in table {
            let field = format!("routes[{i}].compress.{k}");
            let result = match k.as_str() {
                "codings" => strings(v).and_then(|list| {
                    list.iter()
                        .map(|c| Coding::parse(c).ok_or_else(|| format!("{c:?} is not \"zstd\", \"br\" or \"gzip\"")))
                        .collect::<Result<Vec<_>, _>>()
                        .map(|c| s.codings = c)
                }),
                "types" => strings(v).map(|t| s.types = t.iter().map(|t| t.to_ascii_lowercase()).collect()),
                "min-size" => size(v).map(|n| s.min_size = n),
                "gzip-level" => level(v, 1, 9).map(|n| s.gzip_level = n),
                "brotli-level" => level(v, 0, 11).map(|n| s.brotli_level = n),
                "zstd-level" => level(v, 1, 22).map(|n| s.zstd_level = n),
                _ => Err("unknown key (expected codings, types, min-size, gzip-level, brotli-level or zstd-level)".to_string()),
            };
            if let Err(e) = result {
                self.error(span.clone(), format!("{field}: {e}"));
            }
        }
        if s.codings.is_empty() {
            self.error(
                span,
                format!("routes[{i}].compress.codings: empty (set compress = false instead)"),
            );
        }
        Some(s)
    }
}

fn strings(v: &toml::Value) -> Result<Vec<String>, String> {
    let toml::Value::Array(items) = v else {
        return Err(format!(
            "expected a list of strings, found {}",
            v.type_str()
        ));
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("expected a string, found {}", i.type_str()))
        })
        .collect()
}

fn level(v: &toml::Value, low: i64, high: i64) -> Result<u32, String> {
    match v.as_integer() {
        Some(n) if (low..=high).contains(&n) => Ok(n as u32),
        Some(n) => Err(format!("{n} is not in {low}..={high}")),
        None => Err(format!("expected an integer, found {}", v.type_str())),
    }
}

/// Bytes as an integer or a size string ("1KiB").
fn size(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        toml::Value::String(s) => parse_size(s).map(|n| n as u64),
        other => Err(format!(
            "expected bytes (an integer or a size such as \"1KiB\"), found {other}"
        )),
    }
}
