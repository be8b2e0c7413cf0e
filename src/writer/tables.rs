//! Record batches of the other tables: cells/genes (annotations plus the format's id columns),
//! the wide `layers` table, and the obsp/varp pairwise tables.

use std::sync::Arc;

use arrow::compute::cast;
use arrow_array::{new_null_array, ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::chunk::CsrChunk;
use super::expression::{id_array, IdTypes};
use crate::error::{Error, Result};

fn plain_schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// Adds `{axis}_integer_id` (int64, from `first_id`) and, for cells, `cell_start_index`
/// after the name column of an annotation batch; `name_column` must be present.
pub(crate) fn axis_batch(
    annotations: &RecordBatch,
    name_column: &str,
    id_column: &str,
    first_id: u64,
    start_index: Option<&[i64]>,
) -> Result<RecordBatch> {
    let schema = annotations.schema();
    let name_index = schema.index_of(name_column).map_err(|_| {
        Error::invalid_argument(format!("the annotation batch has no {name_column} column"))
    })?;
    let n = annotations.num_rows();
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let as_plain = |f: &Field| Field::new(f.name(), f.data_type().clone(), true);
    fields.push(as_plain(schema.field(name_index)));
    columns.push(annotations.column(name_index).clone());
    fields.push(Field::new(id_column, DataType::Int64, true));
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..n as i64).map(|i| first_id as i64 + i),
    )));
    if let Some(starts) = start_index {
        fields.push(Field::new("cell_start_index", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(starts.to_vec())));
    }
    for (i, field) in schema.fields().iter().enumerate() {
        if i == name_index {
            continue;
        }
        if fields.iter().any(|f| f.name() == field.name()) {
            return Err(Error::invalid_argument(format!(
                "annotation column {:?} clashes with a column the format adds",
                field.name()
            )));
        }
        fields.push(as_plain(field));
        columns.push(annotations.column(i).clone());
    }
    RecordBatch::try_new(plain_schema(fields), columns)
        .map_err(|e| Error::storage("building annotation rows", e))
}

