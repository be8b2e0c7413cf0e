//! Cell tokenizers for single-cell foundation models, over CSR batches of raw counts.
//!
//! The rules are those of the reference tokenizers (Geneformer's rank-value encoding, scGPT's
//! value binning), written down in `notes/TOKENIZERS.md`; every choice the references leave open
//! (tie-breaking, genes beyond `vocab_size`, randomness) is fixed and documented here.
//!
//! * [`vocab`]: gene → token maps (the slaf layout `PAD/CLS/SEP/MASK = 0..3`, gene token =
//!   `gene_integer_id + 4`, or a token dictionary keyed by gene name).
//! * [`geneformer`]: rank-value encoding, V1 and V2 presets.
//! * [`scgpt`]: per-cell quantile binning, seeded tie-breaking and subsampling.
//! * [`dictionary`]: loading token and gene-median dictionaries (JSON, TSV, Python pickle).
//!
//! Cells are tokenized in parallel with rayon; each rayon task reuses its scratch buffers, so the
//! hot loop does no per-cell heap allocation once the buffers have grown.
//!
//! ```
//! use slaf::tokenize::{CellBatch, Vocab};
//! use slaf::tokenize::geneformer::{GeneformerConfig, GeneformerTokenizer};
//!
//! // Two cells over 3 genes: cell 7 = {gene 0: 1, gene 2: 5}, cell 9 = {}.
//! let batch = CellBatch::new(&[0, 2, 2], &[0, 2], &[1.0, 5.0], &[7, 9])?;
//! let mut config = GeneformerConfig::v1();
//! config.max_genes = 4;
//! let tokenizer = GeneformerTokenizer::new(config, Vocab::slaf(3, None)?)?;
//! let out = tokenizer.tokenize(&batch)?;
//! assert_eq!(out.input_ids, vec![6, 4, 0, 0, 0, 0, 0, 0]); // rank order, PAD = 0
//! assert_eq!(out.cell_ids, vec![7, 9]);
//! # Ok::<(), slaf::Error>(())
//! ```

pub mod dictionary;
pub mod geneformer;
pub mod scgpt;
pub mod spec;
pub mod vocab;

pub use dictionary::{
    load_gene_medians, load_token_dictionary, DictionaryFormat, GeneMedianDictionary,
    TokenDictionary,
};
pub use spec::{parse_counts_scope, Tokenizer, TokenizerSpec};
pub use vocab::Vocab;

use rayon::prelude::*;

use crate::{limits, Error, Result};

/// A borrowed CSR batch of cells: row `i` (cell `cell_ids[i]`) holds entries
/// `indptr[i]..indptr[i + 1]` of `gene_ids` (gene_integer_id) and `values` (raw counts).
///
/// Entries within a row may be in any order; a gene should appear at most once per row
/// (canonical CSR; duplicates are not merged). `indptr` need not start at 0, so a window of a
/// larger CSR can be passed without copying.
#[derive(Debug, Clone, Copy)]
pub struct CellBatch<'a> {
    indptr: &'a [i64],
    gene_ids: &'a [u32],
    values: &'a [f32],
    cell_ids: &'a [u32],
}

