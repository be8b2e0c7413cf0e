//! `NativeWriter`: the core `Writer` as a Python class. Arrays arrive as `bytes` of known
//! numpy dtypes; annotation tables arrive as any object with `__arrow_c_stream__` (pyarrow,
//! polars). The GIL is released while the core encodes and writes.

use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::{RecordBatch, RecordBatchReader};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};
use slaf::writer::{ChunkValues, Coo, CsrChunk, NewDataset, Pairwise, ValueType, Writer};

use crate::errors::IntoPy;

fn numbers<const N: usize, T>(
    bytes: &[u8],
    what: &str,
    from: fn([u8; N]) -> T,
) -> PyResult<Vec<T>> {
    if !bytes.len().is_multiple_of(N) {
        return Err(PyValueError::new_err(format!(
            "{what}: {} bytes is not a whole number of {N}-byte values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| from(c.try_into().expect("N bytes")))
        .collect())
}

/// A CSR chunk from `(indptr int64, indices uint32, data, dtype)` bytes.
fn chunk(
    indptr: &Bound<'_, PyBytes>,
    indices: &Bound<'_, PyBytes>,
    data: &Bound<'_, PyBytes>,
    dtype: &str,
) -> PyResult<CsrChunk> {
    let values = match dtype {
        "uint16" => ChunkValues::UInt16(numbers(data.as_bytes(), "data", u16::from_ne_bytes)?),
        "float32" => ChunkValues::Float32(numbers(data.as_bytes(), "data", f32::from_ne_bytes)?),
        other => {
            return Err(PyValueError::new_err(format!(
                "chunk values must be uint16 or float32, got {other}"
            )))
        }
    };
    Ok(CsrChunk {
        indptr: numbers(indptr.as_bytes(), "indptr", i64::from_ne_bytes)?,
        indices: numbers(indices.as_bytes(), "indices", u32::from_ne_bytes)?,
        values,
    })
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
}

impl NativeWriter {
    fn writer(&mut self) -> PyResult<&mut Writer> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this writer is already finished or aborted"))
    }
}

type LayerChunk<'py> = (
    String,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    String,
);

/// `(name, rows int64, cols int64, values float32)` of one obsp/varp key.
type PairwiseKey<'py> = (
    String,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
);

#[pymethods]
impl NativeWriter {
    /// Starts a new dataset.
    #[staticmethod]
    #[pyo3(signature = (path, n_cells, n_genes, value_type, layers, overwrite=false, rows_per_fragment=None))]
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
    ) -> PyResult<Self> {
        let value_type = ValueType::parse(value_type).py_err()?;
        let spec = NewDataset {
            n_cells,
            n_genes,
            value_type,
            layers,
            overwrite,
            rows_per_fragment,
        };
        let inner = py.detach(|| Writer::create(&path, spec)).py_err()?;
        Ok(Self { inner: Some(inner) })
    }

    /// Opens an existing dataset to append cells to it.
    #[staticmethod]
    fn append(py: Python<'_>, path: String) -> PyResult<Self> {
        let inner = py.detach(|| Writer::append(&path)).py_err()?;
        Ok(Self { inner: Some(inner) })
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

    /// X rows `(indptr, indices, data, dtype)`, their obs rows, and layers
    /// `[(name, indptr, indices, data, dtype)]` of the same cells.
    #[allow(clippy::too_many_arguments)]
    fn write_cells<'py>(
        &mut self,
        py: Python<'py>,
        indptr: Bound<'py, PyBytes>,
        indices: Bound<'py, PyBytes>,
        data: Bound<'py, PyBytes>,
        dtype: &str,
        obs: &Bound<'py, PyAny>,
        layers: Vec<LayerChunk<'py>>,
    ) -> PyResult<()> {
        let x = chunk(&indptr, &indices, &data, dtype)?;
        let obs = record_batch(obs)?;
        let layers = layers
            .iter()
            .map(|(name, p, i, d, t)| Ok((name.clone(), chunk(p, i, d, t)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let writer = self.writer()?;
        py.detach(|| writer.write_cells(x, &obs, layers)).py_err()
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
        let keys = keys
            .iter()
            .map(|(name, r, c, v)| {
                let to_u64 = |b: [u8; 8]| i64::from_ne_bytes(b) as u64;
                Ok((
                    name.clone(),
                    Coo {
                        rows: numbers(r.as_bytes(), "rows", to_u64)?,
                        cols: numbers(c.as_bytes(), "cols", to_u64)?,
                        values: numbers(v.as_bytes(), "values", f32::from_ne_bytes)?,
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
        py.detach(|| writer.finish()).py_err()
    }

    /// Discards everything written (the target is left as it was).
    fn abort(&mut self, py: Python<'_>) {
        if let Some(writer) = self.inner.take() {
            py.detach(|| drop(writer));
        }
    }
}
