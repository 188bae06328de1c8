//! Publishing a write: the journal entry that is its commit point, and the
//! moves and deletions that follow it.
//!
//! The coordinator journals a write twice in its catalog: when it starts
//! (its staging folder, to delete if the write never commits) and at its
//! commit point (the [`Publication`]: files to move in, files an overwrite
//! replaces). Publishing is then a series of idempotent steps — a move whose
//! source is gone already happened, a deletion of a missing file is done —
//! so a coordinator killed halfway finishes the same steps at start-up.
//!
//! Files move by the store's rename: a local `rename(2)`, and on S3 a copy
//! then a delete (S3 has no rename). Readers never see a half-written file;
//! while a publication runs (milliseconds per file) a reader may see some
//! of the new files, or for an overwrite both old and new files of a
//! partition.

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::{STAGING_FOLDER, WriteSpec, WrittenFile, join, write_failed};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// How many files move at once.
const CONCURRENT_MOVES: usize = 16;

/// What the catalog journals for a write in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteJournal {
    /// The write (locates the store and its staging folder).
    pub spec: WriteSpec,
    /// It creates its table (whose folder goes if it never commits).
    pub new_table: bool,
    /// Set at the commit point.
    pub publication: Option<Publication>,
}

/// The changes that publish a committed write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    /// Staged files to move into the table, relative to both folders.
    pub files: Vec<String>,
    /// Files of the table an overwrite replaces (object paths).
    pub replaced: Vec<String>,
}

/// The object store of the write's table, registered on `runtime`.
pub fn store(spec: &WriteSpec, runtime: &Arc<RuntimeEnv>) -> ConnectorResult<Arc<dyn ObjectStore>> {
    let url = crate::files::store::register(&spec.location, &spec.file_options()?.s3, runtime)?;
    runtime
        .object_store(url.object_store())
        .map_err(|e| write_failed(format!("no store for {}: {e}", spec.location)))
}

/// Refuse a new table whose location already holds files.
pub async fn check_empty(spec: &WriteSpec, store: &dyn ObjectStore) -> ConnectorResult<()> {
    let prefix = spec.table_url()?.prefix().clone();
    let first = store.list(Some(&prefix)).next().await;
    match first {
        None => Ok(()),
        Some(Ok(_)) => Err(ConnectorError::new(
            ConnectorErrorKind::LocationNotEmpty,
            format!(
                "LOCATION '{}' already holds files; a new table needs an empty location (register existing files with CREATE EXTERNAL TABLE)",
                spec.location
            ),
        )),
        Some(Err(e)) => Err(unwritable(spec, e)),
    }
}

/// The table's data files below `partition` folders (`None`: all of them),
/// as a reader lists them: staging and other `_`/`.` folders left out.
pub async fn data_files(
    spec: &WriteSpec,
    store: &dyn ObjectStore,
    partitions: Option<&[String]>,
) -> ConnectorResult<Vec<Path>> {
    let table = spec.table_url()?.prefix().clone();
    let extension = spec.file_options()?.file_extension;
    let prefixes = match partitions {
        None => vec![table.clone()],
        Some(folders) => folders.iter().map(|f| join(&table, f)).collect(),
    };
    let mut files = vec![];
    for prefix in prefixes {
        let listed: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| unwritable(spec, e))?;
        files.extend(listed.into_iter().map(|meta| meta.location).filter(|path| {
            let hidden = path
                .prefix_match(&table)
                .is_some_and(|mut parts| parts.any(|p| p.as_ref().starts_with(['_', '.'])));
            !hidden && path.as_ref().ends_with(extension.as_str())
        }));
    }
    Ok(files)
}

/// The publication of `files` replacing `replaced`.
pub fn publication(files: &[WrittenFile], replaced: Vec<Path>) -> Publication {
    Publication {
        files: files.iter().map(|f| f.relative.clone()).collect(),
        replaced: replaced.into_iter().map(|p| p.to_string()).collect(),
    }
}