impl<'a> CellBatch<'a> {
    /// Checks the CSR invariants once, so the tokenizers can slice without further checks.
    pub fn new(
        indptr: &'a [i64],
        gene_ids: &'a [u32],
        values: &'a [f32],
        cell_ids: &'a [u32],
    ) -> Result<Self> {
        if indptr.len() != cell_ids.len() + 1 {
            return Err(Error::invalid_argument(format!(
                "CSR batch: indptr has {} entries, expected {} (number of cells + 1)",
                indptr.len(),
                cell_ids.len() + 1
            )));
        }
        if gene_ids.len() != values.len() {
            return Err(Error::invalid_argument(format!(
                "CSR batch: {} gene ids but {} values",
                gene_ids.len(),
                values.len()
            )));
        }
        if indptr[0] < 0 {
            return Err(Error::invalid_argument(format!(
                "CSR batch: indptr starts at {}, must be >= 0",
                indptr[0]
            )));
        }
        if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::invalid_argument(format!(
                "CSR batch: indptr decreases at row {i} ({} > {})",
                indptr[i],
                indptr[i + 1]
            )));
        }
        let end = indptr[indptr.len() - 1];
        if end as u64 > gene_ids.len() as u64 {
            return Err(Error::invalid_argument(format!(
                "CSR batch: indptr ends at {end} but there are only {} entries",
                gene_ids.len()
            )));
        }
        Ok(Self {
            indptr,
            gene_ids,
            values,
            cell_ids,
        })
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.cell_ids.len()
    }

    /// Whether the batch holds no cells.
    pub fn is_empty(&self) -> bool {
        self.cell_ids.is_empty()
    }

    /// Cell ids, in row order.
    pub fn cell_ids(&self) -> &'a [u32] {
        self.cell_ids
    }

    /// Gene ids and values of row `i`.
    pub fn row(&self, i: usize) -> (&'a [u32], &'a [f32]) {
        // Bounds were validated in `new`, so these casts and slices cannot fail.
        let (start, end) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.gene_ids[start..end], &self.values[start..end])
    }
}

/// Tokenizer output for one batch, in the layout a PyTorch loop receives: `[B, L]` row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenBatch {
    /// Sequence length `L`, fixed per tokenizer.
    pub seq_len: usize,
    /// Token ids, `[B, L]` flattened row-major; padding holds the vocabulary's PAD id.
    pub input_ids: Vec<i64>,
    /// `[B, L]`: true on real tokens (specials included), false on padding.
    pub attention_mask: Vec<bool>,
    /// `[B, L]` per-token values for value-aware tokenizers (scGPT); `None` for Geneformer.
    pub values: Option<Vec<f32>>,
    /// `[B]` cell ids, in row order.
    pub cell_ids: Vec<i64>,
}

impl TokenBatch {
    /// Sizes the buffers for `cells` rows of length `seq_len` (with or without values), keeping
    /// the memory they already have: the rows' contents are left for [`fill_rows`] to write.
    fn reset(&mut self, cells: &CellBatch<'_>, seq_len: usize, with_values: bool) -> Result<()> {
        // Sizes come from users (max_genes × cells): checked, then allocated fallibly.
        let what = || format!("token output of {} cells × {seq_len} tokens", cells.len());
        let n = cells
            .len()
            .checked_mul(seq_len)
            .ok_or_else(|| Error::resource_limit(format!("{} overflows", what())))?;
        let token_bytes = 8 + 1 + if with_values { 4 } else { 0 };
        if n > self.input_ids.len() {
            limits::check_bytes(&what(), n, token_bytes)?;
        }
        self.seq_len = seq_len;
        limits::try_resize(&mut self.input_ids, n, 0, "token ids")?;
        limits::try_resize(&mut self.attention_mask, n, false, "attention mask")?;
        match (&mut self.values, with_values) {
            (Some(v), true) => limits::try_resize(v, n, 0.0, "token values")?,
            (values, true) => {
                let mut v = Vec::new();
                limits::try_resize(&mut v, n, 0.0, "token values")?;
                *values = Some(v);
            }
            (values, false) => *values = None,
        }
        self.cell_ids.clear();
        self.cell_ids
            .extend(cells.cell_ids.iter().map(|&c| i64::from(c)));
        Ok(())
    }

    /// Number of cells `B`.
    pub fn batch_size(&self) -> usize {
        self.cell_ids.len()
    }

    /// Token ids of row `i`.
    pub fn ids(&self, i: usize) -> &[i64] {
        &self.input_ids[i * self.seq_len..(i + 1) * self.seq_len]
    }

    /// Attention mask of row `i`.
    pub fn mask(&self, i: usize) -> &[bool] {
        &self.attention_mask[i * self.seq_len..(i + 1) * self.seq_len]
    }

    /// Values of row `i`, for value-aware tokenizers.
    pub fn row_values(&self, i: usize) -> Option<&[f32]> {
        self.values
            .as_ref()
            .map(|v| &v[i * self.seq_len..(i + 1) * self.seq_len])
    }

