//! Floats as PostgreSQL writes them (`float8out`, `float4out` with
//! `extra_float_digits` ≥ 1, the default): the shortest digits that read back
//! as the value, `%g` style (`2`, `1e+20`, `1.5e-07`, `Infinity`, `NaN`). The
//! wire layer writes float columns and array elements with it, and JSON
//! values (`to_json` writes a float as its text) too.

/// The shortest digits that read back as `v` (Rust's `{:e}` gives exactly those),
/// laid out as PostgreSQL does: positional when `-4 <= exponent < max_exp`
/// (15 for float8, 6 for float4), else `d.ddde±XX`.
pub fn format_float<T: Into<f64> + std::fmt::LowerExp + Copy>(v: T, max_exp: i32) -> String {
    let f: f64 = v.into();
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if exp < -4 || exp >= max_exp {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}
