//! What PostgreSQL evaluates: everything datafusion-federation can unparse with
//! DataFusion's PostgreSQL dialect — filters (IN lists, LIKE, date comparisons),
//! projections, limits, sorts, aggregates and joins between tables of the same
//! server and role — is sent as one SQL statement. Literals are rendered by the
//! dialect's unparser (quotes doubled), never spliced as text.
//!
//! The federation source built here is what the federation optimizer rule looks
//! for; tables on one server share a compute context, so their joins are pushed.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion_federation::FederatedTableSource;
use datafusion_federation::sql::{
    RemoteTableRef, SQLExecutor, SQLFederationProvider, SQLTableSource,
};

/// The federated source of one remote table: its reference and schema, and the
/// provider that renders pushed-down SQL for `executor` to run.
pub fn federated_source(
    executor: &Arc<dyn SQLExecutor>,
    table: &TableReference,
    schema: SchemaRef,
) -> Arc<dyn FederatedTableSource> {
    let provider = Arc::new(SQLFederationProvider::new(Arc::clone(executor)));
    Arc::new(SQLTableSource::new_with_schema(
        provider,
        RemoteTableRef::from(table.clone()),
        schema,
    ))
}
