//! Core errors → the exception classes defined in `slaf/errors.py` (one mapping, here).

use pyo3::prelude::*;
use slaf::ErrorKind;

/// The `slaf.errors` class raised for each kind of core error.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "DatasetNotFoundError",
        ErrorKind::NotADataset => "NotASLAFDatasetError",
        ErrorKind::InvalidConfig => "InvalidConfigError",
        ErrorKind::MissingTable => "MissingTableError",
        ErrorKind::InvalidSchema => "InvalidDatasetError",
        ErrorKind::OutOfRange => "SelectionIndexError",
        ErrorKind::UnknownName => "UnknownNameError",
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::Storage => "StorageError",
        ErrorKind::ResourceLimit => "ResourceLimitError",
        ErrorKind::Corrupt => "CorruptDatasetError",
    }
}

/// Converts a core error into the matching Python exception.
pub fn to_py(err: slaf::Error) -> PyErr {
    Python::attach(|py| {
        let class = py
            .import("slaf.errors")
            .and_then(|module| module.getattr(class_name(err.kind())));
        match class {
            Ok(class) => match class.call1((err.message().to_string(),)) {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            },
            // The package is always importable next to its native module; keep the message
            // even if it somehow is not.
            Err(_) => pyo3::exceptions::PyRuntimeError::new_err(err.to_string()),
        }
    })
}

/// `Result` of the core, converted.
pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for slaf::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
