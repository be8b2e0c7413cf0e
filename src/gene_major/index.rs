//! `slaf index PATH`: building (or rebuilding) the gene-major companion and the axis statistics
//! of an existing dataset, including one slafdb wrote.

use super::build::{build, Tables};
use super::CONFIG_KEY;
use crate::error::Result;
use crate::progress::Progress;
use crate::writer::update::Change;
use crate::writer::DEFAULT_ROWS_PER_FRAGMENT;

/// Builds the gene-major table and axis statistics of the local dataset at `path` from its
/// current expression table, replacing any earlier (or stale) ones. Holds the dataset's writer
/// lock; readers see the new tables only once config.json names them, all at once. `progress`
/// hears of rows read and written.
pub fn index_gene_major(path: &str, progress: Option<&Progress>) -> Result<()> {
    let change = Change::begin(path)?;
    let config = change.config();
    let built = build(&Tables {
        root: change.root(),
        shown: change.shown(),
        paths: &config.tables,
        versions: &config.table_versions,
        n_cells: config.n_cells,
        n_genes: config.n_genes,
        rows_per_fragment: DEFAULT_ROWS_PER_FRAGMENT,
        progress,
    })?;
    change.commit_versions(&built.versions, Some((CONFIG_KEY, built.marker.to_json())))
}
