//! Submatrices as long rows `(cell, gene, value)`, produced a chunk of cells at a time so that
//! several threads can pull them (DuckDB's `slaf_slice`), plus the selection rules shared with
//! tokenization: cell/gene selectors combined with metadata predicates.
//!
//! Predicates (`cell_filter`, `gene_filter`) are Lance SQL over the small cells/genes tables;
//! only the selected cells' row ranges of the expression table are read afterwards, never the
//! whole table.
//!
//! ```no_run
//! use slaf::slice::{open_shared, Selection, SliceScan};
//! use slaf::Selector;
//! let ds = open_shared("data/pbmc.slaf")?;
//! let sel = Selection {
//!     cell_filter: Some("cell_type = 'T cell'".into()),
//!     ..Selection::default()
//! };
//! let scan = SliceScan::new(ds, &sel, None)?;
//! while let Some(rows) = scan.next_rows(2048)? {
//!     println!("{} rows", rows.len());
//! }
//! # Ok::<(), slaf::Error>(())
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use arrow_array::{RecordBatch, StringArray};

use crate::axis::{self, AxisColumns, CELLS, GENES};
use crate::columns::{extend_ids, to_strings, Values};
use crate::dataset::Dataset;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Layout;
use crate::location::Location;
use crate::runtime::block_on;
use crate::scan::{table_of, Scan};
use crate::selection::{Resolved, Selector};
use crate::table::Table;

const CELL_ID: &str = "cell_integer_id";
const GENE_ID: &str = "gene_integer_id";

/// Cells read per chunk of a slice, at most ...
const SLICE_CHUNK_CELLS: usize = 1024;
/// ... and at least (fewer cells are one chunk): a small selection is still split into
/// `SLICE_PARALLEL_CHUNKS` chunks, which the caller's threads read at the same time.
const SLICE_MIN_CHUNK_CELLS: usize = 16;
/// Chunks a selection of up to `SLICE_PARALLEL_CHUNKS * SLICE_CHUNK_CELLS` cells is split into.
pub const SLICE_PARALLEL_CHUNKS: usize = 4;

/// A dataset opened once per process and shared between queries, with its name columns
/// loaded on first use.
pub struct SharedDataset {
    dataset: Dataset,
    cell_names: OnceLock<StringArray>,
    gene_names: OnceLock<StringArray>,
}

impl SharedDataset {
    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// `cell_id` of every cell, indexed by cell_integer_id.
    pub fn cell_names(&self) -> Result<&StringArray> {
        names(
            &self.cell_names,
            self.dataset.cells_table(),
            CELLS,
            self.dataset.shape().0,
        )
    }

    /// `gene_id` of every gene, indexed by gene_integer_id.
    pub fn gene_names(&self) -> Result<&StringArray> {
        names(
            &self.gene_names,
            self.dataset.genes_table(),
            GENES,
            self.dataset.shape().1,
        )
    }
}

fn names<'a>(
    cell: &'a OnceLock<StringArray>,
    table: &Table,
    axis: AxisColumns,
    n: usize,
) -> Result<&'a StringArray> {
    if let Some(names) = cell.get() {
        return Ok(names);
    }
    let names = read_names(table, axis, n)?;
    Ok(cell.get_or_init(|| names))
}

/// The name column of an axis table (`cell_id` / `gene_id`), indexed by integer id.
pub(crate) fn read_names(table: &Table, axis: AxisColumns, n: usize) -> Result<StringArray> {
    let batch = block_on(axis::read_sorted(table, axis, &[axis.name], n))?;
    to_strings(batch.column(0), &format!("{}.{}", table.role(), axis.name))
}

/// Identity of a local dataset's `config.json`: modified time, size and inode. Every writer
/// replaces the file (a new inode) or rewrites it, so a changed config changes this.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConfigStamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

fn config_stamp(path: &str) -> Option<ConfigStamp> {
    let meta = std::fs::metadata(Path::new(path).join("config.json")).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(ConfigStamp {
        modified: meta.modified().ok()?,
        len: meta.len(),
        inode,
    })
}

/// Whether the tables an open dataset holds are still the latest versions on storage. Lance
/// writes (an append, an overwrite, a delete) add a version without touching `config.json`;
/// listing the versions is cheap (no data or manifest is read unless something changed).
fn tables_are_latest(ds: &Dataset) -> bool {
    [ds.expression_table(), ds.cells_table(), ds.genes_table()]
        .iter()
        .all(|table| {
            let lance = table.lance();
            matches!(
                block_on(lance.latest_version_id()),
                Ok(latest) if latest == lance.version().version
            )
        })
}

