//! Arrow (58, what Lance reads) → DuckDB: the column type each Arrow type becomes, and writing
//! an Arrow array into a DuckDB output vector.
//!
//! Safety contract of this module: every `unsafe` block writes at most `len <= 2048` rows (the
//! chunk capacity DuckDB allocated) into a vector whose DuckDB type was declared at bind time
//! from the same [`Kind`], so the Rust element type always matches the vector's physical
//! storage. List/array children are reserved for exactly the number of values written.

use arrow::compute::cast;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType};
use arrow_schema::{DataType, Field, TimeUnit};
use duckdb::core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId};

/// How a column is written: its DuckDB type and the conversion from Arrow.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    /// Float16 and Float32 become FLOAT.
    F32,
    F64,
    /// Any string type, dictionary-encoded strings, or a type only representable as text.
    Varchar,
    Blob,
    /// Days since the epoch.
    Date,
    /// Microseconds since the epoch.
    Timestamp,
    /// `fixed_size_list<T>[d]` (obsm/varm) → `T[d]`.
    Array(Box<Kind>, usize),
    /// `list<T>` → `T[]`.
    List(Box<Kind>),
}

impl Kind {
    /// The kind for an Arrow field, or an error naming the column.
    pub fn of(field: &Field) -> Result<Kind, String> {
        Self::of_type(field.data_type()).ok_or_else(|| {
            format!(
                "column {:?} has type {} which DuckDB cannot receive from SLAF",
                field.name(),
                field.data_type()
            )
        })
    }

