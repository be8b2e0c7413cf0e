//! Chunks of cells as callers hand them over: CSR arrays in the types the source file uses
//! (h5ad: int32/int64 indices, float32/float64/integer values), read in place. The only copy
//! made of the entries is into the stored columns (see `expression.rs`).
//!
//! Types read directly: indices int32/int64/uint32; values float32/float64/int32/int64/
//! uint8/uint16/uint32. Other integer or numeric types are cast once (a copy) on arrival.

use arrow::compute::cast;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType};
use arrow_schema::DataType;

use crate::error::{Error, Result};

/// A number of a source matrix, as the writer needs it.
pub(crate) trait Number: Copy + PartialEq + Send + Sync {
    const ZERO: Self;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
    /// The value as uint16 (saturated) and whether it is exactly that: an integer in
    /// `0..=65535`. Branch-free so that loops over it vectorize.
    fn to_u16(self) -> (u16, bool);
}

macro_rules! float_number {
    ($t:ty) => {
        impl Number for $t {
            const ZERO: Self = 0.0;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn to_u16(self) -> (u16, bool) {
                // `as` saturates (NaN → 0); the round trip is exact only for 0..=65535 integers.
                let u = self as u16;
                (u, u as $t == self)
            }
        }
    };
}
float_number!(f32);
float_number!(f64);

macro_rules! int_number {
    ($t:ty) => {
        impl Number for $t {
            const ZERO: Self = 0;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
            fn to_u16(self) -> (u16, bool) {
                (self as u16, self >= 0 && self as u64 <= u16::MAX as u64)
            }
        }
    };
}
int_number!(i32);
int_number!(i64);
int_number!(u8);
int_number!(u16);
int_number!(u32);

/// A gene index of a source matrix.
pub(crate) trait GeneIndex: Copy + PartialOrd + Send + Sync {
    /// The index as u64; negative indices map to `u64::MAX` (out of range for any matrix).
    fn to_u64(self) -> u64;
    /// The index as u64 for indices already checked to be in range (a plain cast).
    fn wrapping_u64(self) -> u64;
}

macro_rules! gene_index {
    ($t:ty) => {
        impl GeneIndex for $t {
            fn to_u64(self) -> u64 {
                u64::try_from(self).unwrap_or(u64::MAX)
            }
            fn wrapping_u64(self) -> u64 {
                self as u64
            }
        }
    };
}
gene_index!(i32);
gene_index!(i64);
gene_index!(u32);

/// The values of a primitive array of type `T` as a slice (offset applied).
pub(crate) fn native<T: ArrowPrimitiveType>(array: &dyn Array) -> &[T::Native] {
    array.as_primitive::<T>().values()
}

/// Calls `$body` with `$v` bound to `$values` (an array of a type `supported` lets through)
/// as a slice of its native type: one copy of `$body` per type.
macro_rules! with_values {
    ($values:expr, |$v:ident| $body:expr) => {{
        use arrow_array::types as t;
        use $crate::writer::chunk::native;
        let values: &dyn arrow_array::Array = $values;
        match values.data_type() {
            arrow_schema::DataType::Float32 => {
                let $v = native::<t::Float32Type>(values);
                $body
            }
            arrow_schema::DataType::Float64 => {
                let $v = native::<t::Float64Type>(values);
                $body
            }
            arrow_schema::DataType::Int32 => {
                let $v = native::<t::Int32Type>(values);
                $body
            }
            arrow_schema::DataType::Int64 => {
                let $v = native::<t::Int64Type>(values);
                $body
            }
            arrow_schema::DataType::UInt8 => {
                let $v = native::<t::UInt8Type>(values);
                $body
            }
            arrow_schema::DataType::UInt16 => {
                let $v = native::<t::UInt16Type>(values);
                $body
            }
            _ => {
                let $v = native::<t::UInt32Type>(values);
                $body
            }
        }
    }};
}

