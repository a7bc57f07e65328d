use super::*;
use weir_sdk::testing::{self, MockRequest};

fn filter(config: &str) -> Geo {
    testing::init(config).unwrap()
}

fn places() {
    testing::reset_geo();
    testing::locate("81.2.69.0/24", Location::country("GB", "EU"));
    testing::locate(
        "2001:db8::/32",
        Location::country("DE", "EU").with_asn(3320, "DTAG"),
    );
    testing::locate("203.0.113.0/24", Location::country("JP", "AS"));
    testing::locate(
        "198.51.100.0/24",
        Location::country("US", "NA").with_asn(64496, "Bad Net"),
    );
    testing::locate(
        "192.0.2.0/24",
        Location::default().with_asn(64500, "ASN only"),
    );
}

fn from(f: &Geo, ip: &str) -> (Action, MockRequest) {
    let mut req = MockRequest::get("/")
        .with_client_addr(ip)
        .with_header("x-geo-country", "FR");
    let action = testing::on_request(f, &mut req);
    (action, req)
}

#[test]
fn deny_lists_refuse_and_the_rest_passes() {
    places();
    let f = filter(r#"{"deny-countries": ["jp"], "deny-asns": [64496]}"#);
    testing::assert_responds(&from(&f, "203.0.113.5").0, 403);
    testing::assert_responds(&from(&f, "198.51.100.1").0, 403);
    testing::assert_continues(&from(&f, "81.2.69.142").0);
    testing::assert_continues(&from(&f, "10.0.0.1").0);
}

#[test]
fn allow_lists_are_alternatives_and_deny_wins() {
    places();
    let f = filter(
        r#"{"allow-continents": ["EU"], "allow-countries": ["US"], "deny-asns": [3320], "status": 451, "body": "not here\n"}"#,
    );
    testing::assert_continues(&from(&f, "81.2.69.1").0);
    testing::assert_continues(&from(&f, "198.51.100.1").0);
    testing::assert_responds(&from(&f, "2001:db8::1").0, 451);
    testing::assert_responds(&from(&f, "203.0.113.1").0, 451);
    testing::assert_responds(&from(&f, "192.0.2.1").0, 451);
    testing::assert_responds(&from(&f, "10.0.0.1").0, 451);
}

#[test]
fn unknown_clients_follow_the_policy() {
    places();
    let allow_unknown = filter(r#"{"allow-countries": ["GB"], "unknown": "allow"}"#);
    testing::assert_continues(&from(&allow_unknown, "10.1.1.1").0);
    testing::assert_continues(&from(&allow_unknown, "not-an-ip").0);
    testing::assert_responds(&from(&allow_unknown, "203.0.113.1").0, 403);
    let deny_unknown = filter(r#"{"deny-countries": ["JP"], "unknown": "deny"}"#);
    testing::assert_responds(&from(&deny_unknown, "10.1.1.1").0, 403);
    testing::assert_continues(&from(&deny_unknown, "81.2.69.1").0);
}

#[test]
fn the_location_goes_to_headers_and_context_and_client_copies_are_dropped() {
    places();
    let f = filter(r#"{"forward-headers": true}"#);
    let (action, mut req) = from(&f, "2001:db8::7");
    testing::assert_continues(&action);
    let req = req.request();
    assert_eq!(req.header("x-geo-country").as_deref(), Some("DE"));
    assert_eq!(req.header("x-geo-continent").as_deref(), Some("EU"));
    assert_eq!(req.header("x-geo-asn").as_deref(), Some("3320"));
    assert_eq!(req.context("geo.asn").as_deref(), Some("3320"));
    let (_, mut req) = from(&f, "10.0.0.1");
    assert_eq!(
        req.request().header("x-geo-country"),
        None,
        "the client's copy is dropped"
    );
    let quiet = filter(r#"{"deny-countries": ["JP"], "forward-headers": false}"#);
    let (_, mut req) = from(&quiet, "81.2.69.1");
    let req = req.request();
    assert_eq!(req.header("x-geo-country"), None);
    assert_eq!(req.context("geo.country").as_deref(), Some("GB"));
}

#[test]
fn bad_config_is_refused_with_the_field() {
    let err = |config: &str| testing::init::<Geo>(config).err().unwrap();
    assert_eq!(
        err(r#"{"deny-countries": ["DE", "Germany"]}"#),
        "deny-countries[1]: \"Germany\" is not an ISO 3166-1 alpha-2 country code (e.g. \"DE\")"
    );
    assert!(err(r#"{"allow-continents": ["EUR"]}"#)
        .starts_with("allow-continents[0]: \"EUR\" is not a continent code"));
    assert_eq!(
        err(r#"{"deny-asns": [0]}"#),
        "deny-asns[0]: 0 is not an AS number"
    );
    assert!(err(r#"{"unknown": "maybe"}"#).contains("unknown"));
    assert!(err(r#"{"deny-countries": ["JP"], "status": 302}"#).contains("status"));
    assert_eq!(
        err(r#"{"forward-headers": false}"#),
        "nothing to do: set allow-/deny- lists, `unknown`, or `forward-headers`"
    );
    assert!(err(r#"{"deny-country": ["JP"]}"#).contains("deny-country"));
}
