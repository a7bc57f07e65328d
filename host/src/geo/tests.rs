use super::writer::{location, map, s, Writer};
use super::*;

fn write(dir: &Path, name: &str, w: &Writer) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, w.to_bytes()).unwrap();
    path
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn countries(dir: &Path) -> PathBuf {
    let mut w = Writer::new("GeoLite2-Country");
    w.insert("81.2.69.0/24", &location(Some("GB"), Some("EU"), None))
        .insert("203.0.113.0/24", &location(Some("jp"), Some("as"), None))
        .insert("2001:db8::/32", &location(Some("DE"), Some("EU"), None))
        .insert(
            "198.51.100.0/24",
            &map(&[("registered_country", map(&[("iso_code", s("US"))]))]),
        );
    write(dir, "country.mmdb", &w)
}

#[test]
fn looks_up_ipv4_ipv6_and_mapped_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let db = GeoDb::open(&[countries(dir.path())]).unwrap();
    let gb = db.lookup(ip("81.2.69.142")).unwrap();
    assert_eq!(gb.country.as_deref(), Some("GB"));
    assert_eq!(gb.continent.as_deref(), Some("EU"));
    assert_eq!(gb.asn, None);
    assert_eq!(
        db.lookup(ip("::ffff:81.2.69.1")),
        Some(gb),
        "v4-mapped is v4"
    );
    let de = db.lookup(ip("2001:db8:1::5")).unwrap();
    assert_eq!(de.country.as_deref(), Some("DE"));
    let jp = db.lookup(ip("203.0.113.9")).unwrap();
    assert_eq!(
        (jp.country.as_deref(), jp.continent.as_deref()),
        (Some("JP"), Some("AS")),
        "codes are upper-cased"
    );
    assert_eq!(
        db.lookup(ip("198.51.100.1")).unwrap().country.as_deref(),
        Some("US"),
        "the registered country stands in for a missing country"
    );
    assert_eq!(db.lookup(ip("81.2.70.1")), None);
    assert_eq!(db.lookup(ip("127.0.0.1")), None);
    assert_eq!(db.lookup(ip("2001:db9::1")), None);
}

#[test]
fn several_databases_merge_and_the_first_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut asn = Writer::new("GeoLite2-ASN");
    asn.insert(
        "81.2.0.0/16",
        &location(Some("FR"), None, Some((20712, "Andrews & Arnold"))),
    );
    let asn = write(dir.path(), "asn.mmdb", &asn);
    let db = GeoDb::open(&[countries(dir.path()), asn]).unwrap();
    let l = db.lookup(ip("81.2.69.142")).unwrap();
    assert_eq!(l.country.as_deref(), Some("GB"), "the first database wins");
    assert_eq!(l.asn, Some(20712));
    assert_eq!(l.as_org.as_deref(), Some("Andrews & Arnold"));
    let only_asn = db.lookup(ip("81.2.1.1")).unwrap();
    assert_eq!(only_asn.country.as_deref(), Some("FR"));
    assert_eq!(only_asn.continent, None);
}

#[test]
fn bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.mmdb");
    let e = GeoDb::open(&[missing]).unwrap_err().to_string();
    assert!(e.contains("nope.mmdb") && e.contains("cannot read"), "{e}");
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let e = GeoDb::open(&[junk]).unwrap_err().to_string();
    assert!(
        e.contains("junk.mmdb") && e.contains("not a valid MaxMind DB"),
        "{e}"
    );
    // A valid file cut short: the metadata is gone.
    let good = std::fs::read(countries(dir.path())).unwrap();
    let cut = dir.path().join("cut.mmdb");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let e = GeoDb::open(&[cut]).unwrap_err().to_string();
    assert!(e.contains("cut.mmdb"), "{e}");
}

#[test]
fn the_handle_swaps_databases() {
    let dir = tempfile::tempdir().unwrap();
    let handle = GeoHandle::default();
    assert_eq!(handle.lookup(ip("81.2.69.1")), None);
    handle.set(Some(Arc::new(
        GeoDb::open(&[countries(dir.path())]).unwrap(),
    )));
    assert!(handle.lookup(ip("81.2.69.1")).is_some());
    handle.set(None);
    assert_eq!(handle.lookup(ip("81.2.69.1")), None);
}

/// The demo's `examples/geo-demo.mmdb` (documentation networks only), rewritten with
/// `WEIR_BLESS=1`.
fn demo_database() -> Writer {
    let mut w = Writer::new("Weir-Demo-Country-ASN");
    w.insert("81.2.69.0/24", &location(Some("GB"), Some("EU"), None))
        .insert(
            "192.0.2.0/24",
            &location(Some("FR"), Some("EU"), Some((64500, "Demo Net"))),
        )
        .insert("203.0.113.0/24", &location(Some("JP"), Some("AS"), None))
        .insert(
            "198.51.100.0/24",
            &location(Some("US"), Some("NA"), Some((64496, "Example Hosting"))),
        )
        .insert(
            "2001:db8::/32",
            &location(Some("DE"), Some("EU"), Some((64501, "Demo v6"))),
        );
    w
}

#[test]
fn the_demo_database_is_current_and_readable() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/geo-demo.mmdb");
    let bytes = demo_database().to_bytes();
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == bytes,
        "{} is not what demo_database() writes: run WEIR_BLESS=1 cargo test -p weir --lib geo",
        path.display()
    );
    let db = GeoDb::open(&[path]).unwrap();
    let fr = db.lookup(ip("192.0.2.10")).unwrap();
    assert_eq!((fr.country.as_deref(), fr.asn), (Some("FR"), Some(64500)));
    assert_eq!(db.lookup(ip("127.0.0.1")), None);
}
