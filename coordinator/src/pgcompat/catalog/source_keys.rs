//! A source's primary keys (Cassandra's partition and clustering columns) as
//! PostgreSQL shows primary keys: a unique index per keyed table, in
//! `pg_class` (relkind `i`, and `relhasindex` on the table) and `pg_index`
//! (`indkey` naming the key's columns), with `pg_get_indexdef` giving
//! `CREATE UNIQUE INDEX t_pkey ON s.t USING cassandra ((user_id, day), ts)`.
//! psql's `\d` then prints `"t_pkey" PRIMARY KEY, cassandra ((user_id, day), ts)`.
//!
//! The same scan records each view's query, for `pg_get_viewdef`.
//!
//! Keys come from the tables themselves ([`vivace_connectors::remote::source_key`]):
//! nothing is stored for them. Index oids are the table's oid with bit 30 set,
//! far above the oids datafusion-pg-catalog counts up from 16384.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int16Array, ListArray, RecordBatch, StringArray, UInt32Array,
    new_null_array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::{CatalogProviderList, Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use vivace_connectors::remote::{SourceKey, source_key};

/// Index oid = table oid with this bit set.
const INDEX_OID_BIT: i64 = 1 << 30;

/// One keyed table, as the catalog lists it.
struct KeyedTable {
    schema: String,
    table: String,
    key: SourceKey,
    /// The key's columns as attribute numbers (1-based, schema order).
    attnums: Vec<i16>,
}

/// One index Vivace shows: what `pg_get_indexdef` answers for its oid.
#[derive(Debug, Clone)]
struct IndexDefinition {
    /// The whole `CREATE UNIQUE INDEX ...` statement.
    statement: String,
    /// The key's column names, for `pg_get_indexdef(oid, n, pretty)`.
    columns: Vec<String>,
}

/// What the latest scan of `pg_class` found to describe, by oid: the keys'
/// indexes (for `pg_get_indexdef`) and the views' queries (for
/// `pg_get_viewdef`).
#[derive(Debug, Default)]
struct Described {
    indexes: HashMap<i64, IndexDefinition>,
    views: HashMap<i64, String>,
}

/// [`Described`], shared by the catalog views that fill it and the
/// functions that read it.
#[derive(Debug, Clone, Default)]
pub struct RelationDefinitions(Arc<RwLock<Described>>);

impl RelationDefinitions {
    /// The query of view `oid`, if the latest `pg_class` scan listed it.
    pub fn view(&self, oid: i64) -> Option<String> {
        self.0.read().ok()?.views.get(&oid).cloned()
    }

    /// The statement of index `oid` (`column` 0), or its `column`th key column.
    pub fn index(&self, oid: i64, column: i64) -> Option<String> {
        let described = self.0.read().ok()?;
        let index = described.indexes.get(&oid)?;
        match column {
            0 => Some(index.statement.clone()),
            n => index
                .columns
                .get(usize::try_from(n).ok()?.checked_sub(1)?)
                .cloned(),
        }
    }
}

/// Which of the two views a [`KeyedView`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `pg_class`, with `reloptions` (NULL) added.
    Class,
    /// `pg_index`.
    Index,
}

/// `pg_class` or `pg_index` with the sources' keys as indexes. Built when a
/// query scans it, not when it is named: datafusion-pg-catalog lists
/// `pg_catalog`'s own tables (this one included) while it computes
/// `pg_class`, so naming must not compute.
#[derive(Debug)]
pub struct KeyedView {
    view: View,
    schema: SchemaRef,
    catalogs: Arc<dyn CatalogProviderList>,
    pg_class: Arc<dyn TableProvider>,
    pg_namespace: Arc<dyn TableProvider>,
    indexes: RelationDefinitions,
}

