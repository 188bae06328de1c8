//! `COPY (query) TO STDOUT` and `COPY table TO STDOUT`: what psql's `\copy ... to`
//! and bulk exporters send. Vivace is read-only, so `COPY ... FROM` and copies to
//! server files are refused.

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName,
    Query, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{SqlError, SqlResult, sqlstate};

/// The three COPY data formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// Tab-separated, backslash escapes, `\N` for NULL (the default).
    Text,
    /// Comma-separated with quoting.
    Csv,
    /// PostgreSQL's binary `PGCOPY` format.
    Binary,
}

/// How a `COPY ... TO STDOUT` writes its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// Data format.
    pub format: CopyFormat,
    /// Column separator.
    pub delimiter: char,
    /// Text written for NULL.
    pub null: String,
    /// First line names the columns.
    pub header: bool,
    /// CSV quote character.
    pub quote: char,
    /// CSV character escaping a quote inside a quoted value.
    pub escape: char,
}

/// A parsed `COPY ... TO STDOUT`: the query whose rows to write, and how.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// `SELECT` producing the rows (`COPY table` becomes `SELECT * FROM table`).
    pub query: Box<Statement>,
    /// Format and its options.
    pub options: CopyOptions,
}

impl CopyRequest {
    /// Check a `COPY` statement and turn it into a query plus options.
    pub fn from_statement(
        source: CopySource,
        to: bool,
        target: CopyTarget,
        options: Vec<CopyOption>,
        legacy_options: Vec<CopyLegacyOption>,
    ) -> SqlResult<Self> {
        if !to {
            return Err(SqlError::not_supported(
                "COPY FROM is not supported; Vivace tables are read-only",
            ));
        }
        if target != CopyTarget::Stdout {
            return Err(SqlError::not_supported(
                "COPY to a server file or program is not supported; use COPY ... TO STDOUT (psql's \\copy)",
            ));
        }
        let query = match source {
            CopySource::Query(query) => query,
            CopySource::Table {
                table_name,
                columns,
            } => select_from(table_name, &columns)?,
        };
        Ok(Self {
            query: Box::new(Statement::Query(query)),
            options: parse_options(options, legacy_options)?,
        })
    }
}

/// `SELECT columns FROM table`, built as text and parsed so quoting stays right.
fn select_from(table: ObjectName, columns: &[Ident]) -> SqlResult<Box<Query>> {
    let list = if columns.is_empty() {
        "*".to_string()
    } else {
        columns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!("SELECT {list} FROM {table}");
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql)?;
    match statements.pop() {
        Some(Statement::Query(query)) => Ok(query),
        _ => Err(SqlError::new(sqlstate::SYNTAX_ERROR, "bad COPY table name")),
    }
}

fn parse_options(
    options: Vec<CopyOption>,
    legacy: Vec<CopyLegacyOption>,
) -> SqlResult<CopyOptions> {
    let mut format = CopyFormat::Text;
    let mut delimiter = None;
    let mut null = None;
    let mut header = false;
    let mut quote = None;
    let mut escape = None;
    let unsupported =
        |what: String| SqlError::not_supported(format!("COPY option {what} is not supported"));
    for option in options {
        match option {
            CopyOption::Format(name) => {
                format = match name.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("COPY format \"{other}\" not recognized"),
                        ));
                    }
                }
            }
            CopyOption::Delimiter(c) => delimiter = Some(c),
            CopyOption::Null(s) => null = Some(s),
            CopyOption::Header(h) => header = h,
            CopyOption::Quote(c) => quote = Some(c),
            CopyOption::Escape(c) => escape = Some(c),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(unsupported(other.to_string())),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => format = CopyFormat::Binary,
            CopyLegacyOption::Delimiter(c) => delimiter = Some(c),
            CopyLegacyOption::Null(s) => null = Some(s),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv) => {
                format = CopyFormat::Csv;
                for o in csv {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = Some(c),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(c),
                        other => return Err(unsupported(other.to_string())),
                    }
                }
            }
            other => return Err(unsupported(other.to_string())),
        }
    }
    if format != CopyFormat::Csv && (quote.is_some() || escape.is_some()) {
        return Err(SqlError::not_supported(
            "COPY QUOTE and ESCAPE are available only in CSV mode",
        ));
    }
    if format == CopyFormat::Binary && (header || delimiter.is_some() || null.is_some()) {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "cannot specify HEADER, DELIMITER or NULL in BINARY mode",
        ));
    }
    let csv = format == CopyFormat::Csv;
    let quote = quote.unwrap_or('"');
    Ok(CopyOptions {
        format,
        delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
        null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
        header,
        quote,
        escape: escape.unwrap_or(quote),
    })
}

