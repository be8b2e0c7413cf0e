//! The cells and genes tables (obs and var): rows sorted by integer id, checked against the
//! dataset shape, with the internal columns separated from the user's annotation columns.

use arrow::compute::{concat_batches, take_record_batch};
use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::DataType;

use crate::columns::to_i64;
use crate::error::{Error, Result};
use crate::gene_major::{self, stats};
use crate::table::Table;

/// Cells or genes: names of the id columns for one axis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AxisColumns {
    /// `cell_id` / `gene_id`: the obs/var index as strings.
    pub name: &'static str,
    /// `cell_integer_id` / `gene_integer_id`: position along the axis.
    pub integer_id: &'static str,
    /// Columns the format adds that users never need (row offsets into other tables).
    pub internal: &'static [&'static str],
}

pub(crate) const CELLS: AxisColumns = AxisColumns {
    name: "cell_id",
    integer_id: "cell_integer_id",
    internal: &["cell_start_index", stats::CELL_TOTAL, stats::CELL_N_GENES],
};

pub(crate) const GENES: AxisColumns = AxisColumns {
    name: "gene_id",
    integer_id: "gene_integer_id",
    internal: &[
        gene_major::START_INDEX_COLUMN,
        stats::GENE_TOTAL,
        stats::GENE_N_CELLS,
        stats::GENE_MEAN,
        stats::GENE_SUM_SQUARES,
    ],
};

/// Whether a column holds an obsm/varm embedding (a fixed-size list per row).
pub(crate) fn is_embedding(data_type: &DataType) -> bool {
    matches!(data_type, DataType::FixedSizeList(..))
}

/// The annotation columns of an axis table: `name`, `integer_id`, then everything but the
/// internal and embedding columns.
pub(crate) fn annotation_columns(table: &Table, axis: AxisColumns) -> Vec<String> {
    let mut columns = vec![axis.name.to_string(), axis.integer_id.to_string()];
    for field in table.schema().fields() {
        let name = field.name();
        if !columns.contains(name)
            && !axis.internal.contains(&name.as_str())
            && !is_embedding(field.data_type())
        {
            columns.push(name.clone());
        }
    }
    columns
}

/// Embedding columns (obsm/varm keys) with their widths.
pub(crate) fn embedding_columns(table: &Table) -> Vec<(String, usize)> {
    embedding_fields(table.schema())
}

/// The embedding columns of `schema`, with their widths.
pub(crate) fn embedding_fields(schema: &arrow_schema::Schema) -> Vec<(String, usize)> {
    schema
        .fields()
        .iter()
        .filter_map(|f| match f.data_type() {
            DataType::FixedSizeList(_, width) => Some((f.name().clone(), *width as usize)),
            _ => None,
        })
        .collect()
}

/// Reads `columns` of an axis table as one batch whose row `i` is the entity with integer id `i`.
pub(crate) async fn read_sorted(
    table: &Table,
    axis: AxisColumns,
    columns: &[&str],
    expected_rows: usize,
) -> Result<RecordBatch> {
    let mut wanted: Vec<&str> = columns.to_vec();
    if !wanted.contains(&axis.integer_id) {
        wanted.push(axis.integer_id);
    }
    let batches = table.scan(&wanted, None).await?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            let fields: Vec<_> = wanted
                .iter()
                .map(|c| table.schema().field_with_name(c).cloned())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::invalid_schema(e.to_string()))?;
            std::sync::Arc::new(arrow_schema::Schema::new(fields))
        }
    };
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| Error::storage(format!("reading table '{}'", table.role()), e))?;
    if batch.num_rows() != expected_rows {
        return Err(Error::invalid_schema(format!(
            "table '{}' has {} rows but config.json says the dataset has {expected_rows}",
            table.role(),
            batch.num_rows()
        )));
    }
    let id_index = schema.index_of(axis.integer_id).expect("projected above");
    let ids = to_i64(
        batch.column(id_index).as_ref(),
        &format!("{}.{}", table.role(), axis.integer_id),
    )?;
    let mut position = vec![u32::MAX; expected_rows];
    for (row, &id) in ids.iter().enumerate() {
        if id < 0 || id as usize >= expected_rows || position[id as usize] != u32::MAX {
            return Err(Error::invalid_schema(format!(
                "table '{}' column {} must hold each id 0..{expected_rows} once; found {id} out of place",
                table.role(),
                axis.integer_id
            )));
        }
        position[id as usize] = row as u32;
    }
    let sorted = if position.iter().enumerate().all(|(i, &p)| p as usize == i) {
        batch
    } else {
        take_record_batch(&batch, &UInt32Array::from(position))
            .map_err(|e| Error::storage(format!("sorting table '{}'", table.role()), e))?
    };
    let keep: Vec<usize> = columns
        .iter()
        .map(|c| sorted.schema().index_of(c).expect("projected above"))
        .collect();
    sorted
        .project(&keep)
        .map_err(|e| Error::storage(format!("projecting table '{}'", table.role()), e))
}
