//! scGPT tokenization: per-cell value binning, `<cls>` first, seeded subsampling.
//!
//! Per cell:
//! 1. keep genes in the vocabulary; by default only non-zero ones (`include_zero_genes` adds
//!    every other in-vocabulary gene with value 0, as scGPT's `include_zero_gene=True`). Genes are
//!    taken in ascending gene_integer_id order, whatever the storage order;
//! 2. optional preprocessing, as scanpy: `normalize_total` (`x / (n_counts / target_sum)`, with
//!    `n_counts` per [`CountsScope`]) then `log1p` (natural log); computed in f64, stored as f32;
//! 3. binning (`n_bins = Some(n)`), as scGPT's `binning`: `edges = quantile(nonzero,
//!    linspace(0, 1, n - 1))` with numpy's default linear method, then each non-zero value `x`
//!    gets `left = #edges <= x` and `right = #edges < x` (`np.digitize` without / with
//!    `right=True`) and its bin is drawn uniformly from `right + 1 ..= left` (scGPT's
//!    `ceil(r * (right - left) + left)`). A value equal to a single edge therefore always gets
//!    `left`; the seeded draw only decides among runs of equal edges, which count data produce
//!    whenever many genes share a value. Bins lie in `1..=n - 1`; zeros get 0. With
//!    `n_bins = None` the (preprocessed) values are returned as they are;
//! 4. when more than `max_len - 1` genes remain, `max_len - 1` of them are drawn at random without
//!    replacement (not top-k), in draw order, as `np.random.choice(..., replace=False)` does;
//! 5. row = `<cls>` (value 0) then the genes; padded to `L = max_len` with `<pad>` / value -2.
//!
//! Randomness: each cell draws from its own ChaCha8 stream, keyed by `(seed, cell_id)`, so output
//! depends only on the seed and the cell, never on batch composition or thread scheduling. Use a
//! different seed per epoch for fresh draws ([`ScgptTokenizer::tokenize_seeded`]).

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{
    fill_rows, gene_out_of_range, CellBatch, CountsScope, Padding, RowOut, TokenBatch, Vocab,
};
use crate::{limits, Error, Result};

/// Value of padding positions.
pub const PAD_VALUE: f32 = -2.0;
/// Value of masked positions (see [`mask_values`]).
pub const MASK_VALUE: f32 = -1.0;
/// Value of the `<cls>` position.
pub const CLS_VALUE: f32 = 0.0;

/// Options of scGPT tokenization.
#[derive(Debug, Clone, PartialEq)]
pub struct ScgptConfig {
    /// Sequence length `L`, `<cls>` included (at most `max_len - 1` genes).
    pub max_len: usize,
    /// Number of bins (scGPT: 51), or `None` for continuous values.
    pub n_bins: Option<usize>,
    /// `normalize_total` target (scanpy / scGPT: 1e4), or `None` to skip.
    pub normalize_total: Option<f64>,
    /// Apply `log1p` after normalisation.
    pub log1p: bool,
    /// Which genes `normalize_total` sums over.
    pub counts_scope: CountsScope,
    /// Include in-vocabulary genes with zero counts (they get bin 0 / value 0).
    pub include_zero_genes: bool,
    /// Seed of the binning tie draws and of subsampling.
    pub seed: u64,
}

impl Default for ScgptConfig {
    /// scGPT's defaults: 1200 tokens, 51 bins, raw counts, non-zero genes only, seed 0.
    fn default() -> Self {
        Self {
            max_len: 1200,
            n_bins: Some(51),
            normalize_total: None,
            log1p: false,
            counts_scope: CountsScope::AllGenes,
            include_zero_genes: false,
            seed: 0,
        }
    }
}

/// A gene of the cell being tokenized.
#[derive(Debug, Clone, Copy)]
struct Gene {
    gene: u32,
    token: i64,
    value: f32,
}

/// Working buffers of one rayon task, reused across its cells.
#[derive(Default)]
struct Scratch {
    genes: Vec<Gene>,
    /// Stored entries of the cell, when zero genes are merged in.
    stored: Vec<Gene>,
    sorted: Vec<f32>,
    edges: Vec<f64>,
    order: Vec<u32>,
}