impl KeyedView {
    /// The `view` over datafusion-pg-catalog's `pg_class` and `pg_namespace`,
    /// `pg_index` shaped as `index_schema`, its indexes described by `indexes`.
    pub fn new(
        view: View,
        catalogs: Arc<dyn CatalogProviderList>,
        pg_class: Arc<dyn TableProvider>,
        pg_namespace: Arc<dyn TableProvider>,
        index_schema: SchemaRef,
        indexes: RelationDefinitions,
    ) -> Self {
        let schema = match view {
            View::Class => {
                let mut fields: Vec<Field> = pg_class
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                fields.push(Field::new(
                    "reloptions",
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                    true,
                ));
                Arc::new(Schema::new(fields))
            }
            View::Index => Arc::new(Schema::new(
                index_schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<Field>>(),
            )),
        };
        Self {
            view,
            schema,
            catalogs,
            pg_class,
            pg_namespace,
            indexes,
        }
    }

    /// The view's rows as of now; fills `indexes` for `pg_get_indexdef`.
    async fn rows(&self) -> Result<RecordBatch> {
        let (keyed, views) = described_tables(&self.catalogs).await?;
        let ctx = SessionContext::new();
        ctx.register_table("c", Arc::clone(&self.pg_class))?;
        ctx.register_table("n", Arc::clone(&self.pg_namespace))?;
        let classes = ctx.table("c").await?.collect().await?;
        let classes = concat_batches(&self.pg_class.schema(), &classes)?;
        // The names are joined to the rows just read, not to pg_class read
        // again (it lists every table of every catalog).
        ctx.deregister_table("c")?;
        ctx.register_batch("c", classes.clone())?;
        let oids = if keyed.is_empty() && views.is_empty() {
            HashMap::new()
        } else {
            let names = ctx
                .sql(
                    "SELECT CAST(c.oid AS BIGINT), n.nspname, c.relname \
                     FROM c JOIN n ON c.relnamespace = n.oid",
                )
                .await?
                .collect()
                .await?;
            relation_oids(&names)?
        };
        let found: Vec<(i64, KeyedTable)> = keyed
            .into_iter()
            .filter_map(|t| Some((*oids.get(&(t.schema.clone(), t.table.clone()))?, t)))
            .collect();
        let views = views
            .into_iter()
            .filter_map(|(schema, table, query)| Some((*oids.get(&(schema, table))?, query)))
            .collect();
        self.remember(&found, views);
        match self.view {
            View::Class => {
                let classes = with_index_classes(&classes, &found)?;
                let mut columns = classes.columns().to_vec();
                let reloptions = self.schema.field_with_name("reloptions")?;
                columns.push(new_null_array(reloptions.data_type(), classes.num_rows()));
                Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
            }
            View::Index => index_rows(Arc::clone(&self.schema), &found),
        }
    }

    /// Describe the keyed tables' indexes to `pg_get_indexdef`, and the
    /// views to `pg_get_viewdef`.
    fn remember(&self, found: &[(i64, KeyedTable)], views: HashMap<i64, String>) {
        let definitions = found
            .iter()
            .map(|(oid, table)| {
                let definition = IndexDefinition {
                    statement: format!(
                        "CREATE UNIQUE INDEX {} ON {}.{} USING {}",
                        index_name(&table.table),
                        table.schema,
                        table.table,
                        table.key.describe()
                    ),
                    columns: table.key.columns().map(str::to_string).collect(),
                };
                (oid | INDEX_OID_BIT, definition)
            })
            .collect();
        if let Ok(mut shared) = self.indexes.0.write() {
            *shared = Described {
                indexes: definitions,
                views,
            };
        }
    }
}

