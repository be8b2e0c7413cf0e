//! A Lance table being written, one fragment at a time, committed once at the end.
//!
//! Rows reach a fragment in batches through a bounded channel: a background thread runs Lance's
//! writer over them (encoding and file I/O overlap with the caller preparing its next rows, and
//! memory stays at a few batches however large the fragment). A fragment's data file is written
//! without a commit; while it is being finished the next one already takes rows. `finish`
//! commits every fragment, in order, as one new version of the table (`Overwrite` for a new
//! table, `Append` for an existing one). Dropping the sink without `finish` commits nothing.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use arrow_array::{RecordBatch, RecordBatchIterator};
use arrow_schema::{ArrowError, SchemaRef};
use lance::dataset::transaction::{Operation, Transaction};
use lance::dataset::{CommitBuilder, InsertBuilder, WriteMode, WriteParams};

use crate::error::{Error, Result};
use crate::runtime::block_on;

/// Rows in one expression/layers fragment by default.
pub const DEFAULT_ROWS_PER_FRAGMENT: usize = 4 * 1024 * 1024;

/// Batches waiting in a fragment's channel before `write` blocks.
const QUEUED_BATCHES: usize = 1;
/// Fragments being finished (footer, flush) while the next one takes rows.
const FINISHING_FRAGMENTS: usize = 1;

type Batch = std::result::Result<RecordBatch, ArrowError>;

/// Hands memory that is free but kept by the allocator back to the system. A write churns
/// through large short-lived buffers on several threads, which glibc otherwise keeps in its
/// per-thread arenas (measured: ~10% of the peak resident memory of a conversion).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: glibc's `malloc_trim` takes no pointers and locks each arena itself; it is
        // safe to call from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// The fragment taking rows: its channel and the thread writing it.
struct OpenFragment {
    rows: SyncSender<Batch>,
    writer: JoinHandle<Result<Transaction>>,
}

pub(crate) struct TableSink {
    role: &'static str,
    path: PathBuf,
    schema: Option<SchemaRef>,
    /// The table existed before (an append): fragments are appended to it.
    existing: bool,
    /// A table already at `path` is replaced by what is written (a new version of it).
    replace: bool,
    open: Option<OpenFragment>,
    finishing: VecDeque<JoinHandle<Result<Transaction>>>,
    /// Written fragments' transactions, in fragment order.
    written: Vec<Transaction>,
}

impl TableSink {
    /// A table at `path`; `existing` is its schema when appending to a table already there.
    pub fn new(role: &'static str, path: &Path, existing: Option<SchemaRef>) -> Self {
        Self::with_mode(role, path, existing, false)
    }

    /// A new version of the table at `path` holding only what is written (created if absent).
    pub fn replacing(role: &'static str, path: &Path) -> Self {
        Self::with_mode(role, path, None, true)
    }

    fn with_mode(
        role: &'static str,
        path: &Path,
        existing: Option<SchemaRef>,
        replace: bool,
    ) -> Self {
        Self {
            role,
            path: path.to_path_buf(),
            existing: existing.is_some(),
            replace,
            schema: existing,
            open: None,
            finishing: VecDeque::new(),
            written: Vec::new(),
        }
    }

    /// The table's schema once known (from the first write or the existing table).
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// Whether the table exists or will (something was written).
    pub fn exists(&self) -> bool {
        self.existing || self.schema.is_some()
    }