/// scGPT tokenizer over a [`Vocab`] (needs `<cls>`).
#[derive(Debug, Clone)]
pub struct ScgptTokenizer {
    config: ScgptConfig,
    vocab: Vocab,
    cls: i64,
}

impl ScgptTokenizer {
    /// Checks the options: `max_len >= 1`, `n_bins >= 2`, a finite positive target.
    pub fn new(config: ScgptConfig, vocab: Vocab) -> Result<Self> {
        if config.max_len == 0 {
            return Err(Error::invalid_argument(
                "scGPT: max_len is 0, must be at least 1 (room for <cls>)",
            ));
        }
        limits::check_range("max_len", config.max_len, 1, limits::MAX_SEQ_LEN)?;
        if let Some(n) = config.n_bins {
            if n < 2 {
                return Err(Error::invalid_argument(format!(
                    "scGPT: n_bins is {n}, must be at least 2"
                )));
            }
            limits::check_range("n_bins", n, 2, limits::MAX_N_BINS)?;
        }
        if let Some(t) = config.normalize_total {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::invalid_argument(format!(
                    "scGPT: normalize_total target is {t}, must be finite and > 0"
                )));
            }
        }
        let cls = vocab.cls().ok_or_else(|| {
            Error::invalid_argument("scGPT needs a '<cls>' token; the vocabulary has none")
        })?;
        Ok(Self { config, vocab, cls })
    }

    /// The options.
    pub fn config(&self) -> &ScgptConfig {
        &self.config
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Row length `L` of every batch (`max_len`).
    pub fn seq_len(&self) -> usize {
        self.config.max_len
    }

    /// Tokenizes a batch with the configured seed.
    pub fn tokenize(&self, cells: &CellBatch<'_>) -> Result<TokenBatch> {
        self.tokenize_seeded(cells, self.config.seed)
    }

    /// Tokenizes a batch with `seed` instead of the configured one (e.g. seed + epoch).
    pub fn tokenize_seeded(&self, cells: &CellBatch<'_>, seed: u64) -> Result<TokenBatch> {
        let mut out = TokenBatch::default();
        self.tokenize_seeded_into(cells, seed, &mut out)?;
        Ok(out)
    }

    /// [`Self::tokenize`] into `out`, reusing its memory.
    pub fn tokenize_into(&self, cells: &CellBatch<'_>, out: &mut TokenBatch) -> Result<()> {
        self.tokenize_seeded_into(cells, self.config.seed, out)
    }

    /// [`Self::tokenize_seeded`] into `out`, reusing its memory.
    pub fn tokenize_seeded_into(
        &self,
        cells: &CellBatch<'_>,
        seed: u64,
        out: &mut TokenBatch,
    ) -> Result<()> {
        out.reset(cells, self.seq_len(), true)?;
        let base = ChaCha8Rng::seed_from_u64(seed);
        let pad = Padding {
            id: self.vocab.pad(),
            value: PAD_VALUE,
        };
        fill_rows(out, pad, |scratch: &mut Scratch, i, row| {
            let (genes, values) = cells.row(i);
            let cell = cells.cell_ids()[i];
            let mut rng = base.clone();
            rng.set_stream(u64::from(cell));
            self.encode_cell(genes, values, cell, &mut rng, scratch, row)
        })
    }

    fn encode_cell(
        &self,
        genes: &[u32],
        values: &[f32],
        cell: u32,
        rng: &mut ChaCha8Rng,
        s: &mut Scratch,
        row: RowOut<'_>,
    ) -> Result<usize> {
        let n_genes = self.vocab.n_genes();
        let keep_zeros = self.config.include_zero_genes;
        let collected = if keep_zeros {
            &mut s.stored
        } else {
            &mut s.genes
        };
        collected.clear();
        let (mut total_all, mut total_kept) = (0.0f64, 0.0f64);
        for (&gene, &value) in genes.iter().zip(values) {
            if gene as usize >= n_genes {
                return Err(gene_out_of_range(gene, cell, n_genes));
            }
            if value.is_nan() {
                continue;
            }
            total_all += f64::from(value);
            let Some(token) = self.vocab.token(gene) else {
                continue;
            };
            total_kept += f64::from(value);
            if value != 0.0 {
                collected.push(Gene { gene, token, value });
            }
        }
        if !collected.is_sorted_by_key(|g| g.gene) {
            collected.sort_unstable_by_key(|g| g.gene);
        }
        if keep_zeros {
            // Merge the sorted non-zero entries into every in-vocabulary gene.
            s.genes.clear();
            let mut stored = s.stored.iter().peekable();
            for gene in 0..n_genes as u32 {
                let Some(token) = self.vocab.token(gene) else {
                    continue;
                };
                let value = match stored.peek() {
                    Some(g) if g.gene == gene => stored.next().map_or(0.0, |g| g.value),
                    _ => 0.0,
                };
                s.genes.push(Gene { gene, token, value });
            }
        }

        if let Some(target) = self.config.normalize_total {
            let n_counts = match self.config.counts_scope {
                CountsScope::AllGenes => total_all,
                CountsScope::InVocabulary => total_kept,
            };
            // scanpy leaves cells with no counts unscaled.
            if n_counts > 0.0 {
                let divisor = n_counts / target;
                for g in &mut s.genes {
                    g.value = (f64::from(g.value) / divisor) as f32;
                }
            }
        }
        if self.config.log1p {
            for g in &mut s.genes {
                g.value = f64::from(g.value).ln_1p() as f32;
            }
        }
        if let Some(n_bins) = self.config.n_bins {
            bin_values(&mut s.genes, n_bins, &mut s.sorted, &mut s.edges, rng);
        }

        let slots = self.config.max_len - 1;
        let values = row.values.expect("scGPT rows carry values");
        row.ids[0] = self.cls;
        values[0] = CLS_VALUE;
        let n = s.genes.len();
        if n <= slots {
            for (k, g) in s.genes.iter().enumerate() {
                row.ids[1 + k] = g.token;
                values[1 + k] = g.value;
            }
        } else {
            sample_without_replacement(n, slots, &mut s.order, rng);
            for (k, &j) in s.order[..slots].iter().enumerate() {
                let g = s.genes[j as usize];
                row.ids[1 + k] = g.token;
                values[1 + k] = g.value;
            }
        }
        Ok(1 + n.min(slots))
    }
}

