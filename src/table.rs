//! One Lance table of a dataset: opening it, whole-table scans, and reads of row ranges that go
//! straight to the fragments that hold them (in parallel), never through a full scan.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema as ArrowSchema};
use futures::{StreamExt, TryStreamExt};
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::fragment::{FileFragment, FragReadConfig, FragmentReader};

use crate::error::{Error, Result, StorageContext};
use crate::local_io;
use crate::location::Location;
use crate::memory_filter::{self, ColumnCache};

/// Rows per batch decoded from a fragment.
const READ_BATCH_ROWS: u32 = 64 * 1024;
/// Fragments read at once; each also decodes its batches concurrently.
const FRAGMENT_CONCURRENCY: usize = 8;
const BATCH_CONCURRENCY: usize = 4;

/// Where one fragment's rows sit in the table's logical row order.
struct FragmentSpan {
    fragment: FileFragment,
    start: u64,
    rows: u64,
    has_deletions: bool,
}

/// An open Lance table with its fragment layout.
pub struct Table {
    role: String,
    uri: String,
    dataset: Arc<lance::Dataset>,
    schema: Arc<ArrowSchema>,
    fragments: Vec<FragmentSpan>,
    num_rows: u64,
    /// Columns kept for filters evaluated in memory (small tables only).
    filter_columns: ColumnCache,
    /// Fragment readers opened by range reads, by fragment position and projected field ids:
    /// opening one costs more than reading a cell's rows through it, so each is opened once.
    readers: Mutex<OpenReaders>,
}

/// Opened fragment readers by (fragment position, projected field ids).
type OpenReaders = HashMap<(usize, Vec<i32>), Arc<FragmentReader>>;

impl Table {
    /// Opens the table `role` (e.g. `"cells"`) stored at `relative` under the dataset root, at
    /// Lance `version` (what config.json records, so that config and tables agree) or the
    /// latest version when `None`.
    pub async fn open(
        location: &Location,
        role: &str,
        relative: &str,
        version: Option<u64>,
    ) -> Result<Self> {
        let uri = location.join(relative);
        if location.is_local() && !std::path::Path::new(&uri).is_dir() {
            return Err(Error::missing_table(format!(
                "table '{role}' of dataset {} is missing: {uri} does not exist",
                location.uri()
            )));
        }
        let lance_uri = if location.is_local() {
            local_io::lance_uri(&uri)
        } else {
            uri.clone()
        };
        let mut builder = DatasetBuilder::from_uri(&lance_uri)
            .with_storage_options(location.storage_options().clone());
        if let Some(version) = version {
            builder = builder.with_version(version);
        }
        let dataset = builder.load().await.map_err(|e| match e {
            lance::Error::VersionNotFound { .. } => Error::missing_table(format!(
                "table '{role}' of dataset {} has lost version {} that config.json describes: \
                 {uri} is damaged",
                location.uri(),
                version.unwrap_or_default()
            )),
            lance::Error::DatasetNotFound { .. } | lance::Error::NotFound { .. } => match version {
                Some(v) if std::path::Path::new(&uri).is_dir() || !location.is_local() => {
                    Error::missing_table(format!(
                        "table '{role}' of dataset {}: version {v} that config.json \
                             describes is missing or unreadable at {uri}",
                        location.uri()
                    ))
                }
                _ => Error::missing_table(format!(
                    "table '{role}' of dataset {} is missing or not a Lance table: {uri}",
                    location.uri()
                )),
            },
            other => Error::storage(format!("opening table '{role}' at {uri}"), other),
        })?;
        let dataset = Arc::new(dataset);
        let schema = Arc::new(ArrowSchema::from(dataset.schema()));
        let mut fragments = Vec::new();
        let mut start = 0u64;
        for fragment in dataset.get_fragments() {
            let rows = fragment
                .count_rows(None)
                .await
                .context(|| format!("counting rows of table '{role}' at {uri}"))?
                as u64;
            let has_deletions = fragment.metadata().deletion_file.is_some();
            fragments.push(FragmentSpan {
                fragment,
                start,
                rows,
                has_deletions,
            });
            start += rows;
        }
        Ok(Self {
            role: role.to_string(),
            uri,
            dataset,
            schema,
            fragments,
            num_rows: start,
            filter_columns: ColumnCache::default(),
            readers: Mutex::default(),
        })
    }