/// Write one text-format value as COPY writes it: escaped in text mode, quoted
/// when needed in CSV mode.
pub fn write_value(out: &mut Vec<u8>, value: Option<&[u8]>, options: &CopyOptions) {
    let Some(value) = value else {
        out.extend_from_slice(options.null.as_bytes());
        return;
    };
    match options.format {
        CopyFormat::Csv => write_csv(out, value, options),
        _ => write_text(out, value, options.delimiter),
    }
}

fn write_text(out: &mut Vec<u8>, value: &[u8], delimiter: char) {
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b as char == delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
}

fn write_csv(out: &mut Vec<u8>, value: &[u8], options: &CopyOptions) {
    let mut ascii = [0u8; 4];
    let quote = options.quote.encode_utf8(&mut ascii).as_bytes().to_vec();
    let mut ascii = [0u8; 4];
    let escape = options.escape.encode_utf8(&mut ascii).as_bytes().to_vec();
    let text = String::from_utf8_lossy(value);
    // As PostgreSQL: quote a value holding the delimiter, a quote, a line break,
    // or one that reads as the NULL marker (the empty string by default).
    let needs_quotes = text == options.null
        || text.contains(options.delimiter)
        || text.contains(options.quote)
        || text.contains(['\n', '\r']);
    if !needs_quotes {
        out.extend_from_slice(value);
        return;
    }
    out.extend_from_slice(&quote);
    for c in text.chars() {
        if c == options.quote || c == options.escape {
            out.extend_from_slice(&escape);
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    out.extend_from_slice(&quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(sql: &str) -> SqlResult<CopyRequest> {
        match Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
        {
            Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                ..
            } => CopyRequest::from_statement(source, to, target, options, legacy_options),
            other => panic!("not a COPY: {other}"),
        }
    }

    fn line(values: &[Option<&str>], options: &CopyOptions) -> String {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(options.delimiter.to_string().as_bytes());
            }
            write_value(&mut out, v.map(str::as_bytes), options);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_and_csv_escape_like_postgres() {
        let text = request("COPY (SELECT 1) TO STDOUT").unwrap().options;
        assert_eq!(text.format, CopyFormat::Text);
        assert_eq!(
            line(&[Some("a\tb\\c\nd"), None, Some("")], &text),
            "a\\tb\\\\c\\nd\t\\N\t"
        );
        let csv = request("COPY t TO STDOUT WITH (FORMAT csv, HEADER)")
            .unwrap()
            .options;
        assert!(csv.header);
        assert_eq!(
            line(
                &[
                    Some("plain"),
                    Some("a,b"),
                    Some("say \"hi\""),
                    None,
                    Some("")
                ],
                &csv
            ),
            "plain,\"a,b\",\"say \"\"hi\"\"\",,\"\""
        );
        let legacy = request("COPY (SELECT 1) TO STDOUT WITH CSV HEADER").unwrap();
        assert_eq!(legacy.options.format, CopyFormat::Csv);
        assert!(legacy.options.header);
        assert_eq!(legacy.query.to_string(), "SELECT 1");
    }

    #[test]
    fn table_copies_become_selects_and_writes_are_refused() {
        let r = request("COPY \"Odd T\" (a, \"B\") TO STDOUT").unwrap();
        assert_eq!(r.query.to_string(), "SELECT a, \"B\" FROM \"Odd T\"");
        assert_eq!(request("COPY t FROM STDIN").unwrap_err().code, "0A000");
        assert_eq!(request("COPY t TO '/tmp/x'").unwrap_err().code, "0A000");
        assert_eq!(
            request("COPY t TO STDOUT (FORMAT xml)").unwrap_err().code,
            "22023"
        );
    }
}
