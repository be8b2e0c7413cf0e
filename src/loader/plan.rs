//! The order cells are served in: an epoch's cell sequence for one rank, cut into windows.
//!
//! 1. The selected cells (ascending) are grouped into blocks of consecutive ids; the blocks are
//!    permuted by `(seed, epoch)` — the same permutation on every rank, so ranks agree on it.
//! 2. Rank `r` of `W` takes the `r`-th of `W` contiguous, equal (±1 cell) pieces of that
//!    sequence: shares are disjoint, together complete, and balanced. With `drop_last`, every
//!    rank keeps the same whole number of batches.
//! 3. The rank's piece is cut into windows of whole batches; each window is read at once and its
//!    cells are shuffled in memory by `(seed, epoch, rank, window)`.
//!
//! Blocks keep reads contiguous; the in-window shuffle mixes cells of many blocks (and so of
//! many fragments) in every batch. Everything derives from the seed, never from thread timing.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::tokenize::scgpt::below;

/// At most this many consecutive cells per block (fewer when windows are small, so that a
/// window still holds many blocks).
const MAX_BLOCK_CELLS: usize = 64;
/// Blocks a window should hold at least, for the in-window shuffle to mix many of them.
const BLOCKS_PER_WINDOW: usize = 32;

/// RNG streams, so the block permutation and window shuffles never share draws.
const BLOCK_STREAM: u64 = 0;
const WINDOW_STREAM: u64 = 1;

/// How cells are ordered and shared out.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Cells per batch (> 0).
    pub batch_size: usize,
    /// Permute blocks and shuffle windows; `false` serves cells in ascending id order.
    pub shuffle: bool,
    /// Same seed ⇒ same order on every run and machine.
    pub seed: u64,
    /// This process's rank in `0..world_size`.
    pub rank: usize,
    /// Number of ranks sharing each epoch.
    pub world_size: usize,
    /// Drop the last incomplete batch (and equalise batch counts across ranks).
    pub drop_last: bool,
    /// Cells read and shuffled together (rounded up to whole batches).
    pub window_cells: usize,
}

/// A validated plan over the selected cells.
#[derive(Debug, Clone)]
pub struct Plan {
    cells: Vec<u32>,
    options: PlanOptions,
    block_cells: usize,
    /// Where this rank's piece starts in the epoch sequence, and how many cells it serves.
    start: usize,
    len: usize,
}

impl Plan {
    /// Plans over `cells` (ascending, distinct).
    pub fn new(cells: Vec<u32>, mut options: PlanOptions) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::invalid_argument("batch_size must be at least 1"));
        }
        if options.world_size == 0 || options.rank >= options.world_size {
            return Err(Error::invalid_argument(format!(
                "rank must be in 0..world_size, got rank {} of world_size {}",
                options.rank, options.world_size
            )));
        }
        let b = options.batch_size;
        options.window_cells = options.window_cells.max(1).div_ceil(b) * b;
        let block_cells = (options.window_cells / BLOCKS_PER_WINDOW).clamp(1, MAX_BLOCK_CELLS);
        let (n, w, r) = (cells.len(), options.world_size, options.rank);
        let start = r * n / w;
        let mut len = (r + 1) * n / w - start;
        if options.drop_last {
            len = (n / w) / b * b;
        }
        Ok(Self {
            cells,
            options,
            block_cells,
            start,
            len,
        })
    }

    /// The options, with `window_cells` rounded to whole batches.
    pub fn options(&self) -> &PlanOptions {
        &self.options
    }

    /// Cells this rank serves per epoch.
    pub fn cells_per_epoch(&self) -> usize {
        self.len
    }

    /// Batches this rank serves per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.len.div_ceil(self.options.batch_size)
    }

    /// Windows per epoch.
    pub fn windows_per_epoch(&self) -> usize {
        self.len.div_ceil(self.options.window_cells)
    }

    /// This rank's cells of `epoch`, in block order (before the in-window shuffles).
    pub fn rank_cells(&self, epoch: u64) -> Vec<u32> {
        let n = self.cells.len();
        let mut out = Vec::with_capacity(self.len);
        if !self.options.shuffle {
            out.extend_from_slice(&self.cells[self.start..self.start + self.len]);
            return out;
        }
        let mut blocks: Vec<u32> = (0..n.div_ceil(self.block_cells) as u32).collect();
        let mut rng = rng(self.options.seed, epoch, BLOCK_STREAM);
        shuffle(&mut blocks, &mut rng);
        // Skip to this rank's piece without materialising the whole sequence.
        let (mut skip, mut take) = (self.start, self.len);
        for &block in &blocks {
            if take == 0 {
                break;
            }
            let first = block as usize * self.block_cells;
            let cells = &self.cells[first..(first + self.block_cells).min(n)];
            if skip >= cells.len() {
                skip -= cells.len();
                continue;
            }
            let part = &cells[skip..cells.len().min(skip + take)];
            skip = 0;
            take -= part.len();
            out.extend_from_slice(part);
        }
        out
    }

    /// The cells of window `window` of `epoch`, shuffled, from this rank's cells of the epoch.
    pub fn window(&self, rank_cells: &[u32], epoch: u64, window: usize) -> Vec<u32> {
        let size = self.options.window_cells;
        let start = (window * size).min(rank_cells.len());
        let mut cells = rank_cells[start..(start + size).min(rank_cells.len())].to_vec();
        if self.options.shuffle {
            // One stream per (rank, window): ranks never share draws.
            let stream =
                WINDOW_STREAM + ((self.options.rank as u64) << 40) + ((window as u64) << 1);
            shuffle(&mut cells, &mut rng(self.options.seed, epoch, stream));
        }
        cells
    }
}

