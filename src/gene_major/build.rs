//! Writing the gene-major table and the axis statistics from the cell-major expression table,
//! in bounded memory.
//!
//! The rows are sorted by gene with an external bucket sort. A first pass counts each gene's
//! rows (the `gene_integer_id` column only) and cuts the genes into contiguous ranges of at
//! most [`BUCKET_ROWS`] rows. A second pass reads every row once, adds it to the statistics and
//! appends it to its range's scratch file (Arrow IPC, in a `.slaf-scratch-PID-…` folder beside
//! the dataset, removed by the next writer if this one is killed). The rows arrive in cell
//! order, so a stable counting sort by gene of one range at a time gives gene-then-cell order;
//! the ranges are written one after another. A dataset whose rows fit one range is sorted in
//! memory without scratch files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::compute::{cast, take_record_batch};
use arrow_array::{
    downcast_primitive_array, Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch,
    UInt32Array,
};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use lance::dataset::builder::DatasetBuilder;
use lance::Dataset as LanceTable;

use super::stats::AxisStats;
use super::{Marker, TABLE};
use crate::columns::extend_ids;
use crate::error::{Error, Result};
use crate::progress::{Progress, Tally};
use crate::runtime::block_on;
use crate::writer::{put_columns, TableSink};

/// Rows sorted in memory at a time (about 12 bytes each with their sort permutation).
const BUCKET_ROWS: u64 = 32 << 20;
/// Rows handed to the table writer at a time.
const WRITE_ROWS: usize = 1 << 20;

const CELL: &str = "cell_integer_id";
const GENE: &str = "gene_integer_id";
const VALUE: &str = "value";

/// The dataset whose companion is built: a local folder, the tables it holds and the versions
/// to read.
pub(crate) struct Tables<'a> {
    pub root: &'a Path,
    /// Where the dataset is shown in messages.
    pub shown: &'a str,
    /// Role → path relative to `root` (config.json's `tables`).
    pub paths: &'a BTreeMap<String, String>,
    /// Role → the Lance version to read and build on.
    pub versions: &'a BTreeMap<String, u64>,
    pub n_cells: usize,
    pub n_genes: usize,
    /// Rows per fragment of the companion table.
    pub rows_per_fragment: usize,
    /// Told of rows read and rows written (each row counts twice).
    pub progress: Option<&'a Progress>,
}

/// What a build committed: new versions of the companion, cells and genes tables, and the
/// marker for config.json. Nothing is visible to readers until config.json names them.
pub(crate) struct Built {
    pub versions: Vec<(&'static str, u64)>,
    pub marker: Marker,
}

impl Tables<'_> {
    fn uri(&self, role: &str) -> PathBuf {
        let default = format!("{role}.lance");
        let relative = self.paths.get(role).unwrap_or(&default);
        self.root.join(relative.trim_start_matches("./"))
    }

    fn open(&self, role: &str) -> Result<LanceTable> {
        let mut builder = DatasetBuilder::from_uri(self.uri(role).to_string_lossy());
        if let Some(&version) = self.versions.get(role) {
            builder = builder.with_version(version);
        }
        block_on(builder.load())
            .map_err(|e| Error::storage(format!("opening table '{role}' of {}", self.shown), e))
    }

    fn failed(&self, what: &str) -> impl Fn(lance::Error) -> Error + '_ {
        let context = format!("{what} of {}", self.shown);
        move |e| Error::storage(context.clone(), e)
    }
}

/// Builds the gene-major table and the axis statistics of the dataset `tables` describes.
pub(crate) fn build(tables: &Tables<'_>) -> Result<Built> {
    build_in_buckets(tables, BUCKET_ROWS)
}

