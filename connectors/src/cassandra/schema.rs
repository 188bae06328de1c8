//! Columns of a Cassandra table, from the driver's copy of `system_schema`,
//! with their Arrow types:
//!
//! | CQL | Arrow |
//! |---|---|
//! | ascii, text, varchar | Utf8 |
//! | tinyint, smallint, int, bigint, counter | Int8, Int16, Int32, Int64, Int64 |
//! | varint | Decimal128(38, 0) (a value beyond 38 digits is an error) |
//! | decimal | Decimal128(38, 10) (exact; a value with more than 10 decimals is an error) |
//! | float, double | Float32, Float64 |
//! | boolean | Boolean |
//! | date, time, timestamp | Date32, Time64(ns), Timestamp(ms, UTC) |
//! | duration | Interval(MonthDayNano) |
//! | uuid, timeuuid, inet | Utf8 (canonical text) |
//! | blob | Binary |
//! | list, set | List |
//! | map | Map |
//! | tuple | Struct of f1, f2, … |
//! | user-defined type | Struct of its fields |
//! | vector<t, n> | FixedSizeList(t, n) |
//!
//! The catalog keeps each column's role and CQL type (`source_type`, e.g.
//! `partition_key text`, `clustering_desc bigint`), so `open` knows the key
//! and its clustering order without I/O.

use std::sync::Arc;

use datafusion::arrow::datatypes::{
    DataType, Field, Fields, IntervalUnit, Schema, SchemaRef, TimeUnit,
};
use scylla::cluster::metadata::{ColumnKind, Table};
use scylla::frame::response::result::{CollectionType, ColumnType, NativeType};
use vivace_catalog::ColumnDefinition;

use crate::remote::SourceKey;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Scale of `decimal` columns.
pub const DECIMAL_SCALE: i8 = 10;

/// The stored role of a clustering column kept in descending order
/// (`clustering` alone: ascending).
const DESCENDING: &str = "clustering_desc";

/// A column's place in the table's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Part of the partition key (columns keep key order).
    PartitionKey,
    /// Part of the clustering key (columns keep key order).
    Clustering,
    /// One value per partition.
    Static,
    /// Any other column.
    Regular,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::PartitionKey => "partition_key",
            Role::Clustering => "clustering",
            Role::Static => "static",
            Role::Regular => "regular",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "partition_key" => Role::PartitionKey,
            "clustering" => Role::Clustering,
            "static" => Role::Static,
            "regular" => Role::Regular,
            _ => return None,
        })
    }
}

/// One column of a Cassandra table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its Arrow type.
    pub data_type: DataType,
    /// Its role in the key.
    pub role: Role,
    /// Its CQL type as CQL writes it (`map<text, int>`).
    pub cql_type: String,
    /// A clustering column whose rows are stored in descending order.
    pub descending: bool,
}

impl Column {
    /// The column's name as CQL must write it (double-quoted, `"` doubled).
    pub fn quoted(&self) -> String {
        quote(&self.name)
    }
}

/// The table's primary key, from its columns' roles.
pub fn key(columns: &[Column]) -> SourceKey {
    let named = |role| {
        columns
            .iter()
            .filter(|c| c.role == role)
            .map(|c| c.name.clone())
            .collect()
    };
    SourceKey {
        method: "cassandra",
        partition: named(Role::PartitionKey),
        clustering: named(Role::Clustering),
    }
}

/// `name` as a quoted CQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns of `table`: the partition key, the clustering key (each in key
/// order), then the others by name (the order of Cassandra's `SELECT *`).
pub fn columns(table_name: &str, table: &Table) -> ConnectorResult<Vec<Column>> {
    let mut columns = Vec::with_capacity(table.columns.len());
    let mut add = |name: &str, role: Role| -> ConnectorResult<()> {
        let column = &table.columns[name];
        columns.push(Column {
            name: name.to_string(),
            data_type: arrow_type(&column.typ).map_err(|why| {
                ConnectorError::new(
                    ConnectorErrorKind::UnsupportedType,
                    format!("column \"{name}\" of Cassandra table {table_name}: {why}"),
                )
            })?,
            role,
            cql_type: cql_name(&column.typ),
            descending: false,
        });
        Ok(())
    };
    for name in &table.partition_key {
        add(name, Role::PartitionKey)?;
    }
    for name in &table.clustering_key {
        add(name, Role::Clustering)?;
    }
    let mut rest: Vec<(&String, Role)> = table
        .columns
        .iter()
        .filter_map(|(name, c)| match c.kind {
            ColumnKind::Regular => Some((name, Role::Regular)),
            ColumnKind::Static => Some((name, Role::Static)),
            _ => None,
        })
        .collect();
    rest.sort();
    for (name, role) in rest {
        add(name, role)?;
    }
    Ok(columns)
}