/// Calls `$body` with `$i` bound to a chunk's indices and `$v` to its values as slices of
/// their native types (one copy of `$body` per type pair).
macro_rules! with_slices {
    ($chunk:expr, |$i:ident, $v:ident| $body:expr) => {{
        use arrow_array::types as t;
        use $crate::writer::chunk::native;
        let chunk: &$crate::writer::chunk::CsrChunk = $chunk;
        let indices: &dyn arrow_array::Array = &*chunk.indices;
        match indices.data_type() {
            arrow_schema::DataType::Int32 => {
                let $i = native::<t::Int32Type>(indices);
                $crate::writer::chunk::with_values!(&*chunk.values, |$v| $body)
            }
            arrow_schema::DataType::Int64 => {
                let $i = native::<t::Int64Type>(indices);
                $crate::writer::chunk::with_values!(&*chunk.values, |$v| $body)
            }
            _ => {
                let $i = native::<t::UInt32Type>(indices);
                $crate::writer::chunk::with_values!(&*chunk.values, |$v| $body)
            }
        }
    }};
}
pub(crate) use {with_slices, with_values};

/// `array` in a type the writer reads directly: integers for `indices`, numbers for
/// `values`; other types are cast (a copy). Nulls are an error.
fn supported(array: ArrayRef, indices: bool, what: &str) -> Result<ArrayRef> {
    if array.null_count() > 0 {
        return Err(Error::invalid_argument(format!(
            "{what} has missing (null) entries"
        )));
    }
    let dt = array.data_type();
    let target = if indices {
        match dt {
            DataType::Int32 | DataType::Int64 | DataType::UInt32 => return Ok(array),
            DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => {
                DataType::Int32
            }
            DataType::UInt64 => DataType::Int64,
            other => {
                return Err(Error::invalid_argument(format!(
                    "{what} must be integers, got {other}"
                )))
            }
        }
    } else {
        match dt {
            DataType::Float32
            | DataType::Float64
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => return Ok(array),
            DataType::Int8 | DataType::Int16 => DataType::Int32,
            DataType::Float16 | DataType::Boolean => DataType::Float32,
            DataType::UInt64 => DataType::Float64,
            other => {
                return Err(Error::invalid_argument(format!(
                    "{what} must be numbers, got {other}"
                )))
            }
        }
    };
    let out = cast(&array, &target)
        .map_err(|e| Error::invalid_argument(format!("{what}: cannot read {dt} values: {e}")))?;
    if out.null_count() > 0 {
        return Err(Error::invalid_argument(format!(
            "{what}: some {dt} values do not fit {target}"
        )));
    }
    Ok(out)
}

/// A block of consecutive cells in CSR form: row `i`'s entries are
/// `indptr[i] - indptr[0] .. indptr[i + 1] - indptr[0]` of `indices` and `values`.
///
/// `indptr` and `indices` may be any integer arrays and `values` any numeric (or boolean)
/// array, without nulls. The arrays are read in place (for arrays imported from numpy through
/// the Arrow C data interface, without a copy). Within a row, genes may come in any order and
/// repeat (repeats are summed, as scipy's `sum_duplicates`); zeros are not stored.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Float32Array, Int32Array, Int64Array};
/// use slaf::writer::CsrChunk;
/// let x = CsrChunk::new(
///     Arc::new(Int64Array::from(vec![0, 2, 3])),
///     Arc::new(Int32Array::from(vec![4, 1, 0])),
///     Arc::new(Float32Array::from(vec![1.0, 2.0, 3.5])),
/// )?;
/// assert_eq!(x.n_rows(), 2);
/// # Ok::<(), slaf::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CsrChunk {
    pub(crate) indptr: Vec<i64>,
    pub(crate) indices: ArrayRef,
    pub(crate) values: ArrayRef,
}

impl CsrChunk {
    /// A chunk from its three arrays (see the type's documentation for what is accepted).
    pub fn new(indptr: ArrayRef, indices: ArrayRef, values: ArrayRef) -> Result<Self> {
        let indptr = supported(indptr, true, "indptr")?;
        let indptr = cast(&indptr, &DataType::Int64)
            .map_err(|e| Error::invalid_argument(format!("indptr: {e}")))?;
        let indptr = indptr.as_primitive::<Int64Type>().values().to_vec();
        if indptr.is_empty() {
            return Err(Error::invalid_argument(
                "indptr is empty (it needs one entry more than there are cells)",
            ));
        }
        Ok(Self {
            indptr,
            indices: supported(indices, true, "indices")?,
            values: supported(values, false, "values")?,
        })
    }

    /// Number of cells in the chunk.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of entries (before zeros are dropped and repeats summed).
    pub fn n_entries(&self) -> usize {
        self.values.len()
    }

