//! `weir build`: filter crates to Wasm components — `cargo build --profile plugin --target
//! wasm32-wasip2` with rustup's target or Debian's offline toolchain — each output checked
//! to be a Weir filter of a supported WIT version and copied to `<out>/<crate dir>.wasm`.

use crate::filter::FilterEngine;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a filter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Not a crate, or not one that can become a component.
    #[error("{dir}: {reason}")]
    Crate {
        /// The crate's directory.
        dir: PathBuf,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// No way to compile for wasm32-wasip2 here.
    #[error("no wasm32-wasip2 toolchain: install it with `rustup target add wasm32-wasip2` (offline on Debian: `apt-get install rustc-web rust-web-src rust-web-llvm lld-22 wasi-libc`)")]
    NoToolchain,
    /// cargo failed (its output was shown).
    #[error("{dir}: cargo build failed")]
    Cargo {
        /// The crate's directory.
        dir: PathBuf,
    },
    /// The output is not a filter this proxy loads.
    #[error("{0}")]
    NotAFilter(String),
    /// Copying the output failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

/// How to compile for wasm32-wasip2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup's `wasm32-wasip2` target.
    Rustup,
    /// Debian's rustc-web with `-Z build-std` (see `plugins/build.sh`).
    Offline,
}

/// The toolchain to use: `WEIR_WASM_TOOLCHAIN` (`rustup` or `offline`, as for
/// `plugins/build.sh`) if set, else rustup's target if installed (or installable now), else
/// the offline one if its packages are there.
pub fn toolchain() -> Result<Toolchain, BuildError> {
    match std::env::var("WEIR_WASM_TOOLCHAIN").as_deref() {
        Ok("rustup") => return Ok(Toolchain::Rustup),
        Ok("offline") => return Ok(Toolchain::Offline),
        _ => {}
    }
    let rustup_has = || {
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == "wasm32-wasip2")
            })
    };
    if rustup_has() {
        return Ok(Toolchain::Rustup);
    }
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .is_ok_and(|s| s.success());
    if added && rustup_has() {
        return Ok(Toolchain::Rustup);
    }
    let offline = Path::new("/usr/bin/rustc").is_file()
        && Path::new("/usr/lib/wasm32-wasi/libc.a").is_file()
        && Path::new("/usr/lib/rustlib/src/rust/library").is_dir();
    if offline {
        return Ok(Toolchain::Offline);
    }
    Err(BuildError::NoToolchain)
}

/// Build the crate in `dir` and copy its component to `out/<dir name>.wasm`; returns
/// that path.
pub fn build(dir: &Path, out: &Path, toolchain: Toolchain) -> Result<PathBuf, BuildError> {
    let crate_error = |reason: String| BuildError::Crate {
        dir: dir.to_path_buf(),
        reason,
    };
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| crate_error(format!("no Cargo.toml ({e})")))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e| crate_error(format!("Cargo.toml is not valid TOML: {e}")))?;
    let is_cdylib = doc
        .get("lib")
        .and_then(|l| l.get("crate-type"))
        .and_then(|t| t.as_array())
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
    if !is_cdylib {
        return Err(crate_error(
            "not a cdylib crate, so it cannot become a component: add [lib] crate-type = [\"cdylib\", \"rlib\"] to its Cargo.toml".into(),
        ));
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok_or_else(|| crate_error("cannot name the output after the directory".into()))?;
    let built = cargo_build(&manifest, dir, toolchain).map_err(|()| BuildError::Cargo {
        dir: dir.to_path_buf(),
    })?;
    let engine = FilterEngine::new().map_err(|e| BuildError::NotAFilter(e.to_string()))?;
    engine
        .compile(&built)
        .map_err(|e| BuildError::NotAFilter(e.to_string()))?;
    std::fs::create_dir_all(out).map_err(|e| BuildError::Write {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })?;
    let dest = out.join(format!("{name}.wasm"));
    std::fs::copy(&built, &dest).map_err(|e| BuildError::Write {
        path: dest.clone(),
        reason: e.to_string(),
    })?;
    Ok(dest)
}

/// `cargo` (the one running us, if any) without an outer build's compiler settings, which a
/// nested cargo must not inherit.
pub fn nested_cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTC",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Run cargo; the `.wasm` it made for the crate's cdylib target.
fn cargo_build(manifest: &Path, dir: &Path, toolchain: Toolchain) -> Result<PathBuf, ()> {
    let mut cmd = nested_cargo();
    cmd.arg("build").arg("--manifest-path").arg(manifest).args([
        "--target",
        "wasm32-wasip2",
        "--message-format=json-render-diagnostics",
    ]);
    // The profile filters are built with, for workspaces that don't define it.
    for setting in [
        "profile.plugin.inherits=\"release\"",
        "profile.plugin.lto=true",
        "profile.plugin.codegen-units=1",
        "profile.plugin.panic=\"abort\"",
        "profile.plugin.strip=true",
    ] {
        cmd.args(["--config", setting]);
    }
    cmd.args(["--profile", "plugin"]);
    if toolchain == Toolchain::Offline {
        cmd.env("RUSTC_BOOTSTRAP", "1")
            .args(["--config", "build.rustc=\"/usr/bin/rustc\""])
            .args(["-Z", "build-std=std,panic_abort"])
            .args([
                "--config",
                "target.wasm32-wasip2.rustflags=[\"-L\",\"/usr/lib/wasm32-wasi\"]",
            ])
            // Its std differs from rustup's: never share a target dir with those builds.
            .arg("--target-dir")
            .arg(dir.join("target/wasm-offline"));
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|_| ())?;
    if !out.status.success() {
        return Err(());
    }
    // The artifact of the crate's own cdylib target (not its dependencies').
    let wanted = manifest.canonicalize().map_err(|_| ())?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"]
                .as_str()
                .and_then(|p| Path::new(p).canonicalize().ok())
                .is_some_and(|p| p == wanted)
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|x| x == "wasm"))
        .ok_or(())
}
