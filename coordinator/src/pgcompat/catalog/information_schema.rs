//! `information_schema` as PostgreSQL clients read it, over DataFusion's own.
//!
//! DataFusion's `information_schema.columns` names types the Arrow way (`Int32`,
//! `Utf8View`) and has no `udt_name`, `udt_schema` or `is_identity`; the constraint
//! views (`table_constraints`, `key_column_usage`, ...) do not exist. Metabase,
//! DBeaver and SQLAlchemy read all of these. This schema wraps DataFusion's:
//! `columns` becomes a view with PostgreSQL's type names and extra columns,
//! `views` lists views only, with PostgreSQL's columns, the
//! constraint views are added (empty: external tables have no constraints), and
//! every other table is DataFusion's. DataFusion's built-in interception of the
//! `information_schema` name is switched off so that this one is found.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{MemTable, ViewTable, provider_as_source};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility, cast, col, lit,
};
use pgwire::api::Type;

/// Views added to DataFusion's, each with its PostgreSQL columns (all text but
/// the positions). External tables declare no constraints, so they are empty.
const CONSTRAINT_VIEWS: &[(&str, &[&str])] = &[
    (
        "table_constraints",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "constraint_type",
            "is_deferrable",
            "initially_deferred",
            "enforced",
            "nulls_distinct",
        ],
    ),
    (
        "key_column_usage",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "column_name",
            "ordinal_position",
            "position_in_unique_constraint",
        ],
    ),
    (
        "referential_constraints",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "unique_constraint_catalog",
            "unique_constraint_schema",
            "unique_constraint_name",
            "match_option",
            "update_rule",
            "delete_rule",
        ],
    ),
    (
        "constraint_column_usage",
        &[
            "table_catalog",
            "table_schema",
            "table_name",
            "column_name",
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
        ],
    ),
    (
        "check_constraints",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "check_clause",
        ],
    ),
];

/// The `information_schema` schema Vivace registers in its catalog.
#[derive(Debug)]
pub struct PgInformationSchema {
    inner: InformationSchemaProvider,
}

impl PgInformationSchema {
    /// DataFusion's information schema over `catalogs`, corrected.
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self {
            inner: InformationSchemaProvider::new(catalogs),
        }
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(CONSTRAINT_VIEWS.iter().map(|(n, _)| n.to_string()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let lower = name.to_ascii_lowercase();
        if let Some((_, columns)) = CONSTRAINT_VIEWS.iter().find(|(n, _)| *n == lower) {
            return Ok(Some(empty_view(columns)?));
        }
        match self.inner.table(&lower).await? {
            Some(columns) if lower == "columns" => Ok(Some(postgres_columns(columns)?)),
            Some(views) if lower == "views" => Ok(Some(postgres_views(views)?)),
            other => Ok(other),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        CONSTRAINT_VIEWS.iter().any(|(n, _)| *n == lower) || self.inner.table_exist(&lower)
    }
}

/// DataFusion's `views` (every table, a NULL definition for the others) as
/// PostgreSQL's: views only, `view_definition`, and the flags of a view that
/// takes no writes.
fn postgres_views(views: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    let mut columns = vec![
        col("table_catalog"),
        col("table_schema"),
        col("table_name"),
        col("definition").alias("view_definition"),
        lit("NONE").alias("check_option"),
    ];
    for flag in [
        "is_updatable",
        "is_insertable_into",
        "is_trigger_updatable",
        "is_trigger_deletable",
        "is_trigger_insertable_into",
    ] {
        columns.push(lit("NO").alias(flag));
    }
    let plan = LogicalPlanBuilder::scan("views", provider_as_source(views), None)?
        .filter(col("definition").is_not_null())?
        .project(columns)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

fn empty_view(columns: &[&str]) -> Result<Arc<dyn TableProvider>> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            let ty = if c.ends_with("position") || c.ends_with("unique_constraint") {
                DataType::Int32
            } else {
                DataType::Utf8
            };
            Field::new(*c, ty, true)
        })
        .collect();
    Ok(Arc::new(MemTable::try_new(
        Arc::new(Schema::new(fields)),
        vec![vec![]],
    )?))
}

