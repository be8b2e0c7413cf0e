//! `config.json`: the shape, the table map and the optional sections of a SLAF dataset
//! (format versions 0.1–0.5, see FORMAT.md). The whole document is kept so that keys this
//! reader does not know survive an update.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Format versions this reader understands.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1", "0.2", "0.3", "0.4", "0.5"];

/// Default table paths, used by datasets whose config has no `tables` map.
const DEFAULT_TABLES: &[(&str, &str)] = &[
    ("expression", "expression.lance"),
    ("cells", "cells.lance"),
    ("genes", "genes.lance"),
];

/// The config key recording the Lance version of each table (see [`Config::table_versions`]).
pub const TABLE_VERSIONS: &str = "table_versions";

/// A parsed `config.json`.
#[derive(Debug, Clone)]
pub struct Config {
    /// `format_version` as written ("0.1" when absent: the first format had none).
    pub format_version: String,
    /// Number of cells (rows of X).
    pub n_cells: usize,
    /// Number of genes (columns of X).
    pub n_genes: usize,
    /// Table role (`expression`, `cells`, `genes`, `layers`, `cellsxcells`, ...) → relative path.
    pub tables: BTreeMap<String, String>,
    /// Table role → the Lance version this config describes (`table_versions`, written by this
    /// writer). Readers open exactly these versions; roles without one open the latest.
    pub table_versions: BTreeMap<String, u64>,
    /// The document as read.
    pub document: Map<String, Value>,
}

impl Config {
    /// Parses the bytes of `config.json`; `origin` names the file in error messages.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        let bad = |reason: String| Error::invalid_config(format!("invalid {origin}: {reason}"));
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON ({e})")))?;
        let Value::Object(document) = value else {
            return Err(bad("expected a JSON object at the top level".into()));
        };

        let format_version = match document.get("format_version") {
            None => "0.1".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(bad(format!("format_version must be a string, got {other}")))
            }
        };
        if !SUPPORTED_VERSIONS.contains(&format_version.as_str()) {
            return Err(bad(format!(
                "format_version {format_version:?} is not supported (this reader reads {})",
                SUPPORTED_VERSIONS.join(", ")
            )));
        }

        let (n_cells, n_genes) = parse_shape(&document).map_err(bad)?;

        let tables = match document.get("tables") {
            None => DEFAULT_TABLES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Some(Value::Object(map)) => {
                let mut tables = BTreeMap::new();
                for (role, path) in map {
                    let Value::String(path) = path else {
                        return Err(bad(format!(
                            "tables.{role} must be a path string, got {path}"
                        )));
                    };
                    tables.insert(role.clone(), path.clone());
                }
                for (role, _) in DEFAULT_TABLES {
                    if !tables.contains_key(*role) {
                        return Err(bad(format!("tables has no \"{role}\" entry")));
                    }
                }
                tables
            }
            Some(other) => return Err(bad(format!("tables must be an object, got {other}"))),
        };

        let table_versions = match document.get(TABLE_VERSIONS) {
            None => BTreeMap::new(),
            Some(Value::Object(map)) => {
                let mut versions = BTreeMap::new();
                for (role, version) in map {
                    let Some(version) = version.as_u64() else {
                        return Err(bad(format!(
                            "{TABLE_VERSIONS}.{role} must be a Lance version number, got {version}"
                        )));
                    };
                    versions.insert(role.clone(), version);
                }
                versions
            }
            Some(other) => {
                return Err(bad(format!(
                    "{TABLE_VERSIONS} must be an object, got {other}"
                )))
            }
        };

        Ok(Self {
            format_version,
            n_cells,
            n_genes,
            tables,
            table_versions,
            document,
        })
    }

    /// The Lance version of table `role` this config describes, when it records one.
    pub fn table_version(&self, role: &str) -> Option<u64> {
        self.table_versions.get(role).copied()
    }

    /// Keys listed under a section's `available` list (`layers`, `obsm`, `varm`, `obsp`, `varp`).
    pub fn available(&self, section: &str) -> Vec<String> {
        self.listed(section, "available")
    }

    /// Keys listed under `section.list` (`available`, `immutable`, `mutable`).
    pub fn listed(&self, section: &str, list: &str) -> Vec<String> {
        self.document
            .get(section)
            .and_then(|s| s.get(list))
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `metadata.expression_count`, the stored non-zero count, when the writer recorded it.
    pub fn expression_count(&self) -> Option<u64> {
        self.document
            .get("metadata")?
            .get("expression_count")?
            .as_u64()
    }
}

