//! Where a write happens before it becomes visible: a hidden sibling directory that is renamed
//! onto the target only once everything (config.json last) is written. A failed or killed
//! conversion therefore never leaves a directory at the target that looks like a dataset.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// A hidden sibling of `target` named after it, unique to this process and moment.
fn sibling(target: &Path, what: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::invalid_argument(format!("{} has no file name", target.display())))?
        .to_string_lossy()
        .into_owned();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let parent = target.parent().unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{name}.{what}-{}-{nanos}", std::process::id())))
}

/// A staging directory for a new or updated dataset at `target`.
pub(crate) struct Staging {
    target: PathBuf,
    dir: PathBuf,
    done: bool,
}

impl Staging {
    /// Stages a new dataset. `target` must not exist unless `overwrite`.
    pub fn create(target: &str, overwrite: bool) -> Result<Self> {
        if target.contains("://") && !target.starts_with("file://") {
            return Err(Error::invalid_argument(format!(
                "cannot write to {target}: the writer writes local directories only"
            )));
        }
        let target = std::path::absolute(target.strip_prefix("file://").unwrap_or(target))
            .map_err(|e| Error::storage(format!("resolving {target}"), e))?;
        if target.exists() && !overwrite {
            return Err(Error::invalid_argument(format!(
                "{} already exists; pass overwrite=True (--overwrite) to replace it",
                target.display()
            )));
        }
        let parent = target.parent().unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(Error::not_found(format!(
                "cannot write {}: the folder {} does not exist",
                target.display(),
                parent.display()
            )));
        }
        let dir = sibling(&target, "writing")?;
        std::fs::create_dir(&dir)
            .map_err(|e| Error::storage(format!("creating {}", dir.display()), e))?;
        Ok(Self {
            target,
            dir,
            done: false,
        })
    }

    /// Stages an update of the existing dataset `target`: a hard-linked copy (Lance never
    /// rewrites its files, it only adds new ones), so the original stays intact until the swap.
    pub fn update(target: &str) -> Result<Self> {
        let target = std::path::absolute(target)
            .map_err(|e| Error::storage(format!("resolving {target}"), e))?;
        if !target.join("config.json").is_file() {
            return Err(Error::not_a_dataset(format!(
                "{} is not a SLAF dataset: it has no config.json",
                target.display()
            )));
        }
        let dir = sibling(&target, "writing")?;
        link_tree(&target, &dir)?;
        Ok(Self {
            target,
            dir,
            done: false,
        })
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The final location.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staged dataset onto the target (replacing what was there).
    pub fn publish(mut self) -> Result<()> {
        let io = |what: &str, e: std::io::Error| Error::storage(what.to_string(), e);
        if self.target.exists() {
            let old = sibling(&self.target, "old")?;
            std::fs::rename(&self.target, &old)
                .map_err(|e| io(&format!("moving {} aside", self.target.display()), e))?;
            std::fs::rename(&self.dir, &self.target)
                .map_err(|e| io(&format!("moving into {}", self.target.display()), e))?;
            self.done = true;
            let removed = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
            removed.map_err(|e| io(&format!("removing {}", old.display()), e))?;
        } else {
            std::fs::rename(&self.dir, &self.target)
                .map_err(|e| io(&format!("moving into {}", self.target.display()), e))?;
            self.done = true;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: an abandoned write leaves nothing behind.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Recreates the directory tree `from` at `to` with hard links (copies where linking fails).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    let io = |what: String, e: std::io::Error| Error::storage(what, e);
    std::fs::create_dir(to).map_err(|e| io(format!("creating {}", to.display()), e))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| io(format!("listing {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(format!("listing {}", from.display()), e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| io(format!("inspecting {}", src.display()), e))?;
        if kind.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(|e| io(format!("copying {}", src.display()), e))?;
        }
    }
    Ok(())
}

/// Writes a small file by renaming a finished temporary file over it, so a hard-linked
/// original is replaced rather than modified.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes)
        .map_err(|e| Error::storage(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::storage(format!("writing {}", path.display()), e))
}