    /// Entries of rows `rows` as positions in `indices`/`values`.
    pub(crate) fn span(&self, rows: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let base = self.indptr[0];
        (self.indptr[rows.start] - base) as usize..(self.indptr[rows.end] - base) as usize
    }

    /// Checks the shape against `n_rows` cells; `what` names the matrix. Gene indices are
    /// checked against the gene count as the rows are read.
    pub(crate) fn validate(&self, n_rows: usize, what: &str) -> Result<()> {
        let bad = |reason: String| Error::invalid_argument(format!("{what}: {reason}"));
        if self.indptr.len() != n_rows + 1 {
            return Err(bad(format!(
                "indptr has {} entries for {n_rows} cells",
                self.indptr.len()
            )));
        }
        if self.indptr.windows(2).any(|w| w[1] < w[0]) {
            return Err(bad("indptr is not non-decreasing".into()));
        }
        let nnz = (self.indptr[n_rows] - self.indptr[0]) as usize;
        if self.indices.len() != nnz || self.values.len() != nnz {
            return Err(bad(format!(
                "indptr spans {nnz} entries but there are {} indices and {} values",
                self.indices.len(),
                self.values.len()
            )));
        }
        Ok(())
    }

    /// The entries of row `i` as `(gene, value)` pairs: genes ascending, repeats summed,
    /// zeros left out. A gene index outside `0..n_genes` is an error.
    pub(crate) fn row(&self, i: usize, n_genes: u64, out: &mut Vec<(u32, f64)>) -> Result<()> {
        let span = self.span(i..i + 1);
        with_slices!(self, |indices, values| row_entries(
            &indices[span.clone()],
            &values[span.clone()],
            n_genes,
            out
        ))
    }
}

fn out_of_range(gene: u64, n_genes: u64) -> Error {
    let shown = if gene == u64::MAX {
        "a negative gene index".to_string()
    } else {
        format!("gene index {gene}")
    };
    Error::invalid_argument(format!("{shown} is out of range for {n_genes} genes"))
}

/// One row's entries, normalized: genes ascending, repeats summed, zeros left out.
pub(crate) fn row_entries<I: GeneIndex, V: Number>(
    indices: &[I],
    values: &[V],
    n_genes: u64,
    out: &mut Vec<(u32, f64)>,
) -> Result<()> {
    out.clear();
    for (&g, &v) in indices.iter().zip(values) {
        let gene = g.to_u64();
        if gene >= n_genes {
            return Err(out_of_range(gene, n_genes));
        }
        out.push((gene as u32, v.to_f64()));
    }
    if !out.windows(2).all(|w| w[0].0 < w[1].0) {
        out.sort_by_key(|&(g, _)| g);
        let mut merged = 0;
        for k in 0..out.len() {
            if merged > 0 && out[merged - 1].0 == out[k].0 {
                out[merged - 1].1 += out[k].1;
            } else {
                out[merged] = out[k];
                merged += 1;
            }
        }
        out.truncate(merged);
    }
    out.retain(|&(_, v)| v != 0.0);
    Ok(())
}

/// Whether a row can be copied as it is: genes strictly ascending and within `0..n_genes`,
/// no zero values.
pub(crate) fn is_clean<I: GeneIndex, V: Number>(indices: &[I], values: &[V], n_genes: u64) -> bool {
    let (Some(&first), Some(&last)) = (indices.first(), indices.last()) else {
        return true;
    };
    // Folds rather than `all`/`contains`: without an early exit the loops vectorize.
    first.to_u64() < n_genes
        && last.to_u64() < n_genes
        && indices.windows(2).fold(true, |ok, w| ok & (w[0] < w[1]))
        && values.iter().fold(true, |ok, &v| ok & (v != V::ZERO))
}

/// Whether every value of `values` (an integer or numeric array without nulls) is an integer
/// in `0..=65535`, i.e. whether values can be stored as uint16. Callers decide the stored value
/// type with this over *all* values before writing.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::Float32Array;
/// assert!(slaf::writer::fits_uint16(&Float32Array::from(vec![0.0, 3.0, 65535.0]))?);
/// assert!(!slaf::writer::fits_uint16(&Float32Array::from(vec![1.5]))?);
/// # Ok::<(), slaf::Error>(())
/// ```
pub fn fits_uint16(values: &dyn Array) -> Result<bool> {
    let values = supported(arrow_array::make_array(values.to_data()), false, "values")?;
    Ok(with_values!(values.as_ref(), |v| all_fit_u16(v)))
}

