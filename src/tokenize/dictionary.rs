//! Loading token dictionaries (`name → token id`) and gene-median dictionaries
//! (`name → median`) from JSON, TSV and Python pickle files.
//!
//! * **JSON**: one object, `{"<pad>": 0, "ENSG00000000003": 4, ...}`. A repeated key keeps its
//!   last value, as Python's `json.load` does.
//! * **TSV**: two tab-separated columns per line, key then value. Blank lines and lines starting
//!   with `#` are skipped; the first line is taken as a header when its value column does not
//!   parse. A repeated key is an error.
//! * **Pickle**: a `dict[str, int]` / `dict[str, float]` (Geneformer publishes its dictionaries
//!   this way). Values may also be numpy scalars (`np.int64`, `np.float32`, `np.float64`, ...),
//!   decoded from their raw bytes. A pickled scalar names its dtype (`'f8'`, `'i8'`, ...) only
//!   the first time a dtype appears, so when the name is not at hand the dictionary kind decides:
//!   signed integers in token dictionaries, float32/float64 (by byte length) in median
//!   dictionaries; byte order is little-endian unless the pickle says `>`.
//!
//! The format comes from the file extension (`.json`; `.tsv`, `.tab`, `.txt`; `.pkl`, `.pickle`),
//! else from the content (pickle protocol marker, a leading `{`, otherwise TSV). Token ids must be
//! non-negative and unique; medians must be finite and positive (they divide expression values).
//! Every error names the file and the offending key or line.

use std::collections::HashMap;
use std::path::Path;

use serde_pickle::{DeOptions, HashableValue, Value as PickleValue};

use crate::{Error, Result};

/// Token dictionary: gene or special-token name → token id.
pub type TokenDictionary = HashMap<String, i64>;

/// Gene-median dictionary: gene name → non-zero median expression over the training corpus.
pub type GeneMedianDictionary = HashMap<String, f64>;

/// On-disk format of a dictionary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictionaryFormat {
    /// A JSON object.
    Json,
    /// Two tab-separated columns.
    Tsv,
    /// A Python pickle of a dict.
    Pickle,
}

impl DictionaryFormat {
    /// The format named by a file extension, if it is a known one.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Self::Json),
            "tsv" | "tab" | "txt" => Some(Self::Tsv),
            "pkl" | "pickle" | "pck" => Some(Self::Pickle),
            _ => None,
        }
    }

    /// The format guessed from the content: pickle protocol 2+ starts with `0x80`, JSON with
    /// `{`; anything else is read as TSV.
    pub fn sniff(bytes: &[u8]) -> Self {
        if bytes.first() == Some(&0x80) {
            return Self::Pickle;
        }
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Json,
            _ => Self::Tsv,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Tsv => "TSV",
            Self::Pickle => "pickle",
        }
    }
}

/// Loads a token dictionary (`name → token id`) from a JSON, TSV or pickle file.
pub fn load_token_dictionary(path: impl AsRef<Path>) -> Result<TokenDictionary> {
    load::<TokenId>(path.as_ref())
}

/// Loads a gene-median dictionary (`name → median`) from a JSON, TSV or pickle file.
pub fn load_gene_medians(path: impl AsRef<Path>) -> Result<GeneMedianDictionary> {
    load::<Median>(path.as_ref())
}

/// Parses a token dictionary from bytes; `source` names them in errors (e.g. a file name).
pub fn parse_token_dictionary(
    bytes: &[u8],
    format: DictionaryFormat,
    source: &str,
) -> Result<TokenDictionary> {
    parse::<TokenId>(bytes, format, source)
}

/// Parses a gene-median dictionary from bytes; `source` names them in errors.
pub fn parse_gene_medians(
    bytes: &[u8],
    format: DictionaryFormat,
    source: &str,
) -> Result<GeneMedianDictionary> {
    parse::<Median>(bytes, format, source)
}

