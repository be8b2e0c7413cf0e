//! Tokenized cells streamed a chunk at a time (DuckDB's `slaf_tokenize`): the selected cells'
//! rows are read through their row ranges and handed to the core tokenizers
//! ([`crate::tokenize::geneformer`], [`crate::tokenize::scgpt`]) — the one implementation of
//! the tokenization rules.
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
use crate::error::{Error, ErrorKind, Result};
use crate::selection::Resolved;
use crate::slice::{Selection, SharedDataset};
use crate::tokenize::geneformer::{GeneMedians, GeneformerConfig, GeneformerTokenizer};
use crate::tokenize::scgpt::{ScgptConfig, ScgptTokenizer};
use crate::tokenize::{load_gene_medians, load_token_dictionary, CellBatch, TokenBatch, Vocab};

/// Cells tokenized per chunk (one chunk fills at most one 2048-row engine vector).
pub const TOKEN_CHUNK_CELLS: usize = 512;

/// Which tokenizer, with which options; `None` keeps the tokenizer's default.
#[derive(Debug, Clone, Default)]
pub struct TokenizerSpec {
    /// `geneformer` (V1), `geneformer_v2` or `scgpt`.
    pub name: String,
    /// Sequence length (Geneformer `max_genes`, scGPT `max_len`).
    pub max_genes: Option<usize>,
    /// Cap of the slaf vocabulary (ignored with a token dictionary).
    pub vocab_size: Option<usize>,
    /// scGPT bins.
    pub n_bins: Option<usize>,
    /// scGPT seed.
    pub seed: Option<u64>,
    /// Token dictionary file (JSON, TSV or pickle) keyed by `gene_id`.
    pub token_dictionary: Option<String>,
    /// Gene-median dictionary file for Geneformer, keyed by `gene_id`.
    pub gene_median_file: Option<String>,
}

enum Tokenizer {
    Geneformer(GeneformerTokenizer),
    Scgpt(ScgptTokenizer),
}

impl Tokenizer {
    fn tokenize(&self, batch: &CellBatch<'_>) -> Result<TokenBatch> {
        match self {
            Tokenizer::Geneformer(t) => t.tokenize(batch),
            Tokenizer::Scgpt(t) => t.tokenize(batch),
        }
    }
}

/// Tokenized cells of a selection; every method may be called from several threads at once.
pub struct TokenScan {
    shared: Arc<SharedDataset>,
    tokenizer: Tokenizer,
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
        if selection.genes != crate::Selector::All || selection.gene_filter.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "tokenization uses every gene; gene selections are not supported",
            ));
        }
        let tokenizer = build_tokenizer(&shared, spec)?;
        let ids: Vec<u32> = (0..cells.len()).map(|i| cells.id(i)).collect();
        let chunks = ids.chunks(TOKEN_CHUNK_CELLS).map(<[u32]>::to_vec).collect();
        Ok(Self {
            shared,
            tokenizer,
            chunks: Mutex::new(chunks),
        })
    }

    /// Whether rows carry per-token values (scGPT).
    pub fn has_values(&self) -> bool {
        matches!(self.tokenizer, Tokenizer::Scgpt(_))
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
        let csr =
            ds.submatrix_resolved(&Resolved::Ids(chunk.clone()), &Resolved::All(ds.shape().1))?;
        let genes: Vec<u32> = csr.indices.iter().map(|&g| g as u32).collect();
        let values: Vec<f32> = match csr.data {
            Values::F32(v) => v,
            Values::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        };
        let batch = CellBatch::new(&csr.indptr, &genes, &values, &chunk)?;
        self.tokenizer.tokenize(&batch).map(Some)
    }
}

fn build_tokenizer(shared: &SharedDataset, spec: &TokenizerSpec) -> Result<Tokenizer> {
    let n_genes = shared.dataset().shape().1;
    let gene_names = || -> Result<Vec<String>> {
        let names = shared.gene_names()?;
        Ok(names
            .iter()
            .map(|n| n.unwrap_or_default().to_string())
            .collect())
    };
    let vocab = match &spec.token_dictionary {
        Some(path) => Vocab::from_dictionary(&load_token_dictionary(path)?, &gene_names()?)?,
        None => Vocab::slaf(n_genes, spec.vocab_size)?,
    };
    let name = spec.name.to_ascii_lowercase();
    match name.as_str() {
        "geneformer" | "geneformer_v1" | "geneformer_v2" => {
            let mut config = if name == "geneformer_v2" {
                GeneformerConfig::v2()
            } else {
                GeneformerConfig::v1()
            };
            if let Some(n) = spec.max_genes {
                config.max_genes = n;
            }
            let mut tokenizer = GeneformerTokenizer::new(config, vocab)?;
            if let Some(path) = &spec.gene_median_file {
                let medians =
                    GeneMedians::from_dictionary(&load_gene_medians(path)?, &gene_names()?);
                tokenizer = tokenizer.with_medians(medians)?;
            }
            Ok(Tokenizer::Geneformer(tokenizer))
        }
        "scgpt" => {
            if spec.gene_median_file.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "gene medians apply to Geneformer only, not to scGPT",
                ));
            }
            let mut config = ScgptConfig::default();
            if let Some(n) = spec.max_genes {
                config.max_len = n;
            }
            if let Some(n) = spec.n_bins {
                config.n_bins = Some(n);
            }
            if let Some(seed) = spec.seed {
                config.seed = seed;
            }
            Ok(Tokenizer::Scgpt(ScgptTokenizer::new(config, vocab)?))
        }
        other => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("unknown tokenizer {other:?}: use 'geneformer', 'geneformer_v2' or 'scgpt'"),
        )),
    }
}
