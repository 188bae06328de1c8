//! One client connection's session: its own DataFusion context and settings over
//! the shared engine. Turns commands into plans and runs them.
//!
//! Beside it, what a session holds and parses: [`statement`] (the statement
//! parser and its commands), [`ddl`] (CREATE / SHOW CREATE of external
//! tables), [`cursor`], [`temp_tables`] and [`copy`].

pub mod copy;
pub mod cursor;
pub mod ddl;
pub mod sql_text;
pub mod statement;
pub mod table_functions;
pub mod temp_tables;
pub mod writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::execution::{SendableRecordBatchStream, SessionState};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use futures::StreamExt;

use crate::engine::cancel::{QueryCancel, SessionCancel};
use crate::engine::groups::Admission;
use crate::engine::planning;
use crate::engine::system_queries::{CancelQuery, ViewerSource};
use crate::engine::tracker::{NewQuery, QueryHandle, QueryRecord};
use crate::engine::{DdlOutcome, Engine, KeptPlans, QueryState};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::pgcompat::settings::{SERVER_SETTING_PREFIX, Settings};
use crate::pgcompat::{self, plan::NamedPlan, statement::colnames};
use crate::session::copy::CopyOptions;
use crate::session::cursor::{Cursors, FetchCount};
use crate::session::statement::{Command, TransactionOp};
use crate::session::temp_tables::{SessionCatalogs, TEMP_SCHEMA};
use vivace_catalog::DEFAULT_SCHEMA;

/// A statement ready to run: a DataFusion plan, or a command Vivace runs itself.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Rows come from this plan (queries, and SHOW/DESCRIBE rendered to batches).
    Plan(QueryPlan),
    /// DDL, SET, transaction control: answered with a command tag.
    Command(Command),
    /// `DECLARE name CURSOR FOR query`: start the query, keep its rows.
    Declare {
        /// Cursor name.
        name: String,
        /// The cursor's query.
        query: QueryPlan,
        /// `WITH HOLD`.
        hold: bool,
    },
    /// `FETCH`: rows of an open cursor.
    Fetch {
        /// Cursor name.
        name: String,
        /// How many rows.
        count: FetchCount,
        /// The cursor's columns, for Describe.
        schema: SchemaRef,
    },
    /// `INSERT` into one of the session's temp tables.
    Insert(LogicalPlan),
    /// `INSERT [OVERWRITE]` into a table: a write, its `$n` bound at execution.
    Write(Box<writes::PlannedWrite>),
    /// `PREPARE name AS query`: the planned query, stored under `name` when run.
    Store {
        /// The statement's name.
        name: String,
        /// Its plan, with `$n` placeholders.
        query: QueryPlan,
    },
    /// `COPY (query) TO STDOUT`.
    Copy {
        /// The rows to write.
        query: QueryPlan,
        /// Their format.
        options: CopyOptions,
    },
}

/// A query plan and the PostgreSQL names of its result columns.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// What DataFusion runs.
    pub plan: LogicalPlan,
    /// Result column names as PostgreSQL gives them, when they differ from the plan's.
    pub names: Option<Arc<Vec<String>>>,
    /// Parameter types to report and decode, when a replaced driver query needs
    /// types DataFusion does not infer (asyncpg's `oid[]`).
    pub parameter_types: Option<&'static [pgwire::api::Type]>,
    /// The values bound to the plan's `$n` parameters (an extended-protocol
    /// Execute), bound when it is planned.
    pub params: Option<datafusion::common::ParamValues>,
    /// Where a prepared statement keeps its plans between executions
    /// ([`KeptPlans`]).
    pub kept: Option<Arc<KeptPlans>>,
}

impl QueryPlan {
    /// A plan whose column names are sent as they are.
    pub fn new(plan: LogicalPlan) -> Self {
        Self {
            plan,
            names: None,
            parameter_types: None,
            params: None,
            kept: None,
        }
    }

    /// The result schema as clients see it (PostgreSQL's column names).
    pub fn output_schema(&self) -> SchemaRef {
        let schema: SchemaRef = Arc::new(self.plan.schema().as_arrow().clone());
        match &self.names {
            Some(names) => colnames::rename_schema(&schema, names),
            None => schema,
        }
    }
}

/// A running query: its schema and its batches, the first one already computed
/// (so a failure before any row reaches the client can still be retried).
pub struct QueryStream {
    /// Output schema.
    pub schema: SchemaRef,
    /// Every batch, in order.
    pub batches: SendableRecordBatchStream,
    /// Command tag sent after the rows (`SELECT`, `FETCH`).
    pub tag: &'static str,
    /// The query the rows belong to, told how many rows and bytes were sent.
    pub record: Option<Arc<QueryRecord>>,
}

