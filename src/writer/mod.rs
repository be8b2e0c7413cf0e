//! The SLAF writer: streams chunks of cells (CSR) with their annotations into a new dataset, or
//! appends them to an existing one as new Lance versions.
//!
//! Safety: a new dataset is written into a hidden sibling directory and renamed onto the
//! target only after `config.json`, written last, is in place. An append holds the dataset's
//! writer lock (concurrent appends are serialized), commits new Lance versions of the tables
//! in place and then replaces `config.json` atomically, recording the table versions it
//! describes; readers open exactly those versions. Either way a failed, dropped or killed
//! write leaves what readers see as it was.
//!
//! ```no_run
//! use std::sync::Arc;
//! use arrow_array::{Float32Array, Int32Array, Int64Array};
//! use slaf::writer::{CsrChunk, NewDataset, ValueType, Writer};
//! # fn batch() -> arrow_array::RecordBatch { unimplemented!() }
//! let mut w = Writer::create("out.slaf", NewDataset {
//!     n_cells: 2, n_genes: 3, value_type: ValueType::UInt16, layers: vec![],
//!     overwrite: false, rows_per_fragment: None, storage_options: Default::default(),
//! })?;
//! w.write_genes(&batch())?;            // gene_id + var columns
//! w.begin_source("in.h5ad", 2);
//! let x = CsrChunk::new(
//!     Arc::new(Int64Array::from(vec![0, 1, 2])),   // indptr
//!     Arc::new(Int32Array::from(vec![0, 2])),      // gene indices
//!     Arc::new(Float32Array::from(vec![5.0, 1.0])), // values (stored as uint16)
//! )?;
//! w.write_cells(&x, &batch(), &[])?;  // cell_id + obs columns + obsm
//! w.finish()?;
//! # Ok::<(), slaf::Error>(())
//! ```

mod chunk;
mod config_out;
mod expression;
mod leftovers;
mod lock;
mod orphans;
mod replace;
mod sink;
mod staging;
mod tables;
pub(crate) mod update;
mod upload;
mod versions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::compute::concat_batches;
use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use serde_json::{json, Map, Value};

pub use chunk::{fits_uint16, CsrChunk};
pub use expression::ValueType;
pub use replace::check_replaceable;
pub(crate) use sink::TableSink;
pub use sink::DEFAULT_ROWS_PER_FRAGMENT;
pub use tables::Coo;
pub(crate) use update::put_columns;
pub use update::{delete_annotation, set_annotation, set_layer, Annotation};

use crate::columns::to_strings;
use crate::config::{Config, TABLE_VERSIONS};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::gene_major;
use crate::location::Location;
use crate::progress::Progress;
use crate::runtime::block_on;
use crate::table::Table;
use expression::{ExpressionBuffer, IdTypes, Stats};
use lock::DatasetLock;
use staging::Staging;
use tables::{align, axis_batch, pairwise_batch, LayerRows};

/// Cells rows buffered before a cells fragment is written.
const CELL_ROWS_PER_WRITE: usize = 1 << 20;
/// Expression rows handed to the table's writer at a time (8 MB with the usual id and value
/// types): the writer encodes them while the next batch fills.
const BATCH_ROWS: usize = 1 << 20;

/// What a new dataset will hold.
#[derive(Debug, Clone)]
pub struct NewDataset {
    /// Total cells expected (picks the id column types; more may be written if they fit).
    pub n_cells: u64,
    pub n_genes: usize,
    /// Decided by the caller from *all* values: uint16 only if every value is an integer
    /// in `0..=65535`. Chunks are checked against it.
    pub value_type: ValueType,
    /// Layer names (columns of `layers.lance`).
    pub layers: Vec<String>,
    /// Replace an existing dataset at the target.
    pub overwrite: bool,
    /// Rows per expression/layers fragment (default [`DEFAULT_ROWS_PER_FRAGMENT`]).
    pub rows_per_fragment: Option<usize>,
    /// Object-store options (credentials, endpoint) for an `s3://` target.
    pub storage_options: std::collections::HashMap<String, String>,
}

/// Which pairwise table: obsp (`cellsxcells`) or varp (`genesxgenes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairwise {
    Obsp,
    Varp,
}

/// Where a write goes.
enum Destination {
    /// A new dataset, staged in a hidden sibling folder.
    New(Staging),
    /// An existing dataset (symlinks resolved), updated in place under its writer lock.
    Existing(InPlace),
}

