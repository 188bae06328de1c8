//! Turn a query string into commands: split it into statements, then decide for
//! each whether it is Vivace DDL, a session command, or a query for DataFusion.
//!
//! Queries go through datafusion-pg-catalog's `PostgresCompatibilityParser`, which
//! rewrites the catalog queries psql and BI tools send into SQL DataFusion runs.
//! `CREATE EXTERNAL TABLE` goes through DataFusion's own parser, which knows it.

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    CloseCursor, Declare, FetchDirection, ObjectName, ObjectType, Reset, Set, ShowCreateObject,
    Statement, Value, ValueWithSpan,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use vivace_catalog::{TableName, ViewDefinition};
use vivace_connectors::SchemaRequest;

use crate::error::{SqlError, SqlResult, sqlstate};
use crate::pgcompat::IncomingText;
use crate::session::copy::CopyRequest;
use crate::session::cursor::FetchCount;
use crate::session::sql_text::{byte_offset, ident_name, line_starts, parse_options, table_name};
use crate::session::writes;

/// One statement, classified.
#[derive(Debug, Clone)]
pub enum Command {
    /// Anything DataFusion plans and runs: SELECT, VALUES, EXPLAIN, ...
    Query(Box<Statement>),
    /// `CREATE EXTERNAL TABLE` as parsed by DataFusion.
    CreateExternalTable(Box<DFStatement>),
    /// `CREATE EXTERNAL SCHEMA [IF NOT EXISTS] name FROM connector LOCATION '...' [OPTIONS (...)]`
    CreateExternalSchema {
        /// What to register.
        request: SchemaRequest,
        /// `IF NOT EXISTS` given.
        if_not_exists: bool,
    },
    /// `DROP EXTERNAL SCHEMA [IF EXISTS] name`
    DropExternalSchema {
        /// Schema to drop.
        name: String,
        /// `IF EXISTS` given.
        if_exists: bool,
    },
    /// `REFRESH EXTERNAL SCHEMA name`: discover its tables again.
    RefreshExternalSchema(String),
    /// `DROP [EXTERNAL] TABLE [IF EXISTS] name, ...`
    DropTables {
        /// Tables to drop.
        names: Vec<TableName>,
        /// `IF EXISTS` given.
        if_exists: bool,
    },
    /// `CREATE TABLE name STORED AS … LOCATION … AS query`
    CreateTableAs(Box<crate::session::writes::CreateTableAs>),
    /// `OPTIMIZE [TABLE] name [WHERE predicate]`: compact a table's small files.
    Optimize {
        /// The table.
        name: TableName,
        /// The partitions to compact, as SQL text.
        predicate: Option<String>,
    },
    /// `EXPLAIN` of a write (`CREATE TABLE … AS`, `INSERT`).
    ExplainWrite(writes::WriteStatement),
    /// `CREATE [OR REPLACE] VIEW name [(columns)] AS query`
    CreateView(ViewDefinition, bool),
    /// `DROP VIEW [IF EXISTS] name, ...`
    DropViews {
        /// Views to drop.
        names: Vec<TableName>,
        /// `IF EXISTS` given.
        if_exists: bool,
    },
    /// `SHOW TABLES`
    ShowTables,
    /// `SHOW CREATE TABLE name`
    ShowCreateTable(TableName),
    /// `DESCRIBE name`
    Describe(TableName),
    /// `SET name = value` / `SET name TO value`
    Set {
        /// Lower-cased setting name.
        name: String,
        /// Value as text, quotes removed.
        value: String,
    },
    /// `RESET ALL`
    ResetAll,
    /// `SHOW name`
    Show(String),
    /// `BEGIN`, `COMMIT`, `ROLLBACK` and friends; the tag to answer with.
    Transaction(TransactionOp),
    /// `DECLARE name [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`
    DeclareCursor {
        /// Cursor name.
        name: String,
        /// The query whose rows the cursor walks.
        query: Box<Statement>,
        /// `WITH HOLD`: the cursor outlives its transaction.
        hold: bool,
    },
    /// `FETCH [FORWARD] n | NEXT | ALL FROM name`
    Fetch {
        /// Cursor name.
        name: String,
        /// How many rows.
        count: FetchCount,
    },
    /// `CREATE [LOCAL] TEMP[ORARY] TABLE name (columns)`, as a plain CREATE TABLE
    /// that the session places in its own `pg_temp` schema.
    CreateTempTable(Box<Statement>),
    /// A driver's catalog query replaced by an equivalent one
    /// ([`crate::pgcompat::text::driver_queries`]), with the parameter types to report.
    DriverQuery {
        /// The replacement query.
        stmt: Box<Statement>,
        /// `$1..$n` as the driver expects them described.
        parameter_types: &'static [pgwire::api::Type],
    },
    /// `INSERT [OVERWRITE] [INTO] table ...`: into a session's temp table,
    /// or a write into a table.
    Insert(Box<Statement>),
    /// `PREPARE name [(types)] AS query`.
    PrepareStatement {
        /// The name, folded as PostgreSQL folds identifiers.
        name: String,
        /// The whole statement.
        stmt: Box<Statement>,
    },
    /// `EXECUTE name [(values)]`.
    ExecuteStatement {
        /// The name of a prepared statement.
        name: String,
        /// The whole statement.
        stmt: Box<Statement>,
    },
    /// `DEALLOCATE [PREPARE] name` (`None`: `DEALLOCATE ALL`).
    Deallocate(Option<String>),
    /// `CLOSE name` (`None`: `CLOSE ALL`).
    CloseCursor(Option<String>),
    /// `COPY (query) TO STDOUT`, `COPY table TO STDOUT`.
    Copy(CopyRequest),
    /// A statement accepted and ignored, answered with this command tag
    /// (`DISCARD ALL`, `SAVEPOINT`, ...).
    NoOp(&'static str),
}

/// Transaction control statements. Vivace reads only, so these only move the
/// protocol's transaction status the way clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionOp {
    /// `BEGIN` / `START TRANSACTION`
    Begin,
    /// `COMMIT` / `END`
    Commit,
    /// `ROLLBACK` / `ABORT`
    Rollback,
}

