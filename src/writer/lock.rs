//! One writer at a time per dataset: an exclusive lock (`flock`) on the dataset's folder,
//! held by appends and by an overwrite while it swaps the folder. Readers never take it: they
//! open the table versions config.json names, so a write in progress is invisible to them.
//! The lock dies with its process, so a killed writer never leaves it held.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Held until dropped.
pub(crate) struct DatasetLock {
    _folder: File,
    path: PathBuf,
}

impl DatasetLock {
    /// Waits until no other writer holds `path`, then holds it. A write that waited builds on
    /// what the previous one committed, so concurrent appends are serialized, never lost.
    pub fn acquire(path: &Path) -> Result<Self> {
        let io = |what: &str, e: std::io::Error| {
            Error::storage(format!("{what} {} for writing", path.display()), e)
        };
        loop {
            let folder = File::open(path).map_err(|e| io("opening", e))?;
            folder.lock().map_err(|e| io("locking", e))?;
            // An overwrite may have replaced the folder while this one waited: the lock only
            // counts if it is on the folder now at `path`.
            let held = folder.metadata().map_err(|e| io("inspecting", e))?;
            match std::fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Self {
                        _folder: folder,
                        path: path.to_path_buf(),
                    })
                }
                Ok(_) => continue,
                Err(e) => return Err(io("reopening", e)),
            }
        }
    }

    /// The locked folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_writer_waits_for_the_first() {
        let dir = std::env::temp_dir().join(format!("slaf-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DatasetLock::acquire(&dir).unwrap();
        let (tx, rx) = mpsc::channel();
        let path = dir.clone();
        let waiter = std::thread::spawn(move || {
            let second = DatasetLock::acquire(&path).unwrap();
            tx.send(()).unwrap();
            drop(second);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "not serialized"
        );
        assert_eq!(first.path(), dir.as_path());
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
