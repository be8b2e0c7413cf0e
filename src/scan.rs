//! Streaming, fragment-parallel scans of one table of a dataset, for engines that pull rows in
//! small chunks from several threads at once (DuckDB's table functions).
//!
//! A [`Scan`] hands out the table's fragments to whichever thread asks next; each fragment is
//! read as a Lance stream with the projection and an optional Lance SQL filter pushed down, and
//! batches are cut to the caller's chunk size. The parts of a batch not yet returned wait in the
//! scan, so no thread ever holds rows another thread needs.
//!
//! ```no_run
//! use slaf::{Dataset, scan::Scan};
//! let ds = Dataset::open("data/pbmc.slaf")?;
//! let table = slaf::scan::table_of(&ds, "expression")?;
//! let scan = Scan::new(&table, &["value"], None)?;
//! let mut total = 0;
//! while let Some(batch) = scan.next_batch(2048)? {
//!     total += batch.num_rows();
//! }
//! assert_eq!(total as u64, ds.nnz());
//! # Ok::<(), slaf::Error>(())
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema as ArrowSchema};
use futures::stream::BoxStream;
use futures::StreamExt;
use lance::dataset::fragment::{FileFragment, FragReadConfig};

use crate::dataset::Dataset;
use crate::error::{Error, Result, StorageContext};
use crate::runtime::block_on;
use crate::table::Table;

/// Rows per batch decoded from Lance; batches are then cut to the caller's chunk size. Large
/// batches matter: each one is a decode task Lance hands to its I/O runtime and the scanning
/// thread waits for, so 32K-row batches spent a fifth more CPU on a full expression scan than
/// 128K-row ones (benches/bench_duckdb.py).
const SCAN_BATCH_ROWS: usize = 128 * 1024;
/// ... and at most about this many bytes per batch, so wide tables (obs with embeddings) stay
/// small in memory.
const SCAN_BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// Batches of a fragment decoded ahead of the one being returned.
const READ_AHEAD_BATCHES: usize = 2;

/// Tables a dataset may hold, by the names users give them, with the config key of each.
const TABLE_ALIASES: &[(&str, &str)] = &[
    ("expression", "expression"),
    ("x", "expression"),
    ("cells", "cells"),
    ("obs", "cells"),
    ("genes", "genes"),
    ("var", "genes"),
    ("layers", "layers"),
    ("obsp", "cellsxcells"),
    ("cellsxcells", "cellsxcells"),
    ("varp", "genesxgenes"),
    ("genesxgenes", "genesxgenes"),
];

/// One Lance table of a dataset, ready to be scanned (cheap to clone).
#[derive(Clone)]
pub struct ScanTable {
    name: String,
    lance: Arc<lance::Dataset>,
    schema: Arc<ArrowSchema>,
}

impl ScanTable {
    fn new(name: &str, lance: Arc<lance::Dataset>) -> Self {
        let schema = Arc::new(ArrowSchema::from(lance.schema()));
        Self {
            name: name.to_string(),
            lance,
            schema,
        }
    }

    /// The name the table was asked for by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored columns.
    pub fn schema(&self) -> &Arc<ArrowSchema> {
        &self.schema
    }

    /// Rows stored (deleted rows included when the count is not recorded exactly).
    pub fn num_rows(&self) -> u64 {
        self.lance
            .get_fragments()
            .iter()
            .map(|f| f.metadata().num_rows().unwrap_or(0) as u64)
            .sum()
    }
}

/// The table a user-facing name (`cells`/`obs`, `genes`/`var`, `expression`/`X`, `layers`,
/// `obsp`, `varp`, or a raw key of `config["tables"]`) refers to.
pub fn table_of(ds: &Dataset, name: &str) -> Result<ScanTable> {
    let lance = lance_table(ds, name)?;
    Ok(ScanTable::new(name, lance))
}

