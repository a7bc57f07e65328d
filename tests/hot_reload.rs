//! Hot reload: changed plugins and manifests are picked up while serving; broken changes
//! (invalid Wasm, wrong world, manifest errors, `init` refusing its config, a deleted plugin
//! still in use) keep the last good version serving with one clear error; SIGHUP forces a
//! reload; the compile cache makes restarts skip compilation; the admin status shows which
//! version of each filter is live.

mod harness;
use harness::*;
use std::path::Path;
use std::time::Duration;

fn version_manifest(extra: &str) -> String {
    format!(
        "plugins-dir = \"plugins\"\nadmin = \"127.0.0.1:0\"\ncompile-cache = false\n{extra}\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{{upstream}}\"]\n\n\
         [[routes]]\nupstream = \"app\"\nfilters = [\"ver\"]\n\n\
         [filters.ver]\nplugin = \"version.wasm\"\n"
    )
}

/// Weir serving the `version` fixture at v1 from its own plugins folder, with `extra` at the
/// top of the manifest; also returns that folder.
fn start_versioned(up: &Upstream, extra: &str, relative: bool) -> (Weir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_in(&dir);
    std::fs::write(plugins.join("version.wasm"), version_fixture("v1")).unwrap();
    let manifest = version_manifest(extra).replace("{upstream}", &up.addr.to_string());
    let weir = if relative {
        Weir::start_relative_in(dir, &manifest)
    } else {
        Weir::start_in(dir, &manifest)
    };
    (weir, plugins)
}

fn plugins_in(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let p = dir.path().join("plugins");
    std::fs::create_dir_all(&p).unwrap();
    p
}

async fn version_of(weir: &Weir) -> String {
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("x-version").unwrap_or("-").to_string()
}

