//! Hooks on the raw SQL text, before it is parsed: catalog queries drivers send
//! verbatim are swapped for ones DataFusion plans, and constructs the parser or
//! datafusion-pg-catalog would mishandle are marked.

pub mod data_subqueries;
pub mod driver_queries;
pub mod regproc_literals;
