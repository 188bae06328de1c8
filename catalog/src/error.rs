//! Catalog errors.

use crate::TableName;

/// Result alias for catalog operations.
pub type CatalogResult<T> = Result<T, CatalogError>;

/// What can go wrong in the catalog. The coordinator maps each variant to a SQLSTATE.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A table with this name is already registered.
    #[error("relation \"{0}\" already exists")]
    AlreadyExists(TableName),
    /// No table with this name is registered.
    #[error("relation \"{0}\" does not exist")]
    NotFound(TableName),
    /// A schema with this name is already registered.
    #[error("schema \"{0}\" already exists")]
    SchemaExists(String),
    /// No schema with this name is registered.
    #[error("schema \"{0}\" does not exist")]
    SchemaNotFound(String),
    /// The underlying store failed (disk, corruption, locking).
    #[error("catalog storage error: {0}")]
    Storage(String),
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        CatalogError::Storage(e.to_string())
    }
}

impl From<serde_json::Error> for CatalogError {
    fn from(e: serde_json::Error) -> Self {
        CatalogError::Storage(format!("bad stored definition: {e}"))
    }
}