fn all_fit_u16<V: Number>(values: &[V]) -> bool {
    // Blocks with a branch-free inner loop (vectorizes), stopping at the first bad block.
    values
        .chunks(4096)
        .all(|block| block.iter().fold(true, |ok, &x| ok & x.to_u16().1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int16Array, Int32Array, Int64Array, UInt8Array};
    use std::sync::Arc;

    #[test]
    fn uint16_check_covers_every_type_and_edge() {
        let yes: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![0.0, 1.0, 65535.0, -0.0])),
            Arc::new(Int64Array::from(vec![0, 65535])),
            Arc::new(UInt8Array::from(vec![255])),
            Arc::new(Int16Array::from(vec![3, 4])),
        ];
        for a in &yes {
            assert!(fits_uint16(a.as_ref()).unwrap(), "{a:?}");
        }
        let mut long = vec![2.0f32; 10_000];
        long[9_999] = 0.5;
        let no: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![65536.0])),
            Arc::new(Float64Array::from(vec![-1.0])),
            Arc::new(Float64Array::from(vec![f64::NAN])),
            Arc::new(Float64Array::from(vec![f64::INFINITY])),
            Arc::new(arrow_array::Float32Array::from(long)),
            Arc::new(Int32Array::from(vec![-1])),
            Arc::new(Int64Array::from(vec![1 << 40])),
            Arc::new(Int16Array::from(vec![-3])),
        ];
        for a in &no {
            assert!(!fits_uint16(a.as_ref()).unwrap(), "{a:?}");
        }
    }

    #[test]
    fn rows_are_sorted_summed_and_zero_free() {
        let chunk = CsrChunk::new(
            Arc::new(Int64Array::from(vec![5, 10])),
            Arc::new(Int32Array::from(vec![4, 1, 4, 2, 3])),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 2.5, 0.0, -1.0])),
        )
        .unwrap();
        chunk.validate(1, "x").unwrap();
        let mut row = Vec::new();
        chunk.row(0, 5, &mut row).unwrap();
        assert_eq!(row, vec![(1, 2.0), (3, -1.0), (4, 3.5)]);
        assert!(chunk
            .row(0, 4, &mut row)
            .unwrap_err()
            .message()
            .contains("gene index 4 is out of range"));
        let negative = CsrChunk::new(
            Arc::new(Int64Array::from(vec![0, 1])),
            Arc::new(Int32Array::from(vec![-2])),
            Arc::new(Float64Array::from(vec![1.0])),
        )
        .unwrap();
        assert!(negative
            .row(0, 4, &mut row)
            .unwrap_err()
            .message()
            .contains("negative"));
        assert!(!is_clean(&[-2i32], &[1.0f32], 4));
        assert!(!is_clean(&[1i32, 1], &[1.0f32, 2.0], 4));
        assert!(!is_clean(&[1i32, 2], &[1.0f32, 0.0], 4));
        assert!(is_clean(&[1i32, 3], &[1.0f32, 2.0], 4));
    }

    #[test]
    fn bad_shapes_and_types_are_rejected() {
        let chunk = CsrChunk::new(
            Arc::new(Int64Array::from(vec![0, 2])),
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
        )
        .unwrap();
        assert!(chunk.validate(2, "x").is_err());
        let short = CsrChunk::new(
            Arc::new(Int64Array::from(vec![0, 3])),
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
        )
        .unwrap();
        assert!(short
            .validate(1, "x")
            .unwrap_err()
            .message()
            .contains("spans 3"));
        let strings: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["a"]));
        assert!(CsrChunk::new(
            Arc::new(Int64Array::from(vec![0, 1])),
            Arc::new(Int32Array::from(vec![1])),
            strings,
        )
        .is_err());
        let with_null: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), None]));
        assert!(CsrChunk::new(
            Arc::new(Int64Array::from(vec![0, 2])),
            Arc::new(Int32Array::from(vec![1, 2])),
            with_null,
        )
        .unwrap_err()
        .message()
        .contains("null"));
    }
}
