//! Nearest-neighbour search over obsm/varm embeddings (fixed-size-list columns of the cells
//! and genes tables).
//!
//! A key with a Lance vector index (`index`) is searched through it; any other key, or a
//! query asking for exact results or for another metric than the index's, is answered by the
//! flat search in `exact`. Both return the same [`Neighbours`] shape, so results never depend
//! on an index being present, only their speed does.
//!
//! ```no_run
//! use slaf::knn::{Embedding, Search};
//! let ds = slaf::Dataset::open("atlas.slaf")?;
//! let query = vec![0.0_f32; 50];
//! let hits = ds.nearest(Embedding::Obsm, "X_scvi", &query, &Search::new(15))?;
//! assert!(hits.ids.len() <= 15);
//! # Ok::<(), slaf::Error>(())
//! ```

mod exact;
mod index;
mod indexed;

use arrow_schema::Schema as ArrowSchema;
use lance_linalg::distance::DistanceType;

use crate::axis::{embedding_fields, CELLS, GENES};
use crate::columns::{extend_ids, Values};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::runtime::block_on;
use crate::table::Table;

pub(crate) use index::describe;
pub use index::{build_vector_index, drop_vector_index, IndexKind, IndexSpec, VectorIndex};

/// The most neighbours one query may ask for.
pub const MAX_K: usize = 10_000;
/// IVF partitions searched first when a query does not say (Lance's long-standing default).
pub const DEFAULT_NPROBES: usize = 20;
/// The most query vectors in one call.
pub const MAX_QUERIES: usize = 1_000_000;

/// Which embeddings are searched: `obsm` keys (cells) or `varm` keys (genes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    Obsm,
    Varm,
}

impl Embedding {
    /// Parses `"obsm"` / `"varm"`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "obsm" => Ok(Self::Obsm),
            "varm" => Ok(Self::Varm),
            other => Err(Error::invalid_argument(format!(
                "embeddings are searched in 'obsm' or 'varm', not {other:?}"
            ))),
        }
    }

    /// `"obsm"` / `"varm"`.
    pub fn section(self) -> &'static str {
        match self {
            Self::Obsm => "obsm",
            Self::Varm => "varm",
        }
    }

    /// The table role: `"cells"` / `"genes"`.
    pub(crate) fn role(self) -> &'static str {
        match self {
            Self::Obsm => "cells",
            Self::Varm => "genes",
        }
    }

    /// `cell_integer_id` / `gene_integer_id`.
    pub fn id_column(self) -> &'static str {
        match self {
            Self::Obsm => CELLS.integer_id,
            Self::Varm => GENES.integer_id,
        }
    }

    /// `cell_id` / `gene_id`.
    pub fn name_column(self) -> &'static str {
        match self {
            Self::Obsm => CELLS.name,
            Self::Varm => GENES.name,
        }
    }

    fn table(self, dataset: &Dataset) -> &Table {
        match self {
            Self::Obsm => dataset.cells_table(),
            Self::Varm => dataset.genes_table(),
        }
    }
}

/// Distance between two vectors, as Lance defines it (so indexed and exact results agree):
/// `l2` is the squared Euclidean distance, `cosine` is 1 − cos θ, `dot` is 1 − x·y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    L2,
    Cosine,
    Dot,
}

impl Metric {
    /// Parses `"l2"` (or `"euclidean"`), `"cosine"`, `"dot"`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Self::L2),
            "cosine" => Ok(Self::Cosine),
            "dot" => Ok(Self::Dot),
            _ => Err(Error::invalid_argument(format!(
                "unknown metric {text:?}: use 'l2', 'cosine' or 'dot'"
            ))),
        }
    }

    /// Its name as `parse` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::L2 => "l2",
            Self::Cosine => "cosine",
            Self::Dot => "dot",
        }
    }

    pub(crate) fn lance(self) -> DistanceType {
        match self {
            Self::L2 => DistanceType::L2,
            Self::Cosine => DistanceType::Cosine,
            Self::Dot => DistanceType::Dot,
        }
    }
}

/// How a search runs. `Search::new(k)` is the usual start.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// Neighbours per query.
    pub k: usize,
    /// A SQL predicate on the table's columns (`tissue = 'lung'`): only rows that satisfy it
    /// are candidates.
    pub filter: Option<String>,
    /// IVF partitions probed per query (index only; `DEFAULT_NPROBES` when `None`); with a
    /// filter, more are probed when it leaves fewer than `k` candidates in them.
    pub nprobes: Option<usize>,
    /// Re-rank `refine × k` index candidates by their exact distance (index only).
    pub refine: Option<u32>,
    /// The metric; `None` uses the index's, or `l2` without an index.
    pub metric: Option<Metric>,
    /// Ignore any index: the flat search, exact by construction.
    pub exact: bool,
}

impl Search {
    /// `k` neighbours, no filter, index defaults.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            filter: None,
            nprobes: None,
            refine: None,
            metric: None,
            exact: false,
        }
    }
}

/// Search results: for each query (ascending), its neighbours nearest first (ties by id).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Neighbours {
    /// The query's position in the input.
    pub queries: Vec<u32>,
    /// The neighbour's integer id (`cell_integer_id` / `gene_integer_id`).
    pub ids: Vec<u32>,
    pub distances: Vec<f32>,
    /// The metric the distances are in.
    pub metric: Option<Metric>,
    /// Whether an index answered (`false`: the exact search did).
    pub indexed: bool,
}

