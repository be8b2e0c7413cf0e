//! `expression.lance`: CSR chunks of cells turned into COO rows (sorted by cell, genes ascending
//! within a cell, zeros left out), buffered into large fragments, with the value statistics
//! that `config.json` records computed over every value.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::buffer::Buffer;
use arrow::datatypes::ArrowNativeType;
use arrow_array::{
    ArrayRef, Float32Array, Int32Array, Int64Array, RecordBatch, UInt16Array, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::chunk::{is_clean, row_entries, with_slices, CsrChunk, GeneIndex, Number};
use crate::error::{Error, Result};

/// The stored type of expression values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Every value is an integer in `0..=65535`.
    UInt16,
    /// Anything else.
    Float32,
}

impl ValueType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::UInt16 => DataType::UInt16,
            Self::Float32 => DataType::Float32,
        }
    }

    /// Parses `"uint16"` / `"float32"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "uint16" => Ok(Self::UInt16),
            "float32" => Ok(Self::Float32),
            other => Err(Error::invalid_argument(format!(
                "unknown value type {other:?} (expected uint16 or float32)"
            ))),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::UInt16 => "uint16",
            Self::Float32 => "float32",
        }
    }
}

/// Running statistics over every stored value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub count: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Stats {
    /// Adds one value; NaN and ±inf (stored only when the user allows them) are left out, so
    /// the recorded statistics stay numbers.
    pub(crate) fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.count += 1;
        self.sum += v;
        self.sum_sq += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds stored uint16 values (sums exact per block of 2^16 values).
    pub(crate) fn add_u16(&mut self, values: &[u16]) {
        for block in values.chunks(1 << 16) {
            let (mut sum, mut sum_sq) = (0u64, 0u64);
            let (mut lo, mut hi) = (u16::MAX, 0u16);
            for &v in block {
                let w = v as u64;
                sum += w;
                sum_sq += w * w;
                lo = lo.min(v);
                hi = hi.max(v);
            }
            self.count += block.len() as u64;
            self.sum += sum as f64;
            self.sum_sq += sum_sq as f64;
            self.min = self.min.min(lo as f64);
            self.max = self.max.max(hi as f64);
        }
    }

    /// Adds stored float32 values (eight running sums, so the loop vectorizes).
    pub(crate) fn add_f32(&mut self, values: &[f32]) {
        const LANES: usize = 8;
        let mut sum = [0f64; LANES];
        let mut sum_sq = [0f64; LANES];
        let mut lo = [f64::INFINITY; LANES];
        let mut hi = [f64::NEG_INFINITY; LANES];
        let mut blocks = values.chunks_exact(LANES);
        for block in &mut blocks {
            for k in 0..LANES {
                let v = block[k] as f64;
                sum[k] += v;
                sum_sq[k] += v * v;
                lo[k] = lo[k].min(v);
                hi[k] = hi[k].max(v);
            }
        }
        let (block_sum, block_sum_sq) = (sum.iter().sum::<f64>(), sum_sq.iter().sum::<f64>());
        if !(block_sum.is_finite() && block_sum_sq.is_finite()) {
            // NaN or ±inf among the values (rare, allowed on request): one value at a time.
            values.iter().for_each(|&v| self.add(v as f64));
            return;
        }
        self.count += (values.len() - blocks.remainder().len()) as u64;
        self.sum += block_sum;
        self.sum_sq += block_sum_sq;
        self.min = lo.iter().fold(self.min, |a, &b| a.min(b));
        self.max = hi.iter().fold(self.max, |a, &b| a.max(b));
        for &v in blocks.remainder() {
            self.add(v as f64);
        }
    }

    /// Mean and sample standard deviation (what slafdb records).
    pub fn mean_std(&self) -> (f64, f64) {
        if self.count == 0 {
            return (0.0, 0.0);
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let var = if self.count > 1 {
            (self.sum_sq - n * mean * mean) / (n - 1.0)
        } else {
            0.0
        };
        (mean, if var > 0.0 { var.sqrt() } else { 0.0 })
    }

    /// Rebuilds the sums from what a config recorded (count, mean, sample std, min, max).
    pub fn from_recorded(count: u64, mean: f64, std: f64, min: f64, max: f64) -> Self {
        let n = count as f64;
        Self {
            count,
            sum: mean * n,
            sum_sq: std * std * (n - 1.0).max(0.0) + n * mean * mean,
            min,
            max,
        }
    }
}

