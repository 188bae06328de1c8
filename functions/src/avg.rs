//! `avg` as PostgreSQL computes it over integers and decimals: the exact sum
//! divided by the count, rounded to PostgreSQL's scale ([`crate::numeric`]),
//! as `numeric`. Floats and intervals are left to DataFusion's `avg`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Decimal128Builder, ListArray,
    UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, UInt64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::numeric::{self, MAX_PRECISION, NumericError};

/// PostgreSQL's `avg`; DataFusion's for the types PostgreSQL averages as floats.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgAvg {
    signature: Signature,
    builtin: Avg,
}

impl PgAvg {
    /// The function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            builtin: Avg::new(),
        }
    }
}

/// The scale of `avg`'s result over `Decimal128(p, s)`.
fn output_scale(p: u8, s: i8) -> i8 {
    numeric::result_scale(p, s, 1, 0)
}

fn overflow() -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::ArrowError(
        Box::new(datafusion::arrow::error::ArrowError::ArithmeticOverflow(
            "numeric value out of range in avg".into(),
        )),
        None,
    )
}

/// `sum / count` at `out_scale`.
fn average(sum: i128, scale: i8, count: u64, out_scale: i8) -> Result<i128> {
    numeric::divide(sum, scale, count as i128, 0, out_scale).map_err(|e| match e {
        NumericError::DivisionByZero | NumericError::Overflow => overflow(),
    })
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        self.builtin.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("Function 'avg' failed to match any signature: one argument");
        };
        match numeric::as_decimal(arg) {
            Some(decimal) => Ok(vec![decimal]),
            None => match arg {
                DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Null => {
                    Ok(vec![DataType::Float64])
                }
                DataType::Decimal256(..) | DataType::Duration(_) => Ok(vec![arg.clone()]),
                other => plan_err!(
                    "Function 'avg' failed to match any signature: avg({other}) does not exist"
                ),
            },
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            DataType::Decimal128(p, s) => {
                Ok(DataType::Decimal128(MAX_PRECISION, output_scale(*p, *s)))
            }
            _ => self.builtin.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match (args.expr_fields[0].data_type(), args.return_type()) {
            (DataType::Decimal128(_, scale), DataType::Decimal128(_, out_scale)) => {
                Ok(Box::new(AvgAccumulator {
                    scale: *scale,
                    out_scale: *out_scale,
                    sum: 0,
                    count: 0,
                    distinct: args.is_distinct.then(HashSet::new),
                }))
            }
            _ => self.builtin.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let DataType::Decimal128(_, scale) = args.input_fields[0].data_type() else {
            return self.builtin.state_fields(args);
        };
        let sum_type = DataType::Decimal128(MAX_PRECISION, *scale);
        if args.is_distinct {
            return Ok(vec![Arc::new(Field::new_list(
                format_state_name(args.name, "avg distinct"),
                Field::new_list_field(sum_type, true),
                false,
            ))]);
        }
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "count"),
                DataType::UInt64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "sum"),
                sum_type,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match args.expr_fields[0].data_type() {
            DataType::Decimal128(..) => !args.is_distinct,
            _ => self.builtin.groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match (args.expr_fields[0].data_type(), args.return_type()) {
            (DataType::Decimal128(_, scale), DataType::Decimal128(_, out_scale)) => {
                Ok(Box::new(AvgGroups {
                    scale: *scale,
                    out_scale: *out_scale,
                    sums: Vec::new(),
                    counts: Vec::new(),
                }))
            }
            _ => self.builtin.create_groups_accumulator(args),
        }
    }
}

/// Decimal values of `values` (cast from integers when the plan did not).
fn decimals(values: &ArrayRef, scale: i8) -> Result<Decimal128Array> {
    match values.data_type() {
        DataType::Decimal128(..) => Ok(values.as_primitive::<Decimal128Type>().clone()),
        _ => Ok(cast(values, &DataType::Decimal128(MAX_PRECISION, scale))?
            .as_primitive::<Decimal128Type>()
            .clone()),
    }
}

