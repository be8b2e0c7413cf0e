//! `layers.lance`: extra cells × genes matrices (`counts`, `spliced`, ...) stored as one wide
//! table — `cell_integer_id`, `gene_integer_id`, one nullable column per layer. A row whose
//! layer column is null (or zero, as slafdb's dense layer writer leaves them) is not an entry of
//! that layer. Rows are grouped by cell like the expression table; their row index is derived
//! from the table itself once, since the format stores none for layers.

use arrow::compute::{filter_record_batch, is_not_null};

use crate::columns::{extend_ids, retain, Values};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::matrix::CellRows;
use crate::start_index::StartIndex;
use crate::table::Table;

const CELL_COLUMN: &str = "cell_integer_id";
const GENE_COLUMN: &str = "gene_integer_id";

/// The layers table with its per-cell row index.
pub(crate) struct LayerTable {
    table: Table,
    index: StartIndex,
}

impl LayerTable {
    pub async fn open(
        location: &Location,
        relative: &str,
        version: Option<u64>,
        n_cells: usize,
    ) -> Result<Self> {
        let table = Table::open(location, "layers", relative, version).await?;
        table.require_column(CELL_COLUMN)?;
        table.require_column(GENE_COLUMN)?;
        let index = StartIndex::derive(&table, CELL_COLUMN, n_cells).await?;
        Ok(Self { table, index })
    }

    /// The stored entries of layer `name` for `cells` (ascending, unique).
    pub async fn read(&self, name: &str, cells: Vec<u32>) -> Result<CellRows> {
        let value_type = self
            .table
            .column_type(name)
            .cloned()
            .filter(|_| name != CELL_COLUMN && name != GENE_COLUMN);
        let Some(value_type) = value_type else {
            let known: Vec<&str> = self
                .table
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| *n != CELL_COLUMN && *n != GENE_COLUMN)
                .collect();
            return Err(Error::unknown_key("layer", name, &known));
        };
        let what = format!("layers.{name}");
        let (ranges, _) = self.index.ranges_of(&cells);
        let batches = self
            .table
            .read_ranges(&ranges, &[CELL_COLUMN, GENE_COLUMN, name])
            .await?;
        let (mut cell_ids, mut genes) = (Vec::new(), Vec::new());
        let mut values = Values::for_type(&value_type, &what)?;
        for batch in &batches {
            let present = is_not_null(batch.column(2))
                .map_err(|e| Error::storage(format!("reading {what}"), e))?;
            let batch = filter_record_batch(batch, &present)
                .map_err(|e| Error::storage(format!("reading {what}"), e))?;
            extend_ids(&mut cell_ids, batch.column(0), "layers.cell_integer_id")?;
            extend_ids(&mut genes, batch.column(1), "layers.gene_integer_id")?;
            values.extend(batch.column(2), &what)?;
        }
        let keep = values.nonzero_mask();
        let (cell_ids, genes, values) = (
            retain(cell_ids, &keep),
            retain(genes, &keep),
            values.retain(&keep),
        );
        // Rows come in ascending cell order: count each selected cell's entries.
        let mut offsets = Vec::with_capacity(cells.len() + 1);
        let mut k = 0;
        offsets.push(0);
        for &cell in &cells {
            while k < cell_ids.len() && cell_ids[k] == cell {
                k += 1;
            }
            offsets.push(k);
        }
        Ok(CellRows {
            cells,
            offsets,
            genes,
            values,
        })
    }
}
