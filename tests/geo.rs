//! Geolocation: routes chosen by the client's country, continent and ASN, and the `geo`
//! filter, from `.mmdb` databases the tests write themselves; the trusted client address
//! is what is located (h1, h2 and raw bytes); a database changed on disk is reloaded, a
//! broken one is refused with its file named while the old one keeps serving.

mod harness;
use harness::mmdb::{location, Writer};
use harness::*;

fn database() -> Writer {
    let mut w = Writer::new("GeoLite2-Country");
    w.insert("81.2.69.0/24", &location(Some("GB"), Some("EU"), None))
        .insert("203.0.113.0/24", &location(Some("JP"), Some("AS"), None))
        .insert(
            "198.51.100.0/24",
            &location(Some("US"), Some("NA"), Some((64496, "Bad Net"))),
        )
        .insert(
            "2001:db8::/32",
            &location(Some("DE"), Some("EU"), Some((3320, "DTAG"))),
        );
    w
}

/// Upstreams `world`, `uk`, `asia`, `bad`, `eu`; routes by country, continent and ASN; `/eu`
/// behind the `geo` filter (Europe only).
fn geo_manifest(ups: &[&Upstream]) -> String {
    let [world, uk, asia, bad, eu] = ups else {
        panic!("five upstreams")
    };
    format!(
        r#"plugins-dir = "{{plugins}}"
geo-databases = ["countries.mmdb"]

[[listeners]]
address = "127.0.0.1:0"
trusted-proxies = ["127.0.0.0/8"]

[upstreams.world]
targets = ["{}"]
[upstreams.uk]
targets = ["{}"]
[upstreams.asia]
targets = ["{}"]
[upstreams.bad]
targets = ["{}"]
[upstreams.eu]
targets = ["{}"]

[[routes]]
upstream = "world"
[[routes]]
countries = ["gb"]
upstream = "uk"
[[routes]]
continents = ["AS"]
upstream = "asia"
[[routes]]
asns = [64496]
upstream = "bad"
[[routes]]
path = "/eu"
upstream = "eu"
filters = ["europe"]

[filters.europe]
plugin = "geo.wasm"
config = {{ allow-continents = ["EU"], body = "not in Europe\n" }}
"#,
        world.addr, uk.addr, asia.addr, bad.addr, eu.addr
    )
}

async fn upstreams() -> Vec<Upstream> {
    let mut v = Vec::new();
    for name in ["world", "uk", "asia", "bad", "eu"] {
        v.push(Upstream::echo(name).await);
    }
    v
}

fn start(ups: &[Upstream]) -> Weir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("countries.mmdb"), database().to_bytes()).unwrap();
    let refs: Vec<&Upstream> = ups.iter().collect();
    Weir::start_in(dir, &geo_manifest(&refs))
}

