//! Filter authoring — `weir new-filter`, `weir build`, `weir dev`: the crate it makes passes
//! its own tests natively, `weir build` turns it into a component in the plugins directory,
//! it runs in a proxy, and under `weir dev` an edit to its source is live moments later;
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

/// `cargo` in `dir` as `weir build` runs it (no outer build's compiler settings), sharing one
/// target dir across runs so dependencies build once.
fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    weir::builder::nested_cargo()
        .current_dir(dir)
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

#[tokio::test]
async fn weir_dev_rebuilds_an_edited_filter_and_the_proxy_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let out = weir(&["new-filter", "guard", "--dir", &src.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let krate = src.join("guard");
    let up = Upstream::echo("app").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let manifest = dir.path().join("weir.toml");
    std::fs::write(
        &manifest,
        format!(
            "plugins-dir = \"out\"\n\n[[listeners]]\naddress = \"127.0.0.1:{port}\"\n\n[upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\nupstream = \"app\"\nfilters = [\"guard\"]\n\n[filters.guard]\nplugin = \"guard.wasm\"\nconfig = {{ header = \"x-tenant\" }}\n",
            up.addr
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("dev")
        .arg(&manifest)
        .arg("--src")
        .arg(&krate)
        .env("CARGO_TARGET_DIR", workspace().join("target/new-filter"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run weir dev");
    let url = format!("http://127.0.0.1:{port}/");
    let status_within = |want: u16, secs: u64| {
        let url = url.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
            let mut last = 0;
            while std::time::Instant::now() < deadline {
                // Not listening yet (still building): the harness client would panic.
                let listening = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok();
                if !listening {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
                if let Ok(r) =
                    tokio::time::timeout(std::time::Duration::from_secs(2), get(&url, &[])).await
                {
                    last = r.status.as_u16();
                    if last == want {
                        return last;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            last
        }
    };
    let first = status_within(400, 180).await;
    // The edit: refusals answer 403 instead of the template's 400.
    let lib = krate.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    let edited = text.replace(
        "fn default_status() -> u16 {\n    400\n}",
        "fn default_status() -> u16 {\n    403\n}",
    );
    assert_ne!(text, edited, "the template has default_status");
    if first == 400 {
        std::fs::write(&lib, edited).unwrap();
    }
    let after = if first == 400 {
        status_within(403, 180).await
    } else {
        0
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first, 400, "the first build serves");
    assert_eq!(after, 403, "the edited filter is live");
}