/// Splits and classifies SQL text.
#[derive(Debug, Default)]
pub struct StatementParser {
    pg: PostgresCompatibilityParser,
}

/// The process's parser (its rewrite rules are built once).
pub fn parser() -> &'static StatementParser {
    static PARSER: std::sync::OnceLock<StatementParser> = std::sync::OnceLock::new();
    PARSER.get_or_init(StatementParser::default)
}

impl StatementParser {
    /// Every statement of `sql`, in order. Empty statements are dropped.
    pub fn parse(&self, sql: &str) -> SqlResult<Vec<Command>> {
        crate::engine::nesting::check(sql)?;
        split_statements(sql)?
            .into_iter()
            .map(|text| self.parse_one(&super::table_functions::rewrite(text)))
            .collect::<SqlResult<Vec<Vec<Command>>>>()
            .map(|v| v.into_iter().flatten().collect())
    }

    fn parse_one(&self, text: &str) -> SqlResult<Vec<Command>> {
        let words = leading_words(text, 3)?;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["CREATE", "EXTERNAL", "TABLE", ..] => {
                let mut stmts = DFParser::parse_sql_with_dialect(text, &PostgreSqlDialect {})
                    .map_err(SqlError::from)?;
                match (stmts.pop_front(), stmts.is_empty()) {
                    (Some(stmt @ DFStatement::CreateExternalTable(_)), true) => {
                        Ok(vec![Command::CreateExternalTable(Box::new(stmt))])
                    }
                    _ => Err(SqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "syntax error in CREATE EXTERNAL TABLE",
                    )),
                }
            }
            ["CREATE", "EXTERNAL", "SCHEMA", ..]
            | ["DROP", "EXTERNAL", "SCHEMA", ..]
            | ["REFRESH", "EXTERNAL", "SCHEMA", ..] => Ok(vec![parse_schema_command(text)?]),
            ["CREATE", "TABLE", ..] if let Some(ctas) = writes::parse_create_table_as(text)? => {
                Ok(vec![Command::CreateTableAs(Box::new(ctas))])
            }
            ["EXPLAIN", "CREATE" | "INSERT", ..] => {
                let trimmed = text.trim_start();
                let inner = trimmed.get(7..).unwrap_or_default();
                let mut commands = self.parse_one(inner)?;
                match (commands.pop(), commands.is_empty()) {
                    (Some(Command::CreateTableAs(ctas)), true) => Ok(vec![Command::ExplainWrite(
                        writes::WriteStatement::CreateTableAs(ctas),
                    )]),
                    (Some(Command::Insert(insert)), true) => Ok(vec![Command::ExplainWrite(
                        writes::WriteStatement::Insert(insert),
                    )]),
                    _ => Err(SqlError::not_supported(
                        "EXPLAIN of this statement is not supported",
                    )),
                }
            }
            ["INSERT", ..]
                if let Some((rest, partition)) = writes::split_partition_clause(text)? =>
            {
                let mut commands = self.parse_one(&rest)?;
                if let [Command::Insert(stmt)] = commands.as_mut_slice()
                    && let Statement::Insert(insert) = stmt.as_mut()
                {
                    insert.partitioned = Some(partition);
                }
                Ok(commands)
            }
            ["OPTIMIZE", ..] => Ok(vec![parse_optimize(text)?]),
            ["DROP", "EXTERNAL", "TABLE", ..] => {
                let rest = text.trim_start()[4..].trim_start()[8..].to_string();
                self.parse_one(&format!("DROP{rest}"))
            }
            _ => match crate::pgcompat::incoming_text(text) {
                IncomingText::Driver(replaced) => {
                    let mut stmts = self.pg.parse(replaced.sql).map_err(SqlError::from)?;
                    match (stmts.pop(), stmts.is_empty()) {
                        (Some(stmt), true) => Ok(vec![Command::DriverQuery {
                            stmt: Box::new(stmt),
                            parameter_types: replaced.parameter_types,
                        }]),
                        _ => Err(SqlError::new(
                            sqlstate::INTERNAL_ERROR,
                            "a driver query replacement is not one statement",
                        )),
                    }
                }
                IncomingText::Sql(text) => self
                    .pg
                    .parse(&text)
                    .map_err(SqlError::from)?
                    .into_iter()
                    .map(|mut stmt| {
                        crate::engine::nesting::balance(&mut stmt)?;
                        crate::pgcompat::incoming_statement(&mut stmt)?;
                        super::table_functions::unqualify(&mut stmt);
                        classify(stmt)
                    })
                    .collect(),
            },
        }
    }
}