/// The generator for `(seed, epoch, stream)`.
fn rng(seed: u64, epoch: u64, stream: u64) -> ChaCha8Rng {
    // The epoch goes into the key (a fresh permutation per epoch), the purpose into the stream.
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(b"slafload");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

/// Fisher–Yates with unbiased draws.
fn shuffle(items: &mut [u32], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(rank: usize, world_size: usize) -> PlanOptions {
        PlanOptions {
            batch_size: 8,
            shuffle: true,
            seed: 7,
            rank,
            world_size,
            drop_last: false,
            window_cells: 40,
        }
    }

    /// Every cell of every window of `epoch`, in serving order.
    fn served(plan: &Plan, epoch: u64) -> Vec<u32> {
        let cells = plan.rank_cells(epoch);
        (0..plan.windows_per_epoch())
            .flat_map(|w| plan.window(&cells, epoch, w))
            .collect()
    }

    #[test]
    fn every_cell_once_per_epoch_and_deterministic() {
        let cells: Vec<u32> = (0..1000).map(|i| i * 3).collect();
        let plan = Plan::new(cells.clone(), options(0, 1)).unwrap();
        let a = served(&plan, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, cells);
        assert_eq!(a, served(&plan, 0));
        assert_ne!(a, served(&plan, 1));
        assert_ne!(a, cells, "shuffled");
        assert_eq!(plan.batches_per_epoch(), 125);
    }

    #[test]
    fn ranks_get_disjoint_complete_balanced_shares() {
        let cells: Vec<u32> = (0..1003).collect();
        let mut all = Vec::new();
        for r in 0..3 {
            let plan = Plan::new(cells.clone(), options(r, 3)).unwrap();
            let share = served(&plan, 5);
            assert!((334..=335).contains(&share.len()), "{}", share.len());
            all.extend(share);
        }
        all.sort_unstable();
        assert_eq!(all, cells);
    }

    #[test]
    fn drop_last_equalises_whole_batches() {
        let cells: Vec<u32> = (0..1003).collect();
        for r in 0..3 {
            let plan = Plan::new(
                cells.clone(),
                PlanOptions {
                    drop_last: true,
                    ..options(r, 3)
                },
            )
            .unwrap();
            assert_eq!(plan.cells_per_epoch(), 328);
            assert_eq!(served(&plan, 0).len(), 328);
        }
    }

    #[test]
    fn unshuffled_is_ascending() {
        let cells: Vec<u32> = (0..100).collect();
        let plan = Plan::new(
            cells.clone(),
            PlanOptions {
                shuffle: false,
                ..options(1, 2)
            },
        )
        .unwrap();
        assert_eq!(served(&plan, 3), (50..100).collect::<Vec<u32>>());
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(Plan::new(vec![], options(2, 2)).is_err());
        let zero = PlanOptions {
            batch_size: 0,
            ..options(0, 1)
        };
        assert!(Plan::new(vec![], zero).is_err());
        let empty = Plan::new(vec![], options(0, 1)).unwrap();
        assert_eq!(
            (empty.batches_per_epoch(), empty.windows_per_epoch()),
            (0, 0)
        );
    }
}
