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
use std::sync::OnceLock;

use super::dictionary::GeneMedianDictionary;
use super::{
    fill_rows, gene_out_of_range, CellBatch, CountsScope, Padding, RowOut, TokenBatch, Vocab,
};
use crate::{limits, Error, Result};

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

/// [`GeneformerTokenizer`]'s token-table entry of a gene the encoding leaves out.
const NOT_KEPT: u32 = u32::MAX;

/// Counts up to this value are ranked by a counting sort (one bucket per count).
const SMALL_COUNT: usize = u8::MAX as usize;

/// Working buffers of one rayon task, reused across its cells.
#[derive(Debug, Default)]
struct Scratch {
    /// General path: kept non-zero entries of the cell, in storage order, as parallel arrays
    /// (compact, so a cell's working set stays in L1).
    genes: Vec<u32>,
    counts: Vec<f32>,
    tokens: Vec<u32>,
    /// Entries ranked by value (general path), or the counts above SMALL_COUNT (counts path).
    ranked: Vec<Ranked>,
    /// Radix-sort keys and their permutation, and the buffers they are scattered into.
    keys: Vec<u32>,
    order: Vec<u32>,
    keys_tmp: Vec<u32>,
    order_tmp: Vec<u32>,
    /// Counts path: kept tokens of counts 1, 2 and larger, in gene order; the larger counts'
    /// buckets; those tokens in rank order.
    runs: [Vec<u32>; 3],
    buckets: Vec<u8>,
    sorted: Vec<u32>,
}

/// Rank-value encoder over a [`Vocab`].
#[derive(Debug, Clone)]
pub struct GeneformerTokenizer {
    config: GeneformerConfig,
    vocab: Vocab,
    medians: Option<GeneMedians>,
    /// `<cls>` and `<eos>`, resolved once (V2 only).
    specials: Option<(i64, i64)>,
    /// Token of each gene_integer_id the encoding keeps (in the vocabulary and, with medians,
    /// with a median), or [`NOT_KEPT`]: one lookup per entry in the hot loop, in a table half
    /// the size of one of i64.
    kept_tokens: Vec<u32>,
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
        limits::check_range("max_genes", config.max_genes, min, limits::MAX_SEQ_LEN)?;
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
        Self {
            kept_tokens: Vec::new(),
            config,
            vocab,
            medians: None,
            specials,
        }
        .with_kept_tokens()
    }

    fn with_kept_tokens(mut self) -> Result<Self> {
        self.kept_tokens = (0..self.vocab.n_genes() as u32)
            .map(|g| match (self.vocab.token(g), self.median(g)) {
                (Some(token), Some(_)) => u32::try_from(token)
                    .ok()
                    .filter(|&t| t != NOT_KEPT)
                    .ok_or_else(|| {
                        Error::invalid_argument(format!(
                            "Geneformer: token {token} of gene {g} is outside 0..{NOT_KEPT}"
                        ))
                    }),
                _ => Ok(NOT_KEPT),
            })
            .collect::<Result<_>>()?;
        Ok(self)
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
        self.with_kept_tokens()
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
        let mut out = TokenBatch::default();
        self.tokenize_into(cells, &mut out)?;
        Ok(out)
    }

    /// [`Self::tokenize`] into `out`, reusing its memory (a caller that tokenizes batch after
    /// batch allocates, and faults in, its output once).
    pub fn tokenize_into(&self, cells: &CellBatch<'_>, out: &mut TokenBatch) -> Result<()> {
        out.reset(cells, self.seq_len(), false)?;
        let pad = Padding {
            id: self.vocab.pad(),
            value: 0.0,
        };
        fill_rows(out, pad, |scratch: &mut Scratch, i, row| {
            let (genes, values) = cells.row(i);
            self.encode_cell(genes, values, cells.cell_ids()[i], scratch, row)
        })
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
        scratch: &mut Scratch,
        mut row: RowOut<'_>,
    ) -> Result<usize> {
        if self.medians.is_none() {
            if let Some(len) = self.encode_counts(genes, values, cell, scratch, &mut row)? {
                return Ok(len);
            }
        }
        // The general rule: every kept entry's x, ranked by value.
        scratch.genes.clear();
        scratch.counts.clear();
        scratch.tokens.clear();
        let mut ascending = true;
        let mut previous: i64 = -1;
        for (&gene, &v) in genes.iter().zip(values) {
            let Some(&token) = self.kept_tokens.get(gene as usize) else {
                return Err(gene_out_of_range(gene, cell, self.kept_tokens.len()));
            };
            if token == NOT_KEPT || v.is_nan() || v == 0.0 {
                continue;
            }
            ascending &= previous < i64::from(gene);
            previous = i64::from(gene);
            scratch.genes.push(gene);
            scratch.counts.push(v);
            scratch.tokens.push(token);
        }
        let n_counts = match self.config.counts_scope {
            CountsScope::AllGenes => sum_non_nan(values),
            // Kept zeros add nothing, so the kept non-zero entries give the same total.
            CountsScope::InVocabulary => sum_non_nan(&scratch.counts),
        };

        let slots = self.config.gene_slots();
        let first = usize::from(self.specials.is_some());
        let kept = scratch.tokens.len().min(slots);
        let ids = &mut row.ids[first..first + kept];
        scratch.ranked.clear();
        for ((&gene, &count), &token) in scratch
            .genes
            .iter()
            .zip(&scratch.counts)
            .zip(&scratch.tokens)
        {
            // Kept genes have a median (checked when the table of kept tokens was built).
            let median = self.median(gene).unwrap_or(1.0);
            let x = f64::from(count) / n_counts * self.config.target_sum / median;
            scratch.ranked.push(Ranked {
                x,
                gene,
                token: i64::from(token),
            });
        }
        rank_by_value(scratch, ids, ascending);
        let mut len = first + kept;
        if let Some((cls, eos)) = self.specials {
            row.ids[0] = cls;
            row.ids[len] = eos;
            len += 1;
        }
        Ok(len)
    }
}