/// The Arrow type Vivace reads a CQL type as (see the module table).
pub fn arrow_type(typ: &ColumnType) -> Result<DataType, String> {
    Ok(match typ {
        ColumnType::Native(native) => match native {
            NativeType::Ascii | NativeType::Text => DataType::Utf8,
            NativeType::Boolean => DataType::Boolean,
            NativeType::Blob => DataType::Binary,
            NativeType::Counter | NativeType::BigInt => DataType::Int64,
            NativeType::Date => DataType::Date32,
            NativeType::Decimal => DataType::Decimal128(38, DECIMAL_SCALE),
            NativeType::Double => DataType::Float64,
            NativeType::Duration => DataType::Interval(IntervalUnit::MonthDayNano),
            NativeType::Float => DataType::Float32,
            NativeType::Int => DataType::Int32,
            NativeType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            NativeType::Inet | NativeType::Timeuuid | NativeType::Uuid => DataType::Utf8,
            NativeType::SmallInt => DataType::Int16,
            NativeType::TinyInt => DataType::Int8,
            NativeType::Time => DataType::Time64(TimeUnit::Nanosecond),
            NativeType::Varint => DataType::Decimal128(38, 0),
            other => return Err(format!("CQL type {other:?} is not supported")),
        },
        ColumnType::Collection { typ, .. } => match typ {
            CollectionType::List(item) | CollectionType::Set(item) => {
                DataType::List(Arc::new(Field::new("item", arrow_type(item)?, true)))
            }
            CollectionType::Map(key, value) => {
                let entries = Fields::from(vec![
                    Field::new("key", arrow_type(key)?, false),
                    Field::new("value", arrow_type(value)?, true),
                ]);
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                )
            }
            other => return Err(format!("CQL collection {other:?} is not supported")),
        },
        ColumnType::Vector { typ, dimensions } => DataType::FixedSizeList(
            Arc::new(Field::new("item", arrow_type(typ)?, true)),
            i32::from(*dimensions),
        ),
        ColumnType::UserDefinedType { definition, .. } => {
            let mut fields = Vec::with_capacity(definition.field_types.len());
            for (name, typ) in &definition.field_types {
                fields.push(Field::new(name.as_ref(), arrow_type(typ)?, true));
            }
            DataType::Struct(Fields::from(fields))
        }
        ColumnType::Tuple(items) => {
            let mut fields = Vec::with_capacity(items.len());
            for (i, typ) in items.iter().enumerate() {
                fields.push(Field::new(format!("f{}", i + 1), arrow_type(typ)?, true));
            }
            DataType::Struct(Fields::from(fields))
        }
        other => return Err(format!("CQL type {other:?} is not supported")),
    })
}

