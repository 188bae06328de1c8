//! Writes into a connector's tables, as the engine drives them: a connector
//! that takes writes answers [`crate::Connector::begin_write`] with a
//! [`TableWrite`], which plans the write (a `TableProvider` whose
//! `insert_into` writes without publishing), turns what the plan wrote into a
//! commit, and publishes it. The engine journals the write in its catalog
//! before it starts and at its commit point, so a stopped coordinator can
//! finish or discard it ([`crate::Connector::recover_write`]).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;

use crate::ConnectorResult;

/// Which of a table's data a write replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replace {
    /// Nothing: an append (`INSERT INTO`), or a new table.
    Nothing,
    /// All of it (`INSERT OVERWRITE t`).
    All,
    /// One partition, by the values of its leading partition columns as
    /// text (`INSERT OVERWRITE t PARTITION (col = value)`).
    Partition(Vec<(String, String)>),
    /// The partitions the write puts rows in (`PARTITION (col)` with no value).
    WrittenPartitions,
}

/// What a write does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// A new table (`CREATE TABLE … AS`): its location must be empty.
    Create,
    /// Rows into an existing table, replacing what [`Replace`] says.
    Insert(Replace),
    /// `OPTIMIZE [WHERE predicate]`: the table's small files rewritten into
    /// target-sized ones; the predicate (SQL text) names the partitions.
    Compact(Option<String>),
}

/// A write's commit: what to journal at the commit point, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Enough for [`crate::Connector::recover_write`] to finish publishing.
    pub journal: String,
    /// Rows written.
    pub rows: u64,
}

/// One write into one table, driven by the engine.
#[async_trait]
pub trait TableWrite: Send + Sync {
    /// Unique id of this write.
    fn id(&self) -> &str;

    /// What to journal before the write starts (enough to discard it).
    fn journal(&self) -> ConnectorResult<String>;

    /// The table to plan the write against: `insert_into` gives the plan
    /// that writes (and publishes nothing); its output is what
    /// [`Self::commit`] reads.
    fn target(&self) -> ConnectorResult<Arc<dyn TableProvider>>;

    /// The rows a compaction rewrites (`None` for other writes, whose rows
    /// come from the statement).
    fn source(&self) -> Option<Arc<dyn TableProvider>> {
        None
    }

    /// Decide the commit from the write plan's output.
    async fn commit(&mut self, output: &[RecordBatch]) -> ConnectorResult<Commit>;

    /// Make the committed write visible. Safe to repeat.
    async fn publish(&self) -> ConnectorResult<()>;

    /// Discard whatever the write left behind (it did not commit).
    async fn abort(&self) -> ConnectorResult<()>;
}
