//! How far a long job has come, for front ends that draw progress bars (the core draws none).

use std::sync::Arc;

/// Called with `(done, total)` units of work as a job advances; `done` only grows and ends at
/// `total`. Callers report every few million rows, so the callback may be slow-ish (a Python
/// bar takes the GIL).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Counts work done and reports it to an optional [`Progress`].
pub(crate) struct Tally<'a> {
    progress: Option<&'a Progress>,
    done: u64,
    total: u64,
}

impl<'a> Tally<'a> {
    pub(crate) fn new(progress: Option<&'a Progress>, total: u64) -> Self {
        let tally = Self {
            progress,
            done: 0,
            total,
        };
        tally.report();
        tally
    }

    pub(crate) fn add(&mut self, units: u64) {
        self.done = (self.done + units).min(self.total);
        self.report();
    }

    fn report(&self) {
        if let Some(progress) = self.progress {
            progress(self.done, self.total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reports_from_zero_to_total() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress: Progress =
            Arc::new(move |done, total| sink.lock().unwrap().push((done, total)));
        let mut tally = Tally::new(Some(&progress), 10);
        tally.add(4);
        tally.add(9);
        assert_eq!(*seen.lock().unwrap(), vec![(0, 10), (4, 10), (10, 10)]);
        Tally::new(None, 5).add(5); // no sink: nothing to report to, nothing fails
    }
}