/// Within 30 s: a reload compiles the new plugin, which takes seconds on a loaded 2-core
/// machine.
async fn wait_for_version(weir: &Weir, v: &str) {
    for _ in 0..600 {
        if version_of(weir).await == v {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never served {v}; logs:\n{}", weir.logs());
}

/// Replace a file the way editors do: write a temporary, rename it over.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn changed_plugins_are_swapped_in_and_broken_ones_keep_the_old_version() {
    let up = Upstream::echo("app").await;
    let (weir, plugins) = start_versioned(&up, "", false);
    assert_eq!(version_of(&weir).await, "v1");
    let s1 = weir.status().await;
    assert_eq!(s1["generation"], 1);
    let sha1 = s1["filters"][0]["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha1.len(), 64);

    // Written in place (truncate + write): the debounce waits for the finished file.
    std::fs::write(plugins.join("version.wasm"), version_fixture("v2")).unwrap();
    wait_for_version(&weir, "v2").await;
    let s2 = weir.status().await;
    assert_eq!(s2["generation"], 2);
    assert_ne!(s2["filters"][0]["sha256"], sha1.as_str());
    assert_eq!(
        s2["reloads"]["failed"], 0,
        "no half-written file was loaded: {s2:#}"
    );

    // Broken: half a component.
    let v3 = version_fixture("v3");
    std::fs::write(plugins.join("version.wasm"), &v3[..v3.len() / 2]).unwrap();
    let s = weir
        .wait_for_status("a failed reload", |s| s["reloads"]["failed"] == 1)
        .await;
    let err = s["reloads"]["last_error"].as_str().unwrap();
    assert!(err.contains("version.wasm"), "{err}");
    assert!(
        err.contains("is not a valid WebAssembly component"),
        "{err}"
    );
    assert!(
        err.contains("weir.toml:"),
        "located at the manifest entry: {err}"
    );
    assert_eq!(
        version_of(&weir).await,
        "v2",
        "the old version keeps serving"
    );
    assert_eq!(s["generation"], 2);
    weir.wait_for_log("reload refused, the previous configuration keeps serving");

    // Wrong world.
    std::fs::copy(
        fixtures_dir().join("not-a-filter.wasm"),
        plugins.join("version.wasm"),
    )
    .unwrap();
    let s = weir
        .wait_for_status("a second failed reload", |s| s["reloads"]["failed"] == 2)
        .await;
    assert!(
        s["reloads"]["last_error"]
            .as_str()
            .unwrap()
            .contains("is not a compatible Weir filter"),
        "{s:#}"
    );
    assert_eq!(version_of(&weir).await, "v2");

    replace_file(&plugins.join("version.wasm"), &v3);
    wait_for_version(&weir, "v3").await;
    let s = weir.status().await;
    assert_eq!(s["generation"], 3);
    assert!(
        s["reloads"]["last_error"].is_null(),
        "a success clears the error: {s:#}"
    );
}

#[tokio::test]
async fn manifest_changes_are_applied_and_bad_ones_refused() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_in(&dir);
    std::fs::copy(
        plugins_dir().join("headers.wasm"),
        plugins.join("headers.wasm"),
    )
    .unwrap();
    std::fs::copy(
        fixtures_dir().join("panic.wasm"),
        plugins.join("panic.wasm"),
    )
    .unwrap();
    let manifest = |tag: &str, filters: &str, extra: &str| {
        format!(
            "plugins-dir = \"plugins\"\nadmin = \"127.0.0.1:0\"\ncompile-cache = false\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
             [upstreams.app]\ntargets = [\"{}\"]\n\n\
             [[routes]]\nupstream = \"app\"\nfilters = [{filters}]\n\n\
             [filters.tag]\nplugin = \"headers.wasm\"\nconfig.response.set = {{ x-tag = \"{tag}\" }}\n{extra}",
            up.addr
        )
    };
    let weir = Weir::start_in(dir, &manifest("a", "\"tag\"", ""));
    let path = weir.manifest_path();
    assert_eq!(get(&weir.url("/"), &[]).await.header("x-tag"), Some("a"));

    replace_file(&path, manifest("b", "\"tag\"", "").as_bytes());
    weir.wait_for_status("generation 2", |s| s["generation"] == 2)
        .await;
    assert_eq!(get(&weir.url("/"), &[]).await.header("x-tag"), Some("b"));

    // A manifest error: refused, located.
    std::fs::write(&path, manifest("c", "\"tag\"", "bogus-key = 1\n")).unwrap();
    let s = weir
        .wait_for_status("a refused manifest", |s| s["reloads"]["failed"] == 1)
        .await;
    let err = s["reloads"]["last_error"].as_str().unwrap();
    assert!(
        err.contains("weir.toml:") && err.contains("bogus-key"),
        "{err}"
    );
    assert_eq!(get(&weir.url("/"), &[]).await.header("x-tag"), Some("b"));

    // `init` refusing its config: refused, nothing swapped.
    let refusing =
        "\n[filters.picky]\nplugin = \"panic.wasm\"\nconfig = { refuse = \"no thanks\" }\n";
    std::fs::write(&path, manifest("c", "\"tag\", \"picky\"", refusing)).unwrap();
    let s = weir
        .wait_for_status("a refused init", |s| s["reloads"]["failed"] == 2)
        .await;
    let err = s["reloads"]["last_error"].as_str().unwrap();
    assert!(
        err.contains("filters.picky: init refused the config: no thanks"),
        "{err}"
    );
    assert_eq!(get(&weir.url("/"), &[]).await.header("x-tag"), Some("b"));

    // A plugin that a route uses is deleted: the old one keeps serving...
    std::fs::write(&path, manifest("b", "\"tag\"", "")).unwrap();
    weir.wait_for_status("generation 3", |s| s["generation"] == 3)
        .await;
    std::fs::remove_file(weir.dir().join("plugins/headers.wasm")).unwrap();
    let s = weir
        .wait_for_status("a refused delete", |s| s["reloads"]["failed"] == 3)
        .await;
    assert!(
        s["reloads"]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot read plugin"),
        "{s:#}"
    );
    assert_eq!(get(&weir.url("/"), &[]).await.header("x-tag"), Some("b"));
    // ...until the manifest stops naming it.
    let without = format!(
        "plugins-dir = \"plugins\"\nadmin = \"127.0.0.1:0\"\ncompile-cache = false\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\nupstream = \"app\"\n",
        up.addr
    );
    std::fs::write(&path, without).unwrap();
    let s = weir
        .wait_for_status("generation 4", |s| s["generation"] == 4)
        .await;
    assert_eq!(s["filters"].as_array().unwrap().len(), 0);
    assert_eq!(get(&weir.url("/"), &[]).await.header("x-tag"), None);
}

#[tokio::test]
async fn sighup_reloads_when_watching_is_off() {
    let up = Upstream::echo("app").await;
    let (weir, plugins) = start_versioned(&up, "watch = false", false);
    std::fs::write(plugins.join("version.wasm"), version_fixture("v2")).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(version_of(&weir).await, "v1", "not watching");
    weir.signal("HUP");
    wait_for_version(&weir, "v2").await;
    weir.wait_for_log("SIGHUP: reloading");
}

#[tokio::test]
async fn the_compile_cache_skips_compilation_on_restart() {
    let up = Upstream::echo("app").await;
    let cache = tempfile::tempdir().unwrap();
    let manifest = version_manifest(&format!(
        "compile-cache-dir = \"{}\"",
        cache.path().display()
    ))
    .replace("compile-cache = false\n", "")
    .replace("{upstream}", &up.addr.to_string());
    for (round, expected) in [(1, "compiled"), (2, "loaded from the compile cache")] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(plugins_in(&dir).join("version.wasm"), version_fixture("v1")).unwrap();
        let weir = Weir::start_in(dir, &manifest);
        assert_eq!(version_of(&weir).await, "v1", "round {round}");
        let logs = weir.wait_for_log(expected);
        if round == 2 {
            assert!(
                !logs.contains("compiled"),
                "round 2 compiled again:\n{logs}"
            );
        }
        assert!(weir.terminate().success());
    }
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "one artifact, no temporaries left");

    // An entry truncated and then garbled under a running proxy: it keeps serving (the
    // artifact was read into memory, not mapped), and the next start compiles again and
    // replaces the entry.
    let entry = entries[0].as_ref().unwrap().path();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(plugins_in(&dir).join("version.wasm"), version_fixture("v1")).unwrap();
    let weir = Weir::start_in(dir, &manifest);
    let good = std::fs::read(&entry).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&entry)
        .unwrap()
        .set_len(good.len() as u64 / 3)
        .unwrap();
    for _ in 0..20 {
        assert_eq!(version_of(&weir).await, "v1");
    }
    let mut garbled = good.clone();
    let middle = garbled.len() / 2;
    garbled[middle] ^= 0xff;
    std::fs::write(&entry, &garbled).unwrap();
    assert!(
        weir.terminate().success(),
        "the proxy survived its cache entry changing"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(plugins_in(&dir).join("version.wasm"), version_fixture("v1")).unwrap();
    let weir = Weir::start_in(dir, &manifest);
    assert_eq!(version_of(&weir).await, "v1");
    weir.wait_for_log("corrupt compile cache entry");
    weir.wait_for_log("compiled");
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        good,
        "the entry was replaced"
    );
}

#[tokio::test]
async fn only_the_manifest_and_plugins_trigger_reloads() {
    let up = Upstream::echo("app").await;
    // Started from its folder with a relative manifest path: the watcher reports absolute
    // paths, which must still be recognised (and nothing else in the folder must count).
    let (weir, plugins) = start_versioned(&up, "", true);
    let notes = weir.dir().join("notes.txt");
    for i in 0..5 {
        std::fs::write(&notes, format!("unrelated {i}")).unwrap();
        std::fs::write(plugins.join(".version.wasm.swp"), "editor state").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        weir.status().await["generation"],
        1,
        "no reload for unrelated files"
    );

    std::fs::write(plugins.join("version.wasm"), version_fixture("v2")).unwrap();
    wait_for_version(&weir, "v2").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        weir.status().await["generation"],
        2,
        "one change, one reload (a reload reading files does not trigger another)"
    );
}
