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
    /// The source rejected a request Vivace sent (its own error text follows).
    Rejected,
    /// A feature that does not apply here (a search function on a file).
    Unsupported,
    /// The source has no such schema (a Cassandra keyspace).
    SchemaNotFound,
    /// The source gave up on a request in time, or had too few replicas to
    /// answer it (the message names the consistency asked for).
    TimedOut,
    /// A source's value does not fit the column's type.
    OutOfRange,
    /// Files could not be written (or published) at the table's location.
    WriteFailed,
    /// A new table's location already holds files.
    LocationNotEmpty,
    /// A value a write cannot store (a NULL partition value).
    NullValue,
    /// A concurrent write committed first, and this one cannot follow it.
    Conflict,
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

/// Marks a connector error inside plain text (see [`ConnectorError::to_tagged_text`]).
const TAG: &str = "vivace-connector-error[";

impl ConnectorErrorKind {
    const ALL: [ConnectorErrorKind; 18] = [
        ConnectorErrorKind::InvalidOption,
        ConnectorErrorKind::UnknownConnector,
        ConnectorErrorKind::Unreachable,
        ConnectorErrorKind::NoFiles,
        ConnectorErrorKind::UnreadableFormat,
        ConnectorErrorKind::SchemaMismatch,
        ConnectorErrorKind::UnsupportedType,
        ConnectorErrorKind::AuthenticationFailed,
        ConnectorErrorKind::NotFound,
        ConnectorErrorKind::Rejected,
        ConnectorErrorKind::Unsupported,
        ConnectorErrorKind::SchemaNotFound,
        ConnectorErrorKind::TimedOut,
        ConnectorErrorKind::OutOfRange,
        ConnectorErrorKind::WriteFailed,
        ConnectorErrorKind::LocationNotEmpty,
        ConnectorErrorKind::NullValue,
        ConnectorErrorKind::Conflict,
    ];
}

impl ConnectorError {
    /// The error as text that keeps its kind. A scan run on a worker sends its
    /// errors back as strings (datafusion-distributed encodes errors it does not
    /// know by their text), so the kind, and with it the SQLSTATE, would be lost.
    pub fn to_tagged_text(&self) -> String {
        format!("{TAG}{:?}]: {}", self.kind, self.message)
    }

    /// The error inside `text` written by [`Self::to_tagged_text`], wherever in
    /// the text it is (callers wrap it in their own prefixes).
    pub fn from_tagged_text(text: &str) -> Option<Self> {
        let (_, rest) = text.split_once(TAG)?;
        let (kind, message) = rest.split_once("]: ")?;
        let kind = ConnectorErrorKind::ALL
            .into_iter()
            .find(|k| format!("{k:?}") == kind)?;
        Some(Self::new(kind, message))
    }
}

/// A connector error as tagged text, so that its kind (the SQLSTATE the client
/// gets) survives the trip back from a worker.
pub(crate) fn tag_connector_error(e: DataFusionError) -> DataFusionError {
    match e.find_root() {
        DataFusionError::External(inner) => match inner.downcast_ref::<ConnectorError>() {
            Some(c) => DataFusionError::Execution(c.to_tagged_text()),
            None => e,
        },
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_text_keeps_the_kind_through_prefixes() {
        let e = ConnectorError::new(ConnectorErrorKind::Unreachable, "cannot reach: x]: y");
        let wrapped = format!("Execution error: worker said: {}", e.to_tagged_text());
        let back = ConnectorError::from_tagged_text(&wrapped).unwrap();
        assert_eq!(back.kind, ConnectorErrorKind::Unreachable);
        assert_eq!(back.message, "cannot reach: x]: y");
        assert!(ConnectorError::from_tagged_text("cannot reach the source").is_none());
    }
}
