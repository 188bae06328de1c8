//! What Redshift evaluates.
//!
//! PostgreSQL is sent everything datafusion-federation can unparse with
//! DataFusion's PostgreSQL dialect — filters (IN lists, LIKE, date comparisons),
//! projections, limits, sorts, aggregates and joins between tables of the same
//! server and role — as one SQL statement. Literals are rendered by the
//! dialect's unparser (quotes doubled), never spliced as text.
//!
//! Redshift gets the same machinery with [`RedshiftDialect`], and a check
//! ([`redshift_can_run`]) of every node and expression against what Redshift has.
//! A federated sub-plan that holds something Redshift lacks is split
//! ([`split_for_redshift`]): the nodes that cannot run remotely stay in Vivace and
//! their inputs are pushed, each as its own statement, as far down as they can be.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, Distinct, Expr, ExprSchemable, Extension, Filter, JoinType, LogicalPlan, Operator,
    Projection,
};
use datafusion::sql::sqlparser::ast::{self, CharacterLength, TimezoneInfo};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{Dialect, IntervalStyle};
use datafusion_federation::{FederatedPlanNode, FederationPlanner};

/// DataFusion's SQL unparser dialect for Amazon Redshift (PostgreSQL 8.0 syntax
/// plus Redshift's own types). Differences from the PostgreSQL dialect:
/// text casts are `VARCHAR(MAX)` (Redshift's `TEXT` is `VARCHAR(256)` and would
/// truncate), time-zone timestamps are `TIMESTAMPTZ`, there are no array
/// literals, and a projection of no columns is `SELECT 1`, never `SELECT FROM`.
/// What Redshift cannot run at all is kept out of the SQL by [`redshift_can_run`].
#[derive(Debug, Default, Clone, Copy)]
pub struct RedshiftDialect;

impl Dialect for RedshiftDialect {
    fn identifier_quote_style(&self, _: &str) -> Option<char> {
        Some('"')
    }

    fn supports_nulls_first_in_sort(&self) -> bool {
        true
    }

    fn supports_qualify(&self) -> bool {
        false
    }

    fn requires_derived_table_alias(&self) -> bool {
        true
    }

    fn supports_empty_select_list(&self) -> bool {
        false
    }

    fn interval_style(&self) -> IntervalStyle {
        IntervalStyle::PostgresVerbose
    }

    fn float64_ast_dtype(&self) -> ast::DataType {
        ast::DataType::DoublePrecision
    }

    fn utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::Varchar(Some(CharacterLength::Max))
    }

    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::Varchar(Some(CharacterLength::Max))
    }

    fn int8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::SmallInt(None)
    }

    fn timestamp_cast_dtype(&self, _unit: &TimeUnit, tz: &Option<Arc<str>>) -> ast::DataType {
        match tz {
            Some(_) => ast::DataType::Timestamp(None, TimezoneInfo::Tz),
            None => ast::DataType::Timestamp(None, TimezoneInfo::None),
        }
    }
}

/// Scalar functions (DataFusion names, as the unparser writes them) that Redshift
/// has with the same meaning. Left out on purpose, among others: `concat` (NULL
/// handling and arity differ), `to_char` / `to_date` / `to_timestamp` (DataFusion
/// takes chrono formats), regular expressions (Rust syntax), `ends_with`,
/// `log10`, `log2`, `signum`, and every array, map, struct and JSON function.
const REDSHIFT_SCALAR: &[&str] = &[
    "abs",
    "acos",
    "ascii",
    "asin",
    "atan",
    "atan2",
    "btrim",
    "cbrt",
    "ceil",
    "character_length",
    "chr",
    "coalesce",
    "cos",
    "cot",
    "date_part",
    "date_trunc",
    "degrees",
    "exp",
    "floor",
    "greatest",
    "initcap",
    "least",
    "left",
    "ln",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "nullif",
    "nvl",
    "octet_length",
    "pi",
    "power",
    "radians",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "rpad",
    "rtrim",
    "sin",
    "split_part",
    "sqrt",
    "strpos",
    "substr",
    "tan",
    "translate",
    "trunc",
    "upper",
];

/// Aggregates Redshift computes like DataFusion for any argument type.
const REDSHIFT_AGGREGATE: &[&str] = &["count", "sum", "min", "max", "bool_and", "bool_or"];

/// Aggregates pushed only over floating-point arguments: on integers and decimals
/// Redshift keeps the argument's scale (`avg(int)` is an integer), DataFusion does not.
const REDSHIFT_FLOAT_AGGREGATE: &[&str] = &["avg", "stddev", "stddev_pop", "var_pop"];

