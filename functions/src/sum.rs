//! `sum` with PostgreSQL's result types: `smallint` and `integer` sums are
//! `bigint`, `bigint` sums are `numeric` (so they cannot overflow: DataFusion's
//! `bigint` sum wrapped around silently, 9223372036854775807 + 1 summing to
//! -9223372036854775808). Integers are summed exactly as 128-bit integers
//! here; floats, decimals and intervals are left to DataFusion's `sum`.
//!
//! Argument types are coerced to fixed points (`smallint` to `integer`, so that
//! coercing again changes nothing, as DataFusion requires), which is how the
//! result type can still tell `integer` from `bigint` input.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, ListArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF, SetMonotonicity,
    Signature, Volatility,
};

/// The type integer sums accumulate in (and `bigint` sums return).
const EXACT: DataType = DataType::Decimal128(38, 0);

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

/// Whether an argument of this (coerced) type is summed here.
fn exact(arg: &DataType) -> bool {
    matches!(arg, DataType::Int32 | DataType::Int64 | DataType::UInt64)
}

fn overflow(what: &str) -> DataFusionError {
    DataFusionError::ArrowError(
        Box::new(ArrowError::ArithmeticOverflow(format!(
            "{what} out of range"
        ))),
        None,
    )
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
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16 => DataType::Int32,
            DataType::UInt32 | DataType::Int64 => DataType::Int64,
            DataType::UInt64 => DataType::UInt64,
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
        match &arg_types[0] {
            DataType::Int32 => Ok(DataType::Int64),
            DataType::Int64 | DataType::UInt64 => Ok(EXACT),
            _ => self.builtin.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !exact(args.expr_fields[0].data_type()) {
            return self.builtin.accumulator(args);
        }
        Ok(Box::new(SumAccumulator {
            output: args.return_type().clone(),
            sum: 0,
            count: 0,
            distinct: args.is_distinct.then(HashSet::new),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if !exact(args.input_fields[0].data_type()) {
            return self.builtin.state_fields(args);
        }
        if args.is_distinct {
            return Ok(vec![Arc::new(Field::new_list(
                format_state_name(args.name, "sum distinct"),
                Field::new_list_field(EXACT, true),
                false,
            ))]);
        }
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "sum"),
            EXACT,
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if !exact(args.expr_fields[0].data_type()) {
            return self.builtin.groups_accumulator_supported(args);
        }
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if !exact(args.expr_fields[0].data_type()) {
            return self.builtin.create_groups_accumulator(args);
        }
        Ok(Box::new(SumGroups {
            output: args.return_type().clone(),
            sums: Vec::new(),
            seen: Vec::new(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !exact(args.expr_fields[0].data_type()) {
            return self.builtin.create_sliding_accumulator(args);
        }
        self.accumulator(args)
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

/// The integers of `values` as 128-bit values.
fn exact_values(values: &ArrayRef) -> Result<Decimal128Array> {
    Ok(cast(values, &EXACT)?
        .as_primitive::<Decimal128Type>()
        .clone())
}

/// `sum` as the result type wants it: `bigint` (checked) or `numeric`.
fn result(sum: Option<i128>, output: &DataType) -> Result<ScalarValue> {
    Ok(match output {
        DataType::Int64 => ScalarValue::Int64(
            sum.map(|s| i64::try_from(s).map_err(|_| overflow("bigint")))
                .transpose()?,
        ),
        _ => ScalarValue::Decimal128(sum, 38, 0),
    })
}

/// One group's sum (no GROUP BY, DISTINCT, window frames).
#[derive(Debug)]
struct SumAccumulator {
    output: DataType,
    sum: i128,
    count: u64,
    distinct: Option<HashSet<i128>>,
}

impl SumAccumulator {
    fn add(&mut self, value: i128) -> Result<()> {
        if let Some(seen) = &mut self.distinct {
            seen.insert(value);
            return Ok(());
        }
        self.sum = self
            .sum
            .checked_add(value)
            .ok_or_else(|| overflow("numeric"))?;
        self.count += 1;
        Ok(())
    }
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for value in exact_values(&values[0])?.iter().flatten() {
            self.add(value)?;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for value in exact_values(&values[0])?.iter().flatten() {
            self.sum = self
                .sum
                .checked_sub(value)
                .ok_or_else(|| overflow("numeric"))?;
            self.count -= 1;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        self.distinct.is_none()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if self.distinct.is_some() {
            let lists: &ListArray = states[0].as_list();
            for list in lists.iter().flatten() {
                for value in exact_values(&list)?.iter().flatten() {
                    self.add(value)?;
                }
            }
            return Ok(());
        }
        for value in exact_values(&states[0])?.iter().flatten() {
            self.add(value)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        if let Some(seen) = &self.distinct {
            let values: Vec<ScalarValue> = seen
                .iter()
                .map(|v| ScalarValue::Decimal128(Some(*v), 38, 0))
                .collect();
            return Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
                &values, &EXACT,
            ))]);
        }
        Ok(vec![ScalarValue::Decimal128(
            (self.count > 0).then_some(self.sum),
            38,
            0,
        )])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let sum = match &self.distinct {
            Some(seen) if seen.is_empty() => None,
            Some(seen) => Some(
                seen.iter()
                    .try_fold(0i128, |s, v| s.checked_add(*v))
                    .ok_or_else(|| overflow("numeric"))?,
            ),
            None => (self.count > 0).then_some(self.sum),
        };
        result(sum, &self.output)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.distinct.as_ref().map_or(0, |s| s.capacity() * 16)
    }
}

/// Sums of many groups (GROUP BY).
#[derive(Debug)]
struct SumGroups {
    output: DataType,
    sums: Vec<i128>,
    seen: Vec<bool>,
}

impl SumGroups {
    fn add(
        &mut self,
        values: &Decimal128Array,
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, 0);
        self.seen.resize(total_num_groups, false);
        for (row, group) in group_indices.iter().enumerate() {
            if values.is_null(row) || filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            self.sums[*group] = self.sums[*group]
                .checked_add(values.value(row))
                .ok_or_else(|| overflow("numeric"))?;
            self.seen[*group] = true;
        }
        Ok(())
    }
}

impl GroupsAccumulator for SumGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let values = exact_values(&values[0])?;
        self.add(&values, group_indices, opt_filter, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let values = exact_values(&values[0])?;
        self.add(&values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = exact_values(&values[0])?;
        let kept: Decimal128Array = (0..values.len())
            .map(|row| {
                let taken = values.is_valid(row)
                    && opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
                taken.then(|| values.value(row))
            })
            .collect();
        Ok(vec![Arc::new(kept.with_precision_and_scale(38, 0)?)])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        let present = sums
            .into_iter()
            .zip(seen)
            .map(|(s, seen)| seen.then_some(s));
        Ok(match self.output {
            DataType::Int64 => Arc::new(
                present
                    .map(|s| {
                        s.map(|s| i64::try_from(s).map_err(|_| overflow("bigint")))
                            .transpose()
                    })
                    .collect::<Result<Int64Array>>()?,
            ),
            _ => Arc::new(
                present
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(38, 0)?,
            ),
        })
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        let state: Decimal128Array = sums
            .into_iter()
            .zip(seen)
            .map(|(s, seen)| seen.then_some(s))
            .collect();
        Ok(vec![Arc::new(state.with_precision_and_scale(38, 0)?)])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.seen.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_result_types_and_fixed_points() {
        let sum = PgSum::new();
        let result = |t: DataType| {
            let coerced = sum.coerce_types(&[t]).unwrap();
            // Coercing again changes nothing.
            assert_eq!(sum.coerce_types(&coerced).unwrap(), coerced);
            sum.return_type(&coerced).unwrap()
        };
        assert_eq!(result(DataType::Int64), EXACT);
        assert_eq!(result(DataType::Int32), DataType::Int64);
        assert_eq!(result(DataType::Int16), DataType::Int64);
        assert_eq!(
            result(DataType::Decimal128(15, 2)),
            DataType::Decimal128(25, 2)
        );
        assert_eq!(result(DataType::Float32), DataType::Float64);
        assert!(sum.coerce_types(&[DataType::Utf8]).is_err());
    }

    #[test]
    fn bigint_sums_do_not_wrap_and_integer_sums_check() {
        let mut acc = SumAccumulator {
            output: EXACT,
            sum: 0,
            count: 0,
            distinct: None,
        };
        let big: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX, 1]));
        acc.update_batch(&[big]).unwrap();
        assert_eq!(
            acc.evaluate().unwrap(),
            ScalarValue::Decimal128(Some(i64::MAX as i128 + 1), 38, 0)
        );
        let mut groups = SumGroups {
            output: DataType::Int64,
            sums: vec![],
            seen: vec![],
        };
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(1), None]));
        groups.update_batch(&[values], &[0, 0, 1], None, 2).unwrap();
        assert!(groups.evaluate(EmitTo::All).is_err());
    }
}
