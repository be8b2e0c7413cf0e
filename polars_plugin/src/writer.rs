//! `NativeWriter`: the core `Writer` as a Python class. Arrays arrive as objects exporting
//! `__arrow_c_array__` (pyarrow arrays, which wrap numpy arrays without a copy) and are read in
//! place; annotation tables arrive as any object with `__arrow_c_stream__` (pyarrow, polars).
//! The GIL is released while the core encodes and writes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{make_array, Array, ArrayRef};
use arrow::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{RecordBatch, RecordBatchReader};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use slaf::progress::Progress;
use slaf::writer::{
    check_replaceable, delete_annotation, fits_uint16, set_annotation, set_layer, Annotation, Coo,
    CsrChunk, NewDataset, Pairwise, ValueType, Writer,
};

use crate::errors::IntoPy;

/// The core's progress sink over a Python callable `(done, total)`. A progress bar must not
/// fail the job it shows, so an exception from it is printed and dropped.
fn progress_callback(callable: Py<PyAny>) -> Progress {
    Arc::new(move |done, total| {
        Python::attach(|py| {
            if let Err(e) = callable.call1(py, (done, total)) {
                e.print(py);
            }
        })
    })
}

/// An Arrow array from an object exporting `__arrow_c_array__` (no copy: the array keeps the
/// exporter's buffers alive until it is dropped).
fn array(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<ArrayRef> {
    let bad = |e: String| PyValueError::new_err(format!("{what}: {e}"));
    let (schema, array) = obj
        .call_method0("__arrow_c_array__")
        .map_err(|e| bad(format!("expected an Arrow array ({e})")))?
        .extract::<(Bound<'_, PyCapsule>, Bound<'_, PyCapsule>)>()?;
    let schema = schema.pointer_checked(Some(c"arrow_schema"))?;
    let array = array.pointer_checked(Some(c"arrow_array"))?;
    // SAFETY: capsules named "arrow_schema"/"arrow_array" hold an FFI_ArrowSchema and an
    // FFI_ArrowArray (Arrow PyCapsule interface). `from_raw` moves the array out and leaves a
    // released one behind, which the capsule's destructor then ignores; the schema is only
    // borrowed while `from_ffi` reads it, and the capsule outlives that.
    let data = unsafe {
        let array = FFI_ArrowArray::from_raw(array.as_ptr().cast::<FFI_ArrowArray>());
        let schema = &*schema.as_ptr().cast::<FFI_ArrowSchema>();
        from_ffi(array, schema)
    }
    .map_err(|e| bad(e.to_string()))?;
    Ok(make_array(data))
}

/// The annotation a config.json section name stands for.
fn annotation(section: &str) -> PyResult<Annotation> {
    Ok(match section {
        "obs" => Annotation::Obs,
        "var" => Annotation::Var,
        "obsm" => Annotation::Obsm,
        "varm" => Annotation::Varm,
        "layers" => Annotation::Layers,
        other => {
            return Err(PyValueError::new_err(format!(
                "no annotation section {other:?}"
            )))
        }
    })
}

/// A CSR chunk from `(indptr, indices, data)` Arrow arrays.
fn chunk(
    indptr: &Bound<'_, PyAny>,
    indices: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
) -> PyResult<CsrChunk> {
    CsrChunk::new(
        array(indptr, "indptr")?,
        array(indices, "indices")?,
        array(data, "data")?,
    )
    .py_err()
}

/// The values of an Arrow array as a `Vec` of `T` (cast first when the type differs).
fn values_as<T: arrow_array::ArrowPrimitiveType>(
    obj: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<Vec<T::Native>> {
    let a = array(obj, what)?;
    let a = arrow::compute::cast(&a, &T::DATA_TYPE)
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    if a.null_count() > 0 {
        return Err(PyValueError::new_err(format!("{what} has missing values")));
    }
    Ok(a.as_primitive::<T>().values().to_vec())
}

/// One record batch from an object exporting `__arrow_c_stream__`.
fn record_batch(obj: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let pointer = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
    // SAFETY: the capsule named "arrow_array_stream" holds an FFI_ArrowArrayStream (Arrow
    // PyCapsule interface); `from_raw` moves the stream out and leaves a released one behind,
    // which the capsule's destructor then ignores.
    let reader = unsafe {
        ArrowArrayStreamReader::from_raw(pointer.as_ptr().cast::<FFI_ArrowArrayStream>())
    }
    .map_err(|e| PyValueError::new_err(format!("reading an Arrow stream: {e}")))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(format!("reading an Arrow stream: {e}")))?;
    arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| PyValueError::new_err(format!("reading an Arrow stream: {e}")))
}