/// One group's average, for queries without GROUP BY and for DISTINCT.
#[derive(Debug)]
struct AvgAccumulator {
    scale: i8,
    out_scale: i8,
    sum: i128,
    count: u64,
    /// The values seen, for `avg(DISTINCT …)`.
    distinct: Option<HashSet<i128>>,
}

impl AvgAccumulator {
    fn add(&mut self, value: i128) -> Result<()> {
        if let Some(seen) = &mut self.distinct {
            seen.insert(value);
            return Ok(());
        }
        self.sum = self.sum.checked_add(value).ok_or_else(overflow)?;
        self.count += 1;
        Ok(())
    }
}

impl Accumulator for AvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for value in decimals(&values[0], self.scale)?.iter().flatten() {
            self.add(value)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if self.distinct.is_some() {
            let lists: &ListArray = states[0].as_list();
            for list in lists.iter().flatten() {
                for value in decimals(&list, self.scale)?.iter().flatten() {
                    self.add(value)?;
                }
            }
            return Ok(());
        }
        let counts = states[0].as_primitive::<UInt64Type>();
        let sums = decimals(&states[1], self.scale)?;
        for (count, sum) in counts.iter().zip(sums.iter()) {
            if let (Some(count), Some(sum)) = (count, sum) {
                self.sum = self.sum.checked_add(sum).ok_or_else(overflow)?;
                self.count += count;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        if let Some(seen) = &self.distinct {
            let values: Vec<ScalarValue> = seen
                .iter()
                .map(|v| ScalarValue::Decimal128(Some(*v), MAX_PRECISION, self.scale))
                .collect();
            return Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
                &values,
                &DataType::Decimal128(MAX_PRECISION, self.scale),
            ))]);
        }
        Ok(vec![
            ScalarValue::UInt64(Some(self.count)),
            ScalarValue::Decimal128(Some(self.sum), MAX_PRECISION, self.scale),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (sum, count) = match &self.distinct {
            Some(seen) => {
                let mut sum = 0i128;
                for v in seen {
                    sum = sum.checked_add(*v).ok_or_else(overflow)?;
                }
                (sum, seen.len() as u64)
            }
            None => (self.sum, self.count),
        };
        let value = match count {
            0 => None,
            n => Some(average(sum, self.scale, n, self.out_scale)?),
        };
        Ok(ScalarValue::Decimal128(
            value,
            MAX_PRECISION,
            self.out_scale,
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.distinct.as_ref().map_or(0, |s| s.capacity() * 16)
    }
}

/// Averages of many groups (GROUP BY).
#[derive(Debug)]
struct AvgGroups {
    scale: i8,
    out_scale: i8,
    sums: Vec<i128>,
    counts: Vec<u64>,
}

impl AvgGroups {
    fn add(
        &mut self,
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
        mut each: impl FnMut(usize) -> Option<(i128, u64)>,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, 0);
        self.counts.resize(total_num_groups, 0);
        for (row, group) in group_indices.iter().enumerate() {
            if filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            if let Some((sum, count)) = each(row) {
                self.sums[*group] = self.sums[*group].checked_add(sum).ok_or_else(overflow)?;
                self.counts[*group] += count;
            }
        }
        Ok(())
    }
}

impl GroupsAccumulator for AvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let values = decimals(&values[0], self.scale)?;
        self.add(group_indices, opt_filter, total_num_groups, |row| {
            values.is_valid(row).then(|| (values.value(row), 1))
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let counts = values[0].as_primitive::<UInt64Type>().clone();
        let sums = decimals(&values[1], self.scale)?;
        self.add(group_indices, None, total_num_groups, |row| {
            (counts.is_valid(row) && sums.is_valid(row))
                .then(|| (sums.value(row), counts.value(row)))
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = decimals(&values[0], self.scale)?;
        let taken = |row: usize| {
            values.is_valid(row) && opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row))
        };
        let counts: UInt64Array = (0..values.len())
            .map(|row| Some(u64::from(taken(row))))
            .collect();
        let sums: Decimal128Array = (0..values.len())
            .map(|row| Some(if taken(row) { values.value(row) } else { 0 }))
            .collect();
        Ok(vec![
            Arc::new(counts),
            Arc::new(sums.with_precision_and_scale(MAX_PRECISION, self.scale)?),
        ])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let mut out = Decimal128Builder::with_capacity(sums.len());
        for (sum, count) in sums.into_iter().zip(counts) {
            match count {
                0 => out.append_null(),
                n => out.append_value(average(sum, self.scale, n, self.out_scale)?),
            }
        }
        Ok(Arc::new(
            out.finish()
                .with_precision_and_scale(MAX_PRECISION, self.out_scale)?,
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        Ok(vec![
            Arc::new(UInt64Array::from(counts)),
            Arc::new(
                Decimal128Array::from(sums).with_precision_and_scale(MAX_PRECISION, self.scale)?,
            ),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.counts.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avg_over(values: &[Option<i128>], p: u8, s: i8) -> ScalarValue {
        let input = Arc::new(
            Decimal128Array::from(values.to_vec())
                .with_precision_and_scale(p, s)
                .unwrap(),
        ) as ArrayRef;
        let out_scale = output_scale(p, s);
        let mut acc = AvgAccumulator {
            scale: s,
            out_scale,
            sum: 0,
            count: 0,
            distinct: None,
        };
        acc.update_batch(std::slice::from_ref(&input)).unwrap();
        let single = acc.evaluate().unwrap();
        // The same through groups: one group, fed in two halves and merged.
        let mut groups = AvgGroups {
            scale: s,
            out_scale,
            sums: vec![],
            counts: vec![],
        };
        let half = values.len() / 2;
        groups
            .update_batch(&[input.slice(0, half)], &vec![0; half], None, 1)
            .unwrap();
        let mut other = AvgGroups {
            scale: s,
            out_scale,
            sums: vec![],
            counts: vec![],
        };
        other
            .update_batch(
                &[input.slice(half, values.len() - half)],
                &vec![0; values.len() - half],
                None,
                1,
            )
            .unwrap();
        let state = other.state(EmitTo::All).unwrap();
        groups.merge_batch(&state, &[0], 1).unwrap();
        let merged =
            ScalarValue::try_from_array(&groups.evaluate(EmitTo::All).unwrap(), 0).unwrap();
        assert_eq!(single, merged);
        single
    }

    #[test]
    fn averages_round_to_postgres_scale() {
        // numeric(15,2): 0.05, 0.05, 0.04 -> PostgreSQL 0.04666666666666666667.
        let got = avg_over(&[Some(5), Some(5), Some(4), None], 15, 2);
        assert_eq!(got.to_string(), "0.04666666666666666667");
        // 10.00, 0, 0 -> 3.3333333333333333 (16 digits), written at 20.
        let got = avg_over(&[Some(1000), Some(0), Some(0)], 15, 2);
        assert_eq!(got.to_string(), "3.33333333333333330000");
        // No rows: NULL.
        assert_eq!(
            avg_over(&[None, None], 15, 2),
            ScalarValue::Decimal128(None, 38, 20)
        );
    }

    #[test]
    fn integers_average_as_numeric() {
        let avg = PgAvg::new();
        assert_eq!(
            avg.coerce_types(&[DataType::Int64]).unwrap(),
            vec![DataType::Decimal128(19, 0)]
        );
        assert_eq!(
            avg.return_type(&[DataType::Decimal128(19, 0)]).unwrap(),
            DataType::Decimal128(38, 19)
        );
        assert_eq!(
            avg.return_type(&[DataType::Float64]).unwrap(),
            DataType::Float64
        );
        assert!(avg.coerce_types(&[DataType::Utf8]).is_err());
    }

    #[test]
    fn overflow_is_an_error_not_a_wrapped_sum() {
        let mut acc = AvgAccumulator {
            scale: 0,
            out_scale: 19,
            sum: i128::MAX - 1,
            count: 1,
            distinct: None,
        };
        let input = Arc::new(
            Decimal128Array::from(vec![Some(10i128)])
                .with_precision_and_scale(38, 0)
                .unwrap(),
        ) as ArrayRef;
        assert!(acc.update_batch(&[input]).is_err());
    }
}
