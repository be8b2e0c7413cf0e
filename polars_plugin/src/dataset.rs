//! `NativeDataset`: the core `Dataset` as a Python class. Selectors arrive as `(kind, payload)`
//! tuples built by `slaf/_selectors.py`; arrays leave as numpy arrays that own the Rust buffers
//! (no copy).

use std::collections::HashMap;
use std::sync::Arc;

use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use slaf::{Axis, Csr, Dataset, Dense, Selector, Values};

use crate::arrow_export::ArrowStream;
use crate::errors::IntoPy;

/// A numpy array that takes over `values` (no copy: numpy frees the Rust buffer).
fn to_numpy<T: numpy::Element>(py: Python<'_>, values: Vec<T>) -> Bound<'_, PyAny> {
    PyArray1::from_vec(py, values).into_any()
}

/// `(numpy array, dtype string)` of a value buffer.
fn values_to_py(py: Python<'_>, values: Values) -> (Bound<'_, PyAny>, &'static str) {
    match values {
        Values::F32(v) => (to_numpy(py, v), "float32"),
        Values::F64(v) => (to_numpy(py, v), "float64"),
    }
}

type CsrParts<'py> = (
    (usize, usize),
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    &'static str,
);

fn csr_to_py(py: Python<'_>, csr: Csr) -> CsrParts<'_> {
    let (data, dtype) = values_to_py(py, csr.data);
    (
        (csr.n_rows, csr.n_cols),
        to_numpy(py, csr.indptr),
        to_numpy(py, csr.indices),
        data,
        dtype,
    )
}

type DenseParts<'py> = ((usize, usize), Bound<'py, PyAny>, &'static str);

fn dense_to_py(py: Python<'_>, dense: Dense) -> DenseParts<'_> {
    let (data, dtype) = values_to_py(py, dense.data);
    ((dense.n_rows, dense.n_cols), data, dtype)
}

fn i64s(bytes: &[u8]) -> PyResult<Vec<i64>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(PyValueError::new_err(
            "integer selector bytes must hold int64 values",
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Builds a core selector from the `(kind, payload)` tuple made in Python.
pub(crate) fn selector(spec: &Bound<'_, PyAny>) -> PyResult<Selector> {
    let (kind, payload): (String, Bound<'_, PyAny>) = spec.extract()?;
    Ok(match kind.as_str() {
        "all" => Selector::All,
        "ids" => Selector::Ids(i64s(payload.cast::<PyBytes>()?.as_bytes())?),
        "mask" => Selector::Mask(
            payload
                .cast::<PyBytes>()?
                .as_bytes()
                .iter()
                .map(|&b| b != 0)
                .collect(),
        ),
        "range" => {
            let (start, stop, step): (Option<i64>, Option<i64>, i64) = payload.extract()?;
            Selector::Range { start, stop, step }
        }
        "names" => Selector::Names(payload.extract()?),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown selector kind {other:?}"
            )))
        }
    })
}

/// An open SLAF dataset (use `slaf.SLAFArray`).
#[pyclass(module = "slaf._native", frozen)]
pub struct NativeDataset {
    inner: Arc<Dataset>,
}

impl NativeDataset {
    /// The open dataset, shared with scans that outlive a call.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.inner
    }
}

#[pymethods]
impl NativeDataset {
    #[new]
    #[pyo3(signature = (path, storage_options=None))]
    fn new(
        py: Python<'_>,
        path: String,
        storage_options: Option<HashMap<String, String>>,
    ) -> PyResult<Self> {
        let inner = py
            .detach(|| Dataset::open_with_options(&path, storage_options.unwrap_or_default()))
            .py_err()?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn shape(&self) -> (usize, usize) {
        self.inner.shape()
    }

    #[getter]
    fn uri(&self) -> String {
        self.inner.location().uri().to_string()
    }

    #[getter]
    fn format_version(&self) -> String {
        self.inner.config().format_version.clone()
    }

    #[getter]
    fn nnz(&self) -> u64 {
        self.inner.nnz()
    }

    /// Size of the cell cache of random-access reads, in bytes (0: off).
    #[getter]
    fn cell_cache_bytes(&self) -> u64 {
        self.inner.cell_cache_bytes()
    }

    /// Sets the size of the cell cache (0 turns it off), dropping what it held.
    fn set_cell_cache_bytes(&self, bytes: u64) {
        self.inner.set_cell_cache_bytes(bytes)
    }

    /// The whole `config.json` as text.
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.config().document)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    fn obs(&self, py: Python<'_>) -> PyResult<ArrowStream> {
        let batch = py.detach(|| self.inner.obs()).py_err()?;
        Ok(ArrowStream::new(batch.schema(), vec![batch]))
    }

    fn var(&self, py: Python<'_>) -> PyResult<ArrowStream> {
        let batch = py.detach(|| self.inner.var()).py_err()?;
        Ok(ArrowStream::new(batch.schema(), vec![batch]))
    }