    /// The table's role in the dataset (`expression`, `cells`, ...).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Full URI of the table.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Arrow schema of the stored columns.
    pub fn schema(&self) -> &Arc<ArrowSchema> {
        &self.schema
    }

    /// Number of rows (after deletions).
    pub fn num_rows(&self) -> u64 {
        self.num_rows
    }

    /// Whether rows were deleted in place (Lance deletion files).
    pub fn has_deletions(&self) -> bool {
        self.fragments.iter().any(|f| f.has_deletions)
    }

    /// Number of fragments.
    pub fn num_fragments(&self) -> usize {
        self.fragments.len()
    }

    /// Logical row offset where each fragment starts.
    pub fn fragment_starts(&self) -> impl Iterator<Item = u64> + '_ {
        self.fragments.iter().map(|f| f.start)
    }

    /// The Lance version opened.
    pub fn version(&self) -> u64 {
        self.dataset.manifest().version
    }

    /// The underlying Lance dataset, for adapters that scan it themselves.
    pub fn lance(&self) -> &Arc<lance::Dataset> {
        &self.dataset
    }

    /// The stored type of `column`, if the table has it.
    pub fn column_type(&self, column: &str) -> Option<&DataType> {
        self.schema
            .field_with_name(column)
            .ok()
            .map(|f| f.data_type())
    }

    /// Fails with a schema error naming the table when `column` is absent.
    pub fn require_column(&self, column: &str) -> Result<&DataType> {
        self.column_type(column).ok_or_else(|| {
            Error::invalid_schema(format!(
                "table '{}' ({}) has no column '{column}'",
                self.role, self.uri
            ))
        })
    }

    fn projection(&self, columns: &[&str]) -> Result<lance::datatypes::Schema> {
        for column in columns {
            self.require_column(column)?;
        }
        self.dataset
            .schema()
            .project(columns)
            .context(|| format!("projecting {columns:?} of table '{}'", self.role))
    }

    /// Reads every row of `columns`, in storage order, optionally filtered by a Lance SQL predicate.
    pub async fn scan(&self, columns: &[&str], filter: Option<&str>) -> Result<Vec<RecordBatch>> {
        for column in columns {
            self.require_column(column)?;
        }
        let mut scanner = self.dataset.scan();
        scanner
            .project(columns)
            .context(|| format!("projecting {columns:?} of table '{}'", self.role))?;
        if let Some(filter) = filter {
            crate::filter_text::check_filter(filter, &self.role)?;
            scanner.filter(filter).map_err(|e| {
                Error::invalid_argument(format!(
                    "invalid filter {filter:?} on table '{}': {e}",
                    self.role
                ))
            })?;
        }
        let stream = scanner
            .try_into_stream()
            .await
            .map_err(|e| match (&e, filter) {
                // The filter names a column the table lacks, or compares mismatched types.
                (lance::Error::InvalidInput { .. }, Some(filter)) => Error::invalid_argument(
                    format!("invalid filter {filter:?} on table '{}': {e}", self.role),
                ),
                _ => Error::storage(format!("scanning table '{}' at {}", self.role, self.uri), e),
            })?;
        stream
            .try_collect()
            .await
            .context(|| format!("scanning table '{}' at {}", self.role, self.uri))
    }

    /// The rows of `columns` that satisfy `filter` (a Lance SQL predicate), like
    /// [`Table::scan`] with a filter. A small table evaluates it in memory over the columns it
    /// names, loaded on first use (see `memory_filter`).
    pub async fn filtered(&self, columns: &[&str], filter: &str) -> Result<Vec<RecordBatch>> {
        crate::filter_text::check_filter(filter, &self.role)?;
        if self.num_rows <= memory_filter::MAX_ROWS && !self.fragments.is_empty() {
            if let Some(batch) = self.filtered_in_memory(columns, filter).await? {
                return Ok(vec![batch]);
            }
        }
        self.scan(columns, Some(filter)).await
    }

    async fn filtered_in_memory(
        &self,
        columns: &[&str],
        filter: &str,
    ) -> Result<Option<RecordBatch>> {
        for column in columns {
            self.require_column(column)?;
        }
        let Some(predicate) = memory_filter::Predicate::parse(&self.schema, filter) else {
            return Ok(None);
        };
        let mut names = predicate.columns().to_vec();
        for column in columns {
            if !names.iter().any(|n| n == column) {
                names.push(column.to_string());
            }
        }
        let arrays = match self.filter_columns.get(&names) {
            Ok(arrays) => arrays,
            Err(missing) => {
                let missing_refs: Vec<&str> = missing.iter().map(String::as_str).collect();
                let batches = self.scan(&missing_refs, None).await?;
                let schema = Arc::new(self.projected_schema(&missing_refs)?);
                let all = arrow_select::concat::concat_batches(&schema, &batches)
                    .map_err(|e| Error::storage(format!("reading table '{}'", self.role), e))?;
                self.filter_columns.keep(&missing, all.columns());
                match self.filter_columns.get(&names) {
                    Ok(arrays) => arrays,
                    // Over the cache's budget: this filter uses the columns just read.
                    Err(_) => return Ok(None),
                }
            }
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let schema = Arc::new(self.projected_schema(&refs)?);
        let batch = RecordBatch::try_new(schema, arrays)
            .map_err(|e| Error::storage(format!("reading table '{}'", self.role), e))?;
        let Some(mask) = predicate.mask(&batch) else {
            return Ok(None);
        };
        let positions: Vec<usize> = columns
            .iter()
            .map(|c| names.iter().position(|n| n == c).expect("added above"))
            .collect();
        let projected = batch
            .project(&positions)
            .map_err(|e| Error::storage(format!("reading table '{}'", self.role), e))?;
        arrow_select::filter::filter_record_batch(&projected, &mask)
            .map(Some)
            .map_err(|e| Error::storage(format!("filtering table '{}'", self.role), e))
    }

    /// The Arrow schema of `columns`, in that order.
    fn projected_schema(&self, columns: &[&str]) -> Result<ArrowSchema> {
        let indices = columns
            .iter()
            .map(|c| {
                self.require_column(c)?;
                Ok(self.schema.index_of(c).expect("the column exists"))
            })
            .collect::<Result<Vec<usize>>>()?;
        self.schema
            .project(&indices)
            .map_err(|e| Error::storage(format!("projecting table '{}'", self.role), e))
    }

    /// Reads the rows in `ranges` (sorted, non-overlapping logical offsets) of `columns`; the
    /// batches come back in row order. Each fragment reads only its share of the ranges.
    pub async fn read_ranges(
        &self,
        ranges: &[Range<u64>],
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        let projection = self.projection(columns)?;
        if let Some(last) = ranges.last() {
            if last.end > self.num_rows {
                return Err(Error::invalid_schema(format!(
                    "table '{}' has {} rows but row {} was asked for: its row index is stale",
                    self.role,
                    self.num_rows,
                    last.end - 1
                )));
            }
        }
        let mut jobs = Vec::new();
        let mut next = 0usize;
        for (position, span) in self.fragments.iter().enumerate() {
            let (frag_start, frag_end) = (span.start, span.start + span.rows);
            let mut local = Vec::new();
            while next < ranges.len() && ranges[next].start < frag_end {
                let r = &ranges[next];
                let (s, e) = (r.start.max(frag_start), r.end.min(frag_end));
                if s < e {
                    local.push(s - frag_start..e - frag_start);
                }
                if r.end <= frag_end {
                    next += 1;
                } else {
                    break;
                }
            }
            if !local.is_empty() {
                jobs.push((position, span, local));
            }
        }
        let projection = &projection;
        let per_fragment: Vec<Vec<RecordBatch>> = futures::stream::iter(jobs)
            .map(|(position, span, local)| {
                self.read_fragment_ranges(position, span, local, projection)
            })
            .buffered(FRAGMENT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(per_fragment.into_iter().flatten().collect())
    }

    async fn read_fragment_ranges(
        &self,
        position: usize,
        span: &FragmentSpan,
        local: Vec<Range<u64>>,
        projection: &lance::datatypes::Schema,
    ) -> Result<Vec<RecordBatch>> {
        let context = || {
            format!(
                "reading fragment {} of table '{}' at {}",
                span.fragment.id(),
                self.role,
                self.uri
            )
        };
        if span.has_deletions {
            // Physical and logical offsets differ here; let Lance map them.
            let offsets: Vec<u64> = local
                .iter()
                .flat_map(|r| (r.start + span.start)..(r.end + span.start))
                .collect();
            let batch = self
                .dataset
                .take(&offsets, projection.clone())
                .await
                .context(context)?;
            return Ok(vec![batch]);
        }
        let reader = self
            .fragment_reader(position, span, projection, context)
            .await?;
        let stream = reader
            .read_ranges(local.into(), READ_BATCH_ROWS)
            .await
            .context(context)?;
        stream
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await
            .context(context)
    }

    /// The reader of fragment `position` for `projection`, opened on first use (`context`
    /// names the read an error belongs to).
    async fn fragment_reader(
        &self,
        position: usize,
        span: &FragmentSpan,
        projection: &lance::datatypes::Schema,
        context: impl FnOnce() -> String,
    ) -> Result<Arc<FragmentReader>> {
        let key = (position, projection.field_ids());
        let cached = self.lock_readers().get(&key).cloned();
        if let Some(reader) = cached {
            return Ok(reader);
        }
        let reader = span
            .fragment
            .open(projection, FragReadConfig::default())
            .await
            .context(context)?;
        let reader = Arc::new(reader);
        self.lock_readers().insert(key, reader.clone());
        Ok(reader)
    }

    fn lock_readers(&self) -> std::sync::MutexGuard<'_, OpenReaders> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads single rows at sorted logical `offsets`.
    pub async fn take(&self, offsets: &[u64], columns: &[&str]) -> Result<RecordBatch> {
        let projection = self.projection(columns)?;
        self.dataset
            .take(offsets, projection)
            .await
            .context(|| format!("reading rows of table '{}' at {}", self.role, self.uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    /// The shared fixture `name`; `None` (the test skips, saying why) without the shared data.
    fn fixture(name: &str) -> Option<Location> {
        let shared = std::env::var("SLAF_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
            });
        let path = shared.join("fixtures/slafdb-0.5.2").join(name);
        if !path.exists() {
            eprintln!("skipped: needs the shared test data: set SLAF_SHARED");
            return None;
        }
        Some(Location::parse(path.to_str().unwrap(), Default::default()).unwrap())
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn in_memory_filters_select_the_rows_lance_selects() {
        let Some(location) = fixture("pbmc68k_reduced_inmemory.slaf") else {
            return;
        };
        let cells = block_on(Table::open(&location, "cells", "cells.lance", None)).unwrap();
        for filter in [
            "bulk_labels = 'CD14+ Monocyte'",
            "bulk_labels IN ('CD56+ NK', 'Dendritic') AND n_genes > 800",
            "NOT (phase = 'G1') OR percent_mito >= 0.02",
            "louvain LIKE '1%' AND cell_integer_id < 500",
            "S_score BETWEEN -0.1 AND 0.1",
            "cell_id = 'no such cell'",
            "BULK_LABELS = 'Dendritic'",
        ] {
            let lance = block_on(cells.scan(&["cell_integer_id"], Some(filter))).unwrap();
            let ours = block_on(cells.filtered_in_memory(&["cell_integer_id"], filter))
                .unwrap()
                .unwrap_or_else(|| panic!("{filter}: not evaluated in memory"));
            assert_eq!(ids(&[ours]), ids(&lance), "{filter}");
        }
        // Not a predicate, or not valid: left to Lance, whose error the caller reports.
        for filter in ["n_genes + 1", "no_such_column = 1", "bulk_labels = "] {
            assert!(
                block_on(cells.filtered_in_memory(&["cell_integer_id"], filter))
                    .unwrap()
                    .is_none()
            );
            assert!(block_on(cells.filtered(&["cell_integer_id"], filter)).is_err());
        }
    }
}
