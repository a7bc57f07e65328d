//! Property tests: any request head the HTTP parsers let through either is refused or
//! becomes a canonical request whose route lookup is stable, without panicking.

use super::*;
use crate::route::fixtures::route;
use crate::route::{PathMatch, RouteQuery, RouteTable};
use proptest::prelude::*;

fn table() -> RouteTable {
    RouteTable::new(vec![
        route(None, PathMatch::Prefix("/".into()), "root"),
        route(None, PathMatch::Prefix("/api".into()), "api"),
        route(None, PathMatch::Exact("/api/items".into()), "items"),
        route(
            None,
            PathMatch::Regex(regex::Regex::new("^/u/[0-9]+$").expect("regex")),
            "user",
        ),
        route(Some("admin"), PathMatch::Prefix("/".into()), "admin"),
        route(Some("*.example.com"), PathMatch::Prefix("/".into()), "wild"),
    ])
}

/// Path-ish text: the characters that matter to normalisation, in any order.
fn path_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%".to_owned()),
            Just("%2e".to_owned()),
            Just("%2F".to_owned()),
            Just("%5c".to_owned()),
            Just("%00".to_owned()),
            Just("%61".to_owned()),
            Just("%7E".to_owned()),
            Just("%c3%a9".to_owned()),
            Just("\\".to_owned()),
            Just("?".to_owned()),
            Just("api".to_owned()),
            Just("admin".to_owned()),
            Just("items".to_owned()),
            "[a-zA-Z0-9_~!$&'()*+,;=:@-]{1,3}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// Host-ish bytes, mostly near-valid.
fn host_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9.-]{0,12}(:[0-9]{0,6})?".prop_map(String::into_bytes),
        "\\[[0-9a-fA-F:]{0,10}\\]?(:[0-9]{0,3})?".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

fn settle(
    method: &str,
    target: &str,
    hosts: &[Vec<u8>],
    version: Version,
    slashes: EscapedSlashes,
) -> Option<(Parts, Result<Canonical, Refusal>)> {
    let mut b = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).ok()?)
        .uri(http::Uri::try_from(target).ok()?)
        .version(version);
    for h in hosts {
        b = b.header(http::header::HOST, HeaderValue::from_bytes(h).ok()?);
    }
    let mut parts = b.body(()).ok()?.into_parts().0;
    let rules = Rules {
        escaped_slashes: slashes,
        underscores_in_headers: false,
    };
    let result = canonicalize(&mut parts, &rules);
    Some((parts, result))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn canonical_requests_are_stable_and_routable(
        method in prop_oneof![Just("GET"), Just("POST"), Just("OPTIONS"), Just("TRACE"), Just("CONNECT")],
        absolute in any::<bool>(),
        authority in "[a-zA-Z0-9.-]{1,8}(:[0-9]{1,5})?",
        path in path_text(),
        hosts in proptest::collection::vec(host_bytes(), 0..3),
        h2 in any::<bool>(),
        keep in any::<bool>(),
    ) {
        let target = if absolute { format!("http://{authority}/{path}") } else { format!("/{path}") };
        let version = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
        let slashes = if keep { EscapedSlashes::Keep } else { EscapedSlashes::Reject };
        let Some((parts, result)) = settle(method, &target, &hosts, version, slashes) else {
            return Ok(());
        };
        let Ok(_) = result else { return Ok(()) };
        // One canonical Host, which is its own canonical form.
        let all: Vec<_> = parts.headers.get_all(http::header::HOST).iter().collect();
        prop_assert!(all.len() <= 1);
        if let Some(h) = all.first() {
            prop_assert_eq!(&authority::canonical(h.as_bytes()).expect("canonical host"), *h);
        }
        // Origin-form, normal path: a fixed point without empty or dot segments.
        prop_assert!(parts.uri.scheme().is_none() && parts.uri.authority().is_none());
        let p = parts.uri.path();
        if p != "*" {
            let again = path::normalize(p, slashes).expect("still valid");
            prop_assert_eq!(again.as_deref().unwrap_or(p), p);
            prop_assert!(!p.contains("//"), "{}", p);
            for seg in p.split('/').skip(1) {
                prop_assert!(seg != "." && seg != "..", "{}", p);
            }
            if !keep {
                prop_assert!(!p.to_ascii_lowercase().contains("%2f"), "{}", p);
            }
        }
        // Route lookup reads the canonical request, and re-settling it changes nothing.
        let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
        let t = table();
        let nowhere = || None;
        let first = t.find(host, &RouteQuery::new(&parts.method, p, &parts.headers, &nowhere)).map(|r| r.backends.list()[0].0.name().to_owned());
        let again = parts.uri.to_string();
        let hosts_again: Vec<Vec<u8>> = all.iter().map(|h| h.as_bytes().to_vec()).collect();
        if let Some((parts2, Ok(_))) = settle(method, &again, &hosts_again, version, slashes) {
            let host2 = parts2.headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
            let second = t.find(host2, &RouteQuery::new(&parts2.method, parts2.uri.path(), &parts2.headers, &nowhere)).map(|r| r.backends.list()[0].0.name().to_owned());
            prop_assert_eq!(first, second);
            prop_assert_eq!(parts2.uri, parts.uri);
        }
    }

    #[test]
    fn any_path_bytes_normalise_or_refuse(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let text = String::from_utf8_lossy(&bytes);
        let path = format!("/{text}");
        for slashes in [EscapedSlashes::Reject, EscapedSlashes::Keep] {
            if let Ok(Some(n)) = path::normalize(&path, slashes) {
                let again = path::normalize(&n, slashes).expect("valid");
                prop_assert_eq!(again.as_deref().unwrap_or(&n), n.as_str());
            }
        }
    }

    #[test]
    fn any_authority_bytes_are_checked_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
        if let Ok(v) = authority::canonical(&bytes) {
            let text = v.to_str().expect("ascii");
            let _ = authority::host_of(text);
            prop_assert_eq!(authority::canonical(v.as_bytes()).expect("canonical"), v.clone());
        }
        let _ = authority::host_of(&String::from_utf8_lossy(&bytes));
    }
}
