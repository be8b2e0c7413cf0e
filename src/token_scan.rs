//! Tokenized cells streamed a chunk at a time (DuckDB's `slaf_tokenize`): the selected cells'
//! rows are read through their row ranges and handed to the core tokenizers
//! ([`crate::tokenize::geneformer`], [`crate::tokenize::scgpt`]) — the one implementation of
//! the tokenization rules.
//!
//! A gene selection (`genes`, `gene_filter` of [`Selection`]) restricts which genes take part:
//! the tokenizer sees only the selected genes' entries of each cell, exactly as if it were given
//! the submatrix `adata[cells, genes]`, while tokens stay those of the dataset's gene ids (so a
//! per-cell total, `n_counts` or `normalize_total`, sums over the selected genes). Order and
//! repeats of the selection do not matter (a gene is one token at most). Options that the chosen
//! tokenizer does not use are errors, never silently ignored; so is scGPT's
//! `include_zero_genes` with a gene selection, as it would add unselected genes.
//!
//! ```no_run
//! use slaf::slice::{open_shared, Selection};
//! use slaf::token_scan::{TokenScan, TokenizerSpec};
//! let ds = open_shared("data/pbmc.slaf")?;
//! let spec = TokenizerSpec { name: "geneformer".into(), ..TokenizerSpec::default() };
//! let scan = TokenScan::new(ds, &Selection::default(), &spec)?;
//! while let Some(batch) = scan.next_batch()? {
//!     println!("{} cells of {} tokens", batch.batch_size(), batch.seq_len);
//! }
//! # Ok::<(), slaf::Error>(())
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::columns::Values;
use crate::error::{Error, Result};
use crate::limits;
use crate::selection::Resolved;
use crate::slice::{Selection, SharedDataset};
// Re-exported: the options front ends fill in (one definition, in `tokenize::spec`).
use crate::tokenize::{CellBatch, TokenBatch};
pub use crate::tokenize::{Tokenizer, TokenizerSpec};

/// Cells tokenized per chunk (one chunk fills at most one 2048-row engine vector).
pub const TOKEN_CHUNK_CELLS: usize = 512;

/// Tokenized cells of a selection; every method may be called from several threads at once.
pub struct TokenScan {
    shared: Arc<SharedDataset>,
    tokenizer: Tokenizer,
    /// The genes that take part: all, or distinct ids in ascending order.
    genes: Resolved,
    chunks: Mutex<VecDeque<Vec<u32>>>,
}

impl TokenScan {
    /// Resolves the selection and builds the tokenizer, so bad options fail here.
    pub fn new(
        shared: Arc<SharedDataset>,
        selection: &Selection,
        spec: &TokenizerSpec,
    ) -> Result<Self> {
        let ds = shared.dataset();
        let cells = selection.resolve_cells(ds)?;
        let genes = distinct_genes(selection.resolve_genes(ds)?, ds.shape().1);
        if spec.include_zero_genes == Some(true) && !matches!(genes, Resolved::All(_)) {
            // Zero genes come from the whole vocabulary, not from the selection.
            return Err(Error::invalid_argument(
                "include_zero_genes cannot be combined with a gene selection (genes, \
                 gene_filter): it would add every unselected gene with value 0",
            ));
        }
        let tokenizer = build_tokenizer(&shared, spec)?;
        // Each thread holds one chunk's padded output: fail now, not mid-scan, if it cannot fit.
        let token_bytes = if tokenizer.has_values() { 13 } else { 9 };
        limits::check_bytes(
            &format!(
                "token output of {TOKEN_CHUNK_CELLS} cells × max_genes {}",
                tokenizer.seq_len()
            ),
            TOKEN_CHUNK_CELLS.saturating_mul(tokenizer.seq_len()),
            token_bytes,
        )?;
        let ids: Vec<u32> = (0..cells.len()).map(|i| cells.id(i)).collect();
        let chunks = ids.chunks(TOKEN_CHUNK_CELLS).map(<[u32]>::to_vec).collect();
        Ok(Self {
            shared,
            tokenizer,
            genes,
            chunks: Mutex::new(chunks),
        })
    }

    /// Whether rows carry per-token values (scGPT).
    pub fn has_values(&self) -> bool {
        self.tokenizer.has_values()
    }

    /// The next tokenized chunk (at most [`TOKEN_CHUNK_CELLS`] cells), or `None` when done.
    pub fn next_batch(&self) -> Result<Option<TokenBatch>> {
        let chunk = self
            .chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        let ds = self.shared.dataset();
        let ascending = chunk.windows(2).all(|pair| pair[0] < pair[1]);
        let (indptr, genes, values) = match &self.genes {
            // Every gene of cells in id order: their rows as stored.
            Resolved::All(_) if ascending => ds.cell_entries(chunk.clone())?,
            _ => {
                let csr = ds.submatrix_resolved(&Resolved::Ids(chunk.clone()), &self.genes)?;
                // Columns of the CSR are positions in the selection; tokens come from gene ids.
                let genes = csr
                    .indices
                    .iter()
                    .map(|&j| self.genes.id(j as usize))
                    .collect();
                (csr.indptr, genes, csr.data)
            }
        };
        let values: Vec<f32> = match values {
            Values::F32(v) => v,
            Values::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        };
        let batch = CellBatch::new(&indptr, &genes, &values, &chunk)?;
        self.tokenizer.tokenize(&batch).map(Some)
    }
}

/// A gene selection as the set it is for tokenization: distinct ids, ascending (`All` when it
/// covers every gene).
fn distinct_genes(genes: Resolved, n_genes: usize) -> Resolved {
    match genes {
        Resolved::All(n) => Resolved::All(n),
        Resolved::Ids(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            if ids.len() == n_genes {
                Resolved::All(n_genes)
            } else {
                Resolved::Ids(ids)
            }
        }
    }
}

/// The tokenizer of `spec` over the dataset's genes (names read only for dictionary files).
fn build_tokenizer(shared: &SharedDataset, spec: &TokenizerSpec) -> Result<Tokenizer> {
    let gene_names = || -> Result<Vec<String>> {
        let names = shared.gene_names()?;
        Ok(names
            .iter()
            .map(|n| n.unwrap_or_default().to_string())
            .collect())
    };
    spec.build(shared.dataset().shape().1, &gene_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gene_selections_tokenize_as_sets() {
        assert_eq!(
            distinct_genes(Resolved::Ids(vec![5, 1, 5, 3]), 10),
            Resolved::Ids(vec![1, 3, 5])
        );
        assert_eq!(
            distinct_genes(Resolved::Ids(vec![2, 0, 1, 0]), 3),
            Resolved::All(3)
        );
        assert_eq!(distinct_genes(Resolved::All(4), 4), Resolved::All(4));
        assert_eq!(
            distinct_genes(Resolved::Ids(vec![]), 4),
            Resolved::Ids(vec![])
        );
    }
}
