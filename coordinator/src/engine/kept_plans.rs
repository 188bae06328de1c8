//! What a prepared statement keeps from one execution for the next, so that a
//! statement run again and again (a dashboard's lookup, a driver's probe) skips
//! the planning it already did:
//!
//! - its **optimised logical plan**, `$n` placeholders in place: each execution
//!   binds its values into it and goes straight to the physical planner, with
//!   no analyzer and no optimizer. It is kept only when binding the values into
//!   it gives the very plan that optimising the bound statement gives (checked
//!   on the first execution, so a source that pushes down `id = 5` but not
//!   `id = $1`, or a `LIMIT $1`, keeps nothing), and only when every function
//!   it calls is immutable (the optimizer folds `now()` into a constant);
//! - for a statement whose rows never change (reads no table, has no parameter,
//!   calls only immutable functions: `SELECT 1`), its **physical plan**, run
//!   again with its operators' state reset.
//!
//! Everything kept belongs to the session snapshot it was made under (a `SET`
//! makes a new one) and to the [`CatalogVersion`] the statement was planned at:
//! after any DDL the statement is planned again from its text at its next
//! execution ([`KeptPlans::replan`], which drops everything kept), as
//! PostgreSQL invalidates cached plans.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::ParamValues;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion_federation::FederatedPlanNode;

/// A session's state snapshot, as [`super::QueryState`] holds it.
pub(super) type SharedState = Arc<tokio::sync::Mutex<SessionState>>;

/// A count of changes to the catalogs statements are planned against (the
/// engine's, moved on by every DDL; a session's temp tables, by each one
/// created or dropped), so that a plan made before a change is made again.
#[derive(Debug, Clone, Default)]
pub struct CatalogVersion(Arc<AtomicU64>);

impl CatalogVersion {
    /// The version now.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Record a change.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// What a prepared statement keeps between executions (see the module).
pub struct KeptPlans {
    /// Its rows never change: the physical plan may be kept.
    constant: bool,
    /// Every function it calls is immutable: the optimised plan may be kept.
    immutable: bool,
    kept: Mutex<Kept>,
}

/// The plans of a [`KeptPlans`], and what they were made under.
struct Kept {
    /// The statement's logical plan and the catalog version it was planned at.
    logical: (LogicalPlan, u64),
    /// The snapshot the optimised and physical plans were made under (all
    /// at the catalog version of `logical`: [`KeptPlans::replan`] drops them).
    state: Option<SharedState>,
    optimized: Optimized,
    physical: Option<Arc<dyn ExecutionPlan>>,
}

/// The optimised plan of a [`KeptPlans`].
enum Optimized {
    /// Not tried under this snapshot yet.
    Untried,
    /// Kept, placeholders in place.
    Kept(LogicalPlan),
    /// Binding values into it would not give the plan the optimizer makes.
    Refused,
}

impl std::fmt::Debug for KeptPlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptPlans")
    }
}

