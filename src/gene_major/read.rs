//! Reading selected genes' rows from the gene-major table, turned into the cell rows that matrix
//! assembly takes, so that both layouts end in the same code and give the same matrix.

use std::ops::Range;

use arrow_array::RecordBatch;

use crate::columns::{extend_ids, Values};
use crate::error::{Error, Result};
use crate::matrix::CellRows;
use crate::runtime::block_on;
use crate::start_index::StartIndex;
use crate::table::Table;

const CELL: &str = "cell_integer_id";
const VALUE: &str = "value";

/// An open, fresh gene-major table with its per-gene row offsets.
pub(crate) struct GeneMajor {
    table: Table,
    index: StartIndex,
}

impl GeneMajor {
    pub fn new(table: Table, index: StartIndex) -> Self {
        Self { table, index }
    }

    /// Row ranges of `genes` (ascending, unique) and the number of rows they hold.
    pub fn ranges(&self, genes: &[u32]) -> (Vec<Range<u64>>, u64) {
        let (ranges, offsets) = self.index.ranges_of(genes);
        (
            ranges,
            *offsets.last().expect("offsets start with 0") as u64,
        )
    }

    /// The rows of `genes` (ascending, unique), `columns` projected.
    pub fn rows(&self, genes: &[u32], columns: &[&str]) -> Result<Vec<RecordBatch>> {
        let (ranges, _) = self.index.ranges_of(genes);
        block_on(self.table.read_ranges(&ranges, columns))
    }

    /// The stored entries of `genes` (ascending, unique) in `cells` (ascending, unique) as the
    /// cells' rows, genes ascending within each: read gene by gene, then transposed.
    pub fn cell_rows(
        &self,
        cells: Vec<u32>,
        genes: &[u32],
        n_cells: usize,
        values: Values,
    ) -> Result<CellRows> {
        let (ranges, offsets) = self.index.ranges_of(genes);
        let total = *offsets.last().expect("offsets start with 0");
        let batches = block_on(self.table.read_ranges(&ranges, &[CELL, VALUE]))?;
        let mut cell_ids = Vec::with_capacity(total);
        let mut read = values;
        for batch in &batches {
            extend_ids(
                &mut cell_ids,
                batch.column(0),
                "expression_by_gene.cell_integer_id",
            )?;
            read.extend(batch.column(1), "expression_by_gene.value")?;
        }
        if cell_ids.len() != total {
            return Err(Error::invalid_schema(format!(
                "expected {total} gene-major rows for the selected genes but read {}",
                cell_ids.len()
            )));
        }
        if let Some(&c) = cell_ids.iter().max().filter(|&&c| c as usize >= n_cells) {
            return Err(Error::corrupt(format!(
                "expression_by_gene has cell_integer_id {c}, but the dataset has {n_cells} cells"
            )));
        }
        // Each row's position among the selected cells (NONE: its cell is not selected).
        const NONE: u32 = u32::MAX;
        let slots: Vec<u32> = if cells.len() == n_cells {
            cell_ids
        } else {
            let mut slot = vec![NONE; n_cells];
            for (k, &c) in cells.iter().enumerate() {
                slot[c as usize] = k as u32;
            }
            cell_ids.iter().map(|&c| slot[c as usize]).collect()
        };
        // A counting sort of the rows by cell; within a cell they stay in gene order.
        let mut counts = vec![0usize; cells.len() + 1];
        for &s in slots.iter().filter(|&&s| s != NONE) {
            counts[s as usize + 1] += 1;
        }
        for k in 0..cells.len() {
            counts[k + 1] += counts[k];
        }
        let kept = counts[cells.len()];
        let mut next = counts.clone();
        let mut out_genes = vec![0u32; kept];
        let mut order = vec![0u32; kept];
        for (k, &g) in genes.iter().enumerate() {
            let rows = offsets[k]..offsets[k + 1];
            for (row, &s) in rows.clone().zip(&slots[rows]) {
                if s != NONE {
                    let at = &mut next[s as usize];
                    out_genes[*at] = g;
                    order[*at] = row as u32;
                    *at += 1;
                }
            }
        }
        Ok(CellRows {
            cells,
            offsets: counts,
            genes: out_genes,
            values: read.gather(&order),
        })
    }
}
