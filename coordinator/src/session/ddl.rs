//! Vivace DDL: turning a planned `CREATE EXTERNAL TABLE` into a connector request,
//! and rendering `SHOW TABLES`, `SHOW CREATE TABLE` and `DESCRIBE` results.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::logical_expr::CreateExternalTable;
use vivace_catalog::TableDefinition;
use vivace_connectors::TableRequest;

use crate::error::{SqlError, SqlResult};
use crate::pgcompat::functions::text::quote_ident;
use crate::session::sql_text::table_reference_to_name;

/// Build a connector request from DataFusion's planned `CREATE EXTERNAL TABLE`.
pub fn table_request(cmd: &CreateExternalTable) -> SqlResult<TableRequest> {
    if cmd.or_replace || cmd.temporary || cmd.unbounded || !cmd.order_exprs.is_empty() {
        return Err(SqlError::not_supported(
            "OR REPLACE, TEMPORARY, UNBOUNDED and WITH ORDER are not supported on external tables",
        ));
    }
    let location = match cmd.locations.as_slice() {
        [one] => one.clone(),
        _ => return Err(SqlError::not_supported("exactly one LOCATION is supported")),
    };
    let schema = cmd.schema.as_arrow();
    Ok(TableRequest {
        name: table_reference_to_name(&cmd.name)?,
        connector: cmd.file_type.to_ascii_lowercase(),
        location,
        declared_schema: (!schema.fields().is_empty()).then(|| Arc::new(schema.clone())),
        partition_columns: cmd.table_partition_cols.clone(),
        options: cmd
            .options
            .iter()
            // DataFusion's planner prefixes undotted keys with `format.`; store
            // the keys as the admin wrote them.
            .map(|(k, v)| {
                let k = k.to_ascii_lowercase();
                let k = k.strip_prefix("format.").map(str::to_string).unwrap_or(k);
                (k, v.clone())
            })
            .collect::<BTreeMap<_, _>>(),
    })
}

/// PostgreSQL's name for an Arrow type, as `format_type` would print it.
pub fn pg_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::Dictionary(_, value) => pg_type_name(value),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("{}[]", pg_type_name(f.data_type()))
        }
        DataType::Struct(_) | DataType::Map(_, _) => "json".into(),
        DataType::Null => "unknown".into(),
        other => format!("\"{other}\""),
    }
}

/// The SQL type to write in a re-runnable `CREATE EXTERNAL TABLE` for an Arrow type.
fn ddl_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Timestamp(
            TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond,
            None,
        ) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        other => pg_type_name(other).to_uppercase(),
    }
}

/// Quote a string literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Option keys whose values are secrets. The connectors refuse such keys at CREATE
/// time; masking here is a second line of defence for definitions stored earlier.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("_env")
        && ["secret", "password", "token", "credential"]
            .iter()
            .any(|s| key.contains(s))
}

/// Re-runnable DDL for a stored table, secrets masked.
pub fn show_create(def: &TableDefinition) -> String {
    let mut sql = format!("CREATE EXTERNAL TABLE {}", quote_ident(&def.name.table));
    let columns: Vec<String> = def
        .columns
        .iter()
        .map(|c| {
            let ty = c
                .data_type
                .parse::<DataType>()
                .map(|t| ddl_type_name(&t))
                .unwrap_or_else(|_| c.data_type.clone());
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("  {} {ty}{null}", quote_ident(&c.name))
        })
        .collect();
    sql.push_str(&format!(" (\n{}\n)", columns.join(",\n")));
    sql.push_str(&format!("\nSTORED AS {}", def.connector.to_uppercase()));
    if !def.partition_columns.is_empty() {
        let parts: Vec<String> = def
            .partition_columns
            .iter()
            .map(|p| quote_ident(p))
            .collect();
        sql.push_str(&format!("\nPARTITIONED BY ({})", parts.join(", ")));
    }
    sql.push_str(&format!("\nLOCATION {}", quote_literal(&def.location)));
    if !def.options.is_empty() {
        let opts: Vec<String> = def
            .options
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) {
                    "********"
                } else {
                    v.as_str()
                };
                format!("{} {}", quote_literal(k), quote_literal(v))
            })
            .collect();
        sql.push_str(&format!("\nOPTIONS ({})", opts.join(", ")));
    }
    sql
}

/// A batch of non-null text columns.
pub fn text_batch(names: &[&str], columns: Vec<Vec<String>>) -> SqlResult<RecordBatch> {
    let schema: SchemaRef = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema, arrays)
        .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
}

/// `SHOW TABLES`: schema, name, format and location of every external table.
pub fn show_tables_batch(defs: &[TableDefinition]) -> SqlResult<RecordBatch> {
    text_batch(
        &["schema", "name", "stored_as", "location"],
        vec![
            defs.iter().map(|d| d.name.schema.clone()).collect(),
            defs.iter().map(|d| d.name.table.clone()).collect(),
            defs.iter().map(|d| d.connector.to_uppercase()).collect(),
            defs.iter().map(|d| d.location.clone()).collect(),
        ],
    )
}

/// `SHOW CREATE TABLE`: one row with the table name and its DDL.
pub fn show_create_batch(def: &TableDefinition) -> SqlResult<RecordBatch> {
    text_batch(
        &["table", "create_statement"],
        vec![vec![def.name.table.clone()], vec![show_create(def)]],
    )
}

/// `DESCRIBE`: one row per column with its PostgreSQL type and nullability.
pub fn describe_batch(schema: &Schema, partition_columns: &[String]) -> SqlResult<RecordBatch> {
    let fields = schema.fields();
    text_batch(
        &["column_name", "data_type", "is_nullable", "partition_key"],
        vec![
            fields.iter().map(|f| f.name().clone()).collect(),
            fields.iter().map(|f| pg_type_name(f.data_type())).collect(),
            fields
                .iter()
                .map(|f| if f.is_nullable() { "YES" } else { "NO" }.to_string())
                .collect(),
            fields
                .iter()
                .map(|f| {
                    if partition_columns.contains(f.name()) {
                        "YES"
                    } else {
                        "NO"
                    }
                    .to_string()
                })
                .collect(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_catalog::{ColumnDefinition, TableName};

    #[test]
    fn show_create_is_rerunnable_and_masks_secrets() {
        let def = TableDefinition {
            name: TableName::new("public", "Events"),
            connector: "parquet".into(),
            location: "s3://lake/it's/".into(),
            columns: vec![
                ColumnDefinition {
                    name: "user_id".into(),
                    data_type: "Utf8View".into(),
                    nullable: true,
                    source_type: None,
                },
                ColumnDefinition {
                    name: "amount".into(),
                    data_type: "Int64".into(),
                    nullable: false,
                    source_type: None,
                },
                ColumnDefinition {
                    name: "dt".into(),
                    data_type: "Utf8".into(),
                    nullable: false,
                    source_type: None,
                },
            ],
            declared_columns: true,
            partition_columns: vec!["dt".into()],
            options: [
                (
                    "aws.secret_access_key_env".to_string(),
                    "MY_SECRET".to_string(),
                ),
                ("aws.secret_access_key".to_string(), "hunter2".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let sql = show_create(&def);
        assert_eq!(
            sql,
            "CREATE EXTERNAL TABLE \"Events\" (\n  user_id TEXT,\n  amount BIGINT NOT NULL,\n  dt TEXT NOT NULL\n)\nSTORED AS PARQUET\nPARTITIONED BY (dt)\nLOCATION 's3://lake/it''s/'\nOPTIONS ('aws.secret_access_key' '********', 'aws.secret_access_key_env' 'MY_SECRET')"
        );
    }
}
