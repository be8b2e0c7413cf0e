//! `slaf_slice(path, cells := …, genes := …, cell_filter := …, gene_filter := …, layer := …)`:
//! a submatrix as long rows `(cell_integer_id, gene_integer_id, cell_id, gene_id, value)`.

use duckdb::core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use slaf::slice::{open_shared_with, Selection, SliceScan};
use slaf::Values;

use crate::params::{self, BoxError};
use crate::types::copy_slice;
use crate::{bind_data_of, CHUNK_ROWS};

const COLUMNS: [&str; 5] = [
    "cell_integer_id",
    "gene_integer_id",
    "cell_id",
    "gene_id",
    "value",
];

pub struct SliceBind {
    scan: SliceScan,
}

pub struct SliceInit {
    /// Which of [`COLUMNS`] each output vector holds (`None`: not a stored column).
    columns: Vec<Option<usize>>,
}

pub struct SlafSlice;

impl VTab for SlafSlice {
    type BindData = SliceBind;
    type InitData = SliceInit;

    fn bind(bind: &BindInfo) -> Result<SliceBind, BoxError> {
        let path = params::positional_string(bind, 0, "slaf_slice: path")?;
        let selection = Selection {
            cells: params::named_selector(bind, "cells")?,
            genes: params::named_selector(bind, "genes")?,
            cell_filter: params::named_string(bind, "cell_filter")?,
            gene_filter: params::named_string(bind, "gene_filter")?,
        };
        let layer = params::named_string(bind, "layer")?;
        let shared = open_shared_with(&path, params::named_storage_options(bind)?)?;
        let scan = SliceScan::new(shared, &selection, layer.as_deref())?;
        let value_type = if scan.values_are_f64() {
            LogicalTypeId::Double
        } else {
            LogicalTypeId::Float
        };
        let types = [
            LogicalTypeId::UInteger,
            LogicalTypeId::UInteger,
            LogicalTypeId::Varchar,
            LogicalTypeId::Varchar,
            value_type,
        ];
        for (name, ty) in COLUMNS.iter().zip(types) {
            bind.add_result_column(name, LogicalTypeHandle::from(ty));
        }
        Ok(SliceBind { scan })
    }

    fn init(init: &InitInfo) -> Result<SliceInit, BoxError> {
        let bind = bind_data_of::<SliceBind>(init);
        let columns: Vec<Option<usize>> = init
            .get_column_indices()
            .into_iter()
            .map(|i| (i < COLUMNS.len() as u64).then_some(i as usize))
            .collect();
        // Names are loaded once per dataset, before the threads start.
        if columns.contains(&Some(2)) {
            bind.scan.shared().cell_names()?;
        }
        if columns.contains(&Some(3)) {
            bind.scan.shared().gene_names()?;
        }
        init.set_max_threads(slaf::slice::SLICE_PARALLEL_CHUNKS as u64);
        Ok(SliceInit { columns })
    }

    fn func(func: &TableFunctionInfo<Self>, output: &mut DataChunkHandle) -> Result<(), BoxError> {
        let scan = &func.get_bind_data().scan;
        let Some(rows) = scan.next_rows(CHUNK_ROWS)? else {
            output.set_len(0);
            return Ok(());
        };
        for (col, column) in func.get_init_data().columns.iter().enumerate() {
            let mut vector = output.flat_vector(col);
            match column {
                Some(0) => copy_slice(&mut vector, &rows.cell_integer_id),
                Some(1) => copy_slice(&mut vector, &rows.gene_integer_id),
                Some(2) => {
                    let names = scan.shared().cell_names()?;
                    for (row, &id) in rows.cell_integer_id.iter().enumerate() {
                        vector.insert(row, names.value(id as usize));
                    }
                }
                Some(3) => {
                    let names = scan.shared().gene_names()?;
                    for (row, &id) in rows.gene_integer_id.iter().enumerate() {
                        vector.insert(row, names.value(id as usize));
                    }
                }
                Some(_) => match &rows.value {
                    Values::F32(v) => copy_slice(&mut vector, v),
                    Values::F64(v) => copy_slice(&mut vector, v),
                },
                None => {}
            }
        }
        output.set_len(rows.len());
        Ok(())
    }

    fn supports_pushdown() -> bool {
        true
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![params::varchar()])
    }

    fn named_parameters() -> Option<Vec<(String, LogicalTypeHandle)>> {
        Some(vec![
            ("storage_options".into(), params::varchar_map()),
            ("cells".into(), params::any()),
            ("genes".into(), params::any()),
            ("cell_filter".into(), params::varchar()),
            ("gene_filter".into(), params::varchar()),
            ("layer".into(), params::varchar()),
        ])
    }
}
