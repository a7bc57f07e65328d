//! Every public item of the SDK has an example in its documentation (run as a doctest).

use std::path::Path;

/// Public items (`pub fn|struct|enum|trait|const|type`, exported macros) of `source` whose
/// doc comment has no code block, as `line: item`. Items of `pub(crate)` modules and of the
/// hidden `__private` glue are not public.
fn undocumented(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut missing = Vec::new();
    let mut hidden_depth: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(depth) = hidden_depth {
            if t.starts_with('}') && indent == depth {
                hidden_depth = None;
            }
            continue;
        }
        if t.starts_with("pub(crate) mod ") || t.starts_with("pub mod __private") {
            hidden_depth = Some(indent);
            continue;
        }
        // The doc comment and attributes attached to this line.
        let attached: Vec<&str> = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim_start())
            .take_while(|l| l.starts_with("///") || l.starts_with("#["))
            .collect();
        // `pub const fn` is covered by `const `.
        let item = t.strip_prefix("pub ").is_some_and(|rest| {
            ["fn ", "struct ", "enum ", "trait ", "const ", "type "]
                .iter()
                .any(|k| rest.starts_with(k))
        });
        let exported_macro = t.starts_with("macro_rules!") && attached.contains(&"#[macro_export]");
        if !item && !exported_macro {
            continue;
        }
        let doc_has_example = attached.iter().any(|l| l.contains("```"));
        if !doc_has_example {
            missing.push(format!("{}: {}", i + 1, t));
        }
    }
    missing
}

/// The `.rs` files under `dir`, in its folders too.
fn sources(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_public_item_has_an_example() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    assert!(
        files.iter().any(|f| f.ends_with("testing/mock.rs")),
        "modules in folders are read too"
    );
    let mut missing = Vec::new();
    for path in files {
        // The generated WIT bindings are re-exported for the macro, not documented API.
        if !path.ends_with("bindings.rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.strip_prefix(&src).unwrap().display().to_string();
            missing.extend(
                undocumented(&text)
                    .into_iter()
                    .map(|m| format!("{name}:{m}")),
            );
        }
    }
    assert!(
        missing.is_empty(),
        "public items without an example:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_checker_sees_a_missing_example() {
    let source = "/// Documented.\n///\n/// ```\n/// f();\n/// ```\npub fn f() {}\n\n/// No example.\n#[inline]\npub fn g() {}\n\npub(crate) mod inner {\n    pub fn h() {}\n}\n\n/// Exported, no example.\n#[macro_export]\nmacro_rules! m { () => {} }\n\nmacro_rules! private { () => {} }\n";
    assert_eq!(
        undocumented(source),
        ["10: pub fn g() {}", "18: macro_rules! m { () => {} }"]
    );
}
