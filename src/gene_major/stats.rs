//! Axis statistics of X, computed in the pass that writes the gene-major table: enough for
//! scanpy's QC columns, gene and cell filters and dispersion statistics without a pass over X.
//!
//! Stored as columns of the cells and genes tables with a `slaf_` prefix, so they never clash
//! with a user's annotation (scanpy's own names are `total_counts`, ...). Readers hide them
//! from obs/var and use them only while config.json says they describe the current X.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use crate::error::{Error, Result};

/// Per cell: the sum of its values.
pub const CELL_TOTAL: &str = "slaf_total_counts";
/// Per cell: its non-zero values.
pub const CELL_N_GENES: &str = "slaf_n_genes_by_counts";
/// Per gene: the sum of its values.
pub const GENE_TOTAL: &str = "slaf_total_counts";
/// Per gene: the cells where it is non-zero.
pub const GENE_N_CELLS: &str = "slaf_n_cells_by_counts";
/// Per gene: the mean over all cells (zeros included).
pub const GENE_MEAN: &str = "slaf_mean";
/// Per gene: the sum of its squared values (with the mean, the variance over all cells).
pub const GENE_SUM_SQUARES: &str = "slaf_sum_squares";

/// The statistics columns of the cells table.
pub const CELL_COLUMNS: &[&str] = &[CELL_TOTAL, CELL_N_GENES];
/// The statistics columns of the genes table (the start index is stored beside them).
pub const GENE_COLUMNS: &[&str] = &[GENE_TOTAL, GENE_N_CELLS, GENE_MEAN, GENE_SUM_SQUARES];

/// Running sums over the rows of X, in any order.
pub(crate) struct AxisStats {
    cell_total: Vec<f64>,
    cell_n_genes: Vec<u32>,
    gene_total: Vec<f64>,
    gene_n_cells: Vec<u32>,
    gene_sum_squares: Vec<f64>,
}

impl AxisStats {
    pub fn new(n_cells: usize, n_genes: usize) -> Self {
        Self {
            cell_total: vec![0.0; n_cells],
            cell_n_genes: vec![0; n_cells],
            gene_total: vec![0.0; n_genes],
            gene_n_cells: vec![0; n_genes],
            gene_sum_squares: vec![0.0; n_genes],
        }
    }

    /// Adds entries `(cells[i], genes[i], values[i])`; ids were checked against the shape.
    pub fn add(&mut self, cells: &[u32], genes: &[u32], values: &[f64]) {
        for ((&c, &g), &v) in cells.iter().zip(genes).zip(values) {
            if v == 0.0 {
                continue;
            }
            let (c, g) = (c as usize, g as usize);
            self.cell_total[c] += v;
            self.cell_n_genes[c] += 1;
            self.gene_total[g] += v;
            self.gene_n_cells[g] += 1;
            self.gene_sum_squares[g] += v * v;
        }
    }

    /// The cells table's columns, row `i` = cell `i`.
    pub fn cell_batch(&self) -> Result<RecordBatch> {
        batch(vec![
            (CELL_TOTAL, float(&self.cell_total)),
            (
                CELL_N_GENES,
                Arc::new(UInt32Array::from(self.cell_n_genes.clone())),
            ),
        ])
    }

    /// The genes table's columns, row `i` = gene `i`, with `start_index` (row offsets into the
    /// gene-major table) as [`super::START_INDEX_COLUMN`].
    pub fn gene_batch(&self, start_index: &[u64]) -> Result<RecordBatch> {
        let n_cells = self.cell_total.len().max(1) as f64;
        let mean: Vec<f64> = self.gene_total.iter().map(|t| t / n_cells).collect();
        batch(vec![
            (GENE_TOTAL, float(&self.gene_total)),
            (
                GENE_N_CELLS,
                Arc::new(UInt32Array::from(self.gene_n_cells.clone())),
            ),
            (GENE_MEAN, float(&mean)),
            (GENE_SUM_SQUARES, float(&self.gene_sum_squares)),
            (
                super::START_INDEX_COLUMN,
                Arc::new(UInt64Array::from(start_index.to_vec())),
            ),
        ])
    }
}

fn float(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::storage("building axis statistics", e))
}

/// Whether `data_type` is what [`AxisStats`] writes for `column` (a user's column of the same
/// name, written by another tool, is not ours to trust).
pub(crate) fn is_stats_type(column: &str, data_type: &DataType) -> bool {
    match column {
        CELL_N_GENES | GENE_N_CELLS => data_type == &DataType::UInt32,
        _ => data_type == &DataType::Float64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

    #[test]
    fn sums_skip_explicit_zeros() {
        let mut s = AxisStats::new(2, 3);
        s.add(&[0, 0, 1, 1], &[0, 2, 2, 1], &[1.0, 3.0, 0.0, 2.0]);
        let cells = s.cell_batch().unwrap();
        assert_eq!(
            cells.column(0).as_primitive::<Float64Type>().values(),
            &[4.0, 2.0]
        );
        let genes = s.gene_batch(&[0, 1, 2]).unwrap();
        let n_cells = genes
            .column(1)
            .as_primitive::<arrow_array::types::UInt32Type>();
        assert_eq!(n_cells.values(), &[1, 1, 1]);
        let squares = genes.column(3).as_primitive::<Float64Type>();
        assert_eq!(squares.values(), &[1.0, 4.0, 9.0]);
        let mean = genes.column(2).as_primitive::<Float64Type>();
        assert_eq!(mean.values(), &[0.5, 1.0, 1.5]);
    }
}
