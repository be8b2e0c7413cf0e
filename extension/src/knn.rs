//! `slaf_knn(path, section, key, vector, k := …, filter := …, nprobes := …, refine := …,
//! metric := …, exact := …)`: the `k` cells (`'obsm'`) or genes (`'varm'`) nearest to one
//! query vector, as rows `(rank, <axis>_integer_id, <axis>_id, distance)`.

use std::sync::atomic::{AtomicUsize, Ordering};

use duckdb::core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use slaf::knn::{Embedding, Metric, Neighbours, Search};
use slaf::slice::{open_shared_with, SharedDataset};
use std::sync::Arc;

use crate::params::{self, BoxError};
use crate::types::copy_slice;
use crate::CHUNK_ROWS;

pub struct KnnBind {
    shared: Arc<SharedDataset>,
    what: Embedding,
    hits: Neighbours,
}

pub struct KnnInit {
    next: AtomicUsize,
}

pub struct SlafKnn;

/// The query vector: a list of numbers (DuckDB casts DECIMAL, FLOAT and array literals to the
/// declared DOUBLE[]).
fn query_vector(bind: &BindInfo) -> Result<Vec<f32>, BoxError> {
    let value = bind.get_parameter(3);
    let items = value
        .to_list()
        .ok_or("slaf_knn: the query vector must be a list of numbers, e.g. [0.1, 0.3, …]")?;
    if items.iter().any(|v| v.is_null()) {
        return Err("slaf_knn: the query vector contains NULL".into());
    }
    Ok(items.iter().map(|v| v.to_double() as f32).collect())
}

impl VTab for SlafKnn {
    type BindData = KnnBind;
    type InitData = KnnInit;

    fn bind(bind: &BindInfo) -> Result<KnnBind, BoxError> {
        let path = params::positional_string(bind, 0, "slaf_knn: path")?;
        let section = params::positional_string(bind, 1, "slaf_knn: section")?;
        let key = params::positional_string(bind, 2, "slaf_knn: key")?;
        let what = Embedding::parse(&section)?;
        let query = query_vector(bind)?;
        let metric = params::named_string(bind, "metric")?
            .as_deref()
            .map(Metric::parse)
            .transpose()?;
        let search = Search {
            k: params::named_count(bind, "k")?.unwrap_or(15),
            filter: params::named_string(bind, "filter")?,
            nprobes: params::named_count(bind, "nprobes")?,
            refine: params::named_count(bind, "refine")?
                .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
            metric,
            exact: params::named_bool(bind, "exact")?.unwrap_or(false),
        };
        let shared = open_shared_with(&path, params::named_storage_options(bind)?)?;
        let hits = shared.dataset().nearest(what, &key, &query, &search)?;
        bind.add_result_column("rank", LogicalTypeHandle::from(LogicalTypeId::Bigint));
        bind.add_result_column(
            what.id_column(),
            LogicalTypeHandle::from(LogicalTypeId::UInteger),
        );
        bind.add_result_column(
            what.name_column(),
            LogicalTypeHandle::from(LogicalTypeId::Varchar),
        );
        bind.add_result_column("distance", LogicalTypeHandle::from(LogicalTypeId::Float));
        Ok(KnnBind { shared, what, hits })
    }

    fn init(_: &InitInfo) -> Result<KnnInit, BoxError> {
        Ok(KnnInit {
            next: AtomicUsize::new(0),
        })
    }

    fn func(func: &TableFunctionInfo<Self>, output: &mut DataChunkHandle) -> Result<(), BoxError> {
        let bind = func.get_bind_data();
        let total = bind.hits.ids.len();
        let start = func
            .get_init_data()
            .next
            .fetch_add(CHUNK_ROWS, Ordering::Relaxed)
            .min(total);
        let end = (start + CHUNK_ROWS).min(total);
        let ids = &bind.hits.ids[start..end];
        let ranks: Vec<i64> = (start as i64 + 1..=end as i64).collect();
        copy_slice(&mut output.flat_vector(0), &ranks);
        copy_slice(&mut output.flat_vector(1), ids);
        let names = match bind.what {
            Embedding::Obsm => bind.shared.cell_names()?,
            Embedding::Varm => bind.shared.gene_names()?,
        };
        let name_vector = output.flat_vector(2);
        for (row, &id) in ids.iter().enumerate() {
            name_vector.insert(row, names.value(id as usize));
        }
        copy_slice(&mut output.flat_vector(3), &bind.hits.distances[start..end]);
        output.set_len(end - start);
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![
            params::varchar(),
            params::varchar(),
            params::varchar(),
            LogicalTypeHandle::list(&LogicalTypeHandle::from(LogicalTypeId::Double)),
        ])
    }

    fn named_parameters() -> Option<Vec<(String, LogicalTypeHandle)>> {
        Some(vec![
            ("storage_options".into(), params::varchar_map()),
            ("k".into(), params::bigint()),
            ("filter".into(), params::varchar()),
            ("nprobes".into(), params::bigint()),
            ("refine".into(), params::bigint()),
            ("metric".into(), params::varchar()),
            (
                "exact".into(),
                LogicalTypeHandle::from(LogicalTypeId::Boolean),
            ),
        ])
    }
}
