//! One error type for the whole core. Messages name the dataset, table and column involved so
//! that adapters (Python, DuckDB) can pass them on unchanged.

use std::fmt;

/// What went wrong, coarse enough for adapters to pick an exception class from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The dataset path does not exist.
    NotFound,
    /// The path exists but is not a SLAF dataset (no `config.json`, not a directory, ...).
    NotADataset,
    /// `config.json` is unreadable, malformed or of an unsupported version.
    InvalidConfig,
    /// A table named in `config.json` (or required by it) is absent.
    MissingTable,
    /// A table exists but its columns are not what the format requires.
    InvalidSchema,
    /// A selector refers to positions outside the axis.
    OutOfRange,
    /// A selector names cells, genes, layers or keys that do not exist.
    UnknownName,
    /// A selector or argument is malformed (wrong mask length, zero step, ...).
    InvalidArgument,
    /// The storage layer failed (I/O, Lance, Arrow).
    Storage,
    /// A size asked for is above its bound (`crate::limits`) or more than the memory available.
    ResourceLimit,
    /// Stored data contradicts itself (row counts against `config.json`, duplicate entries).
    Corrupt,
}

/// The core's error: a kind plus a message that already says where.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message that names what was involved.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: scrub_source_paths(&message.into()),
            source: None,
        }
    }

    /// The kind, for adapters mapping to their own error classes.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub(crate) fn not_a_dataset(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotADataset, message)
    }
    pub(crate) fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }
    pub(crate) fn missing_table(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingTable, message)
    }
    pub(crate) fn invalid_schema(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidSchema, message)
    }
    pub(crate) fn out_of_range(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OutOfRange, message)
    }
    pub(crate) fn unknown_name(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UnknownName, message)
    }
    /// "no {what} {key:?} in this dataset (available: …)".
    pub(crate) fn unknown_key<S: AsRef<str>>(what: &str, key: &str, known: &[S]) -> Self {
        let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
        let available = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        Self::unknown_name(format!(
            "no {what} {key:?} in this dataset (available: {available})"
        ))
    }
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// "resource limit exceeded: {message}".
    pub(crate) fn resource_limit(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::ResourceLimit,
            format!("resource limit exceeded: {}", message.into()),
        )
    }
    /// "dataset is corrupt: {message}".
    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Corrupt,
            format!("dataset is corrupt: {}", message.into()),
        )
    }

    /// The same error with its message rewritten (a hidden staging path replaced by the path
    /// the user gave).
    pub(crate) fn map_message(mut self, rewrite: impl FnOnce(&str) -> String) -> Self {
        self.message = rewrite(&self.message);
        self
    }

    /// A storage failure while doing `context` (e.g. "reading table 'cells' of /data/x.slaf").
    pub(crate) fn storage(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let context = context.into();
        Self {
            kind: ErrorKind::Storage,
            message: scrub_source_paths(&format!("{context}: {source}")),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Removes the source locations Lance and other crates put in their messages
/// (`, /home/ci/.cargo/registry/src/…/lance-14.0.2/src/dataset.rs:812:31`): they name the build
/// machine's files and mean nothing to users.
pub(crate) fn scrub_source_paths(message: &str) -> String {
    if !message.contains(".rs:") {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(".rs:") {
        // The path starts after the last separator before `.rs:`.
        let start = rest[..at]
            .rfind(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | '[' | '\'' | '"'))
            .map_or(0, |i| i + 1);
        let path = &rest[start..at];
        let digits = rest[at + 4..]
            .find(|c: char| !(c.is_ascii_digit() || c == ':'))
            .unwrap_or(rest.len() - at - 4);
        let end = at + 4 + digits;
        let is_build_path = path.contains(".cargo/registry")
            || path.contains(".cargo/git")
            || path.starts_with("/rustc/")
            || path.starts_with('/') && path.contains("/src/");
        if is_build_path && digits > 0 {
            let kept = rest[..start].trim_end_matches([' ', ',']);
            out.push_str(kept);
            rest = &rest[end..];
        } else {
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Adds "while doing X" context to storage-layer results.
pub(crate) trait StorageContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E> StorageContext<T> for std::result::Result<T, E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::storage(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_machine_paths_are_removed() {
        let lance = "Dataset at path x was not found: Not found: x/_versions, \
             /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/lance-table-14.0.2/src/io/commit.rs:412:30";
        assert_eq!(
            scrub_source_paths(lance),
            "Dataset at path x was not found: Not found: x/_versions"
        );
        let inner = "LanceError(IO): bad (/home/ci/.cargo/git/checkouts/lance/src/a.rs:1:2) here";
        assert_eq!(scrub_source_paths(inner), "LanceError(IO): bad () here");
        // Users' own names that merely look alike are kept.
        for kept in [
            "cell_type = 'a.rs:1'",
            "file tools.rs: missing",
            "no paths here",
        ] {
            assert_eq!(scrub_source_paths(kept), kept);
        }
        let err = Error::storage("reading table 'cells'", std::io::Error::other(lance));
        assert!(!err.message().contains(".cargo"), "{err}");
    }
}
