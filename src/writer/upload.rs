//! Publishing a dataset staged on local disk to an empty prefix of an object store
//! (`s3://…`): every file is uploaded, `config.json` last, so the prefix holds a dataset only
//! once all of it is there.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::{Error, Result};
use crate::location::Location;

/// Files at most this large go up in one PUT; larger ones in parts of this size.
const PART_BYTES: usize = 16 << 20;
/// Files uploaded at the same time.
const PARALLEL_FILES: usize = 8;
/// Parts of one file in flight at the same time.
const PARALLEL_PARTS: usize = 4;

/// What is stored under a remote dataset root.
pub(crate) enum Existing {
    Nothing,
    Dataset,
    /// Objects, but no config.json: not ours to replace.
    Other,
}

/// What is stored under `location` now.
pub(crate) async fn existing(location: &Location) -> Result<Existing> {
    if location.read_optional("config.json").await?.is_some() {
        return Ok(Existing::Dataset);
    }
    Ok(if location.holds_objects().await? {
        Existing::Other
    } else {
        Existing::Nothing
    })
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let entries = std::fs::read_dir(&next)
            .map_err(|e| Error::storage(format!("listing {}", next.display()), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::storage(format!("listing {}", next.display()), e))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Uploads `file` to `to`: one PUT when small, a multipart upload otherwise.
async fn upload_file(
    store: &dyn object_store::ObjectStore,
    file: &Path,
    to: &StorePath,
) -> Result<()> {
    let failed =
        |e: object_store::Error| Error::storage(format!("uploading {}", file.display()), e);
    let local = |e: std::io::Error| Error::storage(format!("reading {}", file.display()), e);
    let mut source = std::fs::File::open(file).map_err(local)?;
    let size = source.metadata().map_err(local)?.len() as usize;
    if size <= PART_BYTES {
        let mut bytes = Vec::with_capacity(size);
        source.read_to_end(&mut bytes).map_err(local)?;
        store
            .put(to, PutPayload::from(bytes))
            .await
            .map_err(failed)?;
        return Ok(());
    }
    let upload = store.put_multipart(to).await.map_err(failed)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut buffer = vec![0u8; PART_BYTES];
    loop {
        let n = source.read(&mut buffer).map_err(local)?;
        if n == 0 {
            break;
        }
        writer
            .wait_for_capacity(PARALLEL_PARTS)
            .await
            .map_err(failed)?;
        writer.write(&buffer[..n]);
    }
    writer.finish().await.map_err(failed)?;
    Ok(())
}

/// Uploads the dataset staged in `dir` to `location` (where nothing is stored), config.json
/// last. On failure, what was uploaded is removed (best effort): the prefix never holds a
/// config.json without the tables it names.
pub(crate) async fn publish(dir: &Path, location: &Location) -> Result<()> {
    let (store, root) = location.store(location.uri()).await?;
    let destination = |file: &Path| -> Result<StorePath> {
        let relative = file.strip_prefix(dir).map_err(|_| {
            Error::invalid_argument(format!("{} is outside the staging folder", file.display()))
        })?;
        Ok(relative.components().fold(root.clone(), |path, part| {
            path.join(part.as_os_str().to_string_lossy().as_ref())
        }))
    };
    let (config, tables): (Vec<PathBuf>, Vec<PathBuf>) = files(dir)?.into_iter().partition(|f| {
        f.strip_prefix(dir)
            .is_ok_and(|r| r == Path::new("config.json"))
    });
    let uploaded = futures::stream::iter(tables.iter().map(|file| {
        let store = store.clone();
        async move {
            let to = destination(file)?;
            upload_file(store.inner.as_ref(), file, &to).await
        }
    }))
    .buffer_unordered(PARALLEL_FILES)
    .try_collect::<Vec<()>>()
    .await;
    let committed = match uploaded {
        Ok(_) => match config.first() {
            Some(file) => upload_file(store.inner.as_ref(), file, &destination(file)?).await,
            None => Err(Error::invalid_argument(
                "the staged dataset has no config.json",
            )),
        },
        Err(e) => Err(e),
    };
    if committed.is_err() {
        let _ = store.remove_dir_all(root).await;
    }
    committed
}
