//! A bounded in-process cache of decoded cells for random access.
//!
//! h5py's reads of a backed h5ad come from the page cache once a file was read; Lance decodes
//! every read again. This cache keeps the gene ids and values of cells read by random-access
//! calls (`Dataset::submatrix`: `get_submatrix`, the lazy AnnData view), so repeated and
//! overlapping selections come from memory and only their new cells are read. Scans (SQL,
//! `slaf_slice`, `scan_slaf`, tokenizers, the loader) read once and do not go through it.
//!
//! Entries are whole cells, weighed by their bytes; the size is settable per dataset and 0
//! turns the cache off. The cache is quick_cache's (CLOCK-Pro eviction), which Lance uses too:
//! moka, tried first, added 290 ms to a read of 10,000 cells (100,000 × 20,000) by keeping
//! them, against 70 ms with quick_cache, most of it the copy.

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::columns::Values;
use crate::error::Result;
use crate::matrix::CellRows;

/// The default size: 256 MiB of decoded cells (~20,000 cells of 1,500 values each).
pub const DEFAULT_CELL_CACHE_BYTES: u64 = 256 << 20;

/// Bytes an entry costs beyond its arrays (the entry, its key, the cache's bookkeeping).
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// A read larger than this share of the cache is not kept: it would only push out cells
/// that are still useful, as a scan would.
const MAX_READ_SHARE: u64 = 8;

/// One cell's stored entries.
struct CachedCell {
    genes: Box<[u32]>,
    values: Values,
}

/// Weighs an entry by the bytes it holds.
#[derive(Clone)]
struct Bytes;

impl Weighter<u32, Arc<CachedCell>> for Bytes {
    fn weight(&self, _: &u32, cell: &Arc<CachedCell>) -> u64 {
        (cell.genes.len() * 4 + cell.values.bytes() + ENTRY_OVERHEAD_BYTES) as u64
    }
}

/// Bytes of a typical cell, to size the table up front (1,500 values).
const TYPICAL_CELL_BYTES: u64 = 12_000;

/// Decoded cells, by cell integer id, for one opened dataset version.
pub(crate) struct CellCache {
    cells: Cache<u32, Arc<CachedCell>, Bytes>,
    capacity: u64,
}

impl CellCache {
    /// A cache holding up to `capacity` bytes of decoded cells.
    pub fn new(capacity: u64) -> Self {
        let items = (capacity / TYPICAL_CELL_BYTES).max(16) as usize;
        let cells = Cache::with_weighter(items, capacity, Bytes);
        Self { cells, capacity }
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The rows of `cells` (ascending, unique): cached cells from memory, the others through
    /// `read` (which returns them in the order asked), then kept.
    pub fn rows(
        &self,
        cells: Vec<u32>,
        read: impl FnOnce(Vec<u32>) -> Result<CellRows>,
    ) -> Result<CellRows> {
        let cached: Vec<Option<Arc<CachedCell>>> =
            cells.iter().map(|c| self.cells.get(c)).collect();
        let missing: Vec<u32> = cells
            .iter()
            .zip(&cached)
            .filter(|(_, hit)| hit.is_none())
            .map(|(&cell, _)| cell)
            .collect();
        if missing.len() == cells.len() {
            let rows = read(cells)?;
            self.keep(&rows);
            return Ok(rows);
        }
        let read_rows = read(missing)?;
        self.keep(&read_rows);
        let total = read_rows.genes.len()
            + cached
                .iter()
                .flatten()
                .map(|cell| cell.genes.len())
                .sum::<usize>();
        let mut offsets = Vec::with_capacity(cells.len() + 1);
        let mut genes = Vec::with_capacity(total);
        let mut values = read_rows.values.empty_like();
        values.reserve(total);
        offsets.push(0);
        let mut next_read = 0;
        for hit in &cached {
            match hit {
                Some(cell) => {
                    genes.extend_from_slice(&cell.genes);
                    values.extend_from(&cell.values, 0..cell.genes.len());
                }
                None => {
                    let range = read_rows.offsets[next_read]..read_rows.offsets[next_read + 1];
                    genes.extend_from_slice(&read_rows.genes[range.clone()]);
                    values.extend_from(&read_rows.values, range);
                    next_read += 1;
                }
            }
            offsets.push(genes.len());
        }
        Ok(CellRows {
            cells,
            offsets,
            genes,
            values,
        })
    }

    /// Keeps the cells of `rows`, unless the read is too large to be worth keeping.
    fn keep(&self, rows: &CellRows) {
        let bytes = (rows.genes.len() * 4 + rows.values.bytes()) as u64;
        if bytes > self.capacity / MAX_READ_SHARE {
            return;
        }
        for (i, &cell) in rows.cells.iter().enumerate() {
            let range = rows.offsets[i]..rows.offsets[i + 1];
            let entry = CachedCell {
                genes: rows.genes[range.clone()].into(),
                values: rows.values.slice(range),
            };
            self.cells.insert(cell, Arc::new(entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Cell `c` stores genes `0..c % 4` with values `c * 10 + g`.
    fn stored(cells: Vec<u32>) -> CellRows {
        let mut offsets = vec![0];
        let (mut genes, mut values) = (Vec::new(), Vec::new());
        for &c in &cells {
            for g in 0..c % 4 {
                genes.push(g);
                values.push((c * 10 + g) as f32);
            }
            offsets.push(genes.len());
        }
        CellRows {
            cells,
            offsets,
            genes,
            values: Values::F32(values),
        }
    }

    fn flat(rows: &CellRows) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        let Values::F32(values) = &rows.values else {
            panic!("f32 values")
        };
        (rows.offsets.clone(), rows.genes.clone(), values.clone())
    }

    #[test]
    fn hits_come_from_memory_and_only_new_cells_are_read() {
        let cache = CellCache::new(1 << 20);
        let asked = Cell::new(Vec::new());
        let read = |cells: Vec<u32>| {
            asked.set(cells.clone());
            Ok(stored(cells))
        };
        let first = cache.rows(vec![1, 3, 6], read).unwrap();
        assert_eq!(asked.take(), vec![1, 3, 6]);
        assert_eq!(flat(&first), flat(&stored(vec![1, 3, 6])));
        let mixed = cache.rows(vec![0, 1, 2, 3, 7], read).unwrap();
        assert_eq!(asked.take(), vec![0, 2, 7]);
        assert_eq!(flat(&mixed), flat(&stored(vec![0, 1, 2, 3, 7])));
        let again = cache.rows(vec![1, 3], read).unwrap();
        assert_eq!(asked.take(), Vec::<u32>::new());
        assert_eq!(flat(&again), flat(&stored(vec![1, 3])));
    }

    #[test]
    fn reads_larger_than_an_eighth_of_the_cache_are_not_kept() {
        let cache = CellCache::new(64);
        let reads = Cell::new(0);
        let read = |cells: Vec<u32>| {
            reads.set(reads.get() + 1);
            Ok(stored(cells))
        };
        cache.rows(vec![3, 7, 11], read).unwrap();
        cache.rows(vec![3, 7, 11], read).unwrap();
        assert_eq!(reads.get(), 2);
        assert_eq!(cache.cells.len(), 0);
    }
}
