//! Sparse matrices handed to users, and their assembly from the rows of selected cells.

use rayon::prelude::*;

use crate::columns::Values;
use crate::error::{Error, Result};
use crate::selection::Resolved;

/// A CSR matrix with sorted column indices in each row (scipy's `csr_matrix` layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub n_rows: usize,
    pub n_cols: usize,
    /// Row `i` holds entries `indptr[i]..indptr[i + 1]`.
    pub indptr: Vec<i64>,
    pub indices: Vec<i32>,
    pub data: Values,
}

impl Csr {
    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// The rows as `(indptr, column ids, values)`, column ids unsigned as gene ids are.
    pub(crate) fn into_entries(self) -> (Vec<i64>, Vec<u32>, Values) {
        let columns = self.indices.iter().map(|&c| c as u32).collect();
        (self.indptr, columns, self.data)
    }
}

/// A dense row-major matrix (obsm/varm).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub n_rows: usize,
    pub n_cols: usize,
    pub data: Values,
}

/// The stored rows of a set of cells: for `cells[k]` (ascending, unique), entries
/// `offsets[k]..offsets[k + 1]` of `genes` / `values`, in storage order.
#[cfg_attr(test, derive(Clone))]
pub(crate) struct CellRows {
    pub cells: Vec<u32>,
    pub offsets: Vec<usize>,
    pub genes: Vec<u32>,
    pub values: Values,
}

/// How stored gene ids map to output columns.
enum GeneMap {
    /// All genes, in id order.
    Identity,
    /// `first[g]` is the first output column of gene `g` (or `NONE`); `next[c]` chains the
    /// further columns of genes selected more than once.
    Lookup { first: Vec<u32>, next: Vec<u32> },
}

const NONE: u32 = u32::MAX;

impl GeneMap {
    fn new(genes: &Resolved, n_genes: usize) -> Self {
        match genes {
            Resolved::All(_) => GeneMap::Identity,
            Resolved::Ids(ids) => {
                let mut first = vec![NONE; n_genes];
                let mut next = vec![NONE; ids.len()];
                // Walk backwards so each chain lists its columns in ascending order.
                for (col, &g) in ids.iter().enumerate().rev() {
                    next[col] = first[g as usize];
                    first[g as usize] = col as u32;
                }
                GeneMap::Lookup { first, next }
            }
        }
    }
}

/// Builds the CSR of `cell_order` × `genes` from the rows read for the selected cells.
pub(crate) fn assemble(
    rows: CellRows,
    cell_order: &Resolved,
    genes: &Resolved,
    n_genes: usize,
) -> Result<Csr> {
    let n_rows = cell_order.len();
    // The cells asked for are the cells read, in the same order (all cells, or a range).
    let as_read =
        rows.cells.len() == n_rows && (0..n_rows).all(|i| cell_order.id(i) == rows.cells[i]);
    if matches!(genes, Resolved::All(_)) && as_read {
        return assemble_whole_rows(rows, n_genes);
    }
    let map = GeneMap::new(genes, n_genes);
    let (indptr, indices, data) = match &rows.values {
        Values::F32(v) => {
            let (p, i, d) = assemble_typed(&rows, v, cell_order, genes, &map, n_genes)?;
            (p, i, Values::F32(d))
        }
        Values::F64(v) => {
            let (p, i, d) = assemble_typed(&rows, v, cell_order, genes, &map, n_genes)?;
            (p, i, Values::F64(d))
        }
    };
    Ok(Csr {
        n_rows,
        n_cols: genes.len(),
        indptr,
        indices,
        data,
    })
}

type Parts<T> = (Vec<i64>, Vec<i32>, Vec<T>);

