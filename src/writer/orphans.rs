//! Data files that no version of a table references: what an append that was killed or failed
//! before its commit leaves in `TABLE/data/` (an append writes its fragments' files in place,
//! then commits them). Under the writer lock nobody else is writing, so such files are removed.
//! Files of every version are kept, so readers of any recorded version never lose a file.

use std::collections::HashSet;
use std::path::Path;

use lance::dataset::builder::DatasetBuilder;

use crate::error::{Error, Result};
use crate::runtime::block_on;

/// Removes the unreferenced data files of the Lance table at `table`; returns how many files
/// and bytes were removed.
pub(crate) fn remove(table: &Path) -> Result<(usize, u64)> {
    let data = table.join("data");
    if !data.is_dir() {
        return Ok((0, 0));
    }
    let uri = table.to_string_lossy().into_owned();
    let context = || format!("listing the data files of {uri}");
    let referenced = block_on(async {
        let latest = DatasetBuilder::from_uri(&uri).load().await?;
        let mut referenced = HashSet::new();
        for version in latest.versions().await? {
            let at = latest.checkout_version(version.version).await?;
            for fragment in at.fragments().iter() {
                referenced.extend(fragment.files.iter().map(|f| f.path.clone()));
            }
        }
        Ok::<_, lance::Error>(referenced)
    })
    .map_err(|e| Error::storage(context(), e))?;
    let entries = std::fs::read_dir(&data).map_err(|e| Error::storage(context(), e))?;
    let (mut files, mut bytes) = (0, 0);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !name.ends_with(".lance") || referenced.contains(&name) {
            continue;
        }
        let size = entry.metadata().map_or(0, |m| m.len());
        if std::fs::remove_file(entry.path()).is_ok() {
            files += 1;
            bytes += size;
        }
    }
    Ok((files, bytes))
}
