//! Problems found in a manifest, each located by file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no place (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, naming the key or value.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in a manifest (never empty).
#[derive(Debug, Clone, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Turns byte spans of one source file into located diagnostics.
#[derive(Debug, Clone)]
pub struct SourceMap {
    file: PathBuf,
    line_starts: Vec<usize>,
    /// The text itself (the admin endpoint shows it, redacted).
    text: std::sync::Arc<str>,
}

impl SourceMap {
    /// Index `source`, the text of `file`.
    pub fn new(file: &Path, source: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            file: file.to_path_buf(),
            line_starts,
            text: std::sync::Arc::from(source),
        }
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A diagnostic at the start of `span` (or without a place when `span` is `None`).
    pub fn at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = match span {
            None => (0, 0),
            Some(span) => {
                let line = self.line_starts.partition_point(|&s| s <= span.start);
                (line, span.start - self.line_starts[line - 1] + 1)
            }
        };
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The file this map describes.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_become_lines_and_columns() {
        let map = SourceMap::new(Path::new("m.toml"), "a = 1\nbb = 2\n");
        let d = map.at(Some(6..8), "x");
        assert_eq!((d.line, d.column), (2, 1));
        let d = map.at(Some(11..12), "y");
        assert_eq!((d.line, d.column), (2, 6));
        assert_eq!(d.to_string(), "m.toml:2:6: y");
        assert_eq!(map.at(None, "z").to_string(), "m.toml: z");
    }
}
