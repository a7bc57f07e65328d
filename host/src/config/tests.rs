//! Unit tests of manifest validation.

use super::*;

const GOOD: &str = r#"
plugins-dir = "wasm"
timeout = "2s"

[[listeners]]
address = "127.0.0.1:8080"

[upstreams.app]
targets = ["127.0.0.1:9001", "localhost:9002"]
connect-timeout = "250ms"

[[routes]]
host = "Example.COM"
path = "/api"
upstream = "app"
filters = ["tag"]

[[routes]]
upstream = "app"

[filters.tag]
plugin = "headers.wasm"
config = { request = { set = { "x-a" = "1" } } }
"#;

fn errors(src: &str) -> Vec<String> {
    match Config::parse(Path::new("/etc/weir/m.toml"), src) {
        Ok(_) => panic!("expected errors"),
        Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn good_manifest_resolves() {
    let c = Config::parse(Path::new("/etc/weir/m.toml"), GOOD).unwrap();
    assert_eq!(c.plugins_dir, Path::new("/etc/weir/wasm"));
    assert_eq!(
        c.listeners[0].address,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.listeners[0].max_connections, None);
    assert_eq!(c.listeners[0].tls, None);
    assert_eq!(c.limits.max_header_size, 64 << 10);
    assert_eq!(c.limits.max_body_size, None);
    let u = &c.upstreams[0];
    assert_eq!(
        (u.timeout, u.connect_timeout),
        (Duration::from_secs(2), Duration::from_millis(250))
    );
    assert_eq!(u.targets.len(), 2);
    assert_eq!(
        c.routes[0].host,
        Some(crate::route::HostMatch::Exact("example.com".into()))
    );
    assert_eq!(c.routes[1].path.as_str(), "/");
    assert_eq!(c.routes[1].backends, vec![(0, 1)]);
    assert_eq!(
        c.filters[0].plugin_path,
        Path::new("/etc/weir/wasm/headers.wasm")
    );
    assert_eq!(
        c.filters[0].config_json,
        r#"{"request":{"set":{"x-a":"1"}}}"#
    );
    assert_eq!(c.filters[0].location.line, 22);
}

#[test]
fn unknown_key_names_line_and_key() {
    let src = GOOD.replace("connect-timeout", "conect-timeout");
    let e = errors(&src);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("/etc/weir/m.toml:10:1: unknown field `conect-timeout`"),
        "{}",
        e[0]
    );
}

#[test]
fn bad_values_name_their_place() {
    let e = errors(&GOOD.replace("\"2s\"", "\"2 seconds\""));
    assert!(
        e[0].starts_with("/etc/weir/m.toml:3:11: invalid duration"),
        "{}",
        e[0]
    );
}

#[test]
fn every_semantic_problem_is_listed() {
    let src = GOOD
        .replace("127.0.0.1:8080", "localhost")
        .replace("localhost:9002", "no-port")
        .replace("filters = [\"tag\"]", "filters = [\"tag\", \"nope\"]")
        .replace("upstream = \"app\"\n\n", "upstream = \"ghost\"\n\n")
        .replace("headers.wasm", "../headers.wasm");
    let e = errors(&src);
    let all = e.join("\n");
    assert_eq!(e.len(), 5, "{all}");
    assert!(
        all.contains(":6:11: listeners.address: \"localhost\" is not an ip:port"),
        "{all}"
    );
    assert!(
        all.contains(":9:30: upstreams.app.targets: \"no-port\" has no port"),
        "{all}"
    );
    assert!(
        all.contains("routes[0].filters: no filter named \"nope\" (defined: \"tag\")"),
        "{all}"
    );
    assert!(
        all.contains("routes[1].upstream: no upstream named \"ghost\" (defined: \"app\")"),
        "{all}"
    );
    assert!(
        all.contains("filters.tag.plugin: \"../headers.wasm\" must be a file name"),
        "{all}"
    );
}

#[test]
fn filter_budgets_parse_and_are_checked() {
    let src = GOOD.replace(
        "plugin = \"headers.wasm\"",
        "plugin = \"headers.wasm\"\ncpu-deadline = \"20ms\"\nmemory-limit = \"64MiB\"",
    );
    let c = Config::parse(Path::new("/m.toml"), &src).unwrap();
    assert_eq!(c.filters[0].cpu_deadline, Duration::from_millis(20));
    assert_eq!(c.filters[0].memory_limit, 64 << 20);
    let e = errors(&GOOD.replace(
        "plugin = \"headers.wasm\"",
        "plugin = \"headers.wasm\"\nmemory-limit = \"16MB\"",
    ));
    assert!(
        e[0].contains(":23:16: filters.tag.memory-limit: invalid size \"16MB\""),
        "{e:?}"
    );
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert!(parse_size("1TiB").is_err());
}

#[test]
fn empty_manifest_asks_for_listeners_and_routes() {
    let e = errors("");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("no listeners"));
    assert!(e[1].contains("no routes"));
}

