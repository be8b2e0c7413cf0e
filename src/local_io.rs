//! How Lance reads tables on the local file system.
//!
//! Lance's plain local reader hands every byte range to tokio's blocking pool (one `pread` per
//! task). A random selection of cells is thousands of small ranges, and waking a thread for
//! each cost more than the reads: half of the samples of 1,000 random cells (100,000 × 20,000)
//! were thread hand-overs in `perf`. Lance's io_uring reader (`file+uring://`) queues the
//! ranges to two ring threads that submit them in batches: the same read took 21 ms instead of
//! 42 ms, one cell 0.45 ms instead of 0.7 ms; full scans were unchanged.
//!
//! io_uring is not always there: kernels before 5.1, container seccomp profiles that block it,
//! locked-memory limits for its rings. Once per process a probe builds a ring of the depth
//! Lance's threads will use; if that fails, reads stay on `pread`. `SLAF_IO_URING=0` turns it
//! off.

use std::sync::OnceLock;

/// The environment variable that turns io_uring reads off (`0`, `false`, `off`, `no`).
pub const IO_URING_VARIABLE: &str = "SLAF_IO_URING";

/// Whether local tables are read through Lance's io_uring reader in this process.
pub fn uring_reads() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| !turned_off() && ring_starts())
}

/// The URI Lance opens the local table at `path` (absolute) through.
pub(crate) fn lance_uri(path: &str) -> String {
    if uring_reads() {
        format!("file+uring://{path}")
    } else {
        path.to_string()
    }
}

fn turned_off() -> bool {
    std::env::var(IO_URING_VARIABLE).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "off" | "no"
        )
    })
}

/// Whether a ring as deep as Lance's (`LANCE_URING_QUEUE_DEPTH`, else its default of 16,384)
/// can be set up here.
#[cfg(target_os = "linux")]
fn ring_starts() -> bool {
    let depth = std::env::var("LANCE_URING_QUEUE_DEPTH")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(16 * 1024);
    io_uring::IoUring::new(depth).is_ok()
}

/// Lance reads `file+uring://` through io_uring on Linux only.
#[cfg(not(target_os = "linux"))]
fn ring_starts() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_when_io_uring_is_off_or_missing() {
        let uri = lance_uri("/data/x.slaf/cells.lance");
        if uring_reads() {
            assert_eq!(uri, "file+uring:///data/x.slaf/cells.lance");
        } else {
            assert_eq!(uri, "/data/x.slaf/cells.lance");
        }
    }
}
