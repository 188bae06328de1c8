//! Writes from SQL: `CREATE TABLE … STORED AS … LOCATION … AS query` and
//! `INSERT [OVERWRITE] … [PARTITION (…)]` into a table, turned into the
//! engine's writes ([`crate::engine::Engine::write`]): the query planned,
//! its columns matched to the table's (cast, or refused with 42804), static
//! partition values filled in.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, lit};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Insert, Statement, TableObject, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use vivace_catalog::{TableDefinition, TableName};
use vivace_connectors::write::{Replace, WriteKind};

use super::ddl::pg_type_name;
use super::sql_text::{byte_offset, ident_name, line_starts, parse_options, table_name};
use super::{Outcome, Session, ensure_read_only};
use crate::engine::DdlOutcome;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::pgcompat;

/// `CREATE TABLE [IF NOT EXISTS] name [STORED AS format] [PARTITIONED BY (…)]
/// [SORTED BY (…)] LOCATION '…' [OPTIONS (…)] AS query`, clauses in any order.
#[derive(Debug, Clone)]
pub struct CreateTableAs {
    /// The new table.
    pub name: TableName,
    /// `IF NOT EXISTS` given.
    pub if_not_exists: bool,
    /// `STORED AS`, lower-case (default `parquet`).
    pub connector: String,
    /// `LOCATION`.
    pub location: String,
    /// `PARTITIONED BY` columns, in folder order.
    pub partition_columns: Vec<String>,
    /// `SORTED BY` columns.
    pub sorted_by: Vec<String>,
    /// `OPTIONS`, keys lower-cased.
    pub options: BTreeMap<String, String>,
    /// The query whose rows fill the table.
    pub query: Box<Statement>,
}

/// Parse `text` as a `CREATE TABLE … AS` with storage clauses; `None` when
/// it is some other CREATE TABLE (a column list, a temporary table).
pub fn parse_create_table_as(text: &str) -> SqlResult<Option<CreateTableAs>> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(text)?;
    p.expect_keywords(&[Keyword::CREATE, Keyword::TABLE])?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = table_name(p.parse_object_name(false)?)?;
    let clauses = [
        Keyword::STORED,
        Keyword::PARTITIONED,
        Keyword::SORTED,
        Keyword::LOCATION,
        Keyword::OPTIONS,
        Keyword::AS,
    ];
    if p.peek_one_of_keywords(&clauses).is_none() {
        return Ok(None);
    }
    let mut connector = None;
    let mut location = None;
    let mut partition_columns = vec![];
    let mut sorted_by = vec![];
    let mut options = BTreeMap::new();
    let query = loop {
        if p.parse_keywords(&[Keyword::STORED, Keyword::AS]) {
            connector = Some(p.parse_identifier()?.value.to_ascii_lowercase());
        } else if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
            partition_columns = column_list(&mut p)?;
        } else if p.parse_keywords(&[Keyword::SORTED, Keyword::BY]) {
            sorted_by = column_list(&mut p)?;
        } else if p.parse_keyword(Keyword::LOCATION) {
            location = Some(p.parse_literal_string()?);
        } else if p.parse_keyword(Keyword::OPTIONS) {
            options = parse_options(&mut p)?;
        } else if p.parse_keyword(Keyword::AS) {
            break p.parse_query()?;
        } else {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("syntax error at or near \"{}\"", p.peek_token().token),
            ));
        }
    };
    if p.peek_token().token != Token::EOF {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("syntax error at or near \"{}\"", p.peek_token().token),
        ));
    }
    let location = location.ok_or_else(|| {
        SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "CREATE TABLE … AS needs a LOCATION: CREATE TABLE t STORED AS PARQUET LOCATION 's3://bucket/t/' AS SELECT …",
        )
    })?;
    let mut query = Statement::Query(query);
    crate::engine::nesting::balance(&mut query)?;
    crate::pgcompat::incoming_statement(&mut query)?;
    Ok(Some(CreateTableAs {
        name,
        if_not_exists,
        connector: connector.unwrap_or_else(|| "parquet".into()),
        location,
        partition_columns,
        sorted_by,
        options,
        query: Box::new(query),
    }))
}