/// Integer types of the id columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdTypes {
    pub cell: DataType,
    pub gene: DataType,
}

impl IdTypes {
    /// The narrowest types slafdb uses that hold `n_cells` and `n_genes` ids.
    pub fn for_shape(n_cells: u64, n_genes: usize) -> Self {
        Self {
            cell: if n_cells <= u32::MAX as u64 + 1 {
                DataType::UInt32
            } else {
                DataType::Int64
            },
            gene: if n_genes <= u16::MAX as usize + 1 {
                DataType::UInt16
            } else {
                DataType::Int32
            },
        }
    }
}

/// An id column of `data_type` (one of uint16, uint32, int32, int64).
pub(crate) fn id_array(ids: &[u64], data_type: &DataType, what: &str) -> Result<ArrayRef> {
    let too_large = || Error::invalid_argument(format!("{what}: an id does not fit {data_type}"));
    Ok(match data_type {
        DataType::UInt16 => Arc::new(UInt16Array::from_iter_values(
            ids.iter()
                .map(|&i| u16::try_from(i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| too_large())?,
        )),
        DataType::UInt32 => Arc::new(UInt32Array::from_iter_values(
            ids.iter()
                .map(|&i| u32::try_from(i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| too_large())?,
        )),
        DataType::Int32 => Arc::new(Int32Array::from_iter_values(
            ids.iter()
                .map(|&i| i32::try_from(i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| too_large())?,
        )),
        DataType::Int64 => Arc::new(Int64Array::from_iter_values(
            ids.iter()
                .map(|&i| i64::try_from(i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| too_large())?,
        )),
        other => {
            return Err(Error::invalid_schema(format!(
                "{what} has type {other}; the writer appends to uint16/uint32/int32/int64 ids only"
            )))
        }
    })
}

/// An id column being filled, in its stored type (no wider copy is kept).
enum IdColumn {
    U16(Vec<u16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl IdColumn {
    fn new(data_type: &DataType, what: &str) -> Result<Self> {
        Ok(match data_type {
            DataType::UInt16 => Self::U16(Vec::new()),
            DataType::UInt32 => Self::U32(Vec::new()),
            DataType::Int32 => Self::I32(Vec::new()),
            DataType::Int64 => Self::I64(Vec::new()),
            other => {
                return Err(Error::invalid_schema(format!(
                    "{what} has type {other}; the writer writes uint16/uint32/int32/int64 ids only"
                )))
            }
        })
    }

    /// The largest id the type holds.
    fn max(&self) -> u64 {
        match self {
            Self::U16(_) => u16::MAX as u64,
            Self::U32(_) => u32::MAX as u64,
            Self::I32(_) => i32::MAX as u64,
            Self::I64(_) => i64::MAX as u64,
        }
    }

    /// Appends `n` copies of `id` (checked against [`IdColumn::max`] by the caller).
    fn push_n(&mut self, id: u64, n: usize) {
        match self {
            Self::U16(v) => v.extend(std::iter::repeat_n(id as u16, n)),
            Self::U32(v) => v.extend(std::iter::repeat_n(id as u32, n)),
            Self::I32(v) => v.extend(std::iter::repeat_n(id as i32, n)),
            Self::I64(v) => v.extend(std::iter::repeat_n(id as i64, n)),
        }
    }

    /// Appends ids already checked to fit (gene ids below the gene count).
    fn extend(&mut self, ids: impl Iterator<Item = u64>) {
        match self {
            Self::U16(v) => v.extend(ids.map(|i| i as u16)),
            Self::U32(v) => v.extend(ids.map(|i| i as u32)),
            Self::I32(v) => v.extend(ids.map(|i| i as i32)),
            Self::I64(v) => v.extend(ids.map(|i| i as i64)),
        }
    }

    /// Makes room for `n` more ids, in memory taken back from `spent` when there is some.
    fn reserve(&mut self, n: usize, spent: &mut Spent) {
        match self {
            Self::U16(v) => spent.refill(v, n),
            Self::U32(v) => spent.refill(v, n),
            Self::I32(v) => spent.refill(v, n),
            Self::I64(v) => spent.refill(v, n),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::U16(v) => v.len(),
            Self::U32(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::I64(v) => v.len(),
        }
    }

    /// The filled column as an Arrow array (the buffer is handed over, not copied).
    fn take(&mut self) -> ArrayRef {
        match self {
            Self::U16(v) => Arc::new(UInt16Array::from(std::mem::take(v))),
            Self::U32(v) => Arc::new(UInt32Array::from(std::mem::take(v))),
            Self::I32(v) => Arc::new(Int32Array::from(std::mem::take(v))),
            Self::I64(v) => Arc::new(Int64Array::from(std::mem::take(v))),
        }
    }
}

/// The memory of columns handed to the table writer (which copies them), taken back for the
/// next batch once the writer has let go of it: batches then reuse a few allocations instead of
/// each touching fresh memory (page faults cost as much as filling the rows).
#[derive(Default)]
struct Spent(VecDeque<Buffer>);

impl Spent {
    /// Columns kept at most; older ones are left to the writer to free.
    const KEPT: usize = 3;

    fn keep(&mut self, column: &ArrayRef) {
        if let Some(buffer) = column.to_data().buffers().first() {
            self.0.push_back(buffer.clone());
            if self.0.len() > Self::KEPT {
                self.0.pop_front();
            }
        }
    }

    /// Makes room for `n` more values in `v`, refilling an unallocated `v` with the oldest
    /// spent column when nothing else holds it any more.
    fn refill<T: ArrowNativeType>(&mut self, v: &mut Vec<T>, n: usize) {
        if v.capacity() == 0 {
            if let Some(buffer) = self.0.pop_front() {
                match buffer.into_vec::<T>() {
                    Ok(mut reused) => {
                        reused.clear();
                        *v = reused;
                    }
                    Err(buffer) => self.0.push_front(buffer),
                }
            }
        }
        v.reserve_exact(n);
    }
}

/// Stored values being filled, in their stored type.
enum ValueColumn {
    U16(Vec<u16>),
    F32(Vec<f32>),
}

/// COO rows waiting to be written as one fragment, held in their stored types.
pub(crate) struct ExpressionBuffer {
    ids: IdTypes,
    value_type: ValueType,
    cells: IdColumn,
    genes: IdColumn,
    values: ValueColumn,
    pub stats: Stats,
    /// Scratch space for rows that need sorting, merging or zeros removed.
    row: Vec<(u32, f64)>,
    row_values: Vec<f64>,
    /// Memory of the cells, genes and values columns of batches already handed over.
    spent: [Spent; 3],
}

/// Lance field metadata for columns whose values rarely repeat in long runs (gene ids, values):
/// Lance then considers run-length encoding only when there are fewer runs than a fifth of the
/// values (runs of 5+ on average; shorter runs rarely beat bit-packing small integers), and
/// skips estimating it otherwise. Measured with Lance 14 on count data (42 runs per 100 values):
/// the same files, written 2–3× faster than with the default estimate.
fn rarely_runs(field: Field) -> Field {
    field.with_metadata(
        [(
            "lance-encoding:rle-threshold".to_string(),
            "0.2".to_string(),
        )]
        .into_iter()
        .collect(),
    )
}

impl ExpressionBuffer {
    pub fn new(ids: IdTypes, value_type: ValueType, stats: Stats) -> Result<Self> {
        Ok(Self {
            cells: IdColumn::new(&ids.cell, "expression.cell_integer_id")?,
            genes: IdColumn::new(&ids.gene, "expression.gene_integer_id")?,
            values: match value_type {
                ValueType::UInt16 => ValueColumn::U16(Vec::new()),
                ValueType::Float32 => ValueColumn::F32(Vec::new()),
            },
            ids,
            value_type,
            stats,
            row: Vec::new(),
            row_values: Vec::new(),
            spent: Default::default(),
        })
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("cell_integer_id", self.ids.cell.clone(), true),
            rarely_runs(Field::new("gene_integer_id", self.ids.gene.clone(), true)),
            rarely_runs(Field::new("value", self.value_type.data_type(), true)),
        ]))
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Makes room for `rows` more rows (so that filling a fragment never reallocates).
    pub fn reserve(&mut self, rows: usize) {
        self.cells.reserve(rows, &mut self.spent[0]);
        self.genes.reserve(rows, &mut self.spent[1]);
        match &mut self.values {
            ValueColumn::U16(v) => self.spent[2].refill(v, rows),
            ValueColumn::F32(v) => self.spent[2].refill(v, rows),
        }
    }

    /// Adds rows `rows` of `chunk` (chunk row 0 is cell `first_cell`; gene indices must be
    /// below `n_genes`); returns how many entries each of those cells got.
    pub fn add(
        &mut self,
        chunk: &CsrChunk,
        rows: std::ops::Range<usize>,
        first_cell: u64,
        n_genes: u64,
    ) -> Result<Vec<u64>> {
        let last = first_cell + rows.end as u64;
        if last > 0 && last - 1 > self.cells.max() {
            return Err(Error::invalid_argument(format!(
                "cell id {} does not fit the dataset's cell id type {}",
                last - 1,
                self.ids.cell
            )));
        }
        let mut counts = Vec::with_capacity(rows.len());
        with_slices!(chunk, |indices, values| self.add_rows(
            &chunk.indptr,
            indices,
            values,
            rows,
            first_cell,
            n_genes,
            &mut counts
        ))?;
        Ok(counts)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_rows<I: GeneIndex, V: Number>(
        &mut self,
        indptr: &[i64],
        indices: &[I],
        values: &[V],
        rows: std::ops::Range<usize>,
        first_cell: u64,
        n_genes: u64,
        counts: &mut Vec<u64>,
    ) -> Result<()> {
        let base = indptr[0];
        for i in rows {
            let span = (indptr[i] - base) as usize..(indptr[i + 1] - base) as usize;
            let (genes, vals) = (&indices[span.clone()], &values[span]);
            let n = if is_clean(genes, vals, n_genes) {
                // The common case: copied as it is, converted on the way.
                self.genes.extend(genes.iter().map(|&g| g.wrapping_u64()));
                self.push_values(vals)?;
                genes.len()
            } else {
                let mut row = std::mem::take(&mut self.row);
                let mut row_values = std::mem::take(&mut self.row_values);
                let done = row_entries(genes, vals, n_genes, &mut row).and_then(|()| {
                    row_values.clear();
                    row_values.extend(row.iter().map(|&(_, v)| v));
                    self.genes.extend(row.iter().map(|&(g, _)| g as u64));
                    self.push_values(&row_values)
                });
                let n = row.len();
                self.row = row;
                self.row_values = row_values;
                done?;
                n
            };
            self.cells.push_n(first_cell + i as u64, n);
            counts.push(n as u64);
        }
        Ok(())
    }

    /// Appends `values` in the stored type, checking that they fit it, and counts them.
    fn push_values<V: Number>(&mut self, values: &[V]) -> Result<()> {
        match &mut self.values {
            ValueColumn::U16(out) => {
                let start = out.len();
                let mut exact = true;
                out.extend(values.iter().map(|&v| {
                    let (u, ok) = v.to_u16();
                    exact &= ok;
                    u
                }));
                if !exact {
                    out.truncate(start);
                    let bad = values.iter().find(|v| !v.to_u16().1).map(|v| v.to_f64());
                    return Err(Error::invalid_argument(format!(
                        "this dataset stores uint16 values (integers in 0..65535) but the \
                         chunk holds {}",
                        bad.unwrap_or(f64::NAN)
                    )));
                }
                self.stats.add_u16(&out[start..]);
            }
            ValueColumn::F32(out) => {
                let start = out.len();
                out.extend(values.iter().map(|&v| v.to_f32()));
                self.stats.add_f32(&out[start..]);
            }
        }
        Ok(())
    }

    /// Takes the buffered rows as a record batch.
    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        let cells = self.cells.take();
        let genes = self.genes.take();
        let values: ArrayRef = match &mut self.values {
            ValueColumn::U16(v) => Arc::new(UInt16Array::from(std::mem::take(v))),
            ValueColumn::F32(v) => Arc::new(Float32Array::from(std::mem::take(v))),
        };
        for (spent, column) in self.spent.iter_mut().zip([&cells, &genes, &values]) {
            spent.keep(column);
        }
        RecordBatch::try_new(self.schema(), vec![cells, genes, values])
            .map_err(|e| Error::storage("building expression rows", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int32Array, Int64Array as I64};

    fn chunk(indptr: Vec<i64>, indices: Vec<i32>, values: ArrayRef) -> CsrChunk {
        CsrChunk::new(
            Arc::new(I64::from(indptr)),
            Arc::new(Int32Array::from(indices)),
            values,
        )
        .unwrap()
    }

    fn column<T: arrow_array::ArrowPrimitiveType>(batch: &RecordBatch, i: usize) -> Vec<T::Native> {
        use arrow_array::cast::AsArray;
        batch.column(i).as_primitive::<T>().values().to_vec()
    }

    #[test]
    fn statistics_leave_out_nan_and_inf() {
        let mut stats = Stats::default();
        let mut values = vec![1.0f32; 16];
        values[3] = f32::NAN;
        values[9] = f32::INFINITY;
        stats.add_f32(&values);
        assert_eq!(stats.count, 14);
        assert_eq!(stats.mean_std(), (1.0, 0.0));
        assert_eq!((stats.min, stats.max), (1.0, 1.0));
    }

    #[test]
    fn rows_drop_zeros_sum_repeats_and_sort_genes() {
        use arrow_array::types::{Float32Type, UInt16Type, UInt32Type};
        // Row 0 unsorted with a zero, row 1 empty, row 2 clean, row 3 a repeated gene.
        let x = chunk(
            vec![10, 13, 13, 15, 17],
            vec![5, 1, 3, 0, 2, 4, 4],
            Arc::new(Float64Array::from(vec![1.0, 0.0, 2.5, 4.0, 3.0, 1.0, 0.5])),
        );
        x.validate(4, "x").unwrap();
        let mut buf = ExpressionBuffer::new(
            IdTypes::for_shape(20, 6),
            ValueType::Float32,
            Stats::default(),
        )
        .unwrap();
        assert_eq!(buf.add(&x, 0..4, 7, 6).unwrap(), vec![2, 0, 2, 1]);
        let batch = buf.take_batch().unwrap();
        assert_eq!(column::<UInt32Type>(&batch, 0), vec![7, 7, 9, 9, 10]);
        assert_eq!(column::<UInt16Type>(&batch, 1), vec![3, 5, 0, 2, 4]);
        assert_eq!(
            column::<Float32Type>(&batch, 2),
            vec![2.5, 1.0, 4.0, 3.0, 1.5]
        );
        let (mean, std) = buf.stats.mean_std();
        assert!((mean - 2.4).abs() < 1e-12);
        assert!(std > 0.0);
        assert_eq!((buf.stats.min, buf.stats.max), (1.0, 4.0));
        let s = Stats::from_recorded(5, mean, std, 1.0, 4.0);
        assert!((s.sum - 12.0).abs() < 1e-9);
        assert!((s.sum_sq - buf.stats.sum_sq).abs() < 1e-9);
        // Gene ids are checked against the gene count on both paths.
        assert!(buf
            .add(&x, 0..1, 0, 5)
            .unwrap_err()
            .message()
            .contains("out of range"));
        let clean = chunk(
            vec![0, 2],
            vec![1, 9],
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
        );
        assert!(buf.add(&clean, 0..1, 0, 5).is_err());
    }

    #[test]
    fn uint16_storage_checks_values_and_counts_exactly() {
        use arrow_array::types::UInt16Type;
        let mut buf = ExpressionBuffer::new(
            IdTypes::for_shape(4, 8),
            ValueType::UInt16,
            Stats::default(),
        )
        .unwrap();
        let ints = chunk(
            vec![0, 3],
            vec![0, 1, 2],
            Arc::new(I64::from(vec![65535, 1, 2])),
        );
        assert_eq!(buf.add(&ints, 0..1, 0, 8).unwrap(), vec![3]);
        let floats = chunk(vec![0, 1], vec![3], Arc::new(Float64Array::from(vec![7.0])));
        buf.add(&floats, 0..1, 1, 8).unwrap();
        let batch = buf.take_batch().unwrap();
        assert_eq!(column::<UInt16Type>(&batch, 2), vec![65535, 1, 2, 7]);
        assert_eq!(buf.stats.sum, 65545.0);
        assert_eq!(buf.stats.sum_sq, 65535.0 * 65535.0 + 1.0 + 4.0 + 49.0);
        for bad in [1.5, -1.0, 65536.0] {
            let x = chunk(vec![0, 1], vec![3], Arc::new(Float64Array::from(vec![bad])));
            let e = buf.add(&x, 0..1, 2, 8).unwrap_err();
            assert!(e.message().contains("uint16"), "{}", e.message());
        }
    }

    #[test]
    fn batches_reuse_the_memory_the_writer_let_go_of() {
        let mut buf = ExpressionBuffer::new(
            IdTypes::for_shape(4, 8),
            ValueType::Float32,
            Stats::default(),
        )
        .unwrap();
        let x = chunk(
            vec![0, 2],
            vec![1, 5],
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
        );
        buf.reserve(100);
        buf.add(&x, 0..1, 0, 8).unwrap();
        let batch = buf.take_batch().unwrap();
        let cells = batch.column(0).to_data().buffers()[0].as_ptr();
        // Still held by the writer: a new allocation.
        buf.reserve(100);
        let IdColumn::U32(v) = &buf.cells else {
            panic!()
        };
        assert_ne!(v.as_ptr() as *const u8, cells);
        let _ = buf.take_batch().unwrap();
        drop(batch);
        // Let go of: the same memory again.
        buf.reserve(100);
        let IdColumn::U32(v) = &buf.cells else {
            panic!()
        };
        assert_eq!(v.as_ptr() as *const u8, cells);
        assert!(v.is_empty() && v.capacity() >= 100);
        buf.add(&x, 0..1, 1, 8).unwrap();
        let batch = buf.take_batch().unwrap();
        use arrow_array::types::UInt32Type;
        assert_eq!(column::<UInt32Type>(&batch, 0), vec![1, 1]);
    }

    #[test]
    fn float_statistics_match_a_plain_sum() {
        let values: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
        let mut lanes = Stats::default();
        lanes.add_f32(&values);
        let mut plain = Stats::default();
        values.iter().for_each(|&v| plain.add(v as f64));
        assert_eq!(lanes.count, plain.count);
        assert!((lanes.sum - plain.sum).abs() < 1e-9);
        assert!((lanes.sum_sq - plain.sum_sq).abs() < 1e-9);
        assert_eq!((lanes.min, lanes.max), (plain.min, plain.max));
        let ints: Vec<u16> = (0..70_000u32).map(|i| (i % 65_536) as u16).collect();
        let mut exact = Stats::default();
        exact.add_u16(&ints);
        let mut plain = Stats::default();
        ints.iter().for_each(|&v| plain.add(v as f64));
        assert_eq!(
            (exact.count, exact.sum, exact.sum_sq),
            (plain.count, plain.sum, plain.sum_sq)
        );
        assert_eq!((exact.min, exact.max), (0.0, 65535.0));
    }
}
