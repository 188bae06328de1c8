//! `sum` with PostgreSQL's result types: `bigint` sums are `numeric`, so they
//! cannot overflow (DataFusion's `bigint` sum wrapped around silently:
//! 9223372036854775807 + 1 summed to -9223372036854775808). Smaller integers
//! sum to `bigint`, as in PostgreSQL; everything else is DataFusion's `sum`.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, plan_err};
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, SetMonotonicity, Signature,
    Volatility,
};

/// PostgreSQL's `sum`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgSum {
    signature: Signature,
    builtin: Sum,
}

impl PgSum {
    /// The function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            builtin: Sum::new(),
        }
    }
}

impl AggregateUDFImpl for PgSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("Function 'sum' failed to match any signature: one argument");
        };
        let coerced = match arg {
            DataType::Int64 | DataType::UInt64 => DataType::Decimal128(38, 0),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => DataType::Int64,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_)
            | DataType::Interval(_) => arg.clone(),
            DataType::Null => return plan_err!("SUM not supported for Null"),
            other => {
                return plan_err!(
                    "Function 'sum' failed to match any signature: sum({other}) does not exist"
                );
            }
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.builtin.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.builtin.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.builtin.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.builtin.set_monotonicity(data_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_result_types() {
        let sum = PgSum::new();
        let result = |t: DataType| {
            let coerced = sum.coerce_types(&[t]).unwrap();
            sum.return_type(&coerced).unwrap()
        };
        assert_eq!(result(DataType::Int64), DataType::Decimal128(38, 0));
        assert_eq!(result(DataType::Int32), DataType::Int64);
        assert_eq!(
            result(DataType::Decimal128(15, 2)),
            DataType::Decimal128(25, 2)
        );
        assert_eq!(result(DataType::Float32), DataType::Float64);
        assert!(sum.coerce_types(&[DataType::Utf8]).is_err());
    }
}
