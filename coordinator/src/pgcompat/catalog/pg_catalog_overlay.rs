//! Corrections over datafusion-pg-catalog's `pg_catalog` schema, for the catalog
//! queries SQLAlchemy and pgjdbc send.
//!
//! datafusion-pg-catalog 0.19 types PostgreSQL's array columns (`pg_index.indkey`,
//! `pg_constraint.conkey`, ...) as text, so `unnest(ix.indkey)` fails to plan, and
//! its `pg_class` lacks `reloptions`. Vivace's external tables have no
//! constraints and no indexes but a source's primary key ([`super::source_keys`]),
//! so `pg_constraint` is served empty and `pg_index` holds only those keys, with
//! the array columns typed as PostgreSQL types them; `pg_class` gains a NULL
//! `reloptions`; `pg_settings` gains the read-only server limits drivers and
//! DBeaver look up there (`max_index_keys`, `max_identifier_length`, ...);
//! `pg_database` states the `C` locale Vivace compares strings by; `pg_views`
//! lists the views.
//! Everything else is the crate's. (A wrapper rather than a fork:
//! the rest of the crate is used as it is.)

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::{MemTable, ViewTable, provider_as_source};
use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};

use super::source_keys::{KeyedView, RelationDefinitions, View};

/// Columns that PostgreSQL types as arrays, with their element types.
const ARRAY_COLUMNS: &[(&str, DataType)] = &[
    ("indkey", DataType::Int16),
    ("indoption", DataType::Int16),
    ("indcollation", DataType::Int32),
    ("indclass", DataType::Int32),
    ("conkey", DataType::Int16),
    ("confkey", DataType::Int16),
    ("confdelsetcols", DataType::Int16),
    ("conpfeqop", DataType::Int32),
    ("conppeqop", DataType::Int32),
    ("conffeqop", DataType::Int32),
    ("conexclop", DataType::Int32),
];

/// `pg_catalog` with the corrections above.
#[derive(Debug)]
pub struct PgCatalogOverlay {
    inner: Arc<dyn SchemaProvider>,
    replaced: HashMap<&'static str, Arc<dyn TableProvider>>,
    catalogs: Arc<dyn CatalogProviderList>,
    indexes: RelationDefinitions,
}

impl PgCatalogOverlay {
    /// Wrap the crate's `pg_catalog` schema over `catalogs`, whose sources'
    /// keys are listed as indexes that `indexes` describes.
    pub async fn new(
        inner: Arc<dyn SchemaProvider>,
        catalogs: Arc<dyn CatalogProviderList>,
        indexes: RelationDefinitions,
    ) -> Result<Self> {
        let mut replaced: HashMap<&'static str, Arc<dyn TableProvider>> = HashMap::new();
        for name in ["pg_index", "pg_constraint"] {
            if let Some(table) = inner.table(name).await? {
                replaced.insert(name, empty_with_arrays(&table.schema())?);
            }
        }
        if let Some(settings) = inner.table("pg_settings").await? {
            replaced.insert("pg_settings", with_server_limits(settings)?);
        }
        Ok(Self {
            inner,
            replaced,
            catalogs,
            indexes,
        })
    }

    /// `pg_class` or `pg_index` with the sources' keys as indexes.
    async fn keyed(&self, view: View) -> Result<Option<Arc<dyn TableProvider>>> {
        let (Some(pg_class), Some(pg_namespace), Some(pg_index)) = (
            self.inner.table("pg_class").await?,
            self.inner.table("pg_namespace").await?,
            self.replaced.get("pg_index"),
        ) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(KeyedView::new(
            view,
            Arc::clone(&self.catalogs),
            pg_class,
            pg_namespace,
            pg_index.schema(),
            self.indexes.clone(),
        ))))
    }
}

/// Read-only settings PostgreSQL reports for every session: (name, value,
/// vartype, unit).
const SERVER_LIMITS: &[(&str, &str, &str, Option<&str>)] = &[
    ("max_index_keys", "32", "integer", None),
    ("max_identifier_length", "63", "integer", None),
    ("max_function_args", "100", "integer", None),
    ("block_size", "8192", "integer", None),
    ("integer_datetimes", "on", "bool", None),
    ("server_encoding", "UTF8", "string", None),
    ("server_version_num", "160006", "integer", None),
];

