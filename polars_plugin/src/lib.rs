//! `slaf._native`: the Python module over the SLAF core. It translates types and errors only.

mod arrow_export;
mod dataset;
mod errors;
mod expressions;
mod knn;
mod loader;
mod scan;
mod stats;
mod writer;

use pyo3::prelude::*;

/// DuckDB's entry point for the SLAF extension, exported from this library too: with DuckDB's
/// metadata footer appended (`slaf-package-extension --in-place`), the Python module file is
/// also the extension that `SLAFArray.query` loads, so a wheel ships the Lance/DataFusion code
/// once instead of twice. The standalone `slaf.duckdb_extension` remains for the DuckDB shell,
/// which has no Python symbols to resolve this library's pyo3 code against.
pub use slaf_duckdb::slaf_init_c_api;

/// Whether local datasets are read through io_uring in this process (see `SLAF_IO_URING`).
#[pyfunction]
fn io_uring_reads() -> bool {
    slaf::local_io::uring_reads()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<dataset::NativeDataset>()?;
    m.add_class::<arrow_export::ArrowStream>()?;
    m.add_class::<writer::NativeWriter>()?;
    m.add_class::<scan::NativeScan>()?;
    m.add_class::<loader::NativeLoader>()?;
    m.add_class::<loader::NativePrefetcher>()?;
    m.add_function(wrap_pyfunction!(stats::top_sums, m)?)?;
    m.add_function(wrap_pyfunction!(knn::nearest, m)?)?;
    m.add_function(wrap_pyfunction!(knn::vector_indexes, m)?)?;
    m.add_function(wrap_pyfunction!(knn::build_vector_index, m)?)?;
    m.add_function(wrap_pyfunction!(knn::drop_vector_index, m)?)?;
    m.add_function(wrap_pyfunction!(io_uring_reads, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Which cargo profile built this library: benchmarks record it and warn on a dev build.
    m.add(
        "BUILD_PROFILE",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    // The core's size bounds, so Python checks arguments against the same numbers.
    let limits = pyo3::types::PyDict::new(m.py());
    limits.set_item("max_seq_len", slaf::limits::MAX_SEQ_LEN)?;
    limits.set_item("max_n_bins", slaf::limits::MAX_N_BINS)?;
    limits.set_item("max_vocab_size", slaf::limits::MAX_VOCAB_SIZE)?;
    limits.set_item("max_batch_rows", slaf::limits::MAX_BATCH_ROWS)?;
    limits.set_item("max_selection", slaf::limits::MAX_SELECTION)?;
    limits.set_item("max_k", slaf::knn::MAX_K)?;
    m.add("LIMITS", limits)?;
    Ok(())
}