impl KeptPlans {
    /// A place for the plans of the statement planned as `plan` at catalog
    /// version `catalog` (read before planning it).
    pub fn new(plan: LogicalPlan, catalog: u64) -> Arc<Self> {
        Arc::new(Self {
            constant: is_constant(&plan),
            immutable: calls_only_immutable_functions(&plan),
            kept: Mutex::new(Kept {
                logical: (plan, catalog),
                state: None,
                optimized: Optimized::Untried,
                physical: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The statement's logical plan, unless the catalog changed since it was
    /// planned (then it must be planned again: [`Self::replan`]).
    pub fn logical(&self, catalog: u64) -> Option<LogicalPlan> {
        let kept = self.lock();
        (kept.logical.1 == catalog).then(|| kept.logical.0.clone())
    }

    /// Take `plan`, planned again at catalog version `catalog`, in place of
    /// the statement's plan; everything kept from the old one goes.
    pub fn replan(&self, plan: LogicalPlan, catalog: u64) {
        let mut kept = self.lock();
        kept.logical = (plan, catalog);
        kept.state = None;
        kept.optimized = Optimized::Untried;
        kept.physical = None;
    }

    /// What is kept for a run under `state`; anything kept under another
    /// snapshot is dropped.
    pub(super) fn for_run(&self, state: &SharedState) -> ForRun {
        let mut kept = self.lock();
        if !kept.state.as_ref().is_some_and(|s| Arc::ptr_eq(s, state)) {
            kept.state = Some(Arc::clone(state));
            kept.optimized = Optimized::Untried;
            kept.physical = None;
        }
        if let Some(physical) = &kept.physical
            && let Ok(physical) = reset_plan_states(Arc::clone(physical))
        {
            return ForRun::Physical(physical);
        }
        match &kept.optimized {
            Optimized::Kept(plan) => ForRun::Optimized(plan.clone()),
            Optimized::Untried if self.immutable => ForRun::TryKeeping,
            Optimized::Untried | Optimized::Refused => ForRun::Nothing,
        }
    }

    /// Keep `optimized` (or record that it may not be kept) for runs under
    /// `state`, if that is still the snapshot kept plans belong to.
    pub(super) fn keep_optimized(&self, state: &SharedState, optimized: Option<LogicalPlan>) {
        let mut kept = self.lock();
        if kept.state.as_ref().is_some_and(|s| Arc::ptr_eq(s, state)) {
            kept.optimized = optimized.map_or(Optimized::Refused, Optimized::Kept);
        }
    }

    /// Keep `physical`, planned under `state`, if the statement's rows never
    /// change; a plan with stages on workers is not kept (its stages are bound
    /// to the workers of the moment).
    pub(super) fn keep_physical(&self, state: &SharedState, physical: &Arc<dyn ExecutionPlan>) {
        if !self.constant
            || physical
                .downcast_ref::<datafusion_distributed::DistributedExec>()
                .is_some()
        {
            return;
        }
        let mut kept = self.lock();
        if kept.state.as_ref().is_some_and(|s| Arc::ptr_eq(s, state)) {
            kept.physical = Some(Arc::clone(physical));
        }
    }
}

/// What [`KeptPlans::for_run`] found.
pub(super) enum ForRun {
    /// A physical plan to run as it is.
    Physical(Arc<dyn ExecutionPlan>),
    /// The optimised plan, to bind the values into.
    Optimized(LogicalPlan),
    /// Nothing yet: plan as usual and see whether the optimised plan may be kept.
    TryKeeping,
    /// Nothing: plan as usual.
    Nothing,
}

/// Optimise `plan` with `params` bound, as `state` plans every query; with
/// `keep`, also optimise it unbound and keep that plan when binding the
/// values into it gives the same plan.
pub(super) fn optimize(
    state: &SessionState,
    plan: &LogicalPlan,
    params: Option<&ParamValues>,
    keep: Option<(&KeptPlans, &SharedState)>,
) -> Result<LogicalPlan> {
    let optimized = state.optimize(&bind(plan.clone(), params)?)?;
    if let Some((kept, under)) = keep {
        let unbound = match params {
            // Without parameters the two plans are one.
            None => Some(optimized.clone()),
            Some(_) => state
                .optimize(plan)
                .ok()
                .filter(|unbound| bind(unbound.clone(), params).is_ok_and(|b| b == optimized)),
        };
        kept.keep_optimized(under, unbound);
    }
    Ok(optimized)
}

/// `plan` with `params` in place of its placeholders, those of the sub-plans
/// that federation hands to a remote source included.
pub(super) fn bind(plan: LogicalPlan, params: Option<&ParamValues>) -> Result<LogicalPlan> {
    let Some(params) = params else {
        return Ok(plan);
    };
    plan.replace_params_with_values(params)?
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::Extension(extension) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(federated) = extension.node.as_any().downcast_ref::<FederatedPlanNode>()
            else {
                return Ok(Transformed::no(node));
            };
            let inner = bind(federated.plan.clone(), Some(params))?;
            Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                node: Arc::new(FederatedPlanNode::new(
                    inner,
                    Arc::clone(&federated.planner),
                )),
            })))
        })
        .map(|t| t.data)
}

