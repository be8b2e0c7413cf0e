//! Bounds on every size a user can ask for (sequence lengths, bins, vocabularies, batches,
//! selections, filter strings), and fallible allocation for buffers sized from them.
//!
//! A size that passes its bound can still ask for more memory than the machine has (many cells
//! times a long sequence): buffers sized from user input are therefore checked against the
//! memory available now and reserved with `try_reserve`, so a request that cannot be met is a
//! [`ErrorKind::ResourceLimit`](crate::ErrorKind::ResourceLimit) error, never an abort of the
//! host process (DuckDB, Python).

use crate::error::{Error, Result};

/// Longest token sequence (`max_genes`, scGPT `max_len`): four times the largest gene panels.
pub const MAX_SEQ_LEN: usize = 1 << 18;
/// Most scGPT value bins (scGPT uses 51); each cell computes this many quantile edges.
pub const MAX_N_BINS: usize = 1 << 16;
/// Largest vocabulary: token ids of genes are `u32` gene ids plus a few specials.
pub const MAX_VOCAB_SIZE: usize = 1 << 32;
/// Most rows per batch a caller may ask a scan for.
pub const MAX_BATCH_ROWS: usize = 1 << 24;
/// Most entries in one selector (integer ids, names, mask): output positions are `u32`.
pub const MAX_SELECTION: usize = u32::MAX as usize;
/// Longest filter string, in bytes.
pub const MAX_FILTER_BYTES: usize = 1 << 20;
/// Most operators (AND, OR, comparisons, arithmetic) in one filter: each adds a level to the
/// expression tree that the planner walks recursively, so thousands would overflow its stack.
pub const MAX_FILTER_OPERATORS: usize = 1000;
/// Share of the memory available now that one buffer sized from user input may take.
const MAX_MEMORY_SHARE: f64 = 0.5;

/// Fails unless `lo <= value <= hi`; `name` is the parameter as the user spells it.
pub fn check_range(name: &str, value: usize, lo: usize, hi: usize) -> Result<()> {
    if value < lo {
        return Err(Error::invalid_argument(format!(
            "{name} is {value}, must be at least {lo}"
        )));
    }
    if value > hi {
        return Err(Error::resource_limit(format!(
            "{name} is {value}, above the limit of {hi}"
        )));
    }
    Ok(())
}

/// Bytes of memory available to this process now (`MemAvailable` on Linux), or `None` where
/// that cannot be read.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Fails when `count` items of `item_bytes` each (for `what`, e.g. "token output of 512 cells
/// × max_genes 100000") overflow or would take more than half the memory available now.
pub fn check_bytes(what: &str, count: usize, item_bytes: usize) -> Result<usize> {
    let bytes = count.checked_mul(item_bytes).ok_or_else(|| {
        Error::resource_limit(format!(
            "{what} needs {count} × {item_bytes} bytes, more than this machine can address"
        ))
    })?;
    if let Some(available) = available_memory() {
        let allowed = (available as f64 * MAX_MEMORY_SHARE) as u64;
        if bytes as u64 > allowed {
            return Err(Error::resource_limit(format!(
                "{what} needs {} but only {} of memory is available: ask for less",
                human(bytes as u64),
                human(available)
            )));
        }
    }
    Ok(bytes)
}

/// Resizes `buffer` to `len` items (new ones `fill`), failing instead of aborting when the
/// memory cannot be had.
pub fn try_resize<T: Clone>(buffer: &mut Vec<T>, len: usize, fill: T, what: &str) -> Result<()> {
    if len > buffer.len() {
        buffer.try_reserve(len - buffer.len()).map_err(|_| {
            Error::resource_limit(format!(
                "out of memory allocating {what} ({len} items of {} bytes)",
                std::mem::size_of::<T>()
            ))
        })?;
    }
    buffer.resize(len, fill);
    Ok(())
}

/// An empty vector with room for `capacity` items, or a resource-limit error.
pub fn try_with_capacity<T>(capacity: usize, what: &str) -> Result<Vec<T>> {
    let mut buffer = Vec::new();
    buffer.try_reserve(capacity).map_err(|_| {
        Error::resource_limit(format!(
            "out of memory allocating {what} ({capacity} items of {} bytes)",
            std::mem::size_of::<T>()
        ))
    })?;
    Ok(buffer)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn ranges_name_the_parameter() {
        assert!(check_range("n_bins", 51, 2, MAX_N_BINS).is_ok());
        let low = check_range("n_bins", 1, 2, MAX_N_BINS).unwrap_err();
        assert_eq!(low.kind(), ErrorKind::InvalidArgument);
        assert_eq!(low.message(), "n_bins is 1, must be at least 2");
        let high = check_range("max_genes", 1_000_000_000, 1, MAX_SEQ_LEN).unwrap_err();
        assert_eq!(high.kind(), ErrorKind::ResourceLimit);
        assert!(high.message().contains("max_genes is 1000000000"));
    }

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let err = check_bytes("tokens", usize::MAX, 8).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceLimit);
        if available_memory().is_some() {
            let err = check_bytes("tokens", 1 << 50, 8).unwrap_err();
            assert!(err.message().contains("memory is available"), "{err}");
        }
        let mut v: Vec<u64> = Vec::new();
        let err = try_resize(&mut v, usize::MAX / 4, 0, "ids").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceLimit);
        assert!(try_with_capacity::<u64>(usize::MAX / 4, "ids").is_err());
        try_resize(&mut v, 3, 7, "ids").unwrap();
        assert_eq!(v, vec![7, 7, 7]);
    }
}
