//! Changes to the annotations of an existing dataset, the ones slafdb's LazyAnnData makes: an
//! obs/var column, an obsm/varm embedding or a layer added, replaced or removed.
//!
//! Each change holds the writer lock, commits new Lance versions of one table and then replaces
//! config.json, naming those versions, atomically: readers see all of a change or none of it,
//! and a change killed half-way is rolled back by the next writer (see `versions`).
//!
//! What conversion wrote is protected: only keys an earlier change added (config.json lists
//! them under the section's `mutable` list, as slafdb keeps it) may be replaced or removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::compute::{cast, take, take_record_batch};
use arrow_array::{
    Array, ArrayRef, Float64Array, RecordBatch, RecordBatchIterator, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::{NewColumnTransform, WriteMode, WriteParams};
use lance::Dataset as LanceTable;
use serde_json::{json, Map, Value};

use super::chunk::{fits_uint16, CsrChunk};
use super::expression::IdTypes;
use super::lock::DatasetLock;
use super::staging::write_file;
use super::{Held, DEFAULT_ROWS_PER_FRAGMENT};
use crate::axis::{is_embedding, AxisColumns, CELLS, GENES};
use crate::columns::extend_ids;
use crate::config::{Config, TABLE_VERSIONS};
use crate::error::{Error, Result};
use crate::runtime::block_on;

/// Rows handed to Lance at a time when a table is rewritten.
const WRITE_BATCH_ROWS: usize = 1 << 20;

/// What a change touches: its config.json section names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Annotation {
    /// A column of `cells.lance`.
    Obs,
    /// A column of `genes.lance`.
    Var,
    /// A `fixed_size_list` column of `cells.lance`.
    Obsm,
    /// A `fixed_size_list` column of `genes.lance`.
    Varm,
    /// A column of `layers.lance`.
    Layers,
}

impl Annotation {
    /// The config.json section that lists its keys (`obs`, `var`, `obsm`, `varm`, `layers`).
    pub fn section(self) -> &'static str {
        match self {
            Self::Obs => "obs",
            Self::Var => "var",
            Self::Obsm => "obsm",
            Self::Varm => "varm",
            Self::Layers => "layers",
        }
    }

    fn role(self) -> &'static str {
        match self {
            Self::Obs | Self::Obsm => "cells",
            Self::Var | Self::Varm => "genes",
            Self::Layers => "layers",
        }
    }

    fn entity(self) -> &'static str {
        match self {
            Self::Var | Self::Varm => "gene",
            _ => "cell",
        }
    }

    /// Columns of its table that belong to no key.
    fn reserved(self) -> Vec<&'static str> {
        let of = |axis: AxisColumns| {
            let mut columns = vec![axis.name, axis.integer_id];
            columns.extend_from_slice(axis.internal);
            columns
        };
        match self {
            Self::Obs | Self::Obsm => of(CELLS),
            Self::Var | Self::Varm => of(GENES),
            Self::Layers => vec![CELLS.integer_id, GENES.integer_id],
        }
    }

    fn id_column(self) -> &'static str {
        match self {
            Self::Var | Self::Varm => "gene_integer_id",
            _ => "cell_integer_id",
        }
    }

    fn embedding(self) -> bool {
        matches!(self, Self::Obsm | Self::Varm)
    }

    /// The section whose keys a column of its table of type `data_type` belongs to.
    fn owner_of(self, data_type: &DataType) -> Self {
        match (self, is_embedding(data_type)) {
            (Self::Obs | Self::Obsm, true) => Self::Obsm,
            (Self::Obs | Self::Obsm, false) => Self::Obs,
            (Self::Var | Self::Varm, true) => Self::Varm,
            (Self::Var | Self::Varm, false) => Self::Var,
            (Self::Layers, _) => Self::Layers,
        }
    }
}

/// slafdb's rule for new keys: letters, digits and underscores, not empty.
fn check_name(what: Annotation, key: &str) -> Result<()> {
    if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(Error::invalid_argument(format!(
            "{} key {key:?} is not a valid name: use letters, digits and underscores",
            what.section()
        )));
    }
    if what.reserved().contains(&key) {
        return Err(Error::invalid_argument(format!(
            "{key:?} is a column the format keeps for itself; pick another {} key",
            what.section()
        )));
    }
    Ok(())
}

/// A change in progress: the dataset locked, its tables at the versions config.json describes.
pub(crate) struct Change {
    _lock: DatasetLock,
    root: PathBuf,
    shown: String,
    config: Config,
}