    fn of_type(t: &DataType) -> Option<Kind> {
        Some(match t {
            DataType::Boolean => Kind::Bool,
            DataType::Int8 => Kind::I8,
            DataType::Int16 => Kind::I16,
            DataType::Int32 => Kind::I32,
            DataType::Int64 => Kind::I64,
            DataType::UInt8 => Kind::U8,
            DataType::UInt16 => Kind::U16,
            DataType::UInt32 => Kind::U32,
            DataType::UInt64 => Kind::U64,
            DataType::Float16 | DataType::Float32 => Kind::F32,
            DataType::Float64 => Kind::F64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Varchar,
            DataType::Dictionary(_, v)
                if matches!(
                    v.as_ref(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                Kind::Varchar
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Kind::Blob,
            DataType::Date32 => Kind::Date,
            DataType::Timestamp(_, None) => Kind::Timestamp,
            DataType::FixedSizeList(f, d) => {
                let child = Self::of_type(f.data_type())?;
                if !child.is_fixed_width() {
                    return None;
                }
                Kind::Array(Box::new(child), *d as usize)
            }
            DataType::List(f) | DataType::LargeList(f) => {
                let child = Self::of_type(f.data_type())?;
                if !child.is_fixed_width() {
                    return None;
                }
                Kind::List(Box::new(child))
            }
            other if arrow::compute::can_cast_types(other, &DataType::Utf8) => Kind::Varchar,
            _ => return None,
        })
    }

    fn is_fixed_width(&self) -> bool {
        !matches!(
            self,
            Kind::Varchar | Kind::Blob | Kind::Array(..) | Kind::List(..)
        )
    }

    /// The DuckDB type of the column.
    pub fn logical_type(&self) -> LogicalTypeHandle {
        let id = match self {
            Kind::Bool => LogicalTypeId::Boolean,
            Kind::I8 => LogicalTypeId::Tinyint,
            Kind::I16 => LogicalTypeId::Smallint,
            Kind::I32 => LogicalTypeId::Integer,
            Kind::I64 => LogicalTypeId::Bigint,
            Kind::U8 => LogicalTypeId::UTinyint,
            Kind::U16 => LogicalTypeId::USmallint,
            Kind::U32 => LogicalTypeId::UInteger,
            Kind::U64 => LogicalTypeId::UBigint,
            Kind::F32 => LogicalTypeId::Float,
            Kind::F64 => LogicalTypeId::Double,
            Kind::Varchar => LogicalTypeId::Varchar,
            Kind::Blob => LogicalTypeId::Blob,
            Kind::Date => LogicalTypeId::Date,
            Kind::Timestamp => LogicalTypeId::Timestamp,
            Kind::Array(child, d) => {
                return LogicalTypeHandle::array(&child.logical_type(), *d as u64)
            }
            Kind::List(child) => return LogicalTypeHandle::list(&child.logical_type()),
        };
        LogicalTypeHandle::from(id)
    }
}

type WriteResult = Result<(), Box<dyn std::error::Error>>;

/// Writes `array` (at most one chunk of rows) into column `col` of `output`.
pub fn write_column(
    output: &DataChunkHandle,
    col: usize,
    kind: &Kind,
    array: &ArrayRef,
) -> WriteResult {
    let len = array.len();
    match kind {
        Kind::Array(child, d) => {
            let list = array.as_fixed_size_list();
            let vector = output.array_vector(col);
            let values = list.values().slice(list.offset() * d, len * d);
            let mut flat = vector.child(len * d);
            write_fixed(&mut flat, child, &values)?;
            let mut vector = vector;
            for row in 0..len {
                if list.is_null(row) {
                    vector.set_null(row);
                }
            }
            Ok(())
        }
        Kind::List(child) => {
            let (offsets, values): (Vec<usize>, ArrayRef) = match array.data_type() {
                DataType::LargeList(_) => {
                    let l = array.as_list::<i64>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                    )
                }
                _ => {
                    let l = array.as_list::<i32>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                    )
                }
            };
            let (first, last) = (offsets[0], offsets[len]);
            let mut vector = output.list_vector(col);
            let mut flat = vector.child(last - first);
            write_fixed(&mut flat, child, &values.slice(first, last - first))?;
            for row in 0..len {
                vector.set_entry(row, offsets[row] - first, offsets[row + 1] - offsets[row]);
                if array.is_null(row) {
                    vector.set_null(row);
                }
            }
            vector.set_len(last - first);
            Ok(())
        }
        Kind::Varchar => {
            let strings = cast(array, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            let mut vector = output.flat_vector(col);
            for row in 0..len {
                if strings.is_null(row) {
                    vector.set_null(row);
                } else {
                    vector.insert(row, strings.value(row));
                }
            }
            Ok(())
        }
        Kind::Blob => {
            let bytes = cast(array, &DataType::Binary)?;
            let bytes = bytes.as_binary::<i32>();
            let mut vector = output.flat_vector(col);
            for row in 0..len {
                if bytes.is_null(row) {
                    vector.set_null(row);
                } else {
                    vector.insert(row, bytes.value(row));
                }
            }
            Ok(())
        }
        _ => {
            let mut vector = output.flat_vector(col);
            write_fixed(&mut vector, kind, array)
        }
    }
}

/// Writes a fixed-width array into a flat vector with room for `array.len()` values.
fn write_fixed(
    vector: &mut duckdb::core::FlatVector<'_>,
    kind: &Kind,
    array: &ArrayRef,
) -> WriteResult {
    match kind {
        Kind::Bool => {
            let bools = array.as_boolean();
            // SAFETY: a BOOLEAN vector stores one byte per row, which `bool` matches; the
            // vector has room for `array.len()` rows (see the module contract).
            let out = unsafe { vector.as_mut_slice_with_len::<bool>(array.len()) };
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = bools.value(i);
            }
        }
        Kind::I8 => copy_primitive::<Int8Type>(vector, array),
        Kind::I16 => copy_primitive::<Int16Type>(vector, array),
        Kind::I32 => copy_primitive::<Int32Type>(vector, array),
        Kind::I64 => copy_primitive::<Int64Type>(vector, array),
        Kind::U8 => copy_primitive::<UInt8Type>(vector, array),
        Kind::U16 => copy_primitive::<UInt16Type>(vector, array),
        Kind::U32 => copy_primitive::<UInt32Type>(vector, array),
        Kind::U64 => copy_primitive::<UInt64Type>(vector, array),
        Kind::F32 => match array.data_type() {
            DataType::Float32 => copy_primitive::<Float32Type>(vector, array),
            _ => copy_primitive::<Float32Type>(vector, &cast(array, &DataType::Float32)?),
        },
        Kind::F64 => copy_primitive::<Float64Type>(vector, array),
        Kind::Date => copy_primitive::<Date32Type>(vector, array),
        Kind::Timestamp => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            copy_primitive::<TimestampMicrosecondType>(vector, &micros)
        }
        other => return Err(format!("cannot write {other:?} as a fixed-width vector").into()),
    }
    mark_nulls(vector, array.as_ref());
    Ok(())
}

fn copy_primitive<T: ArrowPrimitiveType>(
    vector: &mut duckdb::core::FlatVector<'_>,
    array: &ArrayRef,
) {
    let values = array.as_primitive::<T>().values();
    // SAFETY: the vector was declared with the DuckDB type whose physical storage is
    // `T::Native` (same width and layout), and has room for `values.len()` rows.
    let out = unsafe { vector.as_mut_slice_with_len::<T::Native>(values.len()) };
    out.copy_from_slice(values);
}

/// Writes a slice of plain values into a flat vector with room for them.
pub fn copy_slice<T: Copy>(vector: &mut duckdb::core::FlatVector<'_>, values: &[T]) {
    // SAFETY: callers pass the Rust type matching the vector's declared DuckDB type, and at
    // most the vector's capacity of values (`copy` asserts the latter).
    unsafe { vector.copy(values) };
}

fn mark_nulls(vector: &mut duckdb::core::FlatVector<'_>, array: &dyn Array) {
    if array.null_count() == 0 {
        return;
    }
    for row in 0..array.len() {
        if array.is_null(row) {
            vector.set_null(row);
        }
    }
}
