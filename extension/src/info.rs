//! `slaf_info(path)`: one row describing a dataset (shape, format version, nnz, tables, layers,
//! obsm/varm/obsp/varp keys).

use std::sync::atomic::{AtomicBool, Ordering};

use duckdb::core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use slaf::slice::open_shared_with;
use slaf::Info;

use crate::params::{self, BoxError};
use crate::types::copy_slice;

pub struct InfoBind {
    info: Info,
}

pub struct InfoInit {
    done: AtomicBool,
}

enum Col {
    Text(fn(&Info) -> String),
    Count(fn(&Info) -> u64),
    Real(fn(&Info) -> f64),
    Names(fn(&Info) -> Vec<String>),
}

fn columns() -> Vec<(&'static str, Col)> {
    fn keys(k: &[(String, usize)]) -> Vec<String> {
        k.iter().map(|(k, _)| k.clone()).collect()
    }
    vec![
        ("path", Col::Text(|i| i.uri.clone())),
        ("format_version", Col::Text(|i| i.format_version.clone())),
        ("n_cells", Col::Count(|i| i.n_cells as u64)),
        ("n_genes", Col::Count(|i| i.n_genes as u64)),
        ("nnz", Col::Count(|i| i.nnz)),
        (
            "density",
            Col::Real(|i| {
                let total = i.n_cells as f64 * i.n_genes as f64;
                if total > 0.0 {
                    i.nnz as f64 / total
                } else {
                    0.0
                }
            }),
        ),
        ("value_type", Col::Text(|i| i.value_type.to_string())),
        (
            "expression_fragments",
            Col::Count(|i| i.expression_fragments as u64),
        ),
        (
            "tables",
            Col::Names(|i| i.tables.iter().map(|(k, _)| k.clone()).collect()),
        ),
        ("layers", Col::Names(|i| i.layers.clone())),
        ("obsm", Col::Names(|i| keys(&i.obsm))),
        ("varm", Col::Names(|i| keys(&i.varm))),
        ("obsp", Col::Names(|i| i.obsp.clone())),
        ("varp", Col::Names(|i| i.varp.clone())),
        ("vector_indexes", Col::Names(|i| i.vector_indexes.clone())),
        ("gene_major", Col::Text(|i| i.gene_major.clone())),
    ]
}

pub struct SlafInfo;

impl VTab for SlafInfo {
    type BindData = InfoBind;
    type InitData = InfoInit;

    fn bind(bind: &BindInfo) -> Result<InfoBind, BoxError> {
        let path = params::positional_string(bind, 0, "slaf_info: path")?;
        let info = open_shared_with(&path, params::named_storage_options(bind)?)?
            .dataset()
            .info();
        for (name, col) in columns() {
            let ty = match col {
                Col::Text(_) => LogicalTypeHandle::from(LogicalTypeId::Varchar),
                Col::Count(_) => LogicalTypeHandle::from(LogicalTypeId::Bigint),
                Col::Real(_) => LogicalTypeHandle::from(LogicalTypeId::Double),
                Col::Names(_) => LogicalTypeHandle::list(&params::varchar()),
            };
            bind.add_result_column(name, ty);
        }
        Ok(InfoBind { info })
    }

    fn init(_: &InitInfo) -> Result<InfoInit, BoxError> {
        Ok(InfoInit {
            done: AtomicBool::new(false),
        })
    }

    fn func(func: &TableFunctionInfo<Self>, output: &mut DataChunkHandle) -> Result<(), BoxError> {
        if func.get_init_data().done.swap(true, Ordering::Relaxed) {
            output.set_len(0);
            return Ok(());
        }
        let info = &func.get_bind_data().info;
        for (col, (_, kind)) in columns().into_iter().enumerate() {
            match kind {
                Col::Text(f) => output.flat_vector(col).insert(0, f(info).as_str()),
                Col::Count(f) => copy_slice(&mut output.flat_vector(col), &[f(info) as i64]),
                Col::Real(f) => copy_slice(&mut output.flat_vector(col), &[f(info)]),
                Col::Names(f) => {
                    let names = f(info);
                    let mut list = output.list_vector(col);
                    let child = list.child(names.len());
                    for (i, name) in names.iter().enumerate() {
                        child.insert(i, name.as_str());
                    }
                    list.set_entry(0, 0, names.len());
                    list.set_len(names.len());
                }
            }
        }
        output.set_len(1);
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![params::varchar()])
    }

    fn named_parameters() -> Option<Vec<(String, LogicalTypeHandle)>> {
        Some(vec![("storage_options".into(), params::varchar_map())])
    }
}
