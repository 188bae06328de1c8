//! PostgreSQL functions BI tools and drivers call on connect and during metadata
//! sync that neither DataFusion nor datafusion-pg-catalog provides.
//!
//! Two kinds: session functions that read or change the connection's settings
//! (`current_setting`, `set_config`), registered on each session's context; and
//! catalog helpers whose PostgreSQL answer for Vivace's objects is fixed (no
//! comments, no indexes, no sequences), registered once on the engine's template.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::settings::{SERVER_VERSION, Settings};
use vivace_catalog::{DATABASE, DEFAULT_SCHEMA};

/// What `version()` returns: PostgreSQL-shaped first (drivers parse the leading
/// `PostgreSQL X.Y`), then what actually answers.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Vivace {}, Apache DataFusion 55.2.0) on {}-linux, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// Functions every session shares.
pub fn catalog_functions(catalogs: Arc<dyn CatalogProviderList>) -> Vec<ScalarUDF> {
    let fixed = |name: &'static str, arities: &[usize], value: Fixed| {
        ScalarUDF::new_from_impl(FixedFunction {
            name,
            signature: any_of(arities, Volatility::Stable),
            value,
        })
    };
    vec![
        fixed("version", &[0], Fixed::Text(Some(version_string()))),
        // No object has a comment.
        fixed("obj_description", &[1, 2], Fixed::Text(None)),
        fixed("col_description", &[2], Fixed::Text(None)),
        fixed("shobj_description", &[2], Fixed::Text(None)),
        // External tables have no indexes, constraints or sequences.
        fixed("pg_get_indexdef", &[1, 3], Fixed::Text(None)),
        fixed("pg_get_serial_sequence", &[2], Fixed::Text(None)),
        // Every type Vivace reports lives in pg_catalog, which is on the path.
        fixed("pg_type_is_visible", &[1], Fixed::Bool(true)),
        fixed("pg_function_is_visible", &[1], Fixed::Bool(true)),
        // So does every collation (SQLAlchemy 2.1 asks of column collations).
        fixed("pg_collation_is_visible", &[1], Fixed::Bool(true)),
        // External data has no size Vivace can state without reading it all:
        // NULL, which psql's `\dt+` shows as a blank Size.
        fixed("pg_table_size", &[1], Fixed::UnknownSize),
        fixed("pg_total_relation_size", &[1], Fixed::UnknownSize),
        fixed("pg_indexes_size", &[1], Fixed::UnknownSize),
        ScalarUDF::new_from_impl(EncodingName {
            signature: any_of(&[1], Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(SizePretty {
            signature: any_of(&[1], Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(Format {
            signature: Signature::variadic_any(Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(ToRegclass {
            catalogs,
            signature: any_of(&[1], Volatility::Stable),
        }),
    ]
}

/// Functions bound to one session's settings.
pub fn session_functions(settings: Arc<Mutex<Settings>>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(CurrentSetting {
            settings: settings.clone(),
            signature: any_of(&[1, 2], Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(SetConfig {
            settings,
            signature: any_of(&[3], Volatility::Volatile),
        }),
    ]
}

fn any_of(arities: &[usize], volatility: Volatility) -> Signature {
    let kinds = arities
        .iter()
        .map(|&n| {
            if n == 0 {
                TypeSignature::Nullary
            } else {
                TypeSignature::Any(n)
            }
        })
        .collect();
    Signature::one_of(kinds, volatility)
}

fn rows(args: &ScalarFunctionArgs) -> usize {
    args.number_rows
}

/// The text of argument `i` in row `row`, for scalar or array arguments.
fn text_arg(args: &ScalarFunctionArgs, i: usize, row: usize) -> Result<Option<String>> {
    let value = match &args.args[i] {
        ColumnarValue::Scalar(s) => s.clone(),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(a, row)?,
    };
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => s,
        other => other.to_string(),
    }))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Fixed {
    Text(Option<String>),
    Bool(bool),
    /// A NULL bigint.
    UnknownSize,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FixedFunction {
    name: &'static str,
    signature: Signature,
    value: Fixed,
}

impl ScalarUDFImpl for FixedFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.value {
            Fixed::Text(_) => DataType::Utf8,
            Fixed::Bool(_) => DataType::Boolean,
            Fixed::UnknownSize => DataType::Int64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(match &self.value {
            Fixed::Text(text) => ScalarValue::Utf8(text.clone()),
            Fixed::UnknownSize => ScalarValue::Int64(None),
            Fixed::Bool(b) => {
                // Answer NULL for a NULL argument, as PostgreSQL's strict functions do.
                if rows(&args) == 1
                    && let Some(ColumnarValue::Scalar(s)) = args.args.first()
                    && s.is_null()
                {
                    ScalarValue::Boolean(None)
                } else {
                    return Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
                        *b;
                        rows(
                            &args
                        )
                    ]))));
                }
            }
        }))
    }
}

/// `to_regclass('schema.table')`: the name if such a relation exists, else NULL.
#[derive(Debug)]
struct ToRegclass {
    catalogs: Arc<dyn CatalogProviderList>,
    signature: Signature,
}

impl PartialEq for ToRegclass {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.catalogs, &other.catalogs)
    }
}
impl Eq for ToRegclass {}
impl std::hash::Hash for ToRegclass {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "to_regclass".hash(state);
    }
}

impl ToRegclass {
    fn exists(&self, name: &str) -> bool {
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        let parts: Vec<String> = name.split('.').map(unquote).collect();
        let (schema, table) = match parts.as_slice() {
            [t] => (DEFAULT_SCHEMA.to_string(), t.clone()),
            [s, t] => (s.clone(), t.clone()),
            [_, s, t] => (s.clone(), t.clone()),
            _ => return false,
        };
        self.catalogs
            .catalog(DATABASE)
            .and_then(|c| c.schema(&schema))
            .is_some_and(|s| s.table_exist(&table))
    }
}

