//! An open SLAF dataset: config, tables, and the reads users ask for (obs/var, submatrices,
//! obsm/varm, obsp/varp, uns).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::axis::{self, AxisColumns, CELLS, GENES};
use crate::cell_cache::{CellCache, DEFAULT_CELL_CACHE_BYTES};
use crate::columns::{extend_ids, retain, to_strings, Values};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::gene_major::{self, stats, GeneMajor, Marker};
use crate::knn::{self, Embedding, VectorIndex};
use crate::layers::LayerTable;
use crate::layout::{self, Layout, ReadCost};
use crate::location::Location;
use crate::matrix::{self, CellRows, Csr, Dense};
use crate::runtime::block_on;
use crate::selection::{self, Axis, Resolved, Selector};
use crate::start_index::{self, StartIndex, StartIndexSource};
use crate::table::Table;

/// Expression table columns.
const CELL_COLUMN: &str = "cell_integer_id";
const GENE_COLUMN: &str = "gene_integer_id";
const VALUE_COLUMN: &str = "value";
const START_INDEX_COLUMN: &str = "cell_start_index";

/// On an object store, read ranges averaging at least this many rows are long runs ...
const BULK_MIN_RUN_ROWS: u64 = 1 << 14;
/// ... read with nearby reads merged up to this gap (a few large requests).
const BULK_BLOCK_BYTES: usize = 4 << 20;

/// A SLAF dataset opened for reading.
pub struct Dataset {
    location: Location,
    config: Config,
    expression: Table,
    cells: Table,
    genes: Table,
    start_index: OnceLock<StartIndex>,
    layers: OnceLock<LayerTable>,
    cell_names: OnceLock<HashMap<String, u32>>,
    gene_names: OnceLock<HashMap<String, u32>>,
    vector_indexes: OnceLock<Vec<VectorIndex>>,
    /// The gene-major companion, when fresh (see `gene_major`).
    by_gene: OnceLock<Option<GeneMajor>>,
    /// The expression table for long sequential reads of a remote dataset (see
    /// `expression_for`).
    bulk_expression: OnceLock<Table>,
    /// Decoded cells of random-access reads; `None` when turned off (see `cell_cache`).
    cell_cache: RwLock<Option<Arc<CellCache>>>,
}

/// The distinct ids of a selection, ascending (the order rows are stored in).
fn unique_sorted(cells: &Resolved) -> Vec<u32> {
    match cells {
        Resolved::All(n) => (0..*n as u32).collect(),
        Resolved::Ids(ids) => {
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            unique
        }
    }
}

/// Runs a fallible initialiser once; a failure is returned and retried next time.
fn get_or_try_init<T>(cell: &OnceLock<T>, init: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = init()?;
    Ok(cell.get_or_init(|| value))
}

impl Dataset {
    /// Opens a dataset directory or URI.
    pub fn open(path: &str) -> Result<Self> {
        Self::open_with_options(path, HashMap::new())
    }

    /// Opens a dataset with object-store options (endpoint, region, credentials, ...).
    pub fn open_with_options(path: &str, storage_options: HashMap<String, String>) -> Result<Self> {
        let location = Location::parse(path, storage_options)?;
        block_on(Self::open_async(location))
    }

