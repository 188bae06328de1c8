//! The Vivace catalog: definitions of external tables and their durable store.
//!
//! This crate knows nothing about the wire protocol or query execution. It holds
//! what an admin registered (`CREATE EXTERNAL TABLE ...`, `CREATE VIEW ...`) in a typed form and
//! persists it transactionally in SQLite, so definitions survive restarts and
//! `kill -9`.

mod definition;
mod error;
mod journal;
mod store;

pub use definition::{
    ColumnDefinition, SchemaDefinition, TableDefinition, TableName, ViewDefinition,
};
pub use error::{CatalogError, CatalogResult};
pub use store::CatalogStore;

/// The database name clients connect to and `current_database()` returns.
pub const DATABASE: &str = "vivace";
/// The schema external tables are registered in.
pub const DEFAULT_SCHEMA: &str = "public";