/// Whether Redshift can run `plan` as one statement, with the answer DataFusion
/// would give: every node and expression is one Redshift has, and the unparser
/// can render the whole plan with [`RedshiftDialect`].
pub fn redshift_can_run(plan: &LogicalPlan) -> bool {
    let nodes_ok = !plan
        .exists(|node| Ok(!node_runs_on_redshift(node)))
        .unwrap_or(true);
    nodes_ok && Unparser::new(&RedshiftDialect).plan_to_sql(plan).is_ok()
}

fn node_runs_on_redshift(plan: &LogicalPlan) -> bool {
    let kind_ok = match plan {
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::TableScan(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::Aggregate(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => true,
        LogicalPlan::Join(join) => {
            !join.null_aware
                && matches!(
                    join.join_type,
                    JoinType::Inner
                        | JoinType::Left
                        | JoinType::Right
                        | JoinType::Full
                        | JoinType::LeftSemi
                        | JoinType::LeftAnti
                )
        }
        _ => false,
    };
    if !kind_ok {
        return false;
    }
    let schema = plan
        .inputs()
        .first()
        .map_or_else(|| plan.schema(), |input| input.schema());
    plan.expressions()
        .iter()
        .all(|expr| expr_runs_on_redshift(expr, schema))
}

/// Whether Redshift evaluates `expr` (and everything inside it) as DataFusion
/// would. `schema` types the arguments of aggregates.
pub fn expr_runs_on_redshift(expr: &Expr, schema: &DFSchema) -> bool {
    let mut ok = true;
    let _ = expr.apply(|e| {
        ok = match e {
            Expr::Alias(_)
            | Expr::Column(_)
            | Expr::Like(_)
            | Expr::SimilarTo(_)
            | Expr::Not(_)
            | Expr::IsNotNull(_)
            | Expr::IsNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsNotUnknown(_)
            | Expr::Negative(_)
            | Expr::Between(_)
            | Expr::Case(_)
            | Expr::InList(_) => true,
            Expr::Literal(value, _) => literal_ok(value),
            Expr::BinaryExpr(BinaryExpr { op, .. }) => operator_ok(*op),
            Expr::Cast(cast) => type_ok(cast.field.data_type()),
            Expr::ScalarFunction(f) => {
                let name = f.name();
                REDSHIFT_SCALAR.contains(&name) || (name == "log" && f.args.len() == 1)
            }
            Expr::AggregateFunction(agg) => {
                let name = agg.func.name();
                let p = &agg.params;
                let plain =
                    p.filter.is_none() && p.order_by.is_empty() && p.null_treatment.is_none();
                let float_args = || {
                    p.args.iter().all(|a| {
                        a.get_type(schema)
                            .is_ok_and(|t| matches!(t, DataType::Float32 | DataType::Float64))
                    })
                };
                plain
                    && (REDSHIFT_AGGREGATE.contains(&name)
                        || (REDSHIFT_FLOAT_AGGREGATE.contains(&name) && float_args()))
            }
            // TRY_CAST, subqueries, window functions, grouping sets, placeholders,
            // session variables, UNNEST, lambdas: evaluated in Vivace.
            _ => false,
        };
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

fn operator_ok(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::Plus
            | Operator::Minus
            | Operator::Multiply
            | Operator::Divide
            | Operator::Modulo
            | Operator::And
            | Operator::Or
            | Operator::StringConcat
    )
}

fn type_ok(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Date32
            | DataType::Timestamp(_, _)
    ) || matches!(t, DataType::Decimal128(p, _) if *p <= 38)
}

fn literal_ok(value: &ScalarValue) -> bool {
    match value {
        ScalarValue::Float32(Some(f)) => f.is_finite(),
        ScalarValue::Float64(Some(f)) => f.is_finite(),
        ScalarValue::Null
        | ScalarValue::Int8(_)
        | ScalarValue::IntervalYearMonth(_)
        | ScalarValue::IntervalDayTime(_)
        | ScalarValue::IntervalMonthDayNano(_) => true,
        other => type_ok(&other.data_type()),
    }
}

/// The executor hook for Redshift sources: `plan` is the `Federated` node
/// datafusion-federation built for a sub-plan over one Redshift server. Returned
/// unchanged when Redshift can run all of it; otherwise the nodes it cannot run
/// are kept in Vivace and their inputs federated one by one.
pub fn split_for_redshift(plan: LogicalPlan) -> DFResult<LogicalPlan> {
    let LogicalPlan::Extension(Extension { node }) = &plan else {
        return Ok(plan);
    };
    let Some(federated) = node.as_any().downcast_ref::<FederatedPlanNode>() else {
        return Ok(plan);
    };
    if redshift_can_run(&federated.plan) {
        return Ok(plan);
    }
    let planner = Arc::clone(&federated.planner);
    let inner = federated.plan.clone();
    keep_local(inner, &planner)
}

/// `plan` is not runnable remotely as a whole: keep its root here, federate what
/// can be federated below it. A filter whose conditions Redshift can partly run
/// is split: those conditions are sent, the others checked here.
fn keep_local(plan: LogicalPlan, planner: &Arc<dyn FederationPlanner>) -> DFResult<LogicalPlan> {
    if matches!(plan, LogicalPlan::TableScan(_)) {
        // A plain scan, read whole (cannot happen: a scan alone is always runnable).
        return Ok(plan);
    }
    if let LogicalPlan::Filter(filter) = &plan {
        let schema = filter.input.schema();
        let (remote, local): (Vec<Expr>, Vec<Expr>) = split_conjunction(&filter.predicate)
            .into_iter()
            .cloned()
            .partition(|e| expr_runs_on_redshift(e, schema));
        if let (Some(remote), Some(local)) = (conjunction(remote), conjunction(local)) {
            let pushed = LogicalPlan::Filter(Filter::try_new(remote, Arc::clone(&filter.input))?);
            let input = federate_or_split(pushed, planner)?;
            return Ok(LogicalPlan::Filter(Filter::try_new(
                local,
                Arc::new(input),
            )?));
        }
    }
    let inputs = plan
        .inputs()
        .into_iter()
        .map(|input| federate_or_split(input.clone(), planner))
        .collect::<DFResult<Vec<_>>>()?;
    plan.with_new_exprs(plan.expressions(), inputs)
}

fn federate_or_split(
    plan: LogicalPlan,
    planner: &Arc<dyn FederationPlanner>,
) -> DFResult<LogicalPlan> {
    if redshift_can_run(&plan) {
        let wrapped = with_projection(plan)?;
        Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(FederatedPlanNode::new(wrapped, Arc::clone(planner))),
        }))
    } else {
        keep_local(plan, planner)
    }
}

