//! Where a dataset lives: a local directory or an object-store URI, plus storage options.

use std::collections::HashMap;
use std::path::Path;

use futures::StreamExt;
use lance::io::{ObjectStore, ObjectStoreParams, ObjectStoreRegistry, StorageOptionsAccessor};
use object_store::ObjectStoreExt;

use crate::error::{Error, ErrorKind, Result, StorageContext};
use std::sync::Arc;

/// A dataset root. Local paths are made absolute; URIs (`s3://…`, `gs://…`, `file://…`) are kept.
#[derive(Debug, Clone)]
pub struct Location {
    uri: String,
    local: bool,
    storage_options: HashMap<String, String>,
}

impl Location {
    /// Parses a user-given path or URI. Local paths must exist and be directories.
    pub fn parse(path: &str, storage_options: HashMap<String, String>) -> Result<Self> {
        if path.is_empty() {
            return Err(Error::invalid_argument("the dataset path is empty"));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            if scheme != "file" {
                return Ok(Self {
                    uri: path.trim_end_matches('/').to_string(),
                    local: false,
                    storage_options,
                });
            }
        }
        let raw = path.strip_prefix("file://").unwrap_or(path);
        let local = Path::new(raw);
        if !local.exists() {
            return Err(Error::not_found(format!(
                "no dataset at {path}: the path does not exist"
            )));
        }
        if !local.is_dir() {
            return Err(Error::not_a_dataset(format!(
                "{path} is not a SLAF dataset: it is a file, not a directory"
            )));
        }
        let absolute = std::path::absolute(local)
            .map_err(|e| Error::storage(format!("resolving {path}"), e))?;
        Ok(Self {
            uri: absolute.to_string_lossy().trim_end_matches('/').to_string(),
            local: true,
            storage_options,
        })
    }

    /// The root as given to Lance.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the dataset is on the local file system.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Storage options (credentials, endpoint, ...) passed to Lance and the object store.
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.storage_options
    }

    /// The URI of `relative` (a table path from `config.json`) under the root.
    pub fn join(&self, relative: &str) -> String {
        format!(
            "{}/{}",
            self.uri,
            relative.trim_start_matches("./").trim_matches('/')
        )
    }

    /// Reads a small file under the root; `Ok(None)` when it does not exist.
    pub async fn read_optional(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        let uri = self.join(relative);
        if self.local {
            return match std::fs::read(&uri) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::storage(format!("reading {uri}"), e)),
            };
        }
        let (store, path) = self.store(&uri).await?;
        // One GET (no HEAD first): a missing object is its NotFound answer.
        match store.inner.get(&path).await {
            Ok(found) => {
                let bytes = found
                    .bytes()
                    .await
                    .map_err(|e| Error::storage(format!("reading {uri}"), e))?;
                Ok(Some(bytes.to_vec()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            // The AWS SDK's message is a page of debug output: say what to do instead.
            Err(e) if e.to_string().contains("Failed to get AWS credentials") => Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "reading {uri}: no AWS credentials were found (set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass them in storage_options)"
                ),
            )),
            Err(e) => Err(Error::storage(format!("reading {uri}"), e)),
        }
    }

    /// The error for a remote root without `config.json`: nothing stored under it (a missing
    /// bucket or key, like a local path that does not exist), or something that is not a
    /// dataset. One listing request, made only on this failure path.
    pub async fn missing_dataset(&self) -> Error {
        let not_a_dataset = Error::not_a_dataset(format!(
            "{} is not a SLAF dataset: it has no config.json",
            self.uri
        ));
        if self.local {
            return not_a_dataset;
        }
        match self.holds_objects().await {
            Ok(true) => not_a_dataset,
            Ok(false) => Error::not_found(format!(
                "no dataset at {}: nothing is stored under it",
                self.uri
            )),
            Err(e) => e,
        }
    }

    /// Whether anything is stored under a remote root (one listing request); a bucket that
    /// does not exist is a `NotFound` error naming the URI.
    pub(crate) async fn holds_objects(&self) -> Result<bool> {
        let (store, root) = self.store(&self.uri).await?;
        match store.inner.list(Some(&root)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) if e.to_string().contains("NoSuchBucket") => Err(Error::not_found(
                format!("{}: the bucket does not exist", self.uri),
            )),
            Some(Err(e)) => Err(Error::storage(format!("listing {}", self.uri), e)),
        }
    }

    /// The object store holding `uri`, and the path of `uri` in it.
    pub(crate) async fn store(
        &self,
        uri: &str,
    ) -> Result<(Arc<ObjectStore>, object_store::path::Path)> {
        let params = ObjectStoreParams {
            storage_options_accessor: Some(Arc::new(StorageOptionsAccessor::with_static_options(
                self.storage_options.clone(),
            ))),
            ..Default::default()
        };
        let registry = Arc::new(ObjectStoreRegistry::default());
        ObjectStore::from_uri_and_params(registry, uri, &params)
            .await
            .context(|| format!("opening object store for {uri}"))
    }
}
