//! Catalog views as PostgreSQL clients read them: `information_schema`,
//! corrections over datafusion-pg-catalog's `pg_catalog`, sources' keys as
//! indexes, and PostgreSQL's type names.

pub mod information_schema;
pub mod pg_catalog_overlay;
pub mod pg_types;
pub mod source_keys;