/// Fits `batch` to `schema`: columns by name, cast where types differ, nulls for absent ones.
/// A column the schema lacks is an error naming it (`what` says which table).
pub(crate) fn align(batch: &RecordBatch, schema: &SchemaRef, what: &str) -> Result<RecordBatch> {
    for field in batch.schema().fields() {
        if schema.field_with_name(field.name()).is_err() {
            return Err(Error::invalid_argument(format!(
                "{what}: column {:?} is not in the dataset's table (it has: {})",
                field.name(),
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let n = batch.num_rows();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => cast(c, field.data_type()).map_err(|e| {
                Error::invalid_argument(format!(
                    "{what}: column {:?} of type {} cannot be stored as {}: {e}",
                    field.name(),
                    c.data_type(),
                    field.data_type()
                ))
            })?,
            None => new_null_array(field.data_type(), n),
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::invalid_argument(format!("{what}: {e}")))
}

/// Rows of the wide layers table: one per (cell, gene) stored in any layer, the layers that
/// do not store it null. Zeros are not stored.
pub(crate) struct LayerRows {
    pub names: Vec<String>,
    ids: IdTypes,
    cells: Vec<u64>,
    genes: Vec<u64>,
    values: Vec<Vec<Option<f32>>>,
}

impl LayerRows {
    pub fn new(names: Vec<String>, ids: IdTypes) -> Self {
        let values = names.iter().map(|_| Vec::new()).collect();
        Self {
            names,
            ids,
            cells: Vec::new(),
            genes: Vec::new(),
            values,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new("cell_integer_id", self.ids.cell.clone(), true),
            Field::new("gene_integer_id", self.ids.gene.clone(), true),
        ];
        fields.extend(
            self.names
                .iter()
                .map(|n| Field::new(n, DataType::Float32, true)),
        );
        plain_schema(fields)
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Adds the cells of the chunks (same cells for every layer; the first is `first_cell`).
    pub fn add(
        &mut self,
        chunks: &[(usize, &CsrChunk)],
        n_cells: usize,
        first_cell: u64,
        n_genes: u64,
    ) -> Result<()> {
        let mut entries: Vec<(u32, usize, f32)> = Vec::new();
        let mut row = Vec::new();
        for i in 0..n_cells {
            entries.clear();
            for &(layer, chunk) in chunks {
                chunk.row(i, n_genes, &mut row)?;
                entries.extend(row.iter().map(|&(g, v)| (g, layer, v as f32)));
            }
            entries.sort_by_key(|&(g, layer, _)| (g, layer));
            let cell = first_cell + i as u64;
            let mut k = 0;
            while k < entries.len() {
                let gene = entries[k].0;
                self.cells.push(cell);
                self.genes.push(gene as u64);
                for column in &mut self.values {
                    column.push(None);
                }
                while k < entries.len() && entries[k].0 == gene {
                    let (_, layer, v) = entries[k];
                    *self.values[layer].last_mut().expect("pushed above") = Some(v);
                    k += 1;
                }
            }
        }
        Ok(())
    }

    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        let mut columns = vec![
            id_array(&self.cells, &self.ids.cell, "layers.cell_integer_id")?,
            id_array(&self.genes, &self.ids.gene, "layers.gene_integer_id")?,
        ];
        for column in &mut self.values {
            columns.push(Arc::new(Float32Array::from(std::mem::take(column))) as ArrayRef);
        }
        self.cells.clear();
        self.genes.clear();
        RecordBatch::try_new(self.schema(), columns)
            .map_err(|e| Error::storage("building layer rows", e))
    }
}

/// One obsp/varp key in COO form.
#[derive(Debug, Clone)]
pub struct Coo {
    pub rows: Vec<u64>,
    pub cols: Vec<u64>,
    pub values: Vec<f32>,
}

/// The pairwise table rows of several keys: the union of their patterns, sorted by (i, j);
/// a key that does not store a pair is null there. `offset` shifts both ids.
pub(crate) fn pairwise_batch(id: &str, keys: &[(String, Coo)], offset: u64) -> Result<RecordBatch> {
    let mut entries: Vec<(u64, u64, usize, f32)> = Vec::new();
    for (k, (name, coo)) in keys.iter().enumerate() {
        if coo.rows.len() != coo.cols.len() || coo.rows.len() != coo.values.len() {
            return Err(Error::invalid_argument(format!(
                "pairwise key {name:?}: rows, columns and values differ in length"
            )));
        }
        for ((&i, &j), &v) in coo.rows.iter().zip(&coo.cols).zip(&coo.values) {
            entries.push((i + offset, j + offset, k, v));
        }
    }
    entries.sort_unstable_by_key(|&(i, j, k, _)| (i, j, k));
    let (mut rows, mut cols) = (Vec::new(), Vec::new());
    let mut values: Vec<Vec<Option<f32>>> = keys.iter().map(|_| Vec::new()).collect();
    let mut k = 0;
    while k < entries.len() {
        let (i, j) = (entries[k].0, entries[k].1);
        rows.push(i);
        cols.push(j);
        for column in &mut values {
            column.push(None);
        }
        while k < entries.len() && (entries[k].0, entries[k].1) == (i, j) {
            *values[entries[k].2].last_mut().expect("pushed above") = Some(entries[k].3);
            k += 1;
        }
    }
    let (col_i, col_j) = (format!("{id}_i"), format!("{id}_j"));
    let mut fields = vec![
        Field::new(&col_i, DataType::UInt32, true),
        Field::new(&col_j, DataType::UInt32, true),
    ];
    let mut columns = vec![
        id_array(&rows, &DataType::UInt32, &col_i)?,
        id_array(&cols, &DataType::UInt32, &col_j)?,
    ];
    for ((name, _), column) in keys.iter().zip(values) {
        fields.push(Field::new(name, DataType::Float32, true));
        columns.push(Arc::new(Float32Array::from(column)) as ArrayRef);
    }
    RecordBatch::try_new(plain_schema(fields), columns)
        .map_err(|e| Error::storage("building pairwise rows", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    use arrow_array::StringArray;

    #[test]
    fn layers_union_patterns_with_nulls() {
        let csr = |indices: Vec<i32>, values: Vec<f32>| {
            CsrChunk::new(
                Arc::new(Int64Array::from(vec![0, 2])),
                Arc::new(arrow_array::Int32Array::from(indices)),
                Arc::new(Float32Array::from(values)),
            )
            .unwrap()
        };
        let a = csr(vec![1, 3], vec![1.0, 2.0]);
        let b = csr(vec![4, 3], vec![6.0, 5.0]);
        let mut rows = LayerRows::new(vec!["a".into(), "b".into()], IdTypes::for_shape(1, 5));
        rows.add(&[(0, &a), (1, &b)], 1, 0, 5).unwrap();
        let batch = rows.take_batch().unwrap();
        assert_eq!(batch.num_rows(), 3);
        let a_col = batch.column(2).as_primitive::<Float32Type>();
        let b_col = batch.column(3).as_primitive::<Float32Type>();
        assert_eq!(
            a_col.iter().collect::<Vec<_>>(),
            vec![Some(1.0), Some(2.0), None]
        );
        assert_eq!(
            b_col.iter().collect::<Vec<_>>(),
            vec![None, Some(5.0), Some(6.0)]
        );
    }

    #[test]
    fn align_fills_missing_and_rejects_unknown_columns() {
        let names: ArrayRef = Arc::new(StringArray::from(vec!["x", "y"]));
        let batch = RecordBatch::try_from_iter(vec![("cell_id", names)]).unwrap();
        let full = axis_batch(&batch, "cell_id", "cell_integer_id", 5, Some(&[0, 3])).unwrap();
        let schema = full.schema();
        let aligned = align(&batch, &schema, "cells").unwrap();
        assert_eq!(aligned.num_columns(), 3);
        assert_eq!(aligned.column(1).null_count(), 2);
        let extra: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let bad = RecordBatch::try_from_iter(vec![("other", extra)]).unwrap();
        assert!(align(&bad, &schema, "cells")
            .unwrap_err()
            .message()
            .contains("other"));
    }
}
