//! `weir new-filter`: the crate it makes passes its own tests natively, builds to a
//! component with the `plugin` profile, and runs in a proxy; bad names and existing paths
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

fn rustup_has_wasip2() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip2")
        })
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

    // The component build needs rustup's wasm32-wasip2 target (plugins/build.sh installs it,
    // or falls back to the offline toolchain, which builds only this repository's crates).
    if !rustup_has_wasip2() {
        eprintln!(
            "no rustup wasm32-wasip2 target here: the component build is checked where it is"
        );
        return;
    }
    let built = cargo(
        &krate,
        &[
            "build",
            "--quiet",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
        ],
    );
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = workspace().join("target/new-filter/wasm32-wasip2/plugin/tenant_guard.wasm");
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(&wasm, plugins.path().join("tenant-guard.wasm")).unwrap();

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
