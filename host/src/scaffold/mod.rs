//! `weir new-filter`: a new filter crate from a template — config struct, one hook, native
//! tests, README — registered in the enclosing Cargo workspace, or standalone.

mod template;

use std::path::{Path, PathBuf};

/// Why a filter crate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a crate name a manifest can use as `<name>.wasm`.
    #[error("invalid filter name {0:?}: use lower-case letters, digits and '-', starting with a letter (e.g. \"rate-guard\")")]
    Name(String),
    /// Something is already at the crate's path.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// No `weir-sdk` to depend on.
    #[error("no weir-sdk to depend on: the enclosing workspace has none in [workspace.dependencies] and this weir was built away from its sources; pass --sdk <path to weir's sdk/ directory>")]
    NoSdk,
    /// The enclosing workspace's `Cargo.toml` could not be read or updated.
    #[error("{path}: {reason}")]
    Workspace {
        /// Its `Cargo.toml`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Writing the crate failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

/// What `new_filter` made.
#[derive(Debug)]
pub struct Created {
    /// The crate's directory.
    pub dir: PathBuf,
    /// The workspace `Cargo.toml` it joined, if any (and whether it had to be edited).
    pub workspace: Option<(PathBuf, bool)>,
}

/// Make the filter crate `name` in `parent` (`parent/name/`). `sdk`: the `weir-sdk`
/// directory to depend on when no enclosing workspace provides it.
pub fn new_filter(name: &str, parent: &Path, sdk: Option<&Path>) -> Result<Created, ScaffoldError> {
    check_name(name)?;
    let write_error = |path: &Path, e: std::io::Error| ScaffoldError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
    let parent = parent.canonicalize().map_err(|e| write_error(parent, e))?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let workspace = enclosing_workspace(&parent)?;
    let (sdk_dep, serde_dep, extra) = match &workspace {
        Some((_, doc)) => (
            workspace_dep(doc, "weir-sdk").map_or_else(|| sdk_path_dep(sdk), Ok)?,
            workspace_dep(doc, "serde")
                .unwrap_or_else(|| r#"{ version = "1", features = ["derive"] }"#.into()),
            String::new(),
        ),
        None => (
            sdk_path_dep(sdk)?,
            r#"{ version = "1", features = ["derive"] }"#.into(),
            template::STANDALONE.to_string(),
        ),
    };
    let type_name = type_name(name);
    let fill = |t: &str| {
        t.replace("{name}", name)
            .replace("{type}", &type_name)
            .replace("{sdk}", &sdk_dep)
            .replace("{serde}", &serde_dep)
            .replace("{extra}", &extra)
            .replace(
                "{build}",
                if workspace.is_some() {
                    "cargo build --profile plugin --target wasm32-wasip2   # -> <target>/wasm32-wasip2/plugin/"
                } else {
                    "cargo build --profile plugin --target wasm32-wasip2   # -> target/wasm32-wasip2/plugin/"
                },
            )
    };
    let files = [
        ("Cargo.toml", fill(template::CARGO_TOML)),
        ("src/lib.rs", fill(template::LIB_RS)),
        ("README.md", fill(template::README)),
    ];
    // Register first: a workspace that cannot be updated leaves nothing half-made.
    let joined = match workspace {
        Some((path, doc)) => {
            let edited = register(&path, doc, &dir)?;
            Some((path, edited))
        }
        None => None,
    };
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| write_error(d, e))?;
        }
        std::fs::write(&path, text).map_err(|e| write_error(&path, e))?;
    }
    Ok(Created {
        dir,
        workspace: joined,
    })
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ScaffoldError::Name(name.to_string()))
    }
}

/// `rate-guard` -> `RateGuard`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The nearest `Cargo.toml` at or above `dir` with a `[workspace]` table.
fn enclosing_workspace(
    dir: &Path,
) -> Result<Option<(PathBuf, toml_edit::DocumentMut)>, ScaffoldError> {
    for d in dir.ancestors() {
        let path = d.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let doc: toml_edit::DocumentMut = text.parse().map_err(|e| ScaffoldError::Workspace {
            path: path.clone(),
            reason: format!("not valid TOML: {e}"),
        })?;
        if doc.contains_key("workspace") {
            return Ok(Some((path, doc)));
        }
    }
    Ok(None)
}

/// `{ workspace = true }` when the workspace declares `name` in `[workspace.dependencies]`.
fn workspace_dep(doc: &toml_edit::DocumentMut, name: &str) -> Option<String> {
    doc.get("workspace")?
        .get("dependencies")?
        .get(name)
        .map(|_| "{ workspace = true }".to_string())
}

