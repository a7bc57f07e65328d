//! `geo`: allow and deny requests by where the client is (country, continent, autonomous
//! system), from the proxy's `geo-databases`, and tell the upstream and later filters.
//!
//! ```toml
//! geo-databases = ["GeoLite2-Country.mmdb", "GeoLite2-ASN.mmdb"]   # top of the manifest
//!
//! [filters.geo.config]
//! deny-countries = ["KP"]           # ISO 3166-1 alpha-2 codes
//! deny-asns = [64496]               # autonomous system numbers
//! allow-continents = ["EU"]         # AF, AN, AS, EU, NA, OC, SA
//! allow-countries = ["US", "CA"]    # with allow-continents: EU or US or CA
//! unknown = "deny"                  # clients the databases do not place; see below
//! status = 403                      # default 403
//! body = "forbidden\n"              # default "forbidden\n"
//! forward-headers = true            # X-Geo-Country / -Continent / -ASN; default true
//! ```
//! Deny lists are checked first: a client in any of them is refused. With any allow list
//! set, a client must be in at least one of them. A client whose location the databases do
//! not know (a private address, a missing database) has no country, continent or ASN: with
//! an allow list it is refused, with only deny lists it passes; `unknown` overrides either.
//! A location known in part is judged by the fields known: with `allow-countries` and no
//! country known (an ASN-only database), the client is in no allow list and is refused.
//!
//! Whatever it decides, the filter puts what it found into the request context
//! (`geo.country`, `geo.continent`, `geo.asn`, for `rate-limit`'s `context:` descriptor
//! and other filters) and, with `forward-headers`, into `X-Geo-*` headers for the upstream;
//! copies of those headers sent by the client are always dropped.

use serde::Deserialize;
use weir_sdk::geo::{self, Location};
use weir_sdk::{Action, Config, Filter, Hooks, LocalResponse, Request};

const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
const HEADERS: [&str; 3] = ["x-geo-country", "x-geo-continent", "x-geo-asn"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    allow_countries: Vec<String>,
    #[serde(default)]
    deny_countries: Vec<String>,
    #[serde(default)]
    allow_continents: Vec<String>,
    #[serde(default)]
    deny_continents: Vec<String>,
    #[serde(default)]
    allow_asns: Vec<u32>,
    #[serde(default)]
    deny_asns: Vec<u32>,
    unknown: Option<Unknown>,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default = "default_body")]
    body: String,
    #[serde(default = "yes")]
    forward_headers: bool,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "kebab-case")]
enum Unknown {
    Allow,
    Deny,
}

fn default_status() -> u16 {
    403
}

fn default_body() -> String {
    "forbidden\n".into()
}

fn yes() -> bool {
    true
}

/// One kind of list: countries, continents or ASNs.
#[derive(Debug, Default)]
struct Lists<T> {
    allow: Vec<T>,
    deny: Vec<T>,
}

/// The `geo` filter.
pub struct Geo {
    countries: Lists<String>,
    continents: Lists<String>,
    asns: Lists<u32>,
    unknown: Unknown,
    refusal: LocalResponse,
    forward_headers: bool,
}

fn countries(field: &str, list: Vec<String>) -> Result<Vec<String>, String> {
    list.into_iter()
        .enumerate()
        .map(|(i, c)| {
            let code = c.trim().to_ascii_uppercase();
            if code == "UK" {
                Err(format!(
                    "{field}[{i}]: \"UK\" is not an ISO 3166-1 code: the United Kingdom is \"GB\""
                ))
            } else if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(code)
            } else {
                Err(format!(
                    "{field}[{i}]: {c:?} is not an ISO 3166-1 alpha-2 country code (e.g. \"DE\")"
                ))
            }
        })
        .collect()
}

fn continents(field: &str, list: Vec<String>) -> Result<Vec<String>, String> {
    list.into_iter()
        .enumerate()
        .map(|(i, c)| {
            let code = c.trim().to_ascii_uppercase();
            if CONTINENTS.contains(&code.as_str()) {
                Ok(code)
            } else {
                Err(format!(
                    "{field}[{i}]: {c:?} is not a continent code (one of {})",
                    CONTINENTS.join(", ")
                ))
            }
        })
        .collect()
}

