//! The one place where failures become SQLSTATEs.
//!
//! Every error a user can cause is turned into a [`SqlError`] here, from the
//! DataFusion, catalog and connector error types, and the wire layer sends it as a
//! PostgreSQL `ErrorResponse`.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use vivace_catalog::CatalogError;
use vivace_connectors::{ConnectorError, ConnectorErrorKind};

mod wording;

pub use wording::code_for as code_for_wording;

/// SQLSTATE codes Vivace sends (PostgreSQL appendix A).
pub mod sqlstate {
    /// successful_completion (a NOTICE that reports, not warns)
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    /// syntax_error
    pub const SYNTAX_ERROR: &str = "42601";
    /// undefined_table
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// undefined_column
    pub const UNDEFINED_COLUMN: &str = "42703";
    /// undefined_function
    pub const UNDEFINED_FUNCTION: &str = "42883";
    /// undefined_object (unknown setting)
    pub const UNDEFINED_OBJECT: &str = "42704";
    /// duplicate_table
    pub const DUPLICATE_TABLE: &str = "42P07";
    /// invalid_schema_name
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    /// duplicate_schema
    pub const DUPLICATE_SCHEMA: &str = "42P06";
    /// invalid_table_definition
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    /// datatype_mismatch
    pub const DATATYPE_MISMATCH: &str = "42804";
    /// invalid_parameter_value
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    /// invalid_text_representation
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    /// `null_value_not_allowed`: a NULL where the function needs a value.
    pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
    /// division_by_zero
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// numeric_value_out_of_range
    pub const NUMERIC_OUT_OF_RANGE: &str = "22003";
    /// bad_copy_file_format: files that cannot be read in the declared format
    pub const BAD_FILE_FORMAT: &str = "22P04";
    /// undefined_file: a location with no data files
    pub const UNDEFINED_FILE: &str = "58P01";
    /// `io_error`: files could not be written.
    pub const IO_ERROR: &str = "58030";
    /// serialization_failure: a concurrent write got in first
    pub const SERIALIZATION_FAILURE: &str = "40001";
    /// `insufficient_privilege`: the user may not do this.
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// sqlclient_unable_to_establish_sqlconnection: a source that cannot be reached
    pub const CONNECTION_FAILURE: &str = "08001";
    /// feature_not_supported
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// fdw_error: a remote source rejected a request Vivace sent it
    pub const FDW_ERROR: &str = "HV000";
    /// invalid_authorization_specification
    pub const INVALID_AUTHORIZATION: &str = "28000";
    /// invalid_password: a client's password, or a remote source refusing Vivace's credentials
    pub const INVALID_PASSWORD: &str = "28P01";
    /// protocol_violation
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    /// query_canceled
    pub const QUERY_CANCELED: &str = "57014";
    /// out_of_memory: a query beyond the memory budget
    pub const RESOURCES_EXHAUSTED: &str = "53200";
    /// A resource group's queue is full.
    pub const INSUFFICIENT_RESOURCES: &str = "53000";
    /// program_limit_exceeded (more array dimensions than allowed)
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    /// statement_too_complex: PostgreSQL's `stack depth limit exceeded`
    pub const STATEMENT_TOO_COMPLEX: &str = "54001";
    /// connection_failure: a worker was lost after rows were sent
    pub const CONNECTION_LOST: &str = "08006";
    /// cardinality_violation: a scalar subquery returned several rows
    pub const CARDINALITY_VIOLATION: &str = "21000";
    /// duplicate_cursor
    pub const DUPLICATE_CURSOR: &str = "42P03";
    /// invalid_cursor_name: no open cursor of that name
    pub const INVALID_CURSOR_NAME: &str = "34000";
    /// object_not_in_prerequisite_state (a cursor asked to move backward)
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    /// grouping_error: a column neither grouped nor aggregated
    pub const GROUPING_ERROR: &str = "42803";
    /// ambiguous_function
    pub const AMBIGUOUS_FUNCTION: &str = "42725";
    /// invalid_argument_for_power_function (also square roots of negatives)
    pub const INVALID_ARGUMENT_FOR_POWER: &str = "2201F";
    /// datetime_field_overflow
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    /// invalid_datetime_format
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    /// substring_error
    pub const SUBSTRING_ERROR: &str = "22011";
    /// invalid_regular_expression
    pub const INVALID_REGULAR_EXPRESSION: &str = "2201B";
    /// undefined_parameter
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    /// wrong_object_type: DROP VIEW of a table
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    /// invalid_object_definition: a stored view that no longer plans
    pub const INVALID_OBJECT_DEFINITION: &str = "42P17";
    /// invalid_sql_statement_name: no prepared statement of that name
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    /// duplicate_prepared_statement
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    /// internal_error
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// A user-facing failure: a SQLSTATE and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// Five-character SQLSTATE.
    pub code: &'static str,
    /// Message shown to the user.
    pub message: String,
}

