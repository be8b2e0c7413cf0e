//! The core's block statistics for `slaf.pp`, over numpy arrays (read in place).

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::errors::IntoPy;

/// Per row of a CSR block, the sums of its `n` largest values for each `n` of `ns`
/// (rows × len(ns), float64).
#[pyfunction]
pub fn top_sums<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    values: PyReadonlyArray1<'py, f64>,
    ns: Vec<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (indptr, values) = (indptr.as_slice()?, values.as_slice()?);
    let rows = indptr.len().saturating_sub(1);
    let sums = py
        .detach(|| slaf::stats::top_sums(indptr, values, &ns))
        .py_err()?;
    PyArray1::from_vec(py, sums).reshape([rows, ns.len()])
}
