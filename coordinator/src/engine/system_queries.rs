//! `system.queries` and `vivace.cancel_query(id)`. With users configured, a
//! user sees and cancels their own queries; an admin (or anyone, when no
//! users are configured) every query.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;

use super::tracker::{QueryInfo, QueryTracker};
use crate::error::{SqlError, sqlstate};

/// Who is asking: set on each session's configuration, read by
/// `system.queries` and `cancel_query`.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The session's user.
    pub user: String,
    /// May see and cancel every query.
    pub admin: bool,
}

impl Viewer {
    /// Whether this viewer may see (and cancel) a query run by `user`.
    pub fn may_see(&self, user: &str) -> bool {
        self.admin || self.user == user
    }
}

/// Table provider of `system.queries`.
#[derive(Debug)]
pub struct QueriesTable {
    tracker: Arc<QueryTracker>,
    schema: SchemaRef,
}

impl QueriesTable {
    /// A view of `tracker`.
    pub fn new(tracker: Arc<QueryTracker>) -> Self {
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let count = |name: &str| Field::new(name, DataType::UInt64, false);
        let schema = Arc::new(Schema::new(vec![
            text("query_id", false),
            text("user_name", false),
            text("application_name", false),
            text("state", false),
            Field::new(
                "created",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("queued_ms", DataType::Int64, false),
            Field::new("planning_ms", DataType::Int64, false),
            Field::new("execution_ms", DataType::Int64, false),
            Field::new("elapsed_ms", DataType::Int64, false),
            count("rows"),
            count("bytes"),
            count("rows_scanned"),
            count("bytes_scanned"),
            count("stages"),
            count("tasks"),
            count("tasks_done"),
            text("error_code", true),
            text("error_message", true),
            text("resource_group", false),
            Field::new("done", DataType::Boolean, false),
            text("query", false),
        ]));
        Self { tracker, schema }
    }

    fn batch(&self, viewer: &Viewer) -> Result<RecordBatch> {
        let rows: Vec<QueryInfo> = self
            .tracker
            .queries()
            .iter()
            .filter(|r| viewer.may_see(r.user()))
            .map(|r| r.info())
            .collect();
        let text = |f: &dyn Fn(&QueryInfo) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from_iter(rows.iter().map(f)))
        };
        let ms = |f: &dyn Fn(&QueryInfo) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| f(r) as i64),
            ))
        };
        let count = |f: &dyn Fn(&QueryInfo) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|r| Some(r.query_id.clone())),
            text(&|r| Some(r.user_name.clone())),
            text(&|r| Some(r.application_name.clone())),
            text(&|r| Some(r.state.as_str().to_string())),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.created_ms))
                    .with_timezone("UTC"),
            ),
            ms(&|r| r.queued_ms),
            ms(&|r| r.planning_ms),
            ms(&|r| r.execution_ms),
            ms(&|r| r.elapsed_ms),
            count(&|r| r.rows),
            count(&|r| r.bytes),
            count(&|r| r.rows_scanned),
            count(&|r| r.bytes_scanned),
            count(&|r| r.stages),
            count(&|r| r.tasks),
            count(&|r| r.tasks_done),
            text(&|r| r.error_code.clone()),
            text(&|r| r.error_message.clone()),
            text(&|r| Some(r.resource_group.clone())),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.state.is_done())),
            )),
            text(&|r| Some(r.query.clone())),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for QueriesTable {
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
        let batch = self.batch(&viewer_of(state))?;
        scan_rows(batch, state, projection, filters, limit).await
    }
}

/// Who runs the statement reading a system table (set on each session's
/// configuration).
pub(super) fn viewer_of(state: &dyn Session) -> Viewer {
    state
        .config()
        .get_extension::<Viewer>()
        .map(|v| v.as_ref().clone())
        .unwrap_or_default()
}

/// A scan of `batch`, a system table's rows as they are now: a snapshot per
/// query, small and exact.
pub(super) async fn scan_rows(
    batch: RecordBatch,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    table.scan(state, projection, filters, limit).await
}

/// `cancel_query(id)`: stop a running query of the caller's (any, for an
/// admin); true when it was running, false when it had already ended.
#[derive(Debug)]
pub struct CancelQuery {
    tracker: Arc<QueryTracker>,
    viewer: ViewerSource,
    signature: Signature,
}

impl PartialEq for CancelQuery {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.tracker, &other.tracker)
    }
}

impl Eq for CancelQuery {}

impl std::hash::Hash for CancelQuery {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "cancel_query".hash(state);
    }
}

/// Says who a session's user is, each time it is asked (the user is known
/// only once the client has logged in).
#[derive(Clone)]
pub struct ViewerSource(pub Arc<dyn Fn() -> Viewer + Send + Sync>);

impl std::fmt::Debug for ViewerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewerSource")
    }
}

impl CancelQuery {
    /// The function for a session whose viewer `viewer` says.
    pub fn new(tracker: Arc<QueryTracker>, viewer: ViewerSource) -> Self {
        Self {
            tracker,
            viewer,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        }
    }

    fn cancel(&self, id: &str) -> std::result::Result<bool, SqlError> {
        let viewer = (self.viewer.0)();
        let record = self
            .tracker
            .find(id)
            .filter(|r| viewer.may_see(r.user()))
            .ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("query \"{id}\" does not exist"),
                )
            })?;
        Ok(record.cancel())
    }
}

impl ScalarUDFImpl for CancelQuery {
    fn name(&self) -> &str {
        "cancel_query"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ids = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(ids) = ids[0].as_any().downcast_ref::<StringArray>() else {
            return exec_err!("cancel_query takes a query id");
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            out.push(match id {
                None => None,
                Some(id) => Some(
                    self.cancel(id)
                        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
                ),
            });
        }
        let out = BooleanArray::from(out);
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(Arc::new(out)),
        })
    }
}
