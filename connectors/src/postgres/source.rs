//! One PostgreSQL (or Redshift) server and role, as the remote core sees it: a
//! [`RemoteSource`] that runs SQL statements on its pool.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result as DFResult;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::Dialect;

use super::PostgresOptions;
use super::client::LazyPool;
use super::flavor::Flavor;
use crate::remote::{RemoteSource, SourceDefinition};
use crate::source_metrics::SourceLabels;

/// A server and role, and the pool its statements run on.
#[derive(Clone)]
pub struct PostgresSource {
    pool: LazyPool,
    labels: SourceLabels,
}

impl PostgresSource {
    /// The source whose statements run on `pool`.
    pub fn new(pool: LazyPool) -> Self {
        let options = pool.options();
        let labels = SourceLabels::new(&options.source.connector, &options.compute_context());
        Self { pool, labels }
    }

    /// The pool (schema discovery, listing tables).
    pub fn pool(&self) -> &LazyPool {
        &self.pool
    }

    /// The server's settings.
    pub fn options(&self) -> &PostgresOptions {
        self.pool.options()
    }

    /// PostgreSQL or Redshift.
    pub fn flavor(&self) -> &'static Flavor {
        self.options().flavor
    }

    /// The dialect statements for this source are written in.
    pub fn dialect(&self) -> Arc<dyn Dialect> {
        self.flavor().dialect()
    }
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresSource({})", self.options().compute_context())
    }
}

impl RemoteSource for PostgresSource {
    fn definition(&self) -> &SourceDefinition {
        &self.options().source
    }

    fn compute_context(&self) -> String {
        self.options().compute_context()
    }

    fn request_label(&self) -> &'static str {
        "sql"
    }

    fn labels(&self) -> &SourceLabels {
        &self.labels
    }

    fn run(&self, request: &str, schema: SchemaRef) -> DFResult<SendableRecordBatchStream> {
        self.labels.request_sent("query");
        self.pool.run(request, schema)
    }
}