/// [`build`], sorting at most `bucket_rows` rows in memory at a time.
fn build_in_buckets(tables: &Tables<'_>, bucket_rows: u64) -> Result<Built> {
    let expression = tables.open("expression")?;
    let expression_version = expression.manifest().version;
    let counts = gene_counts(&expression, tables)?;
    let expression_rows = counts.iter().sum();
    let ranges = gene_ranges(&counts, bucket_rows);
    let scratch_parent = tables.root.parent().unwrap_or(Path::new("."));
    let schema = companion_schema(&expression, tables.shown)?;
    let mut buckets = Buckets::new(schema, &ranges, tables.n_genes, scratch_parent)?;
    let mut tally = Tally::new(tables.progress, 2 * expression_rows);
    let stats = spill_rows(&expression, tables, &mut buckets, &mut tally)?;

    let mut sink = TableSink::replacing(TABLE, &tables.uri(TABLE));
    let mut in_fragment = 0usize;
    for bucket in 0..ranges.len() {
        let sorted = buckets.sorted(bucket)?;
        let mut at = 0;
        while at < sorted.num_rows() {
            let n = WRITE_ROWS
                .min(sorted.num_rows() - at)
                .min(tables.rows_per_fragment - in_fragment);
            sink.write(sorted.slice(at, n))?;
            tally.add(n as u64);
            at += n;
            in_fragment += n;
            if in_fragment == tables.rows_per_fragment {
                sink.end_fragment()?;
                in_fragment = 0;
            }
        }
    }
    let schema = buckets.schema.clone();
    let by_gene_version = sink
        .finish(|| RecordBatch::new_empty(schema))?
        .expect("a replacing sink always commits");
    drop(buckets);

    let mut start_index = Vec::with_capacity(counts.len());
    let mut total = 0u64;
    for &c in &counts {
        start_index.push(total);
        total += c;
    }
    // An axis without entries (a dataset without cells) has no statistics to store.
    let annotate = |role: &str, id: &str, batch: RecordBatch| -> Result<u64> {
        let mut table = tables.open(role)?;
        if batch.num_rows() == 0 {
            return Ok(table.manifest().version);
        }
        put_columns(&mut table, id, &batch, tables.shown)
    };
    let cells_version = annotate("cells", CELL, stats.cell_batch()?)?;
    let genes_version = annotate("genes", GENE, stats.gene_batch(&start_index)?)?;
    Ok(Built {
        versions: vec![
            (TABLE, by_gene_version),
            ("cells", cells_version),
            ("genes", genes_version),
        ],
        marker: Marker {
            expression_version,
            expression_rows,
        },
    })
}

/// Rows per gene, from the `gene_integer_id` column alone.
fn gene_counts(expression: &LanceTable, tables: &Tables<'_>) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; tables.n_genes];
    let mut ids = Vec::new();
    block_on(async {
        let mut scan = expression.scan();
        scan.project(&[GENE])?;
        let mut stream = scan.try_into_stream().await?;
        while let Some(batch) = stream.try_next().await? {
            ids.clear();
            extend_ids(&mut ids, batch.column(0), "expression.gene_integer_id")
                .map_err(|e| lance::Error::invalid_input(e.to_string()))?;
            for &g in &ids {
                match counts.get_mut(g as usize) {
                    Some(c) => *c += 1,
                    None => {
                        return Err(lance::Error::invalid_input(format!(
                            "expression has gene_integer_id {g}, but the dataset has {} genes",
                            tables.n_genes
                        )))
                    }
                }
            }
        }
        Ok(())
    })
    .map_err(tables.failed("counting rows per gene"))?;
    Ok(counts)
}

/// Contiguous gene ranges of at most `limit` rows each (a gene with more is a range alone).
fn gene_ranges(counts: &[u64], limit: u64) -> Vec<std::ops::Range<u32>> {
    let mut ranges = Vec::new();
    let (mut start, mut rows) = (0u32, 0u64);
    for (g, &c) in counts.iter().enumerate() {
        if rows > 0 && rows + c > limit {
            ranges.push(start..g as u32);
            start = g as u32;
            rows = 0;
        }
        rows += c;
    }
    ranges.push(start..counts.len() as u32);
    ranges
}