/// What a dictionary maps to; one implementation per dictionary kind.
trait Entry: Sized + Copy {
    /// The public value type.
    type Out: Copy;
    /// "token dictionary" / "gene-median dictionary", for messages.
    const KIND: &'static str;
    /// What a valid value is, for "is not ..." messages.
    const EXPECTED: &'static str;
    fn into_out(self) -> Self::Out;
    /// Checks across entries, after each value passed `check`.
    fn check_all(_dict: &HashMap<String, Self::Out>) -> std::result::Result<(), String> {
        Ok(())
    }
    fn from_json(v: &serde_json::Value) -> Option<Self>;
    fn from_text(s: &str) -> Option<Self>;
    fn from_pickle(v: &PickleValue) -> Option<Self>;
    /// Why the value is unusable, if it is.
    fn check(self) -> std::result::Result<(), String>;
}

#[derive(Clone, Copy)]
struct TokenId(i64);

#[derive(Clone, Copy)]
struct Median(f64);

impl Entry for TokenId {
    type Out = i64;
    const KIND: &'static str = "token dictionary";
    const EXPECTED: &'static str = "an integer token id";

    fn into_out(self) -> i64 {
        self.0
    }
    fn check_all(dict: &HashMap<String, i64>) -> std::result::Result<(), String> {
        // Two names sharing an id would share an embedding row: reject.
        let mut ids: Vec<(i64, &str)> = dict.iter().map(|(k, &v)| (v, k.as_str())).collect();
        ids.sort_unstable();
        match ids.windows(2).find(|w| w[0].0 == w[1].0) {
            Some(w) => Err(format!(
                "keys '{}' and '{}' share token id {}",
                w[0].1, w[1].1, w[0].0
            )),
            None => Ok(()),
        }
    }

    fn from_json(v: &serde_json::Value) -> Option<Self> {
        v.as_i64().map(Self)
    }
    fn from_text(s: &str) -> Option<Self> {
        s.parse().ok().map(Self)
    }
    fn from_pickle(v: &PickleValue) -> Option<Self> {
        match v {
            PickleValue::I64(i) => Some(Self(*i)),
            other => numpy_scalar(other).and_then(|s| s.as_int()).map(Self),
        }
    }
    fn check(self) -> std::result::Result<(), String> {
        if self.0 < 0 {
            return Err(format!("token id {} is negative", self.0));
        }
        Ok(())
    }
}

impl Entry for Median {
    type Out = f64;
    const KIND: &'static str = "gene-median dictionary";
    const EXPECTED: &'static str = "a number";

    fn into_out(self) -> f64 {
        self.0
    }

    fn from_json(v: &serde_json::Value) -> Option<Self> {
        v.as_f64().map(Self)
    }
    fn from_text(s: &str) -> Option<Self> {
        s.parse().ok().map(Self)
    }
    fn from_pickle(v: &PickleValue) -> Option<Self> {
        match v {
            PickleValue::F64(f) => Some(Self(*f)),
            PickleValue::I64(i) => Some(Self(*i as f64)),
            other => numpy_scalar(other).and_then(|s| s.as_float()).map(Self),
        }
    }
    fn check(self) -> std::result::Result<(), String> {
        if !(self.0.is_finite() && self.0 > 0.0) {
            return Err(format!(
                "median {} must be finite and > 0 (expression values are divided by it)",
                self.0
            ));
        }
        Ok(())
    }
}

fn load<T: Entry>(path: &Path) -> Result<HashMap<String, T::Out>> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::not_found(format!("{}: file '{shown}' does not exist", T::KIND))
        } else {
            Error::storage(format!("reading {} '{shown}'", T::KIND), e)
        }
    })?;
    let format =
        DictionaryFormat::from_path(path).unwrap_or_else(|| DictionaryFormat::sniff(&bytes));
    parse::<T>(&bytes, format, &shown)
}

