//! Lance vector indexes on obsm/varm keys, built and dropped as new versions of the dataset.
//!
//! An index lives inside the cells (genes) Lance table, under `_indices/`; building one commits
//! a new table version, and config.json is replaced to name it, under the writer lock, as
//! every other change is. slafdb reads the table's columns and never sees the index.

use arrow_schema::Schema as ArrowSchema;
use lance::index::vector::VectorIndexParams;
use lance::index::DatasetIndexExt;
use lance::Dataset as LanceTable;
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::pq::PQBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_index::IndexType;
use serde_json::Value;

use super::{embedding_width, Embedding, Metric};
use crate::axis::is_embedding;
use crate::error::{Error, Result};
use crate::runtime::block_on;
use crate::writer::update::Change;

/// The most IVF partitions a default index gets.
const MAX_DEFAULT_PARTITIONS: usize = 4096;

/// The Lance index types offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// IVF partitions holding the vectors as they are: exact distances within the probed
    /// partitions (recall limited only by `nprobes`), as large as the vectors.
    IvfFlat,
    /// IVF with 8-bit scalar quantisation: a quarter of the size.
    IvfSq,
    /// IVF with product quantisation: smallest; pair with `refine` for high recall.
    IvfPq,
    /// IVF with an HNSW graph per partition over scalar-quantised vectors.
    IvfHnswSq,
}

impl IndexKind {
    /// Parses Lance's names: `IVF_FLAT`, `IVF_SQ`, `IVF_PQ`, `IVF_HNSW_SQ` (any case).
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_uppercase().as_str() {
            "IVF_FLAT" => Ok(Self::IvfFlat),
            "IVF_SQ" => Ok(Self::IvfSq),
            "IVF_PQ" => Ok(Self::IvfPq),
            "IVF_HNSW_SQ" => Ok(Self::IvfHnswSq),
            _ => Err(Error::invalid_argument(format!(
                "unknown index type {text:?}: use IVF_FLAT, IVF_SQ, IVF_PQ or IVF_HNSW_SQ"
            ))),
        }
    }

    /// Lance's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::IvfFlat => "IVF_FLAT",
            Self::IvfSq => "IVF_SQ",
            Self::IvfPq => "IVF_PQ",
            Self::IvfHnswSq => "IVF_HNSW_SQ",
        }
    }
}

/// What index to build. `IndexSpec::default()` is IVF_FLAT over l2 with partitions from the size.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub kind: IndexKind,
    pub metric: Metric,
    /// IVF partitions; `None`: about √rows (at most 4,096).
    pub num_partitions: Option<usize>,
    /// PQ sub-vectors (IVF_PQ only); `None`: sub-vectors of about 4 dimensions.
    pub num_sub_vectors: Option<usize>,
}

impl Default for IndexSpec {
    fn default() -> Self {
        Self {
            kind: IndexKind::IvfFlat,
            metric: Metric::L2,
            num_partitions: None,
            num_sub_vectors: None,
        }
    }
}

/// A vector index as the dataset has it.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorIndex {
    pub embedding: Embedding,
    /// The obsm/varm key it indexes.
    pub key: String,
    /// Lance's name for the index.
    pub name: String,
    /// Lance's index type (`IVF_FLAT`, ...).
    pub index_type: String,
    pub metric: Metric,
    pub num_partitions: Option<usize>,
    /// Rows the index covers; rows added later (appended cells) are searched without it.
    pub indexed_rows: u64,
    pub unindexed_rows: u64,
}

impl VectorIndex {
    /// One line for `slaf info`: `obsm/X_scvi: IVF_FLAT, l2, 1000 partitions`.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}/{}: {}, {}",
            self.embedding.section(),
            self.key,
            self.index_type,
            self.metric.name()
        );
        if let Some(n) = self.num_partitions {
            line.push_str(&format!(", {n} partitions"));
        }
        if self.unindexed_rows > 0 {
            line.push_str(&format!(
                ", {} rows not yet indexed (searched exactly)",
                self.unindexed_rows
            ));
        }
        line
    }
}

