//! Geolocation of client addresses: MaxMind-format (`.mmdb`) databases named by the
//! manifest's `geo-databases`, merged into one [`Location`] per address, for route
//! conditions (`countries`, `continents`, `asns`) and the filters' `geo` import.
//!
//! Databases are read whole into memory when the manifest is validated (so `weir check`
//! and a reload report a missing or corrupt file at its manifest entry) and are replaced
//! as a whole by a reload, which a change to one of the files triggers.

#[cfg(test)]
pub mod writer;

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where an address is, as far as the databases know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, upper-case (the registered country when the
    /// database has no physical one).
    pub country: Option<String>,
    /// Continent code, upper-case: AF, AN, AS, EU, NA, OC or SA.
    pub continent: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
}

impl Location {
    fn is_empty(&self) -> bool {
        self.country.is_none()
            && self.continent.is_none()
            && self.asn.is_none()
            && self.as_org.is_none()
    }

    /// Fill the fields this one lacks from `other`.
    fn merge(&mut self, other: Location) {
        self.country = self.country.take().or(other.country);
        self.continent = self.continent.take().or(other.continent);
        self.asn = self.asn.or(other.asn);
        self.as_org = self.as_org.take().or(other.as_org);
    }
}

/// Why a database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid MaxMind DB.
    #[error("{path} is not a valid MaxMind DB (.mmdb) file: {why}")]
    Invalid {
        /// The database file.
        path: PathBuf,
        /// What the reader found wrong.
        why: String,
    },
}

/// The databases, in manifest order: for each field, the first that knows it wins.
pub struct GeoDb {
    readers: Vec<(PathBuf, maxminddb::Reader<Vec<u8>>)>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<_> = self.readers.iter().map(|(p, _)| p).collect();
        f.debug_struct("GeoDb").field("files", &files).finish()
    }
}

/// The fields Weir reads, from GeoIP2/GeoLite2 Country, City and ASN databases (and DB-IP's
/// equivalents, which use the same names).
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
    #[serde(borrow)]
    registered_country: Option<Country<'a>>,
    #[serde(borrow)]
    continent: Option<Continent<'a>>,
    #[serde(default, deserialize_with = "any_unsigned")]
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize)]
struct Country<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Continent<'a> {
    code: Option<&'a str>,
}

/// An unsigned number of any width the writer chose (MaxMind's files use uint32; other
/// writers pick the smallest type that fits), or `None` when it does not fit a `u32`.
fn any_unsigned<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    struct Unsigned;
    impl serde::de::Visitor<'_> for Unsigned {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an unsigned number")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(u32::try_from(n).ok())
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Ok(u32::try_from(n).ok())
        }
        fn visit_u128<E: serde::de::Error>(self, n: u128) -> Result<Self::Value, E> {
            Ok(u32::try_from(n).ok())
        }
    }
    d.deserialize_any(Unsigned)
}

impl GeoDb {
    /// Read and check each database file.
    pub fn open(paths: &[PathBuf]) -> Result<GeoDb, GeoError> {
        let readers = paths
            .iter()
            .map(|path| Ok((path.clone(), open_one(path)?)))
            .collect::<Result<_, GeoError>>()?;
        Ok(GeoDb { readers })
    }

    /// One set of databases from several, in order.
    pub fn merge(sets: Vec<GeoDb>) -> GeoDb {
        GeoDb {
            readers: sets.into_iter().flat_map(|s| s.readers).collect(),
        }
    }

    /// The database files.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.readers.iter().map(|(p, _)| p)
    }

    /// Where `addr` is, or `None` when no database knows anything about it. A database
    /// whose record for it cannot be decoded counts as knowing nothing (logged at debug).
    pub fn lookup(&self, addr: IpAddr) -> Option<Location> {
        let addr = addr.to_canonical();
        let mut found = Location::default();
        for (path, reader) in &self.readers {
            match read(reader, addr) {
                Ok(Some(loc)) => found.merge(loc),
                Ok(None) => {}
                Err(e) => tracing::debug!("geo lookup of {addr} in {}: {e}", path.display()),
            }
        }
        (!found.is_empty()).then_some(found)
    }
}

fn open_one(path: &Path) -> Result<maxminddb::Reader<Vec<u8>>, GeoError> {
    let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |e: maxminddb::MaxMindDbError| GeoError::Invalid {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    // Checks the metadata and the search tree's bounds. Records are checked as they are
    // read: one that cannot be decoded makes its address unknown, never a panic.
    maxminddb::Reader::from_source(bytes).map_err(invalid)
}

fn read(
    reader: &maxminddb::Reader<Vec<u8>>,
    addr: IpAddr,
) -> Result<Option<Location>, maxminddb::MaxMindDbError> {
    // An IPv6 address in an IPv4-only database is simply unknown to it.
    if addr.is_ipv6() && reader.metadata().ip_version == 4 {
        return Ok(None);
    }
    let Some(record) = reader.lookup(addr)?.decode::<Record>()? else {
        return Ok(None);
    };
    let code = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(|s| s.to_ascii_uppercase());
    let country = record
        .country
        .and_then(|c| code(c.iso_code))
        .or_else(|| record.registered_country.and_then(|c| code(c.iso_code)));
    Ok(Some(Location {
        country,
        continent: record.continent.and_then(|c| code(c.code)),
        asn: record.autonomous_system_number,
        as_org: record
            .autonomous_system_organization
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    }))
}

/// The live databases, shared by the route table's owner and every filter: replaced as a
/// whole when a reload brings new ones. Cheap to clone.
#[derive(Clone, Default)]
pub struct GeoHandle(Arc<arc_swap::ArcSwapOption<GeoDb>>);

impl GeoHandle {
    /// Serve lookups from `db` (or none) from now on.
    pub fn set(&self, db: Option<Arc<GeoDb>>) {
        self.0.store(db);
    }

    /// Where `addr` is, by the live databases.
    pub fn lookup(&self, addr: IpAddr) -> Option<Location> {
        self.0.load().as_ref().and_then(|db| db.lookup(addr))
    }
}

#[cfg(test)]
mod tests;