/// `OPTIMIZE [TABLE] name [WHERE predicate]` (Delta Lake's statement).
fn parse_optimize(text: &str) -> SqlResult<Command> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(text)?;
    p.next_token(); // OPTIMIZE
    let _ = p.parse_keyword(Keyword::TABLE);
    let name = table_name(p.parse_object_name(false)?)?;
    let predicate = if p.peek_keyword(Keyword::WHERE) {
        let at = p.next_token().span.end;
        let start = byte_offset(text, &line_starts(text), at);
        let rest = text[start..].trim().trim_end_matches(';').trim();
        if rest.is_empty() {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "OPTIMIZE … WHERE needs a condition on partition columns",
            ));
        }
        Some(rest.to_string())
    } else {
        p.expect_token(&Token::EOF)?;
        None
    };
    Ok(Command::Optimize { name, predicate })
}

/// `CREATE` / `DROP` / `REFRESH EXTERNAL SCHEMA`, which no SQL parser knows.
fn parse_schema_command(text: &str) -> SqlResult<Command> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(text)?;
    let verb = p.expect_one_of_keywords(&[Keyword::CREATE, Keyword::DROP, Keyword::REFRESH])?;
    p.expect_keywords(&[Keyword::EXTERNAL, Keyword::SCHEMA])?;
    let command = match verb {
        Keyword::CREATE => {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = ident_name(p.parse_identifier()?);
            p.expect_keyword(Keyword::FROM)?;
            let connector = p.parse_identifier()?.value.to_ascii_lowercase();
            p.expect_keyword(Keyword::LOCATION)?;
            let location = p.parse_literal_string()?;
            let options = if p.parse_keyword(Keyword::OPTIONS) {
                parse_options(&mut p)?
            } else {
                Default::default()
            };
            Command::CreateExternalSchema {
                request: SchemaRequest {
                    name,
                    connector,
                    location,
                    options,
                },
                if_not_exists,
            }
        }
        Keyword::DROP => {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            Command::DropExternalSchema {
                name: ident_name(p.parse_identifier()?),
                if_exists,
            }
        }
        _ => Command::RefreshExternalSchema(ident_name(p.parse_identifier()?)),
    };
    if p.peek_token().token != Token::EOF {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("syntax error at or near \"{}\"", p.peek_token().token),
        ));
    }
    Ok(command)
}

