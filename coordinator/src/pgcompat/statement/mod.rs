//! Hooks on the parsed statement: PostgreSQL constructs DataFusion does not plan
//! are rewritten into ones it does, and result columns get PostgreSQL's names.

pub mod colnames;
pub mod empty_catalog_subqueries;
pub mod like_escape;
pub mod regclass_casts;
pub mod sql_rewrite;