fn parse<T: Entry>(
    bytes: &[u8],
    format: DictionaryFormat,
    source: &str,
) -> Result<HashMap<String, T::Out>> {
    let err = |problem: String| {
        Error::invalid_argument(format!(
            "{} '{source}' ({}): {problem}",
            T::KIND,
            format.name()
        ))
    };
    let entries: Vec<(String, T)> = match format {
        DictionaryFormat::Json => parse_json::<T>(bytes),
        DictionaryFormat::Tsv => parse_tsv::<T>(bytes),
        DictionaryFormat::Pickle => parse_pickle::<T>(bytes),
    }
    .map_err(err)?;
    if entries.is_empty() {
        return Err(err("the dictionary is empty".into()));
    }
    let mut out = HashMap::with_capacity(entries.len());
    for (key, value) in entries {
        value
            .check()
            .map_err(|p| err(format!("key '{key}': {p}")))?;
        out.insert(key, value.into_out());
    }
    T::check_all(&out).map_err(err)?;
    Ok(out)
}

fn parse_json<T: Entry>(bytes: &[u8]) -> std::result::Result<Vec<(String, T)>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(format!(
            "expected a JSON object mapping names to values, found {}",
            json_type(&value)
        ));
    };
    map.into_iter()
        .map(|(k, v)| match T::from_json(&v) {
            Some(t) => Ok((k, t)),
            None => Err(format!("key '{k}': value {v} is not {}", T::EXPECTED)),
        })
        .collect()
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn parse_tsv<T: Entry>(bytes: &[u8]) -> std::result::Result<Vec<(String, T)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let mut entries = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 2 {
            return Err(format!(
                "line {line_no}: expected 2 tab-separated columns, found {}",
                fields.len()
            ));
        }
        let (key, raw) = (fields[0].trim(), fields[1].trim());
        let value = T::from_text(raw);
        let is_header = std::mem::take(&mut first) && value.is_none();
        if is_header {
            continue;
        }
        let Some(value) = value else {
            return Err(format!(
                "line {line_no}: value '{raw}' of key '{key}' is not {}",
                T::EXPECTED
            ));
        };
        if key.is_empty() {
            return Err(format!("line {line_no}: empty key"));
        }
        if let Some(prev) = seen.insert(key, line_no) {
            return Err(format!("line {line_no}: key '{key}' repeats line {prev}"));
        }
        entries.push((key.to_string(), value));
    }
    Ok(entries)
}

fn parse_pickle<T: Entry>(bytes: &[u8]) -> std::result::Result<Vec<(String, T)>, String> {
    // keep_restore_state turns `REDUCE` of unknown classes (numpy scalars) into their argument
    // tuple instead of an empty dict, so the scalar bytes survive; other unknown globals become
    // None and are reported as bad values. serde-pickle loses count of memo entries nested in
    // restored state (numpy shares one dtype object among scalars), so a shared entry can only
    // be read once; replace_recursive_structures reads the later copies as None instead of
    // failing, and `numpy_scalar` copes with a missing dtype.
    let options = DeOptions::new()
        .decode_strings()
        .keep_restore_state()
        .replace_unresolved_globals()
        .replace_recursive_structures();
    let value = serde_pickle::value_from_slice(bytes, options)
        .map_err(|e| format!("not a readable pickle: {e}"))?;
    let PickleValue::Dict(map) = value else {
        return Err(format!(
            "expected a pickled dict, found {}",
            pickle_type(&value)
        ));
    };
    map.into_iter()
        .map(|(k, v)| {
            let key = match k {
                HashableValue::String(s) => s,
                HashableValue::Bytes(b) => {
                    String::from_utf8(b).map_err(|_| "a bytes key is not UTF-8".to_string())?
                }
                other => return Err(format!("key {other} is not a string")),
            };
            match T::from_pickle(&v) {
                Some(t) => Ok((key, t)),
                None => Err(format!(
                    "key '{key}': value {} is not {}",
                    short(&v),
                    T::EXPECTED
                )),
            }
        })
        .collect()
}

