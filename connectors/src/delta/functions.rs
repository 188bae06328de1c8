//! `delta_history('table')`: every commit still in a Delta table's log,
//! newest first (version, timestamp, operation, its parameters as JSON, the
//! version it read, the writer).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;

use super::log::{Commit, DeltaLocation};
use super::provider::DeltaTableProvider;
use crate::time_travel::named_table;
use crate::{ConnectorError, ConnectorErrorKind};

/// The name `delta_history` is registered under.
pub const DELTA_HISTORY: &str = "delta_history";

/// The `delta_history` table function.
#[derive(Debug, Default)]
pub struct DeltaHistoryFunction;

impl TableFunctionImpl for DeltaHistoryFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let [Expr::Literal(ScalarValue::Utf8(Some(name)), _)] = args.exprs() else {
            return Err(ConnectorError::invalid_option(
                "delta_history takes a table name: delta_history('orders')",
            )
            .into());
        };
        let provider = named_table(args.session(), name)?;
        let delta = provider
            .downcast_ref::<DeltaTableProvider>()
            .ok_or_else(|| {
                ConnectorError::new(
                    ConnectorErrorKind::Unsupported,
                    format!("\"{name}\" is not a Delta table: it has no history"),
                )
            })?;
        Ok(Arc::new(DeltaHistory {
            location: delta.location().clone(),
        }))
    }
}

/// A table's history, read from its log when scanned.
#[derive(Debug)]
struct DeltaHistory {
    location: DeltaLocation,
}

fn history_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("operation", DataType::Utf8, true),
        Field::new("parameters", DataType::Utf8, true),
        Field::new("read_version", DataType::Int64, true),
        Field::new("engine", DataType::Utf8, true),
    ]))
}

fn history_batch(commits: &[Commit]) -> DFResult<RecordBatch> {
    let text = |f: fn(&Commit) -> Option<&str>| -> ArrayRef {
        Arc::new(commits.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            commits
                .iter()
                .map(|c| i64::try_from(c.version).unwrap_or(i64::MAX))
                .collect::<Int64Array>(),
        ),
        Arc::new(
            commits
                .iter()
                .map(|c| Some(c.timestamp.timestamp_micros()))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        text(|c| c.operation.as_deref()),
        text(|c| c.parameters.as_deref()),
        Arc::new(
            commits
                .iter()
                .map(|c| c.read_version)
                .collect::<Int64Array>(),
        ),
        text(|c| c.engine.as_deref()),
    ];
    Ok(RecordBatch::try_new(history_schema(), columns)?)
}

#[async_trait]
impl TableProvider for DeltaHistory {
    fn schema(&self) -> SchemaRef {
        history_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _session: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let commits = self.location.history().await?;
        let batch = history_batch(&commits)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            history_schema(),
            projection.cloned(),
        )?)
    }
}