    fn uri(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    fn failed(&self, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::storage(
            format!("writing table '{}' at {}", self.role, self.path.display()),
            e,
        )
    }

    fn join(&self, writer: JoinHandle<Result<Transaction>>) -> Result<Transaction> {
        writer.join().map_err(|_| {
            Error::invalid_argument(format!("writing table '{}' panicked", self.role))
        })?
    }

    /// Starts a fragment: a thread running Lance's writer (without a commit) over the rows
    /// that arrive on a channel.
    fn open_fragment(&mut self, schema: SchemaRef) -> OpenFragment {
        let (rows, queue) = sync_channel::<Batch>(QUEUED_BATCHES);
        let mode = if self.existing {
            WriteMode::Append
        } else if self.replace && self.path.is_dir() {
            WriteMode::Overwrite
        } else {
            WriteMode::Create
        };
        let uri = self.uri();
        let context = format!("writing table '{}' at {}", self.role, self.path.display());
        let writer = std::thread::spawn(move || {
            let reader = RecordBatchIterator::new(queue, schema);
            let params = WriteParams {
                mode,
                // One data file per fragment: the writer decides where fragments end.
                max_rows_per_file: usize::MAX / 2,
                // 2.2 is the default; stated so that appends keep it too.
                data_storage_version: Some(Default::default()),
                enable_v2_manifest_paths: true,
                ..Default::default()
            };
            let insert = InsertBuilder::new(uri.as_str()).with_params(&params);
            block_on(insert.execute_uncommitted_stream(reader))
                .map_err(|e| Error::storage(context, e))
        });
        OpenFragment { rows, writer }
    }

    /// Appends `batch` to the current fragment (starting one if none is open).
    pub fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let schema = self.schema.get_or_insert_with(|| batch.schema()).clone();
        if self.open.is_none() {
            self.open = Some(self.open_fragment(schema));
        }
        let open = self.open.as_ref().expect("opened above");
        if open.rows.send(Ok(batch)).is_err() {
            // The writer stopped: report why.
            let open = self.open.take().expect("open");
            return match self.join(open.writer) {
                Err(e) => Err(e),
                Ok(_) => Err(Error::invalid_argument(format!(
                    "writing table '{}' stopped early",
                    self.role
                ))),
            };
        }
        Ok(())
    }

    /// Ends the current fragment (its file is finished in the background).
    pub fn end_fragment(&mut self) -> Result<()> {
        if let Some(open) = self.open.take() {
            drop(open.rows);
            self.finishing.push_back(open.writer);
        }
        while self.finishing.len() > FINISHING_FRAGMENTS {
            let writer = self.finishing.pop_front().expect("non-empty");
            let done = self.join(writer)?;
            self.written.push(done);
            release_free_memory();
        }
        Ok(())
    }

    /// Writes `batch` as a fragment of its own.
    pub fn write_fragment(&mut self, batch: RecordBatch) -> Result<()> {
        self.write(batch)?;
        self.end_fragment()
    }

    /// Finishes every fragment and commits them as one version; a new table that got no rows
    /// is created from `empty` (rows of the right schema, usually none). Returns the version
    /// committed (`None`: an existing table that got no rows keeps its version).
    pub fn finish(&mut self, empty: impl FnOnce() -> RecordBatch) -> Result<Option<u64>> {
        if !self.exists() {
            self.write(empty())?;
        }
        self.end_fragment()?;
        while let Some(writer) = self.finishing.pop_front() {
            let done = self.join(writer)?;
            self.written.push(done);
        }
        let mut written = std::mem::take(&mut self.written).into_iter();
        let Some(mut commit) = written.next() else {
            return Ok(None); // an existing table that got no rows keeps its version
        };
        let fragments = match &mut commit.operation {
            Operation::Overwrite { fragments, .. } | Operation::Append { fragments } => fragments,
            other => {
                return Err(Error::invalid_argument(format!(
                    "writing table '{}': unexpected Lance operation {other}",
                    self.role
                )))
            }
        };
        for later in written {
            match later.operation {
                Operation::Overwrite { fragments: f, .. } | Operation::Append { fragments: f } => {
                    fragments.extend(f)
                }
                other => {
                    return Err(Error::invalid_argument(format!(
                        "writing table '{}': unexpected Lance operation {other}",
                        self.role
                    )))
                }
            }
        }
        let uri = self.uri();
        let commit_builder = CommitBuilder::new(uri.as_str())
            .enable_v2_manifest_paths(true)
            .with_storage_format(Default::default());
        let committed = block_on(commit_builder.execute(commit)).map_err(|e| self.failed(e))?;
        Ok(Some(committed.manifest().version))
    }
}

impl Drop for TableSink {
    fn drop(&mut self) {
        // Abandoned: the open fragment's writer gets an error instead of its end, so Lance
        // stops; nothing is committed. Threads are joined so no write outlives the sink.
        if let Some(open) = self.open.take() {
            let _ = open
                .rows
                .send(Err(ArrowError::ExternalError("write abandoned".into())));
            drop(open.rows);
            let _ = open.writer.join();
        }
        for writer in self.finishing.drain(..) {
            let _ = writer.join();
        }
    }
}
