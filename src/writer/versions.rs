//! The Lance version of each table that config.json describes (`table_versions`). An append
//! commits new table versions first and config.json, naming them, last: that rename is the
//! commit point. A write killed in between leaves tables ahead of config; readers do not see
//! those versions (they open the recorded ones), and the next writer rolls them back before it
//! builds on the tables.

use std::collections::BTreeMap;
use std::path::Path;

use lance::dataset::builder::DatasetBuilder;
use serde_json::{json, Value};

use super::orphans;
use super::staging::write_file;
use crate::config::{Config, TABLE_VERSIONS};
use crate::error::{Error, Result};
use crate::runtime::block_on;

/// Under the writer lock of the dataset at `root` (`shown` in messages): the table versions
/// its config describes, with tables that are ahead of them rolled back (a restore commit, so
/// no version is lost). A config without a record (written before, or by another writer) gets
/// one of the latest versions, saved at once, so readers stop following the latest versions
/// before anything new is committed. Returns the versions and a note per rollback.
pub(crate) fn pin(
    root: &Path,
    shown: &str,
    config: &Config,
) -> Result<(BTreeMap<String, u64>, Vec<String>)> {
    let mut versions = BTreeMap::new();
    let mut notes = Vec::new();
    let mut unrecorded = false;
    for (role, relative) in &config.tables {
        let uri = root.join(relative.trim_start_matches("./"));
        if !uri.is_dir() {
            continue; // a missing table is reported when the dataset is opened
        }
        let uri = uri.to_string_lossy().into_owned();
        let context = || format!("opening table '{role}' of {shown} to append to it");
        let latest = block_on(DatasetBuilder::from_uri(&uri).load())
            .map_err(|e| Error::storage(context(), e))?;
        let latest_version = latest.manifest().version;
        let Some(recorded) = config.table_version(role) else {
            unrecorded = true;
            versions.insert(role.clone(), latest_version);
            continue;
        };
        if latest_version < recorded {
            return Err(Error::missing_table(format!(
                "table '{role}' of {shown} is damaged: config.json describes version {recorded} \
                 but the newest version stored is {latest_version}"
            )));
        }
        if latest_version > recorded {
            block_on(async {
                let mut old = latest.checkout_version(recorded).await?;
                old.restore().await
            })
            .map_err(|e| Error::storage(format!("rolling back table '{role}' of {shown}"), e))?;
            notes.push(format!(
                "table '{role}' of {shown} had versions that an interrupted write left \
                 uncommitted (config.json describes version {recorded}); rolled back to it"
            ));
        }
        versions.insert(role.clone(), recorded);
        let (files, bytes) = orphans::remove(Path::new(&uri))?;
        if files > 0 {
            notes.push(format!(
                "removed {files} data file(s) ({bytes} bytes) of table '{role}' of {shown}, \
                 left behind by an interrupted write"
            ));
        }
    }
    if unrecorded {
        let mut document = config.document.clone();
        document.insert(TABLE_VERSIONS.into(), json!(versions));
        let text = serde_json::to_vec_pretty(&Value::Object(document))
            .map_err(|e| Error::invalid_argument(format!("config is not JSON: {e}")))?;
        write_file(&root.join("config.json"), &text)?;
    }
    Ok((versions, notes))
}
