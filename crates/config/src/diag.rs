//! Located configuration errors.
//!
//! Every error names the file, the line and column (1-based, columns in characters), the
//! key path inside the resource (`HTTPRoute "shop".rules[2].backendRefs[0].weight`) and what
//! is wrong. A load collects every error it finds rather than stopping at the first.

use std::fmt;

/// One configuration error.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file as the operator knows it, relative to the configuration directory.
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Where in the resource; empty for errors about the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error of one load, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(transparent)]
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

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

/// A path inside a resource, built as the decoder descends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(String);

impl KeyPath {
    pub fn root(s: impl Into<String>) -> KeyPath {
        KeyPath(s.into())
    }

    pub fn key(&self, key: &str) -> KeyPath {
        if self.0.is_empty() {
            KeyPath(key.to_string())
        } else {
            KeyPath(format!("{}.{}", self.0, key))
        }
    }

    pub fn index(&self, i: usize) -> KeyPath {
        KeyPath(format!("{}[{}]", self.0, i))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file of the configuration: its name as shown, and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Shown in errors, e.g. `conf.d/routes.toml`.
    pub name: String,
    /// Where the file lives; relative paths inside it (certificate files) resolve against
    /// its folder.
    pub path: std::path::PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(
        name: impl Into<String>,
        path: impl Into<std::path::PathBuf>,
        text: impl Into<String>,
    ) -> SourceFile {
        SourceFile {
            name: name.into(),
            path: path.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn diagnostic(
        &self,
        offset: usize,
        path: &KeyPath,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = self.line_col(offset);
        Diagnostic {
            file: self.name.clone(),
            line,
            column,
            path: path.as_str().to_string(),
            message: message.into(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let f = SourceFile::new("a.toml", "a.toml", "x = 1\nné = \"é\" y\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        let y = f.text.find('y').unwrap();
        assert_eq!(f.line_col(y), (2, 10));
    }

    #[test]
    fn diagnostic_display_names_file_line_column_and_path() {
        let f = SourceFile::new("conf.d/routes.toml", "x", "a\nbb\n");
        let d = f.diagnostic(
            3,
            &KeyPath::root("HTTPRoute \"shop\"").key("rules").index(2),
            "bad",
        );
        assert_eq!(
            d.to_string(),
            "conf.d/routes.toml:2:2: HTTPRoute \"shop\".rules[2]: bad"
        );
    }
}
