//! Functions that describe `pg_proc` rows: `pg_get_function_result`,
//! `pg_get_function_arguments`, `pg_get_function_identity_arguments` (psql's
//! `\df`, DBeaver's function browser), and `pg_typeof`.
//!
//! pg_proc is datafusion-pg-catalog's fixed snapshot of PostgreSQL's built-in
//! functions; its rows are read once when the engine opens, and each function's
//! signature is rendered with PostgreSQL's type names.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{RowFunction, oid, utf8};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::pgcompat::catalog::pg_types::{format_oid, format_type, wire_type};

/// What `\df` shows of one function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ProcSignature {
    result: String,
    arguments: String,
}

/// The family's table: reads pg_proc and builds the functions over it.
pub async fn functions(ctx: &SessionContext) -> Result<Vec<RowFunction>> {
    let mut rows = ctx
        .sql(
            "SELECT CAST(oid AS BIGINT), CAST(prorettype AS BIGINT), proretset, proargtypes, \
             CAST(proallargtypes AS VARCHAR), CAST(proargmodes AS VARCHAR), \
             CAST(proargnames AS VARCHAR) FROM pg_catalog.pg_proc",
        )
        .await?
        .execute_stream()
        .await?;
    let mut procs = HashMap::new();
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        let oids = batch.column(0).as_primitive::<Int64Type>();
        let rets = batch.column(1).as_primitive::<Int64Type>();
        let retset = batch.column(2).as_boolean();
        let text = |col: usize, row: usize| -> Option<String> {
            let a = batch.column(col);
            (!a.is_null(row)).then(|| {
                ScalarValue::try_from_array(a, row)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            })
        };
        for row in 0..batch.num_rows() {
            let ret = type_name(rets.value(row));
            let result = if retset.value(row) {
                format!("SETOF {ret}")
            } else {
                ret
            };
            let arguments = render_arguments(
                text(3, row).as_deref(),
                text(4, row).as_deref(),
                text(5, row).as_deref(),
                text(6, row).as_deref(),
            );
            procs.insert(oids.value(row), ProcSignature { result, arguments });
        }
    }
    let procs = Arc::new(procs);
    let describe = |name, render: fn(&ProcSignature) -> String| {
        let procs = procs.clone();
        // NULL for an unknown OID, as in PostgreSQL.
        RowFunction::new(
            name,
            &[1],
            Volatility::Stable,
            DataType::Utf8,
            move |args| {
                Ok(ScalarValue::Utf8(
                    oid(&args[0]).and_then(|oid| procs.get(&oid)).map(render),
                ))
            },
        )
    };
    Ok(vec![
        describe("pg_get_function_result", |p| p.result.clone()),
        describe("pg_get_function_arguments", |p| p.arguments.clone()),
        describe("pg_get_function_identity_arguments", |p| {
            p.arguments.clone()
        }),
        // `oid::regtype::text`: the type's name (`-` for 0, as PostgreSQL
        // prints it; the number for an OID that names no built-in type).
        RowFunction::new(
            "vivace_regtype_name",
            &[1],
            Volatility::Immutable,
            DataType::Utf8,
            |args| {
                Ok(match oid(&args[0]) {
                    Some(0) => utf8("-"),
                    Some(oid) => utf8(type_name(oid)),
                    None => ScalarValue::Utf8(None),
                })
            },
        ),
    ])
}

/// `pg_typeof`, which answers from its argument's type rather than its value.
pub fn pg_typeof() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeof {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

fn type_name(oid: i64) -> String {
    u32::try_from(oid)
        .ok()
        .and_then(format_oid)
        .unwrap_or_else(|| oid.to_string())
}

/// `integer, integer` / `VARIADIC "any"` / `a integer, OUT b text`, from
/// pg_proc's argument columns (`proargtypes` is space-separated; the `proall*`
/// columns are arrays, present when some argument is not a plain IN).
fn render_arguments(
    argtypes: Option<&str>,
    allargtypes: Option<&str>,
    modes: Option<&str>,
    names: Option<&str>,
) -> String {
    let list = |s: Option<&str>| -> Vec<String> {
        s.map(|s| {
            s.trim_matches(|c| c == '[' || c == ']' || c == '{' || c == '}')
                .split([',', ' '])
                .map(|p| p.trim().trim_matches('\'').trim_matches('"').to_string())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    let types = match list(allargtypes) {
        all if !all.is_empty() => all,
        _ => list(argtypes),
    };
    let modes = list(modes);
    let names = list(names);
    types
        .iter()
        .enumerate()
        .map(|(i, oid)| {
            let mode = match modes.get(i).map(String::as_str) {
                Some("o") => "OUT ",
                Some("b") => "INOUT ",
                Some("v") => "VARIADIC ",
                _ => "",
            };
            let name = names
                .get(i)
                .filter(|n| !n.is_empty())
                .map(|n| format!("{n} "))
                .unwrap_or_default();
            let ty = oid
                .parse::<i64>()
                .map(type_name)
                .unwrap_or_else(|_| oid.clone());
            format!("{mode}{name}{ty}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pg_typeof(x)`: the PostgreSQL type of `x`, by name (PostgreSQL returns a
/// regtype, which clients print as this name).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrow = args.args[0].data_type();
        let name = match wire_type(&arrow) {
            Some(ty) if arrow != DataType::Null => format_type(&ty),
            _ => "unknown".to_string(),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_render_as_postgres_does() {
        assert_eq!(
            render_arguments(Some("23 23"), None, None, None),
            "integer, integer"
        );
        assert_eq!(
            render_arguments(Some("2276"), Some("[2276]"), Some("['v']"), None),
            "VARIADIC \"any\""
        );
        assert_eq!(render_arguments(Some(""), None, None, None), "");
    }
}
