//! PostgreSQL's names for types, as `format_type`, `pg_typeof` and
//! information_schema print them, from the OIDs arrow-pg reports on the wire.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use pgwire::api::Type;

/// The type the wire protocol reports for an Arrow type (arrow-pg's mapping,
/// `json` for the maps, structs and lists sent as JSON), which pg_attribute
/// and RowDescription use too.
pub fn wire_type(arrow: &DataType) -> Option<Type> {
    if sends_as_json(arrow) {
        return Some(Type::JSON);
    }
    arrow_pg::datatypes::into_pg_type(arrow).ok()
}

/// Whether a column of type `t` is sent as `json` text.
pub fn sends_as_json(t: &DataType) -> bool {
    match t {
        DataType::Map(..) | DataType::Struct(_) | DataType::Union(..) => true,
        DataType::List(element)
        | DataType::LargeList(element)
        | DataType::FixedSizeList(element, _) => !is_array_element(element.data_type()),
        DataType::ListView(_) | DataType::LargeListView(_) => true,
        DataType::Dictionary(_, values) => sends_as_json(values),
        _ => false,
    }
}

/// Whether a list of `t` goes as a PostgreSQL array: the element types
/// arrow-pg encodes as one (in both formats; decimals are Vivace's own, in
/// the wire's `text_columns`).
pub fn is_array_element(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(TimeUnit::Second | TimeUnit::Millisecond)
            | DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond)
            | DataType::Timestamp(..)
            | DataType::Interval(_)
            | DataType::Duration(_)
    )
}

/// information_schema's `data_type` spelling: the SQL-standard name, `ARRAY`
/// for arrays, pg_type's name otherwise.
pub fn sql_name(ty: &Type) -> String {
    if is_array(ty) {
        return "ARRAY".into();
    }
    standard_name(ty).unwrap_or(ty.name()).to_string()
}

/// `format_type(oid, NULL)`: the SQL-standard name where there is one, `[]`
/// after an array's element type.
pub fn format_type(ty: &Type) -> String {
    if let postgres_types::Kind::Array(element) = ty.kind() {
        return format!("{}[]", format_type(element));
    }
    match standard_name(ty) {
        Some(name) => name.to_string(),
        // PostgreSQL quotes type names that are keywords.
        None if ty.name() == "any" || ty.name() == "char" => format!("\"{}\"", ty.name()),
        None => ty.name().to_string(),
    }
}

/// `format_type` for an OID, or None for an OID PostgreSQL does not build in.
pub fn format_oid(oid: u32) -> Option<String> {
    Type::from_oid(oid).map(|t| format_type(&t))
}

fn is_array(ty: &Type) -> bool {
    matches!(ty.kind(), postgres_types::Kind::Array(_))
}

fn standard_name(ty: &Type) -> Option<&'static str> {
    Some(match *ty {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::VARCHAR => "character varying",
        Type::BPCHAR => "character",
        Type::TIME => "time without time zone",
        Type::TIMETZ => "time with time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_postgres() {
        assert_eq!(format_oid(23).unwrap(), "integer");
        assert_eq!(format_oid(1007).unwrap(), "integer[]");
        assert_eq!(format_oid(2276).unwrap(), "\"any\"");
        assert_eq!(format_oid(2275).unwrap(), "cstring");
        assert_eq!(sql_name(&Type::INT4_ARRAY), "ARRAY");
        assert_eq!(sql_name(&Type::TEXT), "text");
        assert_eq!(sql_name(&Type::TIMESTAMPTZ), "timestamp with time zone");
    }
}
