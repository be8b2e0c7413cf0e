//! Conversions from the column types found in the wild to the few the core computes with.
//! Ids may be stored as int32/int64/uint16/uint32, values as unsigned/signed integers or floats.

use arrow::compute::cast;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;

use crate::error::{Error, Result};

macro_rules! for_each_primitive {
    ($array:expr, $what:expr, |$values:ident| $body:expr) => {{
        let array: &dyn Array = $array;
        match array.data_type() {
            DataType::UInt8 => {
                let $values = array.as_primitive::<UInt8Type>().values();
                $body
            }
            DataType::UInt16 => {
                let $values = array.as_primitive::<UInt16Type>().values();
                $body
            }
            DataType::UInt32 => {
                let $values = array.as_primitive::<UInt32Type>().values();
                $body
            }
            DataType::UInt64 => {
                let $values = array.as_primitive::<UInt64Type>().values();
                $body
            }
            DataType::Int8 => {
                let $values = array.as_primitive::<Int8Type>().values();
                $body
            }
            DataType::Int16 => {
                let $values = array.as_primitive::<Int16Type>().values();
                $body
            }
            DataType::Int32 => {
                let $values = array.as_primitive::<Int32Type>().values();
                $body
            }
            DataType::Int64 => {
                let $values = array.as_primitive::<Int64Type>().values();
                $body
            }
            other => Err(Error::invalid_schema(format!(
                "{} has type {other}, expected an integer type",
                $what
            ))),
        }
    }};
}

fn reject_nulls(array: &dyn Array, what: &str) -> Result<()> {
    if array.null_count() > 0 {
        return Err(Error::invalid_schema(format!(
            "{what} contains {} null values",
            array.null_count()
        )));
    }
    Ok(())
}

/// Appends integer ids to `out`, rejecting negative values and nulls.
#[allow(clippy::unnecessary_cast)] // the macro also expands for u32 itself
pub(crate) fn extend_ids(out: &mut Vec<u32>, array: &dyn Array, what: &str) -> Result<()> {
    reject_nulls(array, what)?;
    for_each_primitive!(array, what, |values| {
        let start = out.len();
        out.extend(values.iter().map(|&v| v as i128 as u32));
        // Checked after the fast copy: any value outside u32 makes the round trip differ.
        if values
            .iter()
            .zip(&out[start..])
            .any(|(&v, &w)| v as i128 != w as i128)
        {
            return Err(Error::invalid_schema(format!(
                "{what} contains a negative or too large id"
            )));
        }
        Ok(())
    })
}

/// Integer ids as i64 (for `cell_start_index` and integer id columns).
#[allow(clippy::unnecessary_cast)] // the macro also expands for i64 itself
pub(crate) fn to_i64(array: &dyn Array, what: &str) -> Result<Vec<i64>> {
    reject_nulls(array, what)?;
    for_each_primitive!(array, what, |values| {
        Ok(values.iter().map(|&v| v as i64).collect())
    })
}