impl ScalarUDFImpl for ToRegclass {
    fn name(&self) -> &str {
        "to_regclass"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let out: StringArray = (0..rows(&args))
            .map(|row| Ok(text_arg(&args, 0, row)?.filter(|name| self.exists(name))))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// PostgreSQL's `format(fmt, args...)`: `%s` (text, NULL as empty), `%I` (an
/// identifier, quoted when needed), `%L` (a literal, NULL as `NULL`) and `%%`.
/// Metabase builds `schema.table` names with it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut out = Vec::with_capacity(rows(&args));
        for row in 0..rows(&args) {
            let Some(fmt) = text_arg(&args, 0, row)? else {
                out.push(None);
                continue;
            };
            let values = (1..args.args.len())
                .map(|i| text_arg(&args, i, row))
                .collect::<Result<Vec<_>>>()?;
            out.push(Some(format_text(&fmt, &values)?));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

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
            return exec_err!("too few arguments for format()");
        };
        match (spec, value) {
            (Some('s'), v) => out.push_str(v.as_deref().unwrap_or("")),
            (Some('I'), Some(v)) => out.push_str(&quote_ident(v)),
            (Some('I'), None) => {
                return exec_err!("null values cannot be formatted as an SQL identifier");
            }
            (Some('L'), Some(v)) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
            (Some('L'), None) => out.push_str("NULL"),
            (other, _) => {
                return exec_err!(
                    "unrecognized format() type specifier \"{}\"",
                    other.map(String::from).unwrap_or_default()
                );
            }
        }
    }
    Ok(out)
}

/// `quote_ident`: bare when a plain lower-case identifier, else double-quoted.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `pg_encoding_to_char(n)`: PostgreSQL's name of encoding number `n` (`UTF8`
/// for 6, where datafusion-pg-catalog's says `UTF-8`, which psql's `\l` shows).
#[derive(Debug, PartialEq, Eq, Hash)]
struct EncodingName {
    signature: Signature,
}

impl ScalarUDFImpl for EncodingName {
    fn name(&self) -> &str {
        "pg_encoding_to_char"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let out = (0..rows(&args))
            .map(|row| {
                Ok(text_arg(&args, 0, row)?.map(|n| match n.trim() {
                    "0" => "SQL_ASCII",
                    "6" => "UTF8",
                    _ => "",
                }))
            })
            .collect::<Result<StringArray>>()?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `pg_size_pretty(bytes)`: a byte count as PostgreSQL prints it (`8192 bytes`,
/// `16 kB`, `3 MB`), rounding half away from zero at each unit.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SizePretty {
    signature: Signature,
}

impl ScalarUDFImpl for SizePretty {
    fn name(&self) -> &str {
        "pg_size_pretty"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let out = (0..rows(&args))
            .map(|row| {
                Ok(match text_arg(&args, 0, row)? {
                    None => None,
                    Some(text) => match text.trim().parse::<f64>() {
                        Ok(bytes) => Some(size_pretty(bytes as i64)),
                        Err(_) => return exec_err!("invalid size: \"{text}\""),
                    },
                })
            })
            .collect::<Result<StringArray>>()?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// PostgreSQL's `pg_size_pretty(bigint)`: switch units at 10240 of the
/// smaller one, keeping one extra bit for the rounding.
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

/// `current_setting(name [, missing_ok])`.
#[derive(Debug)]
struct CurrentSetting {
    settings: Arc<Mutex<Settings>>,
    signature: Signature,
}

impl PartialEq for CurrentSetting {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.settings, &other.settings)
    }
}
impl Eq for CurrentSetting {}
impl std::hash::Hash for CurrentSetting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "current_setting".hash(state);
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let settings = match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(_) => return exec_err!("session settings are unavailable"),
        };
        let mut out = Vec::with_capacity(rows(&args));
        for row in 0..rows(&args) {
            let Some(name) = text_arg(&args, 0, row)? else {
                out.push(None);
                continue;
            };
            let missing_ok = args.args.len() > 1
                && text_arg(&args, 1, row)?.is_some_and(|v| v == "true" || v == "t");
            match settings.get(&name) {
                Ok(value) => out.push(Some(value)),
                Err(_) if missing_ok => out.push(None),
                Err(e) => return Err(datafusion::error::DataFusionError::External(Box::new(e))),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `set_config(name, value, is_local)`: sets and returns the value. `is_local`
/// is treated as a session-wide change, since Vivace has no transactions to end.
#[derive(Debug)]
struct SetConfig {
    settings: Arc<Mutex<Settings>>,
    signature: Signature,
}

impl PartialEq for SetConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.settings, &other.settings)
    }
}
impl Eq for SetConfig {}
impl std::hash::Hash for SetConfig {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "set_config".hash(state);
    }
}

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        "set_config"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut out = Vec::with_capacity(rows(&args));
        for row in 0..rows(&args) {
            let (Some(name), Some(value)) = (text_arg(&args, 0, row)?, text_arg(&args, 1, row)?)
            else {
                out.push(None);
                continue;
            };
            let mut settings = match self.settings.lock() {
                Ok(s) => s,
                Err(_) => return exec_err!("session settings are unavailable"),
            };
            settings
                .set(&name, &value)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            out.push(Some(settings.get(&name).unwrap_or(value)));
        }
        let array: ArrayRef = Arc::new(StringArray::from(out));
        debug_assert_eq!(array.len(), rows(&args));
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_like_postgres() {
        let v = version_string();
        assert!(v.starts_with("PostgreSQL 16."), "{v}");
    }

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