impl Change {
    pub(crate) fn begin(path: &str) -> Result<Self> {
        let held = Held::acquire(path)?;
        Ok(Self {
            _lock: held.lock,
            root: held.root,
            shown: path.to_string(),
            config: held.config,
        })
    }

    fn relative(&self, role: &str) -> String {
        let default = format!("{role}.lance");
        let relative = self.config.tables.get(role).cloned().unwrap_or(default);
        relative.trim_start_matches("./").to_string()
    }

    fn uri(&self, role: &str) -> String {
        self.root
            .join(self.relative(role))
            .to_string_lossy()
            .into_owned()
    }

    /// Table `role` at its pinned version, or `None` when the dataset has none.
    pub(crate) fn open(&self, role: &str) -> Result<Option<LanceTable>> {
        if !self.config.tables.contains_key(role) {
            return Ok(None);
        }
        let mut builder = DatasetBuilder::from_uri(self.uri(role));
        if let Some(version) = self.config.table_version(role) {
            builder = builder.with_version(version);
        }
        block_on(builder.load())
            .map(Some)
            .map_err(|e| Error::storage(format!("opening table '{role}' of {}", self.shown), e))
    }

    /// An error unless `key`, a column of `table`, may be replaced or removed as a `what` key.
    fn check_changeable(&self, what: Annotation, key: &str, table: &LanceTable) -> Result<()> {
        let field = table.schema().field(key).map(|f| f.data_type());
        if what.reserved().contains(&key) {
            return Err(Error::invalid_argument(format!(
                "{key:?} is a column the format keeps for itself; it can't be changed"
            )));
        }
        if let Some(data_type) = field {
            let owner = what.owner_of(&data_type);
            if owner != what {
                return Err(Error::invalid_argument(format!(
                    "{key:?} is a {} key of {}, not a {} key",
                    owner.section(),
                    self.shown,
                    what.section()
                )));
            }
        }
        if !self
            .config
            .listed(what.section(), "mutable")
            .iter()
            .any(|k| k == key)
        {
            return Err(Error::invalid_argument(format!(
                "{} key {key:?} of {} came from the conversion and is protected: only keys \
                 added to the dataset afterwards can be replaced or removed",
                what.section(),
                self.shown
            )));
        }
        Ok(())
    }

    /// config.json naming `versions` of their tables (adding the tables that are new).
    fn document_with_versions(&self, roles: &[(&str, u64)]) -> Map<String, Value> {
        let mut document = self.config.document.clone();
        let mut versions = self.config.table_versions.clone();
        for &(role, version) in roles {
            versions.insert(role.to_string(), version);
            if !self.config.tables.contains_key(role) {
                let tables = document
                    .entry("tables")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(tables) = tables {
                    tables.insert(role.into(), json!(format!("{role}.lance")));
                }
            }
        }
        document.insert(TABLE_VERSIONS.into(), json!(versions));
        document
    }

    /// Replaces config.json with `document`: the commit point of the change.
    fn write_config(&self, document: Map<String, Value>) -> Result<()> {
        let text = serde_json::to_vec_pretty(&Value::Object(document))
            .map_err(|e| Error::invalid_argument(format!("config is not JSON: {e}")))?;
        write_file(&self.root.join("config.json"), &text)
    }

    /// Records `version` of table `role` (a change that adds no key, such as an index), then
    /// replaces config.json.
    pub(crate) fn commit_version(self, role: &str, version: u64) -> Result<()> {
        self.commit_versions(&[(role, version)], None)
    }

    /// Records new `versions` of several tables and sets config.json's `entry` (a key and its
    /// value), then replaces config.json: all of them become visible at once.
    pub(crate) fn commit_versions(
        self,
        versions: &[(&str, u64)],
        entry: Option<(&str, Value)>,
    ) -> Result<()> {
        let mut document = self.document_with_versions(versions);
        if let Some((key, value)) = entry {
            document.insert(key.into(), value);
        }
        self.write_config(document)
    }

