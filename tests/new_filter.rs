//! `weir new-filter` and `weir build`: the crate it makes passes its own tests natively,
//! `weir build` turns it into a component in the plugins directory, and it runs in a proxy;
//! bad names, existing paths, crates that are no cdylib and components that are no filter
//! are refused with the reason.

mod harness;
use harness::*;
use std::path::Path;
use std::process::Command;

fn weir(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .expect("run weir")
}

/// `cargo` in `dir`, without the outer build's compiler settings, sharing one target dir
/// across runs so dependencies build once.
fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTC",
        "CARGO_TARGET_DIR",
    ] {
        c.env_remove(var);
    }
    c.current_dir(dir)
        .args(args)
        .arg("--target-dir")
        .arg(workspace().join("target/new-filter"))
        .output()
        .expect("run cargo")
}

#[tokio::test]
async fn a_new_filter_tests_builds_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let out = weir(&[
        "new-filter",
        "tenant-guard",
        "--dir",
        &dir.path().display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("a standalone crate"), "{stdout}");
    let krate = dir.path().join("tenant-guard");
    for f in ["Cargo.toml", "src/lib.rs", "README.md"] {
        assert!(krate.join(f).is_file(), "{f}");
    }

    let tested = cargo(&krate, &["test", "--quiet"]);
    assert!(
        tested.status.success(),
        "the template's own tests pass:\n{}\n{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );

    let plugins = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["build", "--out", &plugins.path().display().to_string()])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", workspace().join("target/new-filter"))
        .output()
        .expect("run weir build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("tenant-guard.wasm"), "{said}");
    assert!(plugins.path().join("tenant-guard.wasm").is_file());

    let up = Upstream::echo("app").await;
    let m = manifest(
        &[up.addr],
        &["guard"],
        "[filters.guard]\nplugin = \"tenant-guard.wasm\"\nconfig = { header = \"x-tenant\" }\n",
    )
    .replace("{plugins}", &plugins.path().display().to_string());
    let weir = Weir::start(&m);
    assert_eq!(get(&weir.url("/"), &[]).await.status, 400);
    assert_eq!(
        get(&weir.url("/"), &[("x-tenant", "acme")]).await.status,
        200
    );
}

#[test]
fn bad_names_and_existing_crates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().display().to_string();
    let out = weir(&["new-filter", "Rate_Guard", "--dir", &at]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid filter name \"Rate_Guard\""), "{err}");

    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let out = weir(&["new-filter", "taken", "--dir", &at]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("taken already exists"), "{err}");
}

#[test]
fn weir_build_refuses_what_cannot_be_a_filter() {
    // A crate that is no cdylib: refused before anything is compiled, with the fix.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"plain\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let out = weir(&["build", &dir.path().display().to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a cdylib crate") && err.contains("crate-type = [\"cdylib\", \"rlib\"]"),
        "{err}"
    );

    // A component that doesn't implement the filter world: built, checked, not copied.
    let plugins = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["build", "--out", &plugins.path().display().to_string()])
        .arg(workspace().join("tests/fixtures/not-a-filter"))
        .env("CARGO_TARGET_DIR", workspace().join("target/new-filter"))
        .output()
        .expect("run weir build");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a compatible Weir filter"), "{err}");
    assert!(
        std::fs::read_dir(plugins.path()).unwrap().next().is_none(),
        "nothing copied"
    );
}
