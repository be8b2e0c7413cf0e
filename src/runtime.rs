//! The process-wide tokio runtime that drives Lance's async I/O.
//!
//! The core's public API is blocking: adapters (DuckDB callbacks, Python with the GIL released)
//! call it from their own threads, never from inside this runtime.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Builder::new_multi_thread()
            .worker_threads(threads.max(2))
            .thread_name("slaf-io")
            .enable_all()
            .build()
            .expect("the tokio runtime for SLAF I/O could not start")
    })
}

/// Runs `future` to completion on the shared runtime, blocking the calling thread.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}
