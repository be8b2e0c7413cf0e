//! Where a new dataset is written before it becomes visible: a hidden sibling directory that is
//! renamed onto the target only once everything (config.json last) is written. A failed or
//! killed conversion therefore never leaves a directory at the target that looks like a
//! dataset. An object-store target (`s3://…`) is staged in the temporary folder and uploaded,
//! config.json last (see `upload`). (Appends need no staging: they commit new table versions
//! in place.)

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::lock::DatasetLock;
use super::replace::{check_replaceable, resolve};
use super::upload::{self, Existing};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::runtime::block_on;

/// A hidden sibling of `target` named after it and this process (see `leftovers`).
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

/// A staging directory for a new dataset at `target`.
pub(crate) struct Staging {
    /// The path as the user gave it (for messages).
    shown: String,
    /// Where the dataset goes, symlinks resolved. For a remote target, `slaf-upload` in the
    /// temporary folder: the staging folders are its siblings, so that a killed upload's
    /// folder is removed by the next one (see `leftovers`).
    target: PathBuf,
    /// An object-store target (nothing is stored there yet).
    remote: Option<Location>,
    dir: PathBuf,
    done: bool,
}

impl Staging {
    /// Stages a new dataset. `target` must not exist unless `overwrite`, and then only a SLAF
    /// dataset may be there.
    pub fn create(
        target: &str,
        overwrite: bool,
        storage_options: HashMap<String, String>,
    ) -> Result<Self> {
        if target.contains("://") && !target.starts_with("file://") {
            return Self::create_remote(target, overwrite, storage_options);
        }
        let shown = target.to_string();
        let local = target.strip_prefix("file://").unwrap_or(target);
        let target = resolve(Path::new(local))?;
        if target.exists() {
            if !overwrite {
                return Err(Error::invalid_argument(format!(
                    "{shown} already exists; pass overwrite=True (--overwrite) to replace it"
                )));
            }
            check_replaceable(local, &[])?;
        }
        let parent = target.parent().unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(Error::not_found(format!(
                "cannot write {shown}: the folder {} does not exist",
                parent.display()
            )));
        }
        let dir = sibling(&target, "writing")?;
        std::fs::create_dir(&dir)
            .map_err(|e| Error::storage(format!("creating the staging folder for {shown}"), e))?;
        Ok(Self {
            shown,
            target,
            remote: None,
            dir,
            done: false,
        })
    }

    /// Stages a dataset for the object-store URI `target` in the temporary folder.
    fn create_remote(
        target: &str,
        overwrite: bool,
        storage_options: HashMap<String, String>,
    ) -> Result<Self> {
        let location = Location::parse(target, storage_options)?;
        match block_on(upload::existing(&location))? {
            Existing::Nothing => {}
            // Replacing in place would remove the old dataset before the new one is complete
            // (an object store cannot swap prefixes): refused rather than risked.
            Existing::Dataset if overwrite => {
                return Err(Error::invalid_argument(format!(
                    "{target} already exists, and replacing a dataset on object storage is not \
                     supported yet: remove it first (e.g. aws s3 rm --recursive {target})"
                )))
            }
            Existing::Dataset => {
                return Err(Error::invalid_argument(format!(
                    "{target} already exists; pass overwrite=True (--overwrite) to replace it"
                )))
            }
            Existing::Other => {
                return Err(Error::invalid_argument(format!(
                    "{target} holds objects but no config.json: it is not a SLAF dataset, and \
                     is not replaced"
                )))
            }
        }
        let uploads = std::env::temp_dir().join("slaf-upload");
        let dir = sibling(&uploads, "writing")?;
        std::fs::create_dir(&dir).map_err(|e| {
            Error::storage(
                format!(
                    "creating a staging folder for {target} in {}",
                    dir.display()
                ),
                e,
            )
        })?;
        Ok(Self {
            shown: target.to_string(),
            target: uploads,
            remote: Some(location),
            dir,
            done: false,
        })
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The final location (symlinks resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// `e` naming the user's path instead of the hidden staging directory.
    pub fn in_user_terms(&self, e: Error) -> Error {
        let dir = self.dir.to_string_lossy().into_owned();
        let target = match &self.remote {
            Some(location) => location.uri().to_string(),
            None => self.target.to_string_lossy().into_owned(),
        };
        e.map_message(|m| m.replace(&dir, &target))
    }

    /// Moves the staged dataset onto the target. A dataset already there is swapped out under
    /// its writer lock (so no append is halfway through it) and then removed; if removing it
    /// fails, the next write here removes it (see `leftovers`).
    pub fn publish(mut self) -> Result<()> {
        if let Some(location) = &self.remote {
            block_on(upload::publish(&self.dir, location)).map_err(|e| self.in_user_terms(e))?;
            // `done` stays false: dropping removes the local staging folder.
            return Ok(());
        }
        let shown = self.shown.clone();
        let io = |what: String, e: std::io::Error| Error::storage(what, e);
        if self.target.exists() {
            let lock = DatasetLock::acquire(&self.target)?;
            check_replaceable(&self.target.to_string_lossy(), &[]).map_err(|e| {
                e.map_message(|m| m.replace(&*self.target.to_string_lossy(), &shown))
            })?;
            let old = sibling(&self.target, "old")?;
            std::fs::rename(&self.target, &old)
                .map_err(|e| io(format!("moving the old {shown} aside"), e))?;
            drop(lock);
            std::fs::rename(&self.dir, &self.target)
                .map_err(|e| io(format!("moving the new dataset into {shown}"), e))?;
            self.done = true;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.dir, &self.target)
                .map_err(|e| io(format!("moving the new dataset into {shown}"), e))?;
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

/// Replaces the small file `path` atomically: a temporary file next to it is written, synced
/// and renamed over it, so a reader sees the old bytes or the new ones, never a mix, and a
/// killed writer leaves the old file intact.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| Error::storage(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_target_not_the_staging_folder() {
        let root = std::env::temp_dir().join(format!("slaf-staging-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let target = root.join("out.slaf");
        let staging =
            Staging::create(&target.to_string_lossy(), false, Default::default()).unwrap();
        let hidden = staging.dir().join("cells.lance");
        let e = Error::invalid_argument(format!("writing table 'cells' at {}", hidden.display()));
        let shown = staging.in_user_terms(e);
        assert!(!shown.message().contains(".writing-"), "{shown}");
        assert!(shown.message().ends_with("out.slaf/cells.lance"), "{shown}");
        drop(staging);
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
