//! SQL functions with PostgreSQL's behaviour where DataFusion's differs,
//! registered under the built-in names on the coordinator and on every worker
//! (plans cross to workers naming their functions). See the README.

mod avg;
mod division;
pub mod float;
pub mod json;
pub mod numeric;
mod sum;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use division::{NUMERIC_DIV, numeric_div};
pub use json::json_build_object;

/// The aggregate functions to register (they replace the built-ins of the
/// same names).
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::new_from_impl(avg::PgAvg::new())),
        Arc::new(AggregateUDF::new_from_impl(sum::PgSum::new())),
    ]
}

/// The scalar functions to register.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![numeric_div(), json_build_object()]
}
