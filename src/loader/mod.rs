//! A training data loader: cells of a dataset, tokenized (or raw CSR), served in a seeded
//! shuffled order, shared out across distributed ranks, and prepared ahead of the training loop
//! by worker threads.
//!
//! * [`plan`]: the order — block permutation per `(seed, epoch)`, rank shares, windows;
//! * [`source`]: reading a window's cells whole (cells split across fragments included);
//! * [`batch`]: tokenizing a window with the core tokenizers (one implementation for DuckDB,
//!   Polars and the loader) or keeping it raw;
//! * [`prefetch`]: worker threads, a bounded in-order queue, errors passed on, stop on drop.
//!
//! A window holds whole batches; front ends cut it into `batch_size` rows.
//!
//! ```no_run
//! use std::sync::Arc;
//! use slaf::loader::{Loader, LoaderOptions};
//! use slaf::tokenize::TokenizerSpec;
//! use slaf::Dataset;
//! let ds = Arc::new(Dataset::open("data/pbmc.slaf")?);
//! let options = LoaderOptions {
//!     tokenizer: Some(TokenizerSpec { name: "geneformer".into(), ..TokenizerSpec::default() }),
//!     ..LoaderOptions::default()
//! };
//! let loader = Loader::new(ds, options)?;
//! let prefetcher = loader.start(0, 1)?;
//! while let Some(window) = prefetcher.next() {
//!     println!("{} cells of epoch {}", window?.len(), 0);
//! }
//! # Ok::<(), slaf::Error>(())
//! ```

pub mod batch;
pub mod plan;
pub mod prefetch;
pub mod source;

use std::sync::{Arc, Mutex};

pub use batch::{RawWindow, Window, WindowData};
pub use plan::{Plan, PlanOptions};
pub use prefetch::{Prefetcher, QueueState, THREAD_NAME};

use crate::dataset::Dataset;
use crate::error::Result;
use crate::selection::Resolved;
use crate::slice::Selection;
use crate::tokenize::{Tokenizer, TokenizerSpec};
use source::Source;

/// Everything a loader is configured with.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Which cells (its gene selector must select all genes: a cell is served whole).
    pub selection: Selection,
    /// Read this layer instead of X.
    pub layer: Option<String>,
    /// Tokenize with this; `None` serves raw CSR windows.
    pub tokenizer: Option<TokenizerSpec>,
    /// Order and sharing.
    pub plan: PlanOptions,
    /// Worker threads.
    pub threads: usize,
    /// Windows prepared ahead of the consumer (the bounded queue), running ones included.
    pub queue_windows: usize,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            selection: Selection::default(),
            layer: None,
            tokenizer: None,
            plan: PlanOptions {
                batch_size: 32,
                shuffle: true,
                seed: 0,
                rank: 0,
                world_size: 1,
                drop_last: false,
                window_cells: 4096,
            },
            threads: 2,
            queue_windows: 4,
        }
    }
}

struct Inner {
    source: Source,
    tokenizer: Option<Tokenizer>,
    plan: Plan,
    /// The last epochs' rank sequences, so workers compute each once.
    epochs: Mutex<Vec<(u64, Arc<Vec<u32>>)>>,
}

impl Inner {
    fn rank_cells(&self, epoch: u64) -> Arc<Vec<u32>> {
        let mut epochs = self.epochs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, cells)) = epochs.iter().find(|(e, _)| *e == epoch) {
            return cells.clone();
        }
        let cells = Arc::new(self.plan.rank_cells(epoch));
        // Two are enough: workers straddle at most one epoch boundary.
        if epochs.len() >= 2 {
            epochs.remove(0);
        }
        epochs.push((epoch, cells.clone()));
        cells
    }

    fn window(&self, epoch: u64, window: usize) -> Result<Window> {
        let cells = self.plan.window(&self.rank_cells(epoch), epoch, window);
        let rows = self.source.read(&cells)?;
        Ok(Window {
            epoch,
            data: batch::build(rows, self.tokenizer.as_ref())?,
        })
    }
}

/// A configured loader; [`Loader::start`] runs epochs.
pub struct Loader {
    inner: Arc<Inner>,
    n_genes: usize,
    options: LoaderOptions,
}

impl Loader {
    /// Resolves the cells and builds the tokenizer, so bad options fail here, not in a worker.
    pub fn new(dataset: Arc<Dataset>, options: LoaderOptions) -> Result<Self> {
        name_rayon_pool();
        if options.selection.genes != crate::Selector::All
            || options.selection.gene_filter.is_some()
        {
            return Err(crate::Error::invalid_argument(
                "the loader serves whole cells: select cells only, not genes",
            ));
        }
        let cells = match options.selection.resolve_cells(&dataset)? {
            Resolved::All(n) => (0..n as u32).collect(),
            Resolved::Ids(mut ids) => {
                ids.sort_unstable();
                ids.dedup();
                ids
            }
        };
        let n_genes = dataset.shape().1;
        let tokenizer = match &options.tokenizer {
            Some(spec) => Some(spec.build(n_genes, &|| gene_names(&dataset))?),
            None => None,
        };
        let plan = Plan::new(cells, options.plan.clone())?;
        let source = Source::new(dataset, options.layer.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                source,
                tokenizer,
                plan,
                epochs: Mutex::new(Vec::new()),
            }),
            n_genes,
            options,
        })
    }

    /// The plan (cells and batches per epoch, windows, rounded window size).
    pub fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    /// The tokenizer, if any.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.inner.tokenizer.as_ref()
    }

    /// Genes of the dataset (columns of raw windows).
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Starts worker threads preparing epochs `first_epoch..first_epoch + n_epochs`, in order.
    pub fn start(&self, first_epoch: u64, n_epochs: u64) -> Result<Prefetcher<Window>> {
        let per_epoch = self.inner.plan.windows_per_epoch();
        let jobs = per_epoch * n_epochs as usize;
        let inner = self.inner.clone();
        let work: prefetch::Work<Window> = Arc::new(move |job| {
            let epoch = first_epoch + (job / per_epoch) as u64;
            inner.window(epoch, job % per_epoch)
        });
        Prefetcher::start(
            jobs,
            self.options.threads,
            self.options.queue_windows.max(self.options.threads),
            work,
        )
    }
}

/// Starts rayon's global pool (the tokenizers' threads), if nothing has yet, with names of its
/// own: started from inside a loader worker, its threads would inherit the worker's name and
/// look like loader threads that outlived their loader.
fn name_rayon_pool() {
    // An error means the pool already runs, which is fine.
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("slaf-rayon-{i}"))
        .build_global();
}

/// `gene_id` of every gene by gene_integer_id (for token dictionaries keyed by name), read as
/// `slaf_tokenize` reads them.
fn gene_names(dataset: &Dataset) -> Result<Vec<String>> {
    let names =
        crate::slice::read_names(dataset.genes_table(), crate::axis::GENES, dataset.shape().1)?;
    Ok(names
        .iter()
        .map(|n| n.unwrap_or_default().to_string())
        .collect())
}
