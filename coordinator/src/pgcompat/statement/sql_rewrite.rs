//! Rewrites of PostgreSQL constructs that drivers send and DataFusion does not
//! plan, applied to the parsed statement.
//!
//! **Set-returning functions** in a select list, which DataFusion has no notion of: `information_schema._pg_expandarray(a)` (pgjdbc's
//! getPrimaryKeys and getIndexInfo) and `generate_subscripts(a, dim)` (SQLAlchemy's
//! primary-key query).
//!
//! Each call is rewritten to `unnest(f(a))`, where `f` is a scalar function that
//! builds the whole set as one array per row: DataFusion's `unnest` in a select
//! list then yields one row per element, in lockstep with any other `unnest` of
//! the same list, as PostgreSQL (10+) runs select-list SRFs.
//!
//! PostgreSQL reads a composite's field as `(expr).field`; DataFusion plans dot
//! access on an expression only with a quoted name, so such accesses are
//! rewritten to `(expr).'field'` on the way.
//!
//! **Scalar subqueries that are not aggregated** (`(SELECT c.relkind = 'c' FROM
//! pg_class c WHERE c.oid = t.typrelid)`, pgjdbc's getTypeInfo): DataFusion can
//! decorrelate a scalar subquery only when it is aggregated. When planning fails
//! for that reason, each such subquery's single output is wrapped in
//! `first_value(...)`: the same answer for zero or one row; where PostgreSQL would
//! fail on several rows, Vivace returns one of them.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int32Builder, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Statement, Value, VisitMut, VisitorMut,
};

/// Rewrite every set-returning call Vivace knows into `unnest(...)`.
pub fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut SrfRewriter);
}

/// Whether a planning error is DataFusion's refusal of a scalar subquery that is
/// not aggregated.
pub fn is_unaggregated_subquery_error(e: &datafusion::error::DataFusionError) -> bool {
    e.to_string()
        .contains("Correlated scalar subquery must be aggregated")
}

/// Wrap the output of every non-aggregated single-column scalar subquery in
/// `first_value(...)`.
pub fn aggregate_scalar_subqueries(statement: &mut Statement) {
    let _ = statement.visit(&mut ScalarSubqueries);
}

struct ScalarSubqueries;

impl VisitorMut for ScalarSubqueries {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, SelectItem, SetExpr};
        let Expr::Subquery(query) = expr else {
            return ControlFlow::Continue(());
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
        if grouped || select.projection.len() != 1 || select.having.is_some() {
            return ControlFlow::Continue(());
        }
        let item = &mut select.projection[0];
        let (SelectItem::UnnamedExpr(inner) | SelectItem::ExprWithAlias { expr: inner, .. }) = item
        else {
            return ControlFlow::Continue(());
        };
        if calls_aggregate(inner) {
            return ControlFlow::Continue(());
        }
        let wrapped = Expr::Function(Function {
            name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new("first_value"))]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(datafusion::sql::sqlparser::ast::FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner.clone()))],
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        });
        *inner = wrapped;
        ControlFlow::Continue(())
    }
}

/// Whether `expr` calls one of PostgreSQL's common aggregates at its top level.
pub(crate) fn calls_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "first_value",
        "last_value",
        "json_agg",
        "jsonb_agg",
    ];
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e
            && f.over.is_none()
            && let Some(ObjectNamePart::Identifier(name)) = f.name.0.last()
            && AGGREGATES.contains(&name.value.to_ascii_lowercase().as_str())
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// The scalar halves of the rewrite, registered on every session.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ExpandArrayItems::new()),
        ScalarUDF::new_from_impl(ArraySubscripts::new()),
    ]
}

const EXPAND_ITEMS: &str = "vivace_pg_expandarray_items";
const SUBSCRIPTS: &str = "vivace_array_subscripts";

struct SrfRewriter;

impl VisitorMut for SrfRewriter {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundFieldAccess { root, access_chain } = expr {
            // `t.col[1]` also parses this way; only `(expr).field` is rewritten.
            if !matches!(root.as_ref(), Expr::Nested(_)) {
                return ControlFlow::Continue(());
            }
            for access in access_chain.iter_mut() {
                if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                    let name = Value::SingleQuotedString(field.value.clone());
                    *access = AccessExpr::Dot(Expr::Value(name.with_empty_span()));
                }
            }
            return ControlFlow::Continue(());
        }
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let Some(ObjectNamePart::Identifier(last)) = function.name.0.last() else {
            return ControlFlow::Continue(());
        };
        let scalar = match last.value.to_ascii_lowercase().as_str() {
            "_pg_expandarray" => EXPAND_ITEMS,
            "generate_subscripts" => SUBSCRIPTS,
            _ => return ControlFlow::Continue(()),
        };
        let mut inner = function.clone();
        inner.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(scalar))]);
        let mut unnest = function.clone();
        unnest.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("unnest"))]);
        unnest.args = one_arg(Expr::Function(inner));
        *expr = Expr::Function(unnest);
        ControlFlow::Continue(())
    }
}