/// Opens `path`, reusing the process's earlier open of the same dataset while it is unchanged:
/// for a local dataset, the same `config.json` and the same latest Lance version of the
/// expression, cells and genes tables; for a remote one, the same `config.json` bytes, when it
/// pins the tables' versions (otherwise it is opened afresh each time).
pub fn open_shared(path: &str) -> Result<Arc<SharedDataset>> {
    open_shared_with(path, HashMap::new())
}

/// [`open_shared`] with object-store options (endpoint, region, credentials) for a remote
/// dataset; local datasets ignore them.
pub fn open_shared_with(
    path: &str,
    storage_options: HashMap<String, String>,
) -> Result<Arc<SharedDataset>> {
    type Cache = Mutex<HashMap<String, (Stamp, Arc<SharedDataset>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut options: Vec<_> = storage_options.iter().collect();
    options.sort();
    let key = format!("{path}\n{options:?}");
    // Taken before opening: a write racing with the open leaves a stamp older than what was
    // opened, so the next call reopens rather than keeping stale tables.
    let stamp = stamp(path, &storage_options);
    if let Some(stamp) = &stamp {
        let cached = lock(cache).get(&key).cloned();
        if let Some((cached_stamp, ds)) = cached {
            if cached_stamp == *stamp && stamp.still_describes(ds.dataset()) {
                return Ok(ds);
            }
        }
    }
    let shared = Arc::new(SharedDataset {
        dataset: Dataset::open_with_options(path, storage_options)?,
        cell_names: OnceLock::new(),
        gene_names: OnceLock::new(),
    });
    if let Some(stamp) = stamp {
        lock(cache).insert(key, (stamp, shared.clone()));
    }
    Ok(shared)
}

/// What identifies the state a dataset was opened in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stamp {
    /// A local dataset: config.json's file identity.
    Local(ConfigStamp),
    /// A remote one: config.json's bytes (one request, instead of the seven of an open).
    Remote(Vec<u8>),
}

impl Stamp {
    /// Whether an open made under an equal stamp still shows the dataset as it is: a local
    /// dataset's tables may gain versions without config.json changing; a remote dataset's
    /// config.json fixes its tables when it pins their versions (every writer of ours does).
    fn still_describes(&self, ds: &Dataset) -> bool {
        match self {
            Self::Local(_) => tables_are_latest(ds),
            Self::Remote(_) => ["expression", "cells", "genes"]
                .iter()
                .all(|role| ds.config().table_version(role).is_some()),
        }
    }
}

fn stamp(path: &str, storage_options: &HashMap<String, String>) -> Option<Stamp> {
    let location = Location::parse(path, storage_options.clone()).ok()?;
    if location.is_local() {
        return config_stamp(path).map(Stamp::Local);
    }
    block_on(location.read_optional("config.json"))
        .ok()
        .flatten()
        .map(Stamp::Remote)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which cells and genes a query selects: selectors, refined by metadata predicates.
#[derive(Debug, Clone)]
pub struct Selection {
    pub cells: Selector,
    pub genes: Selector,
    /// Lance SQL over the cells table (obs columns).
    pub cell_filter: Option<String>,
    /// Lance SQL over the genes table (var columns).
    pub gene_filter: Option<String>,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            cells: Selector::All,
            genes: Selector::All,
            cell_filter: None,
            gene_filter: None,
        }
    }
}

/// The integer ids of the rows of an axis table that satisfy `filter`.
fn ids_matching(table: &Table, axis: AxisColumns, filter: &str) -> Result<HashSet<u32>> {
    let batches = block_on(table.filtered(&[axis.integer_id], filter)).map_err(|e| {
        if e.kind() == ErrorKind::Storage {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid filter {filter:?} on table '{}': {e}", table.role()),
            )
        } else {
            e
        }
    })?;
    let mut ids = Vec::new();
    for batch in &batches {
        extend_ids(
            &mut ids,
            batch.column(0),
            &format!("{}.{}", table.role(), axis.integer_id),
        )?;
    }
    Ok(ids.into_iter().collect())
}

/// `resolved` narrowed to the ids that satisfy `filter` (kept in selector order).
fn refine(
    resolved: Resolved,
    table: &Table,
    axis: AxisColumns,
    filter: Option<&str>,
) -> Result<Resolved> {
    let Some(filter) = filter else {
        return Ok(resolved);
    };
    let matching = ids_matching(table, axis, filter)?;
    Ok(match resolved {
        Resolved::All(_) => {
            let mut ids: Vec<u32> = matching.into_iter().collect();
            ids.sort_unstable();
            Resolved::Ids(ids)
        }
        Resolved::Ids(ids) => {
            Resolved::Ids(ids.into_iter().filter(|i| matching.contains(i)).collect())
        }
    })
}