fn parse_shape(document: &Map<String, Value>) -> std::result::Result<(usize, usize), String> {
    // Integer ids along both axes are u32 in the tables and in selections.
    let as_count = |v: &Value, what: &str| match v.as_u64() {
        Some(n) if n <= u64::from(u32::MAX) => Ok(n as usize),
        Some(n) => Err(format!(
            "{what} is {n}, above the {} ids the format allows",
            u32::MAX
        )),
        None => Err(format!("{what} must be a non-negative integer, got {v}")),
    };
    match document.get("array_shape") {
        Some(Value::Array(dims)) if dims.len() == 2 => Ok((
            as_count(&dims[0], "array_shape[0]")?,
            as_count(&dims[1], "array_shape[1]")?,
        )),
        Some(other) => Err(format!(
            "array_shape must be [n_cells, n_genes], got {other}"
        )),
        None => match (document.get("n_cells"), document.get("n_genes")) {
            (Some(c), Some(g)) => Ok((as_count(c, "n_cells")?, as_count(g, "n_genes")?)),
            _ => Err("array_shape is missing".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_format_05_config() {
        let text = br#"{"format_version": "0.5", "array_shape": [3, 4],
            "tables": {"expression": "e.lance", "cells": "data/c.lance", "genes": "g.lance",
                       "layers": "layers.lance"},
            "obsm": {"available": ["X_umap"]}, "future_key": 1}"#;
        let config = Config::parse(text, "config.json").unwrap();
        assert_eq!((config.n_cells, config.n_genes), (3, 4));
        assert_eq!(config.tables["cells"], "data/c.lance");
        assert_eq!(config.available("obsm"), vec!["X_umap"]);
        assert!(config.available("varm").is_empty());
        assert!(config.document.contains_key("future_key"));
        assert_eq!(config.table_version("cells"), None);
    }

    #[test]
    fn table_versions_are_read_and_checked() {
        let text = br#"{"array_shape": [1, 2], "table_versions": {"expression": 3, "cells": 1}}"#;
        let config = Config::parse(text, "config.json").unwrap();
        assert_eq!(config.table_version("expression"), Some(3));
        assert_eq!(config.table_version("genes"), None);
        let bad = br#"{"array_shape": [1, 2], "table_versions": {"cells": -1}}"#;
        let err = Config::parse(bad, "config.json").unwrap_err();
        assert!(err.message().contains("table_versions.cells"), "{err}");
    }

    #[test]
    fn old_configs_without_tables_use_default_paths() {
        let config = Config::parse(br#"{"array_shape": [1, 2]}"#, "config.json").unwrap();
        assert_eq!(config.format_version, "0.1");
        assert_eq!(config.tables["expression"], "expression.lance");
    }

    #[test]
    fn malformed_configs_name_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "not valid JSON"),
            (b"[1, 2]", "JSON object"),
            (
                br#"{"format_version": "9.0", "array_shape": [1, 1]}"#,
                "not supported",
            ),
            (br#"{"format_version": "0.5"}"#, "array_shape is missing"),
            (br#"{"array_shape": [1, -1]}"#, "array_shape[1]"),
            (
                br#"{"array_shape": [1, 1], "tables": {"cells": "c"}}"#,
                "\"expression\"",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::parse(text, "x/config.json").unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidConfig);
            assert!(
                err.message().contains(expected),
                "{} lacks {expected}",
                err.message()
            );
            assert!(err.message().contains("x/config.json"));
        }
    }

    /// Random damage to a valid config (bytes flipped, cut short, values swapped for others)
    /// never panics and always parses to a config or an `InvalidConfig` error; a fixed seed
    /// keeps the run deterministic and its length bounded.
    #[test]
    fn damaged_configs_never_panic() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let valid = br#"{"format_version": "0.5", "array_shape": [3, 4],
            "tables": {"expression": "e.lance", "cells": "c.lance", "genes": "g.lance"},
            "metadata": {"expression_count": 7}, "layers": {"available": ["raw"]}}"#;
        let pieces: &[&[u8]] = &[
            b"-1",
            b"1e400",
            b"18446744073709551616",
            b"4294967296",
            b"null",
            b"[]",
            b"{}",
            b"\"0.5\"",
            b"[[[[[[[[",
            b"\\u0000",
            b"true",
            b"\xff\xfe",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for _ in 0..3000 {
            let mut text = valid.to_vec();
            for _ in 0..1 + rng.next_u32() % 4 {
                let at = rng.next_u32() as usize % text.len().max(1);
                match rng.next_u32() % 4 {
                    0 => text[at] = rng.next_u32() as u8,
                    1 => text.truncate(at),
                    2 => {
                        let piece = pieces[rng.next_u32() as usize % pieces.len()];
                        let end = (at + 1 + rng.next_u32() as usize % 6).min(text.len());
                        text.splice(at..end, piece.iter().copied());
                    }
                    _ => {
                        text.remove(at.min(text.len().saturating_sub(1)));
                    }
                }
                if text.is_empty() {
                    break;
                }
            }
            match Config::parse(&text, "config.json") {
                Ok(config) => {
                    assert!(config.n_cells <= u32::MAX as usize);
                    assert!(config.n_genes <= u32::MAX as usize);
                    let _ = config.expression_count();
                }
                Err(e) => assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig, "{e}"),
            }
        }
        let huge = br#"{"array_shape": [4294967296, 1]}"#;
        let err = Config::parse(huge, "config.json").unwrap_err();
        assert!(
            err.message().contains("array_shape[0] is 4294967296"),
            "{err}"
        );
    }
}