/// Replaces each value by its bin, as scGPT's `binning` + `_digitize` (see the module docs).
fn bin_values(
    genes: &mut [Gene],
    n_bins: usize,
    sorted: &mut Vec<f32>,
    edges: &mut Vec<f64>,
    rng: &mut ChaCha8Rng,
) {
    sorted.clear();
    sorted.extend(genes.iter().map(|g| g.value).filter(|&v| v != 0.0));
    if sorted.is_empty() {
        // scGPT returns an all-zero row.
        genes.iter_mut().for_each(|g| g.value = 0.0);
        return;
    }
    sorted.sort_unstable_by(f32::total_cmp);
    numpy_quantiles(sorted, n_bins - 1, edges);
    for g in genes {
        if g.value == 0.0 {
            continue;
        }
        let x = f64::from(g.value);
        let left = edges.partition_point(|&e| e <= x);
        let right = edges.partition_point(|&e| e < x);
        let span = left - right;
        let bin = if span <= 1 {
            left
        } else {
            left - below(rng, span as u64) as usize
        };
        g.value = bin as f32;
    }
}

/// `np.quantile(sorted, np.linspace(0, 1, n_q))` with the default linear method, step by step as
/// numpy computes it for a float32 array: the neighbour difference in f32, the rest in f64.
fn numpy_quantiles(sorted: &[f32], n_q: usize, out: &mut Vec<f64>) {
    out.clear();
    let n = sorted.len();
    let last = (n - 1) as f64;
    // linspace: i * (1 / (n_q - 1)), last point exactly 1; a single point is 0.
    let step = if n_q > 1 { 1.0 / (n_q - 1) as f64 } else { 0.0 };
    for i in 0..n_q {
        let q = if n_q > 1 && i == n_q - 1 {
            1.0
        } else {
            i as f64 * step
        };
        let virtual_index = last * q;
        let edge = if virtual_index >= last {
            f64::from(sorted[n - 1])
        } else {
            let prev = virtual_index.floor();
            let lo = prev as usize;
            let (a, b) = (sorted[lo], sorted[lo + 1]);
            let t = virtual_index - prev;
            let diff = f64::from(b - a);
            // numpy's _lerp: the formula switches at t = 0.5 so that t = 1 hits b exactly.
            if t >= 0.5 {
                f64::from(b) - diff * (1.0 - t)
            } else {
                f64::from(a) + diff * t
            }
        };
        out.push(edge);
    }
}

