//! `expression.lance`: CSR chunks of cells turned into COO rows (sorted by cell, genes ascending
//! within a cell, zeros left out), buffered into large fragments, with the value statistics
//! that `config.json` records computed over every value.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float32Array, Int32Array, Int64Array, RecordBatch, UInt16Array, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

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

/// Values of one chunk.
#[derive(Debug, Clone)]
pub enum ChunkValues {
    UInt16(Vec<u16>),
    Float32(Vec<f32>),
}

impl ChunkValues {
    fn len(&self) -> usize {
        match self {
            Self::UInt16(v) => v.len(),
            Self::Float32(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> f32 {
        match self {
            Self::UInt16(v) => v[i] as f32,
            Self::Float32(v) => v[i],
        }
    }
}

/// A block of consecutive cells in CSR form: row `i`'s entries are
/// `indptr[i] - indptr[0] .. indptr[i + 1] - indptr[0]` of `indices`/`values`.
#[derive(Debug, Clone)]
pub struct CsrChunk {
    pub indptr: Vec<i64>,
    pub indices: Vec<u32>,
    pub values: ChunkValues,
}

impl CsrChunk {
    /// Number of cells in the chunk.
    pub fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Checks the shape against `n_rows` cells and `n_genes` genes; `what` names the matrix.
    pub(crate) fn validate(&self, n_rows: usize, n_genes: usize, what: &str) -> Result<()> {
        let bad = |reason: String| Error::invalid_argument(format!("{what}: {reason}"));
        if self.indptr.len() != n_rows + 1 {
            return Err(bad(format!(
                "indptr has {} entries for {n_rows} cells",
                self.indptr.len()
            )));
        }
        let base = self.indptr[0];
        if self.indptr.windows(2).any(|w| w[1] < w[0]) {
            return Err(bad("indptr is not non-decreasing".into()));
        }
        let nnz = (self.indptr[n_rows] - base) as usize;
        if self.indices.len() != nnz || self.values.len() != nnz {
            return Err(bad(format!(
                "indptr spans {nnz} entries but there are {} indices and {} values",
                self.indices.len(),
                self.values.len()
            )));
        }
        if let Some(&g) = self.indices.iter().find(|&&g| g as usize >= n_genes) {
            return Err(bad(format!(
                "gene index {g} is out of range for {n_genes} genes"
            )));
        }
        Ok(())
    }

    /// The entries of row `i` as `(gene, value)` pairs, zeros left out, genes ascending.
    pub(crate) fn row(&self, i: usize, out: &mut Vec<(u32, f32)>) {
        out.clear();
        let base = self.indptr[0];
        let (a, b) = (
            (self.indptr[i] - base) as usize,
            (self.indptr[i + 1] - base) as usize,
        );
        for k in a..b {
            let v = self.values.get(k);
            if v != 0.0 {
                out.push((self.indices[k], v));
            }
        }
        if out.windows(2).any(|w| w[1].0 < w[0].0) {
            out.sort_by_key(|&(g, _)| g);
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
    pub(crate) fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.sum_sq += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
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

    fn extend(&mut self, ids: impl Iterator<Item = u32>) {
        match self {
            Self::U16(v) => v.extend(ids.map(|i| i as u16)),
            Self::U32(v) => v.extend(ids),
            Self::I32(v) => v.extend(ids.map(|i| i as i32)),
            Self::I64(v) => v.extend(ids.map(|i| i as i64)),
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
    row: Vec<(u32, f32)>,
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
        })
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("cell_integer_id", self.ids.cell.clone(), true),
            Field::new("gene_integer_id", self.ids.gene.clone(), true),
            Field::new("value", self.value_type.data_type(), true),
        ]))
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Adds rows `rows` of `chunk` (chunk row 0 is cell `first_cell`); returns how many
    /// entries each of those cells got.
    pub fn add(
        &mut self,
        chunk: &CsrChunk,
        rows: std::ops::Range<usize>,
        first_cell: u64,
    ) -> Result<Vec<u64>> {
        if let (ValueType::UInt16, ChunkValues::Float32(_)) = (self.value_type, &chunk.values) {
            return Err(Error::invalid_argument(
                "this dataset stores uint16 values but the chunk holds float32 values",
            ));
        }
        let last = first_cell + rows.end as u64;
        if last > 0 && last - 1 > self.cells.max() {
            return Err(Error::invalid_argument(format!(
                "cell id {} does not fit the dataset's cell id type {}",
                last - 1,
                self.ids.cell
            )));
        }
        let mut counts = Vec::with_capacity(rows.len());
        let mut row = std::mem::take(&mut self.row);
        for i in rows {
            chunk.row(i, &mut row);
            self.cells.push_n(first_cell + i as u64, row.len());
            self.genes.extend(row.iter().map(|&(g, _)| g));
            match &mut self.values {
                ValueColumn::U16(v) => v.extend(row.iter().map(|&(_, x)| x as u16)),
                ValueColumn::F32(v) => v.extend(row.iter().map(|&(_, x)| x)),
            }
            for &(_, value) in &row {
                self.stats.add(value as f64);
            }
            counts.push(row.len() as u64);
        }
        self.row = row;
        Ok(counts)
    }

    /// Takes the buffered rows as a record batch.
    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        let cells = self.cells.take();
        let genes = self.genes.take();
        let values: ArrayRef = match &mut self.values {
            ValueColumn::U16(v) => Arc::new(UInt16Array::from(std::mem::take(v))),
            ValueColumn::F32(v) => Arc::new(Float32Array::from(std::mem::take(v))),
        };
        RecordBatch::try_new(self.schema(), vec![cells, genes, values])
            .map_err(|e| Error::storage("building expression rows", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_drop_zeros_and_sort_genes() {
        let chunk = CsrChunk {
            indptr: vec![10, 13, 13, 15],
            indices: vec![5, 1, 3, 0, 2],
            values: ChunkValues::Float32(vec![1.0, 0.0, 2.5, 4.0, 3.0]),
        };
        chunk.validate(3, 6, "x").unwrap();
        let mut buf = ExpressionBuffer::new(
            IdTypes::for_shape(10, 6),
            ValueType::Float32,
            Stats::default(),
        )
        .unwrap();
        assert_eq!(buf.add(&chunk, 0..3, 7).unwrap(), vec![2, 0, 2]);
        let batch = buf.take_batch().unwrap();
        let genes = batch
            .column(1)
            .as_any()
            .downcast_ref::<UInt16Array>()
            .unwrap();
        assert_eq!(genes.values().to_vec(), vec![3, 5, 0, 2]);
        let cells = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt32Array>()
            .unwrap();
        assert_eq!(cells.values().to_vec(), vec![7, 7, 9, 9]);
        let (mean, std) = buf.stats.mean_std();
        assert!((mean - 2.625).abs() < 1e-12);
        assert!(std > 0.0);
        let s = Stats::from_recorded(4, mean, std, 1.0, 4.0);
        assert!((s.sum - 10.5).abs() < 1e-9);
        assert!((s.sum_sq - buf.stats.sum_sq).abs() < 1e-9);
    }

    #[test]
    fn bad_chunks_are_rejected() {
        let chunk = CsrChunk {
            indptr: vec![0, 2],
            indices: vec![1, 9],
            values: ChunkValues::UInt16(vec![1, 2]),
        };
        assert!(chunk
            .validate(1, 5, "x")
            .unwrap_err()
            .message()
            .contains("out of range"));
        assert!(chunk.validate(2, 10, "x").is_err());
    }
}
