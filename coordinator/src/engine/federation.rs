//! Federation: datafusion-federation's optimizer rule and query planner, wired
//! into the session state, with the `vivace.pushdown` session setting.
//!
//! The federation rule replaces each maximal sub-plan over one remote source by a
//! `Federated` node that runs as one remote statement. `SET vivace.pushdown = off`
//! skips the rule, so remote tables are scanned whole and DataFusion filters,
//! joins and aggregates locally (the same rows, for checking pushdown).
//!
//! Which tables' scans can be shipped to workers is the connectors' answer
//! (`ConnectorRegistry::ships`; their codecs, task counts and splits come from
//! the same list). The catalog tables (`pg_catalog`, `information_schema`,
//! `system`) and table functions live in the coordinator's memory: a query that
//! reads any of those, or a connector's table whose scans cannot ship, is
//! planned on the coordinator alone ([`CoordinatorFederation`]), and `EXPLAIN`
//! names the tables that kept it there ([`coordinator_only_tables`]); every
//! other query goes through the distributed planner.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::optimizer::{ApplyOrder, Optimizer};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_federation::{FederatedQueryPlanner, FederationOptimizerRule, get_table_source};
use vivace_connectors::ConnectorRegistry;

/// Vivace's own session settings that live in DataFusion's config (`vivace.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VivaceOptions {
    /// `vivace.pushdown`: push sub-plans to remote sources (default on).
    pub pushdown: bool,
    /// `vivace.resource_group`: the resource group the session's queries
    /// join (default none: chosen by user and application).
    pub resource_group: String,
    /// `vivace.progress_notices`: while a query produces its first row, send
    /// a NOTICE with its progress every few seconds (default off).
    pub progress_notices: bool,
}

impl Default for VivaceOptions {
    fn default() -> Self {
        Self {
            pushdown: true,
            resource_group: String::new(),
            progress_notices: false,
        }
    }
}

/// An on/off setting's value, in PostgreSQL's spellings.
fn switch(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        other => Err(DataFusionError::Configuration(format!(
            "vivace.{key} must be on or off, not '{other}'"
        ))),
    }
}

impl ConfigExtension for VivaceOptions {
    const PREFIX: &'static str = "vivace";
}

// Implemented by hand rather than with DataFusion's `extensions_options!` so that
// the PostgreSQL spellings `on` / `off` are accepted, as for any other setting.
impl ExtensionOptions for VivaceOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "pushdown" => {
                self.pushdown = switch(key, value)?;
                Ok(())
            }
            "progress_notices" => {
                self.progress_notices = switch(key, value)?;
                Ok(())
            }
            "resource_group" => {
                self.resource_group = value.trim().to_string();
                Ok(())
            }
            other => Err(DataFusionError::Configuration(format!(
                "unrecognized configuration parameter \"vivace.{other}\""
            ))),
        }
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: "vivace.pushdown".into(),
                value: Some(if self.pushdown { "on" } else { "off" }.into()),
                description: "Push filters, joins and aggregates to remote sources",
            },
            ConfigEntry {
                key: "vivace.resource_group".into(),
                value: Some(self.resource_group.clone()),
                description: "The resource group the session's queries join",
            },
            ConfigEntry {
                key: "vivace.progress_notices".into(),
                value: Some(if self.progress_notices { "on" } else { "off" }.into()),
                description: "Send a NOTICE with a query's progress every few seconds until its first row",
            },
        ]
    }
}

/// DataFusion's default optimizer rules with federation inserted right after
/// `scalar_subquery_to_join` (as datafusion-federation's own defaults do), behind
/// the `vivace.pushdown` switch.
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "scalar_subquery_to_join")
        .map_or(0, |i| i + 1);
    rules.insert(at, Arc::new(PushdownSwitch(FederationOptimizerRule::new())));
    rules
}

/// The query planner to install before the distributed planner wraps it.
pub fn query_planner() -> Arc<dyn QueryPlanner + Send + Sync> {
    Arc::new(FederatedQueryPlanner::new())
}