/// `INSERT [OVERWRITE] [INTO] [TABLE] name PARTITION (…) …` without its
/// `PARTITION (…)` clause, and the clause's expressions; `None` without one.
/// (PostgreSQL's grammar would read `PARTITION` as the table's alias.)
pub fn split_partition_clause(text: &str) -> SqlResult<Option<(String, Vec<SqlExpr>)>> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(text)?;
    p.expect_keyword(Keyword::INSERT)?;
    let _ = p.parse_keyword(Keyword::OVERWRITE);
    let _ = p.parse_keyword(Keyword::INTO);
    let _ = p.parse_keyword(Keyword::TABLE);
    p.parse_object_name(false)?;
    if !p.peek_keyword(Keyword::PARTITION) {
        return Ok(None);
    }
    let starts = line_starts(text);
    let begin = byte_offset(text, &starts, p.peek_token().span.start);
    p.expect_keyword(Keyword::PARTITION)?;
    p.expect_token(&Token::LParen)?;
    let exprs = p.parse_comma_separated(Parser::parse_expr)?;
    let close = p.expect_token(&Token::RParen)?;
    let end = byte_offset(text, &starts, close.span.end);
    Ok(Some((
        format!("{} {}", &text[..begin], &text[end..]),
        exprs,
    )))
}

fn column_list(p: &mut Parser) -> SqlResult<Vec<String>> {
    p.expect_token(&Token::LParen)?;
    let columns = p.parse_comma_separated(|p| p.parse_identifier())?;
    p.expect_token(&Token::RParen)?;
    Ok(columns.into_iter().map(ident_name).collect())
}

/// A write statement, as `EXPLAIN` takes it.
#[derive(Debug, Clone)]
pub enum WriteStatement {
    /// `CREATE TABLE … AS`.
    CreateTableAs(Box<CreateTableAs>),
    /// `INSERT [OVERWRITE] …` into a table.
    Insert(Box<Statement>),
}

/// A write planned from SQL: the table, what the write does, and the query
/// giving the table's columns in order (its `$n` bound at execution).
#[derive(Debug, Clone)]
pub struct PlannedWrite {
    pub(crate) def: TableDefinition,
    pub(crate) kind: WriteKind,
    /// The rows to write.
    pub plan: LogicalPlan,
}

impl Session {
    /// Run a `CREATE TABLE … AS`.
    pub(super) async fn create_table_as(&self, request: CreateTableAs) -> SqlResult<Outcome> {
        let if_not_exists = request.if_not_exists;
        let PlannedWrite { def, plan, .. } = self.plan_create_table_as(request).await?;
        let table = def.name.table.clone();
        let cancel = self.cancel.current();
        let user = self.user()?;
        let (outcome, rows) = self
            .engine
            .create_table_as(
                &self.ctx,
                def,
                plan,
                if_not_exists,
                user.as_deref(),
                &cancel,
            )
            .await?;
        Ok(match outcome {
            DdlOutcome::Done => Outcome::Selected(rows),
            DdlOutcome::Skipped => Outcome::Tag {
                tag: "CREATE TABLE AS",
                notice: Some(SqlError::new(
                    sqlstate::DUPLICATE_TABLE,
                    format!("relation \"{table}\" already exists, skipping"),
                )),
            },
        })
    }

    /// Run an `INSERT [OVERWRITE]` into a table (not a temporary one).
    pub(super) async fn insert_into_table(&self, write: PlannedWrite) -> SqlResult<Outcome> {
        let PlannedWrite { def, kind, plan } = write;
        let cancel = self.cancel.current();
        let user = self.user()?;
        let rows = self
            .engine
            .write(&self.ctx, &def, kind, plan, user.as_deref(), &cancel)
            .await?;
        Ok(Outcome::Inserted(rows))
    }

    /// `EXPLAIN` of a `CREATE TABLE … AS` or an `INSERT`: the physical plan
    /// the write would run (its stages and tasks when distributed); nothing
    /// is written.
    pub(super) async fn explain_write(&self, write: WriteStatement) -> SqlResult<RecordBatch> {
        let PlannedWrite { def, kind, plan } = match write {
            WriteStatement::CreateTableAs(request) => self.plan_create_table_as(*request).await?,
            WriteStatement::Insert(stmt) => self.plan_table_insert(*stmt).await?,
        };
        let physical = self.engine.write_plan(&self.ctx, &def, kind, plan).await?;
        super::ddl::text_batch(
            &["plan_type", "plan"],
            vec![
                vec!["physical_plan".into()],
                vec![datafusion_distributed::display_plan_ascii(
                    physical.as_ref(),
                    false,
                )],
            ],
        )
    }