fn asns(field: &str, list: Vec<u32>) -> Result<Vec<u32>, String> {
    match list.iter().position(|a| *a == 0) {
        Some(i) => Err(format!("{field}[{i}]: 0 is not an AS number")),
        None => Ok(list),
    }
}

/// How one kind of list judges the client's field of that kind.
enum Verdict {
    Denied,
    Allowed,
    Neither,
}

impl<T: PartialEq> Lists<T> {
    fn judge(&self, value: Option<&T>) -> Verdict {
        match value {
            Some(v) if self.deny.contains(v) => Verdict::Denied,
            Some(v) if self.allow.contains(v) => Verdict::Allowed,
            _ => Verdict::Neither,
        }
    }
}

impl Geo {
    fn has_allow(&self) -> bool {
        !(self.countries.allow.is_empty()
            && self.continents.allow.is_empty()
            && self.asns.allow.is_empty())
    }

    /// Whether a client at `at` may pass.
    pub fn admits(&self, at: Option<&Location>) -> bool {
        let known =
            at.is_some_and(|l| l.country.is_some() || l.continent.is_some() || l.asn.is_some());
        if !known {
            return match self.unknown {
                Unknown::Allow => true,
                Unknown::Deny => false,
            };
        }
        let at = at.cloned().unwrap_or_default();
        let verdicts = [
            self.countries.judge(at.country.as_ref()),
            self.continents.judge(at.continent.as_ref()),
            self.asns.judge(at.asn.as_ref()),
        ];
        if verdicts.iter().any(|v| matches!(v, Verdict::Denied)) {
            return false;
        }
        !self.has_allow() || verdicts.iter().any(|v| matches!(v, Verdict::Allowed))
    }
}

impl Filter for Geo {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if !(400..=599).contains(&s.status) {
            return Err(format!("status: {} is not in 400..=599", s.status));
        }
        let mut geo = Geo {
            countries: Lists {
                allow: countries("allow-countries", s.allow_countries)?,
                deny: countries("deny-countries", s.deny_countries)?,
            },
            continents: Lists {
                allow: continents("allow-continents", s.allow_continents)?,
                deny: continents("deny-continents", s.deny_continents)?,
            },
            asns: Lists {
                allow: asns("allow-asns", s.allow_asns)?,
                deny: asns("deny-asns", s.deny_asns)?,
            },
            unknown: Unknown::Allow,
            refusal: LocalResponse::text(s.status, s.body),
            forward_headers: s.forward_headers,
        };
        let has_deny = !(geo.countries.deny.is_empty()
            && geo.continents.deny.is_empty()
            && geo.asns.deny.is_empty());
        if !geo.has_allow() && !has_deny && !geo.forward_headers && s.unknown.is_none() {
            return Err(
                "nothing to do: set allow-/deny- lists, `unknown`, or `forward-headers`".into(),
            );
        }
        geo.unknown = s.unknown.unwrap_or(if geo.has_allow() {
            Unknown::Deny
        } else {
            Unknown::Allow
        });
        Ok(geo)
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn on_request(&self, req: &mut Request) -> Action {
        let at = geo::lookup(&req.client_addr());
        let fields = at.as_ref().map(|l| {
            [
                l.country.clone(),
                l.continent.clone(),
                l.asn.map(|a| a.to_string()),
            ]
        });
        for (i, name) in HEADERS.iter().enumerate() {
            req.remove_header(name);
            let value = fields.as_ref().and_then(|f| f.get(i).cloned().flatten());
            if let Some(value) = value {
                let key = name.trim_start_matches("x-geo-");
                // Codes and numbers are short ASCII: neither can fail.
                let _ = req.set_context(&format!("geo.{key}"), &value);
                if self.forward_headers {
                    let _ = req.set_header(name, &value);
                }
            }
        }
        if self.admits(at.as_ref()) {
            Action::Continue
        } else {
            Action::Respond(self.refusal.clone())
        }
    }
}

weir_sdk::export_filter!(Geo);

#[cfg(test)]
mod tests;