/// Stored expression values, widened to the float type a matrix is returned in.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    /// An empty buffer of the type a value column of `data_type` is returned as.
    pub(crate) fn for_type(data_type: &DataType, what: &str) -> Result<Self> {
        match data_type {
            DataType::Float64 | DataType::Int64 | DataType::UInt64 => Ok(Values::F64(Vec::new())),
            DataType::Float16
            | DataType::Float32
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Ok(Values::F32(Vec::new())),
            other => Err(Error::invalid_schema(format!(
                "{what} has type {other}, expected an integer or float type"
            ))),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the values in `range`, in place.
    pub(crate) fn keep(&mut self, range: std::ops::Range<usize>) {
        fn keep<T>(v: &mut Vec<T>, range: std::ops::Range<usize>) {
            v.truncate(range.end);
            v.drain(..range.start);
        }
        match self {
            Values::F32(v) => keep(v, range),
            Values::F64(v) => keep(v, range),
        }
    }

    /// `true` where the value is not zero.
    pub(crate) fn nonzero_mask(&self) -> Vec<bool> {
        match self {
            Values::F32(v) => v.iter().map(|&x| x != 0.0).collect(),
            Values::F64(v) => v.iter().map(|&x| x != 0.0).collect(),
        }
    }

    /// Keeps the values where `keep` is true.
    pub(crate) fn retain(self, keep: &[bool]) -> Self {
        match self {
            Values::F32(v) => Values::F32(retain(v, keep)),
            Values::F64(v) => Values::F64(retain(v, keep)),
        }
    }

    /// The values at `positions`, in that order.
    pub(crate) fn gather(&self, positions: &[u32]) -> Self {
        match self {
            Values::F32(v) => Values::F32(positions.iter().map(|&i| v[i as usize]).collect()),
            Values::F64(v) => Values::F64(positions.iter().map(|&i| v[i as usize]).collect()),
        }
    }

    /// Makes room for `additional` more values.
    pub(crate) fn reserve(&mut self, additional: usize) {
        match self {
            Values::F32(v) => v.reserve(additional),
            Values::F64(v) => v.reserve(additional),
        }
    }

    /// An empty buffer of the same type.
    pub(crate) fn empty_like(&self) -> Self {
        match self {
            Values::F32(_) => Values::F32(Vec::new()),
            Values::F64(_) => Values::F64(Vec::new()),
        }
    }

    /// The values in `range`, as a buffer of their own.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> Self {
        match self {
            Values::F32(v) => Values::F32(v[range].to_vec()),
            Values::F64(v) => Values::F64(v[range].to_vec()),
        }
    }

    /// Appends `other[range]`; both hold the values of one column, so they share a type (a
    /// mixed pair is widened or narrowed as the column's values would be).
    pub(crate) fn extend_from(&mut self, other: &Values, range: std::ops::Range<usize>) {
        match (self, other) {
            (Values::F32(out), Values::F32(v)) => out.extend_from_slice(&v[range]),
            (Values::F64(out), Values::F64(v)) => out.extend_from_slice(&v[range]),
            (Values::F32(out), Values::F64(v)) => out.extend(v[range].iter().map(|&x| x as f32)),
            (Values::F64(out), Values::F32(v)) => out.extend(v[range].iter().map(|&x| x as f64)),
        }
    }

    /// Bytes held by the values.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Values::F32(v) => v.len() * 4,
            Values::F64(v) => v.len() * 8,
        }
    }

    /// Appends a value column (which must hold no nulls).
    pub(crate) fn extend(&mut self, array: &dyn Array, what: &str) -> Result<()> {
        match self {
            Values::F32(out) => extend_floats::<f32>(out, array, what),
            Values::F64(out) => extend_floats::<f64>(out, array, what),
        }
    }
}

trait FromStored: Copy {
    fn from_f64(v: f64) -> Self;
}
impl FromStored for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl FromStored for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

fn extend_floats<T: FromStored>(out: &mut Vec<T>, array: &dyn Array, what: &str) -> Result<()> {
    reject_nulls(array, what)?;
    match array.data_type() {
        DataType::Float32 => out.extend(
            array
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|&v| T::from_f64(v as f64)),
        ),
        DataType::Float64 => out.extend(
            array
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|&v| T::from_f64(v)),
        ),
        DataType::Float16 => out.extend(
            array
                .as_primitive::<Float16Type>()
                .values()
                .iter()
                .map(|&v| T::from_f64(v.to_f64())),
        ),
        _ => for_each_primitive!(array, what, |values| {
            out.extend(values.iter().map(|&v| T::from_f64(v as f64)));
            Ok(())
        })?,
    }
    Ok(())
}

/// The items of `items` where `keep` is true.
pub(crate) fn retain<T>(items: Vec<T>, keep: &[bool]) -> Vec<T> {
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(item, &k)| k.then_some(item))
        .collect()
}

/// A string column (Utf8, LargeUtf8 or Utf8View) as a `StringArray`.
pub(crate) fn to_strings(array: &ArrayRef, what: &str) -> Result<StringArray> {
    let utf8 = cast(array, &DataType::Utf8)
        .map_err(|e| Error::invalid_schema(format!("{what} is not a string column ({e})")))?;
    Ok(utf8.as_string::<i32>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float32Array, Int32Array, UInt16Array};

    #[test]
    fn ids_of_any_integer_type() {
        let mut out = Vec::new();
        extend_ids(&mut out, &UInt16Array::from(vec![1, 65535]), "ids").unwrap();
        extend_ids(&mut out, &Int32Array::from(vec![7]), "ids").unwrap();
        assert_eq!(out, vec![1, 65535, 7]);
        let err = extend_ids(&mut out, &Int32Array::from(vec![-1]), "gene ids").unwrap_err();
        assert!(err.message().contains("gene ids contains a negative"));
        assert!(extend_ids(&mut out, &Float32Array::from(vec![1.0]), "ids").is_err());
    }

    #[test]
    fn values_widen_to_float() {
        let mut v = Values::for_type(&DataType::UInt16, "value").unwrap();
        v.extend(&UInt16Array::from(vec![3, 65535]), "value")
            .unwrap();
        assert_eq!(v, Values::F32(vec![3.0, 65535.0]));
        let mut v = Values::for_type(&DataType::Int64, "value").unwrap();
        v.extend(&arrow_array::Int64Array::from(vec![1 << 40]), "value")
            .unwrap();
        assert_eq!(v, Values::F64(vec![(1u64 << 40) as f64]));
    }
}