    /// Number of real (non-pad) tokens, for throughput in tokens/s.
    pub fn non_pad_tokens(&self) -> usize {
        if self.seq_len == 0 {
            return 0;
        }
        // Real tokens come first in every row: a binary search per row finds where they end.
        self.attention_mask
            .chunks_exact(self.seq_len)
            .map(|row| row.partition_point(|&m| m))
            .sum()
    }
}

/// Which genes `n_counts` (the per-cell total used for normalisation) sums over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountsScope {
    /// Every stored entry of the cell (Geneformer's `n_counts`, scanpy's `normalize_total`).
    #[default]
    AllGenes,
    /// Only genes the tokenizer keeps (in the vocabulary, and with a median when medians are
    /// given), as BioNeMo's Geneformer dataset does.
    InVocabulary,
}

/// One output row handed to a per-cell encoder: slices of the batch's buffers, holding whatever
/// an earlier batch left there. The encoder writes its tokens (and values) at the front and
/// returns how many; [`fill_rows`] writes the padding and the mask.
struct RowOut<'a> {
    ids: &'a mut [i64],
    values: Option<&'a mut [f32]>,
}

/// Padding of a batch's rows: the PAD token, and the value of padded positions (value-aware
/// tokenizers).
#[derive(Debug, Clone, Copy)]
struct Padding {
    id: i64,
    value: f32,
}