#[test]
fn duplicate_routes_are_refused() {
    let src = format!("{GOOD}\n[[routes]]\nupstream = \"app\"\n");
    let e = errors(&src);
    assert!(
        e[0].contains("routes[2]: another route already matches"),
        "{e:?}"
    );
}

#[test]
fn unreadable_file_is_reported() {
    let d = Config::load(Path::new("/nonexistent/weir.toml")).unwrap_err();
    assert!(
        d.to_string()
            .starts_with("/nonexistent/weir.toml: cannot read manifest"),
        "{d}"
    );
}

#[test]
fn filter_runtime_settings_resolve_with_defaults() {
    let c = Config::parse(Path::new("/etc/weir/m.toml"), GOOD).unwrap();
    let f = &c.filters[0];
    assert_eq!(
        f.on_failure,
        FailurePolicy::Closed(http::StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(f.isolation, Isolation::Pooled);
    assert_eq!(f.instance_start, InstanceStart::Init);
    assert_eq!((f.fuel, f.max_requests_per_instance), (None, None));
    assert_eq!(f.body_limit, DEFAULT_BODY_LIMIT);
    assert_eq!(f.max_instances, DEFAULT_MAX_INSTANCES);
    assert!(f.allow_hosts.is_empty());
    assert!(c.watch && c.admin.is_none() && c.compile_cache.is_some());

    let src = GOOD.replace(
        "plugin = \"headers.wasm\"",
        "plugin = \"headers.wasm\"\non-failure = \"fail-open\"\nisolation = \"per-request\"\n\
         instance-start = \"snapshot\"\nfuel = 1000\nmax-requests-per-instance = 50\nmax-instances = 12\nbody-limit = \"64KiB\"\n\
         allow-hosts = [\"Auth.Local\", \"10.0.0.1:8443\"]\noutbound-timeout = \"250ms\"\n\
         store-max-entries = 7\nstore-max-bytes = \"1MiB\"\n\
         outbound-deny = [\"private\", \"203.0.113.0/24\"]",
    );
    let src =
        format!("admin = \"127.0.0.1:9901\"\nwatch = false\ncompile-cache-dir = \"cache\"\n{src}");
    let c = Config::parse(Path::new("/etc/weir/m.toml"), &src).unwrap();
    let f = &c.filters[0];
    assert_eq!(f.on_failure, FailurePolicy::Open);
    assert_eq!(f.isolation, Isolation::PerRequest);
    assert_eq!(f.instance_start, InstanceStart::Snapshot);
    assert_eq!(
        (f.fuel, f.max_requests_per_instance, f.max_instances),
        (Some(1000), Some(50), 12)
    );
    assert_eq!(f.body_limit, 64 << 10);
    assert_eq!(f.allow_hosts, ["auth.local", "10.0.0.1:8443"]);
    assert_eq!(f.outbound_timeout, Duration::from_millis(250));
    assert_eq!(f.store.max_entries, 7);
    assert_eq!(f.store.max_bytes, 1 << 20);
    assert!(f.outbound_deny.contains(&"169.254.0.0/16".parse().unwrap()));
    assert!(f.outbound_deny.contains(&"203.0.113.0/24".parse().unwrap()));
    assert_eq!(c.admin, Some("127.0.0.1:9901".parse().unwrap()));
    assert!(!c.watch);
    assert_eq!(
        c.compile_cache.as_deref(),
        Some(Path::new("/etc/weir/cache"))
    );
}

#[test]
fn bad_filter_runtime_settings_are_located() {
    let src = GOOD.replace(
        "plugin = \"headers.wasm\"",
        "plugin = \"headers.wasm\"\non-failure = \"fail-sometimes\"\nfailure-status = 200\n\
         isolation = \"shared\"\ninstance-start = \"lazy\"\nfuel = -1\nmemory-limit = \"2GiB\"\n\
         allow-hosts = [\"http://x/\"]\nstore-max-entries = 0\n\
         body-limit = \"32MiB\"\nstore-max-bytes = \"8GiB\"\noutbound-deny = [\"intranet\"]\n\
         max-instances = 1001",
    );
    let src = format!("admin = \"nowhere\"\n{src}");
    let e = errors(&src).join("\n");
    for needle in [
        "m.toml:1:9: admin: \"nowhere\" is not an ip:port address",
        "filters.tag.on-failure: \"fail-sometimes\" is not \"fail-closed\" or \"fail-open\"",
        "filters.tag.failure-status: 200 is not an error status (400..=599)",
        "filters.tag.isolation: \"shared\" is not \"pooled\" or \"per-request\"",
        "m.toml:27:18: filters.tag.instance-start: \"lazy\" is not \"init\" or \"snapshot\"",
        "filters.tag.fuel: -1 is not a positive number",
        "filters.tag.memory-limit: must be between 1MiB and 1GiB",
        "filters.tag.allow-hosts: \"http://x/\" is not a host or host:port",
        "filters.tag.store-max-entries: 0 is not a positive number",
        "filters.tag.body-limit: must be between 1 bytes and 16MiB",
        "filters.tag.store-max-bytes: must be between 64KiB and 4GiB",
        "filters.tag.outbound-deny: \"intranet\" is not a CIDR",
        "filters.tag.max-instances: 1001 is more than the 1000 instances all filters share",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
    let hosts: Vec<String> = (0..65).map(|i| format!("\"h{i}.local\"")).collect();
    let src = GOOD.replace(
        "plugin = \"headers.wasm\"",
        &format!(
            "plugin = \"headers.wasm\"\nallow-hosts = [{}]",
            hosts.join(", ")
        ),
    );
    let e = errors(&src).join("\n");
    assert!(
        e.contains("filters.tag.allow-hosts: at most 64 hosts"),
        "{e}"
    );
}

#[test]
fn route_matchers_and_weighted_backends_resolve() {
    let src = GOOD.replace(
        "[[routes]]\nupstream = \"app\"\n",
        "[upstreams.green]\ntargets = [\"127.0.0.1:9003\"]\n\n\
         [[routes]]\nhost = \"*.Example.com\"\npath-regex = \"^/u/[0-9]+$\"\n\
         methods = [\"get\", \"HEAD\"]\nheaders = { x-canary = \"1\", x-debug = \"*\" }\n\
         backends = [{ upstream = \"app\", weight = 9 }, { upstream = \"green\", weight = 1 }]\n",
    );
    let c = Config::parse(Path::new("/etc/weir/m.toml"), &src).unwrap();
    let r = &c.routes[1];
    assert_eq!(
        r.host,
        Some(crate::route::HostMatch::Wildcard(".example.com".into()))
    );
    assert!(r.path.matches("/u/42") && !r.path.matches("/u/x"));
    assert_eq!(r.methods, [http::Method::GET, http::Method::HEAD]);
    assert_eq!(r.headers.len(), 2);
    assert!(r.headers.iter().any(|(n, v)| n == "x-debug" && v.is_none()));
    assert_eq!(r.backends, vec![(0, 9), (1, 1)]);
}

#[test]
fn bad_routes_are_located() {
    let src = GOOD.replace(
        "[[routes]]\nupstream = \"app\"\n",
        "[[routes]]\npath = \"/a\"\npath-exact = \"/b\"\nupstream = \"app\"\n\n\
         [[routes]]\npath-regex = \"^/(unclosed\"\nupstream = \"app\"\n\n\
         [[routes]]\npath = \"/c\"\nmethods = [\"G ET\"]\nheaders = { \"bad name\" = \"1\" }\nupstream = \"app\"\n\n\
         [[routes]]\npath = \"/d\"\nbackends = [{ upstream = \"app\", weight = 0 }]\n\n\
         [[routes]]\npath = \"/e\"\nupstream = \"app\"\nbackends = [{ upstream = \"app\" }]\n\n\
         [[routes]]\npath = \"/f\"\n\n\
         [[routes]]\nhost = \"*.\"\npath = \"/g\"\nbackends = [{ upstream = \"nope\", weight = -2 }]\n",
    );
    let e = errors(&src).join("\n");
    for needle in [
        "routes[1]: give one of path, path-exact and path-regex",
        "routes[2].path-regex: \"^/(unclosed\" is not a valid regex",
        "routes[3].methods: \"G ET\" is not a method",
        "routes[3].headers: \"bad name\" is not a header name",
        "routes[4].backends: every weight is 0",
        "routes[5]: give `upstream` or `backends`, not both",
        "routes[6]: no `upstream` (or `backends`) to send to",
        "routes[7].host: \"*.\" is not a host name",
        "routes[7].backends.weight: -2 is not in 0..=10000",
        "routes[7].backends.upstream: no upstream named \"nope\"",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn balancing_settings_resolve_and_bad_ones_are_located() {
    let src = GOOD.replace(
        "connect-timeout = \"250ms\"",
        "connect-timeout = \"250ms\"\nbalance = \"consistent-hash\"\nhash-key = \"cookie:sid\"\n\
         weights = { \"localhost:9002\" = 4 }\nsticky-cookie = \"pin\"\nsticky-secret = \"s\"",
    );
    let c = Config::parse(Path::new("/etc/weir/m.toml"), &src).unwrap();
    let u = &c.upstreams[0];
    assert_eq!(
        u.balance,
        Algorithm::ConsistentHash(HashKey::Cookie("sid".into()))
    );
    assert_eq!(u.weights, [1, 4]);
    assert_eq!(u.sticky, Some(("pin".into(), "s".into())));

    let src = GOOD.replace(
        "connect-timeout = \"250ms\"",
        "connect-timeout = \"250ms\"\nbalance = \"fastest\"\nhash-key = \"body\"\n\
         weights = { \"10.9.9.9:1\" = 2, \"localhost:9002\" = 0 }\nsticky-cookie = \"a b\"",
    );
    let e = errors(&src).join("\n");
    for needle in [
        "upstreams.app.balance: \"fastest\" is not round-robin, weighted, least-connections, p2c or consistent-hash",
        "upstreams.app.hash-key: \"body\" is not client-ip, header:<name> or cookie:<name>",
        "upstreams.app.weights: \"10.9.9.9:1\" is not one of the targets",
        "upstreams.app.weights: 0 is not in 1..=10000",
        "upstreams.app.sticky-cookie: \"a b\" is not a cookie name",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn health_settings_resolve_and_bad_ones_are_located() {
    let src = GOOD.replace(
        "connect-timeout = \"250ms\"",
        "connect-timeout = \"250ms\"\nhealth = { path = \"/healthz\", expect-status = 204, interval = \"2s\", rise = 1 }\n\
         passive = { consecutive-failures = 3, cooldown = \"10s\", max-ejected-percent = 20 }",
    );
    let c = Config::parse(Path::new("/etc/weir/m.toml"), &src).unwrap();
    let u = &c.upstreams[0];
    let h = u.health.as_ref().unwrap();
    assert_eq!(h.path.as_deref(), Some("/healthz"));
    assert_eq!(
        (h.expect_status, h.interval, h.rise, h.fall),
        (Some(204), Duration::from_secs(2), 1, 3)
    );
    assert_eq!(
        (
            u.passive.consecutive_failures,
            u.passive.cooldown,
            u.passive.max_ejected_percent
        ),
        (3, Duration::from_secs(10), 20)
    );

    let src = GOOD.replace(
        "connect-timeout = \"250ms\"",
        "connect-timeout = \"250ms\"\nhealth = { path = \"healthz\", expect-status = 42, fall = 0 }\n\
         passive = { consecutive-failures = -1, max-ejected-percent = 101 }",
    );
    let e = errors(&src).join("\n");
    for needle in [
        "upstreams.app.health.path: \"healthz\" must start with '/'",
        "upstreams.app.health.expect-status: 42 is not a status",
        "upstreams.app.health.fall: 0 is not in 1..=100",
        "upstreams.app.passive.consecutive-failures: -1 is not in 1..=1000",
        "upstreams.app.passive.max-ejected-percent: 101 is not in 0..=100",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn client_limits_resolve_and_bad_ones_are_located() {
    let src = format!(
        "max-header-size = \"16KiB\"\nmax-headers = 50\nheader-read-timeout = \"5s\"\nmax-body-size = \"10MiB\"\n{}",
        GOOD.replace("address = \"127.0.0.1:8080\"", "address = \"127.0.0.1:8080\"\nmax-connections = 1000")
    );
    let c = Config::parse(Path::new("/etc/weir/m.toml"), &src).unwrap();
    assert_eq!(
        c.limits,
        ClientLimits {
            max_header_size: 16 << 10,
            max_headers: 50,
            header_read_timeout: Duration::from_secs(5),
            max_body_size: Some(10 << 20),
            http2_max_concurrent_streams: 100,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            client_idle_timeout: DEFAULT_CLIENT_IDLE_TIMEOUT,
        }
    );
    assert_eq!(c.listeners[0].max_connections, Some(1000));
    let src = format!(
        "max-header-size = \"1KiB\"\nmax-headers = 0\nmax-body-size = \"lots\"\n{}",
        GOOD.replace(
            "address = \"127.0.0.1:8080\"",
            "address = \"127.0.0.1:8080\"\nmax-connections = 0"
        )
    );
    let e = errors(&src).join("\n");
    for needle in [
        "max-header-size: must be between 8KiB and 1MiB",
        "max-headers: 0 is not in 1..=10000",
        "max-body-size: invalid size \"lots\"",
        "listeners.max-connections: 0 is not a positive number",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

/// A manifest with most sections, for mutation.
const RICH: &str = r#"
escaped-slashes = "keep"
max-header-size = "16KiB"
max-body-size = "1MiB"
[[listeners]]
address = "127.0.0.1:0"
trusted-proxies = ["10.0.0.0/8", "::1"]
max-connections = 10
[upstreams.app]
targets = ["127.0.0.1:9001", "localhost:9002"]
weights = { "127.0.0.1:9001" = 3 }
balance = "least-connections"
retries = 2
health = { path = "/h", interval = "1s", rise = 2, fall = 3 }
passive = { consecutive-failures = 3, cooldown = "5s", max-ejected-percent = 50 }
[[routes]]
host = "*.example.com"
path-regex = "^/u/[0-9]+$"
methods = ["GET", "trace"]
headers = { "x-canary" = "1" }
backends = [{ upstream = "app", weight = 1 }]
upgrades = ["websocket"]
timeout = "1s"
[filters.tag]
plugin = "headers.wasm"
cpu-deadline = "5ms"
memory-limit = "8MiB"
"#;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 1500, ..Default::default() })]

    /// Mangled manifests are reported, never a panic.
    #[test]
    fn mutated_manifests_never_panic(
        edits in proptest::collection::vec((0usize..2000, 0u8..3, proptest::sample::select(
            vec!["", "\"", "=", "[", "]", "{", "}", ",", "\n", "-1", "0", "99999999999999999999",
                 "\"\"", "\"x\"", "[[routes]]", "1e400", "\u{0}", "é", "\"0s\"", "\"-5s\"",
                 "\"1ZiB\"", "\"[::1]:0\"", "\"/%2f\"", "\"h2c\"", "true", "#"]))
        , 1..6),
    ) {
        let mut text = RICH.to_owned();
        for (at, kind, piece) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match kind {
                0 => text.insert_str(at, piece),
                1 => {
                    let mut end = (at + piece.len().max(1)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, piece);
                }
                _ => {
                    let mut end = (at + 3).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
            }
        }
        let _ = Config::parse(Path::new("/etc/weir/m.toml"), &text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Config::parse(Path::new("/etc/weir/m.toml"), &text);
    }
}

#[test]
fn the_rich_manifest_is_valid() {
    let c = Config::parse(Path::new("/etc/weir/m.toml"), RICH).expect("valid");
    assert_eq!(
        c.rules.escaped_slashes,
        crate::request::EscapedSlashes::Keep
    );
    assert!(c.listeners[0]
        .trusted_proxies
        .contains("10.9.8.7".parse().unwrap()));
    assert_eq!(c.routes[0].upgrades, vec!["websocket".to_owned()]);
}

#[test]
fn stores_resolve_top_level_then_per_filter() {
    use crate::store::{StoreFailure, StoreSettings};
    let src = format!(
        "store = {{ backend = \"redis\", url = \"redis://app:pw@10.0.0.5:6380/2\", timeout = \"20ms\", prefix = \"edge\" }}\n{}\n\
         [filters.local]\nplugin = \"x.wasm\"\nstore = {{ backend = \"memory\" }}\n\n\
         [filters.ring]\nplugin = \"x.wasm\"\non-store-failure = \"fail-closed\"\n\
         store = {{ backend = \"redis\", cluster-nodes = [\"redis://10.0.0.1:7000\", \"rediss://10.0.0.2:7000\"], max-pending = 10 }}\n",
        GOOD.replace("plugin = \"headers.wasm\"", "plugin = \"headers.wasm\"\non-store-failure = \"fail-open\"")
    );
    let c = Config::parse(Path::new("/etc/weir/m.toml"), &src).unwrap();
    let by_name = |n: &str| c.filters.iter().find(|f| f.name == n).unwrap();
    let StoreSettings::Redis(top) = &by_name("tag").shared_store else {
        panic!("tag inherits the top-level store");
    };
    assert_eq!(top.urls, ["redis://app:pw@10.0.0.5:6380/2"]);
    assert_eq!(
        (top.timeout, top.prefix.as_str(), top.cluster),
        (Duration::from_millis(20), "edge", false)
    );
    assert_eq!(top.connect_timeout, DEFAULT_STORE_CONNECT_TIMEOUT);
    assert_eq!(top.max_pending, 1000);
    assert_eq!(by_name("tag").on_store_failure, StoreFailure::FailOpen);
    assert!(!format!("{top:?}").contains("pw"), "{top:?}");
    assert_eq!(by_name("local").shared_store, StoreSettings::Memory);
    let StoreSettings::Redis(ring) = &by_name("ring").shared_store else {
        panic!("ring has its own store");
    };
    assert!(ring.cluster && ring.urls.len() == 2 && ring.max_pending == 10);
    assert_eq!(ring.timeout, DEFAULT_STORE_TIMEOUT);
    assert_eq!(by_name("ring").on_store_failure, StoreFailure::FailClosed);
    // A change of store is a different filter for a reload.
    let mut other = by_name("tag").clone();
    other.shared_store = StoreSettings::Memory;
    assert!(!other.same_filter(by_name("tag")));
}

#[test]
fn bad_stores_are_located() {
    let e = errors(&format!(
        "store = {{ backend = \"redsi\" }}\n{}",
        GOOD.replace(
            "plugin = \"headers.wasm\"",
            "plugin = \"headers.wasm\"\non-store-failure = \"local\""
        )
    ))
    .join("\n");
    for needle in [
        "m.toml:1:21: store.backend: \"redsi\" is not \"memory\" or \"redis\"",
        "filters.tag.on-store-failure: only applies with a shared store",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
    let filter = |store: &str, extra: &str| {
        errors(&GOOD.replace(
            "plugin = \"headers.wasm\"",
            &format!("plugin = \"headers.wasm\"\nstore = {store}\n{extra}"),
        ))
        .join("\n")
    };
    for (store, extra, needle) in [
        ("{ backend = \"redis\" }", "", "filters.tag.store: backend = \"redis\" needs url"),
        (
            "{ backend = \"redis\", url = \"http://u:hunter2@x/\" }",
            "",
            "filters.tag.store.url: \"http://u:***@x/\" is not a redis:// or rediss:// URL",
        ),
        (
            "{ backend = \"redis\", url = \"redis://x:0/zero\" }",
            "",
            "filters.tag.store.url: \"redis://x:0/zero\" is not a valid Redis URL",
        ),
        (
            "{ backend = \"redis\", url = \"redis://x\", cluster-nodes = [\"redis://y\"] }",
            "",
            "filters.tag.store: give either url (one server) or cluster-nodes",
        ),
        (
            "{ backend = \"redis\", url = \"redis://x\", timeout = \"2m\" }",
            "",
            "filters.tag.store.timeout: must be between 1ms and 60s",
        ),
        (
            "{ backend = \"redis\", url = \"redis://x\", prefix = \"a{b}\" }",
            "",
            "filters.tag.store.prefix: \"a{b}\" must be 1 to 64 characters",
        ),
        (
            "{ backend = \"redis\", url = \"redis://x\", max-pending = 0 }",
            "",
            "filters.tag.store.max-pending: 0 is not a positive number",
        ),
        (
            "{ backend = \"memory\", url = \"redis://x\" }",
            "",
            "filters.tag.store.url: only applies with backend = \"redis\"",
        ),
        (
            "{ backend = \"redis\", url = \"redis://x\" }",
            "on-store-failure = \"retry\"",
            "filters.tag.on-store-failure: \"retry\" is not \"local\", \"fail-open\" or \"fail-closed\"",
        ),
    ] {
        let e = filter(store, extra);
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
