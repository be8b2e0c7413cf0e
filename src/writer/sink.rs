//! A Lance table being written: batches are appended as they come (each write one fragment),
//! on a background thread so that encoding overlaps with the caller reading its next chunk.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use arrow_array::{RecordBatch, RecordBatchIterator};
use arrow_schema::SchemaRef;
use lance::dataset::{WriteMode, WriteParams};

use crate::error::{Error, Result};
use crate::runtime::block_on;

/// Rows in one expression/layers fragment by default.
pub const DEFAULT_ROWS_PER_FRAGMENT: usize = 4 * 1024 * 1024;

pub(crate) struct TableSink {
    role: &'static str,
    path: PathBuf,
    schema: Option<SchemaRef>,
    exists: bool,
    pending: Option<JoinHandle<Result<()>>>,
}

impl TableSink {
    /// A table at `path`; `existing` is its schema when appending to a table already there.
    pub fn new(role: &'static str, path: &Path, existing: Option<SchemaRef>) -> Self {
        Self {
            role,
            path: path.to_path_buf(),
            exists: existing.is_some(),
            schema: existing,
            pending: None,
        }
    }

    /// The table's schema once known (from the first write or the existing table).
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// Whether anything was or will be written.
    pub fn exists(&self) -> bool {
        self.exists
    }

    fn wait(&mut self) -> Result<()> {
        if let Some(handle) = self.pending.take() {
            handle.join().map_err(|_| {
                Error::invalid_argument(format!("writing table '{}' panicked", self.role))
            })??;
        }
        Ok(())
    }

    /// Appends `batch` as one fragment (the first write creates the table).
    pub fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.wait()?;
        if self.schema.is_none() {
            self.schema = Some(batch.schema());
        }
        let mode = if self.exists {
            WriteMode::Append
        } else {
            WriteMode::Create
        };
        self.exists = true;
        let uri = self.path.to_string_lossy().into_owned();
        let role = self.role;
        self.pending = Some(std::thread::spawn(move || {
            let schema = batch.schema();
            let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
            let params = WriteParams {
                mode,
                max_rows_per_file: usize::MAX / 2,
                // 2.2 is the default; stated so that appends keep it too.
                data_storage_version: Some(Default::default()),
                enable_v2_manifest_paths: true,
                ..Default::default()
            };
            block_on(lance::Dataset::write(reader, uri.as_str(), Some(params)))
                .map_err(|e| Error::storage(format!("writing table '{role}' at {uri}"), e))?;
            Ok(())
        }));
        Ok(())
    }

    /// Waits for outstanding writes; creates the table empty if nothing was written.
    pub fn finish(&mut self, empty: impl FnOnce() -> RecordBatch) -> Result<()> {
        self.wait()?;
        if !self.exists {
            self.write(empty())?;
            self.wait()?;
        }
        Ok(())
    }
}

impl Drop for TableSink {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}
