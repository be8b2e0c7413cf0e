//! Nearest-neighbour search and vector indexes (`slaf.knn` in the core) as module functions.
//! Query vectors arrive as a flat float32 numpy array; results leave as numpy arrays.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use slaf::knn::{self, Embedding, IndexKind, IndexSpec, Metric, Search, VectorIndex};

use crate::dataset::NativeDataset;
use crate::errors::IntoPy;

/// `(section, key, name, index_type, metric, num_partitions, indexed_rows, unindexed_rows)`.
type IndexRow = (
    &'static str,
    String,
    String,
    String,
    &'static str,
    Option<usize>,
    u64,
    u64,
);

fn index_row(index: &VectorIndex) -> IndexRow {
    (
        index.embedding.section(),
        index.key.clone(),
        index.name.clone(),
        index.index_type.clone(),
        index.metric.name(),
        index.num_partitions,
        index.indexed_rows,
        index.unindexed_rows,
    )
}

/// `(query, id, distance, metric, indexed)`: the `k` nearest rows of `section` key `key` to each
/// query vector (`queries`: the vectors one after another).
#[pyfunction]
#[pyo3(signature = (dataset, section, key, queries, k, filter=None, nprobes=None, refine=None, metric=None, exact=false))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn nearest<'py>(
    py: Python<'py>,
    dataset: &NativeDataset,
    section: &str,
    key: String,
    queries: PyReadonlyArray1<'py, f32>,
    k: usize,
    filter: Option<String>,
    nprobes: Option<usize>,
    refine: Option<u32>,
    metric: Option<String>,
    exact: bool,
) -> PyResult<(
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<f32>>,
    &'static str,
    bool,
)> {
    let what = Embedding::parse(section).py_err()?;
    let metric = metric.as_deref().map(Metric::parse).transpose().py_err()?;
    let search = Search {
        k,
        filter,
        nprobes,
        refine,
        metric,
        exact,
    };
    let queries = queries.as_slice()?.to_vec();
    let inner = dataset.dataset();
    let hits = py
        .detach(|| inner.nearest(what, &key, &queries, &search))
        .py_err()?;
    Ok((
        PyArray1::from_vec(py, hits.queries),
        PyArray1::from_vec(py, hits.ids),
        PyArray1::from_vec(py, hits.distances),
        hits.metric.unwrap_or(Metric::L2).name(),
        hits.indexed,
    ))
}

/// The dataset's vector indexes, one tuple each (see `IndexRow`).
#[pyfunction]
pub fn vector_indexes(py: Python<'_>, dataset: &NativeDataset) -> PyResult<Vec<IndexRow>> {
    let inner = dataset.dataset();
    let all = py
        .detach(|| inner.vector_indexes().map(|a| a.to_vec()))
        .py_err()?;
    Ok(all.iter().map(index_row).collect())
}

/// Builds (or rebuilds) the vector index of `section` key `key` of the dataset at `path`.
#[pyfunction]
#[pyo3(signature = (path, section, key, index_type="IVF_FLAT", metric="l2", num_partitions=None, num_sub_vectors=None))]
#[allow(clippy::too_many_arguments)]
pub fn build_vector_index(
    py: Python<'_>,
    path: String,
    section: &str,
    key: String,
    index_type: &str,
    metric: &str,
    num_partitions: Option<usize>,
    num_sub_vectors: Option<usize>,
) -> PyResult<IndexRow> {
    let what = Embedding::parse(section).py_err()?;
    let spec = IndexSpec {
        kind: IndexKind::parse(index_type).py_err()?,
        metric: Metric::parse(metric).py_err()?,
        num_partitions,
        num_sub_vectors,
    };
    let built = py
        .detach(|| knn::build_vector_index(&path, what, &key, &spec))
        .py_err()?;
    Ok(index_row(&built))
}

/// Drops the vector index of `section` key `key` of the dataset at `path`.
#[pyfunction]
pub fn drop_vector_index(py: Python<'_>, path: String, section: &str, key: String) -> PyResult<()> {
    let what = Embedding::parse(section).py_err()?;
    py.detach(|| knn::drop_vector_index(&path, what, &key))
        .py_err()
}
