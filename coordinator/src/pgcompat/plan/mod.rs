//! Hooks on the logical plan: analyzer rules that run before type coercion
//! (numeric division, unknown-typed literals) and the narrowing of output
//! literals to PostgreSQL's types.

pub mod int_literals;
pub mod numeric_division;
pub mod unknown_literals;

use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, logical_plan::InvariantLevel};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::SqlResult;
use crate::pgcompat::statement::{colnames, sql_rewrite};

/// A query's logical plan with the result column names PostgreSQL would give
/// (where they differ from DataFusion's).
pub struct NamedPlan {
    /// The plan, its output literals narrowed to PostgreSQL's types.
    pub plan: LogicalPlan,
    /// PostgreSQL's names for the output columns, if the statement has them.
    pub names: Option<Vec<String>>,
}

/// Plan a query (SELECT, VALUES, EXPLAIN, ...) the way PostgreSQL would answer
/// it: unnamed duplicate output names are aliased, unaggregated correlated
/// scalar subqueries take their first value, and integer literals come out as
/// `integer`.
pub async fn plan_query(state: &SessionState, stmt: Box<Statement>) -> SqlResult<NamedPlan> {
    let names = colnames::postgres_names(&stmt);
    let plan = match state
        .statement_to_plan(DFStatement::Statement(stmt.clone()))
        .await
    {
        Err(e) if names.is_some() && colnames::is_duplicate_name_error(&e) => {
            let mut stmt = stmt.clone();
            colnames::alias_unnamed(&mut stmt);
            state
                .statement_to_plan(DFStatement::Statement(stmt))
                .await?
        }
        planned => planned?,
    };
    // DataFusion reports an unaggregated correlated scalar subquery only when
    // the plan is optimised; look for it now, while the statement can still
    // be rewritten.
    let plan = match plan.check_invariants(InvariantLevel::Executable) {
        Err(e) if sql_rewrite::is_unaggregated_subquery_error(&e) => {
            let mut stmt = stmt;
            sql_rewrite::aggregate_scalar_subqueries(&mut stmt);
            state
                .statement_to_plan(DFStatement::Statement(stmt))
                .await?
        }
        _ => plan,
    };
    Ok(NamedPlan {
        plan: finish(plan)?,
        names,
    })
}

/// The plan stage's last step for any query plan, prepared ones included.
pub fn finish(plan: LogicalPlan) -> SqlResult<LogicalPlan> {
    Ok(int_literals::narrow_output_literals(plan)?)
}
