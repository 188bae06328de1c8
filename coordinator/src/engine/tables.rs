//! Tables and external schemas: DDL (validate against the source, persist,
//! register), the stored catalog registered at start-up, and what workers must
//! prepare for the registered tables.

use std::sync::Arc;

use anyhow::Context;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use vivace_catalog::{DATABASE, DEFAULT_SCHEMA, SchemaDefinition, TableDefinition, TableName};
use vivace_connectors::{ConnectorRegistry, SchemaRequest, TableRequest, WORKER_NEEDS_HEADER};

use super::{DdlOutcome, Engine};
use crate::error::{SqlError, SqlResult, sqlstate};

impl Engine {
    /// Register every stored definition. A table whose source cannot be opened
    /// (e.g. a credential variable missing) is logged and left out of the session
    /// catalog, but stays stored so it can be fixed or dropped.
    pub(super) fn register_stored_tables(&self) -> anyhow::Result<()> {
        for def in self
            .store
            .list_tables()
            .context("cannot read the catalog")?
        {
            match self.open_table(&def) {
                Ok(()) => tracing::debug!(table = %def.name, "registered"),
                Err(e) => {
                    tracing::warn!(table = %def.name, error = %e.message, "table not available")
                }
            }
        }
        Ok(())
    }

    /// Register every stored external schema from its cached tables (no I/O).
    /// A schema that cannot be opened is logged and left out, but stays stored.
    pub(super) fn register_stored_schemas(&self) -> anyhow::Result<()> {
        for def in self
            .store
            .list_schemas()
            .context("cannot read the catalog")?
        {
            let opened = self.schema_provider(&def).and_then(|provider| {
                self.catalog()?
                    .register_schema(&def.name, provider)
                    .map_err(SqlError::from)
            });
            match opened {
                Ok(_) => tracing::debug!(schema = %def.name, "registered"),
                Err(e) => {
                    tracing::warn!(schema = %def.name, error = %e.message, "schema not available")
                }
            }
        }
        Ok(())
    }

    fn catalog(&self) -> SqlResult<Arc<dyn datafusion::catalog::CatalogProvider>> {
        self.template
            .catalog_list()
            .catalog(DATABASE)
            .ok_or_else(|| SqlError::new(sqlstate::INTERNAL_ERROR, "default catalog missing"))
    }

    /// The tables of an external schema, opened from their cached definitions.
    fn schema_provider(&self, def: &SchemaDefinition) -> SqlResult<Arc<dyn SchemaProvider>> {
        let connector = self.connectors.get(&def.connector)?;
        let schema = Arc::new(MemorySchemaProvider::new());
        for table in &def.tables {
            let provider = connector.open(table, &self.template)?;
            schema
                .register_table(table.name.table.clone(), provider)
                .map_err(SqlError::from)?;
        }
        Ok(schema)
    }