fn pickle_type(v: &PickleValue) -> &'static str {
    match v {
        PickleValue::None => "None",
        PickleValue::Bool(_) => "a bool",
        PickleValue::I64(_) | PickleValue::Int(_) => "an int",
        PickleValue::F64(_) => "a float",
        PickleValue::Bytes(_) => "bytes",
        PickleValue::String(_) => "a str",
        PickleValue::List(_) => "a list",
        PickleValue::Tuple(_) => "a tuple or object",
        PickleValue::Set(_) | PickleValue::FrozenSet(_) => "a set",
        PickleValue::Dict(_) => "a dict",
    }
}

/// A value for an error message, cut short: pickled objects can be large.
fn short(v: &PickleValue) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=60).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// A numpy scalar as it comes out of the pickle: dtype kind when known, byte order, raw bytes.
struct NumpyScalar<'a> {
    /// `'f'`, `'i'`, `'u'`, ... from the dtype name, when the pickle still has it.
    kind: Option<char>,
    big_endian: bool,
    raw: &'a [u8],
}

/// Recognises a pickled numpy scalar. numpy pickles `np.float64(x)` as
/// `numpy.core.multiarray.scalar(dtype, raw_bytes)`, and a dtype as `REDUCE(numpy.dtype,
/// ('f8', False, True))` followed by `BUILD` with state `(3, byteorder, ...)`. Read back with
/// `keep_restore_state`, the dtype is the state tuple where it was built, the argument tuple
/// where a later scalar refers to the memoised dtype, or None (see `parse_pickle`).
fn numpy_scalar(v: &PickleValue) -> Option<NumpyScalar<'_>> {
    let PickleValue::Tuple(parts) = v else {
        return None;
    };
    let [dtype, PickleValue::Bytes(raw)] = parts.as_slice() else {
        return None;
    };
    let (mut kind, mut big_endian) = (None, false);
    match dtype {
        PickleValue::Tuple(t) => match t.first() {
            // Argument tuple: ('f8', False, True).
            Some(PickleValue::String(name)) => {
                big_endian = name.starts_with('>');
                kind = name.trim_start_matches(['<', '>', '|', '=']).chars().next();
            }
            // State tuple: (3, '<', None, ...).
            Some(PickleValue::I64(_)) => {
                big_endian = matches!(t.get(1), Some(PickleValue::String(o)) if o == ">");
            }
            _ => return None,
        },
        PickleValue::None => {}
        _ => return None,
    }
    Some(NumpyScalar {
        kind,
        big_endian,
        raw,
    })
}