/// What running a statement produced.
pub enum Outcome {
    /// Rows to stream to the client, batch by batch.
    Rows(QueryStream),
    /// Rows to stream as `COPY ... TO STDOUT` data.
    Copy {
        /// The rows.
        rows: QueryStream,
        /// Their format.
        options: CopyOptions,
    },
    /// A command tag (`CREATE EXTERNAL TABLE`, `SET`, ...), with a notice to send first.
    Tag {
        /// The command tag.
        tag: &'static str,
        /// A PostgreSQL-style NOTICE (`relation "x" already exists, skipping`).
        notice: Option<SqlError>,
    },
    /// Transaction control.
    Transaction(TransactionOp),
    /// Rows inserted into a temp table.
    Inserted(u64),
    Selected(u64),
}

/// Per-connection state.
pub struct Session {
    engine: Arc<Engine>,
    /// Statements of SQL-level `PREPARE`, by name.
    statements: Mutex<HashMap<String, QueryPlan>>,
    ctx: SessionContext,
    settings: Arc<Mutex<Settings>>,
    cancel: Arc<SessionCancel>,
    cursors: tokio::sync::Mutex<Cursors>,
    catalogs: Arc<SessionCatalogs>,
    /// Set once the client has logged in: who `system.queries` shows.
    viewer_set: std::sync::Once,
    /// The place in a resource group the statements of the current message
    /// share, while one of their results is still being read: a message's
    /// later statements run before its earlier results are sent, so waiting
    /// for a place of their own could wait for ever.
    admission: Mutex<(String, std::sync::Weak<Admission>)>,
    /// The snapshot queries are planned with, and the resource group it was
    /// made for; dropped whenever the session's state changes.
    query_state: Mutex<Option<(String, QueryState)>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::SESSIONS).decrement(1.0);
    }
}

