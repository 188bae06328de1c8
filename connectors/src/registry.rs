//! The list of connectors — the one place a source is named outside its own
//! folder — and what the coordinator and workers get from it: the plan codec
//! of shipped scans, task counts and splits, worker needs, and whether a
//! table's scans can ship at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::error::Result as DFResult;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::ScalarUDF;
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DesiredTaskCountHandler,
    ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse, ScaleUpLeafNodeHandler,
};
use datafusion_proto::physical_plan::{ComposedPhysicalExtensionCodec, PhysicalExtensionCodec};
use vivace_catalog::TableDefinition;

use crate::remote::{self, RemoteScanCodec};
use crate::{
    Connector, ConnectorError, ConnectorErrorKind, ConnectorResult, Side, WorkerNeed, cassandra,
    delta, elasticsearch, files, postgres,
};

/// Every connector, by `STORED AS` name: one line per folder.
fn all() -> Vec<(&'static str, Arc<dyn Connector>)> {
    [
        files::connectors(),
        delta::connectors(),
        postgres::connectors(),
        elasticsearch::connectors(),
        cassandra::connectors(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Header that carries a query's [`WorkerNeed`]s (JSON) to workers.
pub const WORKER_NEEDS_HEADER: &str = "x-vivace-worker-needs";

/// Connectors by `STORED AS` name. Clones share the connectors (and their
/// connection pools). As datafusion-distributed's task count and scale-up
/// handlers, it answers for the connectors' scans.
#[derive(Clone)]
pub struct ConnectorRegistry {
    connectors: Arc<BTreeMap<&'static str, Arc<dyn Connector>>>,
}

impl Default for ConnectorRegistry {
    fn default() -> Self {
        Self {
            connectors: Arc::new(all().into_iter().collect()),
        }
    }
}

impl ConnectorRegistry {
    /// The connector for a `STORED AS` name (case-insensitive).
    pub fn get(&self, name: &str) -> ConnectorResult<Arc<dyn Connector>> {
        let key = name.to_ascii_lowercase();
        self.connectors.get(key.as_str()).cloned().ok_or_else(|| {
            ConnectorError::new(
                ConnectorErrorKind::UnknownConnector,
                format!(
                    "unknown STORED AS format \"{}\"; supported: {}",
                    name.to_ascii_uppercase(),
                    self.names().join(", ")
                ),
            )
        })
    }

    /// Names of every registered connector, upper-case as written in DDL.
    pub fn names(&self) -> Vec<String> {
        self.connectors
            .keys()
            .map(|k| k.to_ascii_uppercase())
            .collect()
    }

    /// The codec of shipped plan nodes: remote scans, whose decoded scans
    /// open their sources on `side`, and file writes. Install it on the
    /// coordinator and on every worker.
    pub fn codec(&self, side: Side) -> Arc<dyn PhysicalExtensionCodec> {
        let registry = self.clone();
        let scans = Arc::new(RemoteScanCodec::new(Arc::new(move |def| {
            registry.get(&def.connector)?.remote_source(def, side)
        })));
        Arc::new(ComposedPhysicalExtensionCodec::new(vec![
            scans,
            Arc::new(files::write::FileWriteCodec),
            Arc::new(delta::DeltaScanCodec),
        ]))
    }

    /// Whether the scans of `provider` can run on workers: `Some` for a
    /// connector's table, `None` for any other (catalog tables, functions).
    pub fn ships(&self, provider: &dyn TableProvider) -> Option<bool> {
        self.connectors.values().find_map(|c| c.ships(provider))
    }

    /// The functions of every connector (each once, by name), to register in
    /// every session and on every worker.
    pub fn functions(&self) -> Vec<Arc<ScalarUDF>> {
        let mut functions: BTreeMap<String, Arc<ScalarUDF>> = BTreeMap::new();
        for connector in self.connectors.values() {
            for function in connector.functions() {
                functions.insert(function.name().to_string(), function);
            }
        }
        functions.into_values().collect()
    }

    /// The table functions of every connector, and `table_at` (time travel),
    /// to register in every session.
    pub fn table_functions(&self) -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
        let mut functions: Vec<(&'static str, Arc<dyn TableFunctionImpl>)> = vec![(
            crate::time_travel::TABLE_AT,
            Arc::new(crate::time_travel::TableAt::new(
                self.connectors.values().cloned().collect(),
            )),
        )];
        for connector in self.connectors.values() {
            functions.extend(connector.table_functions());
        }
        functions
    }

    /// What workers must prepare to scan `def`.
    pub fn worker_needs(&self, def: &TableDefinition) -> ConnectorResult<Vec<WorkerNeed>> {
        self.get(&def.connector)?.worker_needs(def)
    }

    /// The header value carrying `needs`.
    pub fn encode_needs<'a>(needs: impl IntoIterator<Item = &'a WorkerNeed>) -> String {
        let needs: Vec<&WorkerNeed> = needs.into_iter().collect();
        serde_json::to_string(&needs).unwrap_or_default()
    }

    /// Prepare this worker's `runtime` for the needs a query's header carries.
    pub fn prepare_worker(&self, header: &[u8], runtime: &RuntimeEnv) -> ConnectorResult<()> {
        let needs: Vec<WorkerNeed> = serde_json::from_slice(header).map_err(|e| {
            ConnectorError::new(
                ConnectorErrorKind::InvalidOption,
                format!("bad worker needs from the coordinator: {e}"),
            )
        })?;
        for need in &needs {
            self.get(&need.connector)?.prepare_worker(need, runtime)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ConnectorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.connectors.keys()).finish()
    }
}

/// How many tasks a connector's scan wants; `None` for other nodes.
#[async_trait]
impl DesiredTaskCountHandler for ConnectorRegistry {
    async fn handle(
        &self,
        event: DesiredTaskCountEvent<'_>,
    ) -> Option<DFResult<DesiredTaskCountEventResponse>> {
        remote::distribution::desired_task_count(&event)
    }
}

/// A connector's scan cut into one scan per task; `None` for other nodes.
impl ScaleUpLeafNodeHandler for ConnectorRegistry {
    fn handle(
        &self,
        event: ScaleUpLeafNodeEvent,
    ) -> Option<DFResult<ScaleUpLeafNodeEventResponse>> {
        remote::distribution::scale_up(&event)
    }
}