/// The second pass: every row into the statistics and its bucket, checking the ids and that
/// the rows are in cell order (which the in-bucket sort relies on).
fn spill_rows(
    expression: &LanceTable,
    tables: &Tables<'_>,
    buckets: &mut Buckets,
    tally: &mut Tally<'_>,
) -> Result<AxisStats> {
    let mut stats = AxisStats::new(tables.n_cells, tables.n_genes);
    let (mut cells, mut genes) = (Vec::new(), Vec::new());
    let mut previous_cell = 0u32;
    let result: Result<()> = block_on(async {
        let mut scan = expression.scan();
        scan.project(&[GENE, CELL, VALUE])
            .map_err(tables.failed("reading expression"))?;
        let mut stream = scan
            .try_into_stream()
            .await
            .map_err(tables.failed("reading expression"))?;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(tables.failed("reading expression"))?
        {
            cells.clear();
            genes.clear();
            extend_ids(&mut cells, batch.column(1), "expression.cell_integer_id")?;
            extend_ids(&mut genes, batch.column(0), "expression.gene_integer_id")?;
            for &c in &cells {
                if c < previous_cell || c as usize >= tables.n_cells {
                    return Err(Error::invalid_schema(format!(
                        "table 'expression' of {} is not sorted by cell_integer_id within \
                         0..{} (cell {c} after {previous_cell})",
                        tables.shown, tables.n_cells
                    )));
                }
                previous_cell = c;
            }
            let values = cast(batch.column(2), &DataType::Float64)
                .map_err(|e| Error::storage("reading expression values", e))?;
            let values = values
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .expect("cast to Float64");
            if values.null_count() > 0 {
                return Err(Error::invalid_schema(format!(
                    "table 'expression' of {} has null values",
                    tables.shown
                )));
            }
            stats.add(&cells, &genes, values.values());
            buckets.push(&batch, &genes)?;
            tally.add(batch.num_rows() as u64);
        }
        Ok(())
    });
    result?;
    Ok(stats)
}

/// Where each gene range's rows wait to be sorted: in memory when there is one range, else a
/// scratch file per range.
struct Buckets {
    /// The companion's schema: `gene_integer_id, cell_integer_id, value` as stored.
    schema: SchemaRef,
    /// `bucket_of[g]`: the range holding gene `g`.
    bucket_of: Vec<u32>,
    ranges: Vec<std::ops::Range<u32>>,
    memory: Vec<RecordBatch>,
    files: Vec<StreamWriter<BufWriter<File>>>,
    scratch: Option<tempfile::TempDir>,
}

impl Buckets {
    fn new(
        schema: SchemaRef,
        ranges: &[std::ops::Range<u32>],
        n_genes: usize,
        scratch_parent: &Path,
    ) -> Result<Self> {
        let mut bucket_of = vec![0u32; n_genes];
        for (b, range) in ranges.iter().enumerate() {
            for g in range.clone() {
                bucket_of[g as usize] = b as u32;
            }
        }
        let scratch = if ranges.len() > 1 {
            let dir = tempfile::Builder::new()
                .prefix(&format!(".slaf-scratch-{}-", std::process::id()))
                .tempdir_in(scratch_parent)
                .map_err(|e| {
                    Error::storage(
                        format!("creating a scratch folder in {}", scratch_parent.display()),
                        e,
                    )
                })?;
            Some(dir)
        } else {
            None
        };
        let mut buckets = Self {
            schema,
            bucket_of,
            ranges: ranges.to_vec(),
            memory: Vec::new(),
            files: Vec::new(),
            scratch,
        };
        if buckets.scratch.is_some() {
            for b in 0..ranges.len() {
                let path = buckets.file(b);
                let file = File::create(&path).map_err(|e| scratch_failed(&path, e))?;
                let writer = StreamWriter::try_new(BufWriter::new(file), &buckets.schema)
                    .map_err(|e| scratch_failed(&path, e))?;
                buckets.files.push(writer);
            }
        }
        Ok(buckets)
    }

    fn file(&self, bucket: usize) -> PathBuf {
        let dir = self
            .scratch
            .as_ref()
            .expect("scratch files only with several buckets");
        dir.path().join(format!("genes-{bucket}.arrow"))
    }