    /// The dataset's folder (symlinks resolved).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The dataset as the caller named it, for messages.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// config.json as the change found it.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Records `version` of `what`'s table and `key` added (with its width for obsm/varm) or
    /// removed, then replaces config.json: the commit point of the change.
    fn commit(self, what: Annotation, key: &str, version: u64, added: Option<usize>) -> Result<()> {
        let mut document = self.document_with_versions(&[(what.role(), version)]);
        let section = document
            .entry(what.section())
            .or_insert_with(|| json!({"available": [], "immutable": [], "mutable": []}));
        if !section.is_object() {
            *section = json!({"available": [], "immutable": [], "mutable": []});
        }
        let section = section.as_object_mut().expect("made an object above");
        for list in ["available", "mutable"] {
            let mut keys: Vec<String> = self.config.listed(what.section(), list);
            keys.retain(|k| k != key);
            if added.is_some() {
                keys.push(key.to_string());
            }
            keys.sort();
            section.insert(list.into(), json!(keys));
        }
        section.entry("immutable").or_insert_with(|| json!([]));
        if what.embedding() {
            let dimensions = section
                .entry("dimensions")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(dimensions) = dimensions {
                match added {
                    Some(width) => dimensions.insert(key.into(), json!(width)),
                    None => dimensions.remove(key),
                };
            }
        }
        self.write_config(document)
    }

    fn failed(&self, what: &str, e: lance::Error) -> Error {
        Error::storage(format!("{what} of {}", self.shown), e)
    }
}

/// Sets `obs`/`var` column or `obsm`/`varm` embedding `key` of the dataset at `path` to
/// `values`, one per cell (gene) in integer-id order; obsm/varm values are a
/// `fixed_size_list` array. Replaces a key an earlier change added; a key from the conversion
/// is protected (an error).
pub fn set_annotation(path: &str, what: Annotation, key: &str, values: ArrayRef) -> Result<()> {
    if what == Annotation::Layers {
        return Err(Error::invalid_argument("a layer is set with set_layer"));
    }
    check_name(what, key)?;
    let width = match values.data_type() {
        DataType::FixedSizeList(_, width) if what.embedding() => *width as usize,
        other if what.embedding() => {
            return Err(Error::invalid_argument(format!(
                "{}[{key:?}] must be a 2-d array (one row per {}), not {other}",
                what.section(),
                what.entity()
            )))
        }
        other if is_embedding(other) => {
            return Err(Error::invalid_argument(format!(
                "{}[{key:?}] must be one value per {}; 2-d arrays go to {}m",
                what.section(),
                what.entity(),
                what.section()
            )))
        }
        _ => 0,
    };
    let change = Change::begin(path)?;
    let role = what.role();
    let mut table = change
        .open(role)?
        .ok_or_else(|| Error::missing_table(format!("{path} has no table '{role}'")))?;
    let n_rows = block_on(table.count_rows(None)).map_err(|e| change.failed("counting rows", e))?;
    if values.len() != n_rows {
        return Err(Error::invalid_argument(format!(
            "{}[{key:?}] needs {n_rows} values (one per {}), got {}",
            what.section(),
            what.entity(),
            values.len()
        )));
    }
    if table.schema().field(key).is_some() {
        change.check_changeable(what, key, &table)?;
    }
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new(
        key,
        values.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(schema, vec![values])
        .map_err(|e| Error::invalid_argument(format!("{key:?}: {e}")))?;
    let version = put_columns(&mut table, what.id_column(), &batch, &change.shown)?;
    change.commit(what, key, version, Some(width))
}

/// Sets the columns of `batch` (row `i` = id `i`) in `table`, replacing columns of the same
/// names, as new versions of the table; returns the last. Lance adds columns in the table's
/// physical row order, which may differ from id order: the rows are put in that order.
pub(crate) fn put_columns(
    table: &mut LanceTable,
    id_column: &str,
    batch: &RecordBatch,
    shown: &str,
) -> Result<u64> {
    let failed =
        |what: String| move |e: lance::Error| Error::storage(format!("{what} of {shown}"), e);
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let replaced: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| table.schema().field(name).is_some())
        .collect();
    if !replaced.is_empty() {
        block_on(table.drop_columns(&replaced))
            .map_err(failed(format!("removing the old {replaced:?}")))?;
    }
    let ids = physical_ids(table, id_column, shown)?;
    let n_rows = batch.num_rows();
    if ids.len() != n_rows || ids.iter().any(|&i| i as usize >= n_rows) {
        return Err(Error::corrupt(format!(
            "{id_column} of {shown} has {} rows or ids outside 0..{n_rows}",
            ids.len()
        )));
    }
    let ordered = take_record_batch(batch, &UInt32Array::from(ids))
        .map_err(|e| Error::invalid_argument(format!("ordering {names:?}: {e}")))?;
    let reader = RecordBatchIterator::new([Ok(ordered)], schema.clone());
    block_on(table.add_columns(NewColumnTransform::Reader(Box::new(reader)), None, None))
        .map_err(failed(format!("adding {names:?}")))?;
    Ok(table.manifest().version)
}