/// Split `sql` at top-level semicolons, using the tokenizer so that semicolons in
/// strings, identifiers and comments do not split. Slices keep the original text.
pub fn split_statements(sql: &str) -> SqlResult<Vec<&str>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::new(sqlstate::SYNTAX_ERROR, format!("syntax error: {e}")))?;
    let line_starts = line_starts(sql);
    let offset = |t: &TokenWithSpan| byte_offset(sql, &line_starts, t.span.start);
    let mut pieces = Vec::new();
    let mut begin = 0;
    for t in tokens.iter().filter(|t| t.token == Token::SemiColon) {
        let at = offset(t);
        pieces.push(&sql[begin..at]);
        begin = at + 1;
    }
    pieces.push(&sql[begin.min(sql.len())..]);
    Ok(pieces.into_iter().filter(|p| has_content(p)).collect())
}

fn has_content(text: &str) -> bool {
    Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .map(|ts| ts.iter().any(|t| !matches!(t, Token::Whitespace(_))))
        .unwrap_or(true)
}

/// The first `n` keywords / identifiers of `text`, upper-cased.
fn leading_words(text: &str, n: usize) -> SqlResult<Vec<String>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .map_err(|e| SqlError::new(sqlstate::SYNTAX_ERROR, format!("syntax error: {e}")))?;
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(n)
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            other => other.to_string(),
        })
        .collect())
}

