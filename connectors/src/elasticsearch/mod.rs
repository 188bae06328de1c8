//! Elasticsearch and OpenSearch indices (`STORED AS ELASTICSEARCH`, or
//! `OPENSEARCH`: the same connector; the flavour is detected from `GET /`).
//!
//! `resolve` reaches the server, checks the credentials and reads the
//! mappings of every index the `index` option matches; `open` builds the
//! provider from the stored columns without I/O. Reads are remote scans
//! ([`crate::remote::RemoteScanExec`]) of search requests, one per slice, read
//! through a point in time; workers rebuild the source from its stored
//! definition, reading credentials from their own environment.
//!
//! Modules, from the bottom up: `options` (LOCATION and OPTIONS), `client`
//! (HTTP, both flavours' point-in-time APIs, errors), `mapping` (columns from
//! mappings), `functions` (`match`, `match_phrase`, `query_string`), `dsl`
//! (filters as query DSL), `request` (the search body of one slice or of an
//! aggregation), `hits` and `buckets` (answers as Arrow batches), `source`
//! (the `RemoteSource`: paging, cancel), `provider` (the table DataFusion
//! scans), `aggregate` (GROUP BY as a composite aggregation), `top`
//! (`ORDER BY … LIMIT` as a sorted read) and `federation` (the rule that
//! pushes, when `vivace.pushdown` is on).

mod aggregate;
mod buckets;
mod client;
mod dsl;
mod federation;
mod functions;
mod hits;
mod mapping;
mod options;
mod provider;
mod request;
mod source;
mod top;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::ScalarUDF;
use vivace_catalog::TableDefinition;

pub use client::Flavor;
pub use options::ElasticsearchOptions;
pub use source::ElasticsearchSource;

use crate::options::OptionSpec;
use crate::remote::{PoolCache, RemoteSource, SourceDefinition};
use crate::{
    Connector, ConnectorError, ConnectorErrorKind, ConnectorResult, SchemaRequest, Side,
    TableRequest,
};
use client::{ClientSettings, EsClient};

/// The connectors of this folder, by `STORED AS` name.
pub fn connectors() -> Vec<(&'static str, Arc<dyn Connector>)> {
    let connector: Arc<dyn Connector> = Arc::new(ElasticsearchConnector::default());
    vec![
        ("elasticsearch", Arc::clone(&connector)),
        ("opensearch", connector),
    ]
}

/// How long a worker keeps the client of a shipped scan after its last use.
const WORKER_CLIENT_IDLE: Duration = Duration::from_secs(300);

/// The `STORED AS ELASTICSEARCH` / `OPENSEARCH` connector. Tables of the same
/// server and user share one client (its connection pool).
#[derive(Default)]
pub struct ElasticsearchConnector {
    clients: PoolCache<EsClient>,
}

impl ElasticsearchConnector {
    fn client(&self, options: &ElasticsearchOptions, side: Side) -> ConnectorResult<Arc<EsClient>> {
        let key = format!(
            "{side:?}|{}|{:?}|{:?}|{:?}|{}|{:?}",
            options.compute_context(),
            options.password_env,
            options.api_key_env,
            options.ca_file,
            options.verify,
            options.timeout
        );
        let keep = (side == Side::Worker).then_some(WORKER_CLIENT_IDLE);
        self.clients.try_get(&key, keep, || {
            ClientSettings::read(options).map(EsClient::new)
        })
    }

    fn source(
        &self,
        options: ElasticsearchOptions,
        side: Side,
    ) -> ConnectorResult<Arc<ElasticsearchSource>> {
        let client = self.client(&options, side)?;
        Ok(Arc::new(ElasticsearchSource::new(options, client)))
    }

    async fn discover(
        &self,
        options: &ElasticsearchOptions,
        index: &str,
    ) -> ConnectorResult<Vec<mapping::Column>> {
        let client = self.client(options, Side::Coordinator)?;
        client.flavor().await?;
        let mappings = client.mappings(index).await?;
        mapping::discover(&mappings, index, options.source_column)
    }
}

#[async_trait]
impl Connector for ElasticsearchConnector {
    fn options(&self) -> &'static [OptionSpec] {
        options::OPTIONS
    }

    fn functions(&self) -> Vec<Arc<ScalarUDF>> {
        functions::functions()
    }

    async fn resolve(
        &self,
        request: TableRequest,
        _state: &SessionState,
    ) -> ConnectorResult<TableDefinition> {
        request.refuse_partitioning()?;
        let options =
            ElasticsearchOptions::parse(&request.connector, &request.location, &request.options)?;
        let index = options.index()?;
        let mut columns = self.discover(&options, index).await?;
        if let Some(declared) = &request.declared_schema {
            columns = mapping::apply_declared(&columns, declared)?;
        }
        Ok(request.into_definition(mapping::to_definitions(&columns)))
    }

    async fn resolve_schema(
        &self,
        request: SchemaRequest,
        _state: &SessionState,
    ) -> ConnectorResult<Vec<TableDefinition>> {
        if request.options.contains_key("index") {
            return Err(ConnectorError::invalid_option(
                "option 'index' is not valid for an external schema: it lists every index and alias",
            ));
        }
        let options =
            ElasticsearchOptions::parse(&request.connector, &request.location, &request.options)?;
        let client = self.client(&options, Side::Coordinator)?;
        client.flavor().await?;
        let names = client.index_names().await?;
        let mut defs = Vec::with_capacity(names.len());
        for name in names {
            let mappings = client.mappings(&name).await?;
            // An index with nothing mapped yet has no columns: left out.
            let Ok(columns) = mapping::discover(&mappings, &name, options.source_column) else {
                continue;
            };
            defs.push(request.mounted(&name, "index", mapping::to_definitions(&columns)));
        }
        if defs.is_empty() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "the search server at {} has no index with mapped fields",
                    options.compute_context()
                ),
            ));
        }
        Ok(defs)
    }

    fn open(
        &self,
        def: &TableDefinition,
        _state: &SessionState,
    ) -> ConnectorResult<Arc<dyn TableProvider>> {
        let options = ElasticsearchOptions::parse(&def.connector, &def.location, &def.options)?;
        let index = options.index()?.to_string();
        let columns = mapping::from_definitions(&def.columns)?;
        let source = self.source(options, Side::Coordinator)?;
        Ok(federation::table_provider(&source, &index, columns))
    }

    fn remote_source(
        &self,
        def: &SourceDefinition,
        side: Side,
    ) -> ConnectorResult<Arc<dyn RemoteSource>> {
        let options = ElasticsearchOptions::parse(&def.connector, &def.location, &def.options)?;
        Ok(self.source(options, side)?)
    }

    fn ships(&self, provider: &dyn TableProvider) -> Option<bool> {
        federation::is_elasticsearch_table(provider).then_some(true)
    }
}
