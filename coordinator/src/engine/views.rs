//! Views: stored queries, planned by the SQL dialect and registered as
//! DataFusion views (inlined into every query that names them, so filters on
//! a view reach its tables' sources).
//!
//! A view's plan holds the tables it read when it was planned, so every DDL
//! statement re-plans every view ([`Engine::refresh_views`]): a view then
//! reads the tables of the moment. A view whose table is gone stays listed
//! with the columns it last had, and a query that reads it fails with 42P01
//! naming what is missing, until the table is back.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, LogicalPlan, TableType};
use datafusion::physical_plan::ExecutionPlan;
use vivace_catalog::{ColumnDefinition, TableName, ViewDefinition};

use super::{DdlOutcome, Engine};
use crate::error::{SqlError, SqlResult, sqlstate};

impl Engine {
    /// Plan, persist and register a view (`or_replace`: over one of the same
    /// name).
    pub async fn create_view(&self, mut def: ViewDefinition, or_replace: bool) -> SqlResult<()> {
        super::tables::check_schema(&def.name)?;
        let _guard = self.ddl.lock().await;
        if self.store.get_table(&def.name)?.is_some() {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", def.name.table),
            ));
        }
        let exists = self.view(&def.name)?.is_some();
        if exists && !or_replace {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", def.name.table),
            ));
        }
        // Planned without the view it replaces: a view cannot read itself.
        if exists {
            let _ = self.tables.deregister_table(&def.name.table);
        }
        let plan = match self.plan_view(&def).await {
            Ok(plan) => plan,
            Err(e) => {
                self.refresh_views().await?;
                return Err(e);
            }
        };
        def.output = vivace_connectors::columns::to_columns(plan.schema().as_arrow());
        self.store.insert_view(&def, or_replace)?;
        tracing::info!(view = %def.name, "view created");
        self.refresh_views().await
    }

    /// Forget a view.
    pub async fn drop_view(&self, name: &TableName, if_exists: bool) -> SqlResult<DdlOutcome> {
        super::tables::check_schema(name)?;
        let _guard = self.ddl.lock().await;
        if self.view(name)?.is_none() {
            if self.store.get_table(name)?.is_some() {
                return Err(SqlError::new(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{}\" is not a view; use DROP TABLE", name.table),
                ));
            }
            if if_exists {
                return Ok(DdlOutcome::Skipped);
            }
            return Err(SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!("view \"{}\" does not exist", name.table),
            ));
        }
        self.store.drop_view(name)?;
        self.tables
            .deregister_table(&name.table)
            .map_err(SqlError::from)?;
        tracing::info!(view = %name, "view dropped");
        self.refresh_views().await?;
        Ok(DdlOutcome::Done)
    }

    /// Whether `name` is a stored view.
    pub fn is_view(&self, name: &TableName) -> SqlResult<bool> {
        Ok(self.view(name)?.is_some())
    }

    fn view(&self, name: &TableName) -> SqlResult<Option<ViewDefinition>> {
        Ok(self
            .store
            .list_views()?
            .into_iter()
            .find(|v| &v.name == name))
    }

    /// The view's plan over the tables registered now, its columns named as
    /// its column list says.
    async fn plan_view(&self, def: &ViewDefinition) -> SqlResult<LogicalPlan> {
        let plan = self.dialect.plan_view(&self.template, &def.query).await?;
        if def.columns.is_empty() {
            return Ok(plan);
        }
        let fields = plan.schema().columns();
        if def.columns.len() > fields.len() {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "CREATE VIEW specifies more column names than columns",
            ));
        }
        let exprs: Vec<Expr> = fields
            .into_iter()
            .enumerate()
            .map(|(i, column)| {
                let name = def.columns.get(i).unwrap_or(&column.name).clone();
                Expr::Column(column).alias(name)
            })
            .collect();
        Ok(datafusion::logical_expr::LogicalPlanBuilder::from(plan)
            .project(exprs)?
            .build()?)
    }

    /// Re-plan every stored view over the tables of the moment (call with
    /// the DDL lock held). Views that read views are planned once what they
    /// read is; a view that cannot be planned is registered as
    /// [`UnreadableView`].
    pub(super) async fn refresh_views(&self) -> SqlResult<()> {
        let views = self.store.list_views()?;
        for view in &views {
            // Stale plans must not be read while views are planned again.
            let _ = self.tables.deregister_table(&view.name.table);
        }
        let mut pending = views;
        loop {
            let mut failed = Vec::new();
            let planned_before = pending.len();
            for view in pending {
                match self.plan_view(&view).await {
                    Ok(plan) => self.register_view(&view, plan)?,
                    Err(e) => failed.push((view, e)),
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if failed.len() == planned_before {
                for (view, error) in &failed {
                    tracing::debug!(view = %view.name, error = %error.message, "view unreadable");
                    self.register_unreadable(view, error)?;
                }
                // A view over an unreadable view plans against its columns
                // and fails, when read, with what the other misses.
                for (view, _) in failed {
                    if let Ok(plan) = self.plan_view(&view).await {
                        self.register_view(&view, plan)?;
                    }
                }
                return Ok(());
            }
            pending = failed.into_iter().map(|(view, _)| view).collect();
        }
    }
}

impl Engine {
    fn register_view(&self, view: &ViewDefinition, plan: LogicalPlan) -> SqlResult<()> {
        let provider = ViewTable::new(plan, Some(view.query.clone()));
        let _ = self.tables.deregister_table(&view.name.table);
        self.tables
            .register_table(view.name.table.clone(), Arc::new(provider))
            .map_err(SqlError::from)?;
        Ok(())
    }

    fn register_unreadable(&self, view: &ViewDefinition, error: &SqlError) -> SqlResult<()> {
        let provider = UnreadableView::new(view.clone(), error.clone());
        let _ = self.tables.deregister_table(&view.name.table);
        self.tables
            .register_table(view.name.table.clone(), Arc::new(provider))
            .map_err(SqlError::from)?;
        Ok(())
    }
}

/// A view that cannot be planned now (a table it reads is gone): listed
/// with its last columns; reading it fails with why.
#[derive(Debug)]
pub struct UnreadableView {
    def: ViewDefinition,
    schema: SchemaRef,
    error: SqlError,
}

impl UnreadableView {
    fn new(def: ViewDefinition, error: SqlError) -> Self {
        // Types the catalog wrote itself read back; should one not, the
        // view still lists (its columns as text) and still fails when read.
        let schema = vivace_connectors::columns::from_columns(&def.output).unwrap_or_else(|_| {
            let text = |c: &ColumnDefinition| Field::new(&c.name, DataType::Utf8, true);
            Arc::new(Schema::new(def.output.iter().map(text).collect::<Vec<_>>()))
        });
        Self { schema, def, error }
    }
}

#[async_trait]
impl TableProvider for UnreadableView {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.def.query)
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let code = if self.error.code == sqlstate::UNDEFINED_TABLE {
            sqlstate::UNDEFINED_TABLE
        } else {
            sqlstate::INVALID_OBJECT_DEFINITION
        };
        Err(DataFusionError::External(Box::new(SqlError::new(
            code,
            format!(
                "view \"{}\" cannot be read: {}",
                self.def.name.table, self.error.message
            ),
        ))))
    }
}