impl NumpyScalar<'_> {
    fn bytes<const N: usize>(&self) -> Option<[u8; N]> {
        let mut b: [u8; N] = self.raw.try_into().ok()?;
        if self.big_endian {
            b.reverse();
        }
        Some(b)
    }

    fn int(&self, unsigned: bool) -> Option<i64> {
        match (self.raw.len(), unsigned) {
            (1, false) => self.bytes::<1>().map(|b| i64::from(i8::from_le_bytes(b))),
            (2, false) => self.bytes::<2>().map(|b| i64::from(i16::from_le_bytes(b))),
            (4, false) => self.bytes::<4>().map(|b| i64::from(i32::from_le_bytes(b))),
            (8, false) => self.bytes::<8>().map(i64::from_le_bytes),
            (1, true) => self.bytes::<1>().map(|b| i64::from(b[0])),
            (2, true) => self.bytes::<2>().map(|b| i64::from(u16::from_le_bytes(b))),
            (4, true) => self.bytes::<4>().map(|b| i64::from(u32::from_le_bytes(b))),
            (8, true) => self
                .bytes::<8>()
                .and_then(|b| i64::try_from(u64::from_le_bytes(b)).ok()),
            _ => None,
        }
    }

    fn float(&self) -> Option<f64> {
        match self.raw.len() {
            4 => self.bytes::<4>().map(|b| f64::from(f32::from_le_bytes(b))),
            8 => self.bytes::<8>().map(f64::from_le_bytes),
            _ => None,
        }
    }

    /// As an integer: numpy ints, or any scalar whose dtype name was lost.
    fn as_int(&self) -> Option<i64> {
        match self.kind {
            None | Some('i') => self.int(false),
            Some('u') => self.int(true),
            _ => None,
        }
    }

    /// As a float: numpy floats and ints, or any scalar whose dtype name was lost.
    fn as_float(&self) -> Option<f64> {
        match self.kind {
            None | Some('f') => self.float(),
            Some('i') => self.int(false).map(|i| i as f64),
            Some('u') => self.int(true).map(|i| i as f64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// A fresh temp directory per test, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("slaf-tokenize-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(file);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn expected_tokens() -> TokenDictionary {
        [("<pad>", 0), ("<mask>", 1), ("ENSG1", 2), ("ENSG2", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn pickle_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
        serde_pickle::to_vec(value, serde_pickle::SerOptions::new()).unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn invalid(e: Error, needles: &[&str]) {
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        for n in needles {
            assert!(e.message().contains(n), "'{n}' not in: {e}");
        }
    }

    #[test]
    fn token_dictionary_json_tsv_pickle() {
        let dir = TempDir::new("tokens");
        let json = dir.write(
            "tokens.json",
            br#"{"<pad>": 0, "<mask>": 1, "ENSG1": 2, "ENSG2": 3}"#,
        );
        let tsv = dir.write(
            "tokens.tsv",
            b"name\ttoken\n<pad>\t0\n<mask>\t1\r\n\n# comment\nENSG1\t2\nENSG2\t3\n",
        );
        let map: BTreeMap<&str, i64> = [("<pad>", 0), ("<mask>", 1), ("ENSG1", 2), ("ENSG2", 3)]
            .into_iter()
            .collect();
        let pkl = dir.write("tokens.pkl", &pickle_bytes(&map));
        // Unknown extension: detected from content.
        let sniffed = dir.write("tokens.bin", &pickle_bytes(&map));
        for p in [json, tsv, pkl, sniffed] {
            assert_eq!(
                load_token_dictionary(&p).unwrap(),
                expected_tokens(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn gene_medians_json_tsv_pickle() {
        let dir = TempDir::new("medians");
        let expected: GeneMedianDictionary = [("ENSG1", 1.5), ("ENSG2", 2.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let json = dir.write("m.json", br#"{"ENSG1": 1.5, "ENSG2": 2}"#);
        let tsv = dir.write("m.tsv", b"ENSG1\t1.5\nENSG2\t2\n");
        let map: BTreeMap<&str, f64> = [("ENSG1", 1.5), ("ENSG2", 2.0)].into_iter().collect();
        let pkl = dir.write("m.pickle", &pickle_bytes(&map));
        for p in [json, tsv, pkl] {
            assert_eq!(load_gene_medians(&p).unwrap(), expected, "{p:?}");
        }
    }

    #[test]
    fn numpy_scalar_pickles() {
        // Protocol-4 pickles laid out exactly as numpy writes them:
        // {"ENSG1": np.float64(1.5), "ENSG2": np.float32(2.25), "ENSG3": np.float64(0.5)}
        let medians = hex(concat!(
            "800495b5000000000000007d94288c05454e534731948c156e756d70792e636f72652e6d756c",
            "74696172726179948c067363616c61729493948c056e756d7079948c0564747970659493948c",
            "02663894898887945294284b038c013c944e4e4e4affffffff4affffffff4b00749462430800",
            "0000000000f83f94869452948c05454e53473294680468078c02663494898887945294680c62",
            "43040000104094869452948c05454e534733946804680a4308000000000000e03f9486945294",
            "752e"
        ));
        let m = parse_gene_medians(&medians, DictionaryFormat::Pickle, "m.pkl").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m["ENSG1"], m["ENSG2"], m["ENSG3"]), (1.5, 2.25, 0.5));
        // {"<pad>": 0, "<mask>": 1, "ENSG1": np.int64(2), "ENSG2": np.int64(3)}
        let tokens = hex(concat!(
            "800495a5000000000000007d94288c053c7061643e944b008c063c6d61736b3e944b018c0545",
            "4e534731948c156e756d70792e636f72652e6d756c74696172726179948c067363616c617294",
            "93948c056e756d7079948c0564747970659493948c02693894898887945294284b038c013c94",
            "4e4e4e4affffffff4affffffff4b007494624308020000000000000094869452948c05454e53",
            "4732946806680c430803000000000000009486945294752e"
        ));
        let t = parse_token_dictionary(&tokens, DictionaryFormat::Pickle, "t.pkl").unwrap();
        assert_eq!(t, expected_tokens());
        // A float dtype in a token dictionary is rejected where its name is known.
        let e = parse_token_dictionary(&medians, DictionaryFormat::Pickle, "m.pkl").unwrap_err();
        invalid(e, &["m.pkl", "key 'ENSG3'", "integer token id"]);
    }

    #[test]
    fn malformed_files_name_file_and_problem() {
        let dir = TempDir::new("malformed");
        let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
            (
                "bad.json",
                b"{\"a\": 1,".to_vec(),
                vec!["bad.json", "JSON", "not valid JSON"],
            ),
            (
                "list.json",
                b"[1, 2]".to_vec(),
                vec!["list.json", "an array"],
            ),
            (
                "float.json",
                br#"{"a": 1.5}"#.to_vec(),
                vec!["key 'a'", "integer token id"],
            ),
            (
                "neg.json",
                br#"{"a": -1}"#.to_vec(),
                vec!["key 'a'", "negative"],
            ),
            (
                "dup.json",
                br#"{"a": 1, "b": 1}"#.to_vec(),
                vec!["share token id 1"],
            ),
            ("empty.json", b"{}".to_vec(), vec!["empty"]),
            (
                "cols.tsv",
                b"a\t1\nb\t2\t3\n".to_vec(),
                vec!["cols.tsv", "line 2", "found 3"],
            ),
            (
                "val.tsv",
                b"a\t1\nb\tx\n".to_vec(),
                vec!["line 2", "'x'", "key 'b'"],
            ),
            (
                "rep.tsv",
                b"a\t1\na\t2\n".to_vec(),
                vec!["key 'a' repeats line 1"],
            ),
            (
                "junk.pkl",
                b"\x80\x04garbage".to_vec(),
                vec!["junk.pkl", "pickle"],
            ),
            (
                "list.pkl",
                pickle_bytes(&vec![1, 2]),
                vec!["expected a pickled dict"],
            ),
            (
                "str.pkl",
                pickle_bytes(&BTreeMap::from([("a", "x")])),
                vec!["key 'a'", "integer token id"],
            ),
        ];
        for (file, bytes, needles) in cases {
            let p = dir.write(file, &bytes);
            invalid(load_token_dictionary(&p).unwrap_err(), &needles);
        }
        let p = dir.write("zero.json", br#"{"ENSG1": 0.0}"#);
        invalid(
            load_gene_medians(&p).unwrap_err(),
            &["zero.json", "ENSG1", "> 0"],
        );
        let p = dir.write("nan.tsv", b"ENSG1\tnan\n");
        invalid(load_gene_medians(&p).unwrap_err(), &["nan.tsv", "finite"]);

        let e = load_token_dictionary(dir.0.join("missing.json")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("missing.json"), "{e}");
    }

    #[test]
    fn format_detection() {
        let f = |p: &str| DictionaryFormat::from_path(Path::new(p));
        assert_eq!(f("a.JSON"), Some(DictionaryFormat::Json));
        assert_eq!(f("a.tsv"), Some(DictionaryFormat::Tsv));
        assert_eq!(f("a.pkl"), Some(DictionaryFormat::Pickle));
        assert_eq!(f("a"), None);
        assert_eq!(
            DictionaryFormat::sniff(b"\x80\x04"),
            DictionaryFormat::Pickle
        );
        assert_eq!(DictionaryFormat::sniff(b"  {}"), DictionaryFormat::Json);
        assert_eq!(DictionaryFormat::sniff(b"a\t1"), DictionaryFormat::Tsv);
    }
}