    async fn plan_create_table_as(&self, request: CreateTableAs) -> SqlResult<PlannedWrite> {
        let named = pgcompat::plan::plan_query(&self.ctx.state(), request.query).await?;
        ensure_read_only(&named.plan)?;
        let schema = named.plan.schema().clone();
        let names: Vec<String> = match &named.names {
            Some(names) => names.clone(),
            None => schema.fields().iter().map(|f| f.name().clone()).collect(),
        };
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(SqlError::new(
                    "42701",
                    format!("column \"{name}\" specified more than once"),
                ));
            }
        }
        for column in request.partition_columns.iter().chain(&request.sorted_by) {
            if !names.contains(column) {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!(
                        "column \"{column}\" named in PARTITIONED BY or SORTED BY is not in the query"
                    ),
                ));
            }
        }
        // The table's columns: the query's, partition columns moved last.
        let position = |name: &String| names.iter().position(|n| n == name).expect("checked");
        let order: Vec<usize> = (0..names.len())
            .filter(|i| !request.partition_columns.contains(&names[*i]))
            .chain(request.partition_columns.iter().map(position))
            .collect();
        let exprs: Vec<Expr> = order
            .iter()
            .map(|&i| Expr::Column(Column::from(schema.qualified_field(i))).alias(&names[i]))
            .collect();
        let plan = LogicalPlanBuilder::from(named.plan)
            .project(exprs)?
            .build()?;
        let fields: Vec<Field> = order
            .iter()
            .map(|&i| {
                let f = schema.field(i);
                Field::new(&names[i], f.data_type().clone(), f.is_nullable())
            })
            .collect();
        let mut options = request.options;
        if !request.sorted_by.is_empty() {
            options.insert("sorted_by".into(), request.sorted_by.join(","));
        }
        let def = TableDefinition {
            name: request.name,
            connector: request.connector,
            location: request.location,
            columns: vivace_connectors::columns::to_columns(&Schema::new(fields)),
            declared_columns: true,
            partition_columns: request.partition_columns,
            options,
        };
        Ok(PlannedWrite {
            def,
            kind: WriteKind::Create,
            plan,
        })
    }

    /// Plan an `INSERT [OVERWRITE]` into a table.
    pub(super) async fn plan_table_insert(&self, stmt: Statement) -> SqlResult<PlannedWrite> {
        let Statement::Insert(insert) = stmt else {
            return Err(SqlError::new(sqlstate::INTERNAL_ERROR, "not an INSERT"));
        };
        let Insert {
            table: TableObject::TableName(target),
            columns,
            overwrite,
            partitioned,
            source: Some(source),
            on: None,
            returning: None,
            ..
        } = insert
        else {
            return Err(SqlError::not_supported(
                "only INSERT [OVERWRITE] [INTO] table [(columns)] [PARTITION (…)] query is supported",
            ));
        };
        let name = table_name(target)?;
        if self.engine.is_view(&name)? {
            return Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("cannot insert into view \"{}\"", name.table),
            ));
        }
        let def = self.engine.definition(&name)?;
        let schema = vivace_connectors::columns::from_columns(&def.columns)?;
        let statics = static_partitions(&def, &schema, partitioned.as_deref().unwrap_or(&[]))?;
        // The table columns the query fills, in its order.
        let targets: Vec<String> = if columns.is_empty() {
            schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !statics.values.contains_key(n))
                .collect()
        } else {
            columns
                .iter()
                .map(|c| {
                    let name =
                        c.0.last()
                            .and_then(|p| p.as_ident())
                            .cloned()
                            .map_or_else(|| c.to_string(), ident_name);
                    if schema.field_with_name(&name).is_err() {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_COLUMN,
                            format!(
                                "column \"{name}\" of relation \"{}\" does not exist",
                                name_of(&def)
                            ),
                        ));
                    }
                    Ok(name)
                })
                .collect::<SqlResult<_>>()?
        };
        let mut source = source;
        type_value_parameters(&mut source, &schema, &targets)?;
        let named =
            pgcompat::plan::plan_query(&self.ctx.state(), Box::new(Statement::Query(source)))
                .await?;
        ensure_read_only(&named.plan)?;
        let plan = fit_to_table(named.plan, &schema, &targets, &statics.values)?;
        let replace = match (overwrite, statics.dynamic) {
            (false, _) => Replace::Nothing,
            (true, true) => Replace::WrittenPartitions,
            (true, false) if statics.folder.is_empty() => Replace::All,
            (true, false) => Replace::Partition(statics.folder),
        };
        Ok(PlannedWrite {
            def,
            kind: WriteKind::Insert(replace),
            plan,
        })
    }
}