impl Selection {
    /// The selected cells, in output order.
    pub fn resolve_cells(&self, ds: &Dataset) -> Result<Resolved> {
        let resolved = ds.resolve_cells(&self.cells)?;
        refine(
            resolved,
            ds.cells_table(),
            CELLS,
            self.cell_filter.as_deref(),
        )
    }

    /// The selected genes, in output order.
    pub fn resolve_genes(&self, ds: &Dataset) -> Result<Resolved> {
        let resolved = ds.resolve_genes(&self.genes)?;
        refine(
            resolved,
            ds.genes_table(),
            GENES,
            self.gene_filter.as_deref(),
        )
    }
}

/// Rows of a slice: row `k` is `(cell_integer_id[k], gene_integer_id[k], value[k])`.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRows {
    pub cell_integer_id: Vec<u32>,
    pub gene_integer_id: Vec<u32>,
    pub value: Values,
}

impl LongRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.cell_integer_id.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.cell_integer_id.is_empty()
    }

    /// Splits off rows `at..`, keeping `..at` in `self`.
    fn split_off(&mut self, at: usize) -> LongRows {
        LongRows {
            cell_integer_id: self.cell_integer_id.split_off(at),
            gene_integer_id: self.gene_integer_id.split_off(at),
            value: match &mut self.value {
                Values::F32(v) => Values::F32(v.split_off(at)),
                Values::F64(v) => Values::F64(v.split_off(at)),
            },
        }
    }
}

/// A submatrix (of X or of a layer) streamed as long rows, a chunk of cells at a time; every
/// method may be called from several threads at once.
pub struct SliceScan {
    shared: Arc<SharedDataset>,
    /// Set for gene-only selections of X: one filtered pass over the expression table beats
    /// reading every cell's rows (the cell-major layout's weak spot).
    gene_scan: Option<Scan>,
    genes: Resolved,
    layer: Option<String>,
    /// Whether values come back as f64 (else f32).
    wide_values: bool,
    chunks: Mutex<VecDeque<Vec<u32>>>,
    leftovers: Mutex<Vec<LongRows>>,
}

impl SliceScan {
    /// Resolves the selection (predicates included) and checks `layer`, so that every error
    /// surfaces here rather than while rows are read.
    pub fn new(
        shared: Arc<SharedDataset>,
        selection: &Selection,
        layer: Option<&str>,
    ) -> Result<Self> {
        let ds = shared.dataset();
        let cells = selection.resolve_cells(ds)?;
        let genes = selection.resolve_genes(ds)?;
        let cell_ids: Vec<u32> = (0..cells.len()).map(|i| cells.id(i)).collect();
        let chunk_cells = cell_ids
            .len()
            .div_ceil(SLICE_PARALLEL_CHUNKS)
            .clamp(SLICE_MIN_CHUNK_CELLS, SLICE_CHUNK_CELLS);
        let chunks = cell_ids.chunks(chunk_cells).map(<[u32]>::to_vec).collect();
        // An empty read checks the layer name and tells the value type.
        let probe = read_chunk(ds, layer, &[], &genes)?;
        let wide_values = matches!(probe.data, Values::F64(_));
        // Few genes over many cells: the gene-major companion, when fresh, reads just those
        // genes' rows; they are read here, once, and handed out as leftovers.
        if layer.is_none() && ds.layout_for(&cells, &genes)? == Layout::GeneMajor {
            let csr = ds.submatrix_in(&cells, &genes, Layout::GeneMajor)?;
            return Ok(Self {
                gene_scan: None,
                wide_values,
                leftovers: Mutex::new(vec![long_rows(&csr, &cell_ids, &genes)]),
                shared,
                genes,
                layer: None,
                chunks: Mutex::new(VecDeque::new()),
            });
        }
        let gene_scan = match (&cells, &genes, layer) {
            (Resolved::All(_), Resolved::Ids(ids), None) if is_small_unique(ids) => {
                let list: Vec<String> = ids.iter().map(u32::to_string).collect();
                let filter = format!("{GENE_ID} IN ({})", list.join(", "));
                let table = table_of(ds, "expression")?;
                Some(Scan::new(
                    &table,
                    &[CELL_ID, GENE_ID, "value"],
                    Some(&filter),
                )?)
            }
            _ => None,
        };
        Ok(Self {
            gene_scan,
            wide_values,
            shared,
            genes,
            layer: layer.map(str::to_string),
            chunks: Mutex::new(chunks),
            leftovers: Mutex::new(Vec::new()),
        })
    }

    /// Whether values are f64 (stored as 64-bit) rather than f32.
    pub fn values_are_f64(&self) -> bool {
        self.wide_values
    }

    /// The dataset.
    pub fn shared(&self) -> &Arc<SharedDataset> {
        &self.shared
    }

