//! Table-function arguments → core types: selectors, strings, integers.

use duckdb::core::{LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, Value};
use slaf::Selector;

pub type BoxError = Box<dyn std::error::Error>;

/// DuckDB type handles for parameter declarations.
pub fn varchar() -> LogicalTypeHandle {
    LogicalTypeHandle::from(LogicalTypeId::Varchar)
}
pub fn bigint() -> LogicalTypeHandle {
    LogicalTypeHandle::from(LogicalTypeId::Bigint)
}
pub fn any() -> LogicalTypeHandle {
    LogicalTypeHandle::from(LogicalTypeId::Any)
}
pub fn varchar_list() -> LogicalTypeHandle {
    LogicalTypeHandle::list(&varchar())
}

fn is_integer(id: LogicalTypeId) -> bool {
    matches!(
        id,
        LogicalTypeId::Tinyint
            | LogicalTypeId::Smallint
            | LogicalTypeId::Integer
            | LogicalTypeId::Bigint
            | LogicalTypeId::UTinyint
            | LogicalTypeId::USmallint
            | LogicalTypeId::UInteger
            | LogicalTypeId::UBigint
            | LogicalTypeId::Hugeint
            | LogicalTypeId::IntegerLiteral
    )
}

fn is_string(id: LogicalTypeId) -> bool {
    matches!(id, LogicalTypeId::Varchar | LogicalTypeId::StringLiteral)
}

/// A required VARCHAR positional parameter.
pub fn positional_string(bind: &BindInfo, index: u64, what: &str) -> Result<String, BoxError> {
    let value = bind.get_parameter(index);
    if value.is_null() {
        return Err(format!("{what} must not be NULL").into());
    }
    Ok(value.to_string())
}

/// An optional VARCHAR named parameter.
pub fn named_string(bind: &BindInfo, name: &str) -> Option<String> {
    bind.get_named_parameter(name)
        .filter(|v| !v.is_null())
        .map(|v| v.to_string())
}

/// An optional non-negative integer named parameter.
pub fn named_count(bind: &BindInfo, name: &str) -> Result<Option<usize>, BoxError> {
    match bind.get_named_parameter(name).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => {
            let n = v.to_int64();
            usize::try_from(n)
                .map(Some)
                .map_err(|_| format!("{name} := {n}: must be a non-negative integer").into())
        }
    }
}

/// An optional VARCHAR[] named parameter.
pub fn named_strings(bind: &BindInfo, name: &str) -> Result<Option<Vec<String>>, BoxError> {
    match bind.get_named_parameter(name).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => {
            let items = v
                .to_list()
                .ok_or_else(|| format!("{name} := must be a list of column names"))?;
            Ok(Some(items.iter().map(|i| i.to_string()).collect()))
        }
    }
}

/// A cell/gene selector from a named parameter: a list of names (VARCHAR[]), a list of
/// integer ids, a single name or id, or a Python-style range string `'start:stop[:step]'`.
pub fn named_selector(bind: &BindInfo, name: &str) -> Result<Selector, BoxError> {
    match bind.get_named_parameter(name).filter(|v| !v.is_null()) {
        None => Ok(Selector::All),
        Some(v) => selector(&v, name),
    }
}

fn selector(value: &Value, name: &str) -> Result<Selector, BoxError> {
    let id = value.logical_type_id();
    if id == LogicalTypeId::List {
        let items = value.to_list().unwrap_or_default();
        let Some(first) = items.first() else {
            return Ok(Selector::Ids(Vec::new()));
        };
        let item_type = first.logical_type_id();
        if is_string(item_type) {
            return Ok(Selector::Names(
                items.iter().map(|i| i.to_string()).collect(),
            ));
        }
        if is_integer(item_type) {
            let ids = items
                .iter()
                .map(|i| {
                    if i.is_null() {
                        Err(format!("{name} := contains NULL"))
                    } else {
                        Ok(i.to_int64())
                    }
                })
                .collect::<Result<Vec<i64>, String>>()?;
            return Ok(Selector::Ids(ids));
        }
        return Err(format!(
            "{name} := expects a list of names (VARCHAR[]) or integer ids; got a list of {item_type:?}"
        )
        .into());
    }
    if is_integer(id) {
        return Ok(Selector::Ids(vec![value.to_int64()]));
    }
    if is_string(id) {
        let text = value.to_string();
        return Ok(parse_range(&text).unwrap_or(Selector::Names(vec![text])));
    }
    Err(format!(
        "{name} := expects a list of names or integer ids, or a 'start:stop[:step]' range; got {id:?}"
    )
    .into())
}

/// `'start:stop[:step]'` with optional, possibly negative, bounds (Python slice syntax).
fn parse_range(text: &str) -> Option<Selector> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let bound = |s: &str| -> Option<Option<i64>> {
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let start = bound(parts[0])?;
    let stop = bound(parts[1])?;
    let step = match parts.get(2) {
        Some(s) => bound(s)?.unwrap_or(1),
        None => 1,
    };
    Some(Selector::Range { start, stop, step })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_python_slices() {
        assert_eq!(
            parse_range("10:20"),
            Some(Selector::Range {
                start: Some(10),
                stop: Some(20),
                step: 1
            })
        );
        assert_eq!(
            parse_range(":-1:2"),
            Some(Selector::Range {
                start: None,
                stop: Some(-1),
                step: 2
            })
        );
        assert_eq!(parse_range("AAAC-1"), None);
        assert_eq!(parse_range("a:b"), None);
    }
}
