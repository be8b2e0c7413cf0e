//! Geneformer rank-value encoding.
//!
//! Per cell, from raw counts:
//! 1. keep genes in the vocabulary (and, when gene medians are given, genes that have a median,
//!    as Geneformer keeps only genes of its median dictionary);
//! 2. `x = count / n_counts * target_sum / median[gene]` (f64), `n_counts` per [`CountsScope`],
//!    `median` = 1.0 for every gene when no medians are given;
//! 3. rank the non-zero genes by `x` descending; **ties go to the smaller gene_integer_id first**
//!    (the order a stable sort over the dataset's gene order gives; Geneformer's unstable
//!    `argsort` leaves it unspecified);
//! 4. V1: the first `max_genes` tokens, no specials. V2: `<cls>`, the first `max_genes - 2`
//!    tokens, `<eos>`;
//! 5. pad to `L = max_genes` with PAD; the attention mask is true on real tokens.
//!
//! NaN counts are skipped. A cell without non-zero in-vocabulary genes gives an all-padding row
//! (V1) or `<cls> <eos>` (V2).

use std::cmp::Ordering;

use super::dictionary::GeneMedianDictionary;
use super::{fill_rows, gene_out_of_range, CellBatch, CountsScope, RowOut, TokenBatch, Vocab};
use crate::{Error, Result};

/// Geneformer model generation: decides the specials and the default input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneformerVersion {
    /// Geneformer V1 (2048 genes, no special tokens).
    V1,
    /// Geneformer V2 (4096 tokens: `<cls>`, 4094 genes, `<eos>`).
    V2,
}

/// Options of the rank-value encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneformerConfig {
    /// Which specials are added.
    pub version: GeneformerVersion,
    /// Sequence length `L`, specials included (V2 keeps `max_genes - 2` genes).
    pub max_genes: usize,
    /// Which genes `n_counts` sums over.
    pub counts_scope: CountsScope,
    /// Normalisation target (Geneformer: 10,000).
    pub target_sum: f64,
}

impl GeneformerConfig {
    /// The V1 preset: 2048 genes, no specials, `n_counts` over all genes, target 10,000.
    pub fn v1() -> Self {
        Self {
            version: GeneformerVersion::V1,
            max_genes: 2048,
            counts_scope: CountsScope::AllGenes,
            target_sum: 10_000.0,
        }
    }

    /// The V2 preset: 4096 tokens (`<cls>` + 4094 genes + `<eos>`), otherwise as V1.
    pub fn v2() -> Self {
        Self {
            version: GeneformerVersion::V2,
            max_genes: 4096,
            ..Self::v1()
        }
    }

    /// How many gene tokens fit in a row.
    fn gene_slots(&self) -> usize {
        match self.version {
            GeneformerVersion::V1 => self.max_genes,
            GeneformerVersion::V2 => self.max_genes.saturating_sub(2),
        }
    }
}

/// Per-gene non-zero medians, indexed by gene_integer_id.
#[derive(Debug, Clone)]
pub struct GeneMedians {
    /// NaN marks a gene without a median; such genes are dropped.
    medians: Vec<f64>,
}

impl GeneMedians {
    /// Medians of the dataset's genes from a dictionary keyed by gene name: `gene_names[g]` is
    /// the key of gene_integer_id `g`. Genes absent from `dict` have no median and are dropped
    /// by the tokenizer. Values are validated when the dictionary is loaded.
    pub fn from_dictionary<S: AsRef<str>>(dict: &GeneMedianDictionary, gene_names: &[S]) -> Self {
        let medians = gene_names
            .iter()
            .map(|n| dict.get(n.as_ref()).copied().unwrap_or(f64::NAN))
            .collect();
        Self { medians }
    }

    /// Medians given per gene_integer_id; each must be finite and positive.
    pub fn from_values(medians: Vec<f64>) -> Result<Self> {
        if let Some((g, m)) = medians
            .iter()
            .enumerate()
            .find(|(_, m)| !(m.is_finite() && **m > 0.0))
        {
            return Err(Error::invalid_argument(format!(
                "gene median of gene {g} is {m}; medians must be finite and > 0"
            )));
        }
        Ok(Self { medians })
    }

