//! The gene-major companion returns exactly what the cell-major table does, for any selection,
//! and is never read once an append has made it stale.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use slaf::gene_major::Status;
use slaf::writer::{CsrChunk, NewDataset, ValueType, Writer};
use slaf::{Axis, Dataset, Layout, Resolved};

const N_GENES: usize = 40;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slaf-gene-major-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small deterministic generator (the tests need reproducible, irregular data).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn names(column: &str, prefix: &str, n: usize) -> RecordBatch {
    let values: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    RecordBatch::try_from_iter(vec![(
        column,
        Arc::new(StringArray::from(values)) as arrow_array::ArrayRef,
    )])
    .unwrap()
}

/// `n` random cells: every fifth cell is empty, genes 30.. are never expressed, the others
/// are expressed with probability 1/3 and counts 1..=9.
fn random_cells(rng: &mut Lcg, n: usize) -> (CsrChunk, Vec<Vec<(i32, f32)>>) {
    let mut indptr = vec![0i64];
    let (mut genes, mut values, mut dense) = (Vec::new(), Vec::new(), Vec::new());
    for cell in 0..n {
        let mut row = Vec::new();
        if cell % 5 != 0 {
            for g in 0..30 {
                if rng.below(3) == 0 {
                    row.push((g, (1 + rng.below(9)) as f32));
                }
            }
        }
        for &(g, v) in &row {
            genes.push(g);
            values.push(v);
        }
        indptr.push(genes.len() as i64);
        dense.push(row);
    }
    let chunk = CsrChunk::new(
        Arc::new(Int64Array::from(indptr)),
        Arc::new(Int32Array::from(genes)),
        Arc::new(arrow_array::Float32Array::from(values)),
    )
    .unwrap();
    (chunk, dense)
}

fn create(path: &str, rng: &mut Lcg, n: usize, gene_index: bool) -> Vec<Vec<(i32, f32)>> {
    let mut writer = Writer::create(
        path,
        NewDataset {
            n_cells: n as u64,
            n_genes: N_GENES,
            value_type: ValueType::UInt16,
            layers: vec![],
            overwrite: false,
            // Several fragments in both tables.
            rows_per_fragment: Some(97),
            storage_options: Default::default(),
        },
    )
    .unwrap();
    writer.set_gene_index(gene_index);
    writer.write_genes(&names("gene_id", "g", N_GENES)).unwrap();
    writer.begin_source("base", n as u64);
    let (chunk, dense) = random_cells(rng, n);
    writer
        .write_cells(&chunk, &names("cell_id", "base", n), &[])
        .unwrap();
    writer.finish().unwrap();
    dense
}

fn append(path: &str, rng: &mut Lcg, n: usize, gene_index: bool) -> Vec<Vec<(i32, f32)>> {
    let mut writer = Writer::append(path).unwrap();
    writer.set_gene_index(gene_index);
    writer.begin_source("more", n as u64);
    let (chunk, dense) = random_cells(rng, n);
    writer
        .write_cells(&chunk, &names("cell_id", "more", n), &[])
        .unwrap();
    writer.finish().unwrap();
    dense
}

/// A random selection of `0..n`: all, or ids in random order with repeats.
fn random_selection(rng: &mut Lcg, n: usize) -> Resolved {
    match rng.below(4) {
        0 => Resolved::All(n),
        _ => {
            let k = 1 + rng.below(n as u64 / 2) as usize;
            Resolved::Ids((0..k).map(|_| rng.below(n as u64) as u32).collect())
        }
    }
}

fn assert_layouts_agree(ds: &Dataset, rng: &mut Lcg, rounds: usize) {
    let (n_cells, n_genes) = ds.shape();
    for _ in 0..rounds {
        let cells = random_selection(rng, n_cells);
        let genes = random_selection(rng, n_genes);
        let by_cell = ds.submatrix_in(&cells, &genes, Layout::CellMajor).unwrap();
        let by_gene = ds.submatrix_in(&cells, &genes, Layout::GeneMajor).unwrap();
        assert_eq!(by_cell, by_gene, "cells {cells:?} genes {genes:?}");
        assert_eq!(ds.submatrix_resolved(&cells, &genes).unwrap(), by_cell);
    }
}

fn column_f64(batch: &RecordBatch, name: &str) -> Vec<f64> {
    let column = arrow::compute::cast(
        batch.column_by_name(name).unwrap(),
        &arrow_schema::DataType::Float64,
    )
    .unwrap();
    let column = column.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(column.null_count(), 0);
    column.values().to_vec()
}

fn assert_stats_match(ds: &Dataset, dense: &[Vec<(i32, f32)>]) {
    let cells = ds.axis_stats(Axis::Cells).unwrap().unwrap();
    let genes = ds.axis_stats(Axis::Genes).unwrap().unwrap();
    let totals: Vec<f64> = dense
        .iter()
        .map(|row| row.iter().map(|&(_, v)| v as f64).sum())
        .collect();
    let n_genes: Vec<f64> = dense.iter().map(|row| row.len() as f64).collect();
    assert_eq!(column_f64(&cells, "slaf_total_counts"), totals);
    assert_eq!(column_f64(&cells, "slaf_n_genes_by_counts"), n_genes);
    let mut gene_totals = vec![0f64; N_GENES];
    let mut gene_cells = vec![0f64; N_GENES];
    let mut squares = vec![0f64; N_GENES];
    for row in dense {
        for &(g, v) in row {
            gene_totals[g as usize] += v as f64;
            gene_cells[g as usize] += 1.0;
            squares[g as usize] += (v as f64) * (v as f64);
        }
    }
    let means: Vec<f64> = gene_totals.iter().map(|t| t / dense.len() as f64).collect();
    assert_eq!(column_f64(&genes, "slaf_total_counts"), gene_totals);
    assert_eq!(column_f64(&genes, "slaf_n_cells_by_counts"), gene_cells);
    assert_eq!(column_f64(&genes, "slaf_sum_squares"), squares);
    for (got, want) in column_f64(&genes, "slaf_mean").iter().zip(&means) {
        assert!((got - want).abs() < 1e-9, "{got} != {want}");
    }
}