/// A federated input is rendered as a `SELECT` of its columns, as
/// datafusion-federation does for the inputs it federates.
fn with_projection(plan: LogicalPlan) -> DFResult<LogicalPlan> {
    if matches!(plan, LogicalPlan::Projection(_)) {
        return Ok(plan);
    }
    let columns = plan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::catalog::Session;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::prelude::SessionContext;
    use datafusion::sql::unparser::dialect::PostgreSqlDialect;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("customer", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(12, 2), false),
            Field::new("ratio", DataType::Float64, true),
            Field::new("day", DataType::Date32, false),
        ]));
        let table = MemTable::try_new(schema, vec![vec![]]).unwrap();
        ctx.register_table("sales", Arc::new(table)).unwrap();
        ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap()
    }

    fn redshift_sql(plan: &LogicalPlan) -> String {
        Unparser::new(&RedshiftDialect)
            .plan_to_sql(plan)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn renders_redshift_sql() {
        let p = plan(
            "SELECT customer, count(*), sum(amount) FROM sales \
             WHERE customer IN ('c1', 'O''Brien') AND day >= DATE '2024-01-01' \
             AND customer LIKE 'c%' GROUP BY customer ORDER BY 2 DESC NULLS LAST LIMIT 5",
        )
        .await;
        assert!(redshift_can_run(&p));
        let sql = redshift_sql(&p);
        for part in [
            "'O''Brien'",
            "LIKE 'c%'",
            "GROUP BY \"customer\"",
            "DESC NULLS LAST",
            "LIMIT 5",
            "count(1)",
        ] {
            assert!(sql.contains(part), "{part} not in {sql}");
        }
        // Casts: text is VARCHAR(MAX) (Redshift's TEXT is VARCHAR(256)), time
        // zones are TIMESTAMPTZ.
        let p = plan(
            "SELECT CAST(id AS VARCHAR), CAST(day AS TIMESTAMP) AT TIME ZONE 'UTC' FROM sales",
        )
        .await;
        let sql = redshift_sql(&p);
        assert!(sql.contains("AS VARCHAR(MAX))"), "{sql}");
        let pg = Unparser::new(&PostgreSqlDialect {})
            .plan_to_sql(&p)
            .unwrap()
            .to_string();
        assert!(!pg.contains("VARCHAR(MAX)"), "{pg}");
        // No empty select list: count(*) over a projection of no columns.
        let p = plan("SELECT count(*) FROM sales").await;
        assert!(!redshift_sql(&p).contains("SELECT FROM"));
    }

    #[tokio::test]
    async fn keeps_what_redshift_lacks_local() {
        for sql in [
            "SELECT levenshtein(customer, 'c4') FROM sales",
            "SELECT ends_with(customer, '4') FROM sales",
            "SELECT concat(customer, 'x') FROM sales",
            "SELECT id FROM sales WHERE customer IS DISTINCT FROM 'c1'",
            "SELECT avg(amount) FROM sales",
            "SELECT customer FROM sales WHERE customer ~ '^c[0-9]+$'",
            "SELECT to_char(day, '%Y') FROM sales",
            "SELECT id, row_number() OVER (ORDER BY id) FROM sales",
            "SELECT string_agg(customer, ',') FROM sales",
            "SELECT count(*) FILTER (WHERE id > 3) FROM sales",
            "SELECT make_array(id, id) FROM sales",
            "SELECT TRY_CAST(customer AS INT) FROM sales",
        ] {
            assert!(!redshift_can_run(&plan(sql).await), "pushed: {sql}");
        }
        for sql in [
            // DataFusion casts integers to double for avg, so Redshift agrees.
            "SELECT avg(id) FROM sales",
            "SELECT avg(ratio), stddev(ratio) FROM sales",
            "SELECT upper(customer), substr(customer, 1, 2), coalesce(customer, 'none') FROM sales",
            "SELECT date_trunc('month', day), count(DISTINCT customer) FROM sales GROUP BY 1",
            "SELECT CASE WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END FROM sales WHERE id BETWEEN 1 AND 9",
            "SELECT customer || '-' || CAST(id AS VARCHAR) FROM sales",
        ] {
            assert!(redshift_can_run(&plan(sql).await), "not pushed: {sql}");
        }
    }

    #[derive(Debug)]
    struct NoPlanner;

    #[async_trait::async_trait]
    impl FederationPlanner for NoPlanner {
        async fn plan_federation(
            &self,
            _node: &FederatedPlanNode,
            _session_state: &dyn Session,
        ) -> DFResult<Arc<dyn ExecutionPlan>> {
            unimplemented!()
        }
    }

    fn federated(plan: LogicalPlan) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(FederatedPlanNode::new(plan, Arc::new(NoPlanner))),
        })
    }

    /// The SQL of every federated node in `plan`, top down.
    fn remote_sql(plan: &LogicalPlan) -> Vec<String> {
        let mut out = vec![];
        plan.apply(|node| {
            if let LogicalPlan::Extension(ext) = node
                && let Some(f) = ext.node.as_any().downcast_ref::<FederatedPlanNode>()
            {
                out.push(redshift_sql(&f.plan));
                return Ok(TreeNodeRecursion::Jump);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        out
    }

    #[tokio::test]
    async fn splits_at_what_redshift_lacks() {
        // Whole plan runnable: unchanged.
        let p = plan("SELECT customer, count(*) FROM sales WHERE id > 3 GROUP BY customer").await;
        let out = split_for_redshift(federated(p)).unwrap();
        assert_eq!(remote_sql(&out).len(), 1);
        assert!(matches!(out, LogicalPlan::Extension(_)));

        // A function Redshift lacks above a filter: the filter is pushed, the
        // projection stays in Vivace.
        let p = plan("SELECT levenshtein(customer, 'c4') AS s FROM sales WHERE id > 3").await;
        let out = split_for_redshift(federated(p)).unwrap();
        assert!(matches!(out, LogicalPlan::Projection(_)), "{out}");
        let sql = remote_sql(&out);
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert!(sql[0].contains("WHERE (\"sales\".\"id\" > 3)"), "{sql:?}");
        assert!(!sql[0].contains("levenshtein"), "{sql:?}");

        // avg of a decimal: the aggregate runs here, the scan and filter remotely.
        let p = plan(
            "SELECT customer, avg(amount) FROM sales WHERE customer LIKE 'c%' GROUP BY customer",
        )
        .await;
        let out = split_for_redshift(federated(p)).unwrap();
        let sql = remote_sql(&out);
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert!(
            sql[0].contains("LIKE 'c%'") && !sql[0].contains("avg"),
            "{sql:?}"
        );
        assert!(out.schema().fields().len() == 2);

        // A filter Redshift can partly run: its other conditions stay here.
        let p = plan("SELECT id FROM sales WHERE levenshtein(customer, 'c4') < 2 AND id > 3").await;
        let out = split_for_redshift(federated(p)).unwrap();
        let sql = remote_sql(&out);
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert!(
            sql[0].contains("\"sales\".\"id\" > 3") && !sql[0].contains("levenshtein"),
            "{sql:?}"
        );
    }
}