/// Fills `order[..k]` with `k` distinct indices of `0..n` in random order (partial
/// Fisher-Yates).
fn sample_without_replacement(n: usize, k: usize, order: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
    order.clear();
    order.extend(0..n as u32);
    for i in 0..k {
        let j = i + below(rng, (n - i) as u64) as usize;
        order.swap(i, j);
    }
}

/// Uniform integer in `0..n` (Lemire's multiply-and-reject, unbiased); `n > 0`.
pub(crate) fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// Masked-value helper for MLM training: in each row, `floor(n * mask_ratio)` of the `n` real
/// gene positions (`<cls>` and padding excluded) get [`MASK_VALUE`], chosen at random. Draws come
/// from a stream keyed by `(seed, cell_id)` separate from tokenization's. Returns the number of
/// masked positions.
pub fn mask_values(batch: &mut TokenBatch, mask_ratio: f64, seed: u64) -> Result<usize> {
    if !(0.0..=1.0).contains(&mask_ratio) {
        return Err(Error::invalid_argument(format!(
            "mask_ratio is {mask_ratio}, must be within [0, 1]"
        )));
    }
    let l = batch.seq_len;
    let values = batch
        .values
        .as_mut()
        .ok_or_else(|| Error::invalid_argument("mask_values: the batch carries no values"))?;
    let base = ChaCha8Rng::seed_from_u64(seed);
    let masked = values
        .par_chunks_mut(l)
        .zip(batch.attention_mask.par_chunks(l))
        .zip(batch.cell_ids.par_iter())
        .map_init(Vec::new, |order, ((values, mask), &cell)| {
            // Real positions are a prefix; position 0 is <cls>.
            let n = mask.iter().take_while(|&&m| m).count().saturating_sub(1);
            let k = (n as f64 * mask_ratio).floor() as usize;
            let mut rng = base.clone();
            // Streams >= 2^32 never collide with tokenization's (cell ids are u32).
            rng.set_stream((1u64 << 32) | (cell as u64 & 0xffff_ffff));
            sample_without_replacement(n, k, order, &mut rng);
            for &j in &order[..k] {
                values[1 + j as usize] = MASK_VALUE;
            }
            k
        })
        .sum();
    Ok(masked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::test_support::Cells;
    use crate::tokenize::vocab::{CLS, PAD};
    use crate::tokenize::TokenDictionary;
    use crate::ErrorKind;

    fn tokenizer(config: ScgptConfig, n_genes: usize) -> ScgptTokenizer {
        ScgptTokenizer::new(config, Vocab::slaf(n_genes, None).unwrap()).unwrap()
    }

    fn run(config: ScgptConfig, n_genes: usize, cells: &[&[(u32, f32)]]) -> TokenBatch {
        let c = Cells::new(cells);
        tokenizer(config, n_genes).tokenize(&c.batch()).unwrap()
    }

    fn edges(values: &[f32], n_q: usize) -> Vec<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f32::total_cmp);
        let mut out = Vec::new();
        numpy_quantiles(&sorted, n_q, &mut out);
        out
    }

    #[test]
    fn quantiles_match_numpy() {
        // np.quantile([1, 2, 3, 4], np.linspace(0, 1, 5)) == [1, 1.75, 2.5, 3.25, 4]
        assert_eq!(
            edges(&[4.0, 1.0, 3.0, 2.0], 5),
            vec![1.0, 1.75, 2.5, 3.25, 4.0]
        );
        // np.quantile([1, 1, 1, 5], np.linspace(0, 1, 4)) == [1, 1, 1, 5]
        assert_eq!(edges(&[1.0, 1.0, 1.0, 5.0], 4), vec![1.0, 1.0, 1.0, 5.0]);
        // np.quantile([2, 10], np.linspace(0, 1, 3)) == [2, 6, 10]; a single point is the min.
        assert_eq!(edges(&[10.0, 2.0], 3), vec![2.0, 6.0, 10.0]);
        assert_eq!(edges(&[10.0, 2.0], 1), vec![2.0]);
        assert_eq!(edges(&[7.0], 3), vec![7.0, 7.0, 7.0]);
        // np.quantile(np.float32([0.1, 0.7, 0.2]), np.linspace(0, 1, 4))
        //   == [0.1, 0.16666667, 0.36666667, 0.7] (f32 inputs, f64 output)
        let e = edges(&[0.1, 0.7, 0.2], 4);
        let (a, b, c) = (0.1f32, 0.2f32, 0.7f32);
        let t1 = 2.0 * (1.0 / 3.0); // >= 0.5: interpolated back from the upper neighbour
        let t2 = 2.0 * (2.0 * (1.0 / 3.0)) - 1.0; // < 0.5: from the lower one
        let expected = [
            f64::from(a),
            f64::from(b) - f64::from(b - a) * (1.0 - t1),
            f64::from(b) + f64::from(c - b) * t2,
            f64::from(c),
        ];
        assert_eq!(e, expected);
        assert!((e[1] - 0.166_666_67).abs() < 1e-7, "{e:?}");
        assert!((e[2] - 0.366_666_67).abs() < 1e-7, "{e:?}");
    }

    #[test]
    fn binning_without_ties() {
        // Non-zero values 1, 2, 3, 4 with n_bins 6: edges [1, 1.75, 2.5, 3.25, 4].
        // np.digitize -> 1, 2, 3, 5 (4 equals the last edge alone -> left bin 5).
        let config = ScgptConfig {
            n_bins: Some(6),
            ..ScgptConfig::default()
        };
        let out = run(config, 6, &[&[(3, 3.0), (0, 1.0), (5, 4.0), (1, 2.0)]]);
        assert_eq!(out.ids(0)[..5], [CLS, 4, 5, 7, 9]);
        assert_eq!(out.row_values(0).unwrap()[..5], [0.0, 1.0, 2.0, 3.0, 5.0]);
        assert!(out.row_values(0).unwrap()[5..]
            .iter()
            .all(|&v| v == PAD_VALUE));
    }

    #[test]
    fn binning_edge_ties_are_seeded() {
        // Values [1, 1, 1, 5], n_bins 5: edges [1, 1, 1, 5]. Each 1 has left = 3, right = 0, so
        // scGPT draws its bin from {1, 2, 3}; 5 equals only the last edge -> bin 4.
        let cell: Vec<(u32, f32)> = vec![(0, 1.0), (1, 1.0), (2, 1.0), (3, 5.0)];
        let config = |seed| ScgptConfig {
            n_bins: Some(5),
            seed,
            ..ScgptConfig::default()
        };
        let cells: Vec<&[(u32, f32)]> = vec![cell.as_slice(); 50];
        let a = run(config(7), 4, &cells);
        let b = run(config(7), 4, &cells);
        assert_eq!(a, b, "same seed, same output");
        let mut seen = [false; 4];
        for i in 0..50 {
            let v = a.row_values(i).unwrap();
            assert_eq!(v[4], 4.0);
            for &bin in &v[1..4] {
                assert!((1.0..=3.0).contains(&bin), "{bin}");
                seen[bin as usize] = true;
            }
        }
        assert_eq!(seen, [false, true, true, true], "every tied bin gets drawn");
        let c = run(config(8), 4, &cells);
        assert_ne!(a.values, c.values, "another seed draws differently");
        // Cells with the same content but different ids draw independently.
        assert_ne!(a.row_values(0), a.row_values(1));
        // A cell's draws do not depend on the rest of the batch.
        let single = run(config(7), 4, &[cell.as_slice()]);
        assert_eq!(single.row_values(0), a.row_values(0));
    }

    #[test]
    fn constant_cell_and_all_zero_cell() {
        // One non-zero value: every edge equals it, so its bin is drawn from 1..=n_bins-1.
        let out = run(ScgptConfig::default(), 3, &[&[(1, 4.0)], &[(0, 0.0)], &[]]);
        let v = out.row_values(0).unwrap();
        assert!((1.0..=50.0).contains(&v[1]), "{}", v[1]);
        assert_eq!(out.ids(0)[..2], [CLS, 5]);
        // Empty and all-zero cells: just <cls>.
        for i in 1..3 {
            assert_eq!(out.ids(i)[..2], [CLS, PAD]);
            assert_eq!(out.mask(i)[..2], [true, false]);
            assert_eq!(out.row_values(i).unwrap()[..2], [CLS_VALUE, PAD_VALUE]);
        }
    }

    #[test]
    fn continuous_values_and_preprocessing() {
        let cell: &[(u32, f32)] = &[(2, 3.0), (0, 1.0)];
        let raw = ScgptConfig {
            n_bins: None,
            max_len: 4,
            ..ScgptConfig::default()
        };
        let out = run(raw.clone(), 3, &[cell]);
        assert_eq!(out.input_ids, vec![CLS, 4, 6, PAD]);
        assert_eq!(out.values, Some(vec![0.0, 1.0, 3.0, PAD_VALUE]));
        assert_eq!(out.attention_mask, vec![true, true, true, false]);

        // normalize_total(1e4) + log1p: 1 -> ln(2501), 3 -> ln(7501).
        let pre = ScgptConfig {
            normalize_total: Some(1e4),
            log1p: true,
            ..raw.clone()
        };
        let out = run(pre.clone(), 3, &[cell]);
        let v = out.row_values(0).unwrap();
        assert_eq!(v[1], 2501f64.ln() as f32);
        assert_eq!(v[2], 7501f64.ln() as f32);

        // counts over in-vocabulary genes only: gene 2 beyond vocab_size 6 is dropped and no
        // longer counted, so gene 0 holds all 1e4.
        let vocab = Vocab::slaf(3, Some(6)).unwrap();
        let t = ScgptTokenizer::new(
            ScgptConfig {
                counts_scope: CountsScope::InVocabulary,
                log1p: false,
                ..pre
            },
            vocab,
        )
        .unwrap();
        let c = Cells::new(&[cell]);
        let out = t.tokenize(&c.batch()).unwrap();
        assert_eq!(out.input_ids, vec![CLS, 4, PAD, PAD]);
        assert_eq!(out.row_values(0).unwrap()[1], 1e4);
    }

    #[test]
    fn include_zero_genes() {
        let config = ScgptConfig {
            n_bins: Some(3),
            include_zero_genes: true,
            max_len: 6,
            ..ScgptConfig::default()
        };
        // Genes 0..4; stored 3 (value 2) and 1 (value 8): edges [2, 8] -> bins 1 and 2.
        let out = run(config, 4, &[&[(3, 2.0), (1, 8.0)]]);
        assert_eq!(out.input_ids, vec![CLS, 4, 5, 6, 7, PAD]);
        assert_eq!(out.values, Some(vec![0.0, 0.0, 2.0, 0.0, 1.0, PAD_VALUE]));
    }

    #[test]
    fn subsampling_keeps_cls_first() {
        let cell: Vec<(u32, f32)> = (0..20).map(|g| (g, (g + 1) as f32)).collect();
        let config = |seed| ScgptConfig {
            n_bins: None,
            max_len: 6,
            seed,
            ..ScgptConfig::default()
        };
        let a = run(config(1), 20, &[cell.as_slice()]);
        assert_eq!(a.ids(0)[0], CLS);
        assert_eq!(a.mask(0), &[true; 6]);
        let ids = &a.ids(0)[1..];
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 5, "without replacement: {ids:?}");
        // Values still belong to their genes (value = gene + 1 = token - 3).
        for (t, v) in ids.iter().zip(&a.row_values(0).unwrap()[1..]) {
            assert_eq!(*v, (*t - 3) as f32);
        }
        // Deterministic per seed; not top-k.
        assert_eq!(a, run(config(1), 20, &[cell.as_slice()]));
        let draws: Vec<Vec<i64>> = (0..20)
            .map(|s| run(config(s), 20, &[cell.as_slice()]).input_ids)
            .collect();
        assert!(draws.iter().any(|d| d != &draws[0]));
        assert!(draws.iter().any(|d| d[1..] != [23, 22, 21, 20, 19]));
    }

    #[test]
    fn exactly_max_len_minus_one_genes_are_not_sampled() {
        // Storage order is reversed; output follows gene order.
        let cell: &[(u32, f32)] = &[(2, 1.0), (1, 1.0), (0, 1.0)];
        let config = ScgptConfig {
            n_bins: None,
            max_len: 4,
            ..ScgptConfig::default()
        };
        let out = run(config, 3, &[cell]);
        assert_eq!(out.input_ids, vec![CLS, 4, 5, 6]);
    }

    #[test]
    fn mask_values_helper() {
        let cell: Vec<(u32, f32)> = (0..10).map(|g| (g, 1.0)).collect();
        let config = ScgptConfig {
            n_bins: None,
            max_len: 16,
            ..ScgptConfig::default()
        };
        let mut out = run(config, 10, &[cell.as_slice(), &[]]);
        let before = out.clone();
        let n = mask_values(&mut out, 0.3, 5).unwrap();
        assert_eq!(n, 3);
        let v = out.row_values(0).unwrap();
        assert_eq!(v[0], CLS_VALUE, "<cls> is never masked");
        assert_eq!(v.iter().filter(|&&x| x == MASK_VALUE).count(), 3);
        assert!(
            v[11..].iter().all(|&x| x == PAD_VALUE),
            "padding is never masked"
        );
        assert_eq!(out.row_values(1), before.row_values(1));
        let mut again = before.clone();
        mask_values(&mut again, 0.3, 5).unwrap();
        assert_eq!(again, out);
        assert!(mask_values(&mut again, 1.5, 5).is_err());
    }

    #[test]
    fn dictionary_vocab_and_errors() {
        let dict: TokenDictionary = [("<pad>", 60000), ("<cls>", 60001), ("A", 0), ("B", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let vocab = Vocab::from_dictionary(&dict, &["A", "X", "B"]).unwrap();
        let config = ScgptConfig {
            n_bins: None,
            max_len: 5,
            ..ScgptConfig::default()
        };
        let t = ScgptTokenizer::new(config.clone(), vocab).unwrap();
        let c = Cells::new(&[&[(0, 2.0), (1, 9.0), (2, 3.0)]]);
        let out = t.tokenize(&c.batch()).unwrap();
        assert_eq!(out.input_ids, vec![60001, 0, 1, 60000, 60000]);
        assert_eq!(out.values, Some(vec![0.0, 2.0, 3.0, -2.0, -2.0]));

        let no_cls: TokenDictionary = [("<pad>".to_string(), 0)].into_iter().collect();
        let e = ScgptTokenizer::new(
            config.clone(),
            Vocab::from_dictionary(&no_cls, &["A"]).unwrap(),
        )
        .unwrap_err();
        assert!(e.message().contains("<cls>"), "{e}");
        let vocab = Vocab::slaf(3, None).unwrap();
        for bad in [
            ScgptConfig {
                max_len: 0,
                ..config.clone()
            },
            ScgptConfig {
                n_bins: Some(1),
                ..config.clone()
            },
            ScgptConfig {
                normalize_total: Some(0.0),
                ..config.clone()
            },
        ] {
            let e = ScgptTokenizer::new(bad, vocab.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
        let c = Cells::new(&[&[(5, 1.0)]]);
        let e = tokenizer(config, 3).tokenize(&c.batch()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
    }
}