/// DataFusion's `columns` with PostgreSQL's type names, `cardinal_number`
/// columns as integers, and the columns it lacks.
fn postgres_columns(inner: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    let sql_name = ScalarUDF::new_from_impl(TypeName::new(TypeNameKind::Sql));
    let udt_name = ScalarUDF::new_from_impl(TypeName::new(TypeNameKind::Udt));
    let int = |name: &str| cast(col(name), DataType::Int32).alias(name);
    let text = |name: &str| col(name).alias(name);
    let null_text = |name: &str| lit(ScalarValue::Utf8(None)).alias(name);
    let exprs: Vec<Expr> = vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("column_name"),
        // DataFusion counts from 0, PostgreSQL (and pg_attribute.attnum) from 1.
        (cast(col("ordinal_position"), DataType::Int32) + lit(1)).alias("ordinal_position"),
        text("column_default"),
        text("is_nullable"),
        sql_name.call(vec![col("data_type")]).alias("data_type"),
        int("character_maximum_length"),
        int("character_octet_length"),
        int("numeric_precision"),
        int("numeric_precision_radix"),
        int("numeric_scale"),
        int("datetime_precision"),
        text("interval_type"),
        lit(ScalarValue::Int32(None)).alias("interval_precision"),
        null_text("character_set_catalog"),
        null_text("character_set_schema"),
        null_text("character_set_name"),
        null_text("collation_catalog"),
        null_text("collation_schema"),
        null_text("collation_name"),
        null_text("domain_catalog"),
        null_text("domain_schema"),
        null_text("domain_name"),
        col("table_catalog").alias("udt_catalog"),
        lit("pg_catalog").alias("udt_schema"),
        udt_name.call(vec![col("data_type")]).alias("udt_name"),
        cast(col("ordinal_position") + lit(1u64), DataType::Utf8).alias("dtd_identifier"),
        lit("NO").alias("is_self_referencing"),
        lit("NO").alias("is_identity"),
        null_text("identity_generation"),
        lit("NEVER").alias("is_generated"),
        null_text("generation_expression"),
        lit("NO").alias("is_updatable"),
    ];
    let plan = LogicalPlanBuilder::scan("columns", provider_as_source(inner), None)?
        .project(exprs)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TypeNameKind {
    /// `data_type`: the SQL-standard spelling (`integer`, `character varying`, `ARRAY`).
    Sql,
    /// `udt_name`: pg_type's name (`int4`, `varchar`, `_int4`).
    Udt,
}

/// Turns DataFusion's Arrow type text into PostgreSQL's name for the type the
/// wire protocol reports for it (arrow-pg's mapping, as pg_attribute uses).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeName {
    kind: TypeNameKind,
    signature: Signature,
}

impl TypeName {
    fn new(kind: TypeNameKind) -> Self {
        Self {
            kind,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TypeName {
    fn name(&self) -> &str {
        match self.kind {
            TypeNameKind::Sql => "vivace_pg_sql_type_name",
            TypeNameKind::Udt => "vivace_pg_udt_name",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let input = input.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * 8);
        for i in 0..input.len() {
            if input.is_null(i) {
                out.append_null();
                continue;
            }
            let arrow = input.value(i);
            match postgres_type(arrow) {
                Some(ty) => out.append_value(match self.kind {
                    TypeNameKind::Sql => crate::pgcompat::catalog::pg_types::sql_name(&ty),
                    TypeNameKind::Udt => ty.name().to_string(),
                }),
                None => out.append_value(arrow),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn postgres_type(arrow: &str) -> Option<Type> {
    crate::pgcompat::catalog::pg_types::wire_type(&DataType::from_str(arrow).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_type_text_maps_to_postgres_names() {
        let names = |arrow: &str| {
            let ty = postgres_type(arrow).unwrap();
            (
                crate::pgcompat::catalog::pg_types::sql_name(&ty),
                ty.name().to_string(),
            )
        };
        assert_eq!(names("Int32"), ("integer".into(), "int4".into()));
        assert_eq!(names("Utf8View"), ("text".into(), "text".into()));
        assert_eq!(
            names("Decimal128(12, 2)"),
            ("numeric".into(), "numeric".into())
        );
        let ts = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None);
        assert_eq!(
            names(&ts.to_string()),
            ("timestamp without time zone".into(), "timestamp".into())
        );
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)));
        assert_eq!(names(&list.to_string()), ("ARRAY".into(), "_int8".into()));
    }
}
