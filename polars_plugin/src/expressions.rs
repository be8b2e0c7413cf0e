//! Polars expression plugins (`#[polars_expr]`): the core tokenizers over list columns of gene
//! ids and values (one row per cell, as `scan_slaf(path, "cells_x")` yields them). Python
//! registers them in `slaf/polars.py`; this file only converts Polars arrays to the core's CSR
//! batch and the core's token batch back to list columns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use polars::prelude::*;
use polars_arrow::array::{Array, ListArray, PrimitiveArray, StructArray};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::datatypes::{ArrowDataType, Field as ArrowField};
use polars_arrow::offset::OffsetsBuffer;
use pyo3_polars::derive::polars_expr;
use serde::Deserialize;
use slaf::limits;
use slaf::tokenize::{parse_counts_scope, CellBatch, TokenBatch, Tokenizer, TokenizerSpec};

/// Keyword arguments of `slaf.polars.geneformer` / `slaf.polars.scgpt` (see there).
#[derive(Debug, Deserialize)]
struct TokenizeKwargs {
    tokenizer: String,
    max_genes: Option<usize>,
    vocab_size: Option<usize>,
    n_bins: Option<usize>,
    continuous: Option<bool>,
    seed: Option<u64>,
    token_dictionary: Option<String>,
    gene_medians: Option<String>,
    counts_scope: Option<String>,
    target_sum: Option<f64>,
    normalize_total: Option<f64>,
    log1p: Option<bool>,
    include_zero_genes: Option<bool>,
    /// Genes of the dataset (valid ids are `0..n_genes`); else `gene_names.len()`, else the
    /// largest id in the batch + 1.
    n_genes: Option<usize>,
    /// `gene_id` of every gene_integer_id: needed with dictionary files.
    gene_names: Option<Vec<String>>,
    /// Pad every row to the sequence length (else rows hold only real tokens).
    pad: bool,
}

fn compute_err(e: impl std::fmt::Display) -> PolarsError {
    PolarsError::ComputeError(e.to_string().into())
}

/// Tokenizers built from the same arguments are reused across batches (dictionary files are
/// read once, not per batch).
fn tokenizer(kwargs: &TokenizeKwargs, n_genes: usize) -> PolarsResult<Arc<Tokenizer>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Tokenizer>>>> = OnceLock::new();
    let key = format!("{kwargs:?}|{n_genes}");
    let cache = CACHE.get_or_init(Default::default);
    if let Some(t) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(t.clone());
    }
    let spec = TokenizerSpec {
        name: kwargs.tokenizer.clone(),
        max_genes: kwargs.max_genes,
        vocab_size: kwargs.vocab_size,
        n_bins: kwargs.n_bins,
        continuous: kwargs.continuous,
        seed: kwargs.seed,
        token_dictionary: kwargs.token_dictionary.clone(),
        gene_median_file: kwargs.gene_medians.clone(),
        counts_scope: kwargs
            .counts_scope
            .as_deref()
            .map(parse_counts_scope)
            .transpose()
            .map_err(compute_err)?,
        target_sum: kwargs.target_sum,
        normalize_total: kwargs.normalize_total,
        log1p: kwargs.log1p,
        include_zero_genes: kwargs.include_zero_genes,
    };
    let names = || -> slaf::Result<Vec<String>> {
        kwargs.gene_names.clone().ok_or_else(|| {
            slaf::Error::new(
                slaf::ErrorKind::InvalidArgument,
                "token_dictionary and gene_medians are keyed by gene name: pass gene_names \
                 (the gene_id of every gene_integer_id, e.g. from scan_slaf(path, 'genes'))",
            )
        })
    };
    let built = Arc::new(spec.build(n_genes, &names).map_err(compute_err)?);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= 16 {
        cache.clear();
    }
    cache.insert(key, built.clone());
    Ok(built)
}

/// A list column as one Arrow list array over a typed child, after casting.
fn list_array(s: &Series, inner: DataType, what: &str) -> PolarsResult<ListArray<i64>> {
    let cast = s
        .strict_cast(&DataType::List(Box::new(inner.clone())))
        .map_err(|e| {
            polars_err!(InvalidOperation: "{what} must be a list of numbers castable to {inner} (got {}): {e}", s.dtype())
        })?;
    let ca = cast.list()?.rechunk();
    let array = ca
        .downcast_iter()
        .next()
        .cloned()
        .unwrap_or_else(|| ListArray::new_empty(ca.dtype().to_arrow(CompatLevel::newest())));
    Ok(array)
}

fn values_of<T: polars_arrow::types::NativeType>(
    array: &ListArray<i64>,
    what: &str,
) -> PolarsResult<PrimitiveArray<T>> {
    array
        .values()
        .as_any()
        .downcast_ref::<PrimitiveArray<T>>()
        .cloned()
        .ok_or_else(|| polars_err!(ComputeError: "{what}: unexpected list child type"))
}

/// Cells tokenized per call of the core tokenizer: its padded output for this many cells is
/// reused from one call to the next and stays small, whatever the size of the Polars chunk.
const CELLS_PER_CALL: usize = 256;

