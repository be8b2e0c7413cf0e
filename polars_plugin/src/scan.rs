//! `NativeScan`: a table of a dataset, or its per-cell list view, read a batch at a time for
//! `slaf.polars.scan_slaf` (a Polars IO source). Batches cross to Python as Arrow PyCapsule
//! streams, which Polars takes without a copy.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use slaf::cell_lists::{CellListScan, CELL_LIST_COLUMNS};
use slaf::scan::{table_of, Scan};
use slaf::selected_rows::SelectedRowScan;
use slaf::slice::Selection;
use slaf::Axis;

use crate::arrow_export::ArrowStream;
use crate::dataset::{selector, NativeDataset};
use crate::errors::IntoPy;

enum Source {
    Table(Scan),
    CellLists(CellListScan),
    SelectedRows(SelectedRowScan),
}

/// A running scan (use `slaf.polars.scan_slaf`).
#[pyclass(module = "slaf._native", frozen)]
pub struct NativeScan {
    source: Source,
    schema: SchemaRef,
}

/// The name of the per-cell list view among the tables `scan_slaf` accepts.
const CELL_LISTS: &str = "cells_x";

fn table_schema(
    dataset: &NativeDataset,
    table: &str,
    layer: Option<&str>,
) -> slaf::Result<SchemaRef> {
    if table == CELL_LISTS {
        let scan = CellListScan::new(
            dataset.dataset().clone(),
            &Selection::default(),
            layer,
            &CELL_LIST_COLUMNS,
        )?;
        return Ok(scan.schema().clone());
    }
    Ok(table_of(dataset.dataset(), table)?.schema().clone())
}

#[pymethods]
impl NativeScan {
    /// Starts a scan of `table` (a table name or `cells_x`) projecting `columns` (all when
    /// `None`), keeping rows that satisfy the Lance SQL `filter`. For `cells_x`, `filter` is
    /// evaluated on the cells table and `layer` picks the values. For the expression table,
    /// `cells` (a selector) reads just those cells' rows, through their row ranges, instead of
    /// filtering a scan (`filter` must then be `None`); `genes` likewise reads just those genes'
    /// rows from the gene-major table (which must be fresh).
    #[new]
    #[pyo3(signature = (dataset, table, columns=None, filter=None, layer=None, cells=None, genes=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        dataset: PyRef<'_, NativeDataset>,
        table: String,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        layer: Option<String>,
        cells: Option<Bound<'_, PyAny>>,
        genes: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let dataset: &NativeDataset = &dataset;
        let selected = match (cells, genes) {
            (None, None) => None,
            (Some(cells), None) => Some((Axis::Cells, selector(&cells)?)),
            (None, Some(genes)) => Some((Axis::Genes, selector(&genes)?)),
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "a scan reads the rows of selected cells or of selected genes, not both",
                ))
            }
        };
        py.detach(|| -> slaf::Result<Self> {
            let all: Vec<String> = table_schema(dataset, &table, layer.as_deref())?
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let columns = columns.unwrap_or(all);
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            if table == CELL_LISTS {
                let selection = Selection {
                    cell_filter: filter,
                    ..Selection::default()
                };
                let scan = CellListScan::new(
                    dataset.dataset().clone(),
                    &selection,
                    layer.as_deref(),
                    &columns,
                )?;
                let schema = scan.schema().clone();
                return Ok(Self {
                    source: Source::CellLists(scan),
                    schema,
                });
            }
            if let Some(layer) = layer {
                return Err(slaf::Error::new(
                    slaf::ErrorKind::InvalidArgument,
                    format!(
                        "layer={layer:?} applies to the per-cell list view ('{CELL_LISTS}') only"
                    ),
                ));
            }
            if let Some((along, ids)) = selected {
                if !matches!(table.to_ascii_lowercase().as_str(), "expression" | "x")
                    || filter.is_some()
                {
                    return Err(slaf::Error::new(
                        slaf::ErrorKind::InvalidArgument,
                        "a cell or gene selection reads rows of the expression table, without a \
                         filter",
                    ));
                }
                let ds = dataset.dataset();
                let ids = match along {
                    Axis::Cells => ds.resolve_cells(&ids)?,
                    Axis::Genes => ds.resolve_genes(&ids)?,
                };
                let scan = SelectedRowScan::new(ds.clone(), along, &ids, &columns)?;
                let schema = scan.schema().clone();
                return Ok(Self {
                    source: Source::SelectedRows(scan),
                    schema,
                });
            }
            let table = table_of(dataset.dataset(), &table)?;
            let scan = Scan::new(&table, &columns, filter.as_deref())?;
            let schema = table
                .schema()
                .project(&projection(&table, &columns))
                .map_err(|e| slaf::Error::new(slaf::ErrorKind::InvalidArgument, e.to_string()))?;
            let schema = Arc::new(schema);
            Ok(Self {
                source: Source::Table(scan),
                schema,
            })
        })
        .py_err()
    }

    /// The schema of `table` (all columns) as an empty Arrow stream.
    #[staticmethod]
    #[pyo3(signature = (dataset, table, layer=None))]
    fn schema_of(
        py: Python<'_>,
        dataset: PyRef<'_, NativeDataset>,
        table: String,
        layer: Option<String>,
    ) -> PyResult<ArrowStream> {
        let dataset: &NativeDataset = &dataset;
        let schema = py
            .detach(|| table_schema(dataset, &table, layer.as_deref()))
            .py_err()?;
        Ok(ArrowStream::new(schema, vec![]))
    }

    /// The next batch of at most `max_rows` rows as a one-batch Arrow stream, or `None`.
    fn next_batch(&self, py: Python<'_>, max_rows: usize) -> PyResult<Option<ArrowStream>> {
        slaf::limits::check_range("batch_size", max_rows, 1, slaf::limits::MAX_BATCH_ROWS)
            .py_err()?;
        let batch: Option<RecordBatch> = py
            .detach(|| match &self.source {
                Source::Table(scan) => scan.next_batch(max_rows),
                Source::CellLists(scan) => scan.next_batch(max_rows),
                Source::SelectedRows(scan) => scan.next_batch(max_rows),
            })
            .py_err()?;
        Ok(batch.map(|b| ArrowStream::new(self.schema.clone(), vec![b])))
    }
}

/// Positions of `columns` in the table's schema (checked by `Scan::new` already).
fn projection(table: &slaf::scan::ScanTable, columns: &[&str]) -> Vec<usize> {
    columns
        .iter()
        .filter_map(|c| table.schema().index_of(c).ok())
        .collect()
}