impl Session {
    /// A new session over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        let catalogs = Arc::new(SessionCatalogs::new(engine.catalogs()));
        let ctx = engine.new_session_context(catalogs.clone());
        let settings = Arc::new(Mutex::new(Settings::with_server_settings(
            engine.server_settings(),
        )));
        for function in crate::pgcompat::functions::session_functions(settings.clone()) {
            ctx.register_udf(function);
        }
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            CancelQuery::new(engine.tracker().clone(), viewer_source(&engine, &settings)),
        ));
        metrics::gauge!(crate::telemetry::SESSIONS).increment(1.0);
        Self {
            engine,
            statements: Mutex::default(),
            ctx,
            settings,
            cancel: Arc::default(),
            cursors: Default::default(),
            catalogs,
            viewer_set: std::sync::Once::new(),
            admission: Mutex::default(),
            query_state: Mutex::default(),
        }
    }

    /// The snapshot of the session's state that queries of resource `group`
    /// are planned with, made once per change of the session's state.
    fn query_state(&self, group: &str) -> SqlResult<QueryState> {
        let mut cached = self.query_state.lock().map_err(|_| poisoned())?;
        if let Some((made_for, state)) = cached.as_ref()
            && made_for == group
        {
            return Ok(state.clone());
        }
        let state = self.engine.query_state(&self.ctx, Some(group));
        *cached = Some((group.to_string(), state.clone()));
        Ok(state)
    }

    /// Change the session's state: the snapshot queries use is made again.
    fn change_state<R>(&self, change: impl FnOnce(&mut SessionState) -> R) -> SqlResult<R> {
        let changed = change(&mut self.ctx.state_ref().write());
        *self.query_state.lock().map_err(|_| poisoned())? = None;
        Ok(changed)
    }

    /// `SET vivace.progress_notices = on`: the client is sent a NOTICE with a
    /// query's progress every few seconds until its first row.
    pub fn progress_notices(&self) -> bool {
        self.ctx
            .state_ref()
            .read()
            .config_options()
            .extensions
            .get::<crate::engine::federation::VivaceOptions>()
            .is_some_and(|o| o.progress_notices)
    }

    /// Start tracking a statement received as `sql` (the message's text),
    /// before it is planned; [`Session::execute`] runs it under this record,
    /// or the caller ends it with the planning error.
    pub fn track(&self, sql: &str) -> QueryHandle {
        self.viewer_set.call_once(|| {
            let viewer = (viewer_source(&self.engine, &self.settings).0)();
            let _ = self.change_state(|state| state.config_mut().set_extension(Arc::new(viewer)));
        });
        let (user, application, group) = self.who();
        self.engine.tracker().begin(NewQuery {
            user,
            application,
            sql: crate::engine::tracker::mask_secrets(sql),
            group,
            cancel: self.cancel.current(),
        })
    }

    /// The session's user, its `application_name` and the resource group its
    /// queries join now.
    fn who(&self) -> (String, String, String) {
        let (user, application) = match self.settings.lock() {
            Ok(settings) => (
                settings.user().unwrap_or_default().to_string(),
                settings.get("application_name").unwrap_or_default(),
            ),
            Err(_) => Default::default(),
        };
        let group = self
            .ctx
            .state_ref()
            .read()
            .config_options()
            .extensions
            .get::<crate::engine::federation::VivaceOptions>()
            .map(|o| o.resource_group.clone())
            .filter(|g| !g.is_empty());
        // A group named and unknown is refused at admission, with the names.
        let group = match self
            .engine
            .groups()
            .select(group.as_deref(), &user, &application)
        {
            Ok(group) => group.to_string(),
            Err(_) => group.unwrap_or_default(),
        };
        (user, application, group)
    }

    /// The session's settings, which start-up parameters fill in.
    pub fn settings(&self) -> Arc<Mutex<Settings>> {
        self.settings.clone()
    }

    /// The switch a CancelRequest for this session flips.
    pub fn cancel_switch(&self) -> Arc<SessionCancel> {
        self.cancel.clone()
    }

    /// Start a new client message: a fresh cancel switch, armed with the session's
    /// `statement_timeout`.
    pub fn begin_message(&self) -> QueryCancel {
        let cancel = self.cancel.begin();
        let timeout = self
            .settings
            .lock()
            .map(|s| s.statement_timeout())
            .unwrap_or_default();
        cancel.arm_timeout(timeout);
        cancel
    }

    /// Split and classify a query string, on a planning thread
    /// ([`crate::engine::planning`]).
    pub async fn parse(&self, sql: &str) -> SqlResult<Vec<Command>> {
        let sql = sql.to_string();
        planning::off_thread(self.cancel.current(), async move {
            crate::session::statement::parser().parse(&sql)
        })
        .await
    }

    /// The catalog version this session's statements are planned against now:
    /// the engine's (every DDL) plus the session's temp tables. Both only
    /// grow, so any change of either gives a version not seen before.
    pub fn catalog_version(&self) -> u64 {
        self.engine.catalog_version() + self.catalogs.temp_version()
    }

    /// Plan a command, on a planning thread ([`crate::engine::planning`]). Queries
    /// become DataFusion plans; SHOW and DESCRIBE are answered now and wrapped in
    /// a plan so both protocols treat them as rows.
    pub async fn prepare(self: &Arc<Self>, command: Command) -> SqlResult<Prepared> {
        let me = self.clone();
        planning::off_thread(self.cancel.current(), async move {
            me.prepare_here(command).await
        })
        .await
    }

    async fn prepare_here(&self, command: Command) -> SqlResult<Prepared> {
        let batch = match command {
            Command::Query(stmt) => return Ok(Prepared::Plan(self.plan_query(stmt).await?)),
            Command::DeclareCursor { name, query, hold } => {
                return Ok(Prepared::Declare {
                    name,
                    query: self.plan_query(query).await?,
                    hold,
                });
            }
            Command::Fetch { name, count } => {
                let schema = self.cursors.lock().await.schema(&name)?;
                return Ok(Prepared::Fetch {
                    name,
                    count,
                    schema,
                });
            }
            Command::Insert(stmt) => return self.plan_insert(*stmt).await,
            Command::PrepareStatement { name, stmt } => {
                return Ok(Prepared::Store {
                    name,
                    query: self.plan_prepare(*stmt).await?,
                });
            }
            Command::ExecuteStatement { name, stmt } => {
                return Ok(Prepared::Plan(self.plan_execute(&name, *stmt).await?));
            }
            Command::DriverQuery {
                stmt,
                parameter_types,
            } => {
                let mut query = self.plan_query(stmt).await?;
                query.parameter_types = Some(parameter_types);
                return Ok(Prepared::Plan(query));
            }
            Command::Copy(request) => {
                return Ok(Prepared::Copy {
                    query: self.plan_query(request.query).await?,
                    options: request.options,
                });
            }
            Command::ShowTables => ddl::show_tables_batch(&self.engine.definitions()?)?,
            Command::ShowCreateTable(name) => {
                ddl::show_create_batch(&self.engine.definition(&name)?)?
            }
            Command::Describe(name) => {
                let reference = TableReference::partial(name.schema.as_str(), name.table.as_str());
                let provider = self.ctx.table_provider(reference).await.map_err(|_| {
                    SqlError::new(
                        sqlstate::UNDEFINED_TABLE,
                        format!("relation \"{}\" does not exist", name.table),
                    )
                })?;
                let partitions = self
                    .engine
                    .definition(&name)
                    .map(|d| d.partition_columns)
                    .unwrap_or_default();
                ddl::describe_batch(&provider.schema(), &partitions)?
            }
            Command::Show(name) => self.show_batch(&name)?,
            Command::ExplainWrite(write) => self.explain_write(write).await?,
            other => return Ok(Prepared::Command(other)),
        };
        Ok(Prepared::Plan(QueryPlan::new(self.batch_plan(batch)?)))
    }

    /// Plan an INSERT into a temp table of this session; an INSERT into a
    /// table is a write, run as a command ([`writes`]).
    async fn plan_insert(&self, stmt: Statement) -> SqlResult<Prepared> {
        use datafusion::sql::sqlparser::ast::{Insert, TableObject};
        let temp = match &stmt {
            Statement::Insert(Insert {
                table: TableObject::TableName(name),
                ..
            }) => crate::session::sql_text::table_name(name.clone()).is_ok_and(|n| {
                matches!(n.schema.as_str(), DEFAULT_SCHEMA | TEMP_SCHEMA)
                    && self.catalogs.has_temp(&n.table)
            }),
            _ => false,
        };
        if !temp {
            let mut write = self.plan_table_insert(stmt).await?;
            write.plan = type_cast_placeholders(write.plan)?;
            return Ok(Prepared::Write(Box::new(write)));
        }
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await?;
        Ok(Prepared::Insert(type_cast_placeholders(plan)?))
    }

    /// Plan `PREPARE name [(types)] AS query`: the query, its `$n` typed as
    /// declared.
    async fn plan_prepare(&self, stmt: Statement) -> SqlResult<QueryPlan> {
        use datafusion::logical_expr::Statement as PlanStatement;
        let names = match &stmt {
            Statement::Prepare { statement, .. } => colnames::postgres_names(statement),
            _ => None,
        };
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await?;
        let LogicalPlan::Statement(PlanStatement::Prepare(prepare)) = plan else {
            return Err(SqlError::new(
                sqlstate::INTERNAL_ERROR,
                "PREPARE planned to something else",
            ));
        };
        let input = Arc::unwrap_or_clone(prepare.input);
        ensure_read_only(&input)?;
        let input = pgcompat::plan::finish(input)?;
        Ok(QueryPlan {
            plan: type_cast_placeholders(input)?,
            names: names.map(Arc::new),
            parameter_types: None,
            params: None,
            kept: None,
        })
    }

    /// Plan `EXECUTE name [(values)]`: the stored statement with its
    /// parameters replaced by the values, cast to their types.
    async fn plan_execute(&self, name: &str, stmt: Statement) -> SqlResult<QueryPlan> {
        use datafusion::logical_expr::Statement as PlanStatement;
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await?;
        let LogicalPlan::Statement(PlanStatement::Execute(execute)) = plan else {
            return Err(SqlError::new(
                sqlstate::INTERNAL_ERROR,
                "EXECUTE planned to something else",
            ));
        };
        let stored = self
            .statements
            .lock()
            .map_err(|_| poisoned())?
            .get(name)
            .cloned()
            .ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_SQL_STATEMENT_NAME,
                    format!("prepared statement \"{name}\" does not exist"),
                )
            })?;
        let types = parameter_types(&stored.plan)?;
        if types.len() != execute.parameters.len() {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!(
                    "wrong number of parameters for prepared statement \"{name}\": expected {}, got {}",
                    types.len(),
                    execute.parameters.len()
                ),
            ));
        }
        let values = execute
            .parameters
            .into_iter()
            .zip(types)
            .map(|(expr, ty)| {
                let value = constant_value(expr)?;
                Ok(match ty {
                    Some(ty) if !value.is_null() || ty != value.data_type() => {
                        value.cast_to(&ty)?
                    }
                    _ => value,
                })
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let plan =
            stored
                .plan
                .replace_params_with_values(&datafusion::common::ParamValues::List(
                    values.into_iter().map(Into::into).collect(),
                ))?;
        Ok(QueryPlan {
            plan,
            names: stored.names,
            parameter_types: None,
            params: None,
            kept: None,
        })
    }

    /// Plan a query (SELECT, VALUES, EXPLAIN, ...) with PostgreSQL's result
    /// column names.
    async fn plan_query(&self, stmt: Box<Statement>) -> SqlResult<QueryPlan> {
        let state = self.query_state(&self.who().2)?.state;
        let mut state = state.lock().await;
        state.mark_start_execution();
        let NamedPlan { plan, names } = pgcompat::plan::plan_query(&state, stmt).await?;
        drop(state);
        ensure_read_only(&plan)?;
        match plan {
            LogicalPlan::Explain(explain) if !explain.verbose => {
                let batch = self.explain(&explain.plan).await?;
                Ok(QueryPlan::new(self.batch_plan(batch)?))
            }
            plan => Ok(QueryPlan {
                plan: type_cast_placeholders(plan)?,
                names: names.map(Arc::new),
                parameter_types: None,
                params: None,
                kept: None,
            }),
        }
    }

    /// `EXPLAIN`: the optimised logical plan and the physical plan this session
    /// would run. DataFusion's own EXPLAIN plans the input with the default
    /// planner, which would hide the distributed stages; we plan it for real and
    /// print the stages with the tasks of each.
    async fn explain(&self, input: &LogicalPlan) -> SqlResult<RecordBatch> {
        // Planned as the session's resource group would run it.
        let state = self
            .engine
            .groups()
            .session_for(&self.who().2, self.ctx.state());
        let optimized = state.optimize(input)?;
        let physical = state.create_physical_plan(input).await?;
        let physical_text = datafusion_distributed::display_plan_ascii(physical.as_ref(), false);
        let mut types = vec!["logical_plan".to_string(), "physical_plan".to_string()];
        let mut texts = vec![optimized.display_indent().to_string(), physical_text];
        // Say why a query of a cluster runs on the coordinator alone.
        if self.engine.is_distributed() {
            let local = crate::engine::federation::coordinator_only_tables(
                input,
                self.engine.connectors(),
            )?;
            if !local.is_empty() {
                types.push("note".into());
                texts.push(
                    local
                        .iter()
                        .map(|(table, why)| format!("runs on the coordinator: {table}: {why}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
        }
        ddl::text_batch(&["plan_type", "plan"], vec![types, texts])
    }

    fn batch_plan(&self, batch: RecordBatch) -> SqlResult<LogicalPlan> {
        Ok(self.ctx.read_batch(batch)?.into_unoptimized_plan())
    }

    fn show_batch(&self, name: &str) -> SqlResult<RecordBatch> {
        use datafusion::arrow::array::{ArrayRef, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let settings = self.settings.lock().map_err(|_| poisoned())?;
        let (names, columns): (Vec<String>, Vec<Vec<String>>) = if name == "all" {
            let (keys, values) = settings.all().map(|(k, v)| (k.clone(), v.clone())).unzip();
            (vec!["name".into(), "setting".into()], vec![keys, values])
        } else if is_engine_setting(name) {
            let value =
                engine_setting(self.ctx.state().config_options(), name).ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
            (
                vec![name.to_string()],
                vec![vec![value.unwrap_or_default()]],
            )
        } else {
            (
                vec![crate::pgcompat::settings::display_name(name)],
                vec![vec![settings.get(name)?]],
            )
        };
        let schema = Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        );
        let arrays = columns
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(schema), arrays)
            .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
    }

    /// Run a prepared statement, tracked by `query` (see [`Session::track`]).
    /// Statements that run a plan first wait for a place in their resource
    /// group. Plans run lazily: rows are produced as the client reads them,
    /// and the query ends with its last row.
    pub async fn execute(&self, prepared: Prepared, query: QueryHandle) -> SqlResult<Outcome> {
        let record = query.record().clone();
        record.prepared();
        let runs_a_plan = matches!(
            prepared,
            Prepared::Plan(_)
                | Prepared::Declare { .. }
                | Prepared::Insert(_)
                | Prepared::Write(_)
                | Prepared::Copy { .. }
        );
        let admission = if runs_a_plan {
            match self.admit(&record).await {
                Ok(admission) => Some(admission),
                Err(e) => {
                    query.end(Some(&e));
                    return Err(e);
                }
            }
        } else {
            None
        };
        record.admitted();
        let watch = |mut rows: QueryStream, query: QueryHandle, admission| {
            rows.batches = query.watch(rows.batches, admission);
            rows.record = Some(record.clone());
            rows
        };
        match self.run(prepared, &record).await {
            Ok(Outcome::Rows(rows)) => Ok(Outcome::Rows(watch(rows, query, admission))),
            Ok(Outcome::Copy { rows, options }) => Ok(Outcome::Copy {
                rows: watch(rows, query, admission),
                options,
            }),
            Ok(outcome) => {
                query.end(None);
                Ok(outcome)
            }
            Err(e) => {
                query.end(Some(&e));
                Err(e)
            }
        }
    }

    /// A place in `record`'s resource group: the one an earlier statement of
    /// this message still holds, or a new one.
    async fn admit(&self, record: &QueryRecord) -> SqlResult<Arc<Admission>> {
        let group = record.group().to_string();
        let shared = {
            let held = self.admission.lock().map_err(|_| poisoned())?;
            (held.0 == group).then(|| held.1.upgrade()).flatten()
        };
        if let Some(admission) = shared {
            return Ok(admission);
        }
        let cancel = self.cancel.current();
        let admission = Arc::new(
            self.engine
                .groups()
                .admit(&group, &cancel, || record.queued())
                .await?,
        );
        *self.admission.lock().map_err(|_| poisoned())? = (group, Arc::downgrade(&admission));
        Ok(admission)
    }

    async fn run(&self, prepared: Prepared, record: &QueryRecord) -> SqlResult<Outcome> {
        match prepared {
            Prepared::Plan(query) => Ok(Outcome::Rows(self.start(query, record).await?)),
            Prepared::Command(command) => self.run_command(command).await,
            Prepared::Declare { name, query, hold } => {
                let rows = self.start(query, record).await?;
                self.cursors
                    .lock()
                    .await
                    .declare(&name, rows.batches, hold)?;
                Ok(Outcome::Tag {
                    tag: "DECLARE CURSOR",
                    notice: None,
                })
            }
            Prepared::Fetch { name, count, .. } => {
                let cancel = self.cancel.current();
                let mut cursors = self.cursors.lock().await;
                let batches = tokio::select! {
                    fetched = cursors.fetch(&name, count) => fetched?,
                    error = cancel.cancelled() => return Err(error),
                };
                Ok(Outcome::Rows(QueryStream {
                    schema: batches.schema(),
                    batches: cancel.guard(batches),
                    tag: "FETCH",
                    record: None,
                }))
            }
            Prepared::Insert(plan) => {
                let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
                // DataFusion answers a DML statement with one row: the row count.
                let count = batches
                    .first()
                    .filter(|b| b.num_rows() == 1)
                    .and_then(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                            .map(|a| a.value(0))
                    })
                    .unwrap_or(0);
                Ok(Outcome::Inserted(count))
            }
            Prepared::Write(write) => self.insert_into_table(*write).await,
            Prepared::Store { name, query } => {
                let mut statements = self.statements.lock().map_err(|_| poisoned())?;
                if statements.contains_key(&name) {
                    return Err(SqlError::new(
                        sqlstate::DUPLICATE_PREPARED_STATEMENT,
                        format!("prepared statement \"{name}\" already exists"),
                    ));
                }
                statements.insert(name, query);
                Ok(Outcome::Tag {
                    tag: "PREPARE",
                    notice: None,
                })
            }
            Prepared::Copy { query, options } => Ok(Outcome::Copy {
                rows: self.start(query, record).await?,
                options,
            }),
        }
    }

    /// Start `query` (see [`Engine::start`]) and return its rows under
    /// PostgreSQL's column names, ending with the cancel error once the
    /// message's switch fires.
    async fn start(&self, query: QueryPlan, record: &QueryRecord) -> SqlResult<QueryStream> {
        let QueryPlan {
            plan,
            names,
            params,
            kept,
            ..
        } = query;
        let cancel = self.cancel.current();
        let query_state = self.query_state(record.group())?;
        let started = self
            .engine
            .start(
                &query_state,
                plan,
                params,
                kept.as_ref(),
                &cancel,
                Some(record),
            )
            .await?;
        let schema = match &names {
            Some(names) => colnames::rename_schema(&started.schema(), names),
            None => started.schema(),
        };
        let renamed = schema.clone();
        let batches = started.map(move |batch| {
            // Same columns, PostgreSQL's names.
            batch.and_then(|b| {
                RecordBatch::try_new(renamed.clone(), b.columns().to_vec()).map_err(Into::into)
            })
        });
        Ok(QueryStream {
            schema: schema.clone(),
            batches: cancel.guard(Box::pin(RecordBatchStreamAdapter::new(schema, batches))),
            tag: "SELECT",
            record: None,
        })
    }

    async fn run_command(&self, command: Command) -> SqlResult<Outcome> {
        let tag = |tag, outcome: DdlOutcome, notice: String| Outcome::Tag {
            tag,
            notice: (outcome == DdlOutcome::Skipped)
                .then(|| SqlError::new(sqlstate::DUPLICATE_TABLE, notice)),
        };
        match command {
            Command::CreateExternalTable(stmt) => {
                let plan = self.ctx.state().statement_to_plan(*stmt).await?;
                let LogicalPlan::Ddl(DdlStatement::CreateExternalTable(create)) = plan else {
                    return Err(SqlError::new(
                        sqlstate::INTERNAL_ERROR,
                        "CREATE EXTERNAL TABLE planned to something else",
                    ));
                };
                let request = ddl::table_request(&create)?;
                let name = request.name.table.clone();
                let outcome = self
                    .engine
                    .create_table(request, create.if_not_exists)
                    .await?;
                Ok(tag(
                    "CREATE EXTERNAL TABLE",
                    outcome,
                    format!("relation \"{name}\" already exists, skipping"),
                ))
            }
            Command::CreateExternalSchema {
                request,
                if_not_exists,
            } => {
                let name = request.name.clone();
                let outcome = self.engine.create_schema(request, if_not_exists).await?;
                Ok(tag(
                    "CREATE EXTERNAL SCHEMA",
                    outcome,
                    format!("schema \"{name}\" already exists, skipping"),
                ))
            }
            Command::DropExternalSchema { name, if_exists } => {
                let outcome = self.engine.drop_schema(&name, if_exists).await?;
                Ok(tag(
                    "DROP SCHEMA",
                    outcome,
                    format!("schema \"{name}\" does not exist, skipping"),
                ))
            }
            Command::RefreshExternalSchema(name) => {
                self.engine.refresh_schema(&name).await?;
                Ok(Outcome::Tag {
                    tag: "REFRESH EXTERNAL SCHEMA",
                    notice: None,
                })
            }
            Command::CreateTableAs(request) => self.create_table_as(*request).await,
            Command::Optimize { name, predicate } => {
                let cancel = self.cancel.current();
                let user = self.user()?;
                self.engine
                    .optimize(&self.ctx, &name, predicate, user.as_deref(), &cancel)
                    .await?;
                Ok(Outcome::Tag {
                    tag: "OPTIMIZE",
                    notice: None,
                })
            }
            Command::CreateView(def, or_replace) => {
                self.engine.create_view(def, or_replace).await?;
                Ok(Outcome::Tag {
                    tag: "CREATE VIEW",
                    notice: None,
                })
            }
            Command::DropViews { names, if_exists } => {
                let mut skipped = Vec::new();
                for name in &names {
                    if self.engine.drop_view(name, if_exists).await? == DdlOutcome::Skipped {
                        skipped.push(format!("view \"{}\" does not exist, skipping", name.table));
                    }
                }
                Ok(Outcome::Tag {
                    tag: "DROP VIEW",
                    notice: (!skipped.is_empty())
                        .then(|| SqlError::new("00000", skipped.join("; "))),
                })
            }
            Command::DropTables { names, if_exists } => {
                let mut last = DdlOutcome::Done;
                let mut skipped = Vec::new();
                for name in &names {
                    let temp_name = matches!(name.schema.as_str(), DEFAULT_SCHEMA | TEMP_SCHEMA);
                    if temp_name && self.catalogs.drop_temp(&name.table)? {
                        last = DdlOutcome::Done;
                        continue;
                    }
                    last = self.engine.drop_table(name, if_exists).await?;
                    if last == DdlOutcome::Skipped {
                        skipped.push(name.table.clone());
                    }
                }
                let notice = skipped
                    .iter()
                    .map(|n| format!("table \"{n}\" does not exist, skipping"))
                    .collect::<Vec<_>>()
                    .join("; ");
                Ok(Outcome::Tag {
                    tag: "DROP TABLE",
                    notice: (last == DdlOutcome::Skipped || !skipped.is_empty())
                        .then(|| SqlError::new("00000", notice)),
                })
            }
            Command::Set { name, value } => {
                if is_engine_setting(&name) {
                    let value = if value.eq_ignore_ascii_case("default") {
                        engine_setting(&self.engine.default_options(), &name)
                            .flatten()
                            .unwrap_or(value)
                    } else {
                        value
                    };
                    self.change_state(|state| state.config_mut().options_mut().set(&name, &value))?
                        .map_err(|e| {
                            SqlError::new(
                                sqlstate::INVALID_PARAMETER_VALUE,
                                e.message().to_string(),
                            )
                        })?;
                } else {
                    self.settings
                        .lock()
                        .map_err(|_| poisoned())?
                        .set(&name, &value)?;
                }
                Ok(Outcome::Tag {
                    tag: "SET",
                    notice: None,
                })
            }
            Command::ResetAll => {
                self.settings.lock().map_err(|_| poisoned())?.reset_all();
                let defaults = self.engine.default_options();
                self.change_state(|state| *state.config_mut().options_mut() = defaults)?;
                Ok(Outcome::Tag {
                    tag: "RESET",
                    notice: None,
                })
            }
            Command::Transaction(op) => {
                if op != TransactionOp::Begin {
                    self.cursors.lock().await.end_transaction();
                }
                Ok(Outcome::Transaction(op))
            }
            Command::CreateTempTable(stmt) => {
                let state = self.ctx.state();
                let plan = state
                    .statement_to_plan(DFStatement::Statement(stmt))
                    .await?;
                let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
                    return Err(SqlError::not_supported(
                        "only CREATE TEMPORARY TABLE name (columns) is supported",
                    ));
                };
                let name = create.name.table().to_string();
                let outcome = self.catalogs.create_temp(state, create).await?;
                Ok(tag(
                    "CREATE TABLE",
                    outcome,
                    format!("relation \"{name}\" already exists, skipping"),
                ))
            }
            Command::CloseCursor(name) => {
                self.cursors.lock().await.close(name.as_deref())?;
                Ok(Outcome::Tag {
                    tag: "CLOSE CURSOR",
                    notice: None,
                })
            }
            Command::Deallocate(name) => {
                let mut statements = self.statements.lock().map_err(|_| poisoned())?;
                let tag = match name {
                    None => {
                        statements.clear();
                        "DEALLOCATE ALL"
                    }
                    Some(name) => {
                        statements.remove(&name).ok_or_else(|| {
                            SqlError::new(
                                sqlstate::INVALID_SQL_STATEMENT_NAME,
                                format!("prepared statement \"{name}\" does not exist"),
                            )
                        })?;
                        "DEALLOCATE"
                    }
                };
                Ok(Outcome::Tag { tag, notice: None })
            }
            Command::NoOp(tag) => Ok(Outcome::Tag { tag, notice: None }),
            Command::Query(_)
            | Command::DeclareCursor { .. }
            | Command::Fetch { .. }
            | Command::Copy(_)
            | Command::Insert(_)
            | Command::ExplainWrite(_)
            | Command::PrepareStatement { .. }
            | Command::ExecuteStatement { .. }
            | Command::DriverQuery { .. }
            | Command::ShowTables
            | Command::ShowCreateTable(_)
            | Command::Describe(_)
            | Command::Show(_) => Err(SqlError::new(
                sqlstate::INTERNAL_ERROR,
                "row-returning command reached the command runner",
            )),
        }
    }
}

/// Parameter types DataFusion inferred, in `$1..$n` order.
pub fn parameter_types(
    plan: &LogicalPlan,
) -> SqlResult<Vec<Option<datafusion::arrow::datatypes::DataType>>> {
    let found = plan.get_parameter_types()?;
    let mut numbered: Vec<(usize, Option<datafusion::arrow::datatypes::DataType>)> = found
        .into_iter()
        .map(|(id, ty)| {
            id.trim_start_matches('$')
                .parse::<usize>()
                .map(|n| (n, ty))
                .map_err(|_| {
                    SqlError::new(sqlstate::SYNTAX_ERROR, format!("bad parameter name {id}"))
                })
        })
        .collect::<SqlResult<_>>()?;
    numbered.sort_by_key(|(n, _)| *n);
    let count = numbered.last().map_or(0, |(n, _)| *n);
    let mut types = vec![None; count];
    for (n, ty) in numbered {
        types[n - 1] = ty;
    }
    Ok(types)
}

/// The value of a constant expression (an `EXECUTE` parameter).
fn constant_value(expr: datafusion::logical_expr::Expr) -> SqlResult<ScalarValue> {
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::Expr;
    use datafusion::logical_expr::simplify::SimplifyContext;
    use datafusion::optimizer::simplify_expressions::ExprSimplifier;
    let schema = Arc::new(DFSchema::empty());
    let simplifier = ExprSimplifier::new(SimplifyContext::default());
    match simplifier.simplify(simplifier.coerce(expr, &schema)?)? {
        Expr::Literal(value, _) => Ok(value),
        other => Err(SqlError::not_supported(format!(
            "EXECUTE parameters must be constants, not {other}"
        ))),
    }
}

/// Give `$n` the type it is cast to (`$1::bigint`), as PostgreSQL infers it;
/// DataFusion leaves such placeholders untyped, and drivers that encode
/// parameters by the type the server reports (asyncpg) then send text.
fn type_cast_placeholders(plan: LogicalPlan) -> SqlResult<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{Cast, Expr, expr::Placeholder};
    let typed = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::Cast(Cast { expr, field })
                    if matches!(expr.as_ref(), Expr::Placeholder(p) if p.field.is_none()) =>
                {
                    let Expr::Placeholder(p) = *expr else {
                        unreachable!("matched above")
                    };
                    let typed = Placeholder::new_with_field(
                        p.id,
                        Some(std::sync::Arc::new(
                            datafusion::arrow::datatypes::Field::new(
                                "",
                                field.data_type().clone(),
                                true,
                            ),
                        )),
                    );
                    Ok(Transformed::yes(Expr::Cast(Cast {
                        expr: Box::new(Expr::Placeholder(typed)),
                        field,
                    })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(typed.data)
}

/// Settings owned by DataFusion (`datafusion.*`), datafusion-distributed
/// (`distributed.*`) or Vivace's DataFusion extension (`vivace.pushdown`), as
/// opposed to PostgreSQL session settings.
/// An engine setting's value (`None` inside: set to nothing), if the name is
/// one. datafusion-distributed's options list their keys without the
/// `distributed.` prefix (DataFusion's `extensions_options!` does so).
fn engine_setting(
    options: &datafusion::config::ConfigOptions,
    name: &str,
) -> Option<Option<String>> {
    let unprefixed = name.strip_prefix("distributed.");
    options
        .entries()
        .into_iter()
        .find(|e| e.key == name || unprefixed == Some(e.key.as_str()))
        .map(|e| e.value)
}

fn is_engine_setting(name: &str) -> bool {
    name.starts_with("datafusion.")
        || name.starts_with("distributed.")
        || (name.starts_with("vivace.") && !name.starts_with(SERVER_SETTING_PREFIX))
}

fn poisoned() -> SqlError {
    SqlError::new(sqlstate::INTERNAL_ERROR, "session state lock poisoned")
}

/// Vivace's tables are external and read-only; DataFusion would otherwise create
/// in-memory objects that vanish on restart.
fn ensure_read_only(plan: &LogicalPlan) -> SqlResult<()> {
    match plan {
        LogicalPlan::Ddl(ddl) => Err(SqlError::not_supported(format!(
            "{} is not supported; register data with CREATE EXTERNAL TABLE",
            ddl.name()
        ))),
        LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Err(SqlError::not_supported(
            "this write is not supported: write with CREATE TABLE … AS, INSERT INTO or INSERT OVERWRITE",
        )),
        LogicalPlan::Explain(explain) => ensure_read_only(&explain.plan),
        LogicalPlan::Analyze(analyze) => ensure_read_only(&analyze.input),
        _ => Ok(()),
    }
}

/// Who `session`'s user is, asked each time (the user is known once the
/// client has logged in).
fn viewer_source(engine: &Arc<Engine>, settings: &Arc<Mutex<Settings>>) -> ViewerSource {
    let engine = engine.clone();
    let settings = settings.clone();
    ViewerSource(Arc::new(move || {
        let user = settings
            .lock()
            .ok()
            .and_then(|s| s.user().map(str::to_string));
        engine.viewer(user.as_deref())
    }))
}
