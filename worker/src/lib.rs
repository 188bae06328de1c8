//! The Vivace worker: runs plan fragments sent by a coordinator, on
//! datafusion-distributed's gRPC `WorkerService` (Arrow Flight data between nodes).
//!
//! This crate also owns the cluster's wire contract shared by coordinator and
//! workers: the cluster secret every call carries ([`ClusterSecret`]), channels that
//! attach it ([`SecretChannelResolver`]), and registration/heartbeat messages sent
//! to the coordinator over Arrow Flight `DoAction` ([`membership`]). It knows
//! nothing of the catalog: everything a fragment needs arrives with the plan.

mod auth;
mod channel;
pub mod http;
mod local;
pub mod membership;
pub mod progress;
mod runtime;
mod secret;
mod server;

pub use auth::SecretCheck;
pub use channel::{SecretChannelResolver, WorkerUnreachable};
pub use local::LocalWorkers;
pub use runtime::{parse_memory_size, runtime_env};
pub use secret::{ClusterSecret, SECRET_HEADER};

/// Largest HTTP/2 frame a worker or coordinator accepts (both sides advertise it).
/// h2's default is 16 KiB: an exchanged batch of a few MB then travels as hundreds
/// of frames, each with its own header, flow-control step and write. 1 MiB frames
/// made TPC-H's join-heavy queries 5-8% faster between worker processes.
pub const MAX_FRAME_SIZE: u32 = 1024 * 1024;
pub use server::{WorkerHandle, WorkerOptions, spawn_worker};
