//! `slaf_scan(path, table, filter := …, columns := …)`: every row of one table of a dataset,
//! with projection pushdown and one DuckDB thread per fragment.

use duckdb::core::DataChunkHandle;
use duckdb::core::LogicalTypeHandle;
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use slaf::scan::{table_of, Scan, ScanTable};
use slaf::slice::open_shared_with;

use crate::params::{self, BoxError};
use crate::types::{write_column, Kind};
use crate::{bind_data_of, CHUNK_ROWS};

pub struct ScanBind {
    table: ScanTable,
    /// Output columns: stored name and how it is written.
    columns: Vec<(String, Kind)>,
    filter: Option<String>,
}

pub struct ScanInit {
    scan: Scan,
    /// For each output vector, the column of the scanned batches it comes from (`None`: a
    /// column DuckDB asked for that is not stored, e.g. the row id).
    sources: Vec<Option<(usize, Kind)>>,
}

pub struct SlafScan;

impl VTab for SlafScan {
    type BindData = ScanBind;
    type InitData = ScanInit;

    fn bind(bind: &BindInfo) -> Result<ScanBind, BoxError> {
        let path = params::positional_string(bind, 0, "slaf_scan: path")?;
        let table_name = params::positional_string(bind, 1, "slaf_scan: table")?;
        let filter = params::named_string(bind, "filter")?;
        let wanted = params::named_strings(bind, "columns")?;
        let shared = open_shared_with(&path, params::named_storage_options(bind)?)?;
        let table = table_of(shared.dataset(), &table_name)?;
        let schema = table.schema().clone();
        let fields: Vec<&arrow_schema::Field> = match &wanted {
            None => schema.fields().iter().map(|f| f.as_ref()).collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    schema.field_with_name(n).map_err(|_| {
                        let known: Vec<&str> =
                            schema.fields().iter().map(|f| f.name().as_str()).collect();
                        format!(
                            "slaf_scan: table {table_name:?} has no column {n:?} (columns: {})",
                            known.join(", ")
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut columns = Vec::with_capacity(fields.len());
        for field in fields {
            let kind =
                Kind::of(field).map_err(|e| format!("slaf_scan: table {table_name:?}: {e}"))?;
            bind.add_result_column(field.name(), kind.logical_type());
            columns.push((field.name().clone(), kind));
        }
        // Fails now on a malformed predicate rather than mid-scan.
        Scan::new(&table, &[], filter.as_deref())?;
        let rows = table.num_rows();
        bind.set_cardinality(rows, filter.is_none());
        Ok(ScanBind {
            table,
            columns,
            filter,
        })
    }

    fn init(init: &InitInfo) -> Result<ScanInit, BoxError> {
        let bind = bind_data_of::<ScanBind>(init);
        let mut projected: Vec<&str> = Vec::new();
        let mut sources = Vec::new();
        for index in init.get_column_indices() {
            match bind.columns.get(index as usize) {
                Some((name, kind)) => {
                    sources.push(Some((projected.len(), kind.clone())));
                    projected.push(name);
                }
                None => sources.push(None),
            }
        }
        let scan = Scan::new(&bind.table, &projected, bind.filter.as_deref())?;
        init.set_max_threads(scan.num_fragments().max(1) as u64);
        Ok(ScanInit { scan, sources })
    }

    fn func(func: &TableFunctionInfo<Self>, output: &mut DataChunkHandle) -> Result<(), BoxError> {
        let init = func.get_init_data();
        match init.scan.next_batch(CHUNK_ROWS)? {
            None => output.set_len(0),
            Some(batch) => {
                for (col, source) in init.sources.iter().enumerate() {
                    if let Some((index, kind)) = source {
                        write_column(output, col, kind, batch.column(*index))?;
                    }
                }
                output.set_len(batch.num_rows());
            }
        }
        Ok(())
    }

    fn supports_pushdown() -> bool {
        true
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![params::varchar(), params::varchar()])
    }

    fn named_parameters() -> Option<Vec<(String, LogicalTypeHandle)>> {
        Some(vec![
            ("storage_options".into(), params::varchar_map()),
            ("filter".into(), params::varchar()),
            ("columns".into(), params::varchar_list()),
        ])
    }
}