    /// Appends the rows of `batch` (projected `gene, cell, value`; `genes` its gene ids) to
    /// their buckets, in their order.
    fn push(&mut self, batch: &RecordBatch, genes: &[u32]) -> Result<()> {
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| Error::storage("reading expression", e))?;
        if self.scratch.is_none() {
            self.memory.push(batch);
            return Ok(());
        }
        // A stable counting sort of the rows by bucket, then one slice per bucket.
        let n_buckets = self.ranges.len();
        let mut starts = vec![0u32; n_buckets + 1];
        for &g in genes {
            starts[self.bucket_of[g as usize] as usize + 1] += 1;
        }
        for b in 0..n_buckets {
            starts[b + 1] += starts[b];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; genes.len()];
        for (row, &g) in genes.iter().enumerate() {
            let b = self.bucket_of[g as usize] as usize;
            order[next[b] as usize] = row as u32;
            next[b] += 1;
        }
        let grouped = take_record_batch(&batch, &UInt32Array::from(order))
            .map_err(|e| Error::storage("grouping expression rows by gene", e))?;
        for b in 0..n_buckets {
            let (lo, hi) = (starts[b] as usize, starts[b + 1] as usize);
            if hi > lo {
                let path = self.file(b);
                self.files[b]
                    .write(&grouped.slice(lo, hi - lo))
                    .map_err(|e| scratch_failed(&path, e))?;
            }
        }
        Ok(())
    }

    /// Bucket `bucket`'s rows sorted by gene, then cell.
    fn sorted(&mut self, bucket: usize) -> Result<RecordBatch> {
        let batches = if self.scratch.is_none() {
            std::mem::take(&mut self.memory)
        } else {
            let path = self.file(bucket);
            self.files[bucket]
                .finish()
                .map_err(|e| scratch_failed(&path, e))?;
            let file = File::open(&path).map_err(|e| scratch_failed(&path, e))?;
            let reader = StreamReader::try_new(BufReader::new(file), None)
                .map_err(|e| scratch_failed(&path, e))?;
            let batches = reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| scratch_failed(&path, e))?;
            let _ = std::fs::remove_file(&path);
            batches
        };
        let all = arrow::compute::concat_batches(&self.schema, &batches)
            .map_err(|e| Error::storage("sorting expression rows by gene", e))?;
        drop(batches);
        let mut genes = Vec::with_capacity(all.num_rows());
        extend_ids(&mut genes, all.column(0), "expression.gene_integer_id")?;
        let range = &self.ranges[bucket];
        let (first, width) = (range.start as usize, (range.end - range.start) as usize);
        let mut starts = vec![0u32; width + 1];
        for &g in &genes {
            starts[g as usize - first + 1] += 1;
        }
        for i in 0..width {
            starts[i + 1] += starts[i];
        }
        // Each row's place in gene order. Rows are then scattered to their places: the rows of
        // one gene are written one after another, so the writes stay in a few thousand cache
        // lines, where gathering them in gene order would read all over the bucket.
        let mut place = vec![0u32; genes.len()];
        for (row, &g) in genes.iter().enumerate() {
            let slot = &mut starts[g as usize - first];
            place[row] = *slot;
            *slot += 1;
        }
        drop(genes);
        let columns = all
            .columns()
            .iter()
            .map(|column| scatter(column.as_ref(), &place))
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::storage("sorting expression rows by gene", e))
    }
}

/// `array` with row `i` moved to `place[i]` (a permutation); id and value columns are
/// primitive and hold no nulls.
fn scatter(array: &dyn Array, place: &[u32]) -> Result<ArrayRef> {
    fn typed<T: ArrowPrimitiveType>(array: &PrimitiveArray<T>, place: &[u32]) -> ArrayRef {
        let mut out = vec![T::Native::default(); array.len()];
        for (&value, &to) in array.values().iter().zip(place) {
            out[to as usize] = value;
        }
        Arc::new(
            PrimitiveArray::<T>::new(out.into(), None).with_data_type(array.data_type().clone()),
        )
    }
    if array.null_count() > 0 {
        return Err(Error::invalid_schema(
            "the expression table has nulls in its id or value columns",
        ));
    }
    downcast_primitive_array!(
        array => Ok(typed(array, place)),
        other => Err(Error::invalid_schema(format!(
            "the expression table's id and value columns must be numbers, not {other}"
        )))
    )
}