/// The vector indexes of `table` (the cells or genes table, as `what` says).
pub(crate) fn describe(table: &LanceTable, what: Embedding) -> Result<Vec<VectorIndex>> {
    block_on(async {
        let failed = |e: lance::Error| {
            Error::storage(format!("reading the indexes of table '{}'", what.role()), e)
        };
        let indices = table.load_indices().await.map_err(failed)?;
        let schema = table.schema();
        let mut found: Vec<VectorIndex> = Vec::new();
        for meta in indices.iter() {
            let Some(field) = meta.fields.first().and_then(|&id| schema.field_by_id(id)) else {
                continue;
            };
            if !is_embedding(&field.data_type()) || found.iter().any(|f| f.name == meta.name) {
                continue;
            }
            let stats = table.index_statistics(&meta.name).await.map_err(failed)?;
            let stats: Value = serde_json::from_str(&stats).map_err(|e| {
                Error::corrupt(format!(
                    "index {:?} has unreadable statistics: {e}",
                    meta.name
                ))
            })?;
            let segment = &stats["segments"][0];
            let metric = segment["metric_type"].as_str().unwrap_or("l2");
            let Ok(metric) = Metric::parse(metric) else {
                continue; // hamming: not an embedding index of ours
            };
            found.push(VectorIndex {
                embedding: what,
                key: field.name.clone(),
                name: meta.name.clone(),
                index_type: stats["index_type"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
                metric,
                num_partitions: segment["num_partitions"].as_u64().map(|n| n as usize),
                indexed_rows: stats["num_indexed_rows"].as_u64().unwrap_or(0),
                unindexed_rows: stats["num_unindexed_rows"].as_u64().unwrap_or(0),
            });
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    })
}

/// IVF partitions for `rows` vectors: about √rows, so each partition holds about as many.
fn default_partitions(rows: usize) -> usize {
    ((rows as f64).sqrt().round() as usize).clamp(1, MAX_DEFAULT_PARTITIONS)
}

/// PQ sub-vectors for `width` dimensions: the split into sub-vectors of about 4 dimensions
/// (the smallest divisor of `width` that is at least 4, or `width` itself).
fn default_sub_vectors(width: usize) -> usize {
    let length = (4..=width)
        .find(|l| width.is_multiple_of(*l))
        .unwrap_or(width);
    width / length.max(1)
}

/// Builds (or rebuilds) the vector index of `what` key `key` of the dataset at `path`.
pub fn build_vector_index(
    path: &str,
    what: Embedding,
    key: &str,
    spec: &IndexSpec,
) -> Result<VectorIndex> {
    let change = Change::begin(path)?;
    let role = what.role();
    let mut table = change
        .open(role)?
        .ok_or_else(|| Error::missing_table(format!("{path} has no table '{role}'")))?;
    let width = embedding_width(&ArrowSchema::from(table.schema()), what, key)?;
    let rows = block_on(table.count_rows(None))
        .map_err(|e| Error::storage(format!("counting the rows of table '{role}'"), e))?;
    if rows == 0 {
        return Err(Error::invalid_argument(format!(
            "{}[{key:?}] of {path} has no rows to index",
            what.section()
        )));
    }
    let partitions = spec
        .num_partitions
        .unwrap_or_else(|| default_partitions(rows));
    if partitions == 0 || partitions > rows {
        return Err(Error::invalid_argument(format!(
            "num_partitions must be between 1 and the number of rows ({rows}), got {partitions}"
        )));
    }
    let metric = spec.metric.lance();
    let ivf = IvfBuildParams::new(partitions);
    let params = match spec.kind {
        IndexKind::IvfFlat => VectorIndexParams::with_ivf_flat_params(metric, ivf),
        IndexKind::IvfSq => {
            VectorIndexParams::with_ivf_sq_params(metric, ivf, SQBuildParams::default())
        }
        IndexKind::IvfPq => {
            let sub_vectors = spec
                .num_sub_vectors
                .unwrap_or_else(|| default_sub_vectors(width));
            if sub_vectors == 0 || width % sub_vectors != 0 {
                return Err(Error::invalid_argument(format!(
                    "num_sub_vectors must divide the dimension {width}, got {sub_vectors}"
                )));
            }
            let pq = PQBuildParams {
                num_sub_vectors: sub_vectors,
                ..Default::default()
            };
            VectorIndexParams::with_ivf_pq_params(metric, ivf, pq)
        }
        IndexKind::IvfHnswSq => VectorIndexParams::with_ivf_hnsw_sq_params(
            metric,
            ivf,
            HnswBuildParams::default(),
            SQBuildParams::default(),
        ),
    };
    let name = format!("{key}_idx");
    block_on(table.create_index(&[key], IndexType::Vector, Some(name), &params, true)).map_err(
        |e| {
            Error::invalid_argument(format!(
                "building a {} index on {}[{key:?}] of {path}: {e}",
                spec.kind.name(),
                what.section()
            ))
        },
    )?;
    let version = table.manifest().version;
    change.commit_version(role, version)?;
    describe(&table, what)?
        .into_iter()
        .find(|i| i.key == key)
        .ok_or_else(|| Error::corrupt(format!("the index built on {key:?} is not listed")))
}

/// Drops the vector index of `what` key `key` of the dataset at `path`.
pub fn drop_vector_index(path: &str, what: Embedding, key: &str) -> Result<()> {
    let change = Change::begin(path)?;
    let role = what.role();
    let mut table = change
        .open(role)?
        .ok_or_else(|| Error::missing_table(format!("{path} has no table '{role}'")))?;
    let Some(found) = describe(&table, what)?.into_iter().find(|i| i.key == key) else {
        return Err(Error::unknown_name(format!(
            "{}[{key:?}] of {path} has no vector index",
            what.section()
        )));
    };
    block_on(table.drop_index(&found.name))
        .map_err(|e| Error::storage(format!("dropping index {:?} of {path}", found.name), e))?;
    let version = table.manifest().version;
    change.commit_version(role, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_size() {
        assert_eq!(default_partitions(1), 1);
        assert_eq!(default_partitions(1_000_000), 1000);
        assert_eq!(default_partitions(1 << 40), MAX_DEFAULT_PARTITIONS);
        assert_eq!(default_sub_vectors(50), 10);
        assert_eq!(default_sub_vectors(64), 16);
        assert_eq!(default_sub_vectors(3), 1);
    }

    #[test]
    fn index_kinds_parse_by_lance_names() {
        for kind in [
            IndexKind::IvfFlat,
            IndexKind::IvfSq,
            IndexKind::IvfPq,
            IndexKind::IvfHnswSq,
        ] {
            assert_eq!(IndexKind::parse(&kind.name().to_lowercase()).unwrap(), kind);
        }
        assert!(IndexKind::parse("HNSW").is_err());
    }
}