/// Runs the federation rule only when `vivace.pushdown` is on, and only on plans
/// whose meaning survives being rendered as SQL (see [`has_null_aware_join`]).
#[derive(Debug)]
struct PushdownSwitch(FederationOptimizerRule);

impl OptimizerRule for PushdownSwitch {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.0.apply_order()
    }

    #[allow(deprecated)]
    fn supports_rewrite(&self) -> bool {
        self.0.supports_rewrite()
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let pushdown = config
            .options()
            .extensions
            .get::<VivaceOptions>()
            .is_none_or(|o| o.pushdown);
        if pushdown && !has_null_aware_join(&plan)? {
            self.0.rewrite(plan, config)
        } else {
            Ok(Transformed::no(plan))
        }
    }
}

/// Guard: `x NOT IN (subquery)` becomes a null-aware anti join, which the SQL
/// unparser renders as `NOT EXISTS` — wrong when the subquery yields a NULL.
/// Such plans are not federated; their remote tables are scanned and DataFusion
/// evaluates the anti join itself.
fn has_null_aware_join(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|node| Ok(matches!(node, LogicalPlan::Join(join) if join.null_aware)))
}

/// Plans queries that read coordinator-local tables (or tables whose scans
/// cannot ship) on the coordinator, and all others with `distributed`.
pub struct CoordinatorFederation {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
    local: FederatedQueryPlanner,
    connectors: ConnectorRegistry,
}

impl std::fmt::Debug for CoordinatorFederation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoordinatorFederation")
    }
}

impl CoordinatorFederation {
    /// Wrap the distributed planner; `connectors` say which tables ship.
    pub fn new(
        distributed: Arc<dyn QueryPlanner + Send + Sync>,
        connectors: ConnectorRegistry,
    ) -> Self {
        Self {
            distributed,
            local: FederatedQueryPlanner::new(),
            connectors,
        }
    }
}

#[async_trait]
impl QueryPlanner for CoordinatorFederation {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !coordinator_only_tables(logical_plan, &self.connectors)?.is_empty() {
            self.local.create_physical_plan(logical_plan, session).await
        } else {
            self.distributed
                .create_physical_plan(logical_plan, session)
                .await
        }
    }
}

/// Why `plan` runs on the coordinator alone: each table it reads (subqueries
/// included) whose scans cannot go to workers, with the reason. Empty when the
/// plan can be distributed.
pub fn coordinator_only_tables(
    plan: &LogicalPlan,
    connectors: &ConnectorRegistry,
) -> Result<Vec<(String, &'static str)>> {
    let mut local = Vec::new();
    plan.apply_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = node else {
            return Ok(TreeNodeRecursion::Continue);
        };
        // A remote table: federated (pushdown on) or scanned whole (off).
        if get_table_source(&scan.source)?.is_some() {
            return Ok(TreeNodeRecursion::Continue);
        }
        let reason = match source_as_provider(&scan.source)
            .ok()
            .and_then(|p| connectors.ships(p.as_ref()))
        {
            Some(true) => return Ok(TreeNodeRecursion::Continue),
            Some(false) => "its connector cannot ship its scans to workers",
            None => "it lives in the coordinator's memory",
        };
        local.push((scan.table_name.to_string(), reason));
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushdown_setting_takes_postgres_spellings() {
        let mut o = VivaceOptions::default();
        assert!(o.pushdown);
        o.set("pushdown", "OFF").unwrap();
        assert!(!o.pushdown);
        assert_eq!(o.entries()[0].value.as_deref(), Some("off"));
        o.set("pushdown", "on").unwrap();
        assert!(o.pushdown);
        assert!(o.set("pushdown", "maybe").is_err());
        assert!(o.set("colour", "red").is_err());
        let rules = optimizer_rules();
        let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
        let at = names.iter().position(|n| *n == "scalar_subquery_to_join");
        assert_eq!(names[at.unwrap() + 1], "federation_optimizer_rule");
    }
}
