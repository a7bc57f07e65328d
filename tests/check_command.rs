//! `weir check`: exit 0 with a summary for a good manifest; exit 1 listing every problem,
//! each with file, line and column, for bad ones (including filters refusing their config).

mod harness;
use harness::*;
use std::process::Command;

const GOOD: &str = r#"plugins-dir = "{plugins}"

[[listeners]]
address = "127.0.0.1:8080"

[upstreams.app]
targets = ["127.0.0.1:9001"]

[[routes]]
upstream = "app"
filters = ["tag", "key"]

[filters.tag]
plugin = "headers.wasm"
config = { request = { set = { "x-a" = "1" } } }

[filters.key]
plugin = "api-key.wasm"
config = { keys = ["k"] }
"#;

#[test]
fn good_manifest_passes() {
    let (ok, out, err) = check(GOOD);
    assert!(ok, "{err}");
    assert!(
        out.contains("is valid: 1 listener(s), 1 upstream(s), 1 route(s), 2 filter(s) loaded"),
        "{out}"
    );
}

#[test]
fn syntax_and_unknown_keys_name_the_line() {
    let (ok, _, err) = check(&GOOD.replace("targets =", "targetz ="));
    assert!(!ok);
    assert!(
        err.contains("weir.toml:7:1: unknown field `targetz`"),
        "{err}"
    );
    assert!(err.contains("1 problem(s) found"), "{err}");

    let (ok, _, err) = check(&GOOD.replace("[[routes]]", "[[routes]"));
    assert!(!ok);
    assert!(err.contains("weir.toml:9:"), "{err}");
}

#[test]
fn every_problem_is_listed_with_its_place() {
    let bad = GOOD
        .replace("127.0.0.1:8080", "nowhere")
        .replace(
            "filters = [\"tag\", \"key\"]",
            "filters = [\"tag\", \"key\", \"ghost\"]",
        )
        .replace("\"x-a\" = \"1\"", "\"bad name\" = \"1\"")
        .replace("keys = [\"k\"]", "keys = []");
    let (ok, _, err) = check(&bad);
    assert!(!ok);
    assert!(
        err.contains("weir.toml:4:11: listeners.address: \"nowhere\""),
        "{err}"
    );
    assert!(
        err.contains("weir.toml:11:26: routes[0].filters: no filter named \"ghost\""),
        "{err}"
    );
    // A refused config is placed at the key its message names.
    assert!(err.contains("weir.toml:15:12: filters.tag: init refused the config: request: header name \"bad name\""), "{err}");
    assert!(err.contains("weir.toml:19:12: filters.key: init refused the config: keys: at least one key is required"), "{err}");
    assert!(err.contains("4 problem(s) found"), "{err}");
}

#[test]
fn missing_and_invalid_plugins_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm at all").unwrap();
    std::fs::copy(
        fixtures_dir().join("panic.wasm"),
        dir.path().join("ok.wasm"),
    )
    .unwrap();
    let m = GOOD
        .replace("{plugins}", &dir.path().display().to_string())
        .replace("headers.wasm", "missing.wasm")
        .replace("api-key.wasm", "junk.wasm");
    let (ok, _, err) = check(&m);
    assert!(!ok);
    assert!(
        err.contains("filters.tag: cannot read plugin") && err.contains("missing.wasm"),
        "{err}"
    );
    assert!(
        err.contains("filters.key: plugin") && err.contains("is not a valid WebAssembly component"),
        "{err}"
    );
}

#[test]
fn unused_filters_and_plugins_are_warned_about_but_pass() {
    let dir = tempfile::tempdir().unwrap();
    for p in ["headers.wasm", "api-key.wasm", "block.wasm"] {
        std::fs::copy(plugins_dir().join(p), dir.path().join(p)).unwrap();
    }
    let m = GOOD
        .replace("{plugins}", &dir.path().display().to_string())
        .replace("filters = [\"tag\", \"key\"]", "filters = [\"tag\"]");
    let (ok, out, err) = check(&m);
    assert!(ok, "{err}");
    assert!(out.contains("is valid"), "{out}");
    assert!(
        err.contains("warning: ") && err.contains("filters.key: no route uses this filter"),
        "{err}"
    );
    assert!(
        err.contains("block.wasm in plugins-dir: no filter loads it"),
        "{err}"
    );
    assert!(!err.contains("headers.wasm in plugins-dir"), "{err}");
}

#[test]
fn config_typos_and_wrong_types_are_placed_at_their_key() {
    let typo = GOOD.replace("request = { set", "reqeust = { set");
    let (ok, _, err) = check(&typo);
    assert!(!ok);
    assert!(
        err.contains("weir.toml:15:12: filters.tag: init refused the config: reqeust: unknown field `reqeust`"),
        "{err}"
    );
    assert!(
        !err.contains("line 1 column"),
        "no place in generated JSON: {err}"
    );
    let wrong = GOOD.replace("\"x-a\" = \"1\"", "\"x-a\" = 1");
    let (ok, _, err) = check(&wrong);
    assert!(!ok);
    assert!(
        err.contains("weir.toml:15:32: filters.tag: init refused the config: request.set.x-a: invalid type: integer `1`"),
        "{err}"
    );
}

#[test]
fn a_panic_in_init_is_reported_with_its_message_and_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("panic.wasm"), dir.path().join("p.wasm")).unwrap();
    let m = GOOD
        .replace("{plugins}", &dir.path().display().to_string())
        .replace("headers.wasm", "p.wasm")
        .replace(
            "config = { request = { set = { \"x-a\" = \"1\" } } }",
            "config = { panic = \"unit must be ms, s, m or h\" }",
        );
    assert!(m.contains("unit must be"), "the manifest changed: {m}");
    let (ok, _, err) = check(&m);
    assert!(!ok);
    assert!(
        err.contains(
            "filters.tag: trapped during init: panicked at tests/fixtures/panic/src/lib.rs:"
        ) && err.contains(": unit must be ms, s, m or h"),
        "{err}"
    );
    // The filter's own frames, demangled; no dump of wasmtime's backtrace.
    assert!(
        err.contains("(in <weir_fixture_panic::PanicOnDemand as weir_sdk::Filter>::init"),
        "{err}"
    );
    assert!(!err.contains("wasm backtrace"), "no backtrace dump: {err}");
    assert!(!err.contains("core::panicking"), "{err}");
}

#[test]
fn run_refuses_a_bad_manifest_with_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.toml");
    std::fs::write(
        &path,
        expand(&GOOD.replace("upstream = \"app\"", "upstream = \"nope\"")),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("weir.toml:10:12: routes[0].upstream: no upstream named \"nope\""),
        "{err}"
    );
}
