//! Small readers of SQL text shared by the statement parsers: names as
//! PostgreSQL folds them, `OPTIONS (...)` lists, and byte offsets of tokens.

use std::collections::BTreeMap;

use datafusion::common::TableReference;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{Ident, ObjectName};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token};
use vivace_catalog::{DATABASE, DEFAULT_SCHEMA, TableName};

use crate::error::{SqlError, SqlResult, sqlstate};

/// `('key' 'value', …)` after `OPTIONS`, keys lower-cased.
pub fn parse_options(p: &mut Parser) -> SqlResult<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    p.expect_token(&Token::LParen)?;
    loop {
        let key = p.parse_literal_string()?.to_ascii_lowercase();
        let value = p.parse_literal_string()?;
        options.insert(key, value);
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    Ok(options)
}

/// An identifier as PostgreSQL names it: unquoted folds to lower case.
pub fn ident_name(ident: Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value,
        None => ident.value.to_ascii_lowercase(),
    }
}

/// Where each line of `sql` starts.
pub fn line_starts(sql: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// The byte offset in `sql` of a token location (1-based line and column).
pub fn byte_offset(sql: &str, line_starts: &[usize], at: Location) -> usize {
    let line = (at.line as usize).saturating_sub(1);
    let start = line_starts.get(line).copied().unwrap_or(sql.len());
    let col = (at.column as usize).saturating_sub(1);
    sql[start..]
        .char_indices()
        .nth(col)
        .map_or(sql.len(), |(i, _)| start + i)
}

/// Resolve a (possibly qualified) object name to a catalog table name.
pub fn table_name(name: ObjectName) -> SqlResult<TableName> {
    let reference = object_name_to_table_reference(name, true).map_err(SqlError::from)?;
    table_reference_to_name(&reference)
}

/// Resolve a DataFusion table reference to a catalog table name in `vivace`.
pub fn table_reference_to_name(reference: &TableReference) -> SqlResult<TableName> {
    if let Some(catalog) = reference.catalog()
        && catalog != DATABASE
    {
        return Err(SqlError::new(
            sqlstate::INVALID_SCHEMA_NAME,
            format!(
                "cross-database references are not implemented: database \"{catalog}\" (this is \"{DATABASE}\")"
            ),
        ));
    }
    Ok(TableName::new(
        reference.schema().unwrap_or(DEFAULT_SCHEMA),
        reference.table(),
    ))
}
