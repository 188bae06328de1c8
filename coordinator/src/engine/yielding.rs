//! Joins that yield. DataFusion's operators give the thread back to the
//! query runtime when their sources' batches use up the task's Tokio budget
//! (`EnsureCooperative` wraps sources and exchanges). A join can emit
//! thousands of batches from one input batch (a key shared by many rows, a
//! nested-loop join's cross product) without reading its inputs again, so
//! its task never yields: two such tasks held both threads of a 2-core
//! runtime, and every other session's query (even `SELECT 1`) waited until
//! they ended. [`YieldingJoins`] puts DataFusion's [`CooperativeExec`] above
//! every join, so each batch a join emits spends the budget and its task
//! yields every 128 batches, letting the other queries' tasks run.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};

/// The physical optimizer rule that wraps each join in a [`CooperativeExec`].
#[derive(Debug, Default)]
pub struct YieldingJoins;

/// Whether `plan` is a join: an operator whose output is not bounded by its
/// inputs' batches.
fn is_join(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<HashJoinExec>()
        || plan.is::<NestedLoopJoinExec>()
        || plan.is::<CrossJoinExec>()
        || plan.is::<SortMergeJoinExec>()
        || plan.is::<SymmetricHashJoinExec>()
}

fn is_cooperative(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<CooperativeExec>()
}

/// `child` wrapped, unless it is no join or its parent is the wrapper.
fn wrap(child: &Arc<dyn ExecutionPlan>, parent_wraps: bool) -> Option<Arc<dyn ExecutionPlan>> {
    (is_join(child) && !parent_wraps)
        .then(|| Arc::new(CooperativeExec::new(Arc::clone(child))) as Arc<dyn ExecutionPlan>)
}

impl PhysicalOptimizerRule for YieldingJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = plan
            .transform_up(|node| {
                let parent_wraps = is_cooperative(&node);
                let children: Vec<Arc<dyn ExecutionPlan>> =
                    node.children().into_iter().cloned().collect();
                let wrapped: Vec<Option<Arc<dyn ExecutionPlan>>> =
                    children.iter().map(|c| wrap(c, parent_wraps)).collect();
                if wrapped.iter().all(Option::is_none) {
                    return Ok(Transformed::no(node));
                }
                let children = children
                    .into_iter()
                    .zip(wrapped)
                    .map(|(child, wrapped)| wrapped.unwrap_or(child))
                    .collect();
                Ok(Transformed::yes(replace_children_if_necessary(
                    node, children,
                )?))
            })?
            .data;
        Ok(wrap(&plan, false).unwrap_or(plan))
    }

    fn name(&self) -> &str {
        "vivace_yielding_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// The operator names of `plan`, top down, one per line, indented.
    fn shape(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
        fn walk(plan: &Arc<dyn ExecutionPlan>, depth: usize, out: &mut Vec<String>) {
            out.push(format!("{}{}", "  ".repeat(depth), plan.name()));
            for child in plan.children() {
                walk(child, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        walk(plan, 0, &mut out);
        out
    }

    #[tokio::test]
    async fn every_join_is_wrapped_once() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1, 2), (3, 4)")
            .await
            .unwrap();
        let plan = ctx
            .sql("SELECT count(*) FROM t a JOIN t b ON a.column1 = b.column1, t c")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let wrappers = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.trim_start() == "CooperativeExec")
                .count()
        };
        let before = wrappers(&shape(&plan));
        let config = ConfigOptions::default();
        let once = YieldingJoins.optimize(plan, &config).unwrap();
        let twice = YieldingJoins.optimize(Arc::clone(&once), &config).unwrap();
        let lines = shape(&twice);
        assert_eq!(shape(&once), lines, "a second pass changes nothing");
        let joins: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().ends_with("JoinExec"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(joins.len(), 2, "{lines:#?}");
        for i in joins {
            assert_eq!(lines[i - 1].trim_start(), "CooperativeExec", "{lines:#?}");
        }
        assert_eq!(wrappers(&lines), before + 2, "{lines:#?}");
    }
}
