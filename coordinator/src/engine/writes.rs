//! Writes: `CREATE TABLE … AS`, `INSERT INTO` and `INSERT OVERWRITE` into the
//! tables of connectors that take them.
//!
//! The engine drives a connector's [`TableWrite`]: it journals the write in
//! the catalog, runs the write plan (a DataFusion DML statement against the
//! write's target table, so writes run on workers like any plan), then —
//! one publication at a time — journals the commit (registering a new table
//! in the same transaction) and publishes. A write that fails or is cancelled
//! before its commit is aborted; one interrupted by a crash is finished or
//! discarded from the journal when the coordinator starts.

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use vivace_catalog::{CatalogError, TableDefinition};
use vivace_connectors::write::{TableWrite, WriteKind};

use super::cancel::QueryCancel;
use super::tables::check_schema;
use super::{DdlOutcome, Engine};
use crate::error::{SqlError, SqlResult, sqlstate};

/// The DML statement that runs `write` with the rows of `source`.
fn dml(
    def: &TableDefinition,
    write: &dyn TableWrite,
    source: LogicalPlan,
) -> SqlResult<LogicalPlan> {
    Ok(LogicalPlan::Dml(DmlStatement::new(
        TableReference::partial(def.name.schema.as_str(), def.name.table.as_str()),
        provider_as_source(write.target()?),
        WriteOp::Insert(InsertOp::Append),
        Arc::new(source),
    )))
}

/// Who may write.
#[derive(Debug, Clone, Default)]
pub struct WriteAccess {
    /// Every write is refused (`read_only = true`).
    pub read_only: bool,
    /// With users configured, those who may write (`can_write = true`);
    /// `None` without users, when every (loopback) client may.
    pub writers: Option<std::collections::BTreeSet<String>>,
}

impl WriteAccess {
    /// Refuse `user`'s write into `table` unless it is allowed: 42501.
    fn check(&self, user: Option<&str>, table: &str) -> SqlResult<()> {
        let refused = |why: String| {
            Err(SqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("permission denied to write to \"{table}\": {why}"),
            ))
        };
        if self.read_only {
            return refused("this server is read-only (read_only = true)".into());
        }
        match (&self.writers, user) {
            (None, _) => Ok(()),
            (Some(writers), Some(user)) if writers.contains(user) => Ok(()),
            (Some(_), user) => refused(format!(
                "user \"{}\" may not write (grant it with can_write = true under [users.{}])",
                user.unwrap_or_default(),
                user.unwrap_or("NAME")
            )),
        }
    }
}

/// A journal entry: the connector's own journal, and which connector reads it.
#[derive(Serialize, Deserialize)]
struct Entry {
    connector: String,
    journal: String,
}

impl Entry {
    fn text(connector: &str, journal: String) -> SqlResult<String> {
        serde_json::to_string(&Entry {
            connector: connector.to_string(),
            journal,
        })
        .map_err(|e| SqlError::new(sqlstate::INTERNAL_ERROR, format!("cannot journal: {e}")))
    }
}