fn assemble_typed<T: Copy + Send + Sync>(
    rows: &CellRows,
    values: &[T],
    cell_order: &Resolved,
    genes: &Resolved,
    map: &GeneMap,
    n_genes: usize,
) -> Result<Parts<T>> {
    let n_rows = cell_order.len();
    let estimate = match map {
        GeneMap::Identity => rows.genes.len(),
        GeneMap::Lookup { .. } => rows.genes.len() / 4,
    };
    let mut indptr = Vec::with_capacity(n_rows + 1);
    let mut indices: Vec<i32> = Vec::with_capacity(estimate);
    let mut data: Vec<T> = Vec::with_capacity(estimate);
    let mut scratch: Vec<(i32, T)> = Vec::new();
    // When every cell is selected in order, the k-th output row is the k-th cell read.
    let positional = matches!(cell_order, Resolved::All(_)) && rows.cells.len() == n_rows;
    indptr.push(0i64);
    for i in 0..n_rows {
        let cell = cell_order.id(i);
        let slot = if positional {
            i
        } else {
            rows.cells
                .binary_search(&cell)
                .map_err(|_| Error::invalid_argument(format!("cell {cell} was not read")))?
        };
        let row_start = indices.len();
        let mut sorted = true;
        let mut last = -1i32;
        let stored = rows.offsets[slot]..rows.offsets[slot + 1];
        for (&gene, &value) in rows.genes[stored.clone()].iter().zip(&values[stored]) {
            if gene as usize >= n_genes {
                return Err(Error::corrupt(format!(
                    "table 'expression': a row of cell {cell} has gene_integer_id {gene}, but there are only {n_genes} genes"
                )));
            }
            match map {
                GeneMap::Identity => {
                    let col = gene as i32;
                    sorted &= col > last;
                    last = col;
                    indices.push(col);
                    data.push(value);
                }
                GeneMap::Lookup { first, next } => {
                    let mut col = first[gene as usize];
                    while col != NONE {
                        sorted &= col as i32 > last;
                        last = col as i32;
                        indices.push(col as i32);
                        data.push(value);
                        col = next[col as usize];
                    }
                }
            }
        }
        // Storage order within a cell is free (slafdb writes genes unsorted), but a gene
        // stored twice for one cell is damage: it would become a duplicate CSR entry.
        if !sorted {
            sort_row(
                &mut indices[row_start..],
                &mut data[row_start..],
                &mut scratch,
            );
            if let Some(pair) = indices[row_start..].windows(2).find(|p| p[0] == p[1]) {
                let gene = match map {
                    GeneMap::Identity => pair[0] as u32,
                    GeneMap::Lookup { .. } => genes.id(pair[0] as usize),
                };
                return Err(Error::corrupt(format!(
                    "table 'expression' stores gene_integer_id {gene} more than once for cell {cell}"
                )));
            }
        }
        indptr.push(indices.len() as i64);
    }
    Ok((indptr, indices, data))
}

/// Every gene of every cell read, cells in order: the stored rows are the CSR rows, and the
/// buffers read become the CSR's (gene ids turned into column indices in place, values moved;
/// no copy, no new allocation). One parallel pass checks them as `assemble_typed` does (genes
/// in range, none stored twice for a cell); only rows stored out of gene order are sorted.
fn assemble_whole_rows(rows: CellRows, n_genes: usize) -> Result<Csr> {
    let CellRows {
        cells,
        offsets,
        mut genes,
        mut values,
    } = rows;
    let (Some(&base), Some(&end)) = (offsets.first(), offsets.last()) else {
        // No cells read.
        return Ok(Csr {
            n_rows: 0,
            n_cols: n_genes,
            indptr: vec![0],
            indices: Vec::new(),
            data: values,
        });
    };
    genes.truncate(end);
    genes.drain(..base);
    values.keep(base..end);
    let indptr: Vec<i64> = offsets.iter().map(|&o| (o - base) as i64).collect();
    let span = |r: usize| indptr[r] as usize..indptr[r + 1] as usize;
    // Per row: a gene beyond the axis, or whether the row is stored out of gene order.
    let checked: Vec<Result<bool, u32>> = (0..cells.len())
        .into_par_iter()
        .map(|r| {
            let row = &genes[span(r)];
            if let Some(&gene) = row.iter().find(|&&g| g as usize >= n_genes) {
                return Err(gene);
            }
            Ok(row.windows(2).any(|p| p[0] >= p[1]))
        })
        .collect();
    let mut unsorted = Vec::new();
    for (r, status) in checked.into_iter().enumerate() {
        match status {
            Err(gene) => {
                return Err(Error::corrupt(format!(
                    "table 'expression': a row of cell {} has gene_integer_id {gene}, but there are only {n_genes} genes",
                    cells[r]
                )))
            }
            Ok(true) => unsorted.push(r),
            Ok(false) => {}
        }
    }
    // Same size and alignment: collected into the same allocation.
    let mut indices: Vec<i32> = genes.into_iter().map(|g| g as i32).collect();
    match &mut values {
        Values::F32(data) => sort_rows(&unsorted, &indptr, &mut indices, data, &cells)?,
        Values::F64(data) => sort_rows(&unsorted, &indptr, &mut indices, data, &cells)?,
    }
    Ok(Csr {
        n_rows: cells.len(),
        n_cols: n_genes,
        indptr,
        indices,
        data: values,
    })
}

/// Sorts rows `unsorted` of a CSR by column; a column twice in a row is damage.
fn sort_rows<T: Copy>(
    unsorted: &[usize],
    indptr: &[i64],
    indices: &mut [i32],
    data: &mut [T],
    cells: &[u32],
) -> Result<()> {
    let mut scratch = Vec::new();
    for &r in unsorted {
        let row = indptr[r] as usize..indptr[r + 1] as usize;
        sort_row(
            &mut indices[row.clone()],
            &mut data[row.clone()],
            &mut scratch,
        );
        if let Some(pair) = indices[row].windows(2).find(|p| p[0] == p[1]) {
            return Err(Error::corrupt(format!(
                "table 'expression' stores gene_integer_id {} more than once for cell {}",
                pair[0], cells[r]
            )));
        }
    }
    Ok(())
}