impl Session {
    /// The user this session logged in as.
    pub(super) fn user(&self) -> SqlResult<Option<String>> {
        Ok(self
            .settings
            .lock()
            .map_err(|_| SqlError::new(sqlstate::INTERNAL_ERROR, "session settings poisoned"))?
            .user()
            .map(str::to_string))
    }
}

/// `VALUES ($1, $2, …)`: each bare parameter typed as the column it fills,
/// as PostgreSQL infers it, so drivers send it as that type.
fn type_value_parameters(
    query: &mut datafusion::sql::sqlparser::ast::Query,
    table: &Schema,
    targets: &[String],
) -> SqlResult<()> {
    use datafusion::sql::sqlparser::ast::SetExpr;
    let SetExpr::Values(values) = query.body.as_mut() else {
        return Ok(());
    };
    for row in &mut values.rows {
        for (expr, target) in row.iter_mut().zip(targets) {
            let SqlExpr::Value(v) = expr else { continue };
            if !matches!(v.value, Value::Placeholder(_)) {
                continue;
            }
            let Ok(field) = table.field_with_name(target) else {
                continue;
            };
            let type_name = pg_type_name(field.data_type());
            let Ok(data_type) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&type_name)
                .and_then(|mut p| p.parse_data_type())
            else {
                continue;
            };
            *expr = SqlExpr::Cast {
                kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                expr: Box::new(expr.clone()),
                data_type,
                array: false,
                format: None,
            };
        }
    }
    Ok(())
}

fn name_of(def: &TableDefinition) -> &str {
    &def.name.table
}

/// What a `PARTITION (…)` clause says.
struct StaticPartitions {
    /// Columns given a value, and the value as the column's type.
    values: BTreeMap<String, ScalarValue>,
    /// The leading partition columns given a value, with the value as text.
    folder: Vec<(String, String)>,
    /// Some partition column was named without a value.
    dynamic: bool,
}

fn static_partitions(
    def: &TableDefinition,
    schema: &Schema,
    clause: &[SqlExpr],
) -> SqlResult<StaticPartitions> {
    let mut values = BTreeMap::new();
    let mut named = vec![];
    let mut dynamic = false;
    for expr in clause {
        let (column, value) = match expr {
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => match (left.as_ref(), right.as_ref()) {
                (SqlExpr::Identifier(column), SqlExpr::Value(value)) => {
                    (ident_name(column.clone()), Some(value.value.clone()))
                }
                _ => return Err(bad_partition_clause()),
            },
            SqlExpr::Identifier(column) => (ident_name(column.clone()), None),
            _ => return Err(bad_partition_clause()),
        };
        if !def.partition_columns.contains(&column) {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "\"{column}\" is not a partition column of \"{}\" (partitioned by: {})",
                    def.name.table,
                    def.partition_columns.join(", ")
                ),
            ));
        }
        named.push(column.clone());
        let Some(value) = value else {
            dynamic = true;
            continue;
        };
        let text = match value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s,
            Value::Boolean(b) => b.to_string(),
            other => {
                return Err(SqlError::new(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("partition value {other} is not a literal"),
                ));
            }
        };
        let data_type = schema
            .field_with_name(&column)
            .map_err(datafusion::error::DataFusionError::from)?
            .data_type()
            .clone();
        let scalar = ScalarValue::try_from_string(text.clone(), &data_type).map_err(|_| {
            SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!(
                    "invalid input syntax for type {}: \"{text}\" (partition column \"{column}\")",
                    pg_type_name(&data_type)
                ),
            )
        })?;
        values.insert(column, scalar);
    }
    // The folder replaced: the leading partition columns with values.
    let mut folder = vec![];
    for column in &def.partition_columns {
        match values.get(column) {
            Some(value) => folder.push((
                column.clone(),
                value
                    .cast_to(&DataType::Utf8)
                    .map(|v| match v {
                        ScalarValue::Utf8(Some(s)) => s,
                        other => other.to_string(),
                    })
                    .map_err(SqlError::from)?,
            )),
            None => break,
        }
    }
    if !dynamic && folder.len() < values.len() {
        return Err(SqlError::not_supported(format!(
            "PARTITION (…) must give values to leading partition columns ({}) or name the others without a value",
            def.partition_columns.join(", ")
        )));
    }
    Ok(StaticPartitions {
        values,
        folder,
        dynamic,
    })
}

