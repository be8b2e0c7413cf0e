//! Format round trips against the datasets slafdb 0.5.2 wrote (../shared/fixtures), or, without
//! the shared data, against the stand-ins slafdb 0.5.2 wrote from generated sources
//! (`SLAF_GENERATED_FIXTURES`, made by `python tests/python/slafdb_fixtures.py OUT`).

use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt16Type, UInt32Type};
use arrow_array::Array;
use slaf::{Dataset, ErrorKind, Selector, StartIndexSource, Values};

/// Shared fixture -> its generated stand-in (the same shape and kind of content; see
/// `tests/python/slafdb_fixtures.py`).
const STAND_INS: &[(&str, &str)] = &[
    ("mouse_merfish_chunked.slaf", "gen_merfish_chunked.slaf"),
    (
        "pbmc10x_v3_mtx_chunked.slaf",
        "gen_pbmc10x_mtx_chunked.slaf",
    ),
    ("pbmc68k_reduced_inmemory.slaf", "gen_pbmc68k_inmemory.slaf"),
    ("perturb500_chunked.slaf", "gen_perturb500_chunked.slaf"),
    ("perturb500_inmemory.slaf", "gen_perturb500_inmemory.slaf"),
];

/// Where the shared fixtures are (`$SLAF_SHARED`, default `../shared`).
fn shared_dir() -> PathBuf {
    std::env::var("SLAF_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("fixtures/slafdb-0.5.2")
}

/// The shared fixture `name`, or `None` with the reason on stderr when the shared test data
/// is absent (a clone without `../shared`), for checks of a real dataset's own content.
fn shared_fixture(name: &str) -> Option<String> {
    let path = shared_dir().join(name);
    if !path.exists() {
        eprintln!(
            "skipped: needs the shared test data: set SLAF_SHARED (nothing at {})",
            path.display()
        );
        return None;
    }
    Some(path.to_string_lossy().into_owned())
}

/// The shared fixture `name`; without the shared data, its generated stand-in when
/// `SLAF_GENERATED_FIXTURES` names their folder; else `None` with the reason on stderr: such
/// tests skip, everything else runs.
fn fixture(name: &str) -> Option<String> {
    let shared = shared_dir().join(name);
    if shared.exists() {
        return Some(shared.to_string_lossy().into_owned());
    }
    let Ok(generated) = std::env::var("SLAF_GENERATED_FIXTURES") else {
        eprintln!(
            "skipped: needs the shared test data: set SLAF_SHARED (nothing at {}), or \
             SLAF_GENERATED_FIXTURES to the output of tests/python/slafdb_fixtures.py",
            shared.display()
        );
        return None;
    };
    let (_, stand_in) = STAND_INS
        .iter()
        .find(|(real, _)| *real == name)
        .unwrap_or_else(|| panic!("no generated stand-in for {name}"));
    let path = PathBuf::from(generated).join(stand_in);
    assert!(
        path.exists(),
        "SLAF_GENERATED_FIXTURES is set but {} is missing",
        path.display()
    );
    Some(path.to_string_lossy().into_owned())
}

const ALL: &[&str] = &[
    "mouse_merfish_chunked.slaf",
    "pbmc10x_v3_mtx_chunked.slaf",
    "pbmc68k_reduced_inmemory.slaf",
    "perturb500_chunked.slaf",
    "perturb500_inmemory.slaf",
];

/// Dense X built from a full scan of the expression table (the reference for range reads).
fn scanned_dense(ds: &Dataset) -> Vec<f32> {
    let (n, g) = ds.shape();
    let mut dense = vec![0f32; n * g];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let batches = runtime
        .block_on(
            ds.expression_table()
                .scan(&["cell_integer_id", "gene_integer_id", "value"], None),
        )
        .unwrap();
    for batch in batches {
        let cells = batch.column(0).as_primitive::<UInt32Type>();
        let genes = batch.column(1).as_primitive::<UInt16Type>();
        let value = |i: usize| -> f32 {
            let v = batch.column(2);
            match v.data_type() {
                arrow_schema::DataType::UInt16 => v.as_primitive::<UInt16Type>().value(i) as f32,
                _ => v.as_primitive::<Float32Type>().value(i),
            }
        };
        for i in 0..batch.num_rows() {
            dense[cells.value(i) as usize * g + genes.value(i) as usize] = value(i);
        }
    }
    dense
}

#[test]
fn every_fixture_reads_like_a_full_scan() {
    for name in ALL {
        let Some(path) = fixture(name) else { return };
        let ds = Dataset::open(&path).unwrap();
        let (n, g) = ds.shape();
        assert_eq!(Some(ds.nnz()), ds.config().expression_count(), "{name}");
        let expected = scanned_dense(&ds);
        let picks: Vec<i64> = vec![(n - 1) as i64, 0, (n / 2) as i64, 1, (n / 2) as i64];
        let csr = ds
            .submatrix(&Selector::Ids(picks.clone()), &Selector::All)
            .unwrap();
        let Values::F32(data) = &csr.data else {
            panic!("f32 values expected")
        };
        for (row, &cell) in picks.iter().enumerate() {
            let mut dense_row = vec![0f32; g];
            for k in csr.indptr[row] as usize..csr.indptr[row + 1] as usize {
                dense_row[csr.indices[k] as usize] = data[k];
            }
            let start = cell as usize * g;
            assert_eq!(dense_row, expected[start..start + g], "{name} cell {cell}");
        }
    }
}

#[test]
fn stored_start_index_is_verified() {
    // Which offsets slafdb got wrong is a property of the real files: shared data only.
    let (Some(good), Some(bad)) = (
        shared_fixture("mouse_merfish_chunked.slaf"),
        shared_fixture("perturb500_inmemory.slaf"),
    ) else {
        return;
    };
    let good = Dataset::open(&good).unwrap();
    assert_eq!(good.start_index_source().unwrap(), StartIndexSource::Stored);
    // slafdb wrote offsets for this one that do not match its expression rows.
    let bad = Dataset::open(&bad).unwrap();
    assert_eq!(bad.start_index_source().unwrap(), StartIndexSource::Derived);
}

#[test]
fn obs_var_and_embeddings() {
    let Some(path) = fixture("pbmc68k_reduced_inmemory.slaf") else {
        return;
    };
    let ds = Dataset::open(&path).unwrap();
    let obs = ds.obs().unwrap();
    assert_eq!(obs.num_rows(), 700);
    assert_eq!(obs.schema().field(0).name(), "cell_id");
    assert!(obs.column_by_name("cell_start_index").is_none());
    assert!(obs.column_by_name("X_umap").is_none());
    let umap = ds.obsm("X_umap").unwrap();
    assert_eq!((umap.n_rows, umap.n_cols), (700, 2));
    let pcs = ds.varm("PCs").unwrap();
    assert_eq!((pcs.n_rows, pcs.n_cols), (765, 50));
    let conn = ds.obsp("connectivities").unwrap();
    assert_eq!((conn.n_rows, conn.n_cols), (700, 700));
    assert!(conn.nnz() > 0);
    assert_eq!(ds.obsm("nope").unwrap_err().kind(), ErrorKind::UnknownName);
    assert!(ds.uns().unwrap().unwrap().get("louvain").is_some());
    let var = ds.var().unwrap();
    assert_eq!(var.column(0).len(), 765);
}

#[test]
fn info_lists_the_dataset() {
    let Some(path) = fixture("pbmc68k_reduced_inmemory.slaf") else {
        return;
    };
    let ds = Dataset::open(&path).unwrap();
    let text = ds.info().to_string();
    assert!(text.contains("shape: 700 cells × 765 genes"), "{text}");
    assert!(text.contains("obsm: X_pca (50), X_umap (2)"), "{text}");
    assert!(text.contains("obsp: connectivities, distances"), "{text}");
}

#[test]
fn tokenizing_a_gene_selection_rejects_zero_genes() {
    use slaf::slice::{open_shared, Selection};
    use slaf::token_scan::{TokenScan, TokenizerSpec};
    let Some(path) = fixture("perturb500_chunked.slaf") else {
        return;
    };
    let ds = open_shared(&path).unwrap();
    let spec = TokenizerSpec {
        name: "scgpt".into(),
        include_zero_genes: Some(true),
        ..TokenizerSpec::default()
    };
    let some_genes = Selection {
        genes: Selector::Range {
            start: Some(0),
            stop: Some(10),
            step: 1,
        },
        ..Selection::default()
    };
    let err = TokenScan::new(ds.clone(), &some_genes, &spec)
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("include_zero_genes"), "{err}");
    // Zero genes are fine over every gene, and a selection is fine without them.
    assert!(TokenScan::new(ds.clone(), &Selection::default(), &spec).is_ok());
    let plain = TokenizerSpec {
        name: "scgpt".into(),
        ..TokenizerSpec::default()
    };
    let scan = TokenScan::new(ds, &some_genes, &plain).unwrap();
    let batch = scan.next_batch().unwrap().unwrap();
    // <cls> (1), then tokens of genes 0..10 only (4..14), then padding (0).
    assert!(batch
        .input_ids
        .iter()
        .all(|&t| t <= 1 || (4..14).contains(&t)));
}
