//! A tokenizer chosen by name with loosely given options (SQL named parameters, Python keyword
//! arguments), checked and built in one place for every front end: DuckDB's `slaf_tokenize`,
//! the Polars expressions and the data loader.
//!
//! Options the chosen tokenizer would not use are errors, never silently ignored.

use super::geneformer::{GeneMedians, GeneformerConfig, GeneformerTokenizer};
use super::scgpt::{ScgptConfig, ScgptTokenizer};
use super::{load_gene_medians, load_token_dictionary, CellBatch, CountsScope, TokenBatch, Vocab};
use crate::error::{Error, ErrorKind, Result};
use crate::limits;

/// Which tokenizer, with which options; `None` keeps the tokenizer's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerSpec {
    /// `geneformer` (V1), `geneformer_v2` or `scgpt`.
    pub name: String,
    /// Sequence length (Geneformer `max_genes`, scGPT `max_len`).
    pub max_genes: Option<usize>,
    /// Cap of the slaf vocabulary; an error together with a token dictionary, which fixes the
    /// vocabulary itself.
    pub vocab_size: Option<usize>,
    /// scGPT bins; an error with Geneformer.
    pub n_bins: Option<usize>,
    /// scGPT continuous values instead of bins; an error with Geneformer or with `n_bins`.
    pub continuous: Option<bool>,
    /// scGPT seed (binning ties, subsampling); an error with Geneformer, which draws nothing.
    pub seed: Option<u64>,
    /// Token dictionary file (JSON, TSV or pickle) keyed by `gene_id`.
    pub token_dictionary: Option<String>,
    /// Gene-median dictionary file for Geneformer, keyed by `gene_id`; an error with scGPT.
    pub gene_median_file: Option<String>,
    /// Which genes the per-cell total sums over (both tokenizers).
    pub counts_scope: Option<CountsScope>,
    /// Geneformer's normalisation target (10,000); an error with scGPT.
    pub target_sum: Option<f64>,
    /// scGPT `normalize_total` target (off by default); an error with Geneformer.
    pub normalize_total: Option<f64>,
    /// scGPT `log1p` after normalisation; an error with Geneformer.
    pub log1p: Option<bool>,
    /// scGPT: in-vocabulary genes with zero counts take part; an error with Geneformer.
    pub include_zero_genes: Option<bool>,
}

/// A built tokenizer.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    Geneformer(GeneformerTokenizer),
    Scgpt(ScgptTokenizer),
}

impl Tokenizer {
    /// Tokenizes a batch (rows in batch order).
    pub fn tokenize(&self, batch: &CellBatch<'_>) -> Result<TokenBatch> {
        match self {
            Tokenizer::Geneformer(t) => t.tokenize(batch),
            Tokenizer::Scgpt(t) => t.tokenize(batch),
        }
    }

    /// [`Self::tokenize`] into `out`, reusing its memory across batches.
    pub fn tokenize_into(&self, batch: &CellBatch<'_>, out: &mut TokenBatch) -> Result<()> {
        match self {
            Tokenizer::Geneformer(t) => t.tokenize_into(batch, out),
            Tokenizer::Scgpt(t) => t.tokenize_into(batch, out),
        }
    }

    /// Row length `L` of every batch.
    pub fn seq_len(&self) -> usize {
        match self {
            Tokenizer::Geneformer(t) => t.seq_len(),
            Tokenizer::Scgpt(t) => t.seq_len(),
        }
    }

    /// Whether rows carry per-token values (scGPT).
    pub fn has_values(&self) -> bool {
        matches!(self, Tokenizer::Scgpt(_))
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        match self {
            Tokenizer::Geneformer(t) => t.vocab(),
            Tokenizer::Scgpt(t) => t.vocab(),
        }
    }
}

/// Fails on an option the chosen tokenizer would not use.
fn reject(option: &str, set: bool, why: &str) -> Result<()> {
    if set {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{option} {why}"),
        ));
    }
    Ok(())
}

