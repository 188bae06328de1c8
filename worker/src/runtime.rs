//! The DataFusion runtime a process runs query tasks in (the coordinator and
//! its embedded workers share one; each worker process has its own): a memory
//! pool bounded by `--memory-limit`, or unbounded.

use std::sync::Arc;

use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// A runtime whose queries together hold at most `memory_limit` bytes. Beyond
/// their share, sorts and aggregations spill to the OS temporary directory and
/// other operators (a hash join's build side) fail the query with "resources
/// exhausted" (SQLSTATE 53200), naming the three largest consumers. The pool
/// shares memory fairly among the operators that can spill: with a greedy pool
/// one sorter starved the others.
///
/// Directory listings are not cached: a table's files change under it (its
/// own writes, or another tool's), and DataFusion's default cache never
/// expires, so a query would not see files added since the first one.
pub fn runtime_env(memory_limit: Option<usize>) -> anyhow::Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new()
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0));
    if let Some(limit) = memory_limit {
        builder = builder.with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            std::num::NonZeroUsize::new(3).expect("3 is not zero"),
        )));
    }
    Ok(builder.build_arc()?)
}

/// Parse a memory size such as `512M`, `1.5G` or `65536` (bytes).
pub fn parse_memory_size(text: &str) -> anyhow::Result<usize> {
    let bytes = match text.trim().parse::<usize>() {
        Ok(bytes) => bytes,
        Err(_) => datafusion::execution::context::SessionContext::parse_capacity_limit(
            "memory_limit",
            text.trim(),
        )
        .map_err(|e| anyhow::anyhow!("memory_limit '{text}': {e}"))?,
    };
    anyhow::ensure!(bytes > 0, "memory_limit must be more than 0 bytes");
    Ok(bytes)
}
