//! PostgreSQL's `numeric` division on Arrow decimals.
//!
//! A decimal here is an `i128` `m` with a scale `s`: the value `m · 10^-s`.
//! PostgreSQL divides numerics to a result scale chosen per value
//! (`select_div_scale` in `src/backend/utils/adt/numeric.c`): enough digits for
//! at least 16 significant ones, and never fewer than either operand's scale;
//! the last digit is rounded half away from zero. `avg` is such a division of
//! the sum by the count. DataFusion instead truncates at a scale fixed by the
//! types (`avg` of `numeric(15,2)` gave 6 decimals: 0.049997 for
//! 0.04999770…). Here the value is PostgreSQL's, rounded at PostgreSQL's scale,
//! then written at the fixed scale of the Arrow result type, which is chosen
//! to be at least as large in practice ([`result_scale`]); only when
//! PostgreSQL would keep more digits than that type has is it rounded there.

use datafusion::arrow::datatypes::{DataType, i256};

/// Significant digits PostgreSQL keeps at least (`NUMERIC_MIN_SIG_DIGITS`).
const MIN_SIGNIFICANT_DIGITS: i32 = 16;

/// Decimal digits in one of PostgreSQL's base-10000 digits (`DEC_DIGITS`).
const DIGITS_PER_GROUP: u32 = 4;

/// The largest scale PostgreSQL displays (`NUMERIC_MAX_DISPLAY_SCALE`).
const MAX_DISPLAY_SCALE: i32 = 1000;

/// The most decimal digits a `Decimal128` holds.
pub const MAX_PRECISION: u8 = 38;

/// Scale of division results when the operands leave room for it: 20 digits,
/// PostgreSQL's choice for quotients between 0.0001 and 1.
const PREFERRED_SCALE: u8 = 20;

/// The `Decimal128` an integer or decimal type is computed as: integers
/// with the digits their widest value needs, as PostgreSQL treats them as
/// `numeric` in `avg` and in division with a `numeric`.
pub fn as_decimal(data_type: &DataType) -> Option<DataType> {
    Some(match data_type {
        DataType::Int8 | DataType::UInt8 => DataType::Decimal128(3, 0),
        DataType::Int16 | DataType::UInt16 => DataType::Decimal128(5, 0),
        DataType::Int32 | DataType::UInt32 => DataType::Decimal128(10, 0),
        DataType::Int64 => DataType::Decimal128(19, 0),
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            DataType::Decimal128(*p, *s)
        }
        _ => return None,
    })
}

/// Why a division has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumericError {
    /// The divisor is zero.
    DivisionByZero,
    /// The result does not fit the result type.
    Overflow,
}

/// Decimals a division result keeps at least, room or not: PostgreSQL's
/// minimum of significant digits.
const MIN_SCALE: u8 = MIN_SIGNIFICANT_DIGITS as u8;

/// The scale of the result type of dividing `Decimal128(p1, s1)` by
/// `Decimal128(p2, s2)`: room for the largest quotient's integer digits
/// (`p1 - s1 + s2`), then up to [`PREFERRED_SCALE`] decimals, but at least
/// [`MIN_SCALE`] (a quotient of more integer digits than are left is then an
/// overflow error; DataFusion widens sums by 10 digits, which would otherwise
/// leave `sum(x) / count(x)` too few decimals) and never fewer than either
/// operand has.
pub fn result_scale(p1: u8, s1: i8, _p2: u8, s2: i8) -> i8 {
    let (s1, s2) = (s1.max(0) as u8, s2.max(0) as u8);
    let integer_digits = p1.saturating_sub(s1).saturating_add(s2);
    let room = MAX_PRECISION.saturating_sub(integer_digits);
    PREFERRED_SCALE
        .min(room.max(MIN_SCALE))
        .max(s1)
        .max(s2)
        .min(MAX_PRECISION) as i8
}

/// PostgreSQL's weight and first base-10000 digit of `m · 10^-scale`: the
/// position of the leading group (0 for units, -1 for the first four
/// decimals, …) and its value; zero has weight 0 and digit 0.
fn weight_and_first_group(m: i128, scale: u32) -> (i32, u128) {
    let m = m.unsigned_abs();
    if m == 0 {
        return (0, 0);
    }
    let unit = 10u128.pow(scale);
    let integer = m / unit;
    if integer > 0 {
        let weight = integer.ilog10() / DIGITS_PER_GROUP;
        return (weight as i32, integer / 10_000u128.pow(weight));
    }
    let fraction = m % unit;
    let groups = scale.div_ceil(DIGITS_PER_GROUP);
    for k in 1..=groups {
        let end = k * DIGITS_PER_GROUP;
        let group = if end <= scale {
            (fraction / 10u128.pow(scale - end)) % 10_000
        } else {
            (fraction % 10u128.pow(scale - (end - DIGITS_PER_GROUP))) * 10u128.pow(end - scale)
        };
        if group != 0 {
            return (-(k as i32), group);
        }
    }
    (0, 0)
}

/// PostgreSQL's result scale for `a / b` (`select_div_scale`).
pub fn division_scale(a: i128, a_scale: u32, b: i128, b_scale: u32) -> u32 {
    let (weight1, first1) = weight_and_first_group(a, a_scale);
    let (weight2, first2) = weight_and_first_group(b, b_scale);
    let mut quotient_weight = weight1 - weight2;
    if first1 <= first2 {
        quotient_weight -= 1;
    }
    let scale = MIN_SIGNIFICANT_DIGITS - quotient_weight * DIGITS_PER_GROUP as i32;
    scale
        .max(a_scale as i32)
        .max(b_scale as i32)
        .clamp(0, MAX_DISPLAY_SCALE) as u32
}

