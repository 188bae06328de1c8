//! SQLSTATEs for errors that DataFusion and Arrow report without a kind of
//! their own.
//!
//! Many user mistakes reach Vivace as `Plan`, `Execution`, even `Internal`
//! errors, or as Arrow `Compute` / `InvalidArgument` errors, told apart only by
//! their wording (stable within DataFusion 55.x). Each row names a phrase of
//! such a message and the SQLSTATE PostgreSQL gives the same mistake; the first
//! row whose phrase occurs wins. A message that matches no row keeps the code
//! its kind gives (XX000 for internal errors: those are bugs to report).

use super::sqlstate;

/// `(phrase, SQLSTATE)`, most specific first.
const BY_WORDING: &[(&str, &str)] = &[
    // Operators and functions that do not exist for the argument types.
    ("in BETWEEN expression", sqlstate::UNDEFINED_FUNCTION),
    (
        "failed to match any signature",
        sqlstate::UNDEFINED_FUNCTION,
    ),
    (
        "function unsupported data type",
        sqlstate::UNDEFINED_FUNCTION,
    ),
    ("does not support: Null", sqlstate::UNDEFINED_FUNCTION),
    ("not supported for Null", sqlstate::AMBIGUOUS_FUNCTION),
    // Values of types that cannot be unified.
    (
        "Failed to unify argument types",
        sqlstate::DATATYPE_MISMATCH,
    ),
    // Types the PostgreSQL wire encoding cannot carry yet.
    ("Unsupported List Datatype", sqlstate::FEATURE_NOT_SUPPORTED),
    // Arguments outside a function's domain.
    (
        "cannot take square root of a negative number",
        sqlstate::INVALID_ARGUMENT_FOR_POWER,
    ),
    (
        "raised to a negative power",
        sqlstate::INVALID_ARGUMENT_FOR_POWER,
    ),
    ("overflow on abs", sqlstate::NUMERIC_OUT_OF_RANGE),
    (
        "is too large to store in a Decimal",
        sqlstate::NUMERIC_OUT_OF_RANGE,
    ),
    (
        "factorial of a negative number",
        sqlstate::NUMERIC_OUT_OF_RANGE,
    ),
    (
        "exceeds the representable",
        sqlstate::DATETIME_FIELD_OVERFLOW,
    ),
    ("negative count not allowed", sqlstate::SUBSTRING_ERROR),
    (
        "invalid Unicode scalar value",
        sqlstate::INVALID_PARAMETER_VALUE,
    ),
    ("granularity", sqlstate::INVALID_PARAMETER_VALUE),
    ("Date part '", sqlstate::INVALID_PARAMETER_VALUE),
    ("step can't be 0", sqlstate::INVALID_PARAMETER_VALUE),
    ("Error parsing timestamp", sqlstate::INVALID_DATETIME_FORMAT),
    ("regex parse error", sqlstate::INVALID_REGULAR_EXPRESSION),
    // json_build_object's arguments.
    (
        "must have even number of elements",
        sqlstate::INVALID_PARAMETER_VALUE,
    ),
    ("cannot be null", sqlstate::INVALID_PARAMETER_VALUE),
    // LIKE with an escape other than the backslash, on a pattern that is not a literal.
    (
        "does not support escape_char",
        sqlstate::FEATURE_NOT_SUPPORTED,
    ),
    // A prepared statement run without its parameters.
    ("was not provided a value", sqlstate::UNDEFINED_PARAMETER),
];

/// The SQLSTATE PostgreSQL gives the mistake `message` describes, if known.
pub fn code_for(message: &str) -> Option<&'static str> {
    BY_WORDING
        .iter()
        .find(|(phrase, _)| message.contains(phrase))
        .map(|(_, code)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_seen_from_datafusion_55_map_to_postgres_codes() {
        for (message, code) in [
            (
                "Failed to coerce types Boolean and Int64 in BETWEEN expression.",
                "42883",
            ),
            (
                "Compute error: Execution error: cannot take square root of a negative number",
                "2201F",
            ),
            (
                "Compute error: Int64Array overflow on abs(-9223372036854775808)",
                "22003",
            ),
            ("Unsupported List Datatype List(List(Int64))", "0A000"),
            (
                "Placeholder '$1' was not provided a value for execution.",
                "42P02",
            ),
        ] {
            assert_eq!(code_for(message), Some(code), "{message}");
        }
        assert_eq!(code_for("something nobody said"), None);
    }
}
