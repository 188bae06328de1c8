//! Views: stored queries, planned by the SQL dialect and registered as
//! DataFusion views (inlined into every query that names them, so filters on
//! a view reach its tables' sources).
//!
//! A view's plan holds the tables it read when it was planned, so every DDL
//! statement re-plans every view ([`Engine::refresh_views`]): a view then
//! reads the tables of the moment. A view whose table is gone stays listed
//! with the columns it last had, and a query that reads it fails with 42P01
//! naming what is missing, until the table is back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, LogicalPlan, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use vivace_catalog::{ColumnDefinition, DEFAULT_SCHEMA, TableName, ViewDefinition};

use super::{DdlOutcome, Engine};
use crate::error::{SqlError, SqlResult, sqlstate};

impl Engine {
    /// Plan, persist and register a view (`or_replace`: over one of the same
    /// name).
    pub async fn create_view(&self, mut def: ViewDefinition, or_replace: bool) -> SqlResult<()> {
        super::tables::check_schema(&def.name)?;
        let _guard = self.begin_ddl().await;
        let exists = self.is_view(&def.name)?;
        if self.store.get_table(&def.name)?.is_some() || (exists && !or_replace) {
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
        let _guard = self.begin_ddl().await;
        if !self.is_view(name)? {
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
        Ok(self.store.list_views()?.iter().any(|v| &v.name == name))
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
    /// the DDL lock held), each after the views it reads, replacing its
    /// registration in place (queries running meanwhile see the old plan or
    /// the new one, never no view). A view that cannot be planned is
    /// registered as [`UnreadableView`]; a view over one plans against its
    /// columns and fails, when read, with what the other misses.
    pub(super) async fn refresh_views(&self) -> SqlResult<()> {
        for (view, cycle) in reading_order(self.store.list_views()?) {
            let planned = match cycle {
                Some(error) => Err(error),
                None => self.plan_view(&view).await,
            };
            match planned {
                Ok(plan) => self.register_view(&view, plan)?,
                Err(error) => {
                    tracing::debug!(view = %view.name, error = %error.message, "view unreadable");
                    self.register_unreadable(&view, &error)?;
                }
            }
        }
        Ok(())
    }
}

/// `views`, each after the views its query reads; the views of a cycle
/// (made by replacing a view to read one that reads it) come with the error
/// they fail with.
fn reading_order(views: Vec<ViewDefinition>) -> Vec<(ViewDefinition, Option<SqlError>)> {
    let index: HashMap<TableName, usize> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.clone(), i))
        .collect();
    let reads: Vec<Vec<usize>> = views
        .iter()
        .map(|v| {
            relations_read(&v.query)
                .iter()
                .filter_map(|name| index.get(name).copied())
                .collect()
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        i: usize,
        reads: &[Vec<usize>],
        marks: &mut [Mark],
        order: &mut Vec<usize>,
        cyclic: &mut HashSet<usize>,
    ) {
        match marks[i] {
            Mark::Done => return,
            Mark::Visiting => {
                cyclic.insert(i);
                return;
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        for &next in &reads[i] {
            visit(next, reads, marks, order, cyclic);
            if cyclic.contains(&next) && marks[next] == Mark::Visiting {
                cyclic.insert(i);
            }
        }
        marks[i] = Mark::Done;
        order.push(i);
    }
    let mut marks = vec![Mark::New; views.len()];
    let mut order = Vec::with_capacity(views.len());
    let mut cyclic = HashSet::new();
    for i in 0..views.len() {
        visit(i, &reads, &mut marks, &mut order, &mut cyclic);
    }
    let mut views: Vec<Option<ViewDefinition>> = views.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| {
            let view = views[i].take()?;
            let error = cyclic.contains(&i).then(|| {
                SqlError::new(
                    sqlstate::INVALID_OBJECT_DEFINITION,
                    format!(
                        "infinite recursion: view \"{}\" reads a view that reads it",
                        view.name.table
                    ),
                )
            });
            Some((view, error))
        })
        .collect()
}

/// The relations a view's query names (unqualified: in the default
/// schema); none when it does not parse (planning then says why).
fn relations_read(query: &str) -> Vec<TableName> {
    let Ok(mut statements) = DFParser::parse_sql_with_dialect(query, &PostgreSqlDialect {}) else {
        return vec![];
    };
    let Some(statement) = statements.pop_front() else {
        return vec![];
    };
    let Ok((relations, _ctes)) = resolve_table_references(&statement, true) else {
        return vec![];
    };
    relations
        .into_iter()
        .map(|r| {
            TableName::new(
                r.schema().unwrap_or(DEFAULT_SCHEMA).to_string(),
                r.table().to_string(),
            )
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, query: &str) -> ViewDefinition {
        ViewDefinition {
            name: TableName::new(DEFAULT_SCHEMA, name),
            query: query.into(),
            columns: vec![],
            output: vec![],
        }
    }

    fn order(views: Vec<ViewDefinition>) -> Vec<(String, bool)> {
        reading_order(views)
            .into_iter()
            .map(|(v, e)| (v.name.table, e.is_some()))
            .collect()
    }

    #[test]
    fn views_come_after_what_they_read() {
        let got = order(vec![
            view("a", "SELECT * FROM b JOIN events ON true"),
            view("b", "SELECT * FROM public.c"),
            view("c", "SELECT 1"),
        ]);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        assert!(got.iter().all(|(_, cyclic)| !cyclic));
    }

    #[test]
    fn views_reading_each_other_are_refused() {
        let got = order(vec![
            view("a", "SELECT * FROM b"),
            view("b", "SELECT * FROM a"),
            view("c", "SELECT * FROM events"),
        ]);
        assert_eq!(got.len(), 3);
        assert!(got.contains(&("a".into(), true)) && got.contains(&("b".into(), true)));
        assert!(got.contains(&("c".into(), false)));
    }
}