fn h2_get(url: &str, xff: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(url)
        .header("x-forwarded-for", xff)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn routes_follow_the_clients_country_continent_and_asn() {
    let ups = upstreams().await;
    let weir = start(&ups);
    let cases = [
        ("81.2.69.142", "uk"),
        ("203.0.113.7", "asia"),
        ("198.51.100.1", "bad"),
        ("2001:db8::1", "world"),
        ("192.0.2.1", "world"),
        ("::ffff:81.2.69.1", "uk"),
    ];
    for (client, upstream) in cases {
        let r = get(&weir.url("/x"), &[("x-forwarded-for", client)]).await;
        assert_eq!(r.header("x-upstream"), Some(upstream), "h1 {client}");
        let r2 = send_h2(h2_get(&weir.url("/x"), client)).await;
        assert_eq!(r2.header("x-upstream"), Some(upstream), "h2 {client}");
    }
    // The peer itself (127.0.0.1, not in the database) without forwarding: the default.
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.header("x-upstream"), Some("world"));
    // An untrusted peer cannot claim a location: only trusted-proxy peers are believed,
    // and the right-most untrusted hop is the client.
    let r = get(
        &weir.url("/"),
        &[("x-forwarded-for", "81.2.69.1, 192.0.2.9")],
    )
    .await;
    assert_eq!(r.header("x-upstream"), Some("world"));
    // Raw bytes: two X-Forwarded-For lines are one list; the last hop is the client.
    let raw = raw::exchange(
        weir.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 203.0.113.9\r\n\
          Connection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(raw.text.contains("x-upstream: asia"), "{}", raw.text);
}

#[tokio::test]
async fn the_geo_filter_refuses_outside_its_lists_and_tells_the_upstream() {
    let ups = upstreams().await;
    let weir = start(&ups);
    for (client, status) in [
        ("81.2.69.142", 200),
        ("2001:db8::5", 200),
        ("203.0.113.7", 403),
        ("192.0.2.1", 403),
        ("127.0.0.1", 403),
    ] {
        let r = get(
            &weir.url("/eu"),
            &[("x-forwarded-for", client), ("x-geo-country", "FR")],
        )
        .await;
        assert_eq!(r.status, status, "h1 {client}: {}", r.body);
        let r2 = send_h2(h2_get(&weir.url("/eu"), client)).await;
        assert_eq!(r2.status, status, "h2 {client}");
        if status == 403 {
            assert_eq!(r.body, "not in Europe\n");
            assert_eq!(r.header("x-upstream"), None);
        } else {
            assert!(
                !r.body.contains("x-geo-country: FR"),
                "client copy dropped: {}",
                r.body
            );
        }
    }
    let r = get(&weir.url("/eu"), &[("x-forwarded-for", "2001:db8::5")]).await;
    for line in [
        "x-geo-country: DE",
        "x-geo-continent: EU",
        "x-geo-asn: 3320",
    ] {
        assert!(r.body.contains(line), "{line} in {}", r.body);
    }
}

#[tokio::test]
async fn a_changed_database_is_reloaded_and_a_broken_one_refused() {
    let ups = upstreams().await;
    let weir = start(&ups);
    let db = weir.dir().join("countries.mmdb");
    let xff = [("x-forwarded-for", "192.0.2.1")];
    assert_eq!(
        get(&weir.url("/"), &xff).await.header("x-upstream"),
        Some("world")
    );
    // 192.0.2.0/24 moves to Great Britain.
    let mut w = database();
    w.insert("192.0.2.0/24", &location(Some("GB"), Some("EU"), None));
    let tmp = weir.dir().join("countries.mmdb.new");
    std::fs::write(&tmp, w.to_bytes()).unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    weir.wait_for_log("a file the manifest names changed: reloading");
    weir.wait_for_log("reloaded");
    let mut seen = None;
    for _ in 0..100 {
        seen = get(&weir.url("/"), &xff)
            .await
            .header("x-upstream")
            .map(str::to_owned);
        if seen.as_deref() == Some("uk") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen.as_deref(), Some("uk"), "routes use the new database");
    // The filter's lookups use it too.
    let r = get(&weir.url("/eu"), &xff).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A broken file: refused, named, and the last good database keeps serving.
    std::fs::write(&db, b"\xAB\xCD\xEFMaxMind.com garbage").unwrap();
    let logs = weir.wait_for_log("reload refused");
    assert!(logs.contains("countries.mmdb"), "{logs}");
    assert!(logs.contains("geo-databases"), "{logs}");
    assert_eq!(
        get(&weir.url("/"), &xff).await.header("x-upstream"),
        Some("uk")
    );
}

#[tokio::test]
async fn bad_geo_settings_are_located_errors() {
    let up = Upstream::echo("app").await;
    let base = manifest(&[up.addr], &[], "");
    // Location conditions need databases.
    let m = base.replace(
        "upstream = \"app\"",
        "upstream = \"app\"\ncountries = [\"DE\"]",
    );
    let (ok, _, err) = check(&m);
    assert!(!ok);
    assert!(
        err.contains("routes[0]: location conditions need `geo-databases`"),
        "{err}"
    );
    assert!(err.contains("weir.toml:"), "located: {err}");
    // Malformed codes, with a database present.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.mmdb"), database().to_bytes()).unwrap();
    let m = format!("geo-databases = [\"c.mmdb\"]\n{base}").replace(
        "upstream = \"app\"",
        "upstream = \"app\"\ncountries = [\"Germany\"]\ncontinents = [\"EUR\"]\nasns = [-1]",
    );
    let (ok, _, err) = check_in(dir.path(), &m);
    assert!(!ok);
    assert!(
        err.contains("routes[0].countries: \"Germany\" is not an ISO 3166-1 alpha-2"),
        "{err}"
    );
    assert!(
        err.contains("routes[0].continents: \"EUR\" is not a continent code"),
        "{err}"
    );
    assert!(
        err.contains("routes[0].asns: -1 is not an AS number"),
        "{err}"
    );
    // A missing and a broken database, each at its entry.
    std::fs::write(dir.path().join("junk.mmdb"), b"junk").unwrap();
    let m = format!("geo-databases = [\"c.mmdb\", \"gone.mmdb\", \"junk.mmdb\"]\n{base}");
    let (ok, _, err) = check_in(dir.path(), &m);
    assert!(!ok);
    assert!(err.contains("weir.toml:1:"), "located: {err}");
    assert!(
        err.contains("geo-databases: cannot read") && err.contains("gone.mmdb"),
        "{err}"
    );
    assert!(err.contains("junk.mmdb is not a valid MaxMind DB"), "{err}");
    let m = format!("geo-databases = [\"c.mmdb\"]\n{base}");
    let (ok, out, err) = check_in(dir.path(), &m);
    assert!(ok, "{out}{err}");
}
