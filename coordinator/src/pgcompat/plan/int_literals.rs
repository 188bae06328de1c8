//! `SELECT 1` answers an `integer` column, as in PostgreSQL.
//!
//! PostgreSQL types an integer literal that fits in 32 bits as `int4`;
//! DataFusion types every integer literal as Int64, so a health check's
//! `SELECT 1` came back as `int8` (a Java `Long` where pgjdbc users get an
//! `Integer`). Only the literals that are themselves output columns of the
//! query's top projection are narrowed, after planning: inside expressions
//! DataFusion's Int64 arithmetic is kept, since narrowing there would change
//! overflow behaviour.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::Alias;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, cast};

/// `plan` with each top-level output column that is an Int64 literal fitting
/// in 32 bits cast to Int32, under the same name.
pub fn narrow_output_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    let LogicalPlan::Projection(projection) = plan else {
        return Ok(plan);
    };
    if !projection.expr.iter().any(narrowable) {
        return Ok(LogicalPlan::Projection(projection));
    }
    let exprs = projection
        .expr
        .iter()
        .map(|expr| {
            if !narrowable(expr) {
                return expr.clone();
            }
            let (name, literal) = match expr {
                Expr::Alias(Alias { expr, name, .. }) => (name.clone(), expr.as_ref().clone()),
                other => (other.schema_name().to_string(), other.clone()),
            };
            cast(literal, DataType::Int32).alias(name)
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        projection.input,
    )?))
}

fn narrowable(expr: &Expr) -> bool {
    match expr {
        Expr::Alias(Alias { expr, .. }) => narrowable(expr),
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => i32::try_from(*v).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn output_types(sql: &str) -> Vec<(String, DataType)> {
        let plan = SessionContext::new()
            .state()
            .create_logical_plan(sql)
            .await
            .unwrap();
        let plan = narrow_output_literals(plan).unwrap();
        plan.schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    #[tokio::test]
    async fn small_output_literals_are_int4() {
        assert_eq!(
            output_types("SELECT 1, 3000000000, 2 AS two, 1 + 1").await,
            [
                ("Int64(1)".to_string(), DataType::Int32),
                ("Int64(3000000000)".to_string(), DataType::Int64),
                ("two".to_string(), DataType::Int32),
                ("Int64(1) + Int64(1)".to_string(), DataType::Int64),
            ]
        );
    }
}