    /// Median of `gene`, or `None` when it has none.
    #[inline]
    pub fn get(&self, gene: u32) -> Option<f64> {
        self.medians
            .get(gene as usize)
            .copied()
            .filter(|m| !m.is_nan())
    }

    /// Number of genes covered (with or without a median).
    pub fn len(&self) -> usize {
        self.medians.len()
    }

    /// Whether no genes are covered.
    pub fn is_empty(&self) -> bool {
        self.medians.is_empty()
    }
}

/// A gene of the cell being ranked.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    x: f64,
    gene: u32,
    token: i64,
}

/// Descending `x`, then ascending gene id: a total order, so the output is deterministic.
fn rank_order(a: &Ranked, b: &Ranked) -> Ordering {
    b.x.total_cmp(&a.x).then(a.gene.cmp(&b.gene))
}

/// Rank-value encoder over a [`Vocab`].
#[derive(Debug, Clone)]
pub struct GeneformerTokenizer {
    config: GeneformerConfig,
    vocab: Vocab,
    medians: Option<GeneMedians>,
    /// `<cls>` and `<eos>`, resolved once (V2 only).
    specials: Option<(i64, i64)>,
}

impl GeneformerTokenizer {
    /// A tokenizer without gene medians (every median is 1.0). V2 needs `<cls>` and `<eos>` in
    /// the vocabulary; `max_genes` must be at least 1 (V1) or 2 (V2).
    pub fn new(config: GeneformerConfig, vocab: Vocab) -> Result<Self> {
        let min = match config.version {
            GeneformerVersion::V1 => 1,
            GeneformerVersion::V2 => 2,
        };
        if config.max_genes < min {
            return Err(Error::invalid_argument(format!(
                "Geneformer {:?}: max_genes is {}, must be at least {min}",
                config.version, config.max_genes
            )));
        }
        if !(config.target_sum.is_finite() && config.target_sum > 0.0) {
            return Err(Error::invalid_argument(format!(
                "Geneformer: target_sum is {}, must be finite and > 0",
                config.target_sum
            )));
        }
        let specials = match config.version {
            GeneformerVersion::V1 => None,
            GeneformerVersion::V2 => match (vocab.cls(), vocab.eos()) {
                (Some(cls), Some(eos)) => Some((cls, eos)),
                _ => {
                    return Err(Error::invalid_argument(
                        "Geneformer V2 needs '<cls>' and '<eos>' tokens; the vocabulary lacks \
                         one of them",
                    ))
                }
            },
        };
        Ok(Self {
            config,
            vocab,
            medians: None,
            specials,
        })
    }

    /// Adds gene medians; they must cover exactly the vocabulary's genes.
    pub fn with_medians(mut self, medians: GeneMedians) -> Result<Self> {
        if medians.len() != self.vocab.n_genes() {
            return Err(Error::invalid_argument(format!(
                "gene medians cover {} genes but the vocabulary maps {}",
                medians.len(),
                self.vocab.n_genes()
            )));
        }
        self.medians = Some(medians);
        Ok(self)
    }

