//! The plan codec of PostgreSQL and Redshift scans: a [`RemoteScanExec`] travels
//! as its recipe — the source's stored definition (engine, `LOCATION`, `OPTIONS`,
//! no secret), the SQL statements and the Arrow schema — and is rebuilt on the
//! receiving side over that side's own connection pool. The password is read
//! there, from the variable `password_env` names, like the S3 keys of file tables.
//!
//! Coordinator and workers register the same codec; the wire format is JSON for
//! the recipe followed by an Arrow IPC stream holding the schema.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use super::exec::{LazyPool, PostgresExecutor};
use super::options::{Engine, PostgresOptions, SourceDefinition};
use super::scan::RemoteScanExec;

/// How long a pool opened for shipped scans stays cached without being used.
const IDLE_POOL: Duration = Duration::from_secs(300);

/// Encodes and decodes [`RemoteScanExec`] nodes.
#[derive(Debug)]
pub struct RemoteScanCodec {
    application_name: &'static str,
    pools: Mutex<BTreeMap<String, (LazyPool, Instant)>>,
}

impl std::fmt::Debug for LazyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyPool({})", self.options().compute_context())
    }
}

impl RemoteScanCodec {
    /// A codec whose decoded scans connect as `application_name` (what the
    /// server shows in `pg_stat_activity` and its logs).
    pub fn new(application_name: &'static str) -> Self {
        Self {
            application_name,
            pools: Mutex::default(),
        }
    }

    /// A pool to `options`' server, shared by every scan decoded for it while it
    /// is in use; pools unused for [`IDLE_POOL`] are closed.
    fn pool(&self, options: PostgresOptions) -> LazyPool {
        let key = format!(
            "{}|{:?}|{}|{}|{:?}",
            options.compute_context(),
            options.password_env,
            options.sslmode,
            options.pool_size,
            options.connect_timeout
        );
        let now = Instant::now();
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.retain(|_, (_, used)| now.duration_since(*used) < IDLE_POOL);
        let (pool, used) = pools.entry(key).or_insert_with(|| {
            (
                LazyPool::with_application_name(options, self.application_name),
                now,
            )
        });
        *used = now;
        pool.clone()
    }
}

/// What a [`RemoteScanExec`] is sent as (besides its schema).
#[derive(Serialize, Deserialize)]
struct Recipe {
    source: SourceDefinition,
    statements: Vec<String>,
    split_on: Option<String>,
    partitions: usize,
}

impl PhysicalExtensionCodec for RemoteScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let bad = |what: &str| DataFusionError::Plan(format!("bad remote scan recipe: {what}"));
        let (len, rest) = buf
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("too short"))?;
        let len = u32::from_le_bytes(*len) as usize;
        let (json, ipc) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let recipe: Recipe = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
        let schema = StreamReader::try_new(Cursor::new(ipc), None)?.schema();
        let engine = Engine::from_name(&recipe.source.engine)
            .ok_or_else(|| bad(&format!("unknown engine {}", recipe.source.engine)))?;
        let options =
            PostgresOptions::parse_for(engine, &recipe.source.location, &recipe.source.options)?;
        let executor = Arc::new(PostgresExecutor::new(self.pool(options)));
        Ok(Arc::new(RemoteScanExec::new(
            executor,
            recipe.statements,
            schema,
            recipe.split_on,
            recipe.partitions,
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<()> {
        let Some(scan) = node.downcast_ref::<RemoteScanExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} is not a remote scan",
                node.name()
            )));
        };
        let recipe = Recipe {
            source: scan.executor().options().source.clone(),
            statements: scan.statements().to_vec(),
            split_on: scan.split_on().map(str::to_string),
            partitions: scan.properties().output_partitioning().partition_count(),
        };
        let json = serde_json::to_vec(&recipe)
            .map_err(|e| DataFusionError::Internal(format!("cannot encode a remote scan: {e}")))?;
        buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
        buf.extend_from_slice(&json);
        let schema: &Schema = &scan.schema();
        let mut writer = StreamWriter::try_new(&mut *buf, schema)?;
        writer.finish()?;
        Ok(())
    }
}
