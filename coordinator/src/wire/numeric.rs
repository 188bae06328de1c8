//! `numeric` values as PostgreSQL sends them, in text and in binary, from
//! Arrow decimals of any precision.
//!
//! arrow-pg converts every decimal to `rust_decimal`, which holds 28 digits: a
//! `numeric(38,10)` column, or an average written at 20 decimals over values
//! above about 800 million, failed to encode (22003). These encoders work on
//! the exact digits instead.

use std::fmt::Write;

/// The value `m · 10^-scale` as PostgreSQL's text: `-12.3400`, `0.05`, `0`.
pub fn write_text(out: &mut String, m: i128, scale: i8) {
    let (int, frac) = split(m, scale);
    if m < 0 {
        out.push('-');
    }
    out.push_str(&int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
}

/// The value `m · 10^-scale` in PostgreSQL's binary `numeric` format: digit
/// count, weight, sign and display scale (16 bits each), then base-10000 digits.
pub fn binary(m: i128, scale: i8) -> Vec<u8> {
    let (int, frac) = split(m, scale);
    let int_groups = groups_from_the_right(&int);
    let mut digits: Vec<i16> = int_groups;
    let mut weight = digits.len() as i16 - 1;
    digits.extend(groups_from_the_left(&frac));
    let leading = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..leading);
    weight -= leading as i16;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let sign: u16 = if m < 0 && !digits.is_empty() {
        0x4000
    } else {
        0
    };
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(frac.len() as i16).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

/// The integer and fraction digits of `|m| · 10^-scale` (fraction: exactly
/// `scale` digits; a negative scale means trailing zeros).
fn split(m: i128, scale: i8) -> (String, String) {
    let mut digits = m.unsigned_abs().to_string();
    if scale <= 0 {
        if m != 0 {
            for _ in 0..(-(scale as i32)) {
                digits.push('0');
            }
        }
        return (digits, String::new());
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        let mut frac = String::with_capacity(scale);
        let _ = write!(frac, "{digits:0>scale$}");
        return ("0".to_string(), frac);
    }
    let frac = digits.split_off(digits.len() - scale);
    (digits, frac)
}

/// Base-10000 digits of an integer's decimal digits, most significant first.
fn groups_from_the_right(digits: &str) -> Vec<i16> {
    let pad = (4 - digits.len() % 4) % 4;
    let padded = format!("{}{digits}", "0".repeat(pad));
    padded.as_bytes().chunks(4).map(group).collect()
}

/// Base-10000 digits of a fraction's decimal digits, the first after the point first.
fn groups_from_the_left(digits: &str) -> Vec<i16> {
    let pad = (4 - digits.len() % 4) % 4;
    let padded = format!("{digits}{}", "0".repeat(pad));
    padded.as_bytes().chunks(4).map(group).collect()
}

fn group(chunk: &[u8]) -> i16 {
    chunk.iter().fold(0i16, |n, b| n * 10 + i16::from(b - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: i128, scale: i8) -> String {
        let mut out = String::new();
        write_text(&mut out, m, scale);
        out
    }

    /// (ndigits, weight, sign, dscale, digits) of a binary numeric.
    fn fields(bytes: &[u8]) -> (i16, i16, u16, i16, Vec<i16>) {
        let word = |i: usize| i16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]);
        let n = word(0);
        (
            n,
            word(1),
            word(2) as u16,
            word(3),
            (0..n as usize).map(|i| word(4 + i)).collect(),
        )
    }

    #[test]
    fn text_like_postgres() {
        assert_eq!(text(1234, 2), "12.34");
        assert_eq!(text(-5, 2), "-0.05");
        assert_eq!(text(0, 3), "0.000");
        assert_eq!(text(7, 0), "7");
        assert_eq!(text(12, -2), "1200");
        // 38 digits, beyond rust_decimal's 28.
        assert_eq!(
            text(12_345_678_901_234_567_890_123_456_789_012_345_678, 20),
            "123456789012345678.90123456789012345678"
        );
    }

    #[test]
    fn binary_like_postgres() {
        // SELECT 12.34::numeric -> ndigits 2, weight 0, digits [12, 3400], dscale 2
        assert_eq!(fields(&binary(1234, 2)), (2, 0, 0, 2, vec![12, 3400]));
        // 0.05 -> [500] at weight -1
        assert_eq!(fields(&binary(5, 2)), (1, -1, 0, 2, vec![500]));
        // 10000 -> [1] at weight 1 (trailing zero groups dropped)
        assert_eq!(fields(&binary(10_000, 0)), (1, 1, 0, 0, vec![1]));
        // -1.5 -> sign 0x4000
        assert_eq!(fields(&binary(-15, 1)), (2, 0, 0x4000, 1, vec![1, 5000]));
        // zero keeps its scale, no digits
        assert_eq!(fields(&binary(0, 2)), (0, 0, 0, 2, vec![]));
        // 0.00001234 -> [0, 1234] would start with a zero group: [1234] at weight -2
        assert_eq!(fields(&binary(1234, 8)), (1, -2, 0, 8, vec![1234]));
    }
}
