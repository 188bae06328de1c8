//! The full-text functions `match(column, 'text')`, `match_phrase(column,
//! 'text')` and `query_string('query')`: filters that only a search server can
//! evaluate. On an Elasticsearch table they become the queries of the same
//! names; anywhere else evaluating them is an error that says so.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::{ConnectorError, ConnectorErrorKind};

/// A full-text call found in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum FullText {
    /// `match(column, text)`.
    Match { column: String, text: String },
    /// `match_phrase(column, text)`.
    MatchPhrase { column: String, text: String },
    /// `query_string(query)`.
    QueryString { query: String },
}

/// The function names, as SQL calls them.
const NAMES: [&str; 3] = ["match", "match_phrase", "query_string"];

/// The full-text functions, to register in every session.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    NAMES
        .iter()
        .map(|name| Arc::new(ScalarUDF::new_from_impl(FullTextFunction::new(name))))
        .collect()
}

/// The call `expr` is, when it is one of the full-text functions with a
/// column and literal text.
pub fn full_text_call(expr: &Expr) -> Option<FullText> {
    let Expr::ScalarFunction(call) = expr else {
        return None;
    };
    let name = call.func.name();
    if !NAMES.contains(&name) || !(call.func.inner().as_ref() as &dyn Any).is::<FullTextFunction>()
    {
        return None;
    }
    let text = |e: &Expr| match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    };
    let column = |e: &Expr| match e {
        Expr::Column(c) => Some(c.name.clone()),
        _ => None,
    };
    match (name, call.args.as_slice()) {
        ("match", [c, t]) => Some(FullText::Match {
            column: column(c)?,
            text: text(t)?,
        }),
        ("match_phrase", [c, t]) => Some(FullText::MatchPhrase {
            column: column(c)?,
            text: text(t)?,
        }),
        ("query_string", [q]) => Some(FullText::QueryString { query: text(q)? }),
        _ => None,
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FullTextFunction {
    name: &'static str,
    signature: Signature,
}

impl FullTextFunction {
    fn new(name: &'static str) -> Self {
        let signature = if name == "query_string" {
            Signature::one_of(
                vec![TypeSignature::Exact(vec![DataType::Utf8])],
                Volatility::Immutable,
            )
        } else {
            Signature::one_of(vec![TypeSignature::Any(2)], Volatility::Immutable)
        };
        Self { name, signature }
    }
}

impl ScalarUDFImpl for FullTextFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let usage = if self.name == "query_string" {
            "query_string('query')"
        } else {
            "a column of the table and literal text"
        };
        Err(DataFusionError::External(Box::new(ConnectorError::new(
            ConnectorErrorKind::Unsupported,
            format!(
                "{}() is evaluated by the search server: use it in the WHERE clause of a query on an Elasticsearch or OpenSearch table, with {usage}",
                self.name
            ),
        ))))
    }
}
