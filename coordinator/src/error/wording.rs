//! SQLSTATEs for errors that DataFusion and Arrow report without a kind of
//! their own.
//!
//! Many user mistakes reach Vivace as `Plan`, `Execution`, even `Internal`
//! errors, or as Arrow `Compute` / `InvalidArgument` errors, told apart only by
//! their wording (stable within DataFusion 55.x). Each group below names the
//! SQLSTATE PostgreSQL gives a mistake and phrases of the messages DataFusion
//! writes for it. A message that matches no phrase keeps the code its kind
//! gives (XX000 for internal errors: those are bugs to report).

use super::sqlstate;

/// `(SQLSTATE, phrases)`; groups are tried in order, so a message that holds
/// phrases of two groups gets the earlier group's code.
const BY_WORDING: &[(&str, &[&str])] = &[
    // Values of types that cannot be unified (before "coercion failed" below,
    // which wraps these).
    (
        sqlstate::DATATYPE_MISMATCH,
        &[
            "Failed to unify argument types",
            "Cannot find a common type",
            "Fail to find the coerced type",
        ],
    ),
    // Operators and functions that do not exist for the argument types.
    (
        sqlstate::UNDEFINED_FUNCTION,
        &[
            "in BETWEEN expression",
            "failed to match any signature",
            "user-defined coercion failed",
            "function unsupported data type",
            "Unsupported data type",
            "does not support: ",
            "does not support type",
            "Invalid arithmetic operation",
        ],
    ),
    (sqlstate::AMBIGUOUS_FUNCTION, &["not supported for Null"]),
    // A column neither grouped nor aggregated.
    (sqlstate::GROUPING_ERROR, &["must be in GROUP BY"]),
    // Types the PostgreSQL wire encoding cannot carry yet; LIKE with an escape
    // other than the backslash on a pattern that is not a literal.
    (
        sqlstate::FEATURE_NOT_SUPPORTED,
        &[
            "Unsupported List Datatype",
            "does not support escape_char",
            // Window frames ordered by an interval.
            "Cannot run range queries on datatype",
        ],
    ),
    // Arguments outside a function's domain.
    (
        sqlstate::INVALID_ARGUMENT_FOR_POWER,
        &[
            "cannot take square root of a negative number",
            "raised to a negative power",
        ],
    ),
    (
        sqlstate::NUMERIC_OUT_OF_RANGE,
        &[
            "overflow on abs",
            "out of supported i32 range",
            "is too large to store in a Decimal",
            "factorial of a negative number",
        ],
    ),
    (
        sqlstate::DATETIME_FIELD_OVERFLOW,
        &[
            "exceeds the representable",
            "Day value '",
            "Month value '",
            "Year value '",
        ],
    ),
    (sqlstate::SUBSTRING_ERROR, &["negative count not allowed"]),
    (
        sqlstate::INVALID_PARAMETER_VALUE,
        &[
            "invalid Unicode scalar value",
            "granularity",
            "Date part '",
            "step can't be 0",
            // json_build_object's arguments.
            "must have even number of elements",
            "cannot be null",
        ],
    ),
    (
        sqlstate::INVALID_DATETIME_FORMAT,
        &["Error parsing timestamp"],
    ),
    (sqlstate::INVALID_REGULAR_EXPRESSION, &["regex parse error"]),
    // A prepared statement run without its parameters.
    (sqlstate::UNDEFINED_PARAMETER, &["was not provided a value"]),
];

/// The SQLSTATE PostgreSQL gives the mistake `message` describes, if known.
pub fn code_for(message: &str) -> Option<&'static str> {
    BY_WORDING
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| message.contains(p)))
        .map(|(code, _)| *code)
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