impl TokenizerSpec {
    /// Builds the tokenizer for a dataset of `n_genes` genes; `gene_names` (the `gene_id` of
    /// every gene_integer_id) is asked for only when a dictionary file is given.
    pub fn build(
        &self,
        n_genes: usize,
        gene_names: &dyn Fn() -> Result<Vec<String>>,
    ) -> Result<Tokenizer> {
        reject(
            "vocab_size",
            self.vocab_size.is_some() && self.token_dictionary.is_some(),
            "caps the slaf vocabulary and cannot be combined with token_dictionary, whose ids \
             decide the vocabulary",
        )?;
        // Upper bounds by the names front ends use; the tokenizers check the lower ones.
        let sizes = [
            ("max_genes", self.max_genes, limits::MAX_SEQ_LEN),
            ("n_bins", self.n_bins, limits::MAX_N_BINS),
            ("vocab_size", self.vocab_size, limits::MAX_VOCAB_SIZE),
        ];
        for (name, value, max) in sizes {
            if let Some(value) = value {
                limits::check_range(name, value, 0, max)?;
            }
        }
        let vocab = match &self.token_dictionary {
            Some(path) => Vocab::from_dictionary(&load_token_dictionary(path)?, &gene_names()?)?,
            None => Vocab::slaf(n_genes, self.vocab_size)?,
        };
        let name = self.name.to_ascii_lowercase();
        match name.as_str() {
            "geneformer" | "geneformer_v1" | "geneformer_v2" => {
                let not_used = "applies to the scGPT tokenizer only, not to Geneformer";
                reject("n_bins", self.n_bins.is_some(), not_used)?;
                reject("continuous", self.continuous.is_some(), not_used)?;
                reject("seed", self.seed.is_some(), not_used)?;
                reject("normalize_total", self.normalize_total.is_some(), not_used)?;
                reject("log1p", self.log1p.is_some(), not_used)?;
                reject(
                    "include_zero_genes",
                    self.include_zero_genes.is_some(),
                    not_used,
                )?;
                let mut config = if name == "geneformer_v2" {
                    GeneformerConfig::v2()
                } else {
                    GeneformerConfig::v1()
                };
                if let Some(n) = self.max_genes {
                    config.max_genes = n;
                }
                if let Some(scope) = self.counts_scope {
                    config.counts_scope = scope;
                }
                if let Some(target) = self.target_sum {
                    config.target_sum = target;
                }
                let mut tokenizer = GeneformerTokenizer::new(config, vocab)?;
                if let Some(path) = &self.gene_median_file {
                    let medians =
                        GeneMedians::from_dictionary(&load_gene_medians(path)?, &gene_names()?);
                    tokenizer = tokenizer.with_medians(medians)?;
                }
                Ok(Tokenizer::Geneformer(tokenizer))
            }
            "scgpt" => {
                let not_used = "applies to Geneformer only, not to scGPT";
                reject("gene_medians", self.gene_median_file.is_some(), not_used)?;
                reject("target_sum", self.target_sum.is_some(), not_used)?;
                reject(
                    "n_bins",
                    self.n_bins.is_some() && self.continuous == Some(true),
                    "cannot be combined with continuous values",
                )?;
                let mut config = ScgptConfig::default();
                if let Some(n) = self.max_genes {
                    config.max_len = n;
                }
                if let Some(n) = self.n_bins {
                    config.n_bins = Some(n);
                }
                if self.continuous == Some(true) {
                    config.n_bins = None;
                }
                if let Some(seed) = self.seed {
                    config.seed = seed;
                }
                if let Some(scope) = self.counts_scope {
                    config.counts_scope = scope;
                }
                config.normalize_total = self.normalize_total;
                if let Some(log1p) = self.log1p {
                    config.log1p = log1p;
                }
                if let Some(zeros) = self.include_zero_genes {
                    config.include_zero_genes = zeros;
                }
                Ok(Tokenizer::Scgpt(ScgptTokenizer::new(config, vocab)?))
            }
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "unknown tokenizer {other:?}: use 'geneformer', 'geneformer_v2' or 'scgpt'"
                ),
            )),
        }
    }
}

