//! Load errors: every problem found in a config or policy file, with its
//! position and the fix, collected rather than stopping at the first.
//!
//! Messages never contain a scalar value taken from the file unless that value
//! is a name the operator chose (an app, route, group or env var name) or a
//! value that failed a syntax check which secrets cannot pass. YAML scalars that
//! fail a type check are described by kind ("a string"), never quoted.

use std::fmt;
use std::path::{Path, PathBuf};

use marked_yaml::{Marker, Span};

// === impl LoadError ===

/// One problem in a config or policy file.
///
/// `line` and `column` are 1-based. A `line` of 0 means the problem concerns the
/// file as a whole (for example, it could not be read) and has no position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, or 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based column, or 0 when the error is about the whole file.
    pub column: usize,
    /// What is wrong. Never contains a secret value.
    pub message: String,
    /// What the operator should change.
    pub fix: String,
}

impl LoadError {
    /// Creates an error at a 1-based line and column.
    pub fn new(
        file: &Path,
        line: usize,
        column: usize,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// Creates an error about a whole file (no position).
    pub fn whole_file(file: &Path, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(file, 0, 0, message, fix)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: ", self.file.display())?;
        } else {
            write!(
                f,
                "{}:{}:{}: error: ",
                self.file.display(),
                self.line,
                self.column
            )?;
        }
        write!(f, "{}\n  fix: {}", self.message, self.fix)
    }
}

impl std::error::Error for LoadError {}

// === impl LoadErrors ===

/// All problems found while loading one file, in file order. Never empty when
/// returned as an `Err`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no errors (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.0.iter()
    }

    /// `Ok` when `errors` is empty, else those errors (the checks where config and
    /// policy meet end with it).
    pub(crate) fn unless_any(errors: Vec<LoadError>) -> Result<(), LoadErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LoadErrors(errors))
        }
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl From<LoadError> for LoadErrors {
    fn from(e: LoadError) -> Self {
        LoadErrors(vec![e])
    }
}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

// === impl Errors ===

/// Collects errors for one file while it is validated, each at its position.
///
/// The loaders of both files use it, and so may any other YAML file read with
/// `marked-yaml` that reports its errors the way `slackgate check` does (`slackgate
/// test`'s tests files): see [`crate::yaml_errors`].
#[derive(Debug)]
pub struct Errors {
    file: PathBuf,
    list: Vec<LoadError>,
}

impl Errors {
    /// No errors yet, for `file` (the path every error names).
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }

    /// Records an error at the start of `span` (or at 1:1 when the span has no start).
    pub fn at(&mut self, span: &Span, message: impl Into<String>, fix: impl Into<String>) {
        let (line, column) = span_pos(span);
        self.list
            .push(LoadError::new(&self.file, line, column, message, fix));
    }

    /// Records an error at a marker.
    pub(crate) fn at_mark(
        &mut self,
        mark: Option<&Marker>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = mark.map_or((1, 1), |m| (m.line(), m.column()));
        self.list
            .push(LoadError::new(&self.file, line, column, message, fix));
    }

    /// The number of errors recorded so far.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when no error was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Finishes collection: `Ok(value)` when nothing was recorded, else all
    /// errors sorted by position (stable, so same-position errors keep their order).
    pub fn finish<T>(mut self, value: Option<T>) -> Result<T, LoadErrors> {
        match value {
            Some(v) if self.list.is_empty() => Ok(v),
            _ => {
                if self.list.is_empty() {
                    // Defensive: a value was withheld without a recorded reason.
                    self.list.push(LoadError::whole_file(
                        &self.file,
                        "the file could not be validated",
                        "check the file against the documented schema",
                    ));
                }
                self.list.sort_by_key(|e| (e.line, e.column));
                self.list.dedup();
                Err(LoadErrors(self.list))
            }
        }
    }
}

/// The 1-based (line, column) of a span's start, or (1, 1) when unknown.
pub fn span_pos(span: &Span) -> (usize, usize) {
    span.start().map_or((1, 1), |m| (m.line(), m.column()))
}
