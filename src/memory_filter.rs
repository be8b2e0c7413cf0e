//! Lance SQL filters over small tables (cells and genes of most datasets) evaluated in memory.
//!
//! A cell or gene predicate (`cell_filter := 'cell_type = ''B cell'''`) is the first step of
//! most selections. Scanning a 100k-row cells table with it costs Lance a few milliseconds of
//! planning and string decoding per query, more than reading the selected cells' expression rows.
//! Small tables instead keep the columns that filters name in memory (loaded on first use, per
//! opened table version), and the predicate is evaluated there with the planner Lance's scanner
//! uses: the same parser, column resolution, type coercion and optimisation, so the same rows.
//! Anything this path does not handle exactly (nested columns, a non-boolean predicate, an
//! evaluation error) returns `None` and the caller scans with Lance, which also words the errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Schema as ArrowSchema};
use lance::deps::datafusion::common::DFSchema;
use lance::deps::datafusion::logical_expr::{Expr, ExprSchemable};
use lance_datafusion::planner::Planner;

/// Tables with at most this many rows are filtered in memory.
pub const MAX_ROWS: u64 = 1 << 21;
/// Bytes of columns kept per table at most; past this, columns are used once and dropped.
const MAX_KEPT_BYTES: usize = 256 << 20;

/// Columns of one table kept for in-memory filters.
#[derive(Default)]
pub(crate) struct ColumnCache {
    columns: Mutex<HashMap<String, ArrayRef>>,
}

impl ColumnCache {
    /// The cached arrays of `names`, or the names that are not cached yet.
    pub fn get(&self, names: &[String]) -> Result<Vec<ArrayRef>, Vec<String>> {
        let columns = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !columns.contains_key(*n))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(names.iter().map(|n| columns[n].clone()).collect())
    }

    /// Keeps `arrays` under their names while the cache stays within its byte budget.
    pub fn keep(&self, names: &[String], arrays: &[ArrayRef]) {
        let mut columns = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        let mut used: usize = columns.values().map(|a| a.get_array_memory_size()).sum();
        for (name, array) in names.iter().zip(arrays) {
            used += array.get_array_memory_size();
            if used > MAX_KEPT_BYTES {
                break;
            }
            columns.insert(name.clone(), array.clone());
        }
    }
}

/// A filter parsed once against a table's schema, when it is one this module evaluates:
/// every column it names a top-level field.
pub struct Predicate {
    expr: Expr,
    columns: Vec<String>,
}

impl Predicate {
    pub fn parse(schema: &Arc<ArrowSchema>, filter: &str) -> Option<Self> {
        let expr = Planner::new(schema.clone()).parse_filter(filter).ok()?;
        let columns = Planner::column_names_in_expr(&expr);
        columns
            .iter()
            .all(|n| schema.field_with_name(n).is_ok())
            .then_some(Self { expr, columns })
    }

    /// The columns the filter reads (names as the schema spells them).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Evaluates the filter on `batch` (which holds every column it names) as Lance's scanner
    /// would: `None` when the predicate is not boolean or does not evaluate, so the caller
    /// falls back.
    pub fn mask(&self, batch: &RecordBatch) -> Option<BooleanArray> {
        let schema = batch.schema();
        let df_schema = DFSchema::try_from(schema.clone()).ok()?;
        let (_, field) = self.expr.to_field(&df_schema).ok()?;
        if field.data_type() != &DataType::Boolean {
            return None;
        }
        let planner = Planner::new(schema);
        let expr = planner.optimize_expr(self.expr.clone()).ok()?;
        let physical = planner.create_physical_expr(&expr).ok()?;
        let values = physical
            .evaluate(batch)
            .ok()?
            .into_array(batch.num_rows())
            .ok()?;
        values.as_any().downcast_ref::<BooleanArray>().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::Field;

    fn mask(batch: &RecordBatch, filter: &str) -> Option<BooleanArray> {
        Predicate::parse(&batch.schema(), filter)?.mask(batch)
    }

    fn columns_of(schema: &Arc<ArrowSchema>, filter: &str) -> Option<Vec<String>> {
        Predicate::parse(schema, filter).map(|p| p.columns().to_vec())
    }

    fn batch() -> RecordBatch {
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("cell_type", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("B"),
                    Some("T"),
                    None,
                    Some("B"),
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn predicates_evaluate_like_sql() {
        let b = batch();
        let m = mask(&b, "cell_type = 'B' AND n > 1").unwrap();
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![Some(false), Some(false), None, Some(true)]
        );
        // Column names resolve case-insensitively, as in Lance.
        let m = mask(&b, "N IN (1, 3)").unwrap();
        assert_eq!(m.true_count(), 2);
        assert_eq!(
            columns_of(&b.schema(), "N < 2").unwrap(),
            vec!["n".to_string()]
        );
    }

    #[test]
    fn what_it_cannot_do_is_left_to_lance() {
        let b = batch();
        assert!(mask(&b, "n + 1").is_none(), "not a predicate");
        assert!(mask(&b, "no_such_column = 1").is_none());
        assert!(columns_of(&b.schema(), "cell_type = ").is_none());
    }

    #[test]
    fn the_cache_keeps_columns_by_name() {
        let cache = ColumnCache::default();
        let names = vec!["n".to_string()];
        assert_eq!(cache.get(&names).unwrap_err(), names);
        cache.keep(&names, &[batch().column(1).clone()]);
        assert_eq!(cache.get(&names).unwrap()[0].len(), 4);
    }
}