fn one_arg(arg: Expr) -> FunctionArguments {
    let Expr::Function(Function { args, .. }) = &arg else {
        unreachable!("called with a function")
    };
    let mut list = match args {
        FunctionArguments::List(list) => list.clone(),
        _ => unreachable!("the rewritten call has an argument list"),
    };
    list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))];
    list.clauses.clear();
    list.duplicate_treatment = None;
    FunctionArguments::List(list)
}

/// `_pg_expandarray(a)` as one array per row: `[{x: a[1], n: 1}, {x: a[2], n: 2}, ...]`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArrayItems {
    signature: Signature,
}

impl ExpandArrayItems {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn item_fields(element: &DataType) -> Fields {
        Fields::from(vec![
            Field::new("x", element.clone(), true),
            Field::new("n", DataType::Int32, false),
        ])
    }
}

impl ScalarUDFImpl for ExpandArrayItems {
    fn name(&self) -> &str {
        EXPAND_ITEMS
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let element = list_element(&args[0])?;
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(Self::item_fields(&element)),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let lists = as_list(args.args[0].to_array(rows)?)?;
        let element = list_element(lists.data_type())?;
        // Same offsets as the input: element i of row r becomes {x: a[i], n: i}.
        let mut positions = Int32Builder::with_capacity(lists.values().len());
        for row in 0..lists.len() {
            let (start, end) = (lists.value_offsets()[row], lists.value_offsets()[row + 1]);
            for i in 0..(end - start) {
                positions.append_value(i + 1);
            }
        }
        let items = StructArray::try_new(
            Self::item_fields(&element),
            vec![lists.values().clone(), Arc::new(positions.finish())],
            None,
        )?;
        let out = ListArray::try_new(
            Arc::new(Field::new_list_field(items.data_type().clone(), true)),
            lists.offsets().clone(),
            Arc::new(items),
            lists.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `generate_subscripts(a, dim [, reverse])` as one array per row: `[1, ..., len]`
/// for the first dimension (Arrow lists have one), reversed on request; NULL
/// arrays and other dimensions give no rows, as in PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArraySubscripts {
    signature: Signature,
}

impl ArraySubscripts {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(2),
                    datafusion::logical_expr::TypeSignature::Any(3),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for ArraySubscripts {
    fn name(&self) -> &str {
        SUBSCRIPTS
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Int32,
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let lists = as_list(args.args[0].to_array(rows)?)?;
        let dims =
            datafusion::arrow::compute::cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
        let dims = dims.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let reverse = match args.args.get(2) {
            Some(r) => Some(datafusion::arrow::compute::cast(
                &r.to_array(rows)?,
                &DataType::Boolean,
            )?),
            None => None,
        };
        let mut values = Int32Builder::new();
        let mut lengths = Vec::with_capacity(rows);
        for row in 0..rows {
            let len = if lists.is_null(row) || dims.is_null(row) || dims.value(row) != 1 {
                0
            } else {
                lists.value_length(row)
            };
            let backwards = reverse
                .as_ref()
                .is_some_and(|r| r.as_boolean().is_valid(row) && r.as_boolean().value(row));
            if backwards {
                (1..=len).rev().for_each(|i| values.append_value(i));
            } else {
                (1..=len).for_each(|i| values.append_value(i));
            }
            lengths.push(len as usize);
        }
        let values: Int32Array = values.finish();
        let out = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Int32, true)),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(values),
            None,
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn list_element(t: &DataType) -> Result<DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Ok(f.data_type().clone())
        }
        DataType::Null => Ok(DataType::Null),
        other => exec_err!("expected an array, got {other}"),
    }
}

/// Any Arrow list as a `List` (i32 offsets).
fn as_list(array: ArrayRef) -> Result<ListArray> {
    let element = list_element(array.data_type())?;
    let target = DataType::List(Arc::new(Field::new_list_field(element, true)));
    let cast = datafusion::arrow::compute::cast(&array, &target)?;
    Ok(cast.as_list::<i32>().clone())
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn set_returning_calls_become_unnest() {
        let mut stmt = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT (information_schema._pg_expandarray(i.indkey)).n, generate_subscripts(a, 1) FROM i \
             WHERE (k).x = 1 AND t.a[1] = 2",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut stmt);
        assert_eq!(
            stmt.to_string(),
            "SELECT (unnest(vivace_pg_expandarray_items(i.indkey))).'n', \
             unnest(vivace_array_subscripts(a, 1)) FROM i WHERE (k).'x' = 1 AND t.a[1] = 2"
        );
    }
}

#[cfg(test)]
mod more_tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn unaggregated_scalar_subqueries_take_first_value() {
        let mut stmt = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT a FROM t WHERE (SELECT c.k = 'c' FROM c WHERE c.oid = t.r) \
             AND (SELECT max(x) FROM u WHERE u.id = t.id) > 1",
        )
        .unwrap()
        .remove(0);
        aggregate_scalar_subqueries(&mut stmt);
        assert_eq!(
            stmt.to_string(),
            "SELECT a FROM t WHERE (SELECT first_value(c.k = 'c') FROM c WHERE c.oid = t.r) \
             AND (SELECT max(x) FROM u WHERE u.id = t.id) > 1"
        );
    }
}
