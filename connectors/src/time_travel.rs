//! Reading a table as it was: `table_at(name, version | timestamp)`, the
//! table function that `VERSION AS OF` / `TIMESTAMP AS OF` become. The
//! table's own connector answers ([`crate::Connector::travel`]); tables
//! that keep no versions refuse with 0A000.

use std::sync::Arc;

use chrono::DateTime;
use datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::Result as DFResult;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;

use crate::{At, Connector, ConnectorError, ConnectorErrorKind, ConnectorResult};

/// The name `table_at` is registered under.
pub const TABLE_AT: &str = "table_at";

/// The `table_at` table function.
pub struct TableAt {
    connectors: Vec<Arc<dyn Connector>>,
}

impl std::fmt::Debug for TableAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TABLE_AT)
    }
}

impl TableAt {
    /// Time travel answered by `connectors`.
    pub fn new(connectors: Vec<Arc<dyn Connector>>) -> Self {
        Self { connectors }
    }
}

/// The arguments: a table name (text, as written in SQL) and a version
/// (integer) or a point in time (text, UTC unless it says otherwise).
fn arguments(args: &[Expr]) -> ConnectorResult<(String, At)> {
    let bad = || {
        ConnectorError::invalid_option(
            "table_at takes a table name and a version number or a timestamp: table_at('orders', 12)",
        )
    };
    let [Expr::Literal(name, _), Expr::Literal(at, _)] = args else {
        return Err(bad());
    };
    let ScalarValue::Utf8(Some(name)) = name else {
        return Err(bad());
    };
    let at = match at {
        ScalarValue::Utf8(Some(text)) => {
            let nanos = string_to_timestamp_nanos(text.trim()).map_err(|_| {
                ConnectorError::invalid_option(format!(
                    "TIMESTAMP AS OF '{text}' is not a timestamp (e.g. '2024-03-05 10:00:00')"
                ))
            })?;
            At::Timestamp(DateTime::from_timestamp_nanos(nanos))
        }
        other => {
            let version = other
                .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                .ok()
                .and_then(|v| match v {
                    ScalarValue::Int64(Some(v)) => u64::try_from(v).ok(),
                    _ => None,
                })
                .ok_or_else(|| {
                    ConnectorError::invalid_option(format!(
                        "VERSION AS OF takes a version number ≥ 0, not {other}"
                    ))
                })?;
            At::Version(version)
        }
    };
    Ok((name.clone(), at))
}

/// The table a table function's argument names (SQL spelling: unquoted parts
/// fold to lower case), from the session's catalog.
pub fn named_table(session: &dyn Session, name: &str) -> ConnectorResult<Arc<dyn TableProvider>> {
    let missing = || {
        ConnectorError::new(
            ConnectorErrorKind::NotFound,
            format!("relation \"{name}\" does not exist"),
        )
    };
    let state = session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(missing)?;
    let reference = TableReference::parse_str(name);
    let schema = state
        .schema_for_ref(reference.clone())
        .map_err(|_| missing())?;
    // Catalog schemas hold their tables in memory: the lookup is ready at once.
    futures::executor::block_on(schema.table(reference.table()))
        .map_err(|e| ConnectorError::new(ConnectorErrorKind::NotFound, e.to_string()))?
        .ok_or_else(missing)
}

impl TableFunctionImpl for TableAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let (name, at) = arguments(args.exprs())?;
        let state = args.session();
        let provider = named_table(state, &name)?;
        let connectors = self.connectors.clone();
        let travel = async move {
            for connector in connectors {
                if let Some(answer) = connector.travel(Arc::clone(&provider), at).await {
                    return answer;
                }
            }
            Err(ConnectorError::new(
                ConnectorErrorKind::Unsupported,
                format!(
                    "\"{name}\" keeps no earlier versions: VERSION AS OF and TIMESTAMP AS OF read Delta tables"
                ),
            ))
        };
        // Planning is synchronous here; the log is read on the query runtime.
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| ConnectorError::invalid_option("table_at runs inside a query"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let _ = tx.send(travel.await);
        });
        // Wait without holding a runtime worker: the log reader itself waits
        // on tasks of this runtime, which need a free worker to run.
        Ok(tokio::task::block_in_place(|| rx.recv()).map_err(|_| {
            ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                "reading the table's log stopped",
            )
        })??)
    }
}
