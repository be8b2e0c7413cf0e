//! Table-function arguments → core types: selectors, strings, integers.

use std::collections::HashMap;

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
pub fn varchar_map() -> LogicalTypeHandle {
    LogicalTypeHandle::map(&varchar(), &varchar())
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

/// A named parameter as given, `None` when absent; NULL is an error naming the parameter (a
/// NULL from e.g. `getvariable('typo')` must not silently mean "everything").
fn named(bind: &BindInfo, name: &str) -> Result<Option<Value>, BoxError> {
    match bind.get_named_parameter(name) {
        None => Ok(None),
        Some(v) if v.is_null() => {
            Err(format!("{name} := NULL: pass a value, or leave {name} out for its default").into())
        }
        Some(v) => Ok(Some(v)),
    }
}

/// An optional VARCHAR named parameter.
pub fn named_string(bind: &BindInfo, name: &str) -> Result<Option<String>, BoxError> {
    Ok(named(bind, name)?.map(|v| v.to_string()))
}

/// An optional non-negative integer named parameter.
pub fn named_count(bind: &BindInfo, name: &str) -> Result<Option<usize>, BoxError> {
    match named(bind, name)? {
        None => Ok(None),
        Some(v) => {
            let n = v.to_int64();
            usize::try_from(n)
                .map(Some)
                .map_err(|_| format!("{name} := {n}: must be a non-negative integer").into())
        }
    }
}

/// An optional BOOLEAN named parameter.
pub fn named_bool(bind: &BindInfo, name: &str) -> Result<Option<bool>, BoxError> {
    Ok(named(bind, name)?.map(|v| v.to_bool()))
}

/// `storage_options := MAP {'aws_endpoint': '…', …}`: object-store options (credentials,
/// endpoint, region) for an `s3://` dataset; empty when absent.
///
/// The extension API gives no access to a MAP's entries, only to the value cast to VARCHAR,
/// which DuckDB writes as `{key=value, key='quoted, value'}` (quoting, with `\'` escapes,
/// every key or value holding a special character): that text is parsed back here.
pub fn named_storage_options(bind: &BindInfo) -> Result<HashMap<String, String>, BoxError> {
    let Some(value) = named(bind, "storage_options")? else {
        return Ok(HashMap::new());
    };
    if value.logical_type_id() != LogicalTypeId::Map {
        return Err(
            "storage_options := expects a MAP, e.g. MAP {'aws_region': 'us-east-1'}".into(),
        );
    }
    parse_map_text(&value.to_string())
        .map_err(|why| format!("storage_options := could not be read: {why}").into())
}

/// Parses DuckDB's text form of a `MAP(VARCHAR, VARCHAR)`.
fn parse_map_text(text: &str) -> Result<HashMap<String, String>, String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or("its text is not a map")?;
    let mut chars = inner.chars().peekable();
    let mut out = HashMap::new();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key = map_item(&mut chars, '=')?;
        if chars.next() != Some('=') {
            return Err(format!("no '=' after key {key:?}"));
        }
        let value = map_item(&mut chars, ',')?;
        out.insert(key, value);
        match chars.next() {
            None => return Ok(out),
            Some(',') => {}
            Some(c) => return Err(format!("unexpected {c:?} after a value")),
        }
    }
}

/// One key or value: `'quoted \' text'` or plain text up to `stop`.
fn map_item(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    stop: char,
) -> Result<String, String> {
    let mut item = String::new();
    if chars.next_if_eq(&'\'').is_none() {
        while let Some(c) = chars.next_if(|c| *c != stop) {
            item.push(c);
        }
        return Ok(item.trim_end().to_string());
    }
    loop {
        match chars.next() {
            None => return Err("an unterminated quoted string".into()),
            Some('\\') => item.push(chars.next().ok_or("a dangling escape")?),
            Some('\'') => return Ok(item),
            Some(c) => item.push(c),
        }
    }
}

/// An optional VARCHAR[] named parameter.
pub fn named_strings(bind: &BindInfo, name: &str) -> Result<Option<Vec<String>>, BoxError> {
    match named(bind, name)? {
        None => Ok(None),
        Some(v) => {
            let items = v
                .to_list()
                .ok_or_else(|| format!("{name} := must be a list of column names"))?;
            if items.iter().any(Value::is_null) {
                return Err(format!("{name} := contains NULL").into());
            }
            Ok(Some(items.iter().map(|i| i.to_string()).collect()))
        }
    }
}

/// A cell/gene selector from a named parameter: a list of names (VARCHAR[]), a list of
/// integer ids, a single name or id, or a Python-style range string `'start:stop[:step]'`.
pub fn named_selector(bind: &BindInfo, name: &str) -> Result<Selector, BoxError> {
    match named(bind, name)? {
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
        if items.iter().any(Value::is_null) {
            return Err(format!("{name} := contains NULL").into());
        }
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
        return Ok(slaf::parse_range(&text).unwrap_or(Selector::Names(vec![text])));
    }
    Err(format!(
        "{name} := expects a list of names or integer ids, or a 'start:stop[:step]' range; got {id:?}"
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::parse_map_text;

    #[test]
    fn map_text_is_read_back() {
        let map = parse_map_text(
            r"{aws_endpoint='http://127.0.0.1:5555', tok='ab=c, d}{\'q', k=v, empty=}",
        )
        .unwrap();
        assert_eq!(map["aws_endpoint"], "http://127.0.0.1:5555");
        assert_eq!(map["tok"], "ab=c, d}{'q");
        assert_eq!(map["k"], "v");
        assert_eq!(map["empty"], "");
        assert!(parse_map_text("{}").unwrap().is_empty());
        assert!(parse_map_text("{a='open}").is_err());
        assert!(parse_map_text("[1, 2]").is_err());
    }
}