/// The integer ids of `table`'s rows in their stored order.
fn physical_ids(table: &LanceTable, column: &str, shown: &str) -> Result<Vec<u32>> {
    let batch = block_on(async {
        let mut scan = table.scan();
        scan.project(&[column])?;
        scan.try_into_batch().await
    })
    .map_err(|e| Error::storage(format!("reading {column} of {shown}"), e))?;
    let mut ids = Vec::with_capacity(batch.num_rows());
    extend_ids(&mut ids, batch.column(0).as_ref(), column)?;
    Ok(ids)
}

/// Sets layer `key` of the dataset at `path` to the cells × genes matrix `x` (CSR over all
/// cells). `layers.lance` is rewritten as a new version holding the union of every layer's
/// entries (a cell's rows stay together, in cell order); a layer from the conversion is
/// protected. Memory: the layers table and `x` are held while it is rewritten.
pub fn set_layer(path: &str, key: &str, x: &CsrChunk) -> Result<()> {
    let what = Annotation::Layers;
    check_name(what, key)?;
    let change = Change::begin(path)?;
    let (n_cells, n_genes) = (change.config.n_cells, change.config.n_genes);
    x.validate(n_cells, &format!("layers[{key:?}]"))?;
    let existing = change.open("layers")?;
    let (old, id_types) = match &existing {
        Some(table) => {
            if table.schema().field(key).is_some() {
                change.check_changeable(what, key, table)?;
            }
            let old = read_all(table, key, &change)?;
            let ids = IdTypes {
                cell: old.schema().field(0).data_type().clone(),
                gene: old.schema().field(1).data_type().clone(),
            };
            (Some(old), ids)
        }
        None => (None, IdTypes::for_shape(n_cells as u64, n_genes)),
    };
    let merged = merge_layer(old.as_ref(), x, n_cells, n_genes, &change.shown)?;
    let value_type = if fits_uint16(x.values.as_ref())? {
        DataType::UInt16
    } else {
        DataType::Float32
    };
    let to = |a: ArrayRef, t: &DataType| {
        cast(&a, t).map_err(|e| Error::invalid_argument(format!("layers[{key:?}]: {e}")))
    };
    let mut fields = vec![
        Field::new("cell_integer_id", id_types.cell.clone(), false),
        Field::new("gene_integer_id", id_types.gene.clone(), false),
    ];
    let mut columns = vec![
        to(Arc::new(UInt32Array::from(merged.cells)), &id_types.cell)?,
        to(Arc::new(UInt32Array::from(merged.genes)), &id_types.gene)?,
    ];
    if let Some(old) = &old {
        let rows = UInt64Array::from(merged.old_rows);
        for (field, column) in old.schema().fields().iter().zip(old.columns()).skip(2) {
            fields.push(field.as_ref().clone().with_nullable(true));
            columns.push(
                take(column.as_ref(), &rows, None)
                    .map_err(|e| Error::invalid_argument(format!("layers: {e}")))?,
            );
        }
    }
    fields.push(Field::new(key, value_type.clone(), true));
    columns.push(to(
        Arc::new(Float64Array::from(merged.values)),
        &value_type,
    )?);
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::invalid_argument(format!("layers: {e}")))?;
    let uri = change.uri("layers");
    let mode = if std::path::Path::new(&uri).exists() {
        WriteMode::Overwrite
    } else {
        WriteMode::Create
    };
    let params = WriteParams {
        mode,
        max_rows_per_file: DEFAULT_ROWS_PER_FRAGMENT,
        data_storage_version: Some(Default::default()),
        enable_v2_manifest_paths: true,
        ..Default::default()
    };
    let slices: Vec<_> = (0..batch.num_rows())
        .step_by(WRITE_BATCH_ROWS)
        .map(|at| Ok(batch.slice(at, WRITE_BATCH_ROWS.min(batch.num_rows() - at))))
        .collect();
    let reader = RecordBatchIterator::new(slices, schema);
    let written = block_on(LanceTable::write(reader, &uri, Some(params)))
        .map_err(|e| change.failed("writing table 'layers'", e))?;
    let version = written.manifest().version;
    change.commit(what, key, version, Some(0))
}

/// Every column of the layers table but `skip`, ids first, in stored order.
fn read_all(table: &LanceTable, skip: &str, change: &Change) -> Result<RecordBatch> {
    let ids = Annotation::Layers.reserved();
    let mut columns: Vec<String> = ids.iter().map(|c| c.to_string()).collect();
    columns.extend(
        table
            .schema()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .filter(|n| n != skip && !ids.contains(&n.as_str())),
    );
    block_on(async {
        let mut scan = table.scan();
        scan.project(&columns)?;
        let batch = scan.try_into_batch().await?;
        Ok::<_, lance::Error>(batch)
    })
    .map_err(|e| change.failed("reading table 'layers'", e))
}

