//! Resource groups (Trino's anchor): each group lets `max_running` of its
//! queries run at once and `max_queued` more wait, first come first served;
//! one more is refused with SQLSTATE 53000 at once rather than piling up.
//! Dashboards in a group of their own keep answering while another group's
//! heavy scans wait for their turn. A group may also have a share of the
//! CPU (`cpu_share`: each of its queries runs on that fraction of the
//! partitions, so of the cores, a query would otherwise use) and of memory
//! (`memory_share`: its running queries together hold at most that fraction
//! of the memory pool; see [`super::group_memory`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::cancel::QueryCancel;
use super::group_memory::GroupMemoryPool;
use crate::error::{SqlError, SqlResult, sqlstate};

/// The group of queries no other group selects; unlimited unless configured.
pub const GLOBAL_GROUP: &str = "global";

/// The session setting naming a query's group.
pub const GROUP_SETTING: &str = "vivace.resource_group";

/// One configured group (`[resource_groups.NAME]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceGroupSpec {
    /// The group's name.
    pub name: String,
    /// Queries of the group running at once; none: unlimited.
    pub max_running: Option<usize>,
    /// Queries of the group waiting; none: unlimited.
    pub max_queued: Option<usize>,
    /// Users whose queries join the group (`*` matches any text).
    pub users: Vec<String>,
    /// Client `application_name`s whose queries join the group (`*` matches any text).
    pub applications: Vec<String>,
    /// The fraction (0 to 1] of the partitions a query would run on that the
    /// group's queries get; none: all.
    pub cpu_share: Option<f64>,
    /// The fraction (0 to 1] of the memory pool the group's running queries
    /// may hold together; none: the whole pool.
    pub memory_share: Option<f64>,
}

/// A group's occupancy, for the web page and the metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupStatus {
    /// The group's name.
    pub name: String,
    /// Queries running now.
    pub running: usize,
    /// Queries waiting now.
    pub queued: usize,
    /// Its limit on running queries.
    pub max_running: Option<usize>,
    /// Its limit on waiting queries.
    pub max_queued: Option<usize>,
}

struct Group {
    spec: ResourceGroupSpec,
    /// The runtime its queries run with when it has a memory share.
    runtime: Option<Arc<RuntimeEnv>>,
    slots: Option<Arc<Semaphore>>,
    running: Arc<AtomicUsize>,
    queued: AtomicUsize,
}

/// Every group, `global` among them.
pub struct ResourceGroups {
    groups: Vec<Group>,
}