/// Result alias for coordinator operations.
pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    /// An error with an explicit SQLSTATE.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `0A000 feature_not_supported`.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(sqlstate::FEATURE_NOT_SUPPORTED, message)
    }
}

impl From<CatalogError> for SqlError {
    fn from(e: CatalogError) -> Self {
        let code = match e {
            CatalogError::AlreadyExists(_) => sqlstate::DUPLICATE_TABLE,
            CatalogError::NotFound(_) => sqlstate::UNDEFINED_TABLE,
            CatalogError::SchemaExists(_) => sqlstate::DUPLICATE_SCHEMA,
            CatalogError::SchemaNotFound(_) => sqlstate::INVALID_SCHEMA_NAME,
            CatalogError::Storage(_) => sqlstate::INTERNAL_ERROR,
        };
        Self::new(code, e.to_string())
    }
}

impl From<ConnectorError> for SqlError {
    fn from(e: ConnectorError) -> Self {
        let code = match e.kind {
            ConnectorErrorKind::InvalidOption => sqlstate::INVALID_PARAMETER_VALUE,
            ConnectorErrorKind::UnknownConnector => sqlstate::FEATURE_NOT_SUPPORTED,
            ConnectorErrorKind::Unreachable => sqlstate::CONNECTION_FAILURE,
            ConnectorErrorKind::NoFiles => sqlstate::UNDEFINED_FILE,
            ConnectorErrorKind::UnreadableFormat => sqlstate::BAD_FILE_FORMAT,
            ConnectorErrorKind::SchemaMismatch => sqlstate::INVALID_TABLE_DEFINITION,
            ConnectorErrorKind::UnsupportedType => sqlstate::FEATURE_NOT_SUPPORTED,
            ConnectorErrorKind::AuthenticationFailed => sqlstate::INVALID_PASSWORD,
            ConnectorErrorKind::NotFound => sqlstate::UNDEFINED_TABLE,
            ConnectorErrorKind::Rejected => sqlstate::FDW_ERROR,
            ConnectorErrorKind::Unsupported => sqlstate::FEATURE_NOT_SUPPORTED,
            ConnectorErrorKind::SchemaNotFound => sqlstate::INVALID_SCHEMA_NAME,
            ConnectorErrorKind::TimedOut => sqlstate::QUERY_CANCELED,
            ConnectorErrorKind::OutOfRange => sqlstate::NUMERIC_OUT_OF_RANGE,
            ConnectorErrorKind::WriteFailed => sqlstate::IO_ERROR,
            ConnectorErrorKind::LocationNotEmpty => sqlstate::DUPLICATE_TABLE,
            ConnectorErrorKind::NullValue => sqlstate::NULL_VALUE_NOT_ALLOWED,
            ConnectorErrorKind::Conflict => sqlstate::SERIALIZATION_FAILURE,
        };
        Self::new(code, e.message)
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        classify_datafusion(&e)
    }
}

/// Whether `e` means a worker could not be reached or dropped its connection,
/// as opposed to an error in the query itself (which workers send back encoded).
pub fn is_worker_failure(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::External(inner) => {
            if inner
                .downcast_ref::<vivace_worker::WorkerUnreachable>()
                .is_some()
            {
                return true;
            }
            inner.downcast_ref::<tonic::Status>().is_some_and(|status| {
                use tonic::Code;
                matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::Unknown
                        | Code::Cancelled
                        | Code::Aborted
                        | Code::DeadlineExceeded
                ) || (status.code() == Code::Internal && status.message() != "DataFusionError")
            })
        }
        _ => false,
    }
}

fn classify_datafusion(e: &DataFusionError) -> SqlError {
    if is_worker_failure(e) {
        return SqlError::new(
            sqlstate::CONNECTION_LOST,
            format!("a worker was lost during the query: {}", e.find_root()),
        );
    }
    let root = e.find_root();
    if let Some(c) = ConnectorError::from_tagged_text(&root.to_string()) {
        return c.into();
    }
    let classified = classify_root(root);
    if classified.code == sqlstate::INTERNAL_ERROR
        && let Some(code) = wording::code_for(&classified.message)
    {
        return SqlError::new(code, classified.message);
    }
    classified
}

