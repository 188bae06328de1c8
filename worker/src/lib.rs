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
mod local;
pub mod membership;
mod secret;
mod server;

pub use auth::SecretCheck;
pub use channel::{SecretChannelResolver, WorkerUnreachable};
pub use local::LocalWorkers;
pub use secret::{ClusterSecret, SECRET_HEADER};
pub use server::{WorkerHandle, WorkerOptions, spawn_worker};