/// The companion's schema: the expression table's `gene, cell, value` columns, same types.
fn companion_schema(expression: &LanceTable, shown: &str) -> Result<SchemaRef> {
    let stored = Schema::from(expression.schema());
    let fields = [GENE, CELL, VALUE]
        .iter()
        .map(|name| {
            let field = stored.field_with_name(name).map_err(|_| {
                Error::invalid_schema(format!("table 'expression' of {shown} has no {name}"))
            })?;
            Ok(Field::new(
                *name,
                field.data_type().clone(),
                field.is_nullable(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

fn scratch_failed(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::storage(format!("writing scratch file {}", path.display()), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::writer::{CsrChunk, NewDataset, ValueType, Writer};
    use arrow_array::{Float32Array, Int32Array, Int64Array, StringArray};

    fn names(column: &str, n: usize) -> RecordBatch {
        let values: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
        RecordBatch::try_from_iter(vec![(
            column,
            Arc::new(StringArray::from(values)) as arrow_array::ArrayRef,
        )])
        .unwrap()
    }

    /// The companion's rows at `version`, as (gene, cell, value).
    fn rows(path: &Path, version: u64) -> Vec<(u32, u32, f32)> {
        let table = block_on(
            DatasetBuilder::from_uri(path.to_string_lossy())
                .with_version(version)
                .load(),
        )
        .unwrap();
        let batch = block_on(table.scan().try_into_batch()).unwrap();
        let (mut genes, mut cells) = (Vec::new(), Vec::new());
        extend_ids(&mut genes, batch.column(0), "gene").unwrap();
        extend_ids(&mut cells, batch.column(1), "cell").unwrap();
        let values = cast(batch.column(2), &DataType::Float32).unwrap();
        let values = values
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .values()
            .to_vec();
        (0..genes.len())
            .map(|i| (genes[i], cells[i], values[i]))
            .collect()
    }

    #[test]
    fn sorting_through_scratch_files_equals_sorting_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.slaf");
        let (n_cells, n_genes) = (60usize, 12usize);
        // Cell c expresses genes (c + k·5) mod 12 for k < c mod 4, with value c + k.
        let (mut indptr, mut genes, mut values) = (vec![0i64], Vec::new(), Vec::new());
        for c in 0..n_cells {
            let mut row: Vec<(i32, f32)> = (0..c % 4)
                .map(|k| (((c + k * 5) % n_genes) as i32, (c + k) as f32))
                .collect();
            row.sort_by_key(|r| r.0);
            for (g, v) in row {
                genes.push(g);
                values.push(v);
            }
            indptr.push(genes.len() as i64);
        }
        let mut writer = Writer::create(
            &path.to_string_lossy(),
            NewDataset {
                n_cells: n_cells as u64,
                n_genes,
                value_type: ValueType::Float32,
                layers: vec![],
                overwrite: false,
                rows_per_fragment: Some(13),
                storage_options: Default::default(),
            },
        )
        .unwrap();
        writer.set_gene_index(false);
        writer.write_genes(&names("gene_id", n_genes)).unwrap();
        writer.begin_source("x", n_cells as u64);
        let chunk = CsrChunk::new(
            Arc::new(Int64Array::from(indptr)),
            Arc::new(Int32Array::from(genes)),
            Arc::new(Float32Array::from(values)),
        )
        .unwrap();
        writer
            .write_cells(&chunk, &names("cell_id", n_cells), &[])
            .unwrap();
        writer.finish().unwrap();

        let config = crate::Dataset::open(&path.to_string_lossy())
            .unwrap()
            .config()
            .clone();
        let mut versions: BTreeMap<String, u64> = config
            .tables
            .keys()
            .filter_map(|role| Some((role.clone(), config.table_version(role)?)))
            .collect();
        let mut build_with = |bucket_rows: u64| {
            let tables = Tables {
                root: &path,
                shown: "ds.slaf",
                paths: &config.tables,
                versions: &versions,
                n_cells,
                n_genes,
                rows_per_fragment: 7,
                progress: None,
            };
            let built = build_in_buckets(&tables, bucket_rows).unwrap();
            for (role, version) in &built.versions {
                versions.insert(role.to_string(), *version);
            }
            built.versions[0].1
        };
        let in_memory = build_with(u64::MAX);
        let in_files = build_with(5);
        let companion = path.join("expression_by_gene.lance");
        let expected = rows(&companion, in_memory);
        assert_eq!(rows(&companion, in_files), expected);
        assert!(expected
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        assert_eq!(expected.len(), (0..n_cells).map(|c| c % 4).sum::<usize>());
        // No scratch folder is left beside the dataset.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("ds.slaf")]);
    }

    #[test]
    fn ranges_respect_the_limit_and_cover_every_gene() {
        assert_eq!(
            gene_ranges(&[3, 3, 3, 10, 1], 6),
            vec![0..2, 2..3, 3..4, 4..5]
        );
        assert_eq!(gene_ranges(&[1, 1], 6), vec![0..2]);
        assert_eq!(gene_ranges(&[], 6), vec![0..0]);
    }
}
