//! A Delta table's transaction log: opened at the latest version, a version
//! number or a point in time, through the object store the session already
//! holds for the location (so the `aws.*` options and credential rules are the
//! file tables'); the table features Vivace reads, checked; and its history.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::table::state::DeltaTableState;
use deltalake_core::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::files::S3Options;
use crate::{At, ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Reader features whose tables Vivace reads correctly. Deletion vectors are
/// checked file by file: a version with none reads as any other.
const READABLE_FEATURES: &[&str] = &[
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
];

/// The newest reader protocol version Vivace reads.
const MAX_READER_VERSION: i32 = 3;

/// A table's location, opened: its object store and where the table lies in it.
#[derive(Debug, Clone)]
pub struct DeltaLocation {
    /// The table's root, as a listing URL (`file:///…/` or `s3://bucket/…/`).
    pub url: ListingTableUrl,
    /// The store holding it (the session's, for that bucket or local disk).
    pub store: Arc<dyn ObjectStore>,
}

impl DeltaLocation {
    /// Register `location`'s object store on `runtime` and open it.
    pub fn open(
        location: &str,
        s3: &S3Options,
        runtime: &Arc<RuntimeEnv>,
    ) -> ConnectorResult<Self> {
        let mut url = crate::files::store::register(location, s3, runtime)?;
        if !url.as_str().ends_with('/') {
            url = ListingTableUrl::parse(format!("{}/", url.as_str())).map_err(|e| {
                ConnectorError::invalid_option(format!("LOCATION '{location}' is not valid: {e}"))
            })?;
        }
        let store = runtime.object_store(url.object_store()).map_err(|e| {
            ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!("no object store for '{location}': {e}"),
            )
        })?;
        Ok(Self { url, store })
    }

    /// The table's root inside its store.
    pub fn root(&self) -> &Path {
        self.url.prefix()
    }

    /// The table's log, read and written through the location's store.
    pub fn log_store(&self) -> ConnectorResult<LogStoreRef> {
        let config = StorageConfig::default();
        let table_url = self.url.get_url();
        let prefixed = config
            .decorate_store(Arc::clone(&self.store), table_url)
            .map_err(|e| delta_error(self.url.as_str(), e))?;
        Ok(default_logstore(
            Arc::from(prefixed),
            Arc::clone(&self.store),
            table_url,
            &config,
        ))
    }

    /// A table handle on this location, with nothing loaded yet.
    fn table(&self) -> ConnectorResult<DeltaTable> {
        Ok(DeltaTable::new(self.log_store()?))
    }

    /// The latest version, starting from `known`, an earlier load of this
    /// location: when no commit was added since, the log is listed and not
    /// read again; when some were, only they are applied.
    pub async fn latest_from(&self, known: Option<&DeltaTable>) -> ConnectorResult<DeltaTable> {
        let Some(known) = known else {
            return self.load(At::Latest).await;
        };
        let place = self.url.as_str();
        let latest = known
            .get_latest_version()
            .await
            .map_err(|e| delta_error(place, e))?;
        match known.version() {
            Some(version) if version == latest => return Ok(known.clone()),
            Some(version) if version < latest => {}
            // The table was replaced by an older-looking one: start over.
            _ => return self.load(At::Latest).await,
        }
        let mut table = known.clone();
        if table.update_incremental(None).await.is_err() {
            // Commits cleaned up past a checkpoint, say: read the log afresh.
            return self.load(At::Latest).await;
        }
        check_readable(place, table.snapshot().map_err(|e| delta_error(place, e))?)?;
        Ok(table)
    }

    /// Load the table at `at`; errors say what is wrong with the location or
    /// the version asked for, and refuse tables with features Vivace would
    /// read wrongly.
    pub async fn load(&self, at: At) -> ConnectorResult<DeltaTable> {
        let mut table = self.table()?;
        let place = self.url.as_str();
        let exists = table
            .verify_deltatable_existence()
            .await
            .map_err(|e| delta_error(place, e))?;
        if !exists {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "LOCATION '{place}' is not a Delta table: it has no _delta_log/ with commits"
                ),
            ));
        }
        let loaded = match at {
            At::Latest => table.load().await,
            At::Version(version) => {
                let latest = table
                    .get_latest_version()
                    .await
                    .map_err(|e| delta_error(place, e))?;
                if version > latest {
                    return Err(ConnectorError::invalid_option(format!(
                        "version {version} of the Delta table at '{place}' does not exist; the latest is {latest}"
                    )));
                }
                table.load_version(version).await.map_err(|e| {
                    DeltaTableError::Generic(format!(
                        "version {version} cannot be read (its log may have been cleaned up): {e}"
                    ))
                })
            }
            At::Timestamp(when) => {
                // The commits' own timestamps, as `delta_history` shows them
                // (deltalake's `load_with_datetime` goes by file times).
                let commits = self.history().await?;
                let Some(version) = commits
                    .iter()
                    .filter(|c| c.timestamp <= when)
                    .map(|c| c.version)
                    .max()
                else {
                    let first = commits.iter().map(|c| c.timestamp).min();
                    return Err(ConnectorError::invalid_option(format!(
                        "no version of the Delta table at '{place}' was committed at or before {when}; the oldest commit in its log is from {}",
                        first.map_or_else(|| "an unknown time".to_string(), |t| t.to_string())
                    )));
                };
                table.load_version(version).await
            }
        };
        match loaded {
            Ok(()) => {}
            Err(DeltaTableError::Generic(message)) => {
                return Err(ConnectorError::invalid_option(format!(
                    "the Delta table at '{place}': {message}"
                )));
            }
            Err(e) => return Err(delta_error(place, e)),
        }
        check_readable(place, table.snapshot().map_err(|e| delta_error(place, e))?)?;
        Ok(table)
    }
}

