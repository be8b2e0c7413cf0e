//! The expression table's rows of a set of cells, or of a set of genes, streamed a chunk of ids
//! at a time: what a scan of the expression table restricted by `cell_integer_id` (or
//! `gene_integer_id`) reads instead of the whole table (Polars'
//! `scan_slaf(path, "expression").filter(pl.col("cell_integer_id") < 1000)`). Each cell's rows
//! are one contiguous range of the expression table (`cell_start_index`), each gene's one of the
//! gene-major table (`slaf_gene_start_index`), so only those are read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::selection::{Axis, Resolved};

/// Cells or genes whose rows are read per storage request.
const CHUNK_IDS: usize = 4096;

/// Rows of selected cells in ascending cell order, or of selected genes in ascending gene order
/// (then cell order).
pub struct SelectedRowScan {
    dataset: Arc<Dataset>,
    /// Whose rows: cells' (from the expression table) or genes' (from the gene-major table).
    along: Axis,
    columns: Vec<String>,
    schema: SchemaRef,
    chunks: Mutex<VecDeque<Vec<u32>>>,
    /// Batches read but not handed out yet.
    pending: Mutex<VecDeque<RecordBatch>>,
}

impl SelectedRowScan {
    /// The rows of `ids` along `along` (any order, repeats ignored), `columns` of the
    /// expression table. Genes' rows need a fresh gene-major table (an error otherwise; see
    /// [`Dataset::layout_for`]).
    pub fn new(
        dataset: Arc<Dataset>,
        along: Axis,
        ids: &Resolved,
        columns: &[&str],
    ) -> Result<Self> {
        let arrow = dataset.expression_table().schema().clone();
        let indices = columns
            .iter()
            .map(|c| {
                arrow.index_of(c).map_err(|_| {
                    Error::new(
                        crate::ErrorKind::UnknownName,
                        format!("the expression table has no column {c:?}"),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let schema = Arc::new(
            arrow
                .project(&indices)
                .map_err(|e| Error::invalid_argument(e.to_string()))?,
        );
        let mut ids: Vec<u32> = (0..ids.len()).map(|i| ids.id(i)).collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(Self {
            dataset,
            along,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            schema,
            chunks: Mutex::new(ids.chunks(CHUNK_IDS).map(<[u32]>::to_vec).collect()),
            pending: Mutex::new(VecDeque::new()),
        })
    }

    /// The projected schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The next batch of at most `max_rows` rows, or `None` when every id's rows were read.
    pub fn next_batch(&self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.max(1);
        loop {
            if let Some(batch) = lock(&self.pending).pop_front() {
                if batch.num_rows() == 0 {
                    continue;
                }
                if batch.num_rows() > max_rows {
                    let rest = batch.slice(max_rows, batch.num_rows() - max_rows);
                    lock(&self.pending).push_front(rest);
                    return Ok(Some(batch.slice(0, max_rows)));
                }
                return Ok(Some(batch));
            }
            let Some(ids) = lock(&self.chunks).pop_front() else {
                return Ok(None);
            };
            let columns: Vec<&str> = self.columns.iter().map(String::as_str).collect();
            let batches = match self.along {
                Axis::Cells => self.dataset.expression_rows(&ids, &columns)?,
                Axis::Genes => self.dataset.expression_rows_by_gene(&ids, &columns)?,
            };
            let batches = batches
                .into_iter()
                .map(|b| self.in_schema_order(b))
                .collect::<Result<Vec<_>>>()?;
            lock(&self.pending).extend(batches);
        }
    }
}

impl SelectedRowScan {
    /// `batch`'s columns in the order asked for.
    fn in_schema_order(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                    Error::invalid_schema(format!("expression rows lack column {}", f.name()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::invalid_schema(format!("expression rows: {e}")))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