fn classify_root(root: &DataFusionError) -> SqlError {
    match root {
        DataFusionError::External(inner) => {
            if let Some(c) = inner.downcast_ref::<ConnectorError>() {
                return c.clone().into();
            }
            if let Some(s) = inner.downcast_ref::<SqlError>() {
                return s.clone();
            }
            SqlError::new(sqlstate::INTERNAL_ERROR, inner.to_string())
        }
        DataFusionError::SQL(p, _) => SqlError::from(p.as_ref().clone()),
        DataFusionError::SchemaError(s, _) => {
            use datafusion::common::SchemaError;
            let code = match s.as_ref() {
                SchemaError::FieldNotFound { .. } => sqlstate::UNDEFINED_COLUMN,
                SchemaError::AmbiguousReference { .. } => "42702",
                SchemaError::DuplicateQualifiedField { .. }
                | SchemaError::DuplicateUnqualifiedField { .. } => "42701",
            };
            SqlError::new(code, root.message().to_string())
        }
        DataFusionError::NotImplemented(m)
            if m.contains("does not support logical expression ScalarSubquery") =>
        {
            SqlError::not_supported(
                "this correlated subquery is not supported: a scalar subquery may refer to the \
                 outer query only through equalities (inner.column = outer expression)",
            )
        }
        DataFusionError::NotImplemented(m) => SqlError::not_supported(m.clone()),
        DataFusionError::ArrowError(a, _) => classify_arrow(a),
        DataFusionError::ResourcesExhausted(m) => {
            SqlError::new(sqlstate::RESOURCES_EXHAUSTED, m.clone())
        }
        DataFusionError::Plan(m) => SqlError::new(
            wording::code_for(m).unwrap_or_else(|| classify_plan_message(m)),
            m.clone(),
        ),
        DataFusionError::ObjectStore(os) => SqlError::new(
            sqlstate::CONNECTION_FAILURE,
            format!("object store error: {os}"),
        ),
        DataFusionError::Execution(m) if m.contains("Divide by zero") => {
            SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero")
        }
        other => SqlError::new(sqlstate::INTERNAL_ERROR, other.message().to_string()),
    }
}

/// DataFusion reports several distinct user errors as plain `Plan` errors; tell
/// them apart by their stable wording.
fn classify_plan_message(m: &str) -> &'static str {
    if m.contains("table '") && m.contains("' not found") {
        sqlstate::UNDEFINED_TABLE
    } else if m.contains("Invalid function") || m.contains("No function matches") {
        sqlstate::UNDEFINED_FUNCTION
    } else if m.contains("Cannot get result type for") {
        // An operator DataFusion has no kernel for (`interval * int`):
        // PostgreSQL's "operator does not exist".
        sqlstate::UNDEFINED_FUNCTION
    } else if m.contains("No field named") {
        sqlstate::UNDEFINED_COLUMN
    } else if m.contains("Cannot infer common argument type")
        || m.contains("Cannot coerce")
        || m.contains("type coercion")
    {
        sqlstate::DATATYPE_MISMATCH
    } else {
        sqlstate::SYNTAX_ERROR
    }
}

fn classify_arrow(a: &ArrowError) -> SqlError {
    match a {
        ArrowError::DivideByZero => SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => {
            SqlError::new(sqlstate::INVALID_TEXT_REPRESENTATION, m.clone())
        }
        ArrowError::ArithmeticOverflow(m) => {
            SqlError::new(sqlstate::NUMERIC_OUT_OF_RANGE, m.clone())
        }
        other => SqlError::new(sqlstate::INTERNAL_ERROR, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_kinds_map_to_distinct_sqlstates() {
        let code = |k| SqlError::from(ConnectorError::new(k, "x")).code;
        assert_eq!(code(ConnectorErrorKind::InvalidOption), "22023");
        assert_eq!(code(ConnectorErrorKind::SchemaMismatch), "42P16");
        assert_eq!(code(ConnectorErrorKind::Unreachable), "08001");
        assert_eq!(code(ConnectorErrorKind::NoFiles), "58P01");
        assert_eq!(code(ConnectorErrorKind::AuthenticationFailed), "28P01");
        assert_eq!(code(ConnectorErrorKind::NotFound), "42P01");
        assert_eq!(code(ConnectorErrorKind::SchemaNotFound), "3F000");
        assert_eq!(code(ConnectorErrorKind::TimedOut), "57014");
        assert_eq!(code(ConnectorErrorKind::OutOfRange), "22003");
    }

    #[test]
    fn wrapped_errors_keep_their_root_code() {
        let inner = DataFusionError::from(ConnectorError::new(ConnectorErrorKind::NoFiles, "none"));
        let wrapped = inner.context("while planning");
        assert_eq!(SqlError::from(wrapped).code, "58P01");
        let arrow = DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None);
        assert_eq!(SqlError::from(arrow).code, "22012");
    }
}
