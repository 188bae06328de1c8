//! `numeric_div(a, b)`: `a / b` on decimals as PostgreSQL computes it, rounded
//! to PostgreSQL's result scale ([`crate::numeric`]). The coordinator's
//! planner puts it in place of `/` when both sides are decimals; pushed down to
//! PostgreSQL it is written back as `/`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{DataType, Decimal128Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, plan_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::numeric::{self, MAX_PRECISION, NumericError};

/// The function's name, for planners and SQL renderers.
pub const NUMERIC_DIV: &str = "numeric_div";

/// The function.
pub fn numeric_div() -> Arc<ScalarUDF> {
    static UDF: LazyLock<Arc<ScalarUDF>> =
        LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(NumericDiv::new())));
    UDF.clone()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDiv {
    signature: Signature,
}

impl NumericDiv {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn decimal_parts(t: &DataType) -> Option<(u8, i8)> {
    match t {
        DataType::Decimal128(p, s) => Some((*p, *s)),
        _ => None,
    }
}

impl ScalarUDFImpl for NumericDiv {
    fn name(&self) -> &str {
        NUMERIC_DIV
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [a, b] => match (numeric::as_decimal(a), numeric::as_decimal(b)) {
                (Some(a), Some(b)) => Ok(vec![a, b]),
                _ => plan_err!("numeric_div takes two decimals, got {arg_types:?}"),
            },
            _ => plan_err!("numeric_div takes two arguments"),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [a, b] => match (decimal_parts(a), decimal_parts(b)) {
                (Some((p1, s1)), Some((p2, s2))) => Ok(DataType::Decimal128(
                    MAX_PRECISION,
                    numeric::result_scale(p1, s1, p2, s2),
                )),
                _ => plan_err!("numeric_div takes two decimals, got {arg_types:?}"),
            },
            _ => plan_err!("numeric_div takes two arguments"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Decimal128(_, out_scale) = *args.return_type() else {
            return plan_err!("numeric_div returns a decimal");
        };
        let all_scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (&arrays[0], &arrays[1]);
        let (DataType::Decimal128(_, a_scale), DataType::Decimal128(_, b_scale)) =
            (a.data_type(), b.data_type())
        else {
            return plan_err!("numeric_div takes two decimals");
        };
        let (a_scale, b_scale) = (*a_scale, *b_scale);
        let (a, b) = (
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
        );
        let mut out = Decimal128Builder::with_capacity(a.len());
        for row in 0..a.len() {
            if a.is_null(row) || b.is_null(row) {
                out.append_null();
                continue;
            }
            match numeric::divide(a.value(row), a_scale, b.value(row), b_scale, out_scale) {
                Ok(q) => out.append_value(q),
                Err(NumericError::DivisionByZero) => {
                    return Err(DataFusionError::ArrowError(
                        Box::new(ArrowError::DivideByZero),
                        None,
                    ));
                }
                Err(NumericError::Overflow) => {
                    return Err(DataFusionError::ArrowError(
                        Box::new(ArrowError::ArithmeticOverflow(
                            "numeric field overflow in division".into(),
                        )),
                        None,
                    ));
                }
            }
        }
        let result: ArrayRef = Arc::new(
            out.finish()
                .with_precision_and_scale(MAX_PRECISION, out_scale)?,
        );
        if all_scalars {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(result))
    }
}