impl GeneformerTokenizer {
    /// The common case, raw counts (every kept value an integer >= 1) with genes ascending and
    /// no medians, ranked without comparisons. Without medians, x = count / n_counts *
    /// target_sum is a strictly increasing function of the count (distinct f32 counts stay
    /// distinct through two correctly rounded f64 operations), so ranking the counts ranks x,
    /// and ties keep ascending gene order.
    ///
    /// One pass sorts the kept entries into runs by count: 1 and 2 (most entries of count
    /// data) each append to a run of their own, larger counts to a run that is then ordered by
    /// a counting sort, counts above SMALL_COUNT (a handful) to a list sorted by comparison.
    /// The appends are branch-free: every entry is stored into each run and only the run it
    /// belongs to advances (a branch on the count would be mispredicted about every third
    /// entry). The row is then the runs in rank order. Returns `None` for any cell outside
    /// this case; the general path ranks it.
    fn encode_counts(
        &self,
        genes: &[u32],
        values: &[f32],
        cell: u32,
        s: &mut Scratch,
        row: &mut RowOut<'_>,
    ) -> Result<Option<usize>> {
        let n = genes.len();
        // One spare slot per run: every entry is stored at each run's end.
        if s.runs[0].len() < n + 1 {
            for run in &mut s.runs {
                run.resize(n + 1, 0);
            }
            s.buckets.resize(n + 1, 0);
        }
        // Slices, not the vectors: their pointers and lengths then stay in registers.
        let [ones, twos, more] = &mut s.runs;
        let (ones, twos, more) = (&mut ones[..=n], &mut twos[..=n], &mut more[..=n]);
        let more_buckets = &mut s.buckets[..=n];
        let table = &self.kept_tokens[..];
        s.ranked.clear();
        let (mut n1, mut n2, mut n_more) = (0usize, 0usize, 0usize);
        let mut previous: i64 = -1;
        let mut odd_left_out = false;
        let codes = bucket_codes();
        for (&gene, &v) in genes.iter().zip(values) {
            let Some(&token) = table.get(gene as usize) else {
                return Err(gene_out_of_range(gene, cell, table.len()));
            };
            if token == NOT_KEPT {
                // Counted in n_counts all the same (AllGenes): note values that could make
                // it other than positive and finite.
                odd_left_out |= v < 0.0 || v.is_infinite();
                continue;
            }
            // The bucket of an ordinary count from the table; anything else the long way.
            let bits = v.to_bits();
            let code = if bits & 0xffff == 0 {
                codes[(bits >> 16) as usize]
            } else {
                bucket_code(v)
            };
            let bucket = if code.wrapping_sub(1) < CODE_MAX_BUCKET {
                code as u8 // 1..=SMALL_COUNT, the common case
            } else if code == 0 {
                // Counts above SMALL_COUNT: few, ranked by comparison.
                s.ranked.push(Ranked {
                    x: f64::from(v),
                    gene,
                    token: i64::from(token),
                });
                0
            } else if code == CODE_SKIPPED {
                continue;
            } else {
                return Ok(None);
            };
            if i64::from(gene) <= previous {
                return Ok(None);
            }
            previous = i64::from(gene);
            ones[n1] = token;
            twos[n2] = token;
            more[n_more] = token;
            more_buckets[n_more] = bucket;
            n1 += usize::from(bucket == 1);
            n2 += usize::from(bucket == 2);
            n_more += usize::from(bucket > 2);
        }
        let kept = s.ranked.len() + n_more + n2 + n1;
        if kept > 0 && odd_left_out && self.config.counts_scope == CountsScope::AllGenes {
            // Out-of-vocabulary entries count too; a total that is not positive and finite
            // makes every x 0, inf or NaN, which the general path ranks. (Kept counts are
            // finite and >= 1, and other values non-negative and finite, so otherwise the
            // total is positive and finite: no sum is needed.)
            let n_counts = sum_non_nan(values);
            if !(n_counts.is_finite() && n_counts > 0.0) {
                return Ok(None);
            }
        }

        // Counts 3..=SMALL_COUNT: a stable counting sort, largest count first.
        let mut next = [0usize; SMALL_COUNT + 1];
        let mut highest = 0u8;
        for &bucket in &more_buckets[..n_more] {
            next[bucket as usize] += 1;
            highest = highest.max(bucket);
        }
        let mut start = 0;
        for bucket in (3..=highest as usize).rev() {
            let count = next[bucket];
            next[bucket] = start;
            start += count;
        }
        let sorted = &mut s.sorted;
        sorted.resize(n_more, 0);
        for (&token, &bucket) in more[..n_more].iter().zip(&more_buckets[..n_more]) {
            let position = &mut next[bucket as usize];
            sorted[*position] = token;
            *position += 1;
        }

        // The row: runs in rank order, cut at the row's slots.
        let first = usize::from(self.specials.is_some());
        let slots = self.config.gene_slots();
        let mut len = first;
        let end = first + slots;
        s.ranked.sort_unstable_by(rank_order);
        for r in &s.ranked {
            if len == end {
                break;
            }
            row.ids[len] = r.token;
            len += 1;
        }
        for run in [&sorted[..n_more], &twos[..n2], &ones[..n1]] {
            let take = run.len().min(end - len);
            for (id, &token) in row.ids[len..len + take].iter_mut().zip(run) {
                *id = i64::from(token);
            }
            len += take;
        }
        if let Some((cls, eos)) = self.specials {
            row.ids[0] = cls;
            row.ids[len] = eos;
            len += 1;
        }
        Ok(Some(len))
    }
}

