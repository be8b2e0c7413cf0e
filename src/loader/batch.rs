//! What the prefetcher hands over: a window of cells, tokenized by the core tokenizers or as a
//! raw CSR, in serving order. Front ends cut it into batches of `batch_size` rows without
//! copying (row `i` of a window is the `i`-th cell served).

use super::source::Rows;
use crate::error::Result;
use crate::tokenize::{CellBatch, TokenBatch, Tokenizer};

/// Raw counts of a window's cells as CSR: row `i` is cell `cell_ids[i]`, its entries
/// `indptr[i]..indptr[i + 1]` of `indices` (gene_integer_id) and `values`. Index arrays are
/// int64, the type `torch.sparse_csr_tensor` and scipy take without conversion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawWindow {
    pub indptr: Vec<i64>,
    pub indices: Vec<i64>,
    pub values: Vec<f32>,
    pub cell_ids: Vec<i64>,
}

/// A window's cells, ready for the training loop.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowData {
    Tokens(TokenBatch),
    Raw(RawWindow),
}

/// One window of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub epoch: u64,
    pub data: WindowData,
}

impl Window {
    /// Number of cells.
    pub fn len(&self) -> usize {
        match &self.data {
            WindowData::Tokens(t) => t.batch_size(),
            WindowData::Raw(r) => r.cell_ids.len(),
        }
    }

    /// Whether the window holds no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tokenizes `rows` with `tokenizer`, or keeps them raw when there is none.
pub fn build(rows: Rows, tokenizer: Option<&Tokenizer>) -> Result<WindowData> {
    match tokenizer {
        Some(tokenizer) => {
            let cells = CellBatch::new(&rows.indptr, &rows.genes, &rows.values, &rows.cell_ids)?;
            Ok(WindowData::Tokens(tokenizer.tokenize(&cells)?))
        }
        None => Ok(WindowData::Raw(RawWindow {
            indptr: rows.indptr,
            indices: rows.genes.into_iter().map(i64::from).collect(),
            values: rows.values,
            cell_ids: rows.cell_ids.into_iter().map(i64::from).collect(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::TokenizerSpec;

    fn rows() -> Rows {
        Rows {
            indptr: vec![0, 2, 2],
            genes: vec![1, 0],
            values: vec![3.0, 5.0],
            cell_ids: vec![8, 4],
        }
    }

    #[test]
    fn raw_windows_keep_rows_as_read() {
        let WindowData::Raw(raw) = build(rows(), None).unwrap() else {
            panic!("raw expected")
        };
        assert_eq!(raw.indptr, vec![0, 2, 2]);
        assert_eq!(raw.indices, vec![1, 0]);
        assert_eq!(raw.cell_ids, vec![8, 4]);
    }

    #[test]
    fn tokenized_windows_are_the_tokenizer_output() {
        let spec = TokenizerSpec {
            name: "geneformer".into(),
            max_genes: Some(3),
            ..TokenizerSpec::default()
        };
        let tokenizer = spec
            .build(2, &|| panic!("no dictionary, no names"))
            .unwrap();
        let WindowData::Tokens(t) = build(rows(), Some(&tokenizer)).unwrap() else {
            panic!("tokens expected")
        };
        // Gene 0 (5 counts) ranks before gene 1 (3 counts); tokens are gene id + 4.
        assert_eq!(t.ids(0), &[4, 5, 0]);
        assert_eq!(t.ids(1), &[0, 0, 0]);
        assert_eq!(t.cell_ids, vec![8, 4]);
    }
}
