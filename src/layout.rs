//! The planner: which stored layout of X serves a read, from the sizes of the selection.
//!
//! Cell-major (`expression.lance`) reads the selected cells' rows; gene-major
//! (`expression_by_gene.lance`, when fresh) reads the selected genes' rows over all cells and
//! transposes them. Each costs the rows it reads plus a fixed cost per contiguous range (a
//! seek and a page decoded in part); the gene-major read also pays its transpose, about one
//! more pass over its rows. Both end in the same assembly, so the choice changes speed only.

/// A stored layout of X.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `expression.lance`, sorted by cell.
    CellMajor,
    /// `expression_by_gene.lance`, sorted by gene.
    GeneMajor,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::CellMajor => "cell-major",
            Layout::GeneMajor => "gene-major",
        }
    }
}

/// What reading a selection through one layout takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadCost {
    /// Rows read.
    pub rows: u64,
    /// Contiguous row ranges they form.
    pub ranges: usize,
}

/// Rows a range read costs beyond its rows: an estimate (a small range read decodes at least a
/// page of each column). It ranks the two layouts as measured in `benches/bench_gene_major.py`
/// (100 genes × 1,000 of 100,000 cells: gene-major 22 ms, cell-major 62 ms).
const RANGE_COST_ROWS: u64 = 4096;

impl ReadCost {
    fn total(self, per_row: u64) -> u64 {
        self.rows * per_row + self.ranges as u64 * RANGE_COST_ROWS
    }
}

/// The cheaper layout for a selection whose cell-major and gene-major reads cost as given.
pub(crate) fn choose(cell_major: ReadCost, gene_major: ReadCost) -> Layout {
    if gene_major.total(2) < cell_major.total(1) {
        Layout::GeneMajor
    } else {
        Layout::CellMajor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_genes_over_many_cells_go_gene_major() {
        let cells = ReadCost {
            rows: 150_000_000,
            ranges: 1,
        };
        let genes = ReadCost {
            rows: 300_000,
            ranges: 10,
        };
        assert_eq!(choose(cells, genes), Layout::GeneMajor);
        let few_cells = ReadCost {
            rows: 15_000,
            ranges: 10,
        };
        assert_eq!(choose(few_cells, genes), Layout::CellMajor);
    }
}
