//! Writes are transactions: concurrent appends all land, one after the other, and readers
//! opening meanwhile always see tables that match config.json.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_array::{Float32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use slaf::writer::{CsrChunk, NewDataset, ValueType, Writer};
use slaf::Dataset;

const N_GENES: usize = 4;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slaf-writes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names(column: &str, prefix: &str, n: usize) -> RecordBatch {
    let values: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    RecordBatch::try_from_iter(vec![(
        column,
        Arc::new(StringArray::from(values)) as arrow_array::ArrayRef,
    )])
    .unwrap()
}

/// `n` cells, cell `i` holding one count at gene `i % N_GENES`.
fn cells(n: usize) -> CsrChunk {
    CsrChunk::new(
        Arc::new(Int64Array::from_iter_values(0..=n as i64)),
        Arc::new(Int32Array::from_iter_values(
            (0..n).map(|i| (i % N_GENES) as i32),
        )),
        Arc::new(Float32Array::from(vec![1.0; n])),
    )
    .unwrap()
}

fn create(path: &str, n: usize) {
    let mut writer = Writer::create(
        path,
        NewDataset {
            n_cells: n as u64,
            n_genes: N_GENES,
            value_type: ValueType::UInt16,
            layers: vec![],
            overwrite: false,
            rows_per_fragment: None,
            storage_options: Default::default(),
        },
    )
    .unwrap();
    writer.write_genes(&names("gene_id", "g", N_GENES)).unwrap();
    writer.begin_source("base", n as u64);
    writer
        .write_cells(&cells(n), &names("cell_id", "base", n), &[])
        .unwrap();
    writer.finish().unwrap();
}

/// Fails when what a reader opens disagrees with its config.
fn check_consistent(path: &str) {
    let ds = Dataset::open(path).unwrap();
    let (n_cells, _) = ds.shape();
    assert_eq!(ds.obs().unwrap().num_rows(), n_cells);
    assert_eq!(ds.config().expression_count(), Some(ds.nnz()));
    assert_eq!(ds.nnz(), n_cells as u64);
}

#[test]
fn concurrent_appends_all_land_and_readers_see_consistent_versions() {
    let dir = scratch("concurrent");
    let path = dir.join("ds.slaf").to_string_lossy().into_owned();
    create(&path, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads < 3 {
                    check_consistent(&path);
                    reads += 1;
                }
            })
        })
        .collect();
    let sizes = [5usize, 2, 7, 4];
    let writers: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut writer = Writer::append(&path).unwrap();
                writer.begin_source(&format!("in{k}"), n as u64);
                writer
                    .write_cells(&cells(n), &names("cell_id", &format!("in{k}_"), n), &[])
                    .unwrap();
                writer.finish().unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.shape().0, 3 + sizes.iter().sum::<usize>());
    let obs = ds.obs().unwrap();
    let ids = obs
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let mut seen: Vec<&str> = ids.iter().map(Option::unwrap).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), ds.shape().0, "a cell appears twice");
    check_consistent(&path);
    // Each append rebuilt the gene-major companion under the lock: it describes them all.
    assert_eq!(ds.gene_major_status(), slaf::gene_major::Status::Fresh);
    let stats = ds.axis_stats(slaf::Axis::Cells).unwrap().unwrap();
    assert_eq!(stats.num_rows(), ds.shape().0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_append_through_a_symlink_updates_the_dataset_it_points_to() {
    let dir = scratch("symlink");
    let real = dir.join("real.slaf");
    let link = dir.join("link.slaf");
    create(&real.to_string_lossy(), 2);
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut writer = Writer::append(&link.to_string_lossy()).unwrap();
    writer.begin_source("more", 3);
    writer
        .write_cells(&cells(3), &names("cell_id", "more", 3), &[])
        .unwrap();
    writer.finish().unwrap();
    assert!(link.is_symlink());
    assert_eq!(Dataset::open(&real.to_string_lossy()).unwrap().shape().0, 5);
    std::fs::remove_dir_all(&dir).unwrap();
}
