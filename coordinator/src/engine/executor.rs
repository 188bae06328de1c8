//! The runtime queries execute on, apart from the one serving connections.
//!
//! DataFusion operators are CPU-bound and yield rarely (a nested-loop join can hold
//! a thread for minutes). On the runtime that also polls client sockets, such a
//! query would starve every other connection and even the task that notices a
//! CancelRequest. So plans run here, on a runtime of their own, and their batches
//! cross to the connection's task through a small channel (DataFusion's own advice
//! for servers: a separate runtime for CPU work).

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// Stack of each query thread.
pub const QUERY_STACK_BYTES: usize = 64 << 20;

/// The process-wide query runtime (one thread per core), created on first use and
/// kept for the life of the process.
pub fn query_runtime() -> Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .thread_name("vivace-query")
                // Operators evaluate deep expression trees recursively.
                .thread_stack_size(QUERY_STACK_BYTES)
                .enable_all()
                .build()
                .expect("cannot start the query runtime")
        })
        .handle()
        .clone()
}
