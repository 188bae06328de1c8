//! Simple and extended query protocol over one [`Session`].

use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::into_pg_type;
use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use std::time::Duration;

use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::copy::encode_copy;
use super::encode::{encode_rows, to_notice, to_pg_error};
use crate::engine::KeptPlans;
use crate::engine::tracker::{QueryHandle, QueryRecord};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::session::statement::TransactionOp;
use crate::session::{Outcome, Prepared, QueryPlan, Session};

/// Query handler of one connection.
pub struct QueryHandler {
    session: Arc<Session>,
    parser: Arc<StatementPreparer>,
}

impl QueryHandler {
    /// A handler running statements in `session`.
    pub fn new(session: Arc<Session>) -> Self {
        Self {
            parser: Arc::new(StatementPreparer {
                session: session.clone(),
            }),
            session,
        }
    }

    async fn respond<C>(
        &self,
        client: &mut C,
        prepared: Prepared,
        query: QueryHandle,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = if self.session.progress_notices() {
            let record = query.record().clone();
            with_progress_notices(client, &record, self.session.execute(prepared, query)).await?
        } else {
            self.session.execute(prepared, query).await
        }
        .map_err(to_pg_error)?;
        Ok(match outcome {
            Outcome::Rows(query) => {
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                Response::Query(encode_rows(query, format, options)?)
            }
            Outcome::Copy { rows, options } => {
                let format = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                Response::CopyOut(encode_copy(rows, options, format)?)
            }
            Outcome::Tag { tag, notice } => {
                if let Some(notice) = notice {
                    client
                        .send(PgWireBackendMessage::NoticeResponse(
                            to_notice(notice).into(),
                        ))
                        .await?;
                }
                Response::Execution(Tag::new(tag))
            }
            Outcome::Inserted(rows) => {
                Response::Execution(Tag::new("INSERT").with_oid(0).with_rows(rows as usize))
            }
            Outcome::Selected(rows) => {
                Response::Execution(Tag::new("SELECT").with_rows(rows as usize))
            }
            Outcome::Transaction(TransactionOp::Begin) => {
                Response::TransactionStart(Tag::new("BEGIN"))
            }
            Outcome::Transaction(TransactionOp::Commit) => {
                Response::TransactionEnd(Tag::new("COMMIT"))
            }
            Outcome::Transaction(TransactionOp::Rollback) => {
                Response::TransactionEnd(Tag::new("ROLLBACK"))
            }
        })
    }
}