fn classify(stmt: Statement) -> SqlResult<Command> {
    Ok(match stmt {
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } => Command::DropTables {
            names: names
                .into_iter()
                .map(table_name)
                .collect::<SqlResult<_>>()?,
            if_exists,
        },
        Statement::Drop {
            object_type: ObjectType::View,
            if_exists,
            names,
            ..
        } => Command::DropViews {
            names: names
                .into_iter()
                .map(table_name)
                .collect::<SqlResult<_>>()?,
            if_exists,
        },
        Statement::Drop { object_type, .. } => {
            return Err(SqlError::not_supported(format!(
                "DROP {object_type} is not supported; Vivace manages external tables only"
            )));
        }
        Statement::ShowTables { .. } => Command::ShowTables,
        Statement::ShowCreate {
            obj_type: ShowCreateObject::Table,
            obj_name,
        } => Command::ShowCreateTable(table_name(obj_name)?),
        Statement::ExplainTable { table_name: t, .. } => Command::Describe(table_name(t)?),
        Statement::Set(set) => classify_set(set)?,
        Statement::ShowVariable { variable } => Command::Show(show_name(&variable)),
        Statement::Reset(reset) => match reset.reset {
            Reset::ALL => Command::ResetAll,
            // As `SET name TO DEFAULT`.
            Reset::ConfigurationParameter(name) => Command::Set {
                name: name.to_string().to_ascii_lowercase(),
                value: "DEFAULT".into(),
            },
        },
        Statement::StartTransaction { .. } => Command::Transaction(TransactionOp::Begin),
        Statement::Commit { .. } => Command::Transaction(TransactionOp::Commit),
        Statement::Rollback {
            savepoint: None, ..
        } => Command::Transaction(TransactionOp::Rollback),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Command::NoOp("ROLLBACK"),
        Statement::Savepoint { .. } => Command::NoOp("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Command::NoOp("RELEASE"),
        Statement::Discard { .. } => Command::NoOp("DISCARD ALL"),
        Statement::Prepare {
            name,
            data_types,
            mut statement,
        } => {
            crate::pgcompat::incoming_query(&mut statement);
            Command::PrepareStatement {
                name: ident_name(name.clone()),
                stmt: Box::new(Statement::Prepare {
                    name,
                    data_types,
                    statement,
                }),
            }
        }
        execute @ Statement::Execute { .. } => {
            let Statement::Execute {
                name: Some(name), ..
            } = &execute
            else {
                return Err(SqlError::not_supported("EXECUTE needs a statement name"));
            };
            let name = name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .map(|ident| ident_name(ident.clone()))
                .unwrap_or_default();
            Command::ExecuteStatement {
                name,
                stmt: Box::new(execute),
            }
        }
        Statement::Deallocate { name, .. } => Command::Deallocate(
            (name.quote_style.is_some() || !name.value.eq_ignore_ascii_case("all"))
                .then(|| ident_name(name)),
        ),
        Statement::Declare { stmts } => classify_declare(stmts)?,
        Statement::Fetch {
            name, direction, ..
        } => Command::Fetch {
            name: name.value,
            count: fetch_count(direction)?,
        },
        Statement::Close { cursor } => Command::CloseCursor(match cursor {
            CloseCursor::All => None,
            CloseCursor::Specific { name } => Some(name.value),
        }),
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => Command::Copy(CopyRequest::from_statement(
            source,
            to,
            target,
            options,
            legacy_options,
        )?),
        Statement::CreateTable(table) if table.temporary => temp_table(table)?,
        Statement::CreateView(view) => create_view(view)?,
        Statement::CreateTable(_) => {
            return Err(SqlError::not_supported(
                "CREATE TABLE needs AS query and a LOCATION (CREATE TABLE t STORED AS PARQUET LOCATION '…' AS SELECT …); register existing data with CREATE EXTERNAL TABLE",
            ));
        }
        insert @ Statement::Insert(_) => Command::Insert(Box::new(insert)),
        Statement::Update(_) | Statement::Delete(_) => {
            return Err(SqlError::not_supported(
                "INSERT, UPDATE and DELETE are not supported; Vivace tables are read-only",
            ));
        }
        mut other => {
            crate::pgcompat::incoming_query(&mut other);
            Command::Query(Box::new(other))
        }
    })
}

/// `CREATE [OR REPLACE] VIEW`: the query is kept as text (after the
/// statement stage's rewrites; the query stage's run when it is planned).
fn create_view(view: datafusion::sql::sqlparser::ast::CreateView) -> SqlResult<Command> {
    if view.materialized || view.temporary {
        return Err(SqlError::not_supported(format!(
            "CREATE {}VIEW is not supported; views are stored and planned on every use",
            if view.materialized {
                "MATERIALIZED "
            } else {
                "TEMPORARY "
            }
        )));
    }
    if view.columns.iter().any(|c| c.data_type.is_some()) {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "a view's column list takes names only",
        ));
    }
    Ok(Command::CreateView(
        ViewDefinition {
            name: table_name(view.name)?,
            query: view.query.to_string(),
            columns: view
                .columns
                .into_iter()
                .map(|c| ident_name(c.name))
                .collect(),
            output: vec![],
        },
        view.or_replace,
    ))
}

