//! `slaf._native`: the Python module over the SLAF core. It translates types and errors only.

mod arrow_export;
mod dataset;
mod errors;
mod expressions;
mod loader;
mod scan;
mod writer;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<dataset::NativeDataset>()?;
    m.add_class::<arrow_export::ArrowStream>()?;
    m.add_class::<writer::NativeWriter>()?;
    m.add_class::<scan::NativeScan>()?;
    m.add_class::<loader::NativeLoader>()?;
    m.add_class::<loader::NativePrefetcher>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