fn lance_table(ds: &Dataset, name: &str) -> Result<Arc<lance::Dataset>> {
    let lower = name.to_ascii_lowercase();
    let role = TABLE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map(|(_, role)| *role)
        .unwrap_or(name);
    match role {
        "expression" => return Ok(ds.expression_table().lance().clone()),
        "cells" => return Ok(ds.cells_table().lance().clone()),
        "genes" => return Ok(ds.genes_table().lance().clone()),
        _ => {}
    }
    let Some(relative) = ds.config().tables.get(role) else {
        let known: Vec<&str> = ds.config().tables.keys().map(String::as_str).collect();
        return Err(Error::new(
            crate::ErrorKind::UnknownName,
            format!(
                "dataset {} has no table {name:?} (it has: {})",
                ds.location().uri(),
                known.join(", ")
            ),
        ));
    };
    let version = ds.config().table_version(role);
    let table = block_on(Table::open(ds.location(), role, relative, version))?;
    Ok(table.lance().clone())
}

/// A stream of one fragment's batches.
type BatchStream = BoxStream<'static, lance::Result<RecordBatch>>;

/// A fragment-parallel scan; every method may be called from several threads at once.
pub struct Scan {
    name: String,
    table: Arc<lance::Dataset>,
    columns: Vec<String>,
    /// A stand-in column read when no column is projected (e.g. `count(*)`).
    placeholder: Option<String>,
    filter: Option<String>,
    /// Fragments nobody has opened yet.
    fragments: Mutex<VecDeque<FileFragment>>,
    /// Opened fragment streams no thread is reading right now.
    streams: Mutex<Vec<BatchStream>>,
    /// Batches partly returned: the rest waits here.
    leftovers: Mutex<Vec<RecordBatch>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another reader leaves the queues consistent (each push/pop is atomic).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Scan {
    /// A scan of `columns` (all must exist; none means "rows only") of `table`, keeping rows
    /// that satisfy the Lance SQL `filter`. The filter is checked here, so a malformed one fails
    /// before any row is read.
    pub fn new(table: &ScanTable, columns: &[&str], filter: Option<&str>) -> Result<Self> {
        let schema = table.schema();
        for column in columns {
            if schema.field_with_name(column).is_err() {
                let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::new(
                    crate::ErrorKind::UnknownName,
                    format!(
                        "table {:?} has no column {column:?} (columns: {})",
                        table.name(),
                        known.join(", ")
                    ),
                ));
            }
        }
        let name = table.name();
        let table = &table.lance;
        let placeholder = if columns.is_empty() {
            // The narrowest fixed-width column keeps a row count cheap.
            let width = |t: &DataType| t.primitive_width().unwrap_or(usize::MAX);
            schema
                .fields()
                .iter()
                .min_by_key(|f| width(f.data_type()))
                .map(|f| f.name().clone())
        } else {
            None
        };
        let scan = Self {
            name: name.to_string(),
            table: table.clone(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            placeholder,
            filter: filter.map(str::to_string),
            fragments: Mutex::new(table.get_fragments().into()),
            streams: Mutex::new(Vec::new()),
            leftovers: Mutex::new(Vec::new()),
        };
        if let Some(filter) = filter {
            crate::filter_text::check_filter(filter, name)?;
            // Planning a scan parses and type-checks the predicate against the schema.
            let mut scanner = table.scan();
            scanner
                .filter(filter)
                .map_err(|e| invalid_filter(filter, name, e))?;
            block_on(scanner.create_plan()).map_err(|e| invalid_filter(filter, name, e))?;
        }
        Ok(scan)
    }

    /// Number of fragments: the useful number of threads.
    pub fn num_fragments(&self) -> usize {
        self.table.get_fragments().len()
    }

    fn projected(&self) -> Vec<&str> {
        match &self.placeholder {
            Some(p) => vec![p.as_str()],
            None => self.columns.iter().map(String::as_str).collect(),
        }
    }

    fn open_fragment(&self, fragment: FileFragment) -> Result<BatchStream> {
        let context = || format!("scanning table at {}", self.table.uri());
        if self.filter.is_none() && fragment.metadata().deletion_file.is_none() {
            return self.read_fragment(fragment);
        }
        let mut scanner = self.table.scan();
        scanner
            .with_fragments(vec![fragment.metadata().clone()])
            .batch_size(SCAN_BATCH_ROWS)
            .batch_size_bytes(SCAN_BATCH_BYTES)
            .project(&self.projected())
            .context(context)?;
        if let Some(filter) = &self.filter {
            scanner
                .filter(filter)
                .map_err(|e| invalid_filter(filter, &self.name, e))?;
        }
        block_on(scanner.try_into_stream())
            .map(|s| s.boxed())
            .context(context)
    }

    /// Every row of a fragment without deletions, straight from its file reader: no query plan
    /// and no filter stage, which an unfiltered scan does not need (a fifth less CPU on a full
    /// expression scan, benches/bench_duckdb.py).
    fn read_fragment(&self, fragment: FileFragment) -> Result<BatchStream> {
        let context = || format!("scanning table at {}", self.table.uri());
        let columns = self.projected();
        let projection = self.table.schema().project(&columns).context(context)?;
        let reader =
            block_on(fragment.open(&projection, FragReadConfig::default())).context(context)?;
        let rows = batch_rows(&projection);
        let stream = block_on(reader.read_all(rows)).context(context)?;
        let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        // Batches in the order asked for, whatever order the reader keeps fields in.
        Ok(stream
            .buffered(READ_AHEAD_BATCHES)
            .map(move |batch| {
                let batch = batch?;
                let order: Vec<usize> = names
                    .iter()
                    .map(|n| batch.schema().index_of(n))
                    .collect::<std::result::Result<_, _>>()?;
                Ok(batch.project(&order)?)
            })
            .boxed())
    }

    /// The next batch of at most `max_rows` rows (at least one), or `None` when this thread
    /// has nothing left to read. Columns are in the order given to [`Scan::new`]; a scan of no
    /// columns returns batches with no columns and the right row count.
    pub fn next_batch(&self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.max(1);
        loop {
            let leftover = lock(&self.leftovers).pop();
            if let Some(batch) = leftover {
                return Ok(Some(self.cut(batch, max_rows)));
            }
            let stream = lock(&self.streams).pop();
            let mut stream = match stream {
                Some(s) => s,
                None => {
                    let fragment = lock(&self.fragments).pop_front();
                    let Some(fragment) = fragment else {
                        return Ok(None);
                    };
                    self.open_fragment(fragment)?
                }
            };
            match block_on(stream.next()) {
                Some(batch) => {
                    lock(&self.streams).push(stream);
                    let batch =
                        batch.context(|| format!("scanning table at {}", self.table.uri()))?;
                    if batch.num_rows() > 0 {
                        return Ok(Some(self.cut(batch, max_rows)));
                    }
                }
                None => continue,
            }
        }
    }

    /// Returns the first `max_rows` rows and keeps the rest for the next call.
    fn cut(&self, batch: RecordBatch, max_rows: usize) -> RecordBatch {
        let batch = if self.placeholder.is_some() {
            RecordBatch::try_new_with_options(
                Arc::new(ArrowSchema::empty()),
                vec![],
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )
            .expect("an empty schema with a row count is a valid batch")
        } else {
            batch
        };
        if batch.num_rows() <= max_rows {
            return batch;
        }
        let rest = batch.slice(max_rows, batch.num_rows() - max_rows);
        lock(&self.leftovers).push(rest);
        batch.slice(0, max_rows)
    }
}

/// Rows per batch of a direct fragment read: [`SCAN_BATCH_ROWS`], fewer for wide rows so a
/// batch stays near [`SCAN_BATCH_BYTES`].
fn batch_rows(projection: &lance::datatypes::Schema) -> u32 {
    fn width(t: &DataType) -> usize {
        match t {
            DataType::FixedSizeList(f, n) => width(f.data_type()) * (*n).max(1) as usize,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => 32,
            DataType::List(f) | DataType::LargeList(f) => 8 * width(f.data_type()),
            t => t.primitive_width().unwrap_or(8),
        }
    }
    let row_bytes: usize = ArrowSchema::from(projection)
        .fields()
        .iter()
        .map(|f| width(f.data_type()))
        .sum();
    let rows = SCAN_BATCH_BYTES as usize / row_bytes.max(1);
    rows.clamp(1024, SCAN_BATCH_ROWS) as u32
}

fn invalid_filter(filter: &str, table: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        crate::ErrorKind::InvalidArgument,
        format!("invalid filter {filter:?} on table {table:?}: {e}"),
    )
}