/// Runs `encode(scratch, row_index, row_out) -> tokens written` over every row of `out` in
/// parallel, then pads each row after its tokens. Every byte of the batch is written once, so a
/// reused batch needs no clearing. Each rayon task creates one `S` and reuses it for all the rows
/// it handles, so encoders keep their working buffers there instead of allocating per cell.
fn fill_rows<S, F>(out: &mut TokenBatch, pad: Padding, encode: F) -> Result<()>
where
    S: Default,
    F: Fn(&mut S, usize, RowOut<'_>) -> Result<usize> + Sync + Send,
{
    let l = out.seq_len;
    if l == 0 {
        return Ok(());
    }
    let ids = out.input_ids.par_chunks_mut(l);
    let mask = out.attention_mask.par_chunks_mut(l);
    // Rows per rayon task at least: a task sets up its scratch once.
    const MIN_ROWS_PER_TASK: usize = 64;
    match out.values.as_mut() {
        Some(values) => ids
            .zip(mask)
            .zip(values.par_chunks_mut(l))
            .enumerate()
            .with_min_len(MIN_ROWS_PER_TASK)
            .try_for_each_init(S::default, |s, (i, ((ids, mask), values))| {
                let row = RowOut {
                    ids: &mut *ids,
                    values: Some(&mut *values),
                };
                let len = encode(s, i, row)?.min(l);
                pad_row(ids, mask, Some(values), len, pad);
                Ok(())
            }),
        None => ids
            .zip(mask)
            .enumerate()
            .with_min_len(MIN_ROWS_PER_TASK)
            .try_for_each_init(S::default, |s, (i, (ids, mask))| {
                let row = RowOut {
                    ids: &mut *ids,
                    values: None,
                };
                let len = encode(s, i, row)?.min(l);
                pad_row(ids, mask, None, len, pad);
                Ok(())
            }),
    }
}

/// Pads a row after its first `len` positions (ids, and values if any) and sets its mask:
/// true on those positions, false after.
fn pad_row(
    ids: &mut [i64],
    mask: &mut [bool],
    values: Option<&mut [f32]>,
    len: usize,
    pad: Padding,
) {
    ids[len..].fill(pad.id);
    if let Some(values) = values {
        values[len..].fill(pad.value);
    }
    let (real, padding) = mask.split_at_mut(len);
    real.fill(true);
    padding.fill(false);
}

/// Errors for a gene id beyond the vocabulary's gene count: a sign the batch and the vocabulary
/// come from different datasets.
fn gene_out_of_range(gene: u32, cell: u32, n_genes: usize) -> Error {
    Error::out_of_range(format!(
        "cell {cell}: gene_integer_id {gene} is out of range for a vocabulary over {n_genes} genes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn batch_validation() {
        assert!(CellBatch::new(&[0, 1], &[0], &[1.0], &[5]).is_ok());
        let bad = [
            CellBatch::new(&[0, 1], &[0], &[1.0], &[5, 6]).unwrap_err(),
            CellBatch::new(&[0, 1], &[0, 1], &[1.0], &[5]).unwrap_err(),
            CellBatch::new(&[0, 2, 1], &[0, 1], &[1.0, 1.0], &[5, 6]).unwrap_err(),
            CellBatch::new(&[0, 3], &[0, 1], &[1.0, 1.0], &[5]).unwrap_err(),
            CellBatch::new(&[-1, 1], &[0, 1], &[1.0, 1.0], &[5]).unwrap_err(),
            CellBatch::new(&[], &[], &[], &[]).unwrap_err(),
        ];
        for e in bad {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
    }

    #[test]
    fn batch_window_rows() {
        // A window of a larger CSR: indptr starts at 1.
        let b = CellBatch::new(&[1, 2, 4], &[9, 0, 1, 2], &[9.0, 1.0, 2.0, 3.0], &[3, 4]).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.row(0), (&[0u32][..], &[1.0f32][..]));
        assert_eq!(b.row(1), (&[1u32, 2][..], &[2.0f32, 3.0][..]));
    }

    #[test]
    fn rows_are_padded_after_their_tokens_in_a_reused_batch() {
        let cells = CellBatch::new(&[0, 0, 0], &[], &[], &[1, 2]).unwrap();
        let pad = Padding { id: 0, value: -2.0 };
        // Row i gets i + 1 tokens (value 7, 8): whatever the buffers held before is replaced.
        let encode = |_: &mut (), i: usize, row: RowOut<'_>| -> Result<usize> {
            let values = row.values.expect("values");
            for (k, (id, value)) in row.ids.iter_mut().zip(values).take(i + 1).enumerate() {
                *id = 7 + k as i64;
                *value = 0.5;
            }
            Ok(i + 1)
        };
        let mut t = TokenBatch {
            seq_len: 9,
            input_ids: vec![99; 40],
            attention_mask: vec![true; 40],
            values: None,
            cell_ids: vec![5; 7],
        };
        t.reset(&cells, 3, true).unwrap();
        fill_rows(&mut t, pad, encode).unwrap();
        assert_eq!(t.batch_size(), 2);
        assert_eq!(t.ids(0), &[7, 0, 0]);
        assert_eq!(t.ids(1), &[7, 8, 0]);
        assert_eq!(t.mask(1), &[true, true, false]);
        assert_eq!(t.row_values(0), Some(&[0.5, -2.0, -2.0][..]));
        assert_eq!(t.non_pad_tokens(), 3);
        assert_eq!(t.cell_ids, vec![1, 2]);
        assert_eq!(t.input_ids.len(), 6);
    }
}

/// Small hand-written batches for the tokenizer tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::CellBatch;

    /// Builds a batch from per-cell `(gene, value)` lists; cell ids are 100, 101, ...
    pub(crate) struct Cells {
        indptr: Vec<i64>,
        genes: Vec<u32>,
        values: Vec<f32>,
        ids: Vec<u32>,
    }

    impl Cells {
        pub(crate) fn new(cells: &[&[(u32, f32)]]) -> Self {
            let mut c = Cells {
                indptr: vec![0],
                genes: vec![],
                values: vec![],
                ids: vec![],
            };
            for (i, cell) in cells.iter().enumerate() {
                for &(g, v) in *cell {
                    c.genes.push(g);
                    c.values.push(v);
                }
                c.indptr.push(c.genes.len() as i64);
                c.ids.push(100 + i as u32);
            }
            c
        }

        pub(crate) fn batch(&self) -> CellBatch<'_> {
            CellBatch::new(&self.indptr, &self.genes, &self.values, &self.ids).unwrap()
        }
    }
}
