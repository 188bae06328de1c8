//! How a [`RemoteScanExec`] crosses to a worker: as its recipe — the source's
//! stored definition (connector, `LOCATION`, `OPTIONS`; no secret), the
//! requests and the Arrow schema — rebuilt on the receiving side by the
//! connector the definition names, over that side's own connections (secrets
//! are read there, from the variables the options name).
//!
//! Coordinator and workers install the same codec (from the connector list);
//! the frame is a 4-byte length, the recipe as JSON, then an Arrow IPC stream
//! holding the schema.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use super::{RemoteScanExec, RemoteSource, SourceDefinition};
use crate::ConnectorResult;

/// Opens the source a recipe names (the connector list's lookup).
pub type SourceOpener =
    Arc<dyn Fn(&SourceDefinition) -> ConnectorResult<Arc<dyn RemoteSource>> + Send + Sync>;

/// Encodes and decodes [`RemoteScanExec`] nodes of any connector.
pub struct RemoteScanCodec {
    open: SourceOpener,
}

impl std::fmt::Debug for RemoteScanCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteScanCodec")
    }
}

impl RemoteScanCodec {
    /// A codec whose decoded scans run on sources from `open`.
    pub fn new(open: SourceOpener) -> Self {
        Self { open }
    }
}

/// What a [`RemoteScanExec`] is sent as (besides its schema).
#[derive(Serialize, Deserialize)]
struct Recipe {
    source: SourceDefinition,
    requests: Vec<String>,
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
        let source = (self.open)(&recipe.source)?;
        Ok(Arc::new(RemoteScanExec::new(
            source,
            recipe.requests,
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
            source: scan.source().definition().clone(),
            requests: scan.requests().to_vec(),
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
