//! How a [`FileWriteExec`] crosses to a worker: its [`WriteSpec`] as JSON (no
//! secret in it); its input travels as the plan's child.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use super::{FileWriteExec, WriteSpec};

/// Encodes and decodes [`FileWriteExec`] nodes.
#[derive(Debug, Default)]
pub struct FileWriteCodec;

impl PhysicalExtensionCodec for FileWriteCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let spec: WriteSpec = serde_json::from_slice(buf)
            .map_err(|e| DataFusionError::Plan(format!("bad file write recipe: {e}")))?;
        let [input] = inputs else {
            return Err(DataFusionError::Plan(
                "a file write has exactly one input".into(),
            ));
        };
        Ok(Arc::new(FileWriteExec::try_new(input.clone(), spec)?))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<()> {
        let Some(write) = node.downcast_ref::<FileWriteExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} is not a file write",
                node.name()
            )));
        };
        serde_json::to_writer(buf, write.spec())
            .map_err(|e| DataFusionError::Internal(format!("cannot encode a file write: {e}")))
    }
}