impl Destination {
    fn dir(&self) -> &Path {
        match self {
            Self::New(staging) => staging.dir(),
            Self::Existing(in_place) => in_place.lock.path(),
        }
    }

    /// The dataset as users name it (not the staging folder).
    fn shown(&self) -> String {
        match self {
            Self::New(staging) => staging.target().display().to_string(),
            Self::Existing(in_place) => in_place.lock.path().display().to_string(),
        }
    }
}

/// An append in progress. Abandoned (dropped before its commit), it removes the data files
/// it wrote into the tables, which no version references, before the lock is released.
struct InPlace {
    lock: DatasetLock,
    tables: Vec<PathBuf>,
    committed: bool,
}

impl Drop for InPlace {
    fn drop(&mut self) {
        if !self.committed {
            for table in &self.tables {
                // Best effort: what is left is removed by the next append (see `versions`).
                let _ = orphans::remove(table);
            }
        }
    }
}

/// A dataset being written. Dropping it without [`Writer::finish`] discards the work.
pub struct Writer {
    previous: Option<Map<String, Value>>,
    /// Lance versions of the existing tables (an append), as config.json records them.
    versions: BTreeMap<String, u64>,
    /// What was found and done before writing (leftovers removed, versions rolled back).
    notes: Vec<String>,
    table_paths: BTreeMap<&'static str, String>,
    n_genes: usize,
    gene_ids: Option<Vec<String>>,
    value_type: ValueType,
    rows_per_fragment: usize,
    n_cells: u64,
    nnz: u64,
    expression: ExpressionBuffer,
    /// Expression rows already sent to the fragment being written.
    fragment_rows: usize,
    expression_sink: TableSink,
    cells_sink: TableSink,
    cells_pending: Vec<RecordBatch>,
    cells_pending_rows: usize,
    genes_sink: TableSink,
    layers: LayerRows,
    layers_sink: TableSink,
    obsp_sink: TableSink,
    varp_sink: TableSink,
    obsp_keys: Vec<String>,
    varp_keys: Vec<String>,
    uns: Option<String>,
    sources: Vec<Value>,
    source_offset: u64,
    /// A write failed: the buffered rows are not trustworthy, so nothing more is written.
    failed: bool,
    /// Build the gene-major table and axis statistics when the tables are committed.
    gene_index: bool,
    /// Told of the gene-major build's rows at commit.
    index_progress: Option<Progress>,
    /// Declared last so that it is dropped last: the sinks' background writes finish before
    /// an abandoned staging directory is removed or the writer lock is released.
    destination: Destination,
}

fn existing_schema(table: &Table) -> SchemaRef {
    table.schema().clone()
}

impl Writer {
    /// Starts a new dataset at `path` (a local directory that must not exist unless
    /// `spec.overwrite`).
    pub fn create(path: &str, spec: NewDataset) -> Result<Self> {
        if spec
            .layers
            .iter()
            .any(|l| l == "cell_integer_id" || l == "gene_integer_id")
        {
            return Err(Error::invalid_argument(
                "a layer cannot be named like an id column",
            ));
        }
        let staging = Staging::create(path, spec.overwrite, spec.storage_options.clone())?;
        let notes = leftovers::clean(staging.target());
        let dir = staging.dir().to_path_buf();
        let ids = IdTypes::for_shape(spec.n_cells, spec.n_genes);
        let mut table_paths = BTreeMap::new();
        for (role, file) in [
            ("expression", "expression.lance"),
            ("cells", "cells.lance"),
            ("genes", "genes.lance"),
            ("layers", "layers.lance"),
            ("cellsxcells", "cellsxcells.lance"),
            ("genesxgenes", "genesxgenes.lance"),
        ] {
            table_paths.insert(role, file.to_string());
        }
        let at = |role: &str| dir.join(&table_paths[role]);
        Ok(Self {
            expression_sink: TableSink::new("expression", &at("expression"), None),
            cells_sink: TableSink::new("cells", &at("cells"), None),
            genes_sink: TableSink::new("genes", &at("genes"), None),
            layers_sink: TableSink::new("layers", &at("layers"), None),
            obsp_sink: TableSink::new("cellsxcells", &at("cellsxcells"), None),
            varp_sink: TableSink::new("genesxgenes", &at("genesxgenes"), None),
            destination: Destination::New(staging),
            previous: None,
            versions: BTreeMap::new(),
            notes,
            table_paths,
            n_genes: spec.n_genes,
            gene_ids: None,
            value_type: spec.value_type,
            rows_per_fragment: spec
                .rows_per_fragment
                .unwrap_or(DEFAULT_ROWS_PER_FRAGMENT)
                .max(1),
            n_cells: 0,
            nnz: 0,
            expression: ExpressionBuffer::new(ids.clone(), spec.value_type, Stats::default())?,
            fragment_rows: 0,
            cells_pending: Vec::new(),
            cells_pending_rows: 0,
            layers: LayerRows::new(spec.layers, ids),
            obsp_keys: Vec::new(),
            varp_keys: Vec::new(),
            uns: None,
            sources: Vec::new(),
            source_offset: 0,
            failed: false,
            gene_index: true,
            index_progress: None,
        })
    }