#[test]
fn gene_major_reads_equal_cell_major_reads_for_random_selections() {
    let dir = scratch("random");
    let path = dir.join("ds.slaf").to_string_lossy().into_owned();
    let mut rng = Lcg(7);
    let dense = create(&path, &mut rng, 230, true);
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.gene_major_status(), Status::Fresh);
    assert_layouts_agree(&ds, &mut rng, 60);
    assert_stats_match(&ds, &dense);
    // The statistics and the start index are not annotations.
    let obs = ds.obs().unwrap();
    let var = ds.var().unwrap();
    assert!(obs
        .schema()
        .fields()
        .iter()
        .all(|f| !f.name().starts_with("slaf_")));
    assert!(var
        .schema()
        .fields()
        .iter()
        .all(|f| !f.name().starts_with("slaf_")));
    // Whole cells, or a single cell, read cell-major (the planner's cost model itself is
    // tested in `layout`).
    let few = Resolved::Ids(vec![3, 17]);
    assert_eq!(
        ds.layout_for(&Resolved::All(230), &Resolved::All(N_GENES))
            .unwrap(),
        Layout::CellMajor
    );
    assert_eq!(
        ds.layout_for(&Resolved::Ids(vec![4]), &few).unwrap(),
        Layout::CellMajor
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_append_rebuilds_the_companion_or_leaves_it_stale_and_unread() {
    let dir = scratch("append");
    let path = dir.join("ds.slaf").to_string_lossy().into_owned();
    let mut rng = Lcg(11);
    let mut dense = create(&path, &mut rng, 120, true);

    dense.extend(append(&path, &mut rng, 45, true));
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.gene_major_status(), Status::Fresh);
    assert_eq!(ds.shape().0, 165);
    assert_layouts_agree(&ds, &mut rng, 30);
    assert_stats_match(&ds, &dense);

    append(&path, &mut rng, 30, false);
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.gene_major_status(), Status::Stale);
    assert!(ds.axis_stats(Axis::Cells).unwrap().is_none());
    let few = Resolved::Ids(vec![1]);
    let all = Resolved::All(ds.shape().0);
    assert_eq!(ds.layout_for(&all, &few).unwrap(), Layout::CellMajor);
    let err = ds.submatrix_in(&all, &few, Layout::GeneMajor).unwrap_err();
    assert!(err.to_string().contains("stale"), "{err}");
    // The stale companion is not used, and cell-major reads see the appended cells.
    let read = ds
        .submatrix_resolved(&all, &Resolved::All(N_GENES))
        .unwrap();
    assert_eq!(read.n_rows, 195);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_dataset_written_without_the_companion_reads_cell_major() {
    let dir = scratch("absent");
    let path = dir.join("ds.slaf").to_string_lossy().into_owned();
    let mut rng = Lcg(3);
    create(&path, &mut rng, 50, false);
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.gene_major_status(), Status::Absent);
    assert!(ds.axis_stats(Axis::Genes).unwrap().is_none());
    assert!(!dir.join("ds.slaf/expression_by_gene.lance").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn indexing_an_existing_dataset_builds_a_fresh_companion() {
    let dir = scratch("index");
    let path = dir.join("ds.slaf").to_string_lossy().into_owned();
    let mut rng = Lcg(5);
    let mut dense = create(&path, &mut rng, 90, false);
    slaf::gene_major::index_gene_major(&path, None).unwrap();
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.gene_major_status(), Status::Fresh);
    assert_layouts_agree(&ds, &mut rng, 20);
    assert_stats_match(&ds, &dense);

    // Stale after an append without it, fresh again once indexed.
    dense.extend(append(&path, &mut rng, 25, false));
    assert_eq!(
        Dataset::open(&path).unwrap().gene_major_status(),
        Status::Stale
    );
    // The progress it reports: from 0 to every row read and written once each.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let progress: slaf::progress::Progress =
        std::sync::Arc::new(move |done, total| sink.lock().unwrap().push((done, total)));
    slaf::gene_major::index_gene_major(&path, Some(&progress)).unwrap();
    let seen = seen.lock().unwrap();
    let rows = dense.iter().map(Vec::len).sum::<usize>() as u64;
    assert_eq!(seen.first(), Some(&(0, 2 * rows)));
    assert_eq!(seen.last(), Some(&(2 * rows, 2 * rows)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.gene_major_status(), Status::Fresh);
    assert_layouts_agree(&ds, &mut rng, 20);
    assert_stats_match(&ds, &dense);
    std::fs::remove_dir_all(dir).unwrap();
}
