//! Looking relations up by name: `to_regclass('schema.table')` gives the
//! relation's name as a regclass prints it if it exists, else NULL.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Volatility;
use vivace_catalog::{DATABASE, DEFAULT_SCHEMA};

use super::text::quote_ident;
use super::{RowFunction, text};

/// The family's table, over the engine's catalogs.
pub fn functions(catalogs: Arc<dyn CatalogProviderList>) -> Vec<RowFunction> {
    vec![RowFunction::new(
        "to_regclass",
        &[1],
        Volatility::Stable,
        DataType::Utf8,
        move |args| {
            Ok(ScalarValue::Utf8(
                text(&args[0]).and_then(|name| lookup(catalogs.as_ref(), &name)),
            ))
        },
    )]
}

/// The relation's name as a regclass prints it (the bare name when its schema
/// is on the search path), if it exists.
fn lookup(catalogs: &dyn CatalogProviderList, name: &str) -> Option<String> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_string();
    let parts: Vec<String> = name.split('.').map(unquote).collect();
    let (schema, table) = match parts.as_slice() {
        [t] => (DEFAULT_SCHEMA.to_string(), t.clone()),
        [s, t] => (s.clone(), t.clone()),
        [_, s, t] => (s.clone(), t.clone()),
        _ => return None,
    };
    let exists = catalogs
        .catalog(DATABASE)
        .and_then(|c| c.schema(&schema))
        .is_some_and(|s| s.table_exist(&table));
    exists.then(|| {
        if schema == DEFAULT_SCHEMA {
            quote_ident(&table)
        } else {
            format!("{}.{}", quote_ident(&schema), quote_ident(&table))
        }
    })
}