/// Sum of the non-NaN values in f64, in four lanes: no single chain of dependent additions
/// (for counts, integers below 2^53, the order of additions does not change the sum).
fn sum_non_nan(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let chunks = values.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += if v.is_nan() { 0.0 } else { f64::from(v) };
        }
    }
    let tail: f64 = rest
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| f64::from(v))
        .sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// [`bucket_code`]s: the count's bucket (1..=SMALL_COUNT; 0 for larger finite values)...
const CODE_MAX_BUCKET: u16 = SMALL_COUNT as u16;
/// ... a value the encoding skips (zero or NaN) ...
const CODE_SKIPPED: u16 = CODE_MAX_BUCKET + 1;
/// ... or one that is not a count (a fraction, negative or infinite).
const CODE_NOT_A_COUNT: u16 = CODE_MAX_BUCKET + 2;

/// How the counts path takes a value: a bucket for a count (the count itself for integers
/// 1..=SMALL_COUNT, 0 for larger finite values, which are ranked apart), or
/// [`CODE_SKIPPED`] / [`CODE_NOT_A_COUNT`].
fn bucket_code(v: f32) -> u16 {
    if v == 0.0 || v.is_nan() {
        CODE_SKIPPED
    } else if v > SMALL_COUNT as f32 && v.is_finite() {
        0
    } else if v >= 1.0 && v.fract() == 0.0 {
        v as u16
    } else {
        CODE_NOT_A_COUNT
    }
}