    /// The next rows (at most `max_rows`, at least one), or `None` when nothing is left for
    /// this thread.
    pub fn next_rows(&self, max_rows: usize) -> Result<Option<LongRows>> {
        let max_rows = max_rows.max(1);
        loop {
            if let Some(scan) = &self.gene_scan {
                return scan
                    .next_batch(max_rows)?
                    .map(|batch| self.batch_rows(&batch))
                    .transpose();
            }
            let leftover = lock(&self.leftovers).pop();
            let mut rows = match leftover {
                Some(rows) => rows,
                None => {
                    let chunk = lock(&self.chunks).pop_front();
                    let Some(chunk) = chunk else {
                        return Ok(None);
                    };
                    let csr = read_chunk(
                        self.shared.dataset(),
                        self.layer.as_deref(),
                        &chunk,
                        &self.genes,
                    )?;
                    long_rows(&csr, &chunk, &self.genes)
                }
            };
            if rows.is_empty() {
                continue;
            }
            if rows.len() > max_rows {
                let rest = rows.split_off(max_rows);
                lock(&self.leftovers).push(rest);
            }
            return Ok(Some(rows));
        }
    }
}

impl SliceScan {
    /// Long rows of an expression batch (`cell_integer_id`, `gene_integer_id`, `value`).
    fn batch_rows(&self, batch: &RecordBatch) -> Result<LongRows> {
        let (mut cells, mut genes) = (Vec::new(), Vec::new());
        extend_ids(&mut cells, batch.column(0), "expression.cell_integer_id")?;
        extend_ids(&mut genes, batch.column(1), "expression.gene_integer_id")?;
        let mut value = if self.wide_values {
            Values::F64(Vec::new())
        } else {
            Values::F32(Vec::new())
        };
        value.extend(batch.column(2), "expression.value")?;
        Ok(LongRows {
            cell_integer_id: cells,
            gene_integer_id: genes,
            value,
        })
    }
}

/// Gene selections scanned with a pushed-down `IN` list: distinct ids, not too many.
fn is_small_unique(ids: &[u32]) -> bool {
    const MAX_SCANNED_GENES: usize = 1024;
    if ids.is_empty() || ids.len() > MAX_SCANNED_GENES {
        return false;
    }
    let unique: HashSet<u32> = ids.iter().copied().collect();
    unique.len() == ids.len()
}

fn read_chunk(
    ds: &Dataset,
    layer: Option<&str>,
    cells: &[u32],
    genes: &Resolved,
) -> Result<crate::Csr> {
    let cells = Resolved::Ids(cells.to_vec());
    match layer {
        None => ds.submatrix_resolved(&cells, genes),
        Some(name) => {
            let cells = Selector::Ids(cells_as_i64(&cells));
            let genes = match genes {
                Resolved::All(_) => Selector::All,
                Resolved::Ids(ids) => Selector::Ids(ids.iter().map(|&g| i64::from(g)).collect()),
            };
            ds.layer_submatrix(name, &cells, &genes)
        }
    }
}

fn cells_as_i64(cells: &Resolved) -> Vec<i64> {
    (0..cells.len()).map(|i| i64::from(cells.id(i))).collect()
}

/// Long rows of a CSR whose row `i` is cell `cells[i]` and column `j` is gene `genes.id(j)`.
fn long_rows(csr: &crate::Csr, cells: &[u32], genes: &Resolved) -> LongRows {
    let mut cell_ids = Vec::with_capacity(csr.nnz());
    for (i, w) in csr.indptr.windows(2).enumerate() {
        cell_ids.extend(std::iter::repeat_n(cells[i], (w[1] - w[0]) as usize));
    }
    let gene_ids = csr.indices.iter().map(|&j| genes.id(j as usize)).collect();
    LongRows {
        cell_integer_id: cell_ids,
        gene_integer_id: gene_ids,
        value: csr.data.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_rows_follow_csr_rows_and_gene_selection() {
        let csr = crate::Csr {
            n_rows: 2,
            n_cols: 2,
            indptr: vec![0, 1, 3],
            indices: vec![1, 0, 1],
            data: Values::F32(vec![1.0, 2.0, 3.0]),
        };
        let rows = long_rows(&csr, &[7, 3], &Resolved::Ids(vec![10, 20]));
        assert_eq!(rows.cell_integer_id, vec![7, 3, 3]);
        assert_eq!(rows.gene_integer_id, vec![20, 10, 20]);
        let mut rows = rows;
        let rest = rows.split_off(2);
        assert_eq!(rows.len(), 2);
        assert_eq!(rest.cell_integer_id, vec![3]);
        assert_eq!(rest.value, Values::F32(vec![3.0]));
    }
}