/// A CQL type as CQL writes it.
pub fn cql_name(typ: &ColumnType) -> String {
    let frozen = |frozen: bool, inner: String| {
        if frozen {
            format!("frozen<{inner}>")
        } else {
            inner
        }
    };
    match typ {
        ColumnType::Native(native) => format!("{native:?}").to_ascii_lowercase(),
        ColumnType::Collection { frozen: f, typ } => frozen(
            *f,
            match typ {
                CollectionType::List(item) => format!("list<{}>", cql_name(item)),
                CollectionType::Set(item) => format!("set<{}>", cql_name(item)),
                CollectionType::Map(k, v) => format!("map<{}, {}>", cql_name(k), cql_name(v)),
                other => format!("{other:?}"),
            },
        ),
        ColumnType::Vector { typ, dimensions } => {
            format!("vector<{}, {dimensions}>", cql_name(typ))
        }
        ColumnType::UserDefinedType {
            frozen: f,
            definition,
        } => frozen(*f, definition.name.to_string()),
        ColumnType::Tuple(items) => format!(
            "tuple<{}>",
            items.iter().map(cql_name).collect::<Vec<_>>().join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// The Arrow schema of `columns` (every column nullable: Cassandra has no NOT NULL).
pub fn schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The columns as the catalog stores them.
pub fn to_definitions(columns: &[Column]) -> Vec<ColumnDefinition> {
    columns
        .iter()
        .map(|c| ColumnDefinition {
            name: c.name.clone(),
            data_type: c.data_type.to_string(),
            nullable: true,
            source_type: Some(match (c.role, c.descending) {
                (Role::Clustering, true) => format!("{DESCENDING} {}", c.cql_type),
                (role, _) => format!("{} {}", role.name(), c.cql_type),
            }),
        })
        .collect()
}

/// The columns from the catalog's definitions.
pub fn from_definitions(defs: &[ColumnDefinition]) -> ConnectorResult<Vec<Column>> {
    defs.iter()
        .map(|def| {
            let bad = || {
                ConnectorError::new(
                    ConnectorErrorKind::SchemaMismatch,
                    format!(
                        "the catalog's entry for Cassandra column \"{}\" is damaged; run REFRESH or re-create the table",
                        def.name
                    ),
                )
            };
            let (role, descending, cql_type) = def
                .source_type
                .as_deref()
                .and_then(|s| s.split_once(' '))
                .and_then(|(role, cql)| match role {
                    DESCENDING => Some((Role::Clustering, true, cql)),
                    role => Some((Role::parse(role)?, false, cql)),
                })
                .ok_or_else(bad)?;
            let data_type: DataType = def.data_type.parse().map_err(|_| bad())?;
            Ok(Column {
                name: def.name.clone(),
                data_type,
                role,
                cql_type: cql_type.to_string(),
                descending,
            })
        })
        .collect()
}

/// The discovered columns narrowed to a declared column list: every declared
/// column must exist; its type must be the one read, except that a `decimal`
/// or `varint` column may be declared with any `DECIMAL(p, s)`.
pub fn apply_declared(columns: &[Column], declared: &Schema) -> ConnectorResult<Vec<Column>> {
    let mut out = Vec::with_capacity(declared.fields().len());
    for field in declared.fields() {
        let Some(column) = columns.iter().find(|c| c.name == *field.name()) else {
            return Err(ConnectorError::new(
                ConnectorErrorKind::SchemaMismatch,
                format!(
                    "declared column \"{}\" is not a column of the Cassandra table (it has: {})",
                    field.name(),
                    columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let decimal = matches!(column.data_type, DataType::Decimal128(..))
            && matches!(field.data_type(), DataType::Decimal128(..));
        let text =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
        let same = field.data_type() == &column.data_type
            || (text(field.data_type()) && text(&column.data_type));
        if !decimal && !same {
            return Err(ConnectorError::new(
                ConnectorErrorKind::SchemaMismatch,
                format!(
                    "declared column \"{}\" is {}, but Cassandra's {} is read as {}",
                    field.name(),
                    field.data_type(),
                    column.cql_type,
                    column.data_type
                ),
            ));
        }
        // A declared decimal chooses the scale; any other declared type is
        // the one read (text in any of Arrow's string layouts reads as Utf8).
        out.push(Column {
            data_type: if decimal {
                field.data_type().clone()
            } else {
                column.data_type.clone()
            },
            ..column.clone()
        });
    }
    for column in columns.iter().filter(|c| c.role == Role::PartitionKey) {
        if !out.iter().any(|c| c.name == column.name) {
            return Err(ConnectorError::new(
                ConnectorErrorKind::SchemaMismatch,
                format!(
                    "a declared column list must include the partition key column \"{}\"",
                    column.name
                ),
            ));
        }
    }
    Ok(out)
}