/// [`bucket_code`] of every f32 whose low 16 bits are zero, by its high 16 bits. Those are
/// all integers up to 2^8 (and zero), so for count data one load replaces the float tests;
/// only the table's 1 KB around the small integers is hot.
fn bucket_codes() -> &'static [u16; 1 << 16] {
    static CODES: OnceLock<Box<[u16; 1 << 16]>> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut codes = Box::new([0u16; 1 << 16]);
        for (high, code) in codes.iter_mut().enumerate() {
            *code = bucket_code(f32::from_bits((high as u32) << 16));
        }
        codes
    })
}

/// Writes the tokens of `scratch.ranked` (x normalised) into `ids` in rank order, as many as fit.
/// Genes ascending: an LSD radix sort of the x bits, stable, so ties stay in gene order. Else a
/// comparison sort with the full order.
fn rank_by_value(scratch: &mut Scratch, ids: &mut [i64], ascending: bool) {
    let ranked = &mut scratch.ranked;
    if !ascending || ranked.len() < 64 {
        if ranked.len() > ids.len() {
            // Partition the top ranks first so only they get sorted.
            ranked.select_nth_unstable_by(ids.len(), rank_order);
            ranked.truncate(ids.len());
        }
        ranked.sort_unstable_by(rank_order);
        for (slot, r) in ids.iter_mut().zip(ranked.iter()) {
            *slot = r.token;
        }
        return;
    }
    // 32-bit keys that sort ascending in the order of descending x: x rounded to f32 (rounding
    // is monotone, so the key order never contradicts x's order), bits mapped to the total
    // order and reversed. Halves the radix passes of f64 keys; entries whose f32 keys tie are
    // put in exact order afterwards.
    let keys = &mut scratch.keys;
    keys.clear();
    keys.extend(ranked.iter().map(|r| {
        let bits = (r.x as f32).to_bits();
        let ascending = if bits >> 31 == 1 {
            !bits
        } else {
            bits | 1 << 31
        };
        !ascending
    }));
    let order = &mut scratch.order;
    order.clear();
    order.extend(0..ranked.len() as u32);
    radix_sort(keys, order, &mut scratch.keys_tmp, &mut scratch.order_tmp);
    let (keys, order) = (&scratch.keys, &mut scratch.order);
    let mut start = 0;
    while start < keys.len() {
        let end = start
            + keys[start..]
                .iter()
                .take_while(|&&k| k == keys[start])
                .count();
        if end - start > 1 {
            order[start..end]
                .sort_unstable_by(|&a, &b| rank_order(&ranked[a as usize], &ranked[b as usize]));
        }
        start = end;
    }
    for (slot, &i) in ids.iter_mut().zip(order.iter()) {
        *slot = ranked[i as usize].token;
    }
}