/// Asks Linux to back a large buffer that is about to be filled with transparent huge pages
/// (as numpy does for its large arrays): filling fresh memory otherwise takes a page fault and
/// a 4 KB clear per page, measured here at a third of the plugin's time on 10,000 cells.
fn advise_huge_pages<T>(buffer: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE_PAGE: usize = 2 << 20;
        let start = buffer.as_mut_ptr() as usize;
        let end = start + buffer.capacity() * std::mem::size_of::<T>();
        let first = start.next_multiple_of(HUGE_PAGE);
        if end >= first + 8 * HUGE_PAGE {
            let len = (end - first) / HUGE_PAGE * HUGE_PAGE;
            // SAFETY: the range lies inside `buffer`'s allocation, which this function holds
            // mutably; MADV_HUGEPAGE is advice only (it never changes the memory's contents
            // or mapping), and a failure is harmless, so the result is ignored.
            unsafe {
                libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}

/// Token rows gathered from the core's padded batches: `seq_len`-long rows (padded) or each
/// row's real tokens.
struct TokenLists<T> {
    offsets: Vec<i64>,
    values: Vec<T>,
}

impl<T: polars_arrow::types::NativeType> TokenLists<T> {
    /// Room for `rows` rows of `tokens` tokens in all (an estimate: growing a large buffer
    /// copies it and touches fresh memory each time).
    fn new(rows: usize, tokens: usize) -> PolarsResult<Self> {
        // `tokens` grows with the user's max_genes: checked and reserved fallibly.
        let what = format!("token lists of {rows} rows ({tokens} tokens)");
        limits::check_bytes(&what, tokens, std::mem::size_of::<T>()).map_err(compute_err)?;
        let mut offsets = limits::try_with_capacity(rows + 1, &what).map_err(compute_err)?;
        offsets.push(0);
        let mut values = limits::try_with_capacity(tokens, &what).map_err(compute_err)?;
        advise_huge_pages(&mut values);
        Ok(Self { offsets, values })
    }

    /// Appends the rows of `tokens` (`[B, L]` row-major, `mask` true on real tokens).
    fn extend(&mut self, tokens: &[T], mask: &[bool], seq_len: usize, pad: bool) {
        for (row, row_mask) in tokens.chunks_exact(seq_len).zip(mask.chunks_exact(seq_len)) {
            // Real tokens come first in a row, padding after them.
            let len = if pad {
                seq_len
            } else {
                row_mask.partition_point(|&m| m)
            };
            self.values.extend_from_slice(&row[..len]);
            self.offsets.push(self.values.len() as i64);
        }
    }

    fn finish(
        self,
        validity: Option<Bitmap>,
        dtype: ArrowDataType,
    ) -> PolarsResult<ListArray<i64>> {
        let field = ArrowField::new("item".into(), dtype.clone(), true);
        ListArray::<i64>::try_new(
            ArrowDataType::LargeList(Box::new(field)),
            OffsetsBuffer::try_from(self.offsets)?,
            Box::new(PrimitiveArray::new(dtype, self.values.into(), None)),
            validity,
        )
    }
}

fn tokens_field(input_fields: &[Field], kwargs: TokenizeKwargs) -> PolarsResult<Field> {
    let ids = DataType::List(Box::new(DataType::Int64));
    let name = input_fields
        .first()
        .map(|f| f.name().clone())
        .unwrap_or_else(|| "input_ids".into());
    if kwargs.tokenizer.eq_ignore_ascii_case("scgpt") {
        let fields = vec![
            Field::new("input_ids".into(), ids),
            Field::new("values".into(), DataType::List(Box::new(DataType::Float32))),
        ];
        return Ok(Field::new(name, DataType::Struct(fields)));
    }
    Ok(Field::new(name, ids))
}

/// Tokenizes cells given as list columns `gene_ids`, `values` (and optionally `cell_ids`, which
/// seeds scGPT's draws per cell; else the row number).
#[polars_expr(output_type_func_with_kwargs=tokens_field)]
fn tokenize(inputs: &[Series], kwargs: TokenizeKwargs) -> PolarsResult<Series> {
    let (genes_s, values_s) = match inputs {
        [g, v] | [g, v, _] => (g, v),
        _ => {
            polars_bail!(InvalidOperation: "tokenize takes gene_ids, values and optionally cell_ids")
        }
    };
    let genes_l = list_array(genes_s, DataType::UInt32, "gene_ids")?;
    let values_l = list_array(values_s, DataType::Float32, "values")?;
    let n = genes_l.len();
    if values_l.len() != n {
        polars_bail!(ShapeMismatch: "gene_ids has {n} rows but values has {}", values_l.len());
    }
    let gene_child = values_of::<u32>(&genes_l, "gene_ids")?;
    if gene_child.null_count() > 0 {
        polars_bail!(ComputeError: "gene_ids lists contain nulls");
    }
    let value_child = values_of::<f32>(&values_l, "values")?;

    // A null list in either column is a null output row (and an empty cell to the tokenizer).
    let valid: Vec<bool> = (0..n)
        .map(|i| genes_l.is_valid(i) && values_l.is_valid(i))
        .collect();
    let validity = valid
        .iter()
        .any(|v| !v)
        .then(|| Bitmap::from_iter(valid.iter().copied()));

    // Entries of row i: one indptr over aligned gene and value buffers. Both columns usually
    // come from the same scan with identical offsets; otherwise values are copied into line.
    let g_off = genes_l.offsets().as_slice();
    let v_off = values_l.offsets().as_slice();
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(g_off[0]);
    for i in 0..n {
        let len = if valid[i] { g_off[i + 1] - g_off[i] } else { 0 };
        if valid[i] && v_off[i + 1] - v_off[i] != len {
            polars_bail!(ShapeMismatch: "row {i}: {len} gene ids but {} values", v_off[i + 1] - v_off[i]);
        }
        indptr.push(indptr[i] + len);
    }
    let genes_all = gene_child.values().as_slice();
    let values_all = value_child.values().as_slice();
    let (genes, values): (Vec<u32>, Vec<f32>);
    let (genes_ref, values_ref, indptr_ref): (&[u32], &[f32], Vec<i64>) =
        if g_off == v_off && valid.iter().all(|&v| v) {
            (genes_all, values_all, g_off.to_vec())
        } else {
            let (mut g, mut v) = (Vec::new(), Vec::new());
            for i in 0..n {
                if valid[i] {
                    let (gs, ge) = (g_off[i] as usize, g_off[i + 1] as usize);
                    let vs = v_off[i] as usize;
                    g.extend_from_slice(&genes_all[gs..ge]);
                    let vals = &values_all[vs..vs + (ge - gs)];
                    match value_child.validity() {
                        // Missing values count as NaN, which the tokenizers skip.
                        Some(bits) => v.extend(vals.iter().enumerate().map(|(k, &x)| {
                            if bits.get_bit(vs + k) {
                                x
                            } else {
                                f32::NAN
                            }
                        })),
                        None => v.extend_from_slice(vals),
                    }
                }
            }
            genes = g;
            values = v;
            let start = indptr[0];
            (&genes, &values, indptr.iter().map(|&o| o - start).collect())
        };
    let cell_ids: Vec<u32> = match inputs.get(2) {
        Some(ids) => {
            let ids = ids.strict_cast(&DataType::UInt32)?;
            let ids = ids.u32()?;
            if ids.len() != n || ids.null_count() > 0 {
                polars_bail!(ComputeError: "cell_ids must have one non-null id per row");
            }
            ids.into_no_null_iter().collect()
        }
        None => (0..n as u32).collect(),
    };

    let n_genes = match (kwargs.n_genes, &kwargs.gene_names) {
        (Some(n), _) => n,
        (None, Some(names)) => names.len(),
        (None, None) => genes_ref.iter().max().map_or(0, |&g| g as usize + 1).max(1),
    };
    let tokenizer = tokenizer(&kwargs, n_genes)?;
    // Rows hold at most their entries plus a few special tokens, padded rows `seq_len`.
    let seq_len = tokenizer.seq_len();
    let padded = n.saturating_mul(seq_len);
    let tokens = if kwargs.pad {
        padded
    } else {
        (genes_ref.len() + 2 * n).min(padded)
    };
    let mut ids = TokenLists::<i64>::new(n, tokens)?;
    let mut vals = if tokenizer.has_values() {
        Some(TokenLists::<f32>::new(n, tokens)?)
    } else {
        None
    };
    let mut out = TokenBatch::default();
    for lo in (0..n).step_by(CELLS_PER_CALL) {
        let hi = (lo + CELLS_PER_CALL).min(n);
        let cells = CellBatch::new(
            &indptr_ref[lo..=hi],
            genes_ref,
            values_ref,
            &cell_ids[lo..hi],
        )
        .map_err(compute_err)?;
        tokenizer
            .tokenize_into(&cells, &mut out)
            .map_err(compute_err)?;
        ids.extend(&out.input_ids, &out.attention_mask, out.seq_len, kwargs.pad);
        if let (Some(vals), Some(values)) = (vals.as_mut(), out.values.as_ref()) {
            vals.extend(values, &out.attention_mask, out.seq_len, kwargs.pad);
        }
    }

    let name = genes_s.name().clone();
    let ids = ids.finish(validity.clone(), ArrowDataType::Int64)?;
    let Some(vals) = vals else {
        return Ok(ListChunked::with_chunk(name, ids).into_series());
    };
    let vals = vals.finish(validity.clone(), ArrowDataType::Float32)?;
    let fields = vec![
        ArrowField::new("input_ids".into(), ids.dtype().clone(), true),
        ArrowField::new("values".into(), vals.dtype().clone(), true),
    ];
    let array = StructArray::try_new(
        ArrowDataType::Struct(fields),
        n,
        vec![Box::new(ids), Box::new(vals)],
        validity,
    )?;
    Series::try_from((name, Box::new(array) as Box<dyn Array>))
}