/// A temp table's CREATE, stripped of what DataFusion refuses (TEMPORARY, ON
/// COMMIT: a session's temp tables live until it ends, as with PRESERVE ROWS)
/// and of a `pg_temp.` qualifier.
fn temp_table(mut table: datafusion::sql::sqlparser::ast::CreateTable) -> SqlResult<Command> {
    use datafusion::sql::sqlparser::ast::OnCommit;
    if matches!(table.on_commit, Some(OnCommit::Drop | OnCommit::DeleteRows)) {
        return Err(SqlError::not_supported(
            "ON COMMIT DROP and ON COMMIT DELETE ROWS are not supported; temp tables last for the session",
        ));
    }
    let parts = &table.name.0;
    if parts.len() > 1 {
        let schema = parts[parts.len() - 2].to_string().to_ascii_lowercase();
        if schema != crate::session::temp_tables::TEMP_SCHEMA {
            return Err(SqlError::new(
                sqlstate::INVALID_TABLE_DEFINITION,
                "cannot create temporary relation in non-temporary schema",
            ));
        }
        table.name = ObjectName(vec![parts[parts.len() - 1].clone()]);
    }
    table.temporary = false;
    table.global = None; // LOCAL, the only kind PostgreSQL has
    table.on_commit = None;
    Ok(Command::CreateTempTable(Box::new(Statement::CreateTable(
        table,
    ))))
}

/// `DECLARE ... CURSOR FOR query`. Only forward-only text cursors exist.
fn classify_declare(mut stmts: Vec<Declare>) -> SqlResult<Command> {
    let (Some(declare), true) = (stmts.pop(), stmts.is_empty()) else {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "DECLARE names one cursor",
        ));
    };
    let (Some(query), [name]) = (declare.for_query, declare.names.as_slice()) else {
        return Err(SqlError::not_supported(
            "only DECLARE name CURSOR FOR query is supported",
        ));
    };
    if declare.binary == Some(true) {
        return Err(SqlError::not_supported("BINARY cursors are not supported"));
    }
    if declare.scroll == Some(true) {
        return Err(SqlError::not_supported(
            "SCROLL cursors are not supported; cursors only move forward",
        ));
    }
    Ok(Command::DeclareCursor {
        name: name.value.clone(),
        query: Box::new(Statement::Query(query)),
        hold: declare.hold == Some(true),
    })
}

/// The row count of a forward FETCH; backward moves fail as on a NO SCROLL cursor.
fn fetch_count(direction: FetchDirection) -> SqlResult<FetchCount> {
    let rows = |limit: &ValueWithSpan| -> SqlResult<FetchCount> {
        match &limit.value {
            Value::Number(n, _) => n.parse::<usize>().map(FetchCount::Rows).map_err(|_| {
                SqlError::new(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "cursor can only scan forward",
                )
            }),
            other => Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("bad FETCH count {other}"),
            )),
        }
    };
    match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Ok(FetchCount::Rows(1)),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
            rows(&limit)
        }
        FetchDirection::All | FetchDirection::ForwardAll => Ok(FetchCount::All),
        _ => Err(SqlError::new(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "cursor can only scan forward",
        )),
    }
}

/// The setting named by `SHOW a b c`: PostgreSQL's multi-word names keep their
/// spaces (`transaction isolation level`); anything else is a dotted name the
/// parser split (`datafusion.execution.batch_size`).
fn show_name(parts: &[datafusion::sql::sqlparser::ast::Ident]) -> String {
    let words: Vec<String> = parts.iter().map(|i| i.value.to_ascii_lowercase()).collect();
    let spaced = words.join(" ");
    match spaced.as_str() {
        "transaction isolation level" | "time zone" | "session authorization" | "all" => spaced,
        _ => words.join("."),
    }
}

fn classify_set(set: Set) -> SqlResult<Command> {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = variable.to_string().to_ascii_lowercase();
            let value = values.iter().map(expr_text).collect::<Vec<_>>().join(", ");
            Ok(Command::Set { name, value })
        }
        Set::SetTimeZone { value, .. } => Ok(Command::Set {
            name: "timezone".into(),
            value: expr_text(&value),
        }),
        Set::SetNames { charset_name, .. } => Ok(Command::Set {
            name: "client_encoding".into(),
            value: charset_name.value,
        }),
        other => Err(SqlError::not_supported(format!("{other} is not supported"))),
    }
}

