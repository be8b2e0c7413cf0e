//! SLAF core: the Sparse Lazy Array Format for single-cell expression data on Lance tables.
//!
//! Everything that is not a binding lives here: the format (`config`, `table`, `axis`,
//! `start_index`), selections, and matrix assembly. The DuckDB extension and the Python module
//! translate types and errors only.
//!
//! ```no_run
//! use slaf::{Dataset, Selector};
//! let ds = Dataset::open("data/pbmc.slaf")?;
//! let x = ds.submatrix(&Selector::Ids(vec![0, 5, 9]), &Selector::All)?;
//! assert_eq!(x.n_rows, 3);
//! # Ok::<(), slaf::Error>(())
//! ```

mod axis;
mod cell_cache;
pub mod cell_lists;
mod columns;
pub mod config;
mod dataset;
mod error;
mod filter_text;
pub mod gene_major;
pub mod knn;
mod layers;
mod layout;
pub mod limits;
pub mod loader;
pub mod local_io;
mod location;
mod matrix;
mod memory_filter;
pub mod progress;
mod runtime;
pub mod scan;
pub mod selected_rows;
mod selection;
pub mod slice;
mod start_index;
pub mod stats;
mod table;
pub mod token_scan;
pub mod tokenize;
pub mod writer;

pub use columns::Values;
pub use config::Config;
pub use dataset::{Dataset, Info};
pub use error::{Error, ErrorKind, Result};
pub use layout::Layout;
pub use location::Location;
pub use matrix::{Csr, Dense};
pub use selection::{parse_range, Axis, Resolved, Selector};
pub use start_index::StartIndexSource;
pub use table::Table;
