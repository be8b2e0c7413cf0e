//! The gene-major companion of the expression table, and the axis statistics built with it.
//!
//! `expression.lance` is sorted by cell: one cell's genes are contiguous, so cell selections
//! read only their rows, but "10 genes across all cells" reads the whole table. The companion
//! `expression_by_gene.lance` holds the same rows sorted by gene, then cell; the genes table's
//! `slaf_gene_start_index` column says where each gene's rows begin (as `cell_start_index` does
//! for cells). The pass that writes it also computes per-cell and per-gene statistics (see
//! [`stats`]) and stores them as `slaf_*` columns of the cells and genes tables.
//!
//! config.json declares both under its own key, which slafdb ignores:
//! `"gene_major": {"table": "expression_by_gene", "expression_version": V, "expression_rows": N}`.
//! They describe version `V` of the expression table only: an append (a new expression
//! version) makes them stale until rebuilt, and a stale companion is never read: requests
//! fall back to the cell-major table.

mod build;
mod index;
mod read;
pub mod stats;

use serde_json::{json, Map, Value};

pub(crate) use build::{build, Tables};
pub use index::index_gene_major;
pub(crate) use read::GeneMajor;

/// The companion table's role in config.json's `tables`.
pub const TABLE: &str = "expression_by_gene";
/// config.json's key for what the companion and the statistics describe.
pub const CONFIG_KEY: &str = "gene_major";
/// The genes table's column of row offsets into the companion table.
pub(crate) const START_INDEX_COLUMN: &str = "slaf_gene_start_index";

/// What config.json records about the companion and the axis statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The expression table version they were built from.
    pub expression_version: u64,
    /// Its row count then.
    pub expression_rows: u64,
}

impl Marker {
    /// The marker in a config document, if there is a well-formed one.
    pub fn read(document: &Map<String, Value>) -> Option<Self> {
        let entry = document.get(CONFIG_KEY)?;
        Some(Self {
            expression_version: entry.get("expression_version")?.as_u64()?,
            expression_rows: entry.get("expression_rows")?.as_u64()?,
        })
    }

    /// The config.json entry.
    pub fn to_json(&self) -> Value {
        json!({
            "table": TABLE,
            "expression_version": self.expression_version,
            "expression_rows": self.expression_rows,
        })
    }

    /// Whether the marker describes the expression table as opened (`version`, `rows`).
    pub fn describes(&self, version: u64, rows: u64) -> bool {
        self.expression_version == version && self.expression_rows == rows
    }
}

/// Why a dataset's gene-major companion is not used, if it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Present and describing the current expression table.
    Fresh,
    /// Never built (`slaf index PATH` builds it).
    Absent,
    /// Built from an earlier version of the expression table (an append since).
    Stale,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Absent => "absent",
            Status::Stale => "stale",
        }
    }
}