/// Stable LSD radix sort of `keys` (8-bit digits), carrying `order` along. Digits on which all
/// keys agree are skipped.
fn radix_sort(
    keys: &mut Vec<u32>,
    order: &mut Vec<u32>,
    keys_tmp: &mut Vec<u32>,
    order_tmp: &mut Vec<u32>,
) {
    let n = keys.len();
    let mut histograms = [[0u32; 256]; 4];
    for &k in keys.iter() {
        for (d, h) in histograms.iter_mut().enumerate() {
            h[((k >> (8 * d)) & 0xff) as usize] += 1;
        }
    }
    keys_tmp.resize(n, 0);
    order_tmp.resize(n, 0);
    for (d, h) in histograms.iter_mut().enumerate() {
        if h.iter().any(|&c| c as usize == n) {
            continue;
        }
        let mut start = 0u32;
        for c in h.iter_mut() {
            let count = *c;
            *c = start;
            start += count;
        }
        for (&k, &o) in keys.iter().zip(order.iter()) {
            let position = &mut h[((k >> (8 * d)) & 0xff) as usize];
            keys_tmp[*position as usize] = k;
            order_tmp[*position as usize] = o;
            *position += 1;
        }
        std::mem::swap(keys, keys_tmp);
        std::mem::swap(order, order_tmp);
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
            // Medians of 1 keep x's ranking but take the path that stores x.
            let ones = GeneMedians::from_values(vec![1.0; 3]).unwrap();
            GeneformerTokenizer::new(config, Vocab::slaf(3, Some(6)).unwrap())
                .unwrap()
                .with_medians(ones)
                .unwrap()
        };
        let mut scratch = Scratch::default();
        let mut ids = [0i64; 4];
        for (scope, expected) in [
            (CountsScope::AllGenes, [3000.0, 1000.0]),
            (CountsScope::InVocabulary, [7500.0, 2500.0]),
        ] {
            let row = RowOut {
                ids: &mut ids,
                values: None,
            };
            t(scope)
                .encode_cell(&[0, 1, 2], &[1.0, 3.0, 6.0], 0, &mut scratch, row)
                .unwrap();
            let xs: Vec<f64> = scratch.ranked.iter().map(|r| r.x).collect();
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

    /// The rule written the plain way: every kept gene's x, one comparison sort.
    fn reference(t: &GeneformerTokenizer, genes: &[u32], values: &[f32]) -> Vec<i64> {
        let kept: Vec<(u32, f64, i64)> = genes
            .iter()
            .zip(values)
            .filter(|(_, v)| !v.is_nan())
            .filter_map(|(&g, &v)| Some((g, f64::from(v), t.vocab.token(g)?)))
            .filter(|&(g, _, _)| t.median(g).is_some())
            .collect();
        let n_counts: f64 = match t.config.counts_scope {
            CountsScope::AllGenes => values
                .iter()
                .filter(|v| !v.is_nan())
                .map(|&v| f64::from(v))
                .sum(),
            CountsScope::InVocabulary => kept.iter().map(|k| k.1).sum(),
        };
        let mut ranked: Vec<Ranked> = kept
            .into_iter()
            .filter(|k| k.1 != 0.0)
            .map(|(gene, v, token)| Ranked {
                x: v / n_counts * t.config.target_sum / t.median(gene).unwrap(),
                gene,
                token,
            })
            .collect();
        ranked.sort_by(rank_order);
        ranked.truncate(t.config.gene_slots());
        let mut ids: Vec<i64> = ranked.iter().map(|r| r.token).collect();
        if let Some((cls, eos)) = t.specials {
            ids.insert(0, cls);
            ids.push(eos);
        }
        ids.resize(t.seq_len(), t.vocab.pad());
        ids
    }

    #[test]
    fn fast_paths_match_the_plain_rule() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n_genes = 300u32;
        let medians: Vec<f64> = (0..n_genes).map(|g| 0.25 + f64::from(g % 7)).collect();
        // One output batch for every case: rows of other lengths and tokenizers reuse it.
        let mut out = TokenBatch::default();
        for case in 0..400 {
            let kind = rng.next_u32() % 4;
            let n = (rng.next_u32() % 250) as usize;
            let mut genes: Vec<u32> = (0..n_genes).collect();
            for i in 0..n {
                let j = i + (rng.next_u32() as usize % (genes.len() - i));
                genes.swap(i, j);
            }
            genes.truncate(n);
            if case % 5 != 0 {
                genes.sort_unstable();
            }
            let values: Vec<f32> = genes
                .iter()
                .map(|_| match kind {
                    0 => (1 + rng.next_u32() % 4) as f32,
                    1 => (1 + rng.next_u32() % 600) as f32,
                    2 => (rng.next_u32() % 1000) as f32 / 7.0,
                    _ => [0.0, 1.0, 2.0, 256.0, 1e6, f32::NAN][rng.next_u32() as usize % 6],
                })
                .collect();
            let config = GeneformerConfig {
                max_genes: [3, 50, 120, 400][case % 4],
                counts_scope: [CountsScope::AllGenes, CountsScope::InVocabulary][case % 2],
                ..[GeneformerConfig::v1(), GeneformerConfig::v2()][(case / 2) % 2].clone()
            };
            let vocab = Vocab::slaf(n_genes as usize, Some(250)).unwrap();
            let mut t = GeneformerTokenizer::new(config, vocab).unwrap();
            if case % 3 == 0 {
                t = t
                    .with_medians(GeneMedians::from_values(medians.clone()).unwrap())
                    .unwrap();
            }
            let c = Cells::new(&[&genes
                .iter()
                .copied()
                .zip(values.iter().copied())
                .collect::<Vec<_>>()]);
            t.tokenize_into(&c.batch(), &mut out).unwrap();
            assert_eq!(out, t.tokenize(&c.batch()).unwrap(), "case {case}");
            assert_eq!(
                out.ids(0),
                reference(&t, &genes, &values).as_slice(),
                "case {case}"
            );
        }
    }
}
