//! One client connection's session: its own DataFusion context and settings over
//! the shared engine. Turns commands into plans and runs them.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use futures::StreamExt;

use crate::ddl;
use crate::engine::{DdlOutcome, Engine};
use crate::error::{SqlError, SqlResult, is_worker_failure, sqlstate};
use crate::settings::Settings;
use crate::statement::{Command, TransactionOp};

/// A statement ready to run: a DataFusion plan, or a command Vivace runs itself.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Rows come from this plan (queries, and SHOW/DESCRIBE rendered to batches).
    Plan(LogicalPlan),
    /// DDL, SET, transaction control: answered with a command tag.
    Command(Command),
}

/// A running query: its schema and its batches, the first one already computed
/// (so a failure before any row reaches the client can still be retried).
pub struct QueryStream {
    /// Output schema.
    pub schema: SchemaRef,
    /// Every batch, in order.
    pub batches: SendableRecordBatchStream,
}

/// What running a statement produced.
pub enum Outcome {
    /// Rows to stream to the client, batch by batch.
    Rows(QueryStream),
    /// A command tag (`CREATE EXTERNAL TABLE`, `SET`, ...), with a notice to send first.
    Tag {
        /// The command tag.
        tag: &'static str,
        /// A PostgreSQL-style NOTICE (`relation "x" already exists, skipping`).
        notice: Option<SqlError>,
    },
    /// Transaction control.
    Transaction(TransactionOp),
}

/// Per-connection state.
pub struct Session {
    engine: Arc<Engine>,
    ctx: SessionContext,
    settings: Mutex<Settings>,
}

impl Session {
    /// A new session over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        let ctx = engine.new_session_context();
        Self {
            engine,
            ctx,
            settings: Mutex::new(Settings::default()),
        }
    }

    /// Split and classify a query string.
    pub fn parse(&self, sql: &str) -> SqlResult<Vec<Command>> {
        self.engine.parser().parse(sql)
    }

    /// Plan a command. Queries become DataFusion plans; SHOW and DESCRIBE are
    /// answered now and wrapped in a plan so both protocols treat them as rows.
    pub async fn prepare(&self, command: Command) -> SqlResult<Prepared> {
        let batch = match command {
            Command::Query(stmt) => {
                let plan = self
                    .ctx
                    .state()
                    .statement_to_plan(DFStatement::Statement(stmt))
                    .await?;
                ensure_read_only(&plan)?;
                match plan {
                    LogicalPlan::Explain(explain) if !explain.verbose => {
                        self.explain(&explain.plan).await?
                    }
                    plan => return Ok(Prepared::Plan(plan)),
                }
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
            other => return Ok(Prepared::Command(other)),
        };
        Ok(Prepared::Plan(self.batch_plan(batch)?))
    }

    /// `EXPLAIN`: the optimised logical plan and the physical plan this session
    /// would run. DataFusion's own EXPLAIN plans the input with the default
    /// planner, which would hide the distributed stages; we plan it for real and
    /// print the stages with the tasks of each.
    async fn explain(&self, input: &LogicalPlan) -> SqlResult<RecordBatch> {
        let state = self.ctx.state();
        let optimized = state.optimize(input)?;
        let physical = state.create_physical_plan(input).await?;
        let physical_text = datafusion_distributed::display_plan_ascii(physical.as_ref(), false);
        ddl::text_batch(
            &["plan_type", "plan"],
            vec![
                vec!["logical_plan".into(), "physical_plan".into()],
                vec![optimized.display_indent().to_string(), physical_text],
            ],
        )
    }

    fn batch_plan(&self, batch: RecordBatch) -> SqlResult<LogicalPlan> {
        Ok(self.ctx.read_batch(batch)?.into_unoptimized_plan())
    }

    fn show_batch(&self, name: &str) -> SqlResult<RecordBatch> {
        use datafusion::arrow::array::{ArrayRef, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let settings = self.settings.lock().map_err(|_| poisoned())?;
        let (names, columns): (Vec<&str>, Vec<Vec<String>>) = if name == "all" {
            let (keys, values) = settings.all().map(|(k, v)| (k.clone(), v.clone())).unzip();
            (vec!["name", "setting"], vec![keys, values])
        } else if is_engine_setting(name) {
            let options = self.ctx.state().config_options().entries();
            let entry = options.into_iter().find(|e| e.key == name).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{name}\""),
                )
            })?;
            (vec![name], vec![vec![entry.value.unwrap_or_default()]])
        } else {
            let column = if name == "transaction isolation level" {
                "transaction_isolation"
            } else {
                name
            };
            (vec![column], vec![vec![settings.get(name)?]])
        };
        let schema = Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        );
        let arrays = columns
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(schema), arrays)
            .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
    }

    /// Run a prepared statement. Plans run lazily: rows are produced as the
    /// client reads them.
    pub async fn execute(&self, prepared: Prepared) -> SqlResult<Outcome> {
        match prepared {
            Prepared::Plan(plan) => Ok(Outcome::Rows(self.start(plan).await?)),
            Prepared::Command(command) => self.run_command(command).await,
        }
    }

    /// Run `plan` up to its first batch. If that fails because a worker was lost
    /// and the retry policy allows, forget the unreachable workers and run the
    /// query again on the others: nothing has reached the client yet.
    async fn start(&self, plan: LogicalPlan) -> SqlResult<QueryStream> {
        let mut retries_left = self.engine.query_retries();
        if self.engine.is_distributed() {
            use datafusion_distributed::DistributedExt;
            let state = self.ctx.state_ref();
            let mut state = state.write();
            state
                .config_mut()
                .set_distributed_passthrough_headers(self.engine.worker_headers())?;
        }
        loop {
            let df = self.ctx.execute_logical_plan(plan.clone()).await?;
            let attempt: datafusion::error::Result<(
                SendableRecordBatchStream,
                Option<RecordBatch>,
            )> = async {
                let mut batches = df.execute_stream().await?;
                let first = batches.next().await.transpose()?;
                Ok((batches, first))
            }
            .await;
            match attempt {
                Ok((batches, first)) => {
                    let schema = batches.schema();
                    let head = futures::stream::iter(first.map(Ok));
                    return Ok(QueryStream {
                        schema: schema.clone(),
                        batches: Box::pin(RecordBatchStreamAdapter::new(
                            schema,
                            head.chain(batches),
                        )),
                    });
                }
                Err(e) if retries_left > 0 && is_worker_failure(&e) => {
                    retries_left -= 1;
                    tracing::warn!(error = %e, "a worker failed before any row was sent; re-running the query");
                    self.engine.prune_workers().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
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
            Command::DropTables { names, if_exists } => {
                let mut last = DdlOutcome::Done;
                let mut skipped = Vec::new();
                for name in &names {
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
                    let state = self.ctx.state_ref();
                    let mut state = state.write();
                    state
                        .config_mut()
                        .options_mut()
                        .set(&name, &value)
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
            Command::Transaction(op) => Ok(Outcome::Transaction(op)),
            Command::NoOp(tag) => Ok(Outcome::Tag { tag, notice: None }),
            Command::Query(_)
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

/// Settings owned by DataFusion (`datafusion.*`), datafusion-distributed
/// (`distributed.*`) or Vivace's DataFusion extension (`vivace.pushdown`), as
/// opposed to PostgreSQL session settings.
fn is_engine_setting(name: &str) -> bool {
    name.starts_with("datafusion.")
        || name.starts_with("distributed.")
        || name.starts_with("vivace.")
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
            "writes are not supported; Vivace tables are read-only",
        )),
        _ => Ok(()),
    }
}
