//! `config.json` as written: format 0.5, the table map, statistics over all values, and the
//! sections (layers, obsm, varm, obsp, varp, multi_file) that apply. Updating a dataset keeps
//! every key it does not own.

use serde_json::{json, Map, Value};

use super::expression::Stats;

/// What the finished write knows about the dataset.
pub(crate) struct Summary<'a> {
    pub n_cells: u64,
    pub n_genes: usize,
    pub nnz: u64,
    pub stats: Stats,
    pub tables: Vec<(&'a str, String)>,
    pub layers: Vec<String>,
    pub obsm: Vec<(String, usize)>,
    pub varm: Vec<(String, usize)>,
    pub obsp: Vec<String>,
    pub varp: Vec<String>,
    pub sources: Vec<Value>,
}

/// A config section: its name, keys, and per-key dimensions where the format records them.
type Section<'a> = (&'a str, Vec<String>, Option<Vec<(String, usize)>>);

fn section(keys: &[String], dimensions: Option<Vec<(String, usize)>>) -> Value {
    let mut out = Map::new();
    out.insert("available".into(), json!(keys));
    out.insert("immutable".into(), json!(keys));
    out.insert("mutable".into(), json!([]));
    if let Some(dimensions) = dimensions {
        let dims: Map<String, Value> = dimensions.into_iter().map(|(k, d)| (k, json!(d))).collect();
        out.insert("dimensions".into(), Value::Object(dims));
    }
    Value::Object(out)
}

/// The new `config.json` document; `previous` is the config being updated, if any.
pub(crate) fn build(previous: Option<&Map<String, Value>>, s: &Summary<'_>) -> Map<String, Value> {
    let mut doc = previous.cloned().unwrap_or_default();
    let total = s.n_cells as f64 * s.n_genes as f64;
    let density = if total > 0.0 {
        s.nnz as f64 / total
    } else {
        0.0
    };
    let (mean, std) = s.stats.mean_std();
    let (min, max) = if s.stats.count > 0 {
        (s.stats.min, s.stats.max)
    } else {
        (0.0, 0.0)
    };
    doc.insert("format_version".into(), json!("0.5"));
    doc.insert("array_shape".into(), json!([s.n_cells, s.n_genes]));
    doc.insert("n_cells".into(), json!(s.n_cells));
    doc.insert("n_genes".into(), json!(s.n_genes));
    let mut tables = match doc.get("tables") {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    for (role, path) in &s.tables {
        tables.insert((*role).to_string(), json!(path));
    }
    doc.insert("tables".into(), Value::Object(tables));
    doc.insert(
        "optimizations".into(),
        json!({"use_integer_keys": true, "optimize_storage": true}),
    );
    doc.insert(
        "metadata".into(),
        json!({
            "expression_count": s.nnz,
            "sparsity": 1.0 - density,
            "density": density,
            "total_possible_elements": s.n_cells * s.n_genes as u64,
            "expression_stats": {
                "min_value": min, "max_value": max, "mean_value": mean, "std_value": std,
            },
        }),
    );
    if !doc.contains_key("created_at") {
        doc.insert("created_at".into(), json!(now_iso()));
    }
    let n_cells = s.n_cells as usize;
    let sections: [Section<'_>; 5] = [
        ("layers", s.layers.clone(), None),
        (
            "obsm",
            s.obsm.iter().map(|(k, _)| k.clone()).collect(),
            Some(s.obsm.clone()),
        ),
        (
            "varm",
            s.varm.iter().map(|(k, _)| k.clone()).collect(),
            Some(s.varm.clone()),
        ),
        (
            "obsp",
            s.obsp.clone(),
            Some(s.obsp.iter().map(|k| (k.clone(), n_cells)).collect()),
        ),
        (
            "varp",
            s.varp.clone(),
            Some(s.varp.iter().map(|k| (k.clone(), s.n_genes)).collect()),
        ),
    ];
    for (name, keys, dimensions) in sections {
        if keys.is_empty() {
            doc.remove(name);
        } else {
            doc.insert(name.into(), section(&keys, dimensions));
        }
    }
    if s.sources.len() > 1 {
        doc.insert(
            "multi_file".into(),
            json!({"source_files": s.sources, "total_files": s.sources.len()}),
        );
    }
    doc
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.ffffff` (what slafdb writes, without a zone).
fn now_iso() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_stats_sections_and_keeps_unknown_keys() {
        let mut previous = Map::new();
        previous.insert("future_key".into(), json!(1));
        previous.insert("created_at".into(), json!("2020-01-01T00:00:00"));
        let stats = Stats::from_recorded(4, 2.0, 1.0, 1.0, 3.0);
        let doc = build(
            Some(&previous),
            &Summary {
                n_cells: 2,
                n_genes: 4,
                nnz: 4,
                stats,
                tables: vec![("expression", "expression.lance".into())],
                layers: vec!["counts".into()],
                obsm: vec![("X_umap".into(), 2)],
                varm: vec![],
                obsp: vec![],
                varp: vec![],
                sources: vec![json!({}), json!({})],
            },
        );
        assert_eq!(doc["future_key"], json!(1));
        assert_eq!(doc["created_at"], json!("2020-01-01T00:00:00"));
        assert_eq!(doc["metadata"]["density"], json!(0.5));
        assert_eq!(doc["obsm"]["dimensions"]["X_umap"], json!(2));
        assert_eq!(doc["layers"]["available"], json!(["counts"]));
        assert!(!doc.contains_key("varm"));
        assert_eq!(doc["multi_file"]["total_files"], json!(2));
        assert_eq!(now_iso().len(), 26);
    }
}