#[async_trait]
impl TableProvider for KeyedView {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows().await?;
        MemTable::try_new(Arc::clone(&self.schema), vec![vec![rows]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// The oid of every relation `names` (oid, schema, table rows) lists.
fn relation_oids(names: &[RecordBatch]) -> Result<HashMap<(String, String), i64>> {
    let mut oids = HashMap::new();
    for batch in names {
        let oid = cast(batch.column(0), &DataType::Int64)?;
        let oid = oid.as_primitive::<Int64Type>();
        let schema = cast(batch.column(1), &DataType::Utf8)?;
        let table = cast(batch.column(2), &DataType::Utf8)?;
        let (schema, table) = (schema.as_string::<i32>(), table.as_string::<i32>());
        for row in 0..batch.num_rows() {
            oids.insert(
                (schema.value(row).to_string(), table.value(row).to_string()),
                oid.value(row),
            );
        }
    }
    Ok(oids)
}

/// `t_pkey`, as PostgreSQL names a primary key's index.
fn index_name(table: &str) -> String {
    format!("{table}_pkey")
}

/// Schemas of catalog views, never of sources.
const CATALOG_SCHEMAS: &[&str] = &["pg_catalog", "information_schema"];

/// Every table of every catalog whose source declares a key, and every view
/// with its query (schema, name, query).
async fn described_tables(
    catalogs: &Arc<dyn CatalogProviderList>,
) -> Result<(Vec<KeyedTable>, Vec<(String, String, String)>)> {
    let mut keyed = Vec::new();
    let mut views = Vec::new();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            // The catalog views themselves (reading pg_catalog's tables here
            // would ask for this very list again).
            if CATALOG_SCHEMAS.contains(&schema_name.as_str()) {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in schema.table_names() {
                let Some(provider) = schema.table(&table_name).await? else {
                    continue;
                };
                if let Some(query) = provider.get_table_definition() {
                    views.push((schema_name.clone(), table_name.clone(), query.to_string()));
                }
                let Some(key) = source_key(provider.as_ref()) else {
                    continue;
                };
                let fields = provider.schema();
                let attnums: Option<Vec<i16>> = key
                    .columns()
                    .map(|c| fields.index_of(c).ok().map(|i| i as i16 + 1))
                    .collect();
                if let Some(attnums) = attnums {
                    keyed.push(KeyedTable {
                        schema: schema_name.clone(),
                        table: table_name,
                        key: key.clone(),
                        attnums,
                    });
                }
            }
        }
    }
    Ok((keyed, views))
}

/// `classes` with `relhasindex` set on the keyed tables and one index row per
/// keyed table (a copy of the table's row as an index: its oid, name, kind).
fn with_index_classes(classes: &RecordBatch, found: &[(i64, KeyedTable)]) -> Result<RecordBatch> {
    let schema = classes.schema();
    let oid_column = cast(classes.column(schema.index_of("oid")?), &DataType::Int64)?;
    let oid_column = oid_column.as_primitive::<Int64Type>();
    let row_of: HashMap<i64, u32> = (0..classes.num_rows())
        .map(|row| (oid_column.value(row), row as u32))
        .collect();
    let found_rows: Vec<&(i64, KeyedTable)> = found
        .iter()
        .filter(|(oid, _)| row_of.contains_key(oid))
        .collect();
    let copied = UInt32Array::from(
        found_rows
            .iter()
            .map(|(oid, _)| row_of[oid])
            .collect::<Vec<_>>(),
    );
    let keyed_oids: HashSet<i64> = found_rows.iter().map(|(oid, _)| *oid).collect();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let original = classes.column(i);
        let mut index_rows = take(original.as_ref(), &copied, None)?;
        let original = match field.name().as_str() {
            "relhasindex" => Arc::new(BooleanArray::from(
                (0..classes.num_rows())
                    .map(|row| Some(keyed_oids.contains(&oid_column.value(row))))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
            _ => Arc::clone(original),
        };
        let replaced: Option<ArrayRef> = match field.name().as_str() {
            "oid" | "relfilenode" => Some(Arc::new(datafusion::arrow::array::Int64Array::from(
                found_rows
                    .iter()
                    .map(|(oid, _)| oid | INDEX_OID_BIT)
                    .collect::<Vec<_>>(),
            ))),
            "relname" => Some(Arc::new(StringArray::from(
                found_rows
                    .iter()
                    .map(|(_, t)| index_name(&t.table))
                    .collect::<Vec<_>>(),
            ))),
            "relkind" => Some(Arc::new(StringArray::from(vec!["i"; found_rows.len()]))),
            "relnatts" => Some(Arc::new(Int16Array::from(
                found_rows
                    .iter()
                    .map(|(_, t)| t.attnums.len() as i16)
                    .collect::<Vec<_>>(),
            ))),
            "relhasindex" => Some(Arc::new(BooleanArray::from(vec![false; found_rows.len()]))),
            _ => None,
        };
        if let Some(replaced) = replaced {
            index_rows = cast(&replaced, field.data_type())?;
        }
        columns.push(datafusion::arrow::compute::concat(&[
            original.as_ref(),
            index_rows.as_ref(),
        ])?);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_index` rows for the keyed tables: unique, primary, valid, live.
fn index_rows(schema: SchemaRef, found: &[(i64, KeyedTable)]) -> Result<RecordBatch> {
    let n = found.len();
    let oids = |bit: i64| -> ArrayRef {
        Arc::new(datafusion::arrow::array::Int64Array::from(
            found.iter().map(|(oid, _)| oid | bit).collect::<Vec<_>>(),
        ))
    };
    let flag = |value: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![value; n])) };
    let count = || -> ArrayRef {
        Arc::new(Int16Array::from(
            found
                .iter()
                .map(|(_, t)| t.attnums.len() as i16)
                .collect::<Vec<_>>(),
        ))
    };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values: Option<ArrayRef> = match field.name().as_str() {
            "indexrelid" => Some(oids(INDEX_OID_BIT)),
            "indrelid" => Some(oids(0)),
            "indnatts" | "indnkeyatts" => Some(count()),
            "indisunique" | "indisprimary" | "indimmediate" | "indisvalid" | "indisready"
            | "indislive" => Some(flag(true)),
            "indnullsnotdistinct"
            | "indisexclusion"
            | "indisclustered"
            | "indcheckxmin"
            | "indisreplident" => Some(flag(false)),
            "indkey" => Some(Arc::new(ListArray::from_iter_primitive::<
                datafusion::arrow::datatypes::Int16Type,
                _,
                _,
            >(found.iter().map(|(_, t)| {
                Some(t.attnums.iter().map(|a| Some(*a)).collect::<Vec<_>>())
            })))),
            _ => None,
        };
        columns.push(match values {
            Some(values) => cast(&values, field.data_type())?,
            None => new_null_array(field.data_type(), n),
        });
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_oids_stay_clear_of_table_oids() {
        let oid: i64 = 16_384 + 100_000;
        assert!(oid | INDEX_OID_BIT > oid);
        assert!((oid | INDEX_OID_BIT) < i32::MAX as i64);
        assert_eq!((oid | INDEX_OID_BIT) & !INDEX_OID_BIT, oid);
    }

    #[test]
    fn indexdef_answers_the_statement_and_each_column() {
        let indexes = RelationDefinitions::default();
        indexes.0.write().unwrap().indexes.insert(
            7 | INDEX_OID_BIT,
            IndexDefinition {
                statement: "CREATE UNIQUE INDEX t_pkey ON s.t USING cassandra (a, b)".into(),
                columns: vec!["a".into(), "b".into()],
            },
        );
        let index = 7 | INDEX_OID_BIT;
        assert_eq!(
            indexes.index(index, 0).as_deref(),
            Some("CREATE UNIQUE INDEX t_pkey ON s.t USING cassandra (a, b)")
        );
        assert_eq!(indexes.index(index, 2).as_deref(), Some("b"));
        assert_eq!(indexes.index(index, 3), None);
        assert_eq!(indexes.index(index, -1), None);
        assert_eq!(indexes.index(7, 0), None);
    }
}
