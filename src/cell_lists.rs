//! The per-cell list view of a dataset (Polars' `scan_slaf(path, "cells_x")`): one row per
//! cell with `cell_integer_id`, its stored gene ids and its values as lists, read a chunk of
//! cells at a time through the cells' row ranges (`cell_start_index`).
//!
//! Tokenizers and per-cell transforms take exactly these lists, so a pipeline never has to
//! regroup the long COO rows of the expression table by cell.
//!
//! ```no_run
//! use std::sync::Arc;
//! use slaf::cell_lists::CellListScan;
//! use slaf::slice::Selection;
//! use slaf::Dataset;
//! let ds = Arc::new(Dataset::open("data/pbmc.slaf")?);
//! let scan = CellListScan::new(ds, &Selection::default(), None, &["cell_integer_id", "values"])?;
//! while let Some(batch) = scan.next_batch(1024)? {
//!     println!("{} cells", batch.num_rows());
//! }
//! # Ok::<(), slaf::Error>(())
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, Float32Array, Float64Array, ListArray, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::columns::Values;
use crate::dataset::Dataset;
use crate::error::{Error, ErrorKind, Result};
use crate::selection::{Resolved, Selector};
use crate::slice::Selection;

/// The columns of the view, in schema order.
pub const CELL_LIST_COLUMNS: [&str; 3] = ["cell_integer_id", "gene_ids", "values"];

/// Cells per chunk read from storage (batches handed out may be smaller).
const CHUNK_CELLS: usize = 1024;

/// One row per selected cell (ascending cell_integer_id) with its stored entries as lists.
pub struct CellListScan {
    dataset: Arc<Dataset>,
    layer: Option<String>,
    schema: SchemaRef,
    /// Positions in [`CELL_LIST_COLUMNS`] of the projected columns, in output order.
    projection: Vec<usize>,
    /// Cells not handed out yet, a chunk per entry.
    chunks: Mutex<VecDeque<Vec<u32>>>,
}

impl CellListScan {
    /// The view of `selection`'s cells (its gene selector and filter must be empty: the view
    /// holds every stored gene of a cell) over X, or over `layer`. `columns` projects (names of
    /// [`CELL_LIST_COLUMNS`], in the order wanted).
    pub fn new(
        dataset: Arc<Dataset>,
        selection: &Selection,
        layer: Option<&str>,
        columns: &[&str],
    ) -> Result<Self> {
        if selection.genes != Selector::All || selection.gene_filter.is_some() {
            return Err(Error::invalid_argument(
                "the per-cell list view holds every stored gene of a cell; select genes from \
                 the lists instead",
            ));
        }
        let projection = columns
            .iter()
            .map(|c| {
                CELL_LIST_COLUMNS
                    .iter()
                    .position(|k| k == c)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::UnknownName,
                            format!(
                                "the per-cell list view has no column {c:?} (it has: {})",
                                CELL_LIST_COLUMNS.join(", ")
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<usize>>>()?;
        // An empty read checks the layer name and tells the value type.
        let wide = match read(&dataset, layer, vec![])?.2 {
            Values::F32(_) => false,
            Values::F64(_) => true,
        };
        let cells = match selection.resolve_cells(&dataset)? {
            Resolved::All(n) => (0..n as u32).collect(),
            Resolved::Ids(mut ids) => {
                ids.sort_unstable();
                ids.dedup();
                ids
            }
        };
        let chunks = cells.chunks(CHUNK_CELLS).map(<[u32]>::to_vec).collect();
        Ok(Self {
            dataset,
            layer: layer.map(str::to_string),
            schema: Arc::new(cell_list_schema(wide, &projection)),
            projection,
            chunks: Mutex::new(chunks),
        })
    }

    /// The projected schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The next batch of at most `max_cells` cells, or `None` when every cell was handed out.
    pub fn next_batch(&self, max_cells: usize) -> Result<Option<RecordBatch>> {
        let max_cells = max_cells.max(1);
        let cells = {
            let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
            let Some(mut chunk) = chunks.pop_front() else {
                return Ok(None);
            };
            if chunk.len() > max_cells {
                chunks.push_front(chunk.split_off(max_cells));
            }
            chunk
        };
        let mut lists: [Option<ArrayRef>; 3] = [None, None, None];
        if self.projection.iter().any(|&c| c > 0) {
            let (indptr, genes, values) =
                read(&self.dataset, self.layer.as_deref(), cells.clone())?;
            lists[1] = Some(list(&indptr, Arc::new(UInt32Array::from(genes))));
            lists[2] = Some(list(
                &indptr,
                match values {
                    Values::F32(v) => Arc::new(Float32Array::from(v)) as ArrayRef,
                    Values::F64(v) => Arc::new(Float64Array::from(v)),
                },
            ));
        }
        lists[0] = Some(Arc::new(UInt32Array::from(cells.clone())));
        let columns: Vec<ArrayRef> = self
            .projection
            .iter()
            .map(|&c| lists[c].clone().expect("projected columns are built"))
            .collect();
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(cells.len()));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map(Some)
            .map_err(|e| Error::invalid_schema(format!("building a per-cell list batch: {e}")))
    }
}

/// The schema of the view's `projection` (positions in [`CELL_LIST_COLUMNS`]).
fn cell_list_schema(wide: bool, projection: &[usize]) -> Schema {
    let value = if wide {
        DataType::Float64
    } else {
        DataType::Float32
    };
    let all = [
        Field::new(CELL_LIST_COLUMNS[0], DataType::UInt32, false),
        Field::new(
            CELL_LIST_COLUMNS[1],
            DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))),
            false,
        ),
        Field::new(
            CELL_LIST_COLUMNS[2],
            DataType::List(Arc::new(Field::new("item", value, false))),
            false,
        ),
    ];
    Schema::new(
        projection
            .iter()
            .map(|&c| all[c].clone())
            .collect::<Vec<_>>(),
    )
}

/// The stored entries of `cells` (ascending, unique) as CSR rows `(indptr, genes, values)`,
/// genes ascending within a cell.
pub(crate) fn read(
    dataset: &Dataset,
    layer: Option<&str>,
    cells: Vec<u32>,
) -> Result<(Vec<i64>, Vec<u32>, Values)> {
    match layer {
        None => dataset.cell_entries(cells),
        Some(name) => Ok(dataset
            .layer_submatrix(
                name,
                &Selector::Ids(cells.into_iter().map(i64::from).collect()),
                &Selector::All,
            )?
            .into_entries()),
    }
}

/// A list column over CSR rows: row `i` holds `values[indptr[i]..indptr[i + 1]]`.
fn list(indptr: &[i64], values: ArrayRef) -> ArrayRef {
    let item = Arc::new(Field::new("item", values.data_type().clone(), false));
    // One chunk of cells holds far fewer than 2^31 entries (CHUNK_CELLS × n_genes at most).
    let offsets = arrow::buffer::OffsetBuffer::new(
        indptr
            .iter()
            .map(|&o| (o - indptr[0]) as i32)
            .collect::<Vec<i32>>()
            .into(),
    );
    Arc::new(ListArray::new(item, offsets, values, None))
}