    async fn open_async(location: Location) -> Result<Self> {
        let origin = location.join("config.json");
        let Some(bytes) = location.read_optional("config.json").await? else {
            return Err(location.missing_dataset().await);
        };
        let config = Config::parse(&bytes, &origin)?;
        // Each table at the version config.json describes: a write in progress (new table
        // versions, config not yet replaced) stays invisible.
        let open = |role: &'static str| {
            Table::open(
                &location,
                role,
                &config.tables[role],
                config.table_version(role),
            )
        };
        let (expression, cells, genes) =
            futures::try_join!(open("expression"), open("cells"), open("genes"))?;
        for column in [CELL_COLUMN, GENE_COLUMN, VALUE_COLUMN] {
            expression.require_column(column)?;
        }
        Values::for_type(expression.require_column(VALUE_COLUMN)?, "expression.value")?;
        // A lost or rolled-back manifest opens an older version of the table without a word;
        // the count the writer recorded tells. Rows deleted in place (Lance deletion files)
        // legitimately leave fewer.
        if let Some(expected) = config.expression_count() {
            let rows = expression.num_rows();
            if rows > expected || (rows < expected && !expression.has_deletions()) {
                return Err(Error::corrupt(format!(
                    "table 'expression' of {} has {} values but config.json records {expected} \
                     (metadata.expression_count); a table version may be missing",
                    location.uri(),
                    expression.num_rows()
                )));
            }
        }
        for (table, axis, n) in [
            (&cells, CELLS, config.n_cells),
            (&genes, GENES, config.n_genes),
        ] {
            table.require_column(axis.name)?;
            table.require_column(axis.integer_id)?;
            if table.num_rows() != n as u64 {
                return Err(Error::invalid_schema(format!(
                    "table '{}' has {} rows but config.json says the dataset has {n}",
                    table.role(),
                    table.num_rows()
                )));
            }
        }
        Ok(Self {
            location,
            config,
            expression,
            cells,
            genes,
            start_index: OnceLock::new(),
            layers: OnceLock::new(),
            cell_names: OnceLock::new(),
            gene_names: OnceLock::new(),
            vector_indexes: OnceLock::new(),
            by_gene: OnceLock::new(),
            bulk_expression: OnceLock::new(),
            cell_cache: RwLock::new(Some(Arc::new(CellCache::new(DEFAULT_CELL_CACHE_BYTES)))),
        })
    }

    /// `(n_cells, n_genes)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.config.n_cells, self.config.n_genes)
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the dataset lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Stored non-zeros (rows of the expression table).
    pub fn nnz(&self) -> u64 {
        self.expression.num_rows()
    }

    /// The expression table (COO rows).
    pub fn expression_table(&self) -> &Table {
        &self.expression
    }

    /// The cells table (obs).
    pub fn cells_table(&self) -> &Table {
        &self.cells
    }

    /// The genes table (var).
    pub fn genes_table(&self) -> &Table {
        &self.genes
    }

    /// obs: `cell_id`, `cell_integer_id`, then every annotation column; row `i` = cell `i`.
    pub fn obs(&self) -> Result<RecordBatch> {
        self.annotations(&self.cells, CELLS, self.config.n_cells)
    }

    /// var: `gene_id`, `gene_integer_id`, then every annotation column; row `i` = gene `i`.
    pub fn var(&self) -> Result<RecordBatch> {
        self.annotations(&self.genes, GENES, self.config.n_genes)
    }

    fn annotations(&self, table: &Table, axis: AxisColumns, n: usize) -> Result<RecordBatch> {
        let columns = axis::annotation_columns(table, axis);
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        block_on(axis::read_sorted(table, axis, &columns, n))
    }

    /// Cell name → integer id.
    pub fn cell_names(&self) -> Result<&HashMap<String, u32>> {
        get_or_try_init(&self.cell_names, || {
            self.name_index(&self.cells, CELLS, self.config.n_cells)
        })
    }

    /// Gene name → integer id.
    pub fn gene_names(&self) -> Result<&HashMap<String, u32>> {
        get_or_try_init(&self.gene_names, || {
            self.name_index(&self.genes, GENES, self.config.n_genes)
        })
    }

    fn name_index(
        &self,
        table: &Table,
        axis: AxisColumns,
        n: usize,
    ) -> Result<HashMap<String, u32>> {
        let batch = block_on(axis::read_sorted(table, axis, &[axis.name], n))?;
        let names = to_strings(batch.column(0), &format!("{}.{}", table.role(), axis.name))?;
        Ok(selection::name_index(names.iter()))
    }

    /// Resolves a cell selector to ids in output order.
    pub fn resolve_cells(&self, cells: &Selector) -> Result<Resolved> {
        cells.resolve(self.config.n_cells, Axis::Cells, || self.cell_names())
    }

    /// Resolves a gene selector to ids in output order.
    pub fn resolve_genes(&self, genes: &Selector) -> Result<Resolved> {
        genes.resolve(self.config.n_genes, Axis::Genes, || self.gene_names())
    }

    fn start_index(&self) -> Result<&StartIndex> {
        get_or_try_init(&self.start_index, || {
            block_on(async {
                let stored = if self.cells.column_type(START_INDEX_COLUMN).is_some() {
                    let batch = axis::read_sorted(
                        &self.cells,
                        CELLS,
                        &[START_INDEX_COLUMN],
                        self.config.n_cells,
                    )
                    .await?;
                    start_index::stored_column(&batch, START_INDEX_COLUMN)?
                } else {
                    None
                };
                StartIndex::load(stored, &self.expression, CELL_COLUMN, self.config.n_cells).await
            })
        })
    }

    /// Whether `cell_start_index` was used as stored or had to be derived.
    pub fn start_index_source(&self) -> Result<StartIndexSource> {
        Ok(self.start_index()?.source())
    }

    /// The X submatrix `cells × genes` as CSR, assembled from the selected cells' row ranges.
    /// A random-access read: cells read cell-major are kept in the dataset's cell cache (see
    /// [`Dataset::set_cell_cache_bytes`]), and cached ones are not read again.
    pub fn submatrix(&self, cells: &Selector, genes: &Selector) -> Result<Csr> {
        let cells = self.resolve_cells(cells)?;
        let genes = self.resolve_genes(genes)?;
        self.submatrix_through(&cells, &genes, None, self.cell_cache())
    }

    /// [`Dataset::submatrix`] for already resolved selections, read through the layout the
    /// planner picks (see [`Dataset::layout_for`]). A scan's read: the cell cache is left
    /// alone.
    pub fn submatrix_resolved(&self, cells: &Resolved, genes: &Resolved) -> Result<Csr> {
        self.submatrix_through(cells, genes, None, None)
    }

    /// The submatrix read through `layout`; `GeneMajor` needs a fresh companion (an error
    /// otherwise). The result is the same either way.
    pub fn submatrix_in(&self, cells: &Resolved, genes: &Resolved, layout: Layout) -> Result<Csr> {
        self.submatrix_through(cells, genes, Some(layout), None)
    }

    /// Sets the size of the cell cache in bytes (0 turns it off), dropping what it held. It
    /// starts at 256 MiB and only holds what random-access reads asked for.
    pub fn set_cell_cache_bytes(&self, bytes: u64) {
        let cache = (bytes > 0).then(|| Arc::new(CellCache::new(bytes)));
        *self.cell_cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
    }

    /// The size of the cell cache in bytes (0 when off).
    pub fn cell_cache_bytes(&self) -> u64 {
        self.cell_cache().map_or(0, |cache| cache.capacity())
    }

    fn cell_cache(&self) -> Option<Arc<CellCache>> {
        self.cell_cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The submatrix through `layout`, or the planner's choice when `None`; each selection is
    /// sorted once, for the choice and the read alike. Cell-major reads go through `cache`
    /// when given.
    fn submatrix_through(
        &self,
        cells: &Resolved,
        genes: &Resolved,
        layout: Option<Layout>,
        cache: Option<Arc<CellCache>>,
    ) -> Result<Csr> {
        let unique_cells = unique_sorted(cells);
        // All genes read cell-major need no list of them (the common, hot case).
        let unique_genes = match (layout, genes) {
            (None | Some(Layout::CellMajor), Resolved::All(_)) => Vec::new(),
            _ => unique_sorted(genes),
        };
        let layout = match layout {
            Some(layout) => layout,
            None => self.cheaper_layout(
                matches!(cells, Resolved::Ids(_)).then_some(&unique_cells[..]),
                matches!(genes, Resolved::Ids(_)).then_some(&unique_genes[..]),
            )?,
        };
        let rows = match layout {
            Layout::CellMajor => match cache {
                Some(cache) => cache.rows(unique_cells, |cells| self.cell_rows(cells))?,
                None => self.cell_rows(unique_cells)?,
            },
            Layout::GeneMajor => {
                let by_gene = self.fresh_gene_major()?;
                let values = Values::for_type(
                    self.expression.require_column(VALUE_COLUMN)?,
                    "expression.value",
                )?;
                by_gene.cell_rows(unique_cells, &unique_genes, self.config.n_cells, values)?
            }
        };
        matrix::assemble(rows, cells, genes, self.config.n_genes)
    }

    /// The layout that reads `cells × genes` fastest: gene-major when the companion is fresh
    /// and the selected genes' rows cost less than the selected cells' rows.
    pub fn layout_for(&self, cells: &Resolved, genes: &Resolved) -> Result<Layout> {
        let selected = |ids: &Resolved| match ids {
            Resolved::All(_) => None,
            Resolved::Ids(_) => Some(unique_sorted(ids)),
        };
        self.cheaper_layout(selected(cells).as_deref(), selected(genes).as_deref())
    }

    /// [`Dataset::layout_for`] for selected `cells` and `genes`, ascending and unique (`None`:
    /// all of them). All genes are read cell-major.
    fn cheaper_layout(&self, cells: Option<&[u32]>, genes: Option<&[u32]>) -> Result<Layout> {
        let Some(genes) = genes else {
            return Ok(Layout::CellMajor);
        };
        let Some(by_gene) = self.gene_major()? else {
            return Ok(Layout::CellMajor);
        };
        let (gene_ranges, gene_rows) = by_gene.ranges(genes);
        let cell_cost = match cells {
            None => ReadCost {
                rows: self.nnz(),
                ranges: 1,
            },
            Some(cells) => {
                let (ranges, offsets) = self.start_index()?.ranges_of(cells);
                ReadCost {
                    rows: *offsets.last().expect("offsets start with 0") as u64,
                    ranges: ranges.len(),
                }
            }
        };
        let gene_cost = ReadCost {
            rows: gene_rows,
            ranges: gene_ranges.len(),
        };
        Ok(layout::choose(cell_cost, gene_cost))
    }

    /// Whether the gene-major companion and the axis statistics describe the current X.
    pub fn gene_major_status(&self) -> gene_major::Status {
        if !self.config.tables.contains_key(gene_major::TABLE) {
            return gene_major::Status::Absent;
        }
        match Marker::read(&self.config.document) {
            None => gene_major::Status::Absent,
            Some(marker) if marker.describes(self.expression.version(), self.nnz()) => {
                gene_major::Status::Fresh
            }
            Some(_) => gene_major::Status::Stale,
        }
    }

    /// The gene-major companion, or an error saying why there is none to read.
    fn fresh_gene_major(&self) -> Result<&GeneMajor> {
        self.gene_major()?.ok_or_else(|| {
            Error::invalid_argument(format!(
                "{} has no fresh gene-major table ({}); `slaf index` builds it",
                self.location.uri(),
                self.gene_major_status().as_str()
            ))
        })
    }

    /// The gene-major companion with its row offsets, if fresh (opened once).
    fn gene_major(&self) -> Result<Option<&GeneMajor>> {
        get_or_try_init(&self.by_gene, || {
            if self.gene_major_status() != gene_major::Status::Fresh {
                return Ok(None);
            }
            block_on(async {
                let role = gene_major::TABLE;
                let table = Table::open(
                    &self.location,
                    role,
                    &self.config.tables[role],
                    self.config.table_version(role),
                )
                .await?;
                if table.num_rows() != self.nnz() {
                    return Err(Error::corrupt(format!(
                        "table '{role}' of {} has {} rows but the expression table {}; rebuild \
                         it with `slaf index`",
                        self.location.uri(),
                        table.num_rows(),
                        self.nnz()
                    )));
                }
                let column = gene_major::START_INDEX_COLUMN;
                let stored = if self.genes.column_type(column).is_some() {
                    let batch =
                        axis::read_sorted(&self.genes, GENES, &[column], self.config.n_genes)
                            .await?;
                    start_index::stored_column(&batch, column)?
                } else {
                    None
                };
                let index =
                    StartIndex::load(stored, &table, GENE_COLUMN, self.config.n_genes).await?;
                Ok(Some(GeneMajor::new(table, index)))
            })
        })
        .map(Option::as_ref)
    }

    /// The stored axis statistics of cells (`slaf_total_counts`, `slaf_n_genes_by_counts`) or
    /// genes (`slaf_total_counts`, `slaf_n_cells_by_counts`, `slaf_mean`,
    /// `slaf_sum_squares`), row `i` = id `i`; `None` unless they describe the current X.
    pub fn axis_stats(&self, axis: Axis) -> Result<Option<RecordBatch>> {
        if self.gene_major_status() != gene_major::Status::Fresh {
            return Ok(None);
        }
        let (table, columns, axis_columns, n) = match axis {
            Axis::Cells => (&self.cells, stats::CELL_COLUMNS, CELLS, self.config.n_cells),
            Axis::Genes => (&self.genes, stats::GENE_COLUMNS, GENES, self.config.n_genes),
        };
        let present = columns.iter().all(|c| {
            table
                .column_type(c)
                .is_some_and(|t| stats::is_stats_type(c, t))
        });
        if !present {
            return Ok(None);
        }
        block_on(axis::read_sorted(table, axis_columns, columns, n)).map(Some)
    }

    /// The stored X entries of `cells` (ascending, unique) as CSR rows `(indptr, genes,
    /// values)`, genes ascending within a row. Rows stored in gene order, as they are written,
    /// are returned as read (no copy); others are put in order.
    pub fn cell_entries(&self, cells: Vec<u32>) -> Result<(Vec<i64>, Vec<u32>, Values)> {
        let rows = self.cell_rows(cells)?;
        let n_genes = self.config.n_genes;
        let in_order = rows.offsets.windows(2).all(|range| {
            let row = &rows.genes[range[0]..range[1]];
            let ascending = row
                .windows(2)
                .fold(true, |ascending, pair| ascending & (pair[0] < pair[1]));
            ascending && row.last().is_none_or(|&g| (g as usize) < n_genes)
        });
        if in_order {
            let indptr = rows.offsets.iter().map(|&o| o as i64).collect();
            return Ok((indptr, rows.genes, rows.values));
        }
        let order = Resolved::Ids(rows.cells.clone());
        Ok(matrix::assemble(rows, &order, &Resolved::All(n_genes), n_genes)?.into_entries())
    }

    /// The expression table's rows of `cells` (ascending, unique), `columns` projected, read
    /// through the cells' row ranges (`cell_start_index`) without scanning the table.
    pub fn expression_rows(&self, cells: &[u32], columns: &[&str]) -> Result<Vec<RecordBatch>> {
        let (ranges, _) = self.start_index()?.ranges_of(cells);
        block_on(self.expression.read_ranges(&ranges, columns))
    }

    /// The gene-major table's rows of `genes` (ascending, unique), `columns` projected (the
    /// expression table's names and types), read through the genes' row ranges; an error
    /// unless the table is fresh.
    pub fn expression_rows_by_gene(
        &self,
        genes: &[u32],
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        self.fresh_gene_major()?.rows(genes, columns)
    }

    /// Reads gene ids and values of `cells` (ascending, unique) through their row ranges.
    fn cell_rows(&self, cells: Vec<u32>) -> Result<CellRows> {
        let (ranges, offsets) = self.start_index()?.ranges_of(&cells);
        let total = *offsets.last().expect("offsets start with 0");
        let table = self.expression_for(&ranges)?;
        let batches = block_on(table.read_ranges(&ranges, &[GENE_COLUMN, VALUE_COLUMN]))?;
        let mut genes = Vec::with_capacity(total);
        let mut values = Values::for_type(
            self.expression.require_column(VALUE_COLUMN)?,
            "expression.value",
        )?;
        values.reserve(total);
        for batch in &batches {
            extend_ids(&mut genes, batch.column(0), "expression.gene_integer_id")?;
            values.extend(batch.column(1), "expression.value")?;
        }
        if genes.len() != total {
            return Err(Error::invalid_schema(format!(
                "expected {total} expression rows for the selected cells but read {}",
                genes.len()
            )));
        }
        Ok(CellRows {
            cells,
            offsets,
            genes,
            values,
        })
    }

    /// The expression table to read `ranges` (row ranges, ascending) through. On an object
    /// store, long runs of consecutive rows (a loader's window, a block of X) go through a
    /// second handle whose reads of one file closer than [`BULK_BLOCK_BYTES`] are merged into
    /// one request (Lance's `block_size`): a few large requests instead of one per page and
    /// column. Sparse selections keep the plain table, since merging would read the gaps
    /// between their cells; so does a dataset opened with its own `block_size`.
    fn expression_for(&self, ranges: &[std::ops::Range<u64>]) -> Result<&Table> {
        let rows: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        let long_runs = !ranges.is_empty() && rows / ranges.len() as u64 >= BULK_MIN_RUN_ROWS;
        let options = self.location.storage_options();
        if self.location.is_local() || !long_runs || options.contains_key("block_size") {
            return Ok(&self.expression);
        }
        get_or_try_init(&self.bulk_expression, || {
            let mut options = options.clone();
            options.insert("block_size".into(), BULK_BLOCK_BYTES.to_string());
            let location = Location::parse(self.location.uri(), options)?;
            block_on(Table::open(
                &location,
                "expression",
                &self.config.tables["expression"],
                Some(self.expression.version()),
            ))
        })
    }

    /// The submatrix of layer `name`: `cells × genes` as CSR (entries the layer does not
    /// store — nulls and zeros — are left out).
    pub fn layer_submatrix(&self, name: &str, cells: &Selector, genes: &Selector) -> Result<Csr> {
        let cells = self.resolve_cells(cells)?;
        let genes = self.resolve_genes(genes)?;
        let layers = get_or_try_init(&self.layers, || {
            let relative = self.config.tables.get("layers").ok_or_else(|| {
                Error::unknown_name(format!("no layer {name:?}: this dataset has no layers"))
            })?;
            block_on(LayerTable::open(
                &self.location,
                relative,
                self.config.table_version("layers"),
                self.config.n_cells,
            ))
        })?;
        let rows = block_on(layers.read(name, unique_sorted(&cells)))?;
        matrix::assemble(rows, &cells, &genes, self.config.n_genes)
    }

    /// obsm keys with their widths.
    pub fn obsm_keys(&self) -> Vec<(String, usize)> {
        axis::embedding_columns(&self.cells)
    }

    /// varm keys with their widths.
    pub fn varm_keys(&self) -> Vec<(String, usize)> {
        axis::embedding_columns(&self.genes)
    }

    /// `obsm[key]` as a dense `n_cells × d` matrix.
    pub fn obsm(&self, key: &str) -> Result<Dense> {
        self.embedding(&self.cells, CELLS, self.config.n_cells, key, "obsm")
    }

    /// `varm[key]` as a dense `n_genes × d` matrix.
    pub fn varm(&self, key: &str) -> Result<Dense> {
        self.embedding(&self.genes, GENES, self.config.n_genes, key, "varm")
    }

    fn embedding(
        &self,
        table: &Table,
        axis: AxisColumns,
        n: usize,
        key: &str,
        what: &str,
    ) -> Result<Dense> {
        let Some((_, width)) = axis::embedding_columns(table)
            .into_iter()
            .find(|(k, _)| k == key)
        else {
            let known: Vec<String> = axis::embedding_columns(table)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            return Err(Error::unknown_key(&format!("{what} key"), key, &known));
        };
        let batch = block_on(axis::read_sorted(table, axis, &[key], n))?;
        let list = batch.column(0).as_fixed_size_list();
        if list.null_count() > 0 {
            return Err(Error::invalid_schema(format!(
                "{what} {key:?} has null rows"
            )));
        }
        let inner = list.values();
        let item_type = inner.data_type().clone();
        let mut data = Values::for_type(&item_type, &format!("{what} {key:?}"))?;
        let start = list.offset() * width;
        data.extend(
            inner.slice(start, n * width).as_ref(),
            &format!("{what} {key:?}"),
        )?;
        Ok(Dense {
            n_rows: n,
            n_cols: width,
            data,
        })
    }

    /// obsp keys (pairwise cell matrices).
    pub fn obsp_keys(&self) -> Vec<String> {
        self.pairwise_keys("obsp", "cellsxcells")
    }

    /// varp keys (pairwise gene matrices).
    pub fn varp_keys(&self) -> Vec<String> {
        self.pairwise_keys("varp", "genesxgenes")
    }

    fn pairwise_keys(&self, section: &str, table: &str) -> Vec<String> {
        let listed = self.config.available(section);
        if !listed.is_empty() || !self.config.tables.contains_key(table) {
            return listed;
        }
        Vec::new()
    }

    /// `obsp[key]` as an `n_cells × n_cells` CSR matrix.
    pub fn obsp(&self, key: &str) -> Result<Csr> {
        self.pairwise(
            "obsp",
            "cellsxcells",
            "cell_integer_id",
            self.config.n_cells,
            key,
        )
    }

    /// `varp[key]` as an `n_genes × n_genes` CSR matrix.
    pub fn varp(&self, key: &str) -> Result<Csr> {
        self.pairwise(
            "varp",
            "genesxgenes",
            "gene_integer_id",
            self.config.n_genes,
            key,
        )
    }

    fn pairwise(&self, what: &str, role: &str, id: &str, n: usize, key: &str) -> Result<Csr> {
        let keys = self.pairwise_keys(what, role);
        if !keys.iter().any(|k| k == key) {
            return Err(Error::unknown_key(&format!("{what} key"), key, &keys));
        }
        let relative = self
            .config
            .tables
            .get(role)
            .cloned()
            .unwrap_or_else(|| format!("{role}.lance"));
        block_on(async {
            let version = self.config.table_version(role);
            let table = Table::open(&self.location, role, &relative, version).await?;
            let (col_i, col_j) = (format!("{id}_i"), format!("{id}_j"));
            let value_type = table.require_column(key)?.clone();
            let batches = table.scan(&[&col_i, &col_j, key], None).await?;
            let (mut rows, mut cols) = (Vec::new(), Vec::new());
            let mut values = Values::for_type(&value_type, &format!("{what} {key:?}"))?;
            for batch in &batches {
                // Tables of several keys hold the union of their patterns: skip this key's nulls.
                let valid = arrow::compute::is_not_null(batch.column(2))
                    .map_err(|e| Error::storage("filtering pairwise rows", e))?;
                let batch = arrow::compute::filter_record_batch(batch, &valid)
                    .map_err(|e| Error::storage("filtering pairwise rows", e))?;
                extend_ids(&mut rows, batch.column(0), &col_i)?;
                extend_ids(&mut cols, batch.column(1), &col_j)?;
                values.extend(batch.column(2), &format!("{what} {key:?}"))?;
            }
            // slafdb fills a key's missing pairs with 0.0 instead of null; anndata stores none.
            let keep = values.nonzero_mask();
            let pick = |ids: Vec<u32>| retain(ids, &keep);
            let (rows, cols, values) = (pick(rows), pick(cols), values.retain(&keep));
            matrix::coo_to_csr(n, &rows, &cols, values)
        })
    }

    /// Names of the layers the config lists.
    pub fn layer_names(&self) -> Vec<String> {
        self.config.available("layers")
    }

    /// `uns` from `uns.json`, if the dataset has one.
    pub fn uns(&self) -> Result<Option<serde_json::Value>> {
        let Some(bytes) = block_on(self.location.read_optional("uns.json"))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::invalid_config(format!("invalid {}: {e}", self.location.join("uns.json")))
        })
    }

    /// The vector indexes of the obsm and varm keys (read once per open).
    pub fn vector_indexes(&self) -> Result<&[VectorIndex]> {
        get_or_try_init(&self.vector_indexes, || {
            let mut all = knn::describe(self.cells.lance(), Embedding::Obsm)?;
            all.extend(knn::describe(self.genes.lance(), Embedding::Varm)?);
            Ok(all)
        })
        .map(Vec::as_slice)
    }

    /// A summary of the dataset.
    pub fn info(&self) -> Info {
        let vector_indexes = match self.vector_indexes() {
            Ok(all) => all.iter().map(VectorIndex::summary).collect(),
            Err(e) => vec![format!("unreadable: {e}")],
        };
        Info {
            uri: self.location.uri().to_string(),
            format_version: self.config.format_version.clone(),
            n_cells: self.config.n_cells,
            n_genes: self.config.n_genes,
            nnz: self.nnz(),
            value_type: self
                .expression
                .column_type(VALUE_COLUMN)
                .cloned()
                .unwrap_or(DataType::Null),
            expression_fragments: self.expression.num_fragments(),
            tables: self
                .config
                .tables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            layers: self.layer_names(),
            obsm: self.obsm_keys(),
            varm: self.varm_keys(),
            obsp: self.obsp_keys(),
            varp: self.varp_keys(),
            vector_indexes,
            gene_major: self.gene_major_status().as_str().to_string(),
        }
    }
}