impl Engine {
    /// `CREATE TABLE name … AS query`: write `source` as the new table `def`
    /// and register it; nothing is left behind if it fails.
    pub async fn create_table_as(
        &self,
        ctx: &SessionContext,
        def: TableDefinition,
        source: LogicalPlan,
        if_not_exists: bool,
        user: Option<&str>,
        cancel: &QueryCancel,
    ) -> SqlResult<(DdlOutcome, u64)> {
        check_schema(&def.name)?;
        self.access.check(user, &def.name.table)?;
        if self.store.get_table(&def.name)?.is_some() || self.is_view(&def.name)? {
            if if_not_exists {
                return Ok((DdlOutcome::Skipped, 0));
            }
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", def.name.table),
            ));
        }
        let connector = self.connectors.get(&def.connector)?;
        // Options are checked before any file is written.
        connector.open(&def, &self.template)?;
        let rows = self
            .write(ctx, &def, WriteKind::Create, source, user, cancel)
            .await?;
        let _guard = self.begin_ddl().await;
        self.open_table(&def)?;
        tracing::info!(table = %def.name, rows, "table created from a query");
        self.refresh_views().await?;
        Ok((DdlOutcome::Done, rows))
    }

    /// Write `source` (the table's columns, in order) into `def` as `kind`
    /// says; the rows written.
    pub async fn write(
        &self,
        ctx: &SessionContext,
        def: &TableDefinition,
        kind: WriteKind,
        source: LogicalPlan,
        user: Option<&str>,
        cancel: &QueryCancel,
    ) -> SqlResult<u64> {
        self.access.check(user, &def.name.table)?;
        let connector = self.connectors.get(&def.connector)?;
        let creates = kind == WriteKind::Create;
        let write = connector.begin_write(def, kind, &self.template).await?;
        self.drive(ctx, def, creates, write, source, cancel).await
    }

    /// `OPTIMIZE name [WHERE predicate]`: rewrite the table's small files
    /// into target-sized ones (one commit); the rows rewritten.
    pub async fn optimize(
        &self,
        ctx: &SessionContext,
        name: &vivace_catalog::TableName,
        predicate: Option<String>,
        user: Option<&str>,
        cancel: &QueryCancel,
    ) -> SqlResult<u64> {
        let def = self.definition(name)?;
        self.access.check(user, &def.name.table)?;
        let connector = self.connectors.get(&def.connector)?;
        let write = connector
            .begin_write(&def, WriteKind::Compact(predicate), &self.template)
            .await?;
        let Some(source) = write.source() else {
            return Ok(0);
        };
        let source = datafusion::logical_expr::LogicalPlanBuilder::scan(
            def.name.table.as_str(),
            provider_as_source(source),
            None,
        )?
        .build()?;
        self.drive(ctx, &def, false, write, source, cancel).await
    }

    /// Run a begun write: journal it, run its plan, commit and publish it, or
    /// clean up after it.
    async fn drive(
        &self,
        ctx: &SessionContext,
        def: &TableDefinition,
        creates: bool,
        mut write: Box<dyn TableWrite>,
        source: LogicalPlan,
        cancel: &QueryCancel,
    ) -> SqlResult<u64> {
        // Workers writing to S3 register the bucket, as for reads.
        self.remember_worker_needs(def)?;
        let id = write.id().to_string();
        self.store
            .begin_write(&id, &Entry::text(&def.connector, write.journal()?)?)?;
        match self
            .run_write(ctx, def, creates, write.as_mut(), source, cancel)
            .await
        {
            Ok(rows) => Ok(rows),
            Err(e) => {
                match write.abort().await {
                    Ok(()) => self.store.end_write(&id)?,
                    // Left in the journal: discarded at the next start.
                    Err(abort) => {
                        tracing::warn!(write = %id, error = %abort.message, "a failed write could not be cleaned up")
                    }
                }
                Err(e)
            }
        }
    }

    /// The physical plan a write into `def` would run; nothing is journaled
    /// or written (`EXPLAIN`).
    pub async fn write_plan(
        &self,
        ctx: &SessionContext,
        def: &TableDefinition,
        kind: WriteKind,
        source: LogicalPlan,
    ) -> SqlResult<Arc<dyn ExecutionPlan>> {
        let connector = self.connectors.get(&def.connector)?;
        let write = connector.begin_write(def, kind, &self.template).await?;
        let plan = dml(def, write.as_ref(), source)?;
        Ok(ctx.state().create_physical_plan(&plan).await?)
    }

    async fn run_write(
        &self,
        ctx: &SessionContext,
        def: &TableDefinition,
        creates: bool,
        write: &mut dyn TableWrite,
        source: LogicalPlan,
        cancel: &QueryCancel,
    ) -> SqlResult<u64> {
        let plan = dml(def, write, source)?;
        let stream = self
            .start(&self.query_state(ctx, None), plan, None, None, cancel, None)
            .await?;
        let output: Vec<_> = cancel.guard(stream).try_collect().await?;
        // One publication at a time: an overwrite lists the files it
        // replaces under the same lock that publishes them.
        let _publishing = self.publishing.lock().await;
        let commit = write.commit(&output).await?;
        let journal = Entry::text(&def.connector, commit.journal)?;
        match self
            .store
            .commit_write(write.id(), &journal, creates.then_some(def))
        {
            Err(CatalogError::AlreadyExists(name)) => {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_TABLE,
                    format!("relation \"{}\" already exists", name.table),
                ));
            }
            other => other?,
        }
        // Committed: from here on the write happens, now or at restart.
        match write.publish().await {
            Ok(()) => self.store.end_write(write.id())?,
            Err(e) => {
                tracing::warn!(write = %write.id(), error = %e.message, "a committed write is published at the next start");
                return Err(e.into());
            }
        }
        Ok(commit.rows)
    }

    /// Finish or discard the writes a stopped coordinator left in the journal.
    pub(super) async fn recover_writes(&self) -> anyhow::Result<()> {
        for (id, text) in self.store.pending_writes()? {
            let recovered = match serde_json::from_str::<Entry>(&text) {
                Ok(entry) => match self.connectors.get(&entry.connector) {
                    Ok(connector) => connector
                        .recover_write(&entry.journal, &self.template)
                        .await
                        .map_err(|e| e.message),
                    Err(e) => Err(e.message),
                },
                Err(e) => Err(e.to_string()),
            };
            match recovered {
                Ok(()) => {
                    self.store.end_write(&id)?;
                    tracing::info!(write = %id, "an interrupted write was finished or discarded");
                }
                Err(e) => {
                    tracing::warn!(write = %id, error = %e, "an interrupted write stays in the journal")
                }
            }
        }
        Ok(())
    }
}