fn sort_row<T: Copy>(indices: &mut [i32], data: &mut [T], scratch: &mut Vec<(i32, T)>) {
    scratch.clear();
    scratch.extend(indices.iter().copied().zip(data.iter().copied()));
    scratch.sort_by_key(|&(i, _)| i);
    for (k, &(i, v)) in scratch.iter().enumerate() {
        indices[k] = i;
        data[k] = v;
    }
}

/// Builds an `n × n` CSR from COO triples (duplicates are kept, rows sorted by column).
pub(crate) fn coo_to_csr(n: usize, rows: &[u32], cols: &[u32], values: Values) -> Result<Csr> {
    if let Some((&r, &c)) = rows
        .iter()
        .zip(cols)
        .find(|(&r, &c)| r as usize >= n || c as usize >= n)
    {
        return Err(Error::invalid_schema(format!(
            "pairwise entry ({r}, {c}) is outside the {n} × {n} matrix"
        )));
    }
    let mut counts = vec![0i64; n + 1];
    for &r in rows {
        counts[r as usize + 1] += 1;
    }
    for i in 0..n {
        counts[i + 1] += counts[i];
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&k| (rows[k], cols[k]));
    let indices = order.iter().map(|&k| cols[k] as i32).collect();
    let data = match values {
        Values::F32(v) => Values::F32(order.iter().map(|&k| v[k]).collect()),
        Values::F64(v) => Values::F64(order.iter().map(|&k| v[k]).collect()),
    };
    Ok(Csr {
        n_rows: n,
        n_cols: n,
        indptr: counts,
        indices,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three cells: cell 0 has genes {0: 1, 2: 2}, cell 1 is empty, cell 2 has {1: 3, 3: 4}.
    fn rows() -> CellRows {
        CellRows {
            cells: vec![0, 1, 2],
            offsets: vec![0, 2, 2, 4],
            genes: vec![0, 2, 1, 3],
            values: Values::F32(vec![1.0, 2.0, 3.0, 4.0]),
        }
    }

    #[test]
    fn all_cells_all_genes() {
        let csr = assemble(rows(), &Resolved::All(3), &Resolved::All(4), 4).unwrap();
        assert_eq!(csr.indptr, vec![0, 2, 2, 4]);
        assert_eq!(csr.indices, vec![0, 2, 1, 3]);
        assert_eq!(csr.data, Values::F32(vec![1.0, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn reordered_and_repeated_selections() {
        let cells = Resolved::Ids(vec![2, 0, 2]);
        let genes = Resolved::Ids(vec![3, 0, 1, 3]);
        let csr = assemble(rows(), &cells, &genes, 4).unwrap();
        assert_eq!((csr.n_rows, csr.n_cols), (3, 4));
        assert_eq!(csr.indptr, vec![0, 3, 4, 7]);
        // Cell 2: gene 3 → cols 0 and 3, gene 1 → col 2; sorted by column.
        assert_eq!(csr.indices, vec![0, 2, 3, 1, 0, 2, 3]);
        assert_eq!(
            csr.data,
            Values::F32(vec![4.0, 3.0, 4.0, 1.0, 4.0, 3.0, 4.0])
        );
    }

    #[test]
    fn gene_ids_beyond_the_axis_are_reported() {
        let err = assemble(rows(), &Resolved::All(3), &Resolved::All(3), 3).unwrap_err();
        assert!(err.message().contains("gene_integer_id 3"));
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
    }

    #[test]
    fn genes_stored_twice_for_a_cell_are_corrupt() {
        let mut bad = rows();
        bad.genes = vec![2, 2, 1, 3];
        for genes in [Resolved::All(4), Resolved::Ids(vec![2, 1])] {
            let err = assemble(bad.clone(), &Resolved::All(3), &genes, 4).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
            assert_eq!(
                err.message(),
                "dataset is corrupt: table 'expression' stores gene_integer_id 2 more than once \
                 for cell 0"
            );
        }
        // Unsorted but distinct genes are fine (slafdb stores them so).
        let mut unsorted = rows();
        unsorted.genes = vec![2, 0, 3, 1];
        let csr = assemble(unsorted, &Resolved::All(3), &Resolved::All(4), 4).unwrap();
        assert_eq!(csr.indices, vec![0, 2, 1, 3]);
    }

    #[test]
    fn coo_becomes_sorted_csr() {
        let csr = coo_to_csr(3, &[2, 0, 0], &[1, 2, 0], Values::F64(vec![5.0, 2.0, 1.0])).unwrap();
        assert_eq!(csr.indptr, vec![0, 2, 2, 3]);
        assert_eq!(csr.indices, vec![0, 2, 1]);
        assert_eq!(csr.data, Values::F64(vec![1.0, 2.0, 5.0]));
        assert!(coo_to_csr(2, &[2], &[0], Values::F64(vec![1.0])).is_err());
    }
}
