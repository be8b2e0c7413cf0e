//! `cell_start_index`: where each cell's contiguous rows begin in `expression.lance`.
//!
//! The stored column is checked before it is trusted: slafdb 0.5.2 writes wrong values on some
//! paths (multi-file conversion restarts at 0; some single-file datasets hold offsets that do
//! not match the table). A failed check, or a missing column, derives the index from the
//! expression table's `cell_integer_id` column instead.

use std::ops::Range;

use arrow_array::RecordBatch;

use crate::columns::{extend_ids, to_i64};
use crate::error::{Error, Result};
use crate::table::Table;

/// Cells spot-checked against the stored index (plus every fragment boundary).
const SAMPLED_CELLS: usize = 64;

/// Where the index came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartIndexSource {
    /// The stored `cell_start_index` column, verified.
    Stored,
    /// Derived from the expression table (column absent or wrong).
    Derived,
}

/// Row offsets: cell `c` owns rows `offsets[c]..offsets[c + 1]`.
pub(crate) struct StartIndex {
    offsets: Vec<u64>,
    source: StartIndexSource,
}

impl StartIndex {
    /// Rows of `cell`.
    pub fn range(&self, cell: u32) -> Range<u64> {
        self.offsets[cell as usize]..self.offsets[cell as usize + 1]
    }

    /// Row ranges covering `cells` (ascending, unique), adjacent ones merged, and where each
    /// cell's rows start in the concatenated result (`cells.len() + 1` offsets).
    pub fn ranges_of(&self, cells: &[u32]) -> (Vec<Range<u64>>, Vec<usize>) {
        let mut offsets = Vec::with_capacity(cells.len() + 1);
        let mut ranges: Vec<Range<u64>> = Vec::new();
        let mut total = 0usize;
        offsets.push(0);
        for &cell in cells {
            let range = self.range(cell);
            total += (range.end - range.start) as usize;
            offsets.push(total);
            if range.is_empty() {
                continue;
            }
            match ranges.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => ranges.push(range),
            }
        }
        (ranges, offsets)
    }

    pub fn source(&self) -> StartIndexSource {
        self.source
    }

    /// Uses `stored` (indexed by cell id, possibly `None`) when it is consistent with `rows`,
    /// else derives the index from `rows`' `id_column`.
    pub async fn load(
        stored: Option<Vec<i64>>,
        rows: &Table,
        id_column: &str,
        n_cells: usize,
    ) -> Result<Self> {
        if let Some(stored) = stored {
            if let Some(offsets) = structurally_valid(&stored, rows.num_rows()) {
                let index = Self {
                    offsets,
                    source: StartIndexSource::Stored,
                };
                if index.agrees_with(rows, id_column).await? {
                    return Ok(index);
                }
            }
        }
        Self::derive(rows, id_column, n_cells).await
    }

    /// Counts rows per cell from the table, checking cells are contiguous and ascending.
    pub async fn derive(rows: &Table, id_column: &str, n_cells: usize) -> Result<Self> {
        let batches = rows.scan(&[id_column], None).await?;
        let mut counts = vec![0u64; n_cells + 1];
        let mut ids = Vec::new();
        let mut previous = 0u32;
        for batch in &batches {
            ids.clear();
            extend_ids(
                &mut ids,
                batch.column(0),
                &format!("{}.{id_column}", rows.role()),
            )?;
            for &id in &ids {
                if id as usize >= n_cells {
                    return Err(Error::invalid_schema(format!(
                        "table '{}' has {id_column} {id}, but the dataset has {n_cells} cells",
                        rows.role()
                    )));
                }
                if id < previous {
                    return Err(Error::invalid_schema(format!(
                        "table '{}' is not sorted by {id_column} (cell {id} after cell {previous}); \
                         SLAF requires each cell's rows to be contiguous and in id order",
                        rows.role()
                    )));
                }
                previous = id;
                counts[id as usize + 1] += 1;
            }
        }
        for i in 0..n_cells {
            counts[i + 1] += counts[i];
        }
        Ok(Self {
            offsets: counts,
            source: StartIndexSource::Derived,
        })
    }

    /// Reads the cell id at fragment boundaries and at the first and last row of sampled cells.
    async fn agrees_with(&self, rows: &Table, id_column: &str) -> Result<bool> {
        let n_cells = self.offsets.len() - 1;
        let total = rows.num_rows();
        if total == 0 {
            return Ok(true);
        }
        let cell_of = |row: u64| (self.offsets.partition_point(|&o| o <= row) - 1) as u32;
        let mut probes: Vec<(u64, u32)> = rows
            .fragment_starts()
            .filter(|&s| s < total)
            .map(|s| (s, cell_of(s)))
            .collect();
        probes.push((total - 1, cell_of(total - 1)));
        let step = (n_cells / SAMPLED_CELLS).max(1);
        for cell in (0..n_cells).step_by(step) {
            let r = self.range(cell as u32);
            if !r.is_empty() {
                probes.push((r.start, cell as u32));
                probes.push((r.end - 1, cell as u32));
            }
        }
        probes.sort_unstable();
        probes.dedup();
        let offsets: Vec<u64> = probes.iter().map(|p| p.0).collect();
        let batch: RecordBatch = rows.take(&offsets, &[id_column]).await?;
        let mut found = Vec::with_capacity(offsets.len());
        extend_ids(&mut found, batch.column(0), id_column)?;
        Ok(found
            .iter()
            .zip(&probes)
            .all(|(&got, &(_, want))| got == want))
    }
}

/// `stored` + the row count as offsets, if it starts at 0, never decreases and fits the table.
fn structurally_valid(stored: &[i64], num_rows: u64) -> Option<Vec<u64>> {
    if stored.first().is_some_and(|&s| s != 0) {
        return None;
    }
    let mut offsets = Vec::with_capacity(stored.len() + 1);
    let mut previous = 0i64;
    for &s in stored {
        if s < previous || s as u64 > num_rows {
            return None;
        }
        offsets.push(s as u64);
        previous = s;
    }
    offsets.push(num_rows);
    Some(offsets)
}

/// The stored `cell_start_index` column ordered by cell id, from a batch sorted by id.
pub(crate) fn stored_column(batch: &RecordBatch, column: &str) -> Result<Option<Vec<i64>>> {
    match batch.column_by_name(column) {
        None => Ok(None),
        Some(array) => to_i64(array.as_ref(), &format!("cells.{column}")).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_checks() {
        assert_eq!(structurally_valid(&[0, 2, 2], 5), Some(vec![0, 2, 2, 5]));
        assert_eq!(structurally_valid(&[1, 2], 5), None);
        assert_eq!(structurally_valid(&[0, 3, 2], 5), None);
        assert_eq!(structurally_valid(&[0, 6], 5), None);
        assert_eq!(structurally_valid(&[], 0), Some(vec![0]));
    }

    #[test]
    fn ranges_merge_adjacent_cells() {
        let index = StartIndex {
            offsets: vec![0, 2, 2, 5, 9],
            source: StartIndexSource::Stored,
        };
        let (ranges, offsets) = index.ranges_of(&[0, 1, 2, 3]);
        assert_eq!(ranges, vec![0..9]);
        assert_eq!(offsets, vec![0, 2, 2, 5, 9]);
        let (ranges, offsets) = index.ranges_of(&[0, 3]);
        assert_eq!(ranges, vec![0..2, 5..9]);
        assert_eq!(offsets, vec![0, 2, 6]);
    }
}