/// What `Dataset::info` reports.
#[derive(Debug, Clone)]
pub struct Info {
    pub uri: String,
    pub format_version: String,
    pub n_cells: usize,
    pub n_genes: usize,
    pub nnz: u64,
    pub value_type: DataType,
    pub expression_fragments: usize,
    pub tables: Vec<(String, String)>,
    pub layers: Vec<String>,
    pub obsm: Vec<(String, usize)>,
    pub varm: Vec<(String, usize)>,
    pub obsp: Vec<String>,
    pub varp: Vec<String>,
    /// One line per vector index: `obsm/X_scvi: IVF_FLAT, l2, 1000 partitions`.
    pub vector_indexes: Vec<String>,
    /// The gene-major companion: "fresh", "stale" (an append since) or "absent".
    pub gene_major: String,
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.n_cells as f64 * self.n_genes as f64;
        let density = if total > 0.0 {
            self.nnz as f64 / total
        } else {
            0.0
        };
        let keyed = |keys: &[(String, usize)]| {
            keys.iter()
                .map(|(k, d)| format!("{k} ({d})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let or_none = |s: String| if s.is_empty() { "none".to_string() } else { s };
        writeln!(f, "SLAF dataset {}", self.uri)?;
        writeln!(f, "  format version: {}", self.format_version)?;
        writeln!(
            f,
            "  shape: {} cells × {} genes",
            self.n_cells, self.n_genes
        )?;
        writeln!(
            f,
            "  stored values: {} ({:.2}% dense), type {}",
            self.nnz,
            density * 100.0,
            self.value_type
        )?;
        writeln!(f, "  expression fragments: {}", self.expression_fragments)?;
        let tables: Vec<String> = self
            .tables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(f, "  tables: {}", tables.join(", "))?;
        writeln!(f, "  layers: {}", or_none(self.layers.join(", ")))?;
        writeln!(f, "  obsm: {}", or_none(keyed(&self.obsm)))?;
        writeln!(f, "  varm: {}", or_none(keyed(&self.varm)))?;
        writeln!(f, "  obsp: {}", or_none(self.obsp.join(", ")))?;
        writeln!(f, "  varp: {}", or_none(self.varp.join(", ")))?;
        writeln!(
            f,
            "  vector indexes: {}",
            or_none(self.vector_indexes.join("; "))
        )?;
        write!(f, "  gene-major table: {}", self.gene_major)
    }
}