/// A dataset being written (use `slaf.convert`).
#[pyclass(module = "slaf._native")]
pub struct NativeWriter {
    inner: Option<Writer>,
    /// `finish` returned: the write is complete and visible.
    committed: bool,
}

impl NativeWriter {
    fn writer(&mut self) -> PyResult<&mut Writer> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this writer is already finished or aborted"))
    }
}

/// `(name, indptr, indices, data)` of one layer's rows.
type LayerChunk<'py> = (
    String,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

/// `(name, rows, cols, values)` of one obsp/varp key.
type PairwiseKey<'py> = (
    String,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

#[pymethods]
impl NativeWriter {
    /// Starts a new dataset.
    #[staticmethod]
    #[pyo3(signature = (path, n_cells, n_genes, value_type, layers, overwrite=false, rows_per_fragment=None, storage_options=None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        path: String,
        n_cells: u64,
        n_genes: usize,
        value_type: &str,
        layers: Vec<String>,
        overwrite: bool,
        rows_per_fragment: Option<usize>,
        storage_options: Option<HashMap<String, String>>,
    ) -> PyResult<Self> {
        let value_type = ValueType::parse(value_type).py_err()?;
        let spec = NewDataset {
            n_cells,
            n_genes,
            value_type,
            layers,
            overwrite,
            rows_per_fragment,
            storage_options: storage_options.unwrap_or_default(),
        };
        let inner = py.detach(|| Writer::create(&path, spec)).py_err()?;
        Ok(Self {
            inner: Some(inner),
            committed: false,
        })
    }

    /// Opens an existing dataset to append cells to it (waits while another writer holds it).
    #[staticmethod]
    fn append(py: Python<'_>, path: String) -> PyResult<Self> {
        let inner = py.detach(|| Writer::append(&path)).py_err()?;
        Ok(Self {
            inner: Some(inner),
            committed: false,
        })
    }

    /// Builds (or rebuilds) the gene-major companion and axis statistics of the dataset at
    /// `path`; `progress(done, total)` hears of rows read and written.
    #[staticmethod]
    #[pyo3(signature = (path, progress=None))]
    fn index_gene_major(py: Python<'_>, path: String, progress: Option<Py<PyAny>>) -> PyResult<()> {
        let progress = progress.map(progress_callback);
        py.detach(|| slaf::gene_major::index_gene_major(&path, progress.as_ref()))
            .py_err()
    }

    /// Calls `progress(done, total)` with the rows of the gene-major build at commit.
    fn set_index_progress(&mut self, progress: Py<PyAny>) -> PyResult<()> {
        self.writer()?
            .set_index_progress(progress_callback(progress));
        Ok(())
    }

    /// Whether `finish` builds the gene-major companion (default yes; no leaves an existing
    /// one stale).
    fn set_gene_index(&mut self, build: bool) -> PyResult<()> {
        self.writer()?.set_gene_index(build);
        Ok(())
    }

    /// Fails unless `--overwrite` may replace what is at `path` by a dataset converted from
    /// `inputs` (only a SLAF dataset that holds none of them).
    #[staticmethod]
    fn check_replaceable(py: Python<'_>, path: String, inputs: Vec<String>) -> PyResult<()> {
        py.detach(|| check_replaceable(&path, &inputs)).py_err()
    }

    /// Sets `obs`/`var` column or `obsm`/`varm` embedding `key` of the dataset at `path` to
    /// `values` (an Arrow array in integer-id order; a fixed-size list for obsm/varm).
    #[staticmethod]
    fn set_annotation(
        py: Python<'_>,
        path: String,
        section: &str,
        key: String,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let what = annotation(section)?;
        let values = array(values, &format!("{section}[{key:?}]"))?;
        py.detach(|| set_annotation(&path, what, &key, values))
            .py_err()
    }

    /// Sets layer `key` of the dataset at `path` to the CSR matrix `(indptr, indices, data)`.
    #[staticmethod]
    fn set_layer(
        py: Python<'_>,
        path: String,
        key: String,
        indptr: &Bound<'_, PyAny>,
        indices: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let x = chunk(indptr, indices, data)?;
        py.detach(|| set_layer(&path, &key, &x)).py_err()
    }

    /// Removes key `key` of `section` (one an earlier change added) from the dataset at `path`.
    #[staticmethod]
    fn delete_annotation(py: Python<'_>, path: String, section: &str, key: String) -> PyResult<()> {
        let what = annotation(section)?;
        py.detach(|| delete_annotation(&path, what, &key)).py_err()
    }

    /// What was found and done before writing (leftovers removed, versions rolled back).
    #[getter]
    fn notes(&mut self) -> PyResult<Vec<String>> {
        Ok(self.writer()?.notes().to_vec())
    }

    /// Whether `finish` completed: the write happened and is visible.
    #[getter]
    fn committed(&self) -> bool {
        self.committed
    }

    #[getter]
    fn value_type(&mut self) -> PyResult<&'static str> {
        Ok(self.writer()?.value_type().name())
    }

    #[getter]
    fn layer_names(&mut self) -> PyResult<Vec<String>> {
        Ok(self.writer()?.layer_names().to_vec())
    }

    #[getter]
    fn n_genes(&mut self) -> PyResult<usize> {
        Ok(self.writer()?.n_genes())
    }

    #[getter]
    fn n_cells(&mut self) -> PyResult<u64> {
        Ok(self.writer()?.n_cells())
    }

    fn write_genes(&mut self, py: Python<'_>, var: &Bound<'_, PyAny>) -> PyResult<()> {
        let batch = record_batch(var)?;
        let writer = self.writer()?;
        py.detach(|| writer.write_genes(&batch)).py_err()
    }

    fn check_genes(&mut self, gene_ids: Vec<String>, source: &str) -> PyResult<()> {
        self.writer()?.check_genes(&gene_ids, source).py_err()
    }

    fn begin_source(&mut self, file_path: &str, n_cells: u64) -> PyResult<()> {
        self.writer()?.begin_source(file_path, n_cells);
        Ok(())
    }

    /// X rows `(indptr, indices, data)` as Arrow arrays (any integer / numeric types), their
    /// obs rows, and layers `[(name, indptr, indices, data)]` of the same cells.
    fn write_cells<'py>(
        &mut self,
        py: Python<'py>,
        indptr: &Bound<'py, PyAny>,
        indices: &Bound<'py, PyAny>,
        data: &Bound<'py, PyAny>,
        obs: &Bound<'py, PyAny>,
        layers: Vec<LayerChunk<'py>>,
    ) -> PyResult<()> {
        let x = chunk(indptr, indices, data)?;
        let obs = record_batch(obs)?;
        let layers = layers
            .iter()
            .map(|(name, p, i, d)| Ok((name.clone(), chunk(p, i, d)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let writer = self.writer()?;
        // The chunk's arrays are dropped here, without the GIL: releasing numpy-backed buffers
        // takes the GIL itself.
        py.detach(move || {
            let done = writer.write_cells(&x, &obs, &layers);
            drop((x, layers));
            done
        })
        .py_err()
    }

    /// Whether every value of an Arrow array (any numeric type) is an integer in 0..65535.
    #[staticmethod]
    fn fits_uint16(py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<bool> {
        let values = array(values, "values")?;
        py.detach(move || fits_uint16(values.as_ref())).py_err()
    }

    /// obsp (`which="obsp"`) or varp keys as `[(name, rows int64, cols int64, values float32)]`.
    fn write_pairwise<'py>(
        &mut self,
        py: Python<'py>,
        which: &str,
        keys: Vec<PairwiseKey<'py>>,
    ) -> PyResult<()> {
        let which = match which {
            "obsp" => Pairwise::Obsp,
            "varp" => Pairwise::Varp,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown pairwise kind {other:?}"
                )))
            }
        };
        let ids = |obj: &Bound<'py, PyAny>, what: &str| -> PyResult<Vec<u64>> {
            values_as::<Int64Type>(obj, what)?
                .into_iter()
                .map(|i| {
                    u64::try_from(i)
                        .map_err(|_| PyValueError::new_err(format!("{what}: negative id {i}")))
                })
                .collect()
        };
        let keys = keys
            .iter()
            .map(|(name, r, c, v)| {
                Ok((
                    name.clone(),
                    Coo {
                        rows: ids(r, "rows")?,
                        cols: ids(c, "cols")?,
                        values: values_as::<Float32Type>(v, "values")?,
                    },
                ))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let writer = self.writer()?;
        py.detach(|| writer.write_pairwise(which, keys)).py_err()
    }

    /// `uns` as JSON text.
    fn set_uns(&mut self, json: &str) -> PyResult<()> {
        self.writer()?.set_uns_json(json).py_err()
    }

    /// Writes config.json and moves the dataset into place.
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        let writer = self
            .inner
            .take()
            .ok_or_else(|| PyValueError::new_err("this writer is already finished or aborted"))?;
        py.detach(|| writer.finish()).py_err()?;
        self.committed = true;
        Ok(())
    }

    /// Discards everything written (the target is left as it was).
    fn abort(&mut self, py: Python<'_>) {
        if let Some(writer) = self.inner.take() {
            py.detach(|| drop(writer));
        }
    }
}