/// A query's place in its group: held while it runs, given back when dropped.
#[derive(Debug)]
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
    running: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ResourceGroups {
    /// The configured groups (by name), plus an unlimited `global` unless
    /// configured; memory shares are of `runtime`'s pool, `memory_limit`
    /// bytes (a group with a memory share needs a limit).
    pub fn new(
        mut specs: Vec<ResourceGroupSpec>,
        runtime: &Arc<RuntimeEnv>,
        memory_limit: Option<usize>,
    ) -> anyhow::Result<Self> {
        if !specs.iter().any(|s| s.name == GLOBAL_GROUP) {
            specs.push(ResourceGroupSpec {
                name: GLOBAL_GROUP.into(),
                max_running: None,
                max_queued: None,
                users: Vec::new(),
                applications: Vec::new(),
                cpu_share: None,
                memory_share: None,
            });
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        let groups = specs
            .into_iter()
            .map(|spec| {
                let runtime = match spec.memory_share {
                    None => None,
                    Some(share) => {
                        let Some(limit) = memory_limit else {
                            anyhow::bail!(
                                "resource_groups.{}.memory_share needs memory_limit: a share of an unbounded pool bounds nothing",
                                spec.name
                            );
                        };
                        let pool = GroupMemoryPool::new(
                            &spec.name,
                            Arc::clone(&runtime.memory_pool),
                            (limit as f64 * share) as usize,
                        );
                        Some(
                            RuntimeEnvBuilder::from_runtime_env(runtime)
                                .with_memory_pool(Arc::new(pool))
                                .build_arc()?,
                        )
                    }
                };
                Ok(Group {
                    slots: spec.max_running.map(|n| Arc::new(Semaphore::new(n))),
                    runtime,
                    spec,
                    running: Arc::default(),
                    queued: AtomicUsize::new(0),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { groups })
    }

    /// `state` as a query of `group` runs with: its CPU share of the
    /// partitions and its memory share of the pool.
    pub fn session_for(&self, group: &str, mut state: SessionState) -> SessionState {
        let Some(group) = self.groups.iter().find(|g| g.spec.name == group) else {
            return state;
        };
        if let Some(share) = group.spec.cpu_share {
            let execution = &mut state.config_mut().options_mut().execution;
            execution.target_partitions =
                ((execution.target_partitions as f64 * share).round() as usize).max(1);
        }
        match &group.runtime {
            Some(runtime) => SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(Arc::clone(runtime))
                .build(),
            None => state,
        }
    }

    /// The group of a query: the one `named` by the session's setting, else
    /// the first listing `user` or `application`, else `global`.
    pub fn select(&self, named: Option<&str>, user: &str, application: &str) -> SqlResult<&str> {
        if let Some(named) = named.filter(|n| !n.is_empty()) {
            return self
                .groups
                .iter()
                .find(|g| g.spec.name == named)
                .map(|g| g.spec.name.as_str())
                .ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!(
                            "resource group \"{named}\" does not exist (set {GROUP_SETTING} to one of: {})",
                            self.names().join(", ")
                        ),
                    )
                });
        }
        let chosen = self.groups.iter().find(|g| {
            g.spec.users.iter().any(|p| matches(p, user))
                || g.spec.applications.iter().any(|p| matches(p, application))
        });
        Ok(chosen.map_or(GLOBAL_GROUP, |g| g.spec.name.as_str()))
    }

    /// The groups' names.
    pub fn names(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.spec.name.as_str()).collect()
    }

    /// Wait for a place in `group` (calling `queued` first when the query has
    /// to wait), unless its queue is full (53000) or `cancel` fires first.
    pub async fn admit(
        &self,
        group: &str,
        cancel: &QueryCancel,
        queued: impl FnOnce(),
    ) -> SqlResult<Admission> {
        let Some(group) = self.groups.iter().find(|g| g.spec.name == group) else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("resource group \"{group}\" does not exist"),
            ));
        };
        let admitted = |slot| {
            group.running.fetch_add(1, Ordering::SeqCst);
            Admission {
                _slot: slot,
                running: group.running.clone(),
            }
        };
        let Some(slots) = &group.slots else {
            return Ok(admitted(None));
        };
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Ok(admitted(Some(slot)));
        }
        let waiting = group.queued.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&group.queued);
        if group.spec.max_queued.is_some_and(|max| waiting >= max) {
            return Err(SqlError::new(
                sqlstate::INSUFFICIENT_RESOURCES,
                format!(
                    "too many queued queries in resource group \"{}\" (max_queued {})",
                    group.spec.name,
                    group.spec.max_queued.unwrap_or_default()
                ),
            ));
        }
        queued();
        tokio::select! {
            slot = slots.clone().acquire_owned() => Ok(admitted(Some(slot.map_err(|_| {
                SqlError::new(sqlstate::INTERNAL_ERROR, "the resource group was closed")
            })?))),
            error = cancel.cancelled() => Err(error),
        }
    }

    /// Every group's occupancy.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .map(|g| GroupStatus {
                name: g.spec.name.clone(),
                running: g.running.load(Ordering::SeqCst),
                queued: g.queued.load(Ordering::SeqCst),
                max_running: g.spec.max_running,
                max_queued: g.spec.max_queued,
            })
            .collect()
    }
}