    /// The options.
    pub fn config(&self) -> &GeneformerConfig {
        &self.config
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Row length `L` of every batch (`max_genes`).
    pub fn seq_len(&self) -> usize {
        self.config.max_genes
    }

    /// Tokenizes a batch; rows are in batch order. Fails on a gene id beyond the vocabulary's
    /// gene count.
    pub fn tokenize(&self, cells: &CellBatch<'_>) -> Result<TokenBatch> {
        let mut out = TokenBatch::padded(cells, self.seq_len(), self.vocab.pad(), None);
        fill_rows(&mut out, |scratch: &mut Vec<Ranked>, i, row| {
            let (genes, values) = cells.row(i);
            self.encode_cell(genes, values, cells.cell_ids()[i], scratch, row)
        })?;
        Ok(out)
    }

    /// Median of an in-vocabulary gene, or `None` when medians are given and it has none.
    #[inline]
    fn median(&self, gene: u32) -> Option<f64> {
        match &self.medians {
            Some(m) => m.get(gene),
            None => Some(1.0),
        }
    }

    fn encode_cell(
        &self,
        genes: &[u32],
        values: &[f32],
        cell: u32,
        ranked: &mut Vec<Ranked>,
        row: RowOut<'_>,
    ) -> Result<()> {
        let n_genes = self.vocab.n_genes();
        ranked.clear();
        let (mut total_all, mut total_kept) = (0.0f64, 0.0f64);
        for (&gene, &v) in genes.iter().zip(values) {
            if gene as usize >= n_genes {
                return Err(gene_out_of_range(gene, cell, n_genes));
            }
            if v.is_nan() {
                continue;
            }
            let v = f64::from(v);
            total_all += v;
            let Some(token) = self.vocab.token(gene) else {
                continue;
            };
            if self.median(gene).is_none() {
                continue;
            }
            total_kept += v;
            if v != 0.0 {
                // Holds the count until n_counts is known.
                ranked.push(Ranked { x: v, gene, token });
            }
        }
        let n_counts = match self.config.counts_scope {
            CountsScope::AllGenes => total_all,
            CountsScope::InVocabulary => total_kept,
        };
        for r in ranked.iter_mut() {
            // Kept genes have a median (checked above).
            let median = self.median(r.gene).unwrap_or(1.0);
            r.x = r.x / n_counts * self.config.target_sum / median;
        }

        let slots = self.config.gene_slots();
        if ranked.len() > slots {
            // Partition the top `slots` first so only they get sorted.
            ranked.select_nth_unstable_by(slots, rank_order);
            ranked.truncate(slots);
        }
        ranked.sort_unstable_by(rank_order);

        let first = usize::from(self.specials.is_some());
        for (k, r) in ranked.iter().enumerate() {
            row.ids[first + k] = r.token;
        }
        let mut len = first + ranked.len();
        if let Some((cls, eos)) = self.specials {
            row.ids[0] = cls;
            row.ids[len] = eos;
            len += 1;
        }
        row.mask[..len].fill(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::test_support::Cells;
    use crate::tokenize::vocab::{CLS, PAD, SEP};
    use crate::tokenize::TokenDictionary;
    use crate::ErrorKind;

    fn v1(max_genes: usize) -> GeneformerConfig {
        GeneformerConfig {
            max_genes,
            ..GeneformerConfig::v1()
        }
    }

    fn v2(max_genes: usize) -> GeneformerConfig {
        GeneformerConfig {
            max_genes,
            ..GeneformerConfig::v2()
        }
    }

    fn run(config: GeneformerConfig, vocab: Vocab, cells: &[&[(u32, f32)]]) -> TokenBatch {
        let c = Cells::new(cells);
        GeneformerTokenizer::new(config, vocab)
            .unwrap()
            .tokenize(&c.batch())
            .unwrap()
    }

    #[test]
    fn presets() {
        let (a, b) = (GeneformerConfig::v1(), GeneformerConfig::v2());
        assert_eq!(
            (a.version, a.max_genes, a.gene_slots()),
            (GeneformerVersion::V1, 2048, 2048)
        );
        assert_eq!(
            (b.version, b.max_genes, b.gene_slots()),
            (GeneformerVersion::V2, 4096, 4094)
        );
        assert_eq!(a.counts_scope, CountsScope::AllGenes);
        assert_eq!(a.target_sum, 10_000.0);
    }

    #[test]
    fn v1_rank_order_ties_and_padding() {
        // Storage order is shuffled on purpose. Counts: g0=2, g1=5, g2=2, g3=9, g4=0 (explicit).
        // Rank: g3 (9), g1 (5), then the tie g0/g2 (2) by ascending gene id; zeros dropped.
        let cell: &[(u32, f32)] = &[(2, 2.0), (4, 0.0), (3, 9.0), (0, 2.0), (1, 5.0)];
        let out = run(v1(6), Vocab::slaf(5, None).unwrap(), &[cell]);
        assert_eq!(out.seq_len, 6);
        assert_eq!(out.input_ids, vec![7, 5, 4, 6, PAD, PAD]);
        assert_eq!(
            out.attention_mask,
            vec![true, true, true, true, false, false]
        );
        assert_eq!(out.values, None);
        assert_eq!(out.cell_ids, vec![100]);
        assert_eq!(out.non_pad_tokens(), 4);
    }

    #[test]
    fn truncation_keeps_top_ranks() {
        // 5 expressed genes, room for 3: top three by count, ties by gene id.
        let cell: &[(u32, f32)] = &[(0, 1.0), (1, 3.0), (2, 3.0), (3, 7.0), (4, 1.0)];
        let out = run(v1(3), Vocab::slaf(5, None).unwrap(), &[cell]);
        assert_eq!(out.input_ids, vec![7, 5, 6]);
        assert_eq!(out.attention_mask, vec![true; 3]);
        let out = run(v2(4), Vocab::slaf(5, None).unwrap(), &[cell]);
        assert_eq!(out.input_ids, vec![CLS, 7, 5, SEP]);
    }

    #[test]
    fn v2_specials_short_cell_and_empty_cell() {
        let cell: &[(u32, f32)] = &[(1, 1.0), (0, 4.0)];
        let out = run(
            v2(6),
            Vocab::slaf(3, None).unwrap(),
            &[cell, &[], &[(2, 0.0)]],
        );
        assert_eq!(
            out.input_ids,
            vec![
                CLS, 4, 5, SEP, PAD, PAD, // ranked genes between the specials
                CLS, SEP, PAD, PAD, PAD, PAD, // no genes at all
                CLS, SEP, PAD, PAD, PAD, PAD, // only an explicit zero
            ]
        );
        assert_eq!(out.mask(0), &[true, true, true, true, false, false]);
        assert_eq!(out.mask(1), &[true, true, false, false, false, false]);
        assert_eq!(out.cell_ids, vec![100, 101, 102]);
        // V1: an all-zero cell is all padding.
        let out = run(v1(2), Vocab::slaf(3, None).unwrap(), &[&[(1, 0.0)]]);
        assert_eq!(out.input_ids, vec![PAD, PAD]);
        assert_eq!(out.attention_mask, vec![false, false]);
    }

    #[test]
    fn genes_outside_vocabulary_are_dropped() {
        // vocab_size 6: genes 0 and 1 only; gene 2 (the highest count) would be token 6.
        let cell: &[(u32, f32)] = &[(0, 1.0), (1, 2.0), (2, 50.0)];
        let out = run(v1(3), Vocab::slaf(3, Some(6)).unwrap(), &[cell]);
        assert_eq!(out.input_ids, vec![5, 4, PAD]);
        assert!(out.input_ids.iter().all(|&t| t < 6));

        // Dictionary layout: gene 1 ("B") is not in the dictionary.
        let dict: TokenDictionary = [
            ("<pad>", 0),
            ("<cls>", 1),
            ("<eos>", 2),
            ("A", 10),
            ("C", 11),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let vocab = Vocab::from_dictionary(&dict, &["A", "B", "C"]).unwrap();
        let out = run(v2(5), vocab, &[cell]);
        assert_eq!(out.input_ids, vec![1, 11, 10, 2, 0]);
    }

    #[test]
    fn gene_median_normalisation_reorders() {
        // Counts g0=10, g1=4, g2=6; medians 5, 1, 6 -> x ∝ 2, 4, 1: order g1, g0, g2.
        let cell: &[(u32, f32)] = &[(0, 10.0), (1, 4.0), (2, 6.0)];
        let vocab = Vocab::slaf(3, None).unwrap();
        let medians = GeneMedians::from_values(vec![5.0, 1.0, 6.0]).unwrap();
        let c = Cells::new(&[cell]);
        let t = GeneformerTokenizer::new(v1(3), vocab.clone())
            .unwrap()
            .with_medians(medians)
            .unwrap();
        assert_eq!(t.tokenize(&c.batch()).unwrap().input_ids, vec![5, 4, 6]);
        // Without medians: plain count order.
        assert_eq!(run(v1(3), vocab, &[cell]).input_ids, vec![4, 6, 5]);

        // From a dictionary: genes without a median are dropped, like Geneformer does.
        let dict: GeneMedianDictionary = [("A", 5.0), ("B", 1.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let medians = GeneMedians::from_dictionary(&dict, &["A", "B", "C"]);
        assert_eq!(medians.get(2), None);
        let t = GeneformerTokenizer::new(v1(3), Vocab::slaf(3, None).unwrap())
            .unwrap()
            .with_medians(medians)
            .unwrap();
        assert_eq!(t.tokenize(&c.batch()).unwrap().input_ids, vec![5, 4, PAD]);
    }

    #[test]
    fn n_counts_scope_changes_normalised_values() {
        // Ranking is invariant to the per-cell scale, so check x itself: with medians [1, 1]
        // and a 3rd gene outside the vocabulary, n_counts is 10 (all) or 4 (in vocabulary).
        let t = |scope| {
            let config = GeneformerConfig {
                counts_scope: scope,
                ..v1(4)
            };
            GeneformerTokenizer::new(config, Vocab::slaf(3, Some(6)).unwrap()).unwrap()
        };
        let mut ranked = Vec::new();
        let mut ids = [0i64; 4];
        let mut mask = [false; 4];
        for (scope, expected) in [
            (CountsScope::AllGenes, [3000.0, 1000.0]),
            (CountsScope::InVocabulary, [7500.0, 2500.0]),
        ] {
            let row = RowOut {
                ids: &mut ids,
                mask: &mut mask,
                values: None,
            };
            t(scope)
                .encode_cell(&[0, 1, 2], &[1.0, 3.0, 6.0], 0, &mut ranked, row)
                .unwrap();
            let xs: Vec<f64> = ranked.iter().map(|r| r.x).collect();
            assert_eq!(xs, expected, "{scope:?}");
            assert_eq!(ids[..2], [5, 4]);
        }
    }

    #[test]
    fn rank_order_is_independent_of_storage_order_and_parallelism() {
        // Many cells with heavy ties: every cell is a permutation of the same entries.
        let base: Vec<(u32, f32)> = (0..40).map(|g| (g, (g % 4) as f32 + 1.0)).collect();
        let mut cells: Vec<Vec<(u32, f32)>> = Vec::new();
        for k in 0..64 {
            let mut c = base.clone();
            c.rotate_left(k % 40);
            if k % 2 == 1 {
                c.reverse();
            }
            cells.push(c);
        }
        let refs: Vec<&[(u32, f32)]> = cells.iter().map(|c| c.as_slice()).collect();
        let out = run(v1(10), Vocab::slaf(40, None).unwrap(), &refs);
        // Value 4 genes are 3, 7, 11, ...: the first ten ranks are the ten of them, ascending.
        let expected: Vec<i64> = (0..10).map(|k| 3 + 4 * k + 4).collect();
        for i in 0..64 {
            assert_eq!(out.ids(i), expected.as_slice(), "cell {i}");
        }
    }

    #[test]
    fn errors() {
        let vocab = Vocab::slaf(3, None).unwrap();
        let e = GeneformerTokenizer::new(v2(1), vocab.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = GeneformerTokenizer::new(v1(0), vocab.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // V2 needs <cls>/<eos>.
        let dict: TokenDictionary = [("<pad>".to_string(), 0), ("A".to_string(), 1)]
            .into_iter()
            .collect();
        let e = GeneformerTokenizer::new(v2(4), Vocab::from_dictionary(&dict, &["A"]).unwrap())
            .unwrap_err();
        assert!(e.message().contains("<cls>"), "{e}");
        // Medians of the wrong length.
        let medians = GeneMedians::from_values(vec![1.0; 2]).unwrap();
        let t = GeneformerTokenizer::new(v1(2), vocab.clone()).unwrap();
        assert!(t.with_medians(medians).is_err());
        assert!(GeneMedians::from_values(vec![1.0, 0.0]).is_err());
        // Gene id beyond the vocabulary's genes.
        let c = Cells::new(&[&[(3, 1.0)]]);
        let t = GeneformerTokenizer::new(v1(2), vocab).unwrap();
        let e = t.tokenize(&c.batch()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert!(e.message().contains("cell 100"), "{e}");
    }
}