/// Parses `all` / `in_vocabulary` (the values users give for [`CountsScope`]).
pub fn parse_counts_scope(text: &str) -> Result<CountsScope> {
    match text.to_ascii_lowercase().as_str() {
        "all" | "all_genes" => Ok(CountsScope::AllGenes),
        "in_vocabulary" | "vocabulary" => Ok(CountsScope::InVocabulary),
        other => Err(Error::invalid_argument(format!(
            "unknown counts_scope {other:?}: use 'all' or 'in_vocabulary'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> TokenizerSpec {
        TokenizerSpec {
            name: name.into(),
            ..TokenizerSpec::default()
        }
    }

    fn no_names() -> Result<Vec<String>> {
        panic!("gene names are needed only with dictionary files")
    }

    #[test]
    fn sizes_beyond_the_limits_are_resource_errors() {
        let cases = [
            (
                "geneformer",
                Some(1_000_000_000),
                None,
                None,
                "max_genes is 1000000000",
            ),
            (
                "scgpt",
                Some(limits::MAX_SEQ_LEN + 1),
                None,
                None,
                "max_genes is 262145",
            ),
            (
                "scgpt",
                None,
                Some(2_000_000_000),
                None,
                "n_bins is 2000000000",
            ),
            ("geneformer", None, None, Some(usize::MAX), "vocab_size is"),
        ];
        for (name, max_genes, n_bins, vocab_size, expected) in cases {
            let spec = TokenizerSpec {
                max_genes,
                n_bins,
                vocab_size,
                ..spec(name)
            };
            let err = spec.build(10, &no_names).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{err}");
            assert!(err.message().contains(expected), "{err}");
        }
        let at_limit = TokenizerSpec {
            max_genes: Some(limits::MAX_SEQ_LEN),
            ..spec("geneformer")
        };
        assert_eq!(
            at_limit.build(10, &no_names).unwrap().seq_len(),
            limits::MAX_SEQ_LEN
        );
    }

    #[test]
    fn options_of_the_other_tokenizer_are_errors() {
        let cases = [
            (
                "geneformer",
                TokenizerSpec {
                    n_bins: Some(51),
                    ..spec("geneformer")
                },
            ),
            (
                "geneformer",
                TokenizerSpec {
                    seed: Some(1),
                    ..spec("geneformer")
                },
            ),
            (
                "geneformer",
                TokenizerSpec {
                    log1p: Some(true),
                    ..spec("geneformer")
                },
            ),
            (
                "geneformer",
                TokenizerSpec {
                    normalize_total: Some(1e4),
                    ..spec("geneformer")
                },
            ),
            (
                "scgpt",
                TokenizerSpec {
                    target_sum: Some(1e4),
                    ..spec("scgpt")
                },
            ),
            (
                "scgpt",
                TokenizerSpec {
                    gene_median_file: Some("m.json".into()),
                    ..spec("scgpt")
                },
            ),
            (
                "scgpt",
                TokenizerSpec {
                    n_bins: Some(5),
                    continuous: Some(true),
                    ..spec("scgpt")
                },
            ),
            (
                "scgpt",
                TokenizerSpec {
                    vocab_size: Some(10),
                    token_dictionary: Some("d.json".into()),
                    ..spec("scgpt")
                },
            ),
            ("bert", spec("bert")),
        ];
        for (what, s) in cases {
            let e = s.build(10, &no_names).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{what}: {e}");
        }
    }

    #[test]
    fn options_reach_the_tokenizers() {
        let t = TokenizerSpec {
            max_genes: Some(7),
            counts_scope: Some(CountsScope::InVocabulary),
            target_sum: Some(100.0),
            ..spec("geneformer_v2")
        }
        .build(10, &no_names)
        .unwrap();
        let Tokenizer::Geneformer(g) = &t else {
            panic!("geneformer expected")
        };
        assert_eq!(g.config().max_genes, 7);
        assert_eq!(g.config().counts_scope, CountsScope::InVocabulary);
        assert_eq!(g.config().target_sum, 100.0);
        assert!(!t.has_values());

        let t = TokenizerSpec {
            continuous: Some(true),
            seed: Some(3),
            normalize_total: Some(1e4),
            log1p: Some(true),
            include_zero_genes: Some(true),
            vocab_size: Some(9),
            ..spec("scgpt")
        }
        .build(10, &no_names)
        .unwrap();
        let Tokenizer::Scgpt(s) = &t else {
            panic!("scgpt expected")
        };
        let c = s.config();
        assert_eq!(
            (c.n_bins, c.seed, c.normalize_total, c.log1p),
            (None, 3, Some(1e4), true)
        );
        assert!(c.include_zero_genes);
        assert_eq!(t.vocab().size(), 9);
        assert!(t.has_values());
    }

    #[test]
    fn counts_scope_names() {
        assert_eq!(parse_counts_scope("all").unwrap(), CountsScope::AllGenes);
        assert_eq!(
            parse_counts_scope("In_Vocabulary").unwrap(),
            CountsScope::InVocabulary
        );
        assert!(parse_counts_scope("some").is_err());
    }
}