/// Refuse a version whose protocol asks readers for something Vivace does not
/// do; the message names the table feature.
pub fn check_readable(place: &str, state: &DeltaTableState) -> ConnectorResult<()> {
    let protocol = state.protocol();
    let unsupported = |what: String| {
        ConnectorError::new(
            ConnectorErrorKind::Unsupported,
            format!("the Delta table at '{place}' uses {what}, which Vivace does not read"),
        )
    };
    if protocol.min_reader_version() > MAX_READER_VERSION {
        return Err(unsupported(format!(
            "reader protocol version {}",
            protocol.min_reader_version()
        )));
    }
    for feature in protocol.reader_features().unwrap_or_default() {
        let name = feature.to_string();
        if !READABLE_FEATURES.contains(&name.as_str()) {
            return Err(unsupported(format!("the table feature '{name}'")));
        }
    }
    if let Some(mode) = state
        .metadata()
        .configuration()
        .get("delta.columnMapping.mode")
        .filter(|mode| !mode.eq_ignore_ascii_case("none"))
    {
        return Err(unsupported(format!(
            "the table feature 'columnMapping' (mode '{mode}')"
        )));
    }
    Ok(())
}

/// The schema of a loaded version, columns in the log's order.
pub fn arrow_schema(place: &str, state: &DeltaTableState) -> ConnectorResult<SchemaRef> {
    let schema: Schema = state.schema().as_ref().try_into_arrow().map_err(|e| {
        ConnectorError::new(
            ConnectorErrorKind::UnsupportedType,
            format!("the Delta table at '{place}' has a column type Vivace cannot represent: {e}"),
        )
    })?;
    // Delta's per-column metadata (comments, invariants) is not part of a column.
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_metadata(Default::default()))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// One commit of a table's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// Its version.
    pub version: u64,
    /// When it was made (the commit's own timestamp, else the log file's).
    pub timestamp: DateTime<Utc>,
    /// `WRITE`, `DELETE`, `OPTIMIZE`, …
    pub operation: Option<String>,
    /// The operation's parameters, as JSON text.
    pub parameters: Option<String>,
    /// The version it was based on.
    pub read_version: Option<i64>,
    /// The writer that made it.
    pub engine: Option<String>,
}

impl DeltaLocation {
    /// Every commit still in the log, newest first.
    pub async fn history(&self) -> ConnectorResult<Vec<Commit>> {
        let place = self.url.as_str();
        let log = self.root().clone().join("_delta_log");
        let files: Vec<_> = self
            .store
            .list(Some(&log))
            .try_collect()
            .await
            .map_err(|e| delta_error(place, e.into()))?;
        let mut commits = Vec::new();
        for meta in files {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let Some(version) = name
                .strip_suffix(".json")
                .filter(|v| v.len() == 20)
                .and_then(|v| v.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = async { self.store.get(&meta.location).await?.bytes().await }
                .await
                .map_err(|e| delta_error(place, e.into()))?;
            commits.push(commit_of(version, meta.last_modified, &bytes));
        }
        if commits.is_empty() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "LOCATION '{place}' is not a Delta table: it has no _delta_log/ with commits"
                ),
            ));
        }
        commits.sort_by_key(|c| std::cmp::Reverse(c.version));
        Ok(commits)
    }
}

/// The `commitInfo` action of a commit file, if it has one.
fn commit_of(version: u64, written: DateTime<Utc>, bytes: &[u8]) -> Commit {
    let info = bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find_map(|action| action.get("commitInfo").cloned())
        .unwrap_or_default();
    let text = |key: &str| info.get(key).and_then(|v| v.as_str()).map(str::to_string);
    Commit {
        version,
        timestamp: info
            .get("inCommitTimestamp")
            .or_else(|| info.get("timestamp"))
            .and_then(|v| v.as_i64())
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(written),
        operation: text("operation"),
        parameters: info.get("operationParameters").map(|v| v.to_string()),
        read_version: info.get("readVersion").and_then(|v| v.as_i64()),
        engine: text("engineInfo").or_else(|| text("clientVersion")),
    }
}

/// A deltalake error as the user should see it: an unreachable store, a
/// location that is not a table, a feature not supported, a broken log.
pub fn delta_error(place: &str, e: DeltaTableError) -> ConnectorError {
    let kind = match &e {
        DeltaTableError::ObjectStore { source } => match source {
            object_store::Error::NotFound { .. } => ConnectorErrorKind::NotFound,
            _ => ConnectorErrorKind::Unreachable,
        },
        DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_) => {
            ConnectorErrorKind::NotFound
        }
        DeltaTableError::KernelError(inner)
            if inner
                .to_string()
                .to_ascii_lowercase()
                .contains("unsupported") =>
        {
            ConnectorErrorKind::Unsupported
        }
        _ => ConnectorErrorKind::UnreadableFormat,
    };
    ConnectorError::new(kind, format!("the Delta table at '{place}': {e}"))
}
