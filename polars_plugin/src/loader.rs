//! `NativeLoader` / `NativePrefetcher`: the core loader for `slaf.ml.SLAFDataLoader`. Windows
//! of finished batches cross to Python as numpy arrays that own the Rust buffers (no copy); the
//! GIL is released while the caller waits for the next window.

use std::sync::{Arc, Mutex};

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use slaf::loader::{Loader, LoaderOptions, PlanOptions, Prefetcher, Window, WindowData};
use slaf::slice::Selection;
use slaf::tokenize::{parse_counts_scope, TokenizerSpec};

use crate::dataset::{selector, NativeDataset};
use crate::errors::IntoPy;

/// A configured loader (see `slaf.ml.SLAFDataLoader`).
#[pyclass(module = "slaf._native", frozen)]
pub struct NativeLoader {
    loader: Loader,
}

#[pymethods]
impl NativeLoader {
    /// Resolves the cells and builds the tokenizer (`tokenizer=None`: raw CSR windows).
    #[new]
    #[pyo3(signature = (
        dataset, *, cells=None, cell_filter=None, layer=None, tokenizer=None, max_genes=None,
        vocab_size=None, n_bins=None, continuous=None, tokenizer_seed=None,
        token_dictionary=None, gene_medians=None, counts_scope=None, target_sum=None,
        normalize_total=None, log1p=None, include_zero_genes=None, batch_size=32, shuffle=true,
        seed=0, rank=0, world_size=1, drop_last=false, window_cells=4096, threads=2,
        queue_windows=4
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        dataset: PyRef<'_, NativeDataset>,
        cells: Option<Bound<'_, PyAny>>,
        cell_filter: Option<String>,
        layer: Option<String>,
        tokenizer: Option<String>,
        max_genes: Option<usize>,
        vocab_size: Option<usize>,
        n_bins: Option<usize>,
        continuous: Option<bool>,
        tokenizer_seed: Option<u64>,
        token_dictionary: Option<String>,
        gene_medians: Option<String>,
        counts_scope: Option<String>,
        target_sum: Option<f64>,
        normalize_total: Option<f64>,
        log1p: Option<bool>,
        include_zero_genes: Option<bool>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        rank: usize,
        world_size: usize,
        drop_last: bool,
        window_cells: usize,
        threads: usize,
        queue_windows: usize,
    ) -> PyResult<Self> {
        let cells = cells.map(|c| selector(&c)).transpose()?;
        let dataset = dataset.dataset().clone();
        py.detach(|| -> slaf::Result<Self> {
            let tokenizer = match tokenizer {
                Some(name) => Some(TokenizerSpec {
                    name,
                    max_genes,
                    vocab_size,
                    n_bins,
                    continuous,
                    seed: tokenizer_seed,
                    token_dictionary,
                    gene_median_file: gene_medians,
                    counts_scope: counts_scope
                        .as_deref()
                        .map(parse_counts_scope)
                        .transpose()?,
                    target_sum,
                    normalize_total,
                    log1p,
                    include_zero_genes,
                }),
                None => None,
            };
            let options = LoaderOptions {
                selection: Selection {
                    cells: cells.unwrap_or(slaf::Selector::All),
                    cell_filter,
                    ..Selection::default()
                },
                layer,
                tokenizer,
                plan: PlanOptions {
                    batch_size,
                    shuffle,
                    seed,
                    rank,
                    world_size,
                    drop_last,
                    window_cells,
                },
                threads,
                queue_windows,
            };
            Ok(Self {
                loader: Loader::new(dataset, options)?,
            })
        })
        .py_err()
    }

    /// Cells this rank serves per epoch.
    #[getter]
    fn cells_per_epoch(&self) -> usize {
        self.loader.plan().cells_per_epoch()
    }

    /// Batches this rank serves per epoch.
    #[getter]
    fn batches_per_epoch(&self) -> usize {
        self.loader.plan().batches_per_epoch()
    }

    /// Cells per window (whole batches).
    #[getter]
    fn window_cells(&self) -> usize {
        self.loader.plan().options().window_cells
    }

    /// Token sequence length (0 for raw windows).
    #[getter]
    fn seq_len(&self) -> usize {
        self.loader.tokenizer().map_or(0, |t| t.seq_len())
    }

    /// Genes of the dataset (columns of raw batches).
    #[getter]
    fn n_genes(&self) -> usize {
        self.loader.n_genes()
    }

    /// Starts preparing epochs `first_epoch .. first_epoch + n_epochs`.
    fn start(&self, py: Python<'_>, first_epoch: u64, n_epochs: u64) -> PyResult<NativePrefetcher> {
        let prefetcher = py
            .detach(|| self.loader.start(first_epoch, n_epochs))
            .py_err()?;
        Ok(NativePrefetcher {
            inner: Mutex::new(Some(Arc::new(prefetcher))),
        })
    }
}

/// Running worker threads; `next()` gives windows in order, `close()` stops them.
#[pyclass(module = "slaf._native", frozen)]
pub struct NativePrefetcher {
    inner: Mutex<Option<Arc<Prefetcher<Window>>>>,
}

impl NativePrefetcher {
    fn current(&self) -> Option<Arc<Prefetcher<Window>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[pymethods]
impl NativePrefetcher {
    /// The next window as a dict of numpy arrays (plus `epoch`), or `None` when done.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(prefetcher) = self.current() else {
            return Ok(None);
        };
        match py.detach(|| prefetcher.next()) {
            None => Ok(None),
            Some(window) => window_to_py(py, window.py_err()?).map(Some),
        }
    }

    /// `(ready windows, delivered windows, total windows)`.
    fn queue_state(&self) -> (usize, usize, usize) {
        self.current().map_or((0, 0, 0), |p| {
            let s = p.queue_state();
            (s.ready, s.delivered, s.total)
        })
    }

    /// Stops the worker threads and waits for them to exit.
    fn close(&self, py: Python<'_>) {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(prefetcher) = taken {
            py.detach(|| prefetcher.stop());
        }
    }
}

fn window_to_py(py: Python<'_>, window: Window) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("epoch", window.epoch)?;
    match window.data {
        WindowData::Tokens(t) => {
            let shape = [t.batch_size(), t.seq_len];
            out.set_item(
                "input_ids",
                PyArray1::from_vec(py, t.input_ids).reshape(shape)?,
            )?;
            out.set_item(
                "attention_mask",
                PyArray1::from_vec(py, t.attention_mask).reshape(shape)?,
            )?;
            if let Some(values) = t.values {
                out.set_item("values", PyArray1::from_vec(py, values).reshape(shape)?)?;
            }
            out.set_item("cell_ids", PyArray1::from_vec(py, t.cell_ids))?;
        }
        WindowData::Raw(r) => {
            out.set_item("indptr", PyArray1::from_vec(py, r.indptr))?;
            out.set_item("indices", PyArray1::from_vec(py, r.indices))?;
            out.set_item("values", PyArray1::from_vec(py, r.values))?;
            out.set_item("cell_ids", PyArray1::from_vec(py, r.cell_ids))?;
        }
    }
    Ok(out)
}