    /// Discover the tables of a remote schema, persist them, and make them
    /// queryable as `name.table`.
    pub async fn create_schema(
        &self,
        request: SchemaRequest,
        if_not_exists: bool,
    ) -> SqlResult<DdlOutcome> {
        let _guard = self.begin_ddl().await;
        let taken = self.store.get_schema(&request.name)?.is_some();
        if taken && if_not_exists {
            return Ok(DdlOutcome::Skipped);
        }
        if taken || self.catalog()?.schema(&request.name).is_some() {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_SCHEMA,
                format!("schema \"{}\" already exists", request.name),
            ));
        }
        let def = self.resolve_schema(request).await?;
        let provider = self.schema_provider(&def)?;
        self.store.insert_schema(&def)?;
        self.catalog()?
            .register_schema(&def.name, provider)
            .map_err(SqlError::from)?;
        tracing::info!(schema = %def.name, tables = def.tables.len(), "external schema created");
        self.refresh_views().await?;
        Ok(DdlOutcome::Done)
    }

    /// Discover the tables of a stored external schema again and replace them.
    pub async fn refresh_schema(&self, name: &str) -> SqlResult<()> {
        let _guard = self.begin_ddl().await;
        let old = self.stored_schema(name)?;
        let def = self
            .resolve_schema(SchemaRequest {
                name: old.name,
                connector: old.connector,
                location: old.location,
                options: old.options,
            })
            .await?;
        let provider = self.schema_provider(&def)?;
        self.store.replace_schema(&def)?;
        self.catalog()?
            .register_schema(&def.name, provider)
            .map_err(SqlError::from)?;
        tracing::info!(schema = %def.name, tables = def.tables.len(), "external schema refreshed");
        self.refresh_views().await?;
        Ok(())
    }

    /// Forget an external schema and its tables.
    pub async fn drop_schema(&self, name: &str, if_exists: bool) -> SqlResult<DdlOutcome> {
        let _guard = self.begin_ddl().await;
        if self.store.get_schema(name)?.is_none() && if_exists {
            return Ok(DdlOutcome::Skipped);
        }
        self.stored_schema(name)?;
        self.store.drop_schema(name)?;
        self.catalog()?
            .deregister_schema(name, true)
            .map_err(SqlError::from)?;
        tracing::info!(schema = %name, "external schema dropped");
        self.refresh_views().await?;
        Ok(DdlOutcome::Done)
    }

    fn stored_schema(&self, name: &str) -> SqlResult<SchemaDefinition> {
        self.store.get_schema(name)?.ok_or_else(|| {
            SqlError::new(
                sqlstate::INVALID_SCHEMA_NAME,
                format!("external schema \"{name}\" does not exist"),
            )
        })
    }

    async fn resolve_schema(&self, request: SchemaRequest) -> SqlResult<SchemaDefinition> {
        let connector = self.connectors.get(&request.connector)?;
        let tables = connector
            .resolve_schema(request.clone(), &self.template)
            .await?;
        Ok(SchemaDefinition {
            name: request.name,
            connector: request.connector,
            location: request.location,
            options: request.options,
            tables,
        })
    }

    pub(super) fn open_table(&self, def: &TableDefinition) -> SqlResult<()> {
        let connector = self.connectors.get(&def.connector)?;
        let provider = connector.open(def, &self.template)?;
        self.remember_worker_needs(def)?;
        self.tables
            .register_table(def.name.table.clone(), provider)
            .map_err(SqlError::from)?;
        Ok(())
    }

    pub(super) fn remember_worker_needs(&self, def: &TableDefinition) -> SqlResult<()> {
        let needs = self.connectors.worker_needs(def)?;
        let mut known = self.worker_needs.write().unwrap_or_else(|p| p.into_inner());
        for need in needs {
            known.insert((need.connector.clone(), need.key.clone()), need);
        }
        Ok(())
    }

    /// Headers that tell workers what to prepare (object stores; JSON, no secrets).
    pub fn worker_headers(&self) -> http::HeaderMap {
        let needs = self.worker_needs.read().unwrap_or_else(|p| p.into_inner());
        let mut headers = http::HeaderMap::new();
        if needs.is_empty() {
            return headers;
        }
        let json = ConnectorRegistry::encode_needs(needs.values());
        if let Ok(value) = http::HeaderValue::from_str(&json) {
            headers.insert(WORKER_NEEDS_HEADER, value);
        }
        headers
    }

    /// Validate a new table against its source, persist it, and make it queryable.
    pub async fn create_table(
        &self,
        request: TableRequest,
        if_not_exists: bool,
    ) -> SqlResult<DdlOutcome> {
        check_schema(&request.name)?;
        let _guard = self.begin_ddl().await;
        if self.store.get_table(&request.name)?.is_some() || self.is_view(&request.name)? {
            if if_not_exists {
                return Ok(DdlOutcome::Skipped);
            }
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", request.name.table),
            ));
        }
        let connector = self.connectors.get(&request.connector)?;
        let def = connector.resolve(request, &self.template).await?;
        let provider = connector.open(&def, &self.template)?;
        self.remember_worker_needs(&def)?;
        self.store.insert_table(&def)?;
        self.tables
            .register_table(def.name.table.clone(), provider)
            .map_err(SqlError::from)?;
        tracing::info!(table = %def.name, connector = %def.connector, "external table created");
        self.refresh_views().await?;
        Ok(DdlOutcome::Done)
    }

    /// Forget a table: remove it from the store and from every session.
    pub async fn drop_table(&self, name: &TableName, if_exists: bool) -> SqlResult<DdlOutcome> {
        check_schema(name)?;
        let _guard = self.begin_ddl().await;
        if self.store.get_table(name)?.is_none() {
            if self.is_view(name)? {
                return Err(SqlError::new(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{}\" is not a table; use DROP VIEW", name.table),
                ));
            }
            if if_exists {
                return Ok(DdlOutcome::Skipped);
            }
            return Err(SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!("table \"{}\" does not exist", name.table),
            ));
        }
        self.store.drop_table(name)?;
        self.tables
            .deregister_table(&name.table)
            .map_err(SqlError::from)?;
        tracing::info!(table = %name, "external table dropped");
        self.refresh_views().await?;
        Ok(DdlOutcome::Done)
    }

    /// The stored definition of a table.
    pub fn definition(&self, name: &TableName) -> SqlResult<TableDefinition> {
        check_schema(name)?;
        self.store.get_table(name)?.ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", name.table),
            )
        })
    }

    /// Every stored table definition, those of external schemas included,
    /// ordered by schema then name.
    pub fn definitions(&self) -> SqlResult<Vec<TableDefinition>> {
        let mut defs = self.store.list_tables()?;
        for schema in self.store.list_schemas()? {
            defs.extend(schema.tables);
        }
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(defs)
    }
}

pub(super) fn check_schema(name: &TableName) -> SqlResult<()> {
    if name.schema == DEFAULT_SCHEMA {
        Ok(())
    } else {
        Err(SqlError::new(
            sqlstate::INVALID_SCHEMA_NAME,
            format!("schema \"{}\" does not exist", name.schema),
        ))
    }
}