/// Whether `ok` holds for every node of `expr`: the walk stops at the first
/// node it fails.
fn every_node(expr: &Expr, ok: impl Fn(&Expr) -> bool) -> Result<TreeNodeRecursion> {
    expr.apply(|e| {
        Ok(if ok(e) {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })
}

/// Whether a plan walk went through to its end (no node stopped it).
fn walked_through(walked: Result<TreeNodeRecursion>) -> bool {
    matches!(
        walked,
        Ok(TreeNodeRecursion::Continue | TreeNodeRecursion::Jump)
    )
}

/// Whether every function `plan` calls (in its sub-queries too) is immutable:
/// a stable one such as `now()` is folded into a constant by the optimizer.
fn calls_only_immutable_functions(plan: &LogicalPlan) -> bool {
    let immutable = |e: &Expr| {
        let volatility = match e {
            Expr::ScalarFunction(f) => f.func.signature().volatility,
            Expr::AggregateFunction(f) => f.func.signature().volatility,
            Expr::WindowFunction(f) => f.fun.signature().volatility,
            _ => return true,
        };
        volatility == Volatility::Immutable
    };
    walked_through(
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|expr| every_node(expr, immutable))
        }),
    )
}

/// Whether `plan` reads no table and has no parameter, subquery, aggregate
/// or function that is not immutable: its rows are the same every time.
fn is_constant(plan: &LogicalPlan) -> bool {
    let constant = |e: &Expr| match e {
        Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Immutable,
        Expr::Placeholder(_)
        | Expr::ScalarSubquery(_)
        | Expr::Exists(_)
        | Expr::InSubquery(_)
        | Expr::SetComparison(_)
        | Expr::OuterReferenceColumn(..)
        | Expr::AggregateFunction(_)
        | Expr::WindowFunction(_) => false,
        _ => true,
    };
    walked_through(plan.apply(|node| {
        if !matches!(
            node,
            LogicalPlan::Projection(_)
                | LogicalPlan::EmptyRelation(_)
                | LogicalPlan::Values(_)
                | LogicalPlan::SubqueryAlias(_)
        ) {
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|expr| every_node(expr, constant))
    }))
}

#[cfg(test)]
mod tests {
    use datafusion::common::ScalarValue;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn logical(ctx: &SessionContext, sql: &str) -> LogicalPlan {
        ctx.state().create_logical_plan(sql).await.unwrap()
    }

    fn snapshot(ctx: &SessionContext) -> SharedState {
        Arc::new(tokio::sync::Mutex::new(ctx.state()))
    }

    fn values(v: &[i64]) -> ParamValues {
        ParamValues::List(
            v.iter()
                .map(|v| ScalarValue::Int64(Some(*v)).into())
                .collect(),
        )
    }

    /// Plan `kept`'s statement once with `params` as the engine does, keeping
    /// what may be kept.
    async fn run_once(
        kept: &KeptPlans,
        state: &SharedState,
        params: Option<&ParamValues>,
    ) -> LogicalPlan {
        let guard = state.lock().await;
        let plan = kept.logical(0).unwrap();
        match kept.for_run(state) {
            ForRun::Optimized(optimized) => bind(optimized, params).unwrap(),
            ForRun::TryKeeping => optimize(&guard, &plan, params, Some((kept, state))).unwrap(),
            ForRun::Nothing => optimize(&guard, &plan, params, None).unwrap(),
            ForRun::Physical(_) => panic!("not a constant statement"),
        }
    }