    /// Opens the dataset at `path` (a local directory; a symlink is followed) to append cells
    /// to it as new Lance versions. Waits while another writer holds the dataset.
    pub fn append(path: &str) -> Result<Self> {
        let Held {
            root: dir,
            lock,
            config: _,
            versions,
            notes,
        } = Held::acquire(path)?;
        let ds = Dataset::open(&dir.to_string_lossy())?;
        let config = ds.config();
        let previous = config.document.clone();
        let (n_cells, n_genes) = ds.shape();
        let expression_schema = existing_schema(ds.expression_table());
        let field = |name: &str| -> Result<DataType> {
            expression_schema
                .field_with_name(name)
                .map(|f| f.data_type().clone())
                .map_err(|e| Error::invalid_schema(format!("expression table: {e}")))
        };
        let ids = IdTypes {
            cell: field("cell_integer_id")?,
            gene: field("gene_integer_id")?,
        };
        let value_type = match field("value")? {
            DataType::UInt16 => ValueType::UInt16,
            DataType::Float32 => ValueType::Float32,
            other => {
                return Err(Error::invalid_schema(format!(
                    "cannot append to {path}: its expression values are {other}, \
                     the writer appends to uint16 or float32 values only"
                )))
            }
        };
        let nnz = ds.nnz();
        let stats = recorded_stats(&previous, nnz).map_or_else(|| scan_stats(&ds), Ok)?;
        let var = ds.var()?;
        let gene_ids = to_strings(var.column(0), "genes.gene_id")?
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect();
        let mut table_paths: BTreeMap<&'static str, String> = BTreeMap::new();
        for role in [
            "expression",
            "cells",
            "genes",
            "layers",
            "cellsxcells",
            "genesxgenes",
        ] {
            let default = format!("{role}.lance");
            table_paths.insert(role, config.tables.get(role).cloned().unwrap_or(default));
        }
        let location = Location::parse(&dir.to_string_lossy(), Default::default())?;
        let open_optional = |role: &'static str| -> Result<Option<Table>> {
            if !config.tables.contains_key(role) {
                return Ok(None);
            }
            let version = config.table_version(role);
            block_on(Table::open(&location, role, &table_paths[role], version)).map(Some)
        };
        let layers_table = open_optional("layers")?;
        let obsp_table = open_optional("cellsxcells")?;
        let varp_table = open_optional("genesxgenes")?;
        let layer_names: Vec<String> = layers_table
            .as_ref()
            .map(|t| {
                t.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|n| n != "cell_integer_id" && n != "gene_integer_id")
                    .collect()
            })
            .unwrap_or_default();
        let at = |role: &str| dir.join(table_paths[role].trim_start_matches("./"));
        let sources = match previous
            .get("multi_file")
            .and_then(|m| m.get("source_files"))
        {
            Some(Value::Array(list)) => list.clone(),
            _ => vec![json!({
                "file_path": dir.to_string_lossy(),
                "file_name": dir.file_name().map(|n| n.to_string_lossy().into_owned()),
                "n_cells": n_cells,
                "cell_offset": 0,
            })],
        };
        Ok(Self {
            expression_sink: TableSink::new(
                "expression",
                &at("expression"),
                Some(expression_schema),
            ),
            cells_sink: TableSink::new(
                "cells",
                &at("cells"),
                Some(existing_schema(ds.cells_table())),
            ),
            genes_sink: TableSink::new(
                "genes",
                &at("genes"),
                Some(existing_schema(ds.genes_table())),
            ),
            layers_sink: TableSink::new(
                "layers",
                &at("layers"),
                layers_table.as_ref().map(existing_schema),
            ),
            obsp_sink: TableSink::new(
                "cellsxcells",
                &at("cellsxcells"),
                obsp_table.as_ref().map(existing_schema),
            ),
            varp_sink: TableSink::new(
                "genesxgenes",
                &at("genesxgenes"),
                varp_table.as_ref().map(existing_schema),
            ),
            obsp_keys: ds.obsp_keys(),
            varp_keys: ds.varp_keys(),
            destination: Destination::Existing(InPlace {
                lock,
                tables: config
                    .tables
                    .values()
                    .map(|t| dir.join(t.trim_start_matches("./")))
                    .collect(),
                committed: false,
            }),
            previous: Some(previous),
            versions,
            notes,
            table_paths,
            n_genes,
            gene_ids: Some(gene_ids),
            value_type,
            rows_per_fragment: DEFAULT_ROWS_PER_FRAGMENT,
            n_cells: n_cells as u64,
            nnz,
            expression: ExpressionBuffer::new(ids.clone(), value_type, stats)?,
            fragment_rows: 0,
            cells_pending: Vec::new(),
            cells_pending_rows: 0,
            layers: LayerRows::new(layer_names, ids),
            uns: None,
            sources,
            source_offset: n_cells as u64,
            failed: false,
            gene_index: true,
            index_progress: None,
        })
    }

    /// What was found and done before writing: leftovers of interrupted writes removed (or
    /// kept), table versions rolled back. One line each, for the caller to show.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// `e` naming the user's path rather than a hidden staging folder.
    fn in_user_terms(&self, e: Error) -> Error {
        match &self.destination {
            Destination::New(staging) => staging.in_user_terms(e),
            Destination::Existing(_) => e,
        }
    }

    /// Whether committing also builds the gene-major table and axis statistics (the
    /// default). Without them, an append leaves an earlier build stale (readers fall back).
    pub fn set_gene_index(&mut self, build: bool) {
        self.gene_index = build;
    }

    /// Where the gene-major build at commit reports its rows (see [`Progress`]).
    pub fn set_index_progress(&mut self, progress: Progress) {
        self.index_progress = Some(progress);
    }

    /// The stored value type (chunks must fit it).
    pub fn value_type(&self) -> ValueType {
        self.value_type
    }

    /// Layer names the dataset has.
    pub fn layer_names(&self) -> &[String] {
        &self.layers.names
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Cells written so far (including an appended-to dataset's own).
    pub fn n_cells(&self) -> u64 {
        self.n_cells
    }

    /// Writes the genes table: `gene_id` (strings, in order), var columns, varm columns.
    pub fn write_genes(&mut self, var: &RecordBatch) -> Result<()> {
        let result = self.add_genes(var);
        result.map_err(|e| self.in_user_terms(e))
    }

    fn add_genes(&mut self, var: &RecordBatch) -> Result<()> {
        if self.gene_ids.is_some() {
            return Err(Error::invalid_argument(
                "the genes table is already written",
            ));
        }
        if var.num_rows() != self.n_genes {
            return Err(Error::invalid_argument(format!(
                "var has {} rows but the dataset has {} genes",
                var.num_rows(),
                self.n_genes
            )));
        }
        let batch = axis_batch(var, "gene_id", "gene_integer_id", 0, None)?;
        let names = to_strings(batch.column(0), "var.gene_id")?;
        self.gene_ids = Some(
            names
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect(),
        );
        self.genes_sink.write_fragment(batch)
    }

    /// Checks that `source` has the dataset's genes in the same order.
    pub fn check_genes(&self, gene_ids: &[String], source: &str) -> Result<()> {
        let Some(ours) = &self.gene_ids else {
            return Err(Error::invalid_argument(
                "the genes table is not written yet",
            ));
        };
        if ours.len() != gene_ids.len() {
            return Err(Error::invalid_argument(format!(
                "{source} has {} genes but the dataset has {}; all inputs need the same genes \
                 in the same order",
                gene_ids.len(),
                ours.len()
            )));
        }
        if let Some(i) = (0..ours.len()).find(|&i| ours[i] != gene_ids[i]) {
            return Err(Error::invalid_argument(format!(
                "gene order of {source} differs from the dataset: gene {i} is {:?} there but \
                 {:?} in the dataset; all inputs need the same genes in the same order",
                gene_ids[i], ours[i]
            )));
        }
        Ok(())
    }

    /// Starts the cells of one input file (recorded under `multi_file` in config.json).
    pub fn begin_source(&mut self, file_path: &str, n_cells: u64) {
        self.source_offset = self.n_cells;
        let name = Path::new(file_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        self.sources.push(json!({
            "file_path": file_path,
            "file_name": name,
            "n_cells": n_cells,
            "cell_offset": self.n_cells,
        }));
    }

    /// Writes the next cells: X rows, their annotations (`cell_id`, obs columns, obsm columns)
    /// and the same rows of any layers. After an error the writer refuses further writes
    /// (part of the chunk may be buffered): drop it to discard the dataset.
    pub fn write_cells(
        &mut self,
        x: &CsrChunk,
        obs: &RecordBatch,
        layers: &[(String, CsrChunk)],
    ) -> Result<()> {
        if self.failed {
            return Err(Error::invalid_argument(
                "an earlier write failed; this dataset cannot be completed",
            ));
        }
        let result = self.add_cells(x, obs, layers);
        self.failed = result.is_err();
        result.map_err(|e| self.in_user_terms(e))
    }

    fn add_cells(
        &mut self,
        x: &CsrChunk,
        obs: &RecordBatch,
        layers: &[(String, CsrChunk)],
    ) -> Result<()> {
        if self.gene_ids.is_none() {
            return Err(Error::invalid_argument("write the genes before the cells"));
        }
        let n = obs.num_rows();
        let n_genes = self.n_genes as u64;
        x.validate(n, "X chunk")?;
        let mut layer_chunks = Vec::with_capacity(layers.len());
        for (name, chunk) in layers {
            let index = self
                .layers
                .names
                .iter()
                .position(|l| l == name)
                .ok_or_else(|| {
                    Error::unknown_name(format!(
                        "layer {name:?} is not one of the dataset's layers ({})",
                        self.layers.names.join(", ")
                    ))
                })?;
            chunk.validate(n, &format!("layer {name:?} chunk"))?;
            layer_chunks.push((index, chunk));
        }
        // Rows go in up to the next batch or fragment boundary (whole cells) at a time, so
        // the buffer stays at one batch and fragments hold whole cells.
        let mut starts = Vec::with_capacity(n);
        let mut row = 0;
        while row < n {
            let buffered = self.expression.len();
            let room = (self.rows_per_fragment)
                .saturating_sub(self.fragment_rows + buffered)
                .min(BATCH_ROWS.saturating_sub(buffered));
            let mut end = row;
            let mut taken = 0i64;
            while end < n && (end == row || taken < room as i64) {
                taken += x.indptr[end + 1] - x.indptr[end];
                end += 1;
            }
            if buffered == 0 {
                // One allocation per batch: rows stop at the first cell that fills the
                // batch, and a cell has at most `n_genes` entries.
                self.expression
                    .reserve(BATCH_ROWS.min(self.rows_per_fragment) + self.n_genes);
            }
            for c in self.expression.add(x, row..end, self.n_cells, n_genes)? {
                starts.push(self.nnz as i64);
                self.nnz += c;
            }
            self.send_expression(false)?;
            row = end;
        }
        let cells = axis_batch(
            obs,
            "cell_id",
            "cell_integer_id",
            self.n_cells,
            Some(&starts),
        )?;
        let cells = match self
            .cells_sink
            .schema()
            .or(self.cells_pending.first().map(|b| b.schema_ref()))
        {
            Some(schema) => align(&cells, &schema.clone(), "obs")?,
            None => cells,
        };
        self.cells_pending_rows += cells.num_rows();
        self.cells_pending.push(cells);
        if !layer_chunks.is_empty() {
            self.layers.add(&layer_chunks, n, self.n_cells, n_genes)?;
        }
        self.n_cells += n as u64;
        self.flush(false)
    }

    /// Sends the buffered expression rows to the table once they fill a batch or the
    /// fragment (`all`: whatever is buffered), and ends the fragment once it is full.
    fn send_expression(&mut self, all: bool) -> Result<()> {
        let buffered = self.expression.len();
        let fragment_full = self.fragment_rows + buffered >= self.rows_per_fragment;
        if buffered >= BATCH_ROWS || fragment_full || (all && buffered > 0) {
            let batch = self.expression.take_batch()?;
            let batch = match self.expression_sink.schema() {
                Some(schema) => align(&batch, &schema.clone(), "expression")?,
                None => batch,
            };
            self.expression_sink.write(batch)?;
            self.fragment_rows += buffered;
        }
        if fragment_full {
            self.expression_sink.end_fragment()?;
            self.fragment_rows = 0;
        }
        Ok(())
    }

    fn flush(&mut self, all: bool) -> Result<()> {
        if all {
            self.send_expression(true)?;
        }
        if self.layers.len() >= self.rows_per_fragment || (all && self.layers.len() > 0) {
            let batch = self.layers.take_batch()?;
            let batch = match self.layers_sink.schema() {
                Some(schema) => align(&batch, &schema.clone(), "layers")?,
                None => batch,
            };
            self.layers_sink.write_fragment(batch)?;
        }
        if self.cells_pending_rows >= CELL_ROWS_PER_WRITE || (all && self.cells_pending_rows > 0) {
            let schema = self.cells_pending[0].schema();
            let batch = concat_batches(&schema, &self.cells_pending)
                .map_err(|e| Error::storage("collecting cell rows", e))?;
            self.cells_pending.clear();
            self.cells_pending_rows = 0;
            self.cells_sink.write_fragment(batch)?;
        }
        Ok(())
    }

    /// Writes obsp/varp keys (COO). obsp ids are positions within the current input file.
    pub fn write_pairwise(&mut self, which: Pairwise, keys: Vec<(String, Coo)>) -> Result<()> {
        let result = self.add_pairwise(which, keys);
        result.map_err(|e| self.in_user_terms(e))
    }

    fn add_pairwise(&mut self, which: Pairwise, keys: Vec<(String, Coo)>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let (id, offset, limit, sink, known) = match which {
            Pairwise::Obsp => (
                "cell_integer_id",
                self.source_offset,
                None,
                &mut self.obsp_sink,
                &mut self.obsp_keys,
            ),
            Pairwise::Varp => (
                "gene_integer_id",
                0,
                Some(self.n_genes as u64),
                &mut self.varp_sink,
                &mut self.varp_keys,
            ),
        };
        for (name, coo) in &keys {
            if let Some(limit) = limit {
                if coo.rows.iter().chain(&coo.cols).any(|&i| i >= limit) {
                    return Err(Error::invalid_argument(format!(
                        "varp {name:?} refers to genes beyond {limit}"
                    )));
                }
            }
            if !known.contains(name) {
                known.push(name.clone());
            }
        }
        let batch = pairwise_batch(id, &keys, offset)?;
        let batch = match sink.schema() {
            Some(schema) => align(&batch, &schema.clone(), "pairwise table")?,
            None => batch,
        };
        sink.write_fragment(batch)
    }

    /// Sets `uns`, given as JSON text, written to `uns.json` as given (so floats keep every
    /// digit the caller printed).
    pub fn set_uns_json(&mut self, text: &str) -> Result<()> {
        serde_json::from_str::<Value>(text)
            .map_err(|e| Error::invalid_argument(format!("uns is not valid JSON: {e}")))?;
        self.uns = Some(text.to_string());
        Ok(())
    }

    /// Flushes everything and commits: the tables' new versions, then `config.json` naming
    /// them (a new dataset is then moved into place). Until that last step nothing is visible
    /// to readers; once `Ok` is returned the write is complete.
    pub fn finish(mut self) -> Result<()> {
        let config = match self.commit_tables() {
            Ok(config) => config,
            Err(e) => return Err(self.in_user_terms(e)),
        };
        let Self { destination, .. } = self;
        match destination {
            Destination::New(stage) => {
                staging::write_file(&stage.dir().join("config.json"), &config)
                    .map_err(|e| stage.in_user_terms(e))?;
                stage.publish()
            }
            // The commit point of an append: one atomic rename, under the writer lock.
            Destination::Existing(mut in_place) => {
                staging::write_file(&in_place.lock.path().join("config.json"), &config)?;
                in_place.committed = true;
                Ok(())
            }
        }
    }

    /// Flushes and commits every table; returns the text of the config that describes them.
    fn commit_tables(&mut self) -> Result<Vec<u8>> {
        if self.failed {
            return Err(Error::invalid_argument(
                "an earlier write failed; this dataset cannot be completed",
            ));
        }
        if self.gene_ids.is_none() {
            return Err(Error::invalid_argument("the genes table was never written"));
        }
        self.flush(true)?;
        let mut versions = self.versions.clone();
        let mut committed = |role: &str, version: Option<u64>| {
            if let Some(v) = version {
                versions.insert(role.to_string(), v);
            }
        };
        let expression_schema = self.expression.schema();
        committed(
            "expression",
            self.expression_sink
                .finish(|| RecordBatch::new_empty(expression_schema))?,
        );
        let cells_schema = self.cells_sink.schema().cloned();
        if let Some(schema) = &cells_schema {
            committed(
                "cells",
                self.cells_sink
                    .finish(|| RecordBatch::new_empty(schema.clone()))?,
            );
        } else {
            // No cells at all: an empty cells table with the id columns.
            let names: arrow_array::ArrayRef =
                std::sync::Arc::new(StringArray::from(Vec::<String>::new()));
            let empty = RecordBatch::try_from_iter(vec![("cell_id", names)])
                .map_err(|e| Error::storage("building empty cells", e))?;
            let batch = axis_batch(&empty, "cell_id", "cell_integer_id", 0, Some(&[]))?;
            committed("cells", self.cells_sink.finish(|| batch)?);
        }
        let empty_genes = |s: &SchemaRef| RecordBatch::new_empty(s.clone());
        let genes_schema = self.genes_sink.schema().cloned().expect("genes written");
        committed(
            "genes",
            self.genes_sink.finish(|| empty_genes(&genes_schema))?,
        );
        let has_layers = !self.layers.names.is_empty();
        if has_layers {
            let schema = self.layers.schema();
            committed(
                "layers",
                self.layers_sink.finish(|| RecordBatch::new_empty(schema))?,
            );
        }
        for (role, sink) in [
            ("cellsxcells", &mut self.obsp_sink),
            ("genesxgenes", &mut self.varp_sink),
        ] {
            if sink.exists() {
                let schema = sink.schema().cloned().expect("written");
                committed(role, sink.finish(|| RecordBatch::new_empty(schema))?);
            }
        }
        let dir = self.destination.dir().to_path_buf();
        if let Some(uns) = &self.uns {
            staging::write_file(&dir.join("uns.json"), uns.as_bytes())?;
        }
        let mut tables = vec![
            ("expression", self.table_paths["expression"].clone()),
            ("cells", self.table_paths["cells"].clone()),
            ("genes", self.table_paths["genes"].clone()),
        ];
        if has_layers {
            tables.push(("layers", self.table_paths["layers"].clone()));
        }
        if self.obsp_sink.exists() {
            tables.push(("cellsxcells", self.table_paths["cellsxcells"].clone()));
        }
        if self.varp_sink.exists() {
            tables.push(("genesxgenes", self.table_paths["genesxgenes"].clone()));
        }
        let embeddings = |schema: Option<&SchemaRef>| -> Vec<(String, usize)> {
            schema
                .map(|s| {
                    s.fields()
                        .iter()
                        .filter_map(|f| match f.data_type() {
                            DataType::FixedSizeList(_, d) => Some((f.name().clone(), *d as usize)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let summary = config_out::Summary {
            n_cells: self.n_cells,
            n_genes: self.n_genes,
            nnz: self.nnz,
            stats: self.expression.stats,
            tables,
            layers: self.layers.names.clone(),
            obsm: embeddings(self.cells_sink.schema()),
            varm: embeddings(self.genes_sink.schema()),
            obsp: self.obsp_keys.clone(),
            varp: self.varp_keys.clone(),
            sources: self.sources.clone(),
        };
        let mut config = config_out::build(self.previous.as_ref(), &summary);
        if self.gene_index {
            self.build_gene_major(&dir, &mut config, &mut versions)?;
        }
        // The versions of exactly the tables this config names.
        if let Some(Value::Object(tables)) = config.get("tables") {
            versions.retain(|role, _| tables.contains_key(role));
        }
        config.insert(TABLE_VERSIONS.into(), json!(versions));
        serde_json::to_vec_pretty(&Value::Object(config))
            .map_err(|e| Error::invalid_argument(format!("config is not JSON: {e}")))
    }
}

impl Writer {
    /// Builds the gene-major table and axis statistics over the committed tables, recording
    /// their versions and the marker in `config`.
    fn build_gene_major(
        &self,
        dir: &Path,
        config: &mut Map<String, Value>,
        versions: &mut BTreeMap<String, u64>,
    ) -> Result<()> {
        let mut paths: BTreeMap<String, String> = match config.get("tables") {
            Some(Value::Object(tables)) => tables
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        };
        paths.insert(
            gene_major::TABLE.into(),
            format!("{}.lance", gene_major::TABLE),
        );
        let shown = self.destination.shown();
        let built = gene_major::build(&gene_major::Tables {
            root: dir,
            shown: &shown,
            paths: &paths,
            versions,
            n_cells: self.n_cells as usize,
            n_genes: self.n_genes,
            rows_per_fragment: self.rows_per_fragment,
            progress: self.index_progress.as_ref(),
        })?;
        for (role, version) in built.versions {
            versions.insert(role.to_string(), version);
        }
        if let Some(Value::Object(tables)) = config.get_mut("tables") {
            tables.insert(gene_major::TABLE.into(), json!(paths[gene_major::TABLE]));
        }
        config.insert(gene_major::CONFIG_KEY.into(), built.marker.to_json());
        Ok(())
    }
}

/// The folder of the existing local dataset at `path`, symlinks resolved (so an append through
/// a link updates the dataset it points to).
/// An existing dataset held for a write: its writer lock taken, leftovers of interrupted
/// writes removed, its tables at the versions its config.json describes (later ones rolled
/// back). Appends and annotation changes both start here.
pub(crate) struct Held {
    /// The dataset's folder, symlinks resolved.
    pub root: PathBuf,
    pub lock: DatasetLock,
    /// config.json as read under the lock, `table_versions` set to the pinned versions.
    pub config: Config,
    pub versions: BTreeMap<String, u64>,
    /// What was found and done (leftovers removed, versions rolled back).
    pub notes: Vec<String>,
}

impl Held {
    /// Waits until no other writer holds the dataset at `path` (a local directory), then
    /// holds it.
    pub(crate) fn acquire(path: &str) -> Result<Self> {
        let root = existing_root(path)?;
        let lock = DatasetLock::acquire(&root)?;
        let mut notes = leftovers::clean(&root);
        let origin = format!("{path}/config.json");
        let bytes = std::fs::read(root.join("config.json"))
            .map_err(|e| Error::storage(format!("reading {origin}"), e))?;
        let mut config = Config::parse(&bytes, &origin)?;
        let (versions, rolled_back) = versions::pin(&root, path, &config)?;
        notes.extend(rolled_back);
        config.table_versions = versions.clone();
        Ok(Self {
            root,
            lock,
            config,
            versions,
            notes,
        })
    }
}

fn existing_root(path: &str) -> Result<PathBuf> {
    if path.contains("://") && !path.starts_with("file://") {
        return Err(Error::invalid_argument(format!(
            "cannot change {path}: the writer writes local directories only"
        )));
    }
    let local = Path::new(path.strip_prefix("file://").unwrap_or(path));
    if !local.exists() {
        return Err(Error::not_found(format!(
            "no dataset at {path}: the path does not exist"
        )));
    }
    let root =
        std::fs::canonicalize(local).map_err(|e| Error::storage(format!("resolving {path}"), e))?;
    if !root.join("config.json").is_file() {
        return Err(Error::not_a_dataset(format!(
            "{path} is not a SLAF dataset: it has no config.json"
        )));
    }
    Ok(root)
}

/// Statistics recorded in an existing config, when it has them.
fn recorded_stats(config: &Map<String, Value>, nnz: u64) -> Option<Stats> {
    let meta = config.get("metadata")?;
    let stats = meta.get("expression_stats")?;
    let get = |k: &str| stats.get(k).and_then(Value::as_f64);
    if meta.get("expression_count").and_then(Value::as_u64) != Some(nnz) {
        return None;
    }
    Some(Stats::from_recorded(
        nnz,
        get("mean_value")?,
        get("std_value")?,
        get("min_value")?,
        get("max_value")?,
    ))
}

/// Statistics from the stored values (for datasets whose config does not record them).
fn scan_stats(ds: &Dataset) -> Result<Stats> {
    let batches = block_on(ds.expression_table().scan(&["value"], None))?;
    let mut stats = Stats::default();
    let mut values = crate::columns::Values::for_type(
        ds.expression_table().require_column("value")?,
        "expression.value",
    )?;
    for batch in &batches {
        values.extend(batch.column(0), "expression.value")?;
    }
    match values {
        crate::columns::Values::F32(v) => v.iter().for_each(|&x| stats.add(x as f64)),
        crate::columns::Values::F64(v) => v.iter().for_each(|&x| stats.add(x)),
    }
    Ok(stats)
}