/// Takes a query off its group's queue count when it leaves the queue.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether `text` matches `pattern`, in which `*` stands for any text.
fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, max_running: usize, max_queued: usize) -> ResourceGroupSpec {
        ResourceGroupSpec {
            name: name.into(),
            max_running: Some(max_running),
            max_queued: Some(max_queued),
            users: vec!["dash*".into()],
            applications: vec!["Metabase*".into(), "*grafana*".into()],
            cpu_share: None,
            memory_share: None,
        }
    }

    fn groups(specs: Vec<ResourceGroupSpec>, memory_limit: Option<usize>) -> ResourceGroups {
        ResourceGroups::new(specs, &Arc::new(RuntimeEnv::default()), memory_limit).unwrap()
    }

    #[test]
    fn shares_shape_the_session_a_query_runs_with() {
        let mut adhoc = spec("adhoc", 1, 1);
        adhoc.cpu_share = Some(0.25);
        adhoc.memory_share = Some(0.5);
        let groups = groups(vec![adhoc], Some(1 << 20));
        let mut state = SessionStateBuilder::new().build();
        state.config_mut().options_mut().execution.target_partitions = 8;
        let shared = groups.session_for("adhoc", state.clone());
        assert_eq!(shared.config().target_partitions(), 2);
        assert!(matches!(
            shared.runtime_env().memory_pool.memory_limit(),
            datafusion::execution::memory_pool::MemoryLimit::Finite(limit) if limit == 1 << 19
        ));
        let global = groups.session_for(GLOBAL_GROUP, state);
        assert_eq!(global.config().target_partitions(), 8);
        // A memory share needs a bounded pool.
        let mut unbounded = spec("adhoc", 1, 1);
        unbounded.memory_share = Some(0.5);
        let refused = ResourceGroups::new(vec![unbounded], &Arc::new(RuntimeEnv::default()), None);
        assert!(refused.is_err());
    }

    #[test]
    fn patterns_match_with_stars() {
        assert!(matches("Metabase*", "Metabase v0.50"));
        assert!(!matches("Metabase*", "metabase"));
        assert!(matches("*grafana*", "my grafana 11"));
        assert!(matches("psql", "psql"));
        assert!(!matches("psql", "psqlx"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxcyyb"));
        assert!(matches("*", ""));
    }

    #[test]
    fn queries_are_selected_by_setting_user_then_application() {
        let groups = groups(vec![spec("dashboards", 1, 1)], None);
        assert_eq!(
            groups.select(None, "dashboard", "psql").unwrap(),
            "dashboards"
        );
        assert_eq!(
            groups.select(None, "ann", "Metabase v1").unwrap(),
            "dashboards"
        );
        assert_eq!(groups.select(None, "ann", "psql").unwrap(), GLOBAL_GROUP);
        assert_eq!(
            groups.select(Some("global"), "dashboard", "").unwrap(),
            GLOBAL_GROUP
        );
        let err = groups.select(Some("nope"), "ann", "psql").unwrap_err();
        assert_eq!(err.code, sqlstate::UNDEFINED_OBJECT);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_53000_and_places_come_back() {
        let groups = Arc::new(groups(vec![spec("dashboards", 1, 1)], None));
        let cancel = QueryCancel::default();
        let first = groups.admit("dashboards", &cancel, || {}).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let groups = groups.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                groups
                    .admit("dashboards", &cancel, move || {
                        let _ = tx.send(());
                    })
                    .await
                    .map(drop)
            })
        };
        rx.await.unwrap();
        assert_eq!(groups.status()[0].queued, 1);
        let err = groups
            .admit("dashboards", &cancel, || {})
            .await
            .unwrap_err();
        assert_eq!(err.code, sqlstate::INSUFFICIENT_RESOURCES);
        drop(first);
        waiter.await.unwrap().unwrap();
        let status = &groups.status()[0];
        assert_eq!((status.running, status.queued), (0, 0));
    }
}
