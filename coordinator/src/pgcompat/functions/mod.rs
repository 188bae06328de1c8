//! PostgreSQL functions that BI tools and drivers call on connect and during
//! metadata sync, which neither DataFusion nor datafusion-pg-catalog provides
//! (or provides with answers PostgreSQL would not give).
//!
//! One file per family, each a table of [`RowFunction`]s: a name, arities, a
//! volatility, a result type and what one row computes. Two registration
//! points: [`template_functions`], registered once on the engine's session
//! template, and [`session_functions`], bound to one connection's settings.

pub mod configuration;
pub mod describe;
pub mod privileges;
pub mod proc;
pub mod relations;
pub mod text;

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::new_empty_array;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::SqlError;
use crate::pgcompat::settings::Settings;

/// Functions every session shares, registered on the engine's template.
pub async fn template_functions(
    ctx: &SessionContext,
    catalogs: Arc<dyn CatalogProviderList>,
) -> Result<Vec<ScalarUDF>> {
    let rows = describe::functions()
        .into_iter()
        .chain(text::functions())
        .chain(relations::functions(catalogs))
        .chain(privileges::functions())
        .chain(proc::functions(ctx).await?);
    Ok(rows
        .map(ScalarUDF::new_from_impl)
        .chain([proc::pg_typeof()])
        .collect())
}

/// Functions bound to one session's settings.
pub fn session_functions(settings: Arc<Mutex<Settings>>) -> Vec<ScalarUDF> {
    configuration::functions(settings)
        .into_iter()
        .map(ScalarUDF::new_from_impl)
        .collect()
}

/// What one row of a [`RowFunction`] computes from its argument values.
pub type RowBody = Arc<dyn Fn(&[ScalarValue]) -> Result<ScalarValue> + Send + Sync>;

/// A scalar function declared by one row of a family's table, computed row by
/// row from its arguments' values.
pub struct RowFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    /// NULL in any argument gives NULL without calling the body, as for
    /// PostgreSQL's `STRICT` functions.
    strict: bool,
    body: RowBody,
}

impl RowFunction {
    /// A strict function taking any argument types, with each of `arities`.
    pub fn new(
        name: &'static str,
        arities: &[usize],
        volatility: Volatility,
        returns: DataType,
        body: impl Fn(&[ScalarValue]) -> Result<ScalarValue> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            signature: any_of(arities, volatility),
            returns,
            strict: true,
            body: Arc::new(body),
        }
    }

    /// The same function, called with NULL arguments too.
    pub fn lenient(mut self) -> Self {
        self.strict = false;
        self
    }

    /// The same function with another signature.
    pub fn with_signature(mut self, signature: Signature) -> Self {
        self.signature = signature;
        self
    }
}

fn any_of(arities: &[usize], volatility: Volatility) -> Signature {
    if arities.is_empty() {
        return Signature::variadic_any(volatility);
    }
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

impl std::fmt::Debug for RowFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowFunction")
            .field("name", &self.name)
            .field("signature", &self.signature)
            .field("returns", &self.returns)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RowFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.body, &other.body)
    }
}

impl Eq for RowFunction {}

impl std::hash::Hash for RowFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for RowFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        if rows == 0 {
            return Ok(ColumnarValue::Array(new_empty_array(&self.returns)));
        }
        let mut values = Vec::with_capacity(args.args.len());
        let out = (0..rows)
            .map(|row| {
                values.clear();
                for arg in &args.args {
                    values.push(match arg {
                        ColumnarValue::Scalar(s) => s.clone(),
                        ColumnarValue::Array(a) => ScalarValue::try_from_array(a, row)?,
                    });
                }
                if self.strict && values.iter().any(ScalarValue::is_null) {
                    return ScalarValue::try_from(&self.returns);
                }
                let value = (self.body)(&values)?;
                if value.is_null() {
                    ScalarValue::try_from(&self.returns)
                } else {
                    Ok(value)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

/// An argument's value as text: strings as they are, anything else printed.
/// NULL is `None`.
pub fn text(value: &ScalarValue) -> Option<String> {
    if value.is_null() {
        return None;
    }
    Some(match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
        other => other.to_string(),
    })
}

/// An argument's value as an OID (any integer type, or text of digits).
pub fn oid(value: &ScalarValue) -> Option<i64> {
    match value.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(v) => v,
        _ => None,
    }
}

/// An error with its SQLSTATE, as a function body returns it.
pub fn sql_error(code: &'static str, message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::new(code, message.into())))
}

/// A text result.
pub fn utf8(value: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(value.into()))
}
