//! `has_table_privilege` and its siblings, answered for what Vivace allows:
//! every user may read every table, schema and database, and write none of the
//! external tables (they are read-only) — so Metabase marks tables as not
//! writable and offers no data editing, where datafusion-pg-catalog's versions
//! answer true for any privilege. A session's temp tables take INSERT, which is
//! why `TEMP` on a database is granted.
//!
//! As in PostgreSQL the privilege argument is a comma-separated list, each entry
//! optionally followed by `WITH GRANT OPTION`; the answer is true when any entry
//! is granted, and an unknown privilege name is an error (22023).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};

use super::{RowFunction, text};
use crate::error::{SqlError, sqlstate};

/// The family's table, to register over datafusion-pg-catalog's.
pub fn functions() -> Vec<RowFunction> {
    checks()
        .into_iter()
        .map(|check| {
            let signature = Signature::one_of(
                check
                    .arities
                    .iter()
                    .map(|&n| TypeSignature::Any(n))
                    .collect(),
                Volatility::Stable,
            );
            RowFunction::new(
                check.name,
                &[],
                Volatility::Stable,
                DataType::Boolean,
                move |args| {
                    let privileges = args.last().and_then(text).unwrap_or_default();
                    Ok(ScalarValue::Boolean(Some(check.answer(&privileges)?)))
                },
            )
            .with_signature(signature)
        })
        .collect()
}

fn checks() -> Vec<PrivilegeCheck> {
    const TABLE: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
        "MAINTAIN",
    ];
    const COLUMN: &[&str] = &["SELECT", "INSERT", "UPDATE", "REFERENCES"];
    let check = |name, arities, known, granted| PrivilegeCheck {
        name,
        arities,
        known,
        granted,
    };
    vec![
        check("has_table_privilege", &[2, 3], TABLE, &["SELECT"]),
        check("has_any_column_privilege", &[2, 3], COLUMN, &["SELECT"]),
        check("has_column_privilege", &[3, 4], COLUMN, &["SELECT"]),
        check(
            "has_schema_privilege",
            &[2, 3],
            &["USAGE", "CREATE"],
            &["USAGE"],
        ),
        check(
            "has_database_privilege",
            &[2, 3],
            &["CONNECT", "CREATE", "TEMPORARY", "TEMP"],
            &["CONNECT", "TEMPORARY", "TEMP"],
        ),
    ]
}

/// One `has_*_privilege` function: the object arguments are not looked at, the
/// last argument (the privilege list) decides.
struct PrivilegeCheck {
    name: &'static str,
    arities: &'static [usize],
    /// Privilege names PostgreSQL accepts for this kind of object.
    known: &'static [&'static str],
    /// Those Vivace grants.
    granted: &'static [&'static str],
}

impl PrivilegeCheck {
    fn answer(&self, privileges: &str) -> Result<bool> {
        let mut any = false;
        for entry in privileges.split(',') {
            let entry = entry.trim().to_ascii_uppercase();
            let name = entry
                .strip_suffix("WITH GRANT OPTION")
                .map_or(entry.as_str(), str::trim_end);
            if !self.known.contains(&name) {
                return Err(DataFusionError::External(Box::new(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("unrecognized privilege type: \"{}\"", entry.to_lowercase()),
                ))));
            }
            any |= self.granted.contains(&name);
        }
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> PrivilegeCheck {
        checks().into_iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn reads_are_granted_writes_are_not() {
        let table = check("has_table_privilege");
        assert!(table.answer("select").unwrap());
        assert!(!table.answer("UPDATE").unwrap());
        assert!(table.answer("insert, SELECT WITH GRANT OPTION").unwrap());
        assert!(!table.answer("insert,update,delete").unwrap());
        assert!(table.answer("sellect").is_err());
        assert!(check("has_schema_privilege").answer("usage").unwrap());
        assert!(!check("has_schema_privilege").answer("create").unwrap());
        assert!(check("has_database_privilege").answer("temp").unwrap());
    }
}
