//! Text formatting as PostgreSQL does it: `format(fmt, args...)` and
//! `pg_size_pretty(bytes)`, and the identifier quoting both rely on.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::Volatility;

use super::{RowFunction, sql_error, text, utf8};
use crate::error::sqlstate;

/// The family's table.
pub fn functions() -> Vec<RowFunction> {
    vec![
        // Metabase builds `schema.table` names with format(); NULL arguments
        // are allowed (`%s` prints nothing, `%L` prints NULL).
        RowFunction::new("format", &[], Volatility::Stable, DataType::Utf8, |args| {
            let Some(fmt) = text(&args[0]) else {
                return Ok(ScalarValue::Utf8(None));
            };
            let values: Vec<Option<String>> = args[1..].iter().map(text).collect();
            Ok(utf8(format_text(&fmt, &values)?))
        })
        .lenient(),
        RowFunction::new(
            "pg_size_pretty",
            &[1],
            Volatility::Immutable,
            DataType::Utf8,
            |args| {
                let text = text(&args[0]).unwrap_or_default();
                match text.trim().parse::<f64>() {
                    Ok(bytes) => Ok(utf8(size_pretty(bytes as i64))),
                    Err(_) => Err(sql_error(
                        sqlstate::INVALID_TEXT_REPRESENTATION,
                        format!("invalid input syntax for type bigint: \"{text}\""),
                    )),
                }
            },
        ),
    ]
}

/// PostgreSQL's `format`: `%s` (text, NULL as empty), `%I` (an identifier,
/// quoted when needed), `%L` (a literal, NULL as `NULL`) and `%%`.
fn format_text(fmt: &str, values: &[Option<String>]) -> Result<String> {
    let mut out = String::with_capacity(fmt.len());
    let mut next = values.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next();
        if spec == Some('%') {
            out.push('%');
            continue;
        }
        let Some(value) = next.next() else {
            return Err(sql_error(
                sqlstate::INVALID_PARAMETER_VALUE,
                "too few arguments for format()",
            ));
        };
        match (spec, value) {
            (Some('s'), v) => out.push_str(v.as_deref().unwrap_or("")),
            (Some('I'), Some(v)) => out.push_str(&quote_ident(v)),
            (Some('I'), None) => {
                return Err(sql_error(
                    sqlstate::NULL_VALUE_NOT_ALLOWED,
                    "null values cannot be formatted as an SQL identifier",
                ));
            }
            (Some('L'), Some(v)) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
            (Some('L'), None) => out.push_str("NULL"),
            (other, _) => {
                return Err(sql_error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!(
                        "unrecognized format() type specifier \"{}\"",
                        other.map(String::from).unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// An identifier as PostgreSQL's `quote_ident` writes it: bare when plain
/// lower-case letters, digits and `_` (not starting with a digit), else
/// double-quoted.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// PostgreSQL's `pg_size_pretty(bigint)`: switch units at 10240 of the
/// smaller one, keeping one extra bit for the rounding (half away from zero).
fn size_pretty(size: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if size.abs() < LIMIT {
        return format!("{size} bytes");
    }
    let mut size = size >> 9;
    for unit in ["kB", "MB", "GB"] {
        if size.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} TB", half_rounded(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_postgres() {
        assert_eq!(size_pretty(8192), "8192 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(16384), "16 kB");
        assert_eq!(size_pretty(1_000_000), "977 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
        assert_eq!(size_pretty(-20_000), "-20 kB");
        assert_eq!(size_pretty(50 * (1i64 << 40)), "50 TB");
    }

    #[test]
    fn format_follows_postgres() {
        let v = |s: &str| Some(s.to_string());
        assert_eq!(
            format_text("%I.%I", &[v("public"), v("Odd Name")]).unwrap(),
            "public.\"Odd Name\""
        );
        assert_eq!(
            format_text("%s|%L|%L|100%%", &[None, v("it's"), None]).unwrap(),
            "|'it''s'|NULL|100%"
        );
        assert!(format_text("%s %s", &[v("one")]).is_err());
    }
}