/// The text of a SET value: string literals without quotes, anything else as written.
fn expr_text(e: &datafusion::sql::sqlparser::ast::Expr) -> String {
    use datafusion::sql::sqlparser::ast::{Expr, Value};
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "SELECT 'a;b'; -- c;d\nSELECT \"x;y\" FROM t;;  ";
        assert_eq!(
            split_statements(sql).unwrap(),
            vec!["SELECT 'a;b'", " -- c;d\nSELECT \"x;y\" FROM t"]
        );
        assert!(split_statements("  ;; ").unwrap().is_empty());
        assert_eq!(
            split_statements("SELECT 'é';SELECT 1").unwrap(),
            vec!["SELECT 'é'", "SELECT 1"]
        );
    }

    #[test]
    fn classifies_vivace_and_session_statements() {
        let p = StatementParser::default();
        let one = |sql: &str| p.parse(sql).unwrap().remove(0);
        assert!(matches!(
            one("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/x/'"),
            Command::CreateExternalTable(_)
        ));
        match one("DROP EXTERNAL TABLE IF EXISTS Foo") {
            Command::DropTables { names, if_exists } => {
                assert!(if_exists);
                assert_eq!(names, vec![TableName::new("public", "foo")]);
            }
            other => panic!("{other:?}"),
        }
        match one("CREATE OR REPLACE VIEW V (a, b) AS SELECT x, y FROM t WHERE x > 1") {
            Command::CreateView(def, or_replace) => {
                assert!(or_replace);
                assert_eq!(def.name, TableName::new("public", "v"));
                assert_eq!(def.columns, ["a", "b"]);
                assert_eq!(def.query, "SELECT x, y FROM t WHERE x > 1");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            one("DROP VIEW IF EXISTS a, b"),
            Command::DropViews { names, if_exists: true } if names.len() == 2
        ));
        assert!(p.parse("CREATE MATERIALIZED VIEW m AS SELECT 1").is_err());
        assert!(matches!(one("SHOW TABLES"), Command::ShowTables));
        assert!(
            matches!(one("show create table public.t"), Command::ShowCreateTable(n) if n.table == "t")
        );
        assert!(matches!(one("DESCRIBE t"), Command::Describe(_)));
        assert!(
            matches!(one("SET search_path TO 'public'"), Command::Set { name, value } if name == "search_path" && value == "public")
        );
        assert!(
            matches!(one("SHOW transaction isolation level"), Command::Show(n) if n == "transaction isolation level")
        );
        assert!(matches!(
            one("BEGIN"),
            Command::Transaction(TransactionOp::Begin)
        ));
        assert!(matches!(one("SELECT 1"), Command::Query(_)));
        match one(
            "CREATE EXTERNAL SCHEMA IF NOT EXISTS App FROM POSTGRES LOCATION 'postgres://u@h/d' OPTIONS ('Schema' 'public', 'password_env' 'P')",
        ) {
            Command::CreateExternalSchema {
                request,
                if_not_exists,
            } => {
                assert!(if_not_exists);
                assert_eq!(request.name, "app");
                assert_eq!(request.connector, "postgres");
                assert_eq!(
                    request.options.get("schema").map(String::as_str),
                    Some("public")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(one("drop external schema if exists \"App\""), Command::DropExternalSchema { name, if_exists: true } if name == "App")
        );
        assert!(
            matches!(one("REFRESH EXTERNAL SCHEMA app"), Command::RefreshExternalSchema(n) if n == "app")
        );
        assert_eq!(
            p.parse("CREATE EXTERNAL SCHEMA a FROM POSTGRES LOCATION 'x' extra")
                .unwrap_err()
                .code,
            "42601"
        );
        assert_eq!(p.parse("CREATE TABLE x (a int)").unwrap_err().code, "0A000");
        assert_eq!(p.parse("SELEC 1").unwrap_err().code, "42601");
    }
}
