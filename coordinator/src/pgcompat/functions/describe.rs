//! Catalog helpers whose PostgreSQL answer for Vivace's objects is fixed: no
//! object has a comment, external tables have no sequences, every
//! type, function and collation is visible, sizes are unknown; and the server's
//! own description (`version()`, encoding names).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Volatility;

use super::{RowFunction, oid, text, utf8};
use crate::pgcompat::catalog::source_keys::RelationDefinitions;
use crate::pgcompat::settings::SERVER_VERSION;

/// What `version()` returns: PostgreSQL-shaped first (drivers parse the leading
/// `PostgreSQL X.Y`), then what actually answers.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Vivace {}, Apache DataFusion 55.2.0) on {}-linux, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// The family's table.
pub fn functions() -> Vec<RowFunction> {
    let fixed = |name, arities: &[usize], value: ScalarValue| {
        let returns = value.data_type();
        RowFunction::new(name, arities, Volatility::Stable, returns, move |_| {
            Ok(value.clone())
        })
    };
    let no_text = ScalarValue::Utf8(None);
    let version = version_string();
    vec![
        RowFunction::new(
            "version",
            &[0],
            Volatility::Stable,
            DataType::Utf8,
            move |_| Ok(utf8(version.clone())),
        ),
        // No object has a comment.
        fixed("obj_description", &[1, 2], no_text.clone()),
        fixed("col_description", &[2], no_text.clone()),
        fixed("shobj_description", &[2], no_text.clone()),
        // External tables have no sequences (`pg_get_indexdef` describes
        // sources' keys: `catalog::source_keys`).
        fixed("pg_get_serial_sequence", &[2], no_text),
        // Every type Vivace reports lives in pg_catalog, which is on the path.
        fixed("pg_type_is_visible", &[1], ScalarValue::Boolean(Some(true))),
        fixed(
            "pg_function_is_visible",
            &[1],
            ScalarValue::Boolean(Some(true)),
        ),
        // So does every collation (SQLAlchemy 2.1 asks of column collations).
        fixed(
            "pg_collation_is_visible",
            &[1],
            ScalarValue::Boolean(Some(true)),
        ),
        // External data has no size Vivace can state without reading it all:
        // NULL, which psql's `\dt+` shows as a blank Size.
        fixed("pg_table_size", &[1], ScalarValue::Int64(None)),
        fixed("pg_total_relation_size", &[1], ScalarValue::Int64(None)),
        fixed("pg_indexes_size", &[1], ScalarValue::Int64(None)),
        // PostgreSQL's name of encoding number n (`UTF8` for 6, where
        // datafusion-pg-catalog's says `UTF-8`, which psql's `\l` shows).
        RowFunction::new(
            "pg_encoding_to_char",
            &[1],
            Volatility::Immutable,
            DataType::Utf8,
            |args| {
                Ok(utf8(match text(&args[0]).as_deref().map(str::trim) {
                    Some("0") => "SQL_ASCII",
                    Some("6") => "UTF8",
                    _ => "",
                }))
            },
        ),
    ]
}

/// `pg_get_indexdef(oid [, column, pretty])` and `pg_get_viewdef(oid [,
/// pretty])`, answered from what the latest `pg_class` scan described.
pub fn relation_definitions(described: RelationDefinitions) -> Vec<RowFunction> {
    let views = described.clone();
    vec![
        RowFunction::new(
            "pg_get_indexdef",
            &[1, 3],
            Volatility::Stable,
            DataType::Utf8,
            move |args| {
                let column = args.get(1).and_then(oid).unwrap_or(0);
                Ok(ScalarValue::Utf8(
                    oid(&args[0]).and_then(|index| described.index(index, column)),
                ))
            },
        ),
        RowFunction::new(
            "pg_get_viewdef",
            &[1, 2],
            Volatility::Stable,
            DataType::Utf8,
            move |args| Ok(ScalarValue::Utf8(oid(&args[0]).and_then(|v| views.view(v)))),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_like_postgres() {
        let v = version_string();
        assert!(v.starts_with("PostgreSQL 16."), "{v}");
    }
}