/// Move the staged files in and delete what they replace; then drop the
/// staging folder. Safe to repeat.
pub async fn publish(
    spec: &WriteSpec,
    store: &dyn ObjectStore,
    publication: &Publication,
) -> ConnectorResult<()> {
    let table = spec.table_url()?.prefix().clone();
    let staging = spec.staging()?;
    let moves: Vec<(Path, Path)> = publication
        .files
        .iter()
        .map(|relative| (join(&staging, relative), join(&table, relative)))
        .collect();
    futures::stream::iter(moves)
        .map(|(from, to)| {
            async move {
                match store.rename(&from, &to).await {
                    Ok(()) => Ok(()),
                    // Moved before a restart.
                    Err(object_store::Error::NotFound { .. }) if store.head(&to).await.is_ok() => {
                        Ok(())
                    }
                    Err(e) => Err(unwritable(spec, e)),
                }
            }
        })
        .buffer_unordered(CONCURRENT_MOVES)
        .try_collect::<Vec<()>>()
        .await?;
    let replaced: Vec<Path> = publication
        .replaced
        .iter()
        .map(|p| Path::parse(p).unwrap_or_else(|_| Path::from(p.as_str())))
        .collect();
    futures::stream::iter(replaced.clone())
        .map(|path| async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(unwritable(spec, e)),
            }
        })
        .buffer_unordered(CONCURRENT_MOVES)
        .try_collect::<Vec<()>>()
        .await?;
    // On local disk, the partition folders an overwrite emptied go too
    // (object stores have no empty folders).
    if let Some(root) = local_root(spec)? {
        for path in &replaced {
            let Some(relative) = path.prefix_match(&table) else {
                continue;
            };
            let parts: Vec<_> = relative.collect();
            let mut folder = root.clone();
            let mut folders = vec![];
            for part in &parts[..parts.len().saturating_sub(1)] {
                folder = folder.join(part.as_ref());
                folders.push(folder.clone());
            }
            // Innermost first; stops at the first that is not empty.
            for folder in folders.iter().rev() {
                if std::fs::remove_dir(folder).is_err() {
                    break;
                }
            }
        }
    }
    discard_staging(spec, store).await
}

/// Delete the write's staging folder and whatever is in it.
pub async fn discard_staging(spec: &WriteSpec, store: &dyn ObjectStore) -> ConnectorResult<()> {
    // On local disk the folder goes as a whole: a file cut off mid-write is
    // left as `name#n`, which the store does not list.
    if let Some(root) = local_root(spec)? {
        let staging = root.join(STAGING_FOLDER).join(&spec.write_id);
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(write_failed(format!(
                    "cannot remove {}: {e}",
                    staging.display()
                )));
            }
        }
        // Fails, as it should, while another write stages.
        let _ = std::fs::remove_dir(root.join(STAGING_FOLDER));
        return Ok(());
    }
    // On S3 an unfinished upload is never an object; a bucket lifecycle
    // rule reclaims its parts.
    let listed: Vec<_> = store
        .list(Some(&spec.staging()?))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| unwritable(spec, e))?;
    for path in listed {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(unwritable(spec, e)),
        }
    }
    Ok(())
}

/// Discard a write that did not commit: its staging folder, and for a new
/// table its folder too if nothing else is in it.
pub async fn discard(
    spec: &WriteSpec,
    store: &dyn ObjectStore,
    new_table: bool,
) -> ConnectorResult<()> {
    discard_staging(spec, store).await?;
    if new_table && let Some(root) = local_root(spec)? {
        // Fails, as it should, when not empty.
        let _ = std::fs::remove_dir(root);
    }
    Ok(())
}

/// The table's folder, when it is on local disk.
fn local_root(spec: &WriteSpec) -> ConnectorResult<Option<std::path::PathBuf>> {
    let url = spec.table_url()?;
    Ok((url.scheme() == "file")
        .then(|| url.get_url().to_file_path().ok())
        .flatten())
}

fn unwritable(spec: &WriteSpec, e: object_store::Error) -> ConnectorError {
    write_failed(format!("cannot write to LOCATION '{}': {e}", spec.location))
}