/// `weir-sdk` by path: the given one, or the one this weir was built from if it is still there.
fn sdk_path_dep(sdk: Option<&Path>) -> Result<String, ScaffoldError> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let path = match sdk {
        Some(p) => p.to_path_buf(),
        None if built_from.join("Cargo.toml").is_file() => built_from,
        None => return Err(ScaffoldError::NoSdk),
    };
    let path = path.canonicalize().map_err(|e| ScaffoldError::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(format!("{{ path = {:?} }}", path.display().to_string()))
}

/// Add `dir` to the workspace's `members` and `default-members` unless a pattern already
/// covers it; returns whether the file was changed.
fn register(
    path: &Path,
    mut doc: toml_edit::DocumentMut,
    dir: &Path,
) -> Result<bool, ScaffoldError> {
    let root = path.parent().unwrap_or(Path::new("."));
    let rel = dir
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_else(|_| dir.display().to_string());
    let bad = |reason: &str| ScaffoldError::Workspace {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let Some(ws) = doc.get_mut("workspace").and_then(|w| w.as_table_like_mut()) else {
        return Err(bad("[workspace] is not a table"));
    };
    let mut edited = false;
    for key in ["members", "default-members"] {
        let Some(list) = ws.get_mut(key) else {
            if key == "members" {
                ws.insert(
                    key,
                    toml_edit::value(toml_edit::Array::from_iter([rel.as_str()])),
                );
                edited = true;
            }
            continue;
        };
        let Some(list) = list.as_array_mut() else {
            return Err(bad(&format!("workspace.{key} is not an array")));
        };
        let covered = list
            .iter()
            .filter_map(|v| v.as_str())
            .any(|pattern| covers(pattern, &rel));
        if !covered {
            list.push(rel.as_str());
            edited = true;
        }
    }
    if edited {
        std::fs::write(path, doc.to_string()).map_err(|e| ScaffoldError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(edited)
}

/// Whether a workspace member pattern (`plugins/*`, `plugins/x`) names `rel`.
fn covers(pattern: &str, rel: &str) -> bool {
    let pattern = pattern.trim_end_matches('/');
    match pattern.strip_suffix("/*") {
        Some(prefix) => rel
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| !r.is_empty() && !r.contains('/')),
        None => pattern == rel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        assert_eq!(type_name("rate-guard"), "RateGuard");
        assert_eq!(type_name("waf"), "Waf");
        for bad in ["", "Rate", "9x", "a_b", "a-", "a--b", "a/b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("jwt-auth2").is_ok());
        assert!(covers("plugins/*", "plugins/x"));
        assert!(!covers("plugins/*", "plugins/x/y"));
        assert!(!covers("plugins/*", "pluginsx/y"));
        assert!(covers("plugins/x", "plugins/x"));
        assert!(!covers("plugins/x", "plugins/y"));
    }

    #[test]
    fn registers_in_an_explicit_workspace_and_leaves_globs_alone() {
        let root = tempfile::tempdir().unwrap();
        let manifest = root.path().join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[workspace]\n# keep me\nmembers = [\"a\"]\ndefault-members = [\"a\"]\n\n[workspace.dependencies]\nweir-sdk = { path = \"sdk\" }\n",
        )
        .unwrap();
        let made = new_filter("rate-guard", &root.path().join("filters"), None).unwrap();
        assert_eq!(made.workspace.as_ref().map(|w| w.1), Some(true));
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains("# keep me"), "{text}");
        assert!(
            text.contains("members = [\"a\", \"filters/rate-guard\"]"),
            "{text}"
        );
        assert!(
            text.contains("default-members = [\"a\", \"filters/rate-guard\"]"),
            "{text}"
        );
        let cargo = std::fs::read_to_string(made.dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("weir-sdk = { workspace = true }"), "{cargo}");
        assert!(!cargo.contains("[workspace]"), "{cargo}");
        let lib = std::fs::read_to_string(made.dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct RateGuard"), "{lib}");
        assert!(matches!(
            new_filter("rate-guard", &root.path().join("filters"), None),
            Err(ScaffoldError::Exists(_))
        ));

        std::fs::write(&manifest, "[workspace]\nmembers = [\"filters/*\"]\n").unwrap();
        let made = new_filter("other", &root.path().join("filters"), None).unwrap();
        assert_eq!(
            made.workspace.map(|w| w.1),
            Some(false),
            "covered by the glob"
        );
        let cargo = std::fs::read_to_string(made.dir.join("Cargo.toml")).unwrap();
        assert!(
            cargo.contains("weir-sdk = { path = "),
            "no workspace sdk: by path: {cargo}"
        );
    }
}