fn pow10(exp: u32) -> Option<i256> {
    i256::from_i128(10).checked_pow(exp)
}

/// `n / d` rounded half away from zero.
fn divide_rounded(n: i256, d: i256) -> Option<i256> {
    let quotient = n.checked_div(d)?;
    let remainder = n.checked_rem(d)?;
    let twice = remainder.checked_abs()?.checked_mul(i256::from_i128(2))?;
    if twice >= d.checked_abs()? {
        let away = if n.is_negative() != d.is_negative() {
            i256::from_i128(-1)
        } else {
            i256::from_i128(1)
        };
        quotient.checked_add(away)
    } else {
        Some(quotient)
    }
}

/// `a / b` as PostgreSQL computes it, written at `out_scale` (a Decimal128 of
/// precision 38). `a` and `b` carry their scales.
pub fn divide(
    a: i128,
    a_scale: i8,
    b: i128,
    b_scale: i8,
    out_scale: i8,
) -> Result<i128, NumericError> {
    if b == 0 {
        return Err(NumericError::DivisionByZero);
    }
    let (a_scale, b_scale, out_scale) = (
        a_scale.max(0) as u32,
        b_scale.max(0) as u32,
        out_scale.max(0) as u32,
    );
    let scale = division_scale(a, a_scale, b, b_scale).min(out_scale);
    // quotient · 10^scale = a · 10^(scale - a_scale + b_scale) / b
    let exponent = scale as i64 - a_scale as i64 + b_scale as i64;
    let (mut n, mut d) = (i256::from_i128(a), i256::from_i128(b));
    if exponent >= 0 {
        n = n
            .checked_mul(pow10(exponent as u32).ok_or(NumericError::Overflow)?)
            .ok_or(NumericError::Overflow)?;
    } else {
        d = d
            .checked_mul(pow10((-exponent) as u32).ok_or(NumericError::Overflow)?)
            .ok_or(NumericError::Overflow)?;
    }
    let rounded = divide_rounded(n, d).ok_or(NumericError::Overflow)?;
    let written = rounded
        .checked_mul(pow10(out_scale - scale).ok_or(NumericError::Overflow)?)
        .ok_or(NumericError::Overflow)?;
    let limit = pow10(MAX_PRECISION as u32).ok_or(NumericError::Overflow)?;
    if written >= limit || written <= limit.wrapping_neg() {
        return Err(NumericError::Overflow);
    }
    written.to_i128().ok_or(NumericError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a / b` at PostgreSQL's own scale, as text (the scale is the one
    /// PostgreSQL prints, so these are PostgreSQL 15's answers).
    fn pg(a: i128, a_scale: i8, b: i128, b_scale: i8) -> String {
        let scale = division_scale(a, a_scale as u32, b, b_scale as u32) as i8;
        let m = divide(a, a_scale, b, b_scale, scale).unwrap();
        let digits = m.unsigned_abs().to_string();
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        let sign = if m < 0 { "-" } else { "" };
        if scale == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }

    #[test]
    fn postgres_scales_and_rounding() {
        // SELECT avg(x) over 0.05, 0.05, 0.04 (numeric(15,2)): sum 0.14 / 3.
        assert_eq!(pg(14, 2, 3, 0), "0.04666666666666666667");
        assert_eq!(pg(100, 2, 3, 0), "0.33333333333333333333");
        assert_eq!(pg(1000, 2, 3, 0), "3.3333333333333333");
        assert_eq!(pg(12_345_879, 2, 3, 0), "41152.930000000000");
        // avg of integers 1, 2, 2.
        assert_eq!(pg(5, 0, 3, 0), "1.6666666666666667");
        // 1.00 / 3.000 and a tiny quotient: 1.00 / 30000000.
        assert_eq!(pg(100, 2, 3000, 3), "0.33333333333333333333");
        assert_eq!(pg(100, 2, 30_000_000, 0), "0.000000033333333333333333");
        // Negative values round away from zero.
        assert_eq!(pg(-2, 0, 3, 0), "-0.66666666666666666667");
        assert_eq!(pg(-14, 2, 3, 0), "-0.04666666666666666667");
        // Exact quotients keep at least the operands' scales.
        assert_eq!(pg(600, 2, 3, 0), "2.0000000000000000");
        assert_eq!(pg(0, 2, 7, 0), "0.00000000000000000000");
    }

    #[test]
    fn written_at_the_result_scale() {
        // Rounded at PostgreSQL's 16 digits, then padded to 20.
        assert_eq!(divide(1000, 2, 3, 0, 20), Ok(333_333_333_333_333_330_000));
        // PostgreSQL would keep 24 digits; a scale of 20 rounds there.
        assert_eq!(divide(100, 2, 30_000_000, 0, 20), Ok(3_333_333_333_333));
        assert_eq!(divide(1, 0, 0, 0, 20), Err(NumericError::DivisionByZero));
        assert_eq!(
            divide(i128::MAX / 10, 0, 1, 0, 20),
            Err(NumericError::Overflow)
        );
    }

    #[test]
    fn result_types() {
        assert_eq!(result_scale(15, 2, 20, 0), 20);
        assert_eq!(result_scale(38, 10, 38, 10), 16);
        assert_eq!(result_scale(25, 2, 19, 0), 16);
        assert_eq!(result_scale(19, 0, 20, 0), 19);
        assert_eq!(result_scale(10, 0, 20, 0), 20);
    }
}
