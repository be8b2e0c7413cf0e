//! Reading a window of cells: one read of their row ranges (in ascending order, as stored), then
//! the rows put in the window's shuffled order.
//!
//! A cell's rows are one range of the expression table (`cell_start_index`); a range that spans
//! fragments is read piecewise and joined by the table reader, so every cell arrives whole.

use std::sync::Arc;

use crate::cell_lists;
use crate::columns::Values;
use crate::dataset::Dataset;
use crate::error::Result;

/// Cells as CSR rows in a given order: row `i` is cell `cell_ids[i]`, its entries
/// `indptr[i]..indptr[i + 1]` of `genes` and `values`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub indptr: Vec<i64>,
    pub genes: Vec<u32>,
    pub values: Vec<f32>,
    pub cell_ids: Vec<u32>,
}

/// Where windows are read from: X, or a layer.
pub struct Source {
    dataset: Arc<Dataset>,
    layer: Option<String>,
}

impl Source {
    /// A source over X (`layer = None`) or a layer; an unknown layer fails here.
    pub fn new(dataset: Arc<Dataset>, layer: Option<String>) -> Result<Self> {
        cell_lists::read(&dataset, layer.as_deref(), vec![])?;
        Ok(Self { dataset, layer })
    }

    /// The rows of `cells` (distinct) in the order given.
    pub fn read(&self, cells: &[u32]) -> Result<Rows> {
        let mut sorted = cells.to_vec();
        sorted.sort_unstable();
        let (indptr, genes, values) =
            cell_lists::read(&self.dataset, self.layer.as_deref(), sorted.clone())?;
        // Tokenizers take f32 counts; a float64 layer is narrowed once here.
        let values: Vec<f32> = match values {
            Values::F32(v) => v,
            Values::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        };
        Ok(reorder(&sorted, &indptr, &genes, &values, cells))
    }
}

/// The rows of `sorted` (CSR in ascending cell order) rearranged into the order of `order`,
/// a permutation of `sorted`.
fn reorder(sorted: &[u32], indptr: &[i64], genes: &[u32], values: &[f32], order: &[u32]) -> Rows {
    let mut out = Rows {
        indptr: Vec::with_capacity(order.len() + 1),
        genes: Vec::with_capacity(genes.len()),
        values: Vec::with_capacity(values.len()),
        cell_ids: order.to_vec(),
    };
    out.indptr.push(0);
    for cell in order {
        // `order` is a permutation of `sorted`, so the search always finds the cell.
        let i = sorted.binary_search(cell).expect("window cells were read");
        let (start, end) = (indptr[i] as usize, indptr[i + 1] as usize);
        out.genes.extend_from_slice(&genes[start..end]);
        out.values.extend_from_slice(&values[start..end]);
        out.indptr.push(out.genes.len() as i64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_window_order() {
        // Cells 2, 5, 9 with 1, 0 and 2 entries; served as 9, 2, 5.
        let rows = reorder(
            &[2, 5, 9],
            &[0, 1, 1, 3],
            &[4, 0, 7],
            &[1.0, 2.0, 3.0],
            &[9, 2, 5],
        );
        assert_eq!(rows.indptr, vec![0, 2, 3, 3]);
        assert_eq!(rows.genes, vec![0, 7, 4]);
        assert_eq!(rows.values, vec![2.0, 3.0, 1.0]);
        assert_eq!(rows.cell_ids, vec![9, 2, 5]);
    }
}