/// pg_settings plus [`SERVER_LIMITS`] rows it does not have, as `internal`
/// settings from the `default` source.
fn with_server_limits(settings: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
    let schema = settings.schema();
    let text = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let n = SERVER_LIMITS.len();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let values: Option<Vec<Option<&str>>> = match f.name().as_str() {
                "name" => Some(SERVER_LIMITS.iter().map(|l| Some(l.0)).collect()),
                "setting" | "reset_val" | "boot_val" => {
                    Some(SERVER_LIMITS.iter().map(|l| Some(l.1)).collect())
                }
                "vartype" => Some(SERVER_LIMITS.iter().map(|l| Some(l.2)).collect()),
                "unit" => Some(SERVER_LIMITS.iter().map(|l| l.3).collect()),
                "context" => Some(vec![Some("internal"); n]),
                "source" => Some(vec![Some("default"); n]),
                "category" => Some(vec![Some("Preset Options"); n]),
                _ => None,
            };
            match values {
                Some(v) if f.data_type() == &DataType::Utf8 => Ok(text(v)),
                Some(v) => {
                    datafusion::arrow::compute::cast(&text(v), f.data_type()).map_err(Into::into)
                }
                None => Ok(new_null_array(f.data_type(), n)),
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let nullable = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let rows = RecordBatch::try_new(nullable.clone(), columns)?;
    let extra = MemTable::try_new(nullable, vec![vec![rows]])?;
    let present = col("name").in_list(SERVER_LIMITS.iter().map(|l| lit(l.0)).collect(), true);
    let plan = LogicalPlanBuilder::scan("pg_settings", provider_as_source(settings), None)?
        .filter(present)?
        .union(
            LogicalPlanBuilder::scan("server_limits", provider_as_source(Arc::new(extra)), None)?
                .build()?,
        )?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

fn empty_with_arrays(schema: &Schema) -> Result<Arc<dyn TableProvider>> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(
            |f| match ARRAY_COLUMNS.iter().find(|(name, _)| name == f.name()) {
                Some((_, element)) => Field::new(
                    f.name(),
                    DataType::List(Arc::new(Field::new_list_field(element.clone(), true))),
                    true,
                ),
                None => f.as_ref().clone(),
            },
        )
        .collect();
    Ok(Arc::new(MemTable::try_new(
        Arc::new(Schema::new(fields)),
        vec![vec![]],
    )?))
}

/// `pg_views` from DataFusion's `information_schema.views`: every view with
/// its query (the crate's is empty).
async fn pg_views(catalogs: &Arc<dyn CatalogProviderList>) -> Result<Arc<dyn TableProvider>> {
    let Some(views) = InformationSchemaProvider::new(Arc::clone(catalogs))
        .table("views")
        .await?
    else {
        return Ok(Arc::new(MemTable::try_new(
            Arc::new(Schema::empty()),
            vec![vec![]],
        )?));
    };
    let plan = LogicalPlanBuilder::scan("views", provider_as_source(views), None)?
        .filter(col("definition").is_not_null())?
        .project(vec![
            col("table_schema").alias("schemaname"),
            col("table_name").alias("viewname"),
            lit("vivace").alias("viewowner"),
            col("definition"),
        ])?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// pg_database with the locale Vivace actually sorts and compares by: `C`
/// (byte order, as DataFusion compares strings) from the `libc` provider,
/// spelled `c` as in PostgreSQL, where the crate says `en_US.UTF-8` and `libc`.
fn with_c_locale(pg_database: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    let schema = pg_database.schema();
    let columns: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            name @ ("datcollate" | "datctype") => lit("C").alias(name),
            "datlocprovider" => lit("c").alias("datlocprovider"),
            name => col(name),
        })
        .collect();
    let plan = LogicalPlanBuilder::scan("pg_database", provider_as_source(pg_database), None)?
        .project(columns)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, datafusion::error::DataFusionError> {
        let name_lower = name.to_ascii_lowercase();
        if name_lower == "pg_class" {
            return self.keyed(View::Class).await;
        }
        if name_lower == "pg_index" {
            return self.keyed(View::Index).await;
        }
        if name_lower == "pg_views" {
            return Ok(Some(pg_views(&self.catalogs).await?));
        }
        if name_lower == "pg_database" {
            return match self.inner.table(name).await? {
                Some(t) => Ok(Some(with_c_locale(t)?)),
                None => Ok(None),
            };
        }
        match self.replaced.get(name_lower.as_str()) {
            Some(table) => Ok(Some(table.clone())),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}
