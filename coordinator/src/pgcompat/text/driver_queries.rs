//! Catalog queries that drivers send verbatim and DataFusion cannot plan,
//! replaced by equivalent queries it can (as datafusion-pg-catalog does for some
//! of psql's).
//!
//! asyncpg describes every type it has not seen (arrays included) with a
//! recursive CTE whose non-recursive term holds correlated scalar subqueries
//! inside CASE, and a nested recursive CTE for domains; DataFusion cannot
//! decorrelate those. Vivace's types are PostgreSQL's built-ins: no domains, no
//! ranges, and arrays whose elements are never arrays, so the type tree is at
//! most two levels deep, and the replacement computes the same rows (the type,
//! then its element type one level deeper) without recursion. asyncpg decodes
//! the `oid[]` parameter of that query without introspection only if the server
//! reports it as `oid[]`, so the replacement says so; for the same reason the
//! always-NULL `attrtypoids` column (only composite types have attributes) is
//! typed `text[]`, which asyncpg also decodes without introspection, rather
//! than `int4[]`.

use pgwire::api::Type;

/// A query to run instead of a driver's, and the parameter types to report.
#[derive(Debug, Clone, Copy)]
pub struct Replacement {
    /// SQL DataFusion can plan.
    pub sql: &'static str,
    /// Types of `$1..$n` as the driver expects them described.
    pub parameter_types: &'static [Type],
}

/// The replacement for `sql`, if it is a query this module knows.
pub fn replacement(sql: &str) -> Option<Replacement> {
    (sql.contains("typeinfo_tree") && sql.contains("range_subtype")).then_some(Replacement {
        sql: ASYNCPG_TYPE_INTROSPECTION,
        parameter_types: &[Type::OID_ARRAY],
    })
}

/// asyncpg's `INTRO_LOOKUP_TYPES` (0.30) for built-in types; `$1` holds the
/// OIDs of the types to describe.
const ASYNCPG_TYPE_INTROSPECTION: &str = "
WITH ti AS (
    SELECT t.oid AS oid, ns.nspname AS ns, t.typname AS name, t.typtype AS kind,
           CAST(NULL AS INT) AS basetype, t.typelem AS elemtype, elem_t.typdelim AS elemdelim,
           CAST(NULL AS INT) AS range_subtype, CAST(NULL AS TEXT[]) AS attrtypoids,
           CAST(NULL AS TEXT[]) AS attrnames
    FROM pg_catalog.pg_type AS t
    INNER JOIN pg_catalog.pg_namespace ns ON (ns.oid = t.typnamespace)
    LEFT JOIN pg_catalog.pg_type elem_t
        ON (t.typlen = -1 AND t.typelem != 0 AND t.typelem = elem_t.oid)
), typeinfo_tree AS (
    SELECT ti.*, 0 AS depth FROM ti WHERE array_has(CAST($1 AS INT[]), ti.oid)
    UNION ALL
    SELECT e.*, 1 AS depth FROM ti e JOIN ti a ON (e.oid = a.elemtype)
    WHERE array_has(CAST($1 AS INT[]), a.oid)
)
SELECT DISTINCT *,
    CAST(NULL AS TEXT) AS basetype_name,
    vivace_regtype_name(elemtype) AS elemtype_name,
    CAST(NULL AS TEXT) AS range_subtype_name
FROM typeinfo_tree
ORDER BY depth DESC";

/// Decode a binary or text `oid[]` parameter into its OIDs (as `int4`, the type
/// datafusion-pg-catalog gives OID columns). arrow-pg has no decoder for it.
pub fn decode_oid_array(bytes: &[u8], binary: bool) -> Option<Vec<Option<i32>>> {
    if !binary {
        let text = std::str::from_utf8(bytes).ok()?;
        let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
        if inner.trim().is_empty() {
            return Some(vec![]);
        }
        return inner
            .split(',')
            .map(|v| match v.trim() {
                "NULL" => Some(None),
                v => v.parse::<u32>().ok().map(|o| Some(o as i32)),
            })
            .collect();
    }
    // ndim, has-null flag, element OID, then (length, lower bound) per dimension,
    // then each element as a length and four bytes.
    let int = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let ndim = int(0)?;
    if ndim == 0 {
        return Some(vec![]);
    }
    if ndim != 1 {
        return None;
    }
    let len = usize::try_from(int(12)?).ok()?;
    let mut at = 20;
    let mut oids = Vec::with_capacity(len);
    for _ in 0..len {
        let size = int(at)?;
        at += 4;
        if size < 0 {
            oids.push(None);
        } else {
            oids.push(Some(int(at)?));
            at += size as usize;
        }
    }
    Some(oids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asyncpg_introspection_is_replaced() {
        assert!(replacement("SELECT 1").is_none());
        let asyncpg = "WITH RECURSIVE typeinfo_tree(oid, ns, name, kind, basetype, elemtype, \
                       elemdelim, range_subtype, attrtypoids, attrnames, depth) AS (...)";
        assert_eq!(
            replacement(asyncpg).unwrap().parameter_types,
            &[Type::OID_ARRAY]
        );
    }

    #[test]
    fn oid_arrays_decode_in_both_formats() {
        let mut binary = vec![];
        for v in [1i32, 0, 26, 2, 1, 4, 1016, 4, 23] {
            binary.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(
            decode_oid_array(&binary, true),
            Some(vec![Some(1016), Some(23)])
        );
        assert_eq!(
            decode_oid_array(b"{1016,23}", false),
            Some(vec![Some(1016), Some(23)])
        );
        assert_eq!(decode_oid_array(b"{}", false), Some(vec![]));
    }
}
