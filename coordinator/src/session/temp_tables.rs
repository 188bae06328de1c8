//! Session-local temporary tables: `CREATE [LOCAL] TEMP[ORARY] TABLE`, as
//! Tableau's connect check and BI tools' scratch tables use them.
//!
//! Each session sees the shared catalog through [`SessionCatalogs`], which
//! differs in one place: its `public` schema first looks in the session's own
//! in-memory `pg_temp` schema (PostgreSQL searches `pg_temp` first too), and
//! tables that DataFusion registers in `public` from this session (only temp
//! tables reach there: every other CREATE is refused) land in `pg_temp`. Other
//! sessions never see them, and they vanish with the session.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::common::Result;

use vivace_catalog::{DATABASE, DEFAULT_SCHEMA};

use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::CreateMemoryTable;

use crate::engine::{CatalogVersion, DdlOutcome};
use crate::error::{SqlError, SqlResult, sqlstate};

/// The schema name temp tables can be qualified with.
pub const TEMP_SCHEMA: &str = "pg_temp";

/// A session's view of the catalogs, with its temp tables.
#[derive(Debug)]
pub struct SessionCatalogs {
    shared: Arc<dyn CatalogProviderList>,
    temp: Arc<TempSchema>,
}

impl SessionCatalogs {
    /// Wrap the engine's catalogs for one session.
    pub fn new(shared: Arc<dyn CatalogProviderList>) -> Self {
        Self {
            shared,
            temp: Arc::new(TempSchema {
                tables: MemorySchemaProvider::new(),
                version: CatalogVersion::default(),
            }),
        }
    }

    /// How many temp tables the session created or dropped: its own part of
    /// the catalog version its prepared statements are planned at.
    pub fn temp_version(&self) -> u64 {
        self.temp.version.current()
    }

    /// Drop temp table `name`; false if the session has none of that name.
    pub fn drop_temp(&self, name: &str) -> Result<bool> {
        Ok(self.temp.deregister_table(name)?.is_some())
    }

    /// Create the temp table `create` describes in the session's `pg_temp`.
    /// It may shadow a shared table of the same name, as in PostgreSQL
    /// (DataFusion's own CREATE finds the shared table and refuses); a temp
    /// table of that name is an error (42P07), or skipped with `IF NOT EXISTS`.
    pub async fn create_temp(
        &self,
        state: SessionState,
        create: CreateMemoryTable,
    ) -> SqlResult<DdlOutcome> {
        let name = create.name.table().to_string();
        if self.has_temp(&name) {
            if create.if_not_exists {
                return Ok(DdlOutcome::Skipped);
            }
            if !create.or_replace {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_TABLE,
                    format!("relation \"{name}\" already exists"),
                ));
            }
        }
        let input = state.optimize(&create.input)?;
        let schema = Arc::clone(input.schema().inner());
        let batches = DataFrame::new(state, input).collect_partitioned().await?;
        let table = MemTable::try_new(schema, batches)?
            .with_constraints(create.constraints)
            .with_column_defaults(create.column_defaults.into_iter().collect());
        self.temp.register_table(name, Arc::new(table))?;
        Ok(DdlOutcome::Done)
    }

    /// Whether the session has a temp table `name`.
    pub fn has_temp(&self, name: &str) -> bool {
        self.temp.table_exist(name)
    }
}

impl CatalogProviderList for SessionCatalogs {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.shared.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.shared.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let shared = self.shared.catalog(name)?;
        if name != DATABASE {
            return Some(shared);
        }
        Some(Arc::new(SessionCatalog {
            shared,
            temp: self.temp.clone(),
        }))
    }
}

#[derive(Debug)]
struct SessionCatalog {
    shared: Arc<dyn CatalogProvider>,
    temp: Arc<TempSchema>,
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.shared.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            TEMP_SCHEMA => Some(self.temp.clone()),
            DEFAULT_SCHEMA => Some(Arc::new(TempFirst {
                temp: self.temp.clone(),
                public: self.shared.schema(name)?,
            })),
            _ => self.shared.schema(name),
        }
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.shared.register_schema(name, schema)
    }
}

/// A session's `pg_temp` schema: every table created or dropped in it moves
/// its version on, so that the session's prepared statements are planned again.
#[derive(Debug)]
struct TempSchema {
    tables: MemorySchemaProvider,
    version: CatalogVersion,
}

#[async_trait]
impl SchemaProvider for TempSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.tables.table(name).await
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let registered = self.tables.register_table(name, table);
        self.version.bump();
        registered
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let dropped = self.tables.deregister_table(name);
        self.version.bump();
        dropped
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.table_exist(name)
    }
}

/// `public` as one session sees it: its temp tables, then the shared tables.
#[derive(Debug)]
struct TempFirst {
    temp: Arc<TempSchema>,
    public: Arc<dyn SchemaProvider>,
}

#[async_trait]
impl SchemaProvider for TempFirst {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.temp.table_names();
        names.extend(self.public.table_names());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.temp.table(name).await? {
            Some(table) => Ok(Some(table)),
            None => self.public.table(name).await,
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.temp.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.temp.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.temp.table_exist(name) || self.public.table_exist(name)
    }
}
