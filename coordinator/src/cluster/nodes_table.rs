//! `system.nodes`: the coordinator and every live worker, read at query time.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::{Membership, NodeRole, NodeState};

/// Table provider of `system.nodes`.
pub struct NodesTable {
    membership: Arc<Membership>,
    schema: SchemaRef,
}

impl std::fmt::Debug for NodesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodesTable")
    }
}

impl NodesTable {
    /// A view of `membership`.
    pub fn new(membership: Arc<Membership>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("node_id", DataType::Utf8, false),
            Field::new("role", DataType::Utf8, false),
            Field::new("address", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("embedded", DataType::Boolean, false),
            Field::new(
                "joined_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ]));
        Self { membership, schema }
    }

    fn batch(&self) -> Result<RecordBatch> {
        let rows = self.membership.rows();
        let text = |f: &dyn Fn(&super::membership::NodeRow) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|r| r.node_id.clone()),
            text(&|r| match r.role {
                NodeRole::Coordinator => "coordinator".into(),
                NodeRole::Worker => "worker".into(),
            }),
            text(&|r| r.address.clone()),
            text(&|r| match r.state {
                NodeState::Active => "active".into(),
            }),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.embedded)),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| {
                    r.joined
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64)
                }))
                .with_timezone("UTC"),
            ),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for NodesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // A snapshot per query; small, so a memory table is the simplest exact answer.
        let table = MemTable::try_new(self.schema.clone(), vec![vec![self.batch()?]])?;
        table.scan(state, projection, filters, limit).await
    }
}