/// The rows of the rewritten layers table.
struct MergedLayer {
    cells: Vec<u32>,
    genes: Vec<u32>,
    /// The old row each comes from (`None`: a new entry, null in the other layers).
    old_rows: Vec<Option<u64>>,
    /// The new layer's value (`None`: not an entry of it).
    values: Vec<Option<f64>>,
}

/// Each cell's old rows (in their order) with the new layer's value where it has one, then the
/// new layer's entries that had no row. Old rows must be grouped by cell in ascending order,
/// as the reader requires.
fn merge_layer(
    old: Option<&RecordBatch>,
    x: &CsrChunk,
    n_cells: usize,
    n_genes: usize,
    shown: &str,
) -> Result<MergedLayer> {
    let (mut old_cells, mut old_genes) = (Vec::new(), Vec::new());
    if let Some(old) = old {
        extend_ids(&mut old_cells, old.column(0).as_ref(), "cell_integer_id")?;
        extend_ids(&mut old_genes, old.column(1).as_ref(), "gene_integer_id")?;
    }
    let capacity = old_cells.len() + x.n_entries();
    let mut out = MergedLayer {
        cells: Vec::with_capacity(capacity),
        genes: Vec::with_capacity(capacity),
        old_rows: Vec::with_capacity(capacity),
        values: Vec::with_capacity(capacity),
    };
    const NONE: u32 = u32::MAX;
    // marked[g] == c while gene g of cell c has a new value not yet placed (value in slot[g]).
    let mut marked = vec![NONE; n_genes];
    let mut slot = vec![0f64; n_genes];
    let mut row = Vec::new();
    let mut r = 0;
    let unsorted = || {
        Error::corrupt(format!(
            "layers.lance of {shown}: rows are not grouped by cell in ascending order"
        ))
    };
    for c in 0..n_cells as u32 {
        if r < old_cells.len() && old_cells[r] < c {
            return Err(unsorted());
        }
        x.row(c as usize, n_genes as u64, &mut row)?;
        for &(g, v) in &row {
            marked[g as usize] = c;
            slot[g as usize] = v;
        }
        while r < old_cells.len() && old_cells[r] == c {
            let g = old_genes[r];
            let value = match marked.get(g as usize) {
                Some(&m) if m == c => {
                    marked[g as usize] = NONE;
                    Some(slot[g as usize])
                }
                _ => None,
            };
            out.cells.push(c);
            out.genes.push(g);
            out.old_rows.push(Some(r as u64));
            out.values.push(value);
            r += 1;
        }
        for &(g, v) in &row {
            if marked[g as usize] == c {
                marked[g as usize] = NONE;
                out.cells.push(c);
                out.genes.push(g);
                out.old_rows.push(None);
                out.values.push(Some(v));
            }
        }
    }
    if r < old_cells.len() {
        return Err(if old_cells[r] as usize >= n_cells {
            Error::corrupt(format!(
                "layers.lance of {shown} has rows of cell {} beyond its {n_cells} cells",
                old_cells[r]
            ))
        } else {
            unsorted()
        });
    }
    Ok(out)
}

/// Removes `what` key `key` (added by an earlier change) from the dataset at `path`: a new
/// version of its table without the column (Lance drops it in the metadata only).
pub fn delete_annotation(path: &str, what: Annotation, key: &str) -> Result<()> {
    let change = Change::begin(path)?;
    let table = change.open(what.role())?;
    let keys = |t: &LanceTable| -> Vec<String> {
        t.schema()
            .fields
            .iter()
            .filter(|f| {
                !what.reserved().contains(&f.name.as_str()) && what.owner_of(&f.data_type()) == what
            })
            .map(|f| f.name.clone())
            .collect()
    };
    let known = table.as_ref().map(keys).unwrap_or_default();
    let Some(mut table) = table.filter(|_| known.iter().any(|k| k == key)) else {
        return Err(Error::unknown_key(what.section(), key, &known));
    };
    change.check_changeable(what, key, &table)?;
    block_on(table.drop_columns(&[key]))
        .map_err(|e| change.failed(&format!("removing {key:?}"), e))?;
    let version = table.manifest().version;
    change.commit(what, key, version, None)
}