/// How often a query's progress is sent while it has no row yet.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Run `execute` (a statement up to its first row), sending the client a
/// NOTICE with the query's progress every [`PROGRESS_EVERY`] meanwhile: psql
/// prints them as they come. Once rows flow, pgwire owns the connection until
/// the last one, so notices stop there.
async fn with_progress_notices<C, F>(
    client: &mut C,
    record: &QueryRecord,
    execute: F,
) -> PgWireResult<SqlResult<Outcome>>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    F: std::future::Future<Output = SqlResult<Outcome>>,
{
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut execute = std::pin::pin!(execute);
    loop {
        tokio::select! {
            outcome = &mut execute => return Ok(outcome),
            _ = ticks.tick() => {
                let notice = SqlError::new(
                    sqlstate::SUCCESSFUL_COMPLETION,
                    record.info().progress_line(),
                );
                client
                    .send(PgWireBackendMessage::NoticeResponse(to_notice(notice).into()))
                    .await?;
            }
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _cancel = self.session.begin_message();
        let commands = match self.session.parse(query).await {
            Ok(commands) => commands,
            Err(e) => {
                self.session.track(query).end(Some(&e));
                return Ok(vec![error_response(e)]);
            }
        };
        if commands.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(commands.len());
        for command in commands {
            // Each statement is a query of its own, shown with the message's
            // text (as PostgreSQL's pg_stat_activity shows it).
            let tracked = self.session.track(query);
            let result = match self.session.prepare(command).await {
                Ok(prepared) => {
                    self.respond(client, prepared, tracked, &Format::UnifiedText)
                        .await
                }
                Err(e) => {
                    tracked.end(Some(&e));
                    Err(to_pg_error(e))
                }
            };
            match result {
                Ok(response) => responses.push(response),
                Err(PgWireError::UserError(info)) => {
                    // Like PostgreSQL, the rest of the query string is not run.
                    responses.push(Response::Error(info));
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(responses)
    }
}

fn error_response(e: SqlError) -> Response {
    match to_pg_error(e) {
        PgWireError::UserError(info) => Response::Error(info),
        _ => Response::EmptyQuery,
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = ParsedStatement;
    type QueryParser = StatementPreparer;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _cancel = self.session.begin_message();
        let tracked = self.session.track(&portal.statement.statement.sql);
        let prepared = match &portal.statement.statement.prepared {
            Prepared::Plan(query) => {
                let plan = match self.current_plan(&portal.statement.statement, query).await {
                    Ok(plan) => plan,
                    Err(e) => {
                        tracked.end(Some(&e));
                        return Err(to_pg_error(e));
                    }
                };
                let params = match query.parameter_types {
                    Some(types) => Some(declared_parameter_values(types, portal)?),
                    None => parameter_values(&plan, portal)?,
                };
                Prepared::Plan(QueryPlan {
                    plan,
                    names: query.names.clone(),
                    parameter_types: query.parameter_types,
                    params,
                    kept: query.kept.clone(),
                })
            }
            Prepared::Insert(plan) => Prepared::Insert(bind_parameters(plan, portal)?),
            Prepared::Write(write) => {
                let mut bound = write.clone();
                bound.plan = bind_parameters(&write.plan, portal)?;
                Prepared::Write(bound)
            }
            command => command.clone(),
        };
        if let Prepared::Plan(query) | Prepared::Copy { query, .. } = &prepared {
            check_result_formats(
                &portal.result_column_format,
                query.output_schema().fields().len(),
            )?;
        }
        self.respond(client, prepared, tracked, &portal.result_column_format)
            .await
    }
}

impl QueryHandler {
    /// The logical plan of prepared statement `stmt` (`query`) for this
    /// execution: if the catalog changed since it was planned (a DDL, a temp
    /// table), it is planned again from its text, as PostgreSQL plans a
    /// cached statement again; a result or parameter shape that changed is
    /// refused with PostgreSQL's "cached plan must not change result type".
    async fn current_plan(
        &self,
        stmt: &ParsedStatement,
        query: &QueryPlan,
    ) -> SqlResult<LogicalPlan> {
        let Some(kept) = &query.kept else {
            return Ok(query.plan.clone());
        };
        let catalog = self.session.catalog_version();
        if let Some(plan) = kept.logical(catalog) {
            return Ok(plan);
        }
        let replanned = async {
            let mut commands = self.session.parse(&stmt.sql).await?;
            let again = match commands.pop() {
                Some(command) if commands.is_empty() => self.session.prepare(command).await?,
                _ => return Err(changed_shape()),
            };
            match again {
                Prepared::Plan(again) if same_shape(&again, query)? => Ok(again.plan),
                _ => Err(changed_shape()),
            }
        };
        let plan = replanned.await?;
        kept.replan(plan.clone(), catalog);
        Ok(plan)
    }
}

/// PostgreSQL's error for a prepared statement whose tables changed shape.
fn changed_shape() -> SqlError {
    SqlError::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        "cached plan must not change result type",
    )
}

/// Whether `again` (a statement planned anew) has the result columns and
/// parameter types `before` was described with.
fn same_shape(again: &QueryPlan, before: &QueryPlan) -> SqlResult<bool> {
    let columns = |q: &QueryPlan| {
        let schema = q.output_schema();
        schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect::<Vec<_>>()
    };
    Ok(columns(again) == columns(before)
        && again.parameter_types == before.parameter_types
        && crate::session::parameter_types(&again.plan)?
            == crate::session::parameter_types(&before.plan)?)
}

/// Substitute the portal's bound values for `$n` placeholders.
fn bind_parameters(
    plan: &LogicalPlan,
    portal: &Portal<ParsedStatement>,
) -> PgWireResult<LogicalPlan> {
    match parameter_values(plan, portal)? {
        None => Ok(plan.clone()),
        Some(values) => plan
            .clone()
            .replace_params_with_values(&values)
            .map_err(|e| to_pg_error(e.into())),
    }
}

/// The portal's bound values for `plan`'s `$n` placeholders, as the types
/// DataFusion inferred for them read them; none for a plan without any.
fn parameter_values(
    plan: &LogicalPlan,
    portal: &Portal<ParsedStatement>,
) -> PgWireResult<Option<ParamValues>> {
    let types = crate::session::parameter_types(plan).map_err(to_pg_error)?;
    if types.is_empty() {
        return Ok(None);
    }
    let type_refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
    Ok(Some(deserialize_parameters(portal, &type_refs)?))
}

/// The values of parameters whose types a replaced driver query declares
/// ([`crate::pgcompat::text::driver_queries`]); only `oid[]` is needed so far.
fn declared_parameter_values(
    types: &[Type],
    portal: &Portal<ParsedStatement>,
) -> PgWireResult<ParamValues> {
    use datafusion::common::ScalarValue;
    let mut values = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate() {
        let bytes = portal.parameters.get(i).cloned().flatten();
        let binary = portal.parameter_format.is_binary(i);
        let value = match (ty, bytes) {
            (_, None) => ScalarValue::Null,
            (&Type::OID_ARRAY, Some(bytes)) => {
                let oids = crate::pgcompat::text::driver_queries::decode_oid_array(&bytes, binary)
                    .ok_or_else(|| {
                        to_pg_error(SqlError::new(
                            sqlstate::INVALID_TEXT_REPRESENTATION,
                            "malformed oid[] parameter",
                        ))
                    })?;
                ScalarValue::List(
                    datafusion::common::utils::SingleRowListArrayBuilder::new(Arc::new(
                        datafusion::arrow::array::Int32Array::from(oids),
                    ))
                    .build_list_array()
                    .into(),
                )
            }
            (other, Some(_)) => {
                return Err(to_pg_error(SqlError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("parameters of type {other} are not supported here"),
                )));
            }
        };
        values.push(value);
    }
    Ok(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))
}

/// A Bind's result formats must be none, one for all, or one per column.
fn check_result_formats(format: &Format, columns: usize) -> PgWireResult<()> {
    match format {
        Format::Individual(codes) if codes.len() != columns => Err(to_pg_error(SqlError::new(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "bind message has {} result formats but query has {columns} columns",
                codes.len()
            ),
        ))),
        _ => Ok(()),
    }
}