fn bad_partition_clause() -> SqlError {
    SqlError::new(
        sqlstate::SYNTAX_ERROR,
        "PARTITION (…) takes column = literal pairs, or partition column names",
    )
}

/// `plan` (filling `targets`, in order) as the table's columns: cast where
/// PostgreSQL would assign, refused with 42804 where it would not, static
/// partition values and NULLs for the rest.
fn fit_to_table(
    plan: LogicalPlan,
    table: &Schema,
    targets: &[String],
    statics: &BTreeMap<String, ScalarValue>,
) -> SqlResult<LogicalPlan> {
    let input = plan.schema().clone();
    let given = input.fields().len();
    if given != targets.len() {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            if given > targets.len() {
                "INSERT has more expressions than target columns"
            } else {
                "INSERT has more target columns than expressions"
            },
        ));
    }
    let mut exprs = vec![];
    for field in table.fields() {
        let name = field.name();
        let target_type = field.data_type();
        let expr = if let Some(i) = targets.iter().position(|t| t == name) {
            let source_type = input.field(i).data_type();
            if !assignable(source_type, target_type) {
                return Err(SqlError::new(
                    sqlstate::DATATYPE_MISMATCH,
                    format!(
                        "column \"{name}\" is of type {} but expression is of type {}",
                        pg_type_name(target_type),
                        pg_type_name(source_type)
                    ),
                ));
            }
            Expr::Column(Column::from(input.qualified_field(i)))
        } else if let Some(value) = statics.get(name) {
            lit(value.clone())
        } else {
            lit(ScalarValue::Null)
        };
        exprs.push(cast(expr, target_type.clone()).alias(name));
    }
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// Whether PostgreSQL would assign a value of `from` to a column of `to`
/// (text counts as PostgreSQL's untyped literal: it is cast when written).
fn assignable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let numeric = |t: &DataType| t.is_numeric();
    let temporal = |t: &DataType| matches!(t, Date32 | Date64 | Timestamp(_, _));
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    from == to
        || matches!(from, Null)
        || text(from)
        || text(to)
        || (numeric(from) && numeric(to))
        || (temporal(from) && temporal(to))
        || (from.is_nested() && to.is_nested())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_clauses_come_in_any_order() {
        let ctas = parse_create_table_as(
            "CREATE TABLE daily STORED AS PARQUET LOCATION '/lake/daily/' OPTIONS ('target_file_size' '256MB') SORTED BY (user_id) AS SELECT 1 AS user_id",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ctas.connector, "parquet");
        assert_eq!(ctas.location, "/lake/daily/");
        assert_eq!(ctas.sorted_by, vec!["user_id"]);
        assert_eq!(ctas.options["target_file_size"], "256MB");
        let ctas = parse_create_table_as(
            "CREATE TABLE IF NOT EXISTS e PARTITIONED BY (dt, \"Kind\") LOCATION 's3://b/e/' AS SELECT 1",
        )
        .unwrap()
        .unwrap();
        assert!(ctas.if_not_exists);
        assert_eq!(ctas.partition_columns, vec!["dt", "Kind"]);
        assert!(
            parse_create_table_as("CREATE TABLE t (a int)")
                .unwrap()
                .is_none()
        );
        let (rest, partition) = split_partition_clause(
            "INSERT OVERWRITE e PARTITION (dt = '2024-03-05', k)\n SELECT 1",
        )
        .unwrap()
        .unwrap();
        assert_eq!(rest, "INSERT OVERWRITE e  \n SELECT 1");
        assert_eq!(partition.len(), 2);
        assert!(
            split_partition_clause("INSERT INTO e SELECT 1")
                .unwrap()
                .is_none()
        );
        let no_location = parse_create_table_as("CREATE TABLE t AS SELECT 1").unwrap_err();
        assert!(no_location.message.contains("needs a LOCATION"));
    }

    #[test]
    fn assignment_follows_postgresql() {
        assert!(assignable(&DataType::Int32, &DataType::Int64));
        assert!(assignable(&DataType::Int64, &DataType::Utf8));
        assert!(assignable(&DataType::Utf8, &DataType::Date32));
        assert!(!assignable(&DataType::Date32, &DataType::Int64));
        assert!(!assignable(&DataType::Boolean, &DataType::Float64));
    }
}
