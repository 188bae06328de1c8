//! PostgreSQL's behaviour where DataFusion's differs, in one place, grouped by
//! the stage each piece hooks into: the raw text ([`text`]), the parsed
//! statement ([`statement`]), the logical plan ([`plan`]), catalog views
//! ([`catalog`]), functions ([`functions`]) and session settings
//! ([`settings`]).
//!
//! Two entry points: [`PostgresDialect`] for the session template the engine
//! builds, and [`incoming_text`] / [`incoming_statement`] /
//! [`incoming_query`] for SQL a client sends, in the order the statement
//! parser applies them. Each shim has SQL-level cases in `tests/slt/`.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use vivace_catalog::DATABASE;

use crate::engine::SqlDialect;
use crate::error::{SqlError, SqlResult};

pub mod catalog;
pub mod functions;
pub mod plan;
pub mod settings;
pub mod statement;
pub mod text;

/// What a client's SQL text becomes before it is parsed: a catalog query a
/// driver sends verbatim, swapped for one DataFusion plans; otherwise the text
/// with the marks the parser needs.
pub enum IncomingText<'a> {
    /// A known driver query, replaced.
    Driver(text::driver_queries::Replacement),
    /// SQL to parse.
    Sql(Cow<'a, str>),
}

/// The text stage, for one statement's text.
pub fn incoming_text(text: &str) -> IncomingText<'_> {
    if let Some(replaced) = text::driver_queries::replacement(text) {
        return IncomingText::Driver(replaced);
    }
    IncomingText::Sql(
        match text::regproc_literals::regproc_literals_as_names(text) {
            Cow::Borrowed(text) => text::data_subqueries::protect(text),
            Cow::Owned(text) => Cow::Owned(text::data_subqueries::protect(&text).into_owned()),
        },
    )
}

/// The statement stage, for every parsed statement.
pub fn incoming_statement(stmt: &mut Statement) -> SqlResult<()> {
    statement::like_escape::rewrite(stmt)?;
    statement::empty_catalog_subqueries::rewrite(stmt);
    Ok(())
}

/// The statement stage's rewrites for a query about to be planned (also the
/// body of `PREPARE`): set-returning functions and regclass casts.
pub fn incoming_query(stmt: &mut Statement) {
    statement::sql_rewrite::rewrite(stmt);
    statement::regclass_casts::rewrite(stmt);
}

/// PostgreSQL, as the session template speaks it.
pub struct PostgresDialect;

#[async_trait]
impl SqlDialect for PostgresDialect {
    fn analyzer_rules(&self) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
        vec![
            Arc::new(plan::numeric_division::NumericDivision),
            Arc::new(plan::unknown_literals::BooleanLiterals),
        ]
    }

    async fn install(&self, ctx: &SessionContext) -> anyhow::Result<()> {
        setup_pg_catalog(ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| anyhow::anyhow!("cannot set up pg_catalog: {e}"))?;
        let catalog = ctx.catalog(DATABASE).context("default catalog missing")?;
        catalog.register_schema(
            "information_schema",
            Arc::new(catalog::information_schema::PgInformationSchema::new(
                ctx.state().catalog_list().clone(),
            )),
        )?;
        let pg_catalog = catalog.schema("pg_catalog").context("pg_catalog missing")?;
        let indexes = catalog::source_keys::RelationDefinitions::default();
        catalog.register_schema(
            "pg_catalog",
            Arc::new(
                catalog::pg_catalog_overlay::PgCatalogOverlay::new(
                    pg_catalog,
                    ctx.state().catalog_list().clone(),
                    indexes.clone(),
                )
                .await?,
            ),
        )?;
        for function in functions::describe::relation_definitions(indexes) {
            ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(function));
        }
        for function in functions::template_functions(ctx, ctx.state().catalog_list().clone())
            .await?
            .into_iter()
            .chain(statement::sql_rewrite::functions())
            .chain(statement::regclass_casts::functions())
        {
            ctx.register_udf(function);
        }
        ctx.register_udaf(text::data_subqueries::single_row_aggregate());
        // PostgreSQL's avg, sum and numeric division, in place of DataFusion's;
        // workers register the same (plans name them).
        for function in vivace_functions::aggregate_functions() {
            ctx.register_udaf(function.as_ref().clone());
        }
        for function in vivace_functions::scalar_functions() {
            ctx.register_udf(function.as_ref().clone());
        }

        Ok(())
    }

    async fn plan_view(&self, state: &SessionState, query: &str) -> SqlResult<LogicalPlan> {
        let mut statements = datafusion_pg_catalog::sql::PostgresCompatibilityParser::new()
            .parse(query)
            .map_err(SqlError::from)?;
        let (Some(mut statement), true) = (statements.pop(), statements.is_empty()) else {
            return Err(SqlError::new(
                crate::error::sqlstate::SYNTAX_ERROR,
                "a view's query must be one statement",
            ));
        };
        crate::engine::nesting::balance(&mut statement)?;
        incoming_query(&mut statement);
        let plan::NamedPlan { plan, names } = plan::plan_query(state, Box::new(statement)).await?;
        match names {
            // PostgreSQL's names for its result columns (`count`, `?column?`).
            Some(names) => {
                let columns = plan.schema().columns();
                let renamed = columns
                    .into_iter()
                    .zip(names)
                    .map(|(column, name)| {
                        datafusion::logical_expr::Expr::Column(column).alias(name)
                    })
                    .collect::<Vec<_>>();
                Ok(datafusion::logical_expr::LogicalPlanBuilder::from(plan)
                    .project(renamed)?
                    .build()?)
            }
            None => Ok(plan),
        }
    }
}
