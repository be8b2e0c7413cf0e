//! Tokenizer throughput: Geneformer and scGPT over generated cells of raw counts.
//!
//! Cells have ~1.5k non-zero genes out of 20k (negative-binomial-like counts, the model of
//! `benches/synthetic.py`: a few highly expressed genes, most counts 1-3), tokenized in batches
//! of 512 cells as the loader does, into one reused output batch as the DuckDB and Polars
//! adapters do. Each tokenizer runs on one thread (cells/s per core) and on
//! all threads of the machine. The peer is the textbook per-cell implementation of the same rule
//! (allocate, `sort_by` on the float value, truncate), so the ratio shows what the core's buffer
//! reuse and sort strategy buy.
//!
//! `cargo bench -p slaf --bench tokenize [-- --cells N] [--reps N]` (release profile).

use std::time::Instant;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slaf::tokenize::geneformer::{GeneMedians, GeneformerConfig, GeneformerTokenizer};
use slaf::tokenize::scgpt::{ScgptConfig, ScgptTokenizer};
use slaf::tokenize::{CellBatch, TokenBatch, Vocab};

const N_GENES: usize = 20_000;
const NNZ_PER_CELL: usize = 1_500;
const BATCH: usize = 512;

/// CSR cells: genes ascending within a cell, counts >= 1.
struct Cells {
    indptr: Vec<i64>,
    genes: Vec<u32>,
    values: Vec<f32>,
    ids: Vec<u32>,
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn generate(n_cells: usize, seed: u64) -> Cells {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = Cells {
        indptr: vec![0],
        genes: Vec::with_capacity(n_cells * NNZ_PER_CELL),
        values: Vec::with_capacity(n_cells * NNZ_PER_CELL),
        ids: (0..n_cells as u32).collect(),
    };
    let mut picked = vec![false; N_GENES];
    for _ in 0..n_cells {
        let n = NNZ_PER_CELL / 2 + (rng.next_u64() % NNZ_PER_CELL as u64) as usize;
        let mut genes: Vec<u32> = Vec::with_capacity(n);
        while genes.len() < n {
            // Skewed toward low gene ids, as expression is skewed toward a few genes.
            let g = ((uniform(&mut rng).powi(2)) * N_GENES as f64) as usize;
            if !picked[g] {
                picked[g] = true;
                genes.push(g as u32);
            }
        }
        genes.sort_unstable();
        for &g in &genes {
            picked[g as usize] = false;
            // Geometric-like counts: mostly 1-3 (as in 10x data: ~65% ones, ~99% <= 10), and
            // hundreds for a few dozen abundant genes (low ids: mitochondrial, ribosomal).
            let scale = 1.0 + 200.0 * (-(g as f64) / 20.0).exp();
            let count = 1.0 + (-uniform(&mut rng).max(1e-12).ln() * scale).floor();
            c.genes.push(g);
            c.values.push(count as f32);
        }
        c.indptr.push(c.genes.len() as i64);
    }
    c
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`; `None` off Linux.
/// On a shared machine, cells per CPU-second is the per-core rate, whatever else runs.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// Tokenizes every batch `reps` times after a warm-up pass over the first batches; returns
/// the fastest pass as (wall seconds, CPU seconds, non-pad tokens). The fastest, as Python's
/// `timeit` advises: on a shared machine, slower passes measure the other load, not the code.
fn run(
    cells: &Cells,
    reps: usize,
    tokenize: &(dyn Fn(&CellBatch<'_>, &mut TokenBatch) + Sync),
) -> (f64, Option<f64>, usize) {
    let n = cells.ids.len();
    // One output batch, reused, as the DuckDB and Polars adapters do.
    let mut out = TokenBatch::default();
    let mut pass = |cells_in_pass: usize| {
        let cpu = cpu_seconds();
        let start = Instant::now();
        let mut tokens = 0;
        for lo in (0..cells_in_pass).step_by(BATCH) {
            let hi = (lo + BATCH).min(cells_in_pass);
            let batch = CellBatch::new(
                &cells.indptr[lo..=hi],
                &cells.genes,
                &cells.values,
                &cells.ids[lo..hi],
            )
            .expect("valid batch");
            tokenize(&batch, &mut out);
            tokens += out.non_pad_tokens();
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds().zip(cpu).map(|(end, start)| end - start);
        (wall, cpu, tokens)
    };
    pass(n.min(16 * BATCH));
    (0..reps.max(1))
        .map(|_| pass(n))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("at least one pass")
}

/// The textbook rank-value encoding of one cell (the peer): a fresh vector per cell and a
/// comparison sort on the normalised value, as a straightforward port of Geneformer does.
fn naive_geneformer(batch: &CellBatch<'_>, max_genes: usize) -> TokenBatch {
    let mut out = TokenBatch {
        seq_len: max_genes,
        input_ids: vec![0; batch.len() * max_genes],
        attention_mask: vec![false; batch.len() * max_genes],
        values: None,
        cell_ids: batch.cell_ids().iter().map(|&c| i64::from(c)).collect(),
    };
    for i in 0..batch.len() {
        let (genes, values) = batch.row(i);
        let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let mut ranked: Vec<(f64, u32)> = genes
            .iter()
            .zip(values)
            .map(|(&g, &v)| (f64::from(v) / total * 10_000.0, g))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (k, (_, g)) in ranked.iter().take(max_genes).enumerate() {
            out.input_ids[i * max_genes + k] = i64::from(*g) + 4;
            out.attention_mask[i * max_genes + k] = true;
        }
    }
    out
}

/// Prints one line; returns cells per CPU-second (per core), or per wall second per thread.
fn report(name: &str, n_cells: usize, threads: usize, run: (f64, Option<f64>, usize)) -> f64 {
    let (wall, cpu, tokens) = run;
    let rate = n_cells as f64 / wall;
    let per_core = match cpu {
        Some(cpu) if cpu > 0.0 => n_cells as f64 / cpu,
        _ => rate / threads as f64,
    };
    println!(
        "{name:<42} {threads:>2} thr {rate:>10.0} cells/s {per_core:>10.0} cells/CPU-s {:>7.1} M tok/s",
        tokens as f64 / wall / 1e6
    );
    per_core
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .map_or(default, |i| args[i + 1].parse().expect("a number"))
    };
    let n_cells = option("--cells", 50_000);
    let reps = option("--reps", 3);
    let cells = generate(n_cells, 7);
    let nnz = cells.genes.len();
    println!(
        "{n_cells} cells x {N_GENES} genes, {:.0} non-zeros per cell, batches of {BATCH}, \
         fastest of {reps} passes",
        nnz as f64 / n_cells as f64
    );

    let vocab = Vocab::slaf(N_GENES, None).expect("vocab");
    let v1 = GeneformerTokenizer::new(GeneformerConfig::v1(), vocab.clone()).expect("v1");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let medians: Vec<f64> = (0..N_GENES)
        .map(|_| 0.5 + 4.0 * uniform(&mut rng))
        .collect();
    let v1_medians = GeneformerTokenizer::new(GeneformerConfig::v1(), vocab.clone())
        .expect("v1")
        .with_medians(GeneMedians::from_values(medians).expect("medians"))
        .expect("medians fit");
    let v2 = GeneformerTokenizer::new(GeneformerConfig::v2(), vocab.clone()).expect("v2");
    let scgpt = ScgptTokenizer::new(ScgptConfig::default(), vocab.clone()).expect("scgpt");
    let scgpt_log = ScgptTokenizer::new(
        ScgptConfig {
            normalize_total: Some(1e4),
            log1p: true,
            ..ScgptConfig::default()
        },
        vocab,
    )
    .expect("scgpt");

    type Case<'a> = (
        &'a str,
        Box<dyn Fn(&CellBatch<'_>, &mut TokenBatch) + Sync + 'a>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "geneformer v1, max 2048",
            Box::new(|b, out| v1.tokenize_into(b, out).expect("tokenize")),
        ),
        (
            "geneformer v1, max 2048, gene medians",
            Box::new(|b, out| v1_medians.tokenize_into(b, out).expect("tokenize")),
        ),
        (
            "geneformer v2, max 4096",
            Box::new(|b, out| v2.tokenize_into(b, out).expect("tokenize")),
        ),
        (
            "scgpt, max 1200, 51 bins",
            Box::new(|b, out| scgpt.tokenize_into(b, out).expect("tokenize")),
        ),
        (
            "scgpt, max 1200, 51 bins, normalize+log1p",
            Box::new(|b, out| scgpt_log.tokenize_into(b, out).expect("tokenize")),
        ),
    ];
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");

    let peer = one.install(|| run(&cells, reps, &|b, out| *out = naive_geneformer(b, 2048)));
    let naive = report("peer: naive geneformer v1 (per-cell Vec)", n_cells, 1, peer);
    for (name, tokenize) in &cases {
        let rate = report(
            name,
            n_cells,
            1,
            one.install(|| run(&cells, reps, tokenize.as_ref())),
        );
        if name.starts_with("geneformer v1, max 2048") && !name.contains("medians") {
            println!("{:<42} ratio to the naive peer: {:.2}x", "", rate / naive);
        }
        if all > 1 {
            report(name, n_cells, all, run(&cells, reps, tokenize.as_ref()));
        }
    }
}