/// One search after its arguments were checked: what the exact and indexed paths take.
#[derive(Debug, Clone, Copy)]
struct Request<'a> {
    what: Embedding,
    key: &'a str,
    /// `n_queries × width` values, row-major.
    queries: &'a [f32],
    n_queries: usize,
    width: usize,
    /// The metric chosen (the search's, else the index's, else l2).
    metric: Metric,
    search: &'a Search,
}

impl Dataset {
    /// The `search.k` nearest rows to each query vector under embedding `key`. `queries` holds
    /// the vectors one after another (`n_queries × d` values, row-major).
    pub fn nearest(
        &self,
        what: Embedding,
        key: &str,
        queries: &[f32],
        search: &Search,
    ) -> Result<Neighbours> {
        let table = what.table(self);
        let width = embedding_width(table.schema(), what, key)?;
        let n_queries = check_queries(queries, width, what, key)?;
        check_search(search)?;
        if let Some(filter) = &search.filter {
            crate::filter_text::check_filter(filter, table.role())?;
        }
        let found = self
            .vector_indexes()?
            .iter()
            .find(|i| i.embedding == what && i.key == key);
        let metric = search
            .metric
            .or(found.as_ref().map(|i| i.metric))
            .unwrap_or(Metric::L2);
        let request = Request {
            what,
            key,
            queries,
            n_queries,
            width,
            metric,
            search,
        };
        // An index built for another metric ranks by the wrong distance: search exactly.
        let indexed = found.is_some_and(|i| i.metric == metric) && !search.exact;
        if !indexed {
            return self.nearest_exact(&request);
        }
        block_on(indexed::search(table, &request))
    }

    fn nearest_exact(&self, request: &Request) -> Result<Neighbours> {
        let Request { what, key, .. } = *request;
        let vectors = match what {
            Embedding::Obsm => self.obsm(key)?,
            Embedding::Varm => self.varm(key)?,
        };
        let data: Vec<f32> = match vectors.data {
            Values::F32(v) => v,
            Values::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        };
        let allowed = match &request.search.filter {
            None => None,
            Some(filter) => Some(self.matching_ids(what, filter)?),
        };
        Ok(exact::search(&data, request, allowed.as_deref()))
    }

    /// A mask over the table's integer ids: `true` where `filter` holds.
    fn matching_ids(&self, what: Embedding, filter: &str) -> Result<Vec<bool>> {
        let table = what.table(self);
        let n = table.num_rows() as usize;
        let batches = block_on(table.filtered(&[what.id_column()], filter))?;
        let mut ids = Vec::new();
        for batch in &batches {
            extend_ids(&mut ids, batch.column(0).as_ref(), what.id_column())?;
        }
        let mut mask = vec![false; n];
        for id in ids {
            if let Some(slot) = mask.get_mut(id as usize) {
                *slot = true;
            }
        }
        Ok(mask)
    }
}

/// The width of embedding `key` of `what`'s table (its `schema`), or an error naming the keys
/// there are.
fn embedding_width(schema: &ArrowSchema, what: Embedding, key: &str) -> Result<usize> {
    let columns = embedding_fields(schema);
    if let Some((_, width)) = columns.iter().find(|(k, _)| k == key) {
        return Ok(*width);
    }
    if schema.field_with_name(key).is_ok() {
        return Err(Error::invalid_argument(format!(
            "{key:?} is a column of the {} table, not an {} embedding",
            what.role(),
            what.section()
        )));
    }
    let known: Vec<String> = columns.into_iter().map(|(k, _)| k).collect();
    Err(Error::unknown_key(
        &format!("{} key", what.section()),
        key,
        &known,
    ))
}

/// The number of query vectors, after checking their shape and values.
fn check_queries(queries: &[f32], width: usize, what: Embedding, key: &str) -> Result<usize> {
    if queries.is_empty() {
        return Err(Error::invalid_argument("no query vectors were given"));
    }
    if width == 0 || !queries.len().is_multiple_of(width) {
        return Err(Error::invalid_argument(format!(
            "query vectors must have {width} values each ({}[{key:?}] has dimension {width}); \
             got {} values",
            what.section(),
            queries.len()
        )));
    }
    let n = queries.len() / width;
    crate::limits::check_range("number of query vectors", n, 1, MAX_QUERIES)?;
    if let Some(bad) = queries.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid_argument(format!(
            "query vector {} has a non-finite value (NaN or infinity) at position {}",
            bad / width,
            bad % width
        )));
    }
    Ok(n)
}

fn check_search(search: &Search) -> Result<()> {
    if search.k == 0 || search.k > MAX_K {
        return Err(Error::invalid_argument(format!(
            "k must be between 1 and {MAX_K}, got {}",
            search.k
        )));
    }
    if search.nprobes == Some(0) {
        return Err(Error::invalid_argument("nprobes must be at least 1"));
    }
    if search.refine == Some(0) {
        return Err(Error::invalid_argument("refine must be at least 1"));
    }
    Ok(())
}