    /// `(shape, indptr, indices, data, dtype)` of X[cells, genes].
    fn submatrix<'py>(
        &self,
        py: Python<'py>,
        cells: &Bound<'py, PyAny>,
        genes: &Bound<'py, PyAny>,
    ) -> PyResult<CsrParts<'py>> {
        let (cells, genes) = (selector(cells)?, selector(genes)?);
        let csr = py
            .detach(|| self.inner.submatrix(&cells, &genes))
            .py_err()?;
        Ok(csr_to_py(py, csr))
    }

    /// `(shape, indptr, indices, data, dtype)` of layers[name][cells, genes].
    fn layer_submatrix<'py>(
        &self,
        py: Python<'py>,
        name: String,
        cells: &Bound<'py, PyAny>,
        genes: &Bound<'py, PyAny>,
    ) -> PyResult<CsrParts<'py>> {
        let (cells, genes) = (selector(cells)?, selector(genes)?);
        let csr = py
            .detach(|| self.inner.layer_submatrix(&name, &cells, &genes))
            .py_err()?;
        Ok(csr_to_py(py, csr))
    }

    /// The layout the planner reads X[cells, genes] through: "cell-major" or "gene-major".
    fn layout_for(
        &self,
        py: Python<'_>,
        cells: &Bound<'_, PyAny>,
        genes: &Bound<'_, PyAny>,
    ) -> PyResult<&'static str> {
        let (cells, genes) = (selector(cells)?, selector(genes)?);
        let layout = py
            .detach(|| {
                let cells = self.inner.resolve_cells(&cells)?;
                let genes = self.inner.resolve_genes(&genes)?;
                self.inner.layout_for(&cells, &genes)
            })
            .py_err()?;
        Ok(layout.as_str())
    }

    /// "fresh", "stale" or "absent": the gene-major companion and axis statistics.
    fn gene_major_status(&self) -> &'static str {
        self.inner.gene_major_status().as_str()
    }

    /// The stored statistics of axis "cells" or "genes" (row i = id i), or None unless they
    /// describe the current X.
    fn axis_stats(&self, py: Python<'_>, axis: &str) -> PyResult<Option<ArrowStream>> {
        let axis = match axis {
            "cells" => Axis::Cells,
            "genes" => Axis::Genes,
            other => {
                return Err(PyValueError::new_err(format!(
                    "axis must be 'cells' or 'genes', not {other:?}"
                )))
            }
        };
        let batch = py.detach(|| self.inner.axis_stats(axis)).py_err()?;
        Ok(batch.map(|b| ArrowStream::new(b.schema(), vec![b])))
    }

    /// Integer ids (uint32 bytes) picked by a cell selector, in output order.
    fn resolve_cells<'py>(
        &self,
        py: Python<'py>,
        cells: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cells = selector(cells)?;
        let resolved = py.detach(|| self.inner.resolve_cells(&cells)).py_err()?;
        let ids: Vec<u32> = (0..resolved.len()).map(|i| resolved.id(i)).collect();
        Ok(to_numpy(py, ids))
    }

    /// Integer ids (uint32 bytes) picked by a gene selector, in output order.
    fn resolve_genes<'py>(
        &self,
        py: Python<'py>,
        genes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let genes = selector(genes)?;
        let resolved = py.detach(|| self.inner.resolve_genes(&genes)).py_err()?;
        let ids: Vec<u32> = (0..resolved.len()).map(|i| resolved.id(i)).collect();
        Ok(to_numpy(py, ids))
    }

    fn obsm_keys(&self) -> Vec<(String, usize)> {
        self.inner.obsm_keys()
    }

    fn varm_keys(&self) -> Vec<(String, usize)> {
        self.inner.varm_keys()
    }

    fn obsm<'py>(&self, py: Python<'py>, key: String) -> PyResult<DenseParts<'py>> {
        let dense = py.detach(|| self.inner.obsm(&key)).py_err()?;
        Ok(dense_to_py(py, dense))
    }

    fn varm<'py>(&self, py: Python<'py>, key: String) -> PyResult<DenseParts<'py>> {
        let dense = py.detach(|| self.inner.varm(&key)).py_err()?;
        Ok(dense_to_py(py, dense))
    }

    fn obsp_keys(&self) -> Vec<String> {
        self.inner.obsp_keys()
    }

    fn varp_keys(&self) -> Vec<String> {
        self.inner.varp_keys()
    }

    fn obsp<'py>(&self, py: Python<'py>, key: String) -> PyResult<CsrParts<'py>> {
        let csr = py.detach(|| self.inner.obsp(&key)).py_err()?;
        Ok(csr_to_py(py, csr))
    }

    fn varp<'py>(&self, py: Python<'py>, key: String) -> PyResult<CsrParts<'py>> {
        let csr = py.detach(|| self.inner.varp(&key)).py_err()?;
        Ok(csr_to_py(py, csr))
    }

    fn layer_names(&self) -> Vec<String> {
        self.inner.layer_names()
    }

    /// `uns` as JSON text, or None.
    fn uns_json(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let uns = py.detach(|| self.inner.uns()).py_err()?;
        Ok(uns.map(|v| v.to_string()))
    }

    /// Human-readable summary.
    fn info(&self) -> String {
        self.inner.info().to_string()
    }

    /// "stored" or "derived": where the cell row index came from.
    fn start_index_source(&self, py: Python<'_>) -> PyResult<&'static str> {
        let source = py.detach(|| self.inner.start_index_source()).py_err()?;
        Ok(match source {
            slaf::StartIndexSource::Stored => "stored",
            slaf::StartIndexSource::Derived => "derived",
        })
    }
}