/// A statement of the extended protocol: planned at Parse, kept with its text.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    /// The planned statement.
    pub prepared: Prepared,
    /// Its text, for `system.queries`.
    pub sql: String,
}

/// The extended protocol's Parse step: classify and plan one statement.
pub struct StatementPreparer {
    session: Arc<Session>,
}

#[async_trait]
impl QueryParser for StatementPreparer {
    type Statement = ParsedStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // Parse is a message of its own: statement_timeout and CancelRequest apply.
        let _cancel = self.session.begin_message();
        // Read before planning: a change made meanwhile plans it again.
        let catalog = self.session.catalog_version();
        let prepared = async {
            let mut commands = self.session.parse(sql).await?;
            if commands.len() > 1 {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    "cannot insert multiple commands into a prepared statement",
                ));
            }
            match commands.pop() {
                None => Ok(None),
                Some(command) => self.session.prepare(command).await.map(Some),
            }
        };
        match prepared.await {
            Ok(prepared) => Ok(prepared.map(|mut prepared| {
                // Executed again and again (a driver's probe, a dashboard's
                // lookup): the statement keeps what planning it made.
                if let Prepared::Plan(query) = &mut prepared {
                    query.kept = Some(KeptPlans::new(query.plan.clone(), catalog));
                }
                ParsedStatement {
                    prepared,
                    sql: sql.to_string(),
                }
            })),
            Err(e) => {
                // A statement that fails to plan is a failed query too.
                self.session.track(sql).end(Some(&e));
                Err(to_pg_error(e))
            }
        }
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        let stmt = &stmt.prepared;
        if let Prepared::Plan(QueryPlan {
            parameter_types: Some(types),
            ..
        }) = stmt
        {
            return Ok(types.to_vec());
        }
        let plan = match stmt {
            Prepared::Plan(QueryPlan { plan, .. }) | Prepared::Insert(plan) => plan,
            Prepared::Write(write) => &write.plan,
            _ => return Ok(vec![]),
        };
        crate::session::parameter_types(plan)
            .map_err(to_pg_error)?
            .iter()
            .map(|ty| ty.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let stmt = &stmt.prepared;
        let columns = match stmt {
            Prepared::Plan(query) => query.output_schema().fields().len(),
            Prepared::Fetch { schema, .. } => schema.fields().len(),
            _ => 0,
        };
        if let Some(format) = column_format {
            check_result_formats(format, columns)?;
        }
        match stmt {
            Prepared::Plan(query) => super::encode::pg_fields(
                &query.output_schema(),
                column_format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            Prepared::Fetch { schema, .. } => super::encode::pg_fields(
                schema,
                column_format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            Prepared::Command(_)
            | Prepared::Store { .. }
            | Prepared::Declare { .. }
            | Prepared::Copy { .. }
            | Prepared::Insert(_)
            | Prepared::Write(_) => Ok(vec![]),
        }
    }
}
