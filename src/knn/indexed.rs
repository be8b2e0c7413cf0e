//! Search through a Lance vector index: all queries in one plan, so Lance reads each probed
//! partition once for the whole batch.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type};
use arrow_array::{FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field};
use futures::TryStreamExt;

use super::{Neighbours, Request, DEFAULT_NPROBES};
use crate::columns::extend_ids;
use crate::error::{Error, Result};
use crate::table::Table;

/// One result row: query position, distance, neighbour id.
type Hit = (u32, f32, u32);

/// How many IVF partitions a scan probes.
#[derive(Debug, Clone, Copy)]
enum Probing {
    /// Exactly this many: Lance's batch path (one pass over the probed partitions).
    Fixed(usize),
    /// This many first, more while fewer than k candidates were found (per query in Lance).
    Expanding(usize),
}

/// The `search.k` nearest rows to each query vector, through the index on the key.
///
/// Lance's own default starts from half of the partitions; here every query probes
/// `search.nprobes` (or [`DEFAULT_NPROBES`]). A filter may leave fewer than k candidates in
/// those: the queries that came back short are searched again, probing more partitions.
pub(super) async fn search(table: &Table, request: &Request<'_>) -> Result<Neighbours> {
    let Request {
        queries,
        n_queries,
        width,
        search,
        ..
    } = *request;
    let nprobes = search.nprobes.unwrap_or(DEFAULT_NPROBES);
    let mut hits = scan(table, request, queries.to_vec(), Probing::Fixed(nprobes)).await?;
    if search.filter.is_some() {
        let mut found = vec![0usize; n_queries];
        for hit in &hits {
            found[hit.0 as usize] += 1;
        }
        let short: Vec<usize> = (0..n_queries).filter(|&q| found[q] < search.k).collect();
        if !short.is_empty() {
            let vectors = short
                .iter()
                .flat_map(|&q| queries[q * width..(q + 1) * width].iter().copied())
                .collect();
            let again = scan(table, request, vectors, Probing::Expanding(nprobes)).await?;
            hits.retain(|hit| found[hit.0 as usize] >= search.k);
            hits.extend(
                again
                    .into_iter()
                    .map(|(q, distance, id)| (short[q as usize] as u32, distance, id)),
            );
        }
    }
    hits.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    Ok(Neighbours {
        queries: hits.iter().map(|h| h.0).collect(),
        ids: hits.iter().map(|h| h.2).collect(),
        distances: hits.iter().map(|h| h.1).collect(),
        metric: Some(request.metric),
        indexed: true,
    })
}

/// One Lance vector search of `vectors` (one after another, in place of the request's
/// queries); hits name the query by its position in `vectors`.
async fn scan(
    table: &Table,
    request: &Request<'_>,
    vectors: Vec<f32>,
    probing: Probing,
) -> Result<Vec<Hit>> {
    let Request {
        what,
        key,
        width,
        metric,
        search,
        ..
    } = *request;
    let values = Arc::new(Float32Array::from(vectors));
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let batch = FixedSizeListArray::try_new(item, width as i32, values, None)
        .map_err(|e| Error::invalid_argument(format!("query vectors: {e}")))?;
    let failed = |e: lance::Error| {
        Error::invalid_argument(format!(
            "searching {}[{key:?}] of table '{}': {e}",
            what.section(),
            table.role()
        ))
    };
    let mut scanner = table.lance().scan();
    scanner.nearest(key, &batch, search.k).map_err(failed)?;
    scanner.distance_metric(metric.lance());
    match probing {
        Probing::Fixed(n) => {
            scanner.nprobes(n);
        }
        Probing::Expanding(n) => {
            scanner.minimum_nprobes(n);
            scanner.search_effort(0.0).map_err(failed)?;
        }
    }
    if let Some(r) = search.refine {
        scanner.refine(r);
    }
    scanner.prefilter(true);
    if let Some(filter) = &search.filter {
        scanner.filter(filter).map_err(failed)?;
    }
    scanner
        .project(&[what.id_column(), "_distance"])
        .map_err(failed)?;
    scanner.disable_scoring_autoprojection();
    let stream = scanner.try_into_stream().await.map_err(failed)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(failed)?;
    let mut hits = Vec::new();
    for batch in &batches {
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                Error::invalid_schema(format!(
                    "searching {}[{key:?}]: Lance returned no column {name:?}",
                    what.section()
                ))
            })
        };
        let mut ids = Vec::with_capacity(batch.num_rows());
        extend_ids(
            &mut ids,
            column(what.id_column())?.as_ref(),
            what.id_column(),
        )?;
        let distances = column("_distance")?.as_primitive::<Float32Type>();
        let queries = batch
            .column_by_name("query_index")
            .map(|q| q.as_primitive::<Int32Type>());
        for (row, &id) in ids.iter().enumerate() {
            let query = queries.map_or(0, |q| q.value(row) as u32);
            hits.push((query, distances.value(row), id));
        }
    }
    Ok(hits)
}
