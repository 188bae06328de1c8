//! PostgreSQL's behaviour where DataFusion's differs, in one place: what the
//! session template gets ([`PostgresDialect`]: functions, `pg_catalog`,
//! `information_schema`, rules before type coercion) and, for incoming SQL,
//! the rewrites the statement parser applies.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use vivace_catalog::DATABASE;

use crate::engine::SqlDialect;

/// PostgreSQL, as the session template speaks it.
pub struct PostgresDialect;

#[async_trait]
impl SqlDialect for PostgresDialect {
    fn analyzer_rules(&self) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
        vec![
            Arc::new(crate::numeric_division::NumericDivision),
            Arc::new(crate::unknown_literals::BooleanLiterals),
        ]
    }

    async fn install(&self, ctx: &SessionContext) -> anyhow::Result<()> {
        setup_pg_catalog(ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| anyhow::anyhow!("cannot set up pg_catalog: {e}"))?;
        let catalog = ctx.catalog(DATABASE).context("default catalog missing")?;
        catalog.register_schema(
            "information_schema",
            Arc::new(crate::information_schema::PgInformationSchema::new(
                ctx.state().catalog_list().clone(),
            )),
        )?;
        let pg_catalog = catalog.schema("pg_catalog").context("pg_catalog missing")?;
        catalog.register_schema(
            "pg_catalog",
            Arc::new(crate::pg_catalog_overlay::PgCatalogOverlay::new(pg_catalog).await?),
        )?;
        for function in crate::functions::catalog_functions(ctx.state().catalog_list().clone())
            .into_iter()
            .chain(crate::sql_rewrite::functions())
            .chain(crate::regclass_casts::functions())
            .chain(crate::privileges::functions())
        {
            ctx.register_udf(function);
        }
        for function in crate::proc_functions::functions(ctx).await? {
            ctx.register_udf(function);
        }
        ctx.register_udaf(crate::data_subqueries::single_row_aggregate());
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
}
