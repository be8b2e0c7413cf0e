//! The SLAF DuckDB extension: SQL over SLAF datasets.
//!
//! * `slaf_scan(path, table, filter := …, columns := …)` — one table (`cells`, `genes`,
//!   `expression`, `layers`, `obsp`, `varp`) with projection pushdown, fragment-parallel.
//! * `slaf_slice(path, cells := …, genes := …, cell_filter := …, gene_filter := …, layer := …)`
//!   — a submatrix as long rows.
//! * `slaf_tokenize(path, tokenizer := …, …)` — tokenized cells for foundation models.
//! * `slaf_info(path)` — a summary of a dataset.
//! * `slaf_knn(path, 'obsm' | 'varm', key, vector, k := …, filter := …)` — nearest cells or
//!   genes in an embedding (`slaf::knn`).
//!
//! This crate only translates: DuckDB parameters → core selections and options, core errors →
//! DuckDB errors, Arrow batches → DuckDB vectors. Scanning, slicing and tokenizing are
//! `slaf::scan`, `slaf::slice` and `slaf::token_scan`. Panics inside callbacks are turned into
//! query errors by duckdb-rs (the crate must not be built with `panic = "abort"`).

use std::error::Error;

use duckdb::vtab::InitInfo;
use duckdb::{duckdb_entrypoint_c_api, Connection};

mod info;
mod knn;
mod params;
mod scan;
mod slice;
mod tokenize;
mod types;

/// Rows per DuckDB output chunk (DuckDB's standard vector size).
pub(crate) const CHUNK_ROWS: usize = 2048;

/// The bind data of the function being initialised.
pub(crate) fn bind_data_of<T>(init: &InitInfo) -> &T {
    // SAFETY: DuckDB keeps the bind data (set by this function's own `bind`, so of type `T`)
    // alive and unmoved until the query ends, which outlives every init and scan callback.
    unsafe { &*init.get_bind_data::<T>() }
}

/// Registers the table functions; DuckDB calls this on `LOAD slaf`.
#[duckdb_entrypoint_c_api(ext_name = "slaf", min_duckdb_version = "v1.5.6")]
pub fn extension_entrypoint(con: Connection) -> Result<(), Box<dyn Error>> {
    con.register_table_function::<scan::SlafScan>("slaf_scan")?;
    con.register_table_function::<slice::SlafSlice>("slaf_slice")?;
    con.register_table_function::<tokenize::SlafTokenize>("slaf_tokenize")?;
    con.register_table_function::<info::SlafInfo>("slaf_info")?;
    con.register_table_function::<knn::SlafKnn>("slaf_knn")?;
    Ok(())
}
