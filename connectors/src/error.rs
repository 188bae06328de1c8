//! The one error type connectors return. The coordinator maps each kind to a SQLSTATE.

use datafusion::error::DataFusionError;

/// Result alias for connector operations.
pub type ConnectorResult<T> = Result<T, ConnectorError>;

/// What kind of failure a connector hit; decides the SQLSTATE the user sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorErrorKind {
    /// An OPTIONS key or value is wrong, unknown or missing.
    InvalidOption,
    /// `STORED AS` names no known connector.
    UnknownConnector,
    /// The source could not be reached (network, endpoint, permissions).
    Unreachable,
    /// The location exists but holds no data files.
    NoFiles,
    /// The files could not be read in the declared format.
    UnreadableFormat,
    /// The declared column list does not match what the source holds.
    SchemaMismatch,
    /// The source holds a type Vivace cannot represent.
    UnsupportedType,
    /// The source refused the credentials (wrong password, unknown role).
    AuthenticationFailed,
    /// The source has no such table or schema.
    NotFound,
}

/// A connector failure with a message fit for the user (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    /// Category, mapped to a SQLSTATE at the wire.
    pub kind: ConnectorErrorKind,
    /// Human-readable explanation.
    pub message: String,
}

impl ConnectorError {
    /// Build an error of `kind` with `message`.
    pub fn new(kind: ConnectorErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Shorthand for [`ConnectorErrorKind::InvalidOption`].
    pub fn invalid_option(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::InvalidOption, message)
    }
}

impl From<ConnectorError> for DataFusionError {
    fn from(e: ConnectorError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}