    async fn ctx_with_table() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (id BIGINT, name VARCHAR) AS VALUES (1, 'one'), (2, 'two'), (3, 'three')")
            .await
            .unwrap();
        ctx
    }

    async fn names(ctx: &SessionContext, plan: LogicalPlan) -> Vec<String> {
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        text.lines()
            .skip(3)
            .filter(|l| !l.starts_with('+'))
            .map(|l| l.trim_matches(|c| c == '|' || c == ' ').to_string())
            .collect()
    }

    #[tokio::test]
    async fn a_lookup_keeps_its_optimised_plan_and_binds_each_executions_values() {
        let ctx = ctx_with_table().await;
        let plan = logical(&ctx, "SELECT name FROM t WHERE id = $1").await;
        let kept = KeptPlans::new(plan, 0);
        let state = snapshot(&ctx);
        let first = run_once(&kept, &state, Some(&values(&[2]))).await;
        assert_eq!(names(&ctx, first).await, ["two"]);
        assert!(matches!(kept.for_run(&state), ForRun::Optimized(_)));
        for (id, want) in [(3, vec!["three"]), (1, vec!["one"]), (7, vec![])] {
            let again = run_once(&kept, &state, Some(&values(&[id]))).await;
            assert_eq!(names(&ctx, again).await, want, "id {id}");
        }
        // Another snapshot (a SET): made again.
        assert!(matches!(kept.for_run(&snapshot(&ctx)), ForRun::TryKeeping));
        assert!(kept.logical(1).is_none());
        // Planned again after a DDL: nothing kept from before.
        assert!(matches!(kept.for_run(&state), ForRun::TryKeeping));
        let _ = run_once(&kept, &state, Some(&values(&[2]))).await;
        assert!(matches!(kept.for_run(&state), ForRun::Optimized(_)));
        kept.replan(kept.logical(0).unwrap(), 1);
        assert!(matches!(kept.for_run(&state), ForRun::TryKeeping));
    }

    #[tokio::test]
    async fn plans_that_binding_would_change_are_not_kept() {
        let ctx = ctx_with_table().await;
        // The optimizer pushes `LIMIT 2` into the scan, but not `LIMIT $1`.
        let plan = logical(&ctx, "SELECT name FROM t ORDER BY id LIMIT $1").await;
        let kept = KeptPlans::new(plan, 0);
        let state = snapshot(&ctx);
        let first = run_once(&kept, &state, Some(&values(&[2]))).await;
        assert_eq!(names(&ctx, first).await, ["one", "two"]);
        assert!(matches!(kept.for_run(&state), ForRun::Nothing));
        let again = run_once(&kept, &state, Some(&values(&[1]))).await;
        assert_eq!(names(&ctx, again).await, ["one"]);
        // `now()` is folded at optimisation: never kept, never tried.
        let plan = logical(&ctx, "SELECT now() FROM t WHERE id = $1").await;
        let kept = KeptPlans::new(plan, 0);
        assert!(matches!(kept.for_run(&state), ForRun::Nothing));
    }

    #[tokio::test]
    async fn only_plans_whose_rows_never_change_are_constant() {
        let ctx = ctx_with_table().await;
        for sql in [
            "SELECT 1 + 1, 'a' || 'b'",
            "SELECT abs(-3) AS three",
            "SELECT x FROM (VALUES (1), (2)) AS v(x)",
        ] {
            assert!(is_constant(&logical(&ctx, sql).await), "{sql}");
        }
        for sql in [
            "SELECT now()",
            "SELECT random()",
            "SELECT $1",
            "SELECT id FROM t",
            "SELECT count(*) FROM (VALUES (1)) AS v(x)",
            "SELECT (SELECT max(id) FROM t)",
        ] {
            assert!(!is_constant(&logical(&ctx, sql).await), "{sql}");
        }
    }

    #[tokio::test]
    async fn a_kept_physical_plan_runs_again_only_under_its_snapshot() {
        let ctx = SessionContext::new();
        let kept = KeptPlans::new(logical(&ctx, "SELECT 1 + 1").await, 0);
        let state = snapshot(&ctx);
        assert!(matches!(kept.for_run(&state), ForRun::TryKeeping));
        let plan = kept.logical(0).unwrap();
        let physical = ctx.state().create_physical_plan(&plan).await.unwrap();
        kept.keep_physical(&state, &physical);
        let ForRun::Physical(again) = kept.for_run(&state) else {
            panic!("kept");
        };
        let rows = datafusion::physical_plan::collect(again, ctx.task_ctx())
            .await
            .unwrap();
        assert_eq!(rows[0].num_rows(), 1);
        // A SET makes a new snapshot, which drops the kept plan: planned again.
        assert!(!matches!(
            kept.for_run(&snapshot(&ctx)),
            ForRun::Physical(_)
        ));
        assert!(!matches!(kept.for_run(&state), ForRun::Physical(_)));
        kept.keep_physical(&state, &physical);
        assert!(matches!(kept.for_run(&state), ForRun::Physical(_)));
        kept.replan(plan, 1);
        assert!(!matches!(kept.for_run(&state), ForRun::Physical(_)));
    }
}
