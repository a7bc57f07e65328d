//! The `geo` import: filters' lookups in the live configuration's geo databases.

use super::bindings::weir::filter::geo as wit;
use super::host::FilterState;

impl wit::Host for FilterState {
    fn lookup(&mut self, addr: String) -> wasmtime::Result<Option<wit::Location>> {
        let Ok(ip) = addr.trim().parse::<std::net::IpAddr>() else {
            return Ok(None);
        };
        Ok(self.services.geo.lookup(ip).map(|l| wit::Location {
            country: l.country,
            continent: l.continent,
            asn: l.asn,
            as_org: l.as_org,
        }))
    }
}
