//! Configuration settings functions, bound to one session's settings:
//! `current_setting(name [, missing_ok])` and `set_config(name, value,
//! is_local)`.

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue, exec_err};
use datafusion::logical_expr::Volatility;

use super::{RowFunction, text};
use crate::pgcompat::settings::Settings;

/// The family's table, over one session's settings.
pub fn functions(settings: Arc<Mutex<Settings>>) -> Vec<RowFunction> {
    let read = settings.clone();
    vec![
        RowFunction::new(
            "current_setting",
            &[1, 2],
            Volatility::Stable,
            DataType::Utf8,
            move |args| {
                let name = text(&args[0]).unwrap_or_default();
                let missing_ok = args
                    .get(1)
                    .and_then(text)
                    .is_some_and(|v| v == "true" || v == "t");
                let Ok(settings) = read.lock() else {
                    return exec_err!("session settings are unavailable");
                };
                match settings.get(&name) {
                    Ok(value) => Ok(ScalarValue::Utf8(Some(value))),
                    Err(_) if missing_ok => Ok(ScalarValue::Utf8(None)),
                    Err(e) => Err(DataFusionError::External(Box::new(e))),
                }
            },
        ),
        // `is_local` is treated as a session-wide change, since Vivace has no
        // transactions to end.
        RowFunction::new(
            "set_config",
            &[3],
            Volatility::Volatile,
            DataType::Utf8,
            move |args| {
                let (Some(name), Some(value)) = (text(&args[0]), text(&args[1])) else {
                    return Ok(ScalarValue::Utf8(None));
                };
                let Ok(mut settings) = settings.lock() else {
                    return exec_err!("session settings are unavailable");
                };
                settings
                    .set(&name, &value)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                Ok(ScalarValue::Utf8(Some(
                    settings.get(&name).unwrap_or(value),
                )))
            },
        )
        .lenient(),
    ]
}
