//! Worker threads producing numbered jobs ahead of the consumer, handed over in job order.
//!
//! Workers take the next job number while fewer than `capacity` finished or running jobs are
//! ahead of the consumer (a bounded queue), run it, and file the result under its number; the
//! consumer takes results strictly in order, so the output never depends on thread timing.
//! The first error is handed to the consumer in its place and ends the stream. Stopping (or
//! dropping the prefetcher) wakes every waiting thread and joins the workers: no thread is left
//! behind, and one running job is all a worker finishes before it exits.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// What a job computes: `job number → result`.
pub type Work<T> = Arc<dyn Fn(usize) -> Result<T> + Send + Sync>;

/// Worker threads' names (tests look for them to prove none is left).
pub const THREAD_NAME: &str = "slaf-loader";

struct State<T> {
    /// The next job a worker will take.
    next_job: usize,
    /// The next job the consumer will receive.
    next_out: usize,
    ready: BTreeMap<usize, Result<T>>,
    stopped: bool,
}

struct Shared<T> {
    jobs: usize,
    capacity: usize,
    state: Mutex<State<T>>,
    changed: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `jobs` numbered jobs on worker threads, at most `capacity` ahead of the consumer.
pub struct Prefetcher<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Queue state, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// Jobs finished and waiting for the consumer.
    pub ready: usize,
    /// Jobs handed to the consumer.
    pub delivered: usize,
    /// Jobs in all.
    pub total: usize,
}

impl<T: Send + 'static> Prefetcher<T> {
    /// Starts `threads` workers (at least one) over jobs `0..jobs`.
    pub fn start(jobs: usize, threads: usize, capacity: usize, work: Work<T>) -> Result<Self> {
        let shared = Arc::new(Shared {
            jobs,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                next_job: 0,
                next_out: 0,
                ready: BTreeMap::new(),
                stopped: false,
            }),
            changed: Condvar::new(),
        });
        let prefetcher = Self {
            shared: shared.clone(),
            workers: Mutex::new(Vec::new()),
        };
        for i in 0..threads.clamp(1, jobs.max(1)) {
            let (shared, work) = (shared.clone(), work.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{THREAD_NAME}-{i}"))
                .spawn(move || run_worker(&shared, &*work))
                .map_err(|e| {
                    Error::invalid_argument(format!("cannot start a loader thread: {e}"))
                })?;
            // On an early return the prefetcher is dropped, which stops and joins these.
            prefetcher
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(handle);
        }
        Ok(prefetcher)
    }

    /// The next result in job order; `None` once every job was delivered, after an error was,
    /// or after [`Self::stop`]. Blocks while the next job is still running.
    pub fn next(&self) -> Option<Result<T>> {
        let mut state = self.shared.lock();
        loop {
            if state.stopped {
                return None;
            }
            let next = state.next_out;
            if let Some(result) = state.ready.remove(&next) {
                state.next_out += 1;
                if result.is_err() {
                    state.stopped = true;
                }
                self.shared.changed.notify_all();
                return Some(result);
            }
            if next >= self.shared.jobs {
                return None;
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Queue state now.
    pub fn queue_state(&self) -> QueueState {
        let state = self.shared.lock();
        QueueState {
            ready: state.ready.len(),
            delivered: state.next_out,
            total: self.shared.jobs,
        }
    }

    /// Stops the workers and waits for them to exit (each finishes at most its running job).
    pub fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for worker in workers {
            // A panicking job already reported nothing; joining just reaps the thread.
            let _ = worker.join();
        }
    }
}

impl<T: Send + 'static> Drop for Prefetcher<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_worker<T>(shared: &Shared<T>, work: &(dyn Fn(usize) -> Result<T> + Send + Sync)) {
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if state.stopped || state.next_job >= shared.jobs {
                    return;
                }
                if state.next_job < state.next_out + shared.capacity {
                    break;
                }
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            state.next_job += 1;
            state.next_job - 1
        };
        let result = work(job);
        let mut state = shared.lock();
        if state.stopped {
            return;
        }
        state.ready.insert(job, result);
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn results_arrive_in_job_order() {
        // Later jobs finish first; the consumer still sees 0, 1, 2, ...
        let work: Work<usize> = Arc::new(|j| {
            std::thread::sleep(Duration::from_millis(((20 - j) % 5) as u64));
            Ok(j * 10)
        });
        let p = Prefetcher::start(20, 4, 3, work).unwrap();
        let got: Vec<usize> = std::iter::from_fn(|| p.next())
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got, (0..20).map(|j| j * 10).collect::<Vec<_>>());
        assert_eq!(p.queue_state().delivered, 20);
    }

    #[test]
    fn an_error_reaches_the_consumer_and_ends_the_stream() {
        let work: Work<usize> = Arc::new(|j| {
            if j == 3 {
                Err(Error::invalid_argument("job 3 failed"))
            } else {
                Ok(j)
            }
        });
        let p = Prefetcher::start(10, 2, 2, work).unwrap();
        for j in 0..3 {
            assert_eq!(p.next().unwrap().unwrap(), j);
        }
        let e = p.next().unwrap().unwrap_err();
        assert!(e.to_string().contains("job 3 failed"), "{e}");
        assert!(p.next().is_none());
    }

    #[test]
    fn workers_stay_within_capacity_and_stop_at_once() {
        let started = Arc::new(AtomicUsize::new(0));
        let counter = started.clone();
        let work: Work<usize> = Arc::new(move |j| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(j)
        });
        let p = Prefetcher::start(1000, 3, 4, work).unwrap();
        assert_eq!(p.next().unwrap().unwrap(), 0);
        std::thread::sleep(Duration::from_millis(50));
        // One delivered, at most `capacity` ahead of the consumer.
        assert!(started.load(Ordering::SeqCst) <= 5);
        p.stop();
        assert!(p.next().is_none());
        assert!(p.workers.lock().unwrap().is_empty());
    }
}
