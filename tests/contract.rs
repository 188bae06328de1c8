//! The connector contract: one set of tests every connector runs against the same
//! rows, each connector declaring what it can do ([`Capabilities`], in the way of
//! Trino's `BaseConnectorTest` and `hasBehavior`). A new source adds a
//! [`Fixture`] here and passes the same tests.
//!
//! Each fixture registers table `contract_items` holding [`ROWS`] (bigint, text,
//! integer, double precision, date and boolean columns, with NULLs) on a real
//! source: local Parquet and CSV files, Parquet on an S3 server (moto),
//! PostgreSQL 15, OpenSearch 3.8 and Cassandra 5.0. The tests check that the rows and types come back exactly;
//! projections, filters, limits and aggregates answer what the rows say, with
//! pushdown on and off; a CREATE that fails leaves nothing in the catalog, not
//! even after a restart; secrets appear nowhere; and a scan split over two
//! workers answers what one worker answers.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::cassandra::Cassandra;
use common::elasticsearch::SearchServer;
use common::opensearch::OpenSearch;
use common::postgres::{DATABASE, PASSWORD, PgServer};
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use common::{Server, TempDir, rows, sql_error, text_rows};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

/// One row: id, name, qty, price, day (days after 2024-01-01), flag.
type Row = (
    i64,
    Option<&'static str>,
    Option<i32>,
    Option<f64>,
    Option<i32>,
    Option<bool>,
);

/// The rows every fixture holds.
const ROWS: &[Row] = &[
    (1, Some("apple"), Some(3), Some(0.5), Some(0), Some(true)),
    (2, Some("pear"), Some(0), Some(1.25), Some(1), Some(false)),
    (
        3,
        Some("plum's"),
        Some(12),
        Some(2.75),
        Some(59),
        Some(true),
    ),
    (4, Some("kiwi"), Some(7), Some(0.75), Some(60), Some(false)),
    (5, None, Some(5), None, None, None),
    (6, Some("Fig"), None, Some(10.5), Some(365), Some(true)),
    (7, Some("date"), Some(-4), Some(3.125), Some(4), Some(false)),
    (8, Some("éclair"), Some(9), Some(4.5), Some(10), Some(true)),
    (9, Some(""), Some(1), Some(0.125), Some(20), None),
    (
        10,
        Some("lime"),
        Some(2147483647),
        Some(99.5),
        Some(30),
        Some(true),
    ),
    (
        11,
        Some("cherry"),
        Some(6),
        Some(2.5),
        Some(40),
        Some(false),
    ),
    (
        12,
        Some("quince"),
        Some(8),
        Some(6.25),
        Some(50),
        Some(true),
    ),
];

/// The columns as PostgreSQL declares them.
const COLUMNS: &str =
    "id BIGINT, name TEXT, qty INTEGER, price DOUBLE PRECISION, day DATE, flag BOOLEAN";

/// What a connector can do; tests that need a capability skip fixtures without it.
#[derive(Debug, Clone, Copy)]
struct Capabilities {
    /// Filters reach the source, whose received requests the fixture can read.
    records_requests: bool,
    /// Tables name a secret (by environment variable) that must never be shown.
    secrets: bool,
    /// An empty string reads back as NULL (CSV: DataFusion's reader does not
    /// tell `""` from an empty field).
    empty_text_is_null: bool,
}

/// A source under contract.
trait Fixture {
    /// Name in test messages.
    fn name(&self) -> &'static str;
    /// What the connector can do.
    fn capabilities(&self) -> Capabilities;
    /// Environment the Vivace server needs (credentials by variable).
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![]
    }
    /// `CREATE EXTERNAL TABLE name ...` over the rows.
    fn create(&self, name: &str) -> String;
    /// The same with an unknown option added.
    fn create_with_unknown_option(&self, name: &str) -> String;
    /// The same pointing at a source that does not exist.
    fn create_missing(&self, name: &str) -> String;
    /// A CREATE giving a secret as an option value (refused).
    fn create_with_secret_value(&self, _name: &str) -> Option<String> {
        None
    }
    /// The secret value the server holds, which must never be shown.
    fn secret(&self) -> Option<&'static str> {
        None
    }
    /// Requests the source received since `mark` (with `records_requests`).
    fn requests_since(&self, _mark: usize) -> Vec<String> {
        vec![]
    }
    /// Where the request log stands now.
    fn request_mark(&self) -> usize {
        0
    }
    /// Whether a received request carries the filter `qty > 5` (SQL by default).
    fn carries_qty_over_5(&self, request: &str) -> bool {
        request.contains("qty") && request.contains("> 5")
    }
}

fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("qty", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
        Field::new("day", DataType::Date32, true),
        Field::new("flag", DataType::Boolean, true),
    ]));
    // Days since 1970-01-01 of 2024-01-01.
    const BASE: i32 = 19723;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.2))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.3))),
        Arc::new(Date32Array::from_iter(
            rows.iter().map(|r| r.4.map(|d| BASE + d)),
        )),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.5))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// The rows in halves, one file each, so that a scan can be split.
fn halves() -> [&'static [Row]; 2] {
    let (a, b) = ROWS.split_at(ROWS.len() / 2);
    [a, b]
}

fn date_text(days: i32) -> String {
    let date = chrono_like_date(days);
    format!("{:04}-{:02}-{:02}", date.0, date.1, date.2)
}

/// 2024-01-01 plus `days`, as (year, month, day), for days within 2024–2025.
fn chrono_like_date(mut days: i32) -> (i32, u32, u32) {
    let mut year = 2024;
    loop {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let lengths = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        for (m, len) in lengths.iter().enumerate() {
            if days < *len {
                return (year, m as u32 + 1, days as u32 + 1);
            }
            days -= len;
        }
        year += 1;
    }
}

fn csv_text(rows: &[Row]) -> String {
    let mut out = String::from("id,name,qty,price,day,flag\n");
    for r in rows {
        let name = match r.1 {
            None => String::new(),
            // An empty string is written quoted, so it is not read as NULL.
            Some(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.0,
            name,
            r.2.map(|v| v.to_string()).unwrap_or_default(),
            r.3.map(|v| v.to_string()).unwrap_or_default(),
            r.4.map(date_text).unwrap_or_default(),
            r.5.map(|v| v.to_string()).unwrap_or_default(),
        ));
    }
    out
}

fn parquet_bytes(rows: &[Row]) -> Vec<u8> {
    common::data::parquet_bytes(&batch(rows))
}

/// Each row as the PostgreSQL text protocol writes it.
fn text_of(r: &Row) -> Vec<Option<String>> {
    vec![
        Some(r.0.to_string()),
        r.1.map(str::to_string),
        r.2.map(|v| v.to_string()),
        r.3.map(|v| v.to_string()),
        r.4.map(date_text),
        r.5.map(|b| if b { "t" } else { "f" }.to_string()),
    ]
}

// ---------------------------------------------------------------------------
// Fixtures

struct LocalParquet {
    dir: std::path::PathBuf,
}

impl LocalParquet {
    fn new(root: &Path) -> Self {
        let dir = root.join("parquet");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, rows) in halves().iter().enumerate() {
            std::fs::write(dir.join(format!("part-{i}.parquet")), parquet_bytes(rows)).unwrap();
        }
        Self { dir }
    }
}

impl Fixture for LocalParquet {
    fn name(&self) -> &'static str {
        "local parquet"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            records_requests: false,
            secrets: false,
            empty_text_is_null: false,
        }
    }
    fn create(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{}/'",
            self.dir.display()
        )
    }
    fn create_with_unknown_option(&self, name: &str) -> String {
        format!("{} OPTIONS ('colour' 'red')", self.create(name))
    }
    fn create_missing(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{}/nothing-here/'",
            self.dir.display()
        )
    }
}

struct LocalCsv {
    dir: std::path::PathBuf,
}

impl LocalCsv {
    fn new(root: &Path) -> Self {
        let dir = root.join("csv");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, rows) in halves().iter().enumerate() {
            std::fs::write(dir.join(format!("part-{i}.csv")), csv_text(rows)).unwrap();
        }
        Self { dir }
    }
}

impl Fixture for LocalCsv {
    fn name(&self) -> &'static str {
        "local csv"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            records_requests: false,
            secrets: false,
            empty_text_is_null: true,
        }
    }
    fn create(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} ({COLUMNS}) STORED AS CSV LOCATION '{}/'",
            self.dir.display()
        )
    }
    fn create_with_unknown_option(&self, name: &str) -> String {
        format!("{} OPTIONS ('colour' 'red')", self.create(name))
    }
    fn create_missing(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} ({COLUMNS}) STORED AS CSV LOCATION '{}/nothing-here/'",
            self.dir.display()
        )
    }
}

struct S3Parquet {
    s3: S3Server,
}

impl S3Parquet {
    async fn new() -> Self {
        let s3 = S3Server::start();
        s3.create_bucket("contract");
        for (i, rows) in halves().iter().enumerate() {
            s3.put(
                "contract",
                &format!("items/part-{i}.parquet"),
                parquet_bytes(rows),
            )
            .await;
        }
        Self { s3 }
    }

    fn options(&self, extra: &str) -> String {
        format!(
            "OPTIONS ('aws.endpoint' '{}', 'aws.region' 'us-east-1', \
             'aws.access_key_id' '{ACCESS_KEY}', 'aws.secret_access_key_env' 'CONTRACT_S3_SECRET'{extra})",
            self.s3.endpoint
        )
    }
}

impl Fixture for S3Parquet {
    fn name(&self) -> &'static str {
        "s3 parquet"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            records_requests: false,
            secrets: true,
            empty_text_is_null: false,
        }
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("CONTRACT_S3_SECRET", SECRET_KEY.to_string())]
    }
    fn create(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION 's3://contract/items/' {}",
            self.options("")
        )
    }
    fn create_with_unknown_option(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION 's3://contract/items/' {}",
            self.options(", 'colour' 'red'")
        )
    }
    fn create_missing(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION 's3://contract/nothing-here/' {}",
            self.options("")
        )
    }
    fn create_with_secret_value(&self, name: &str) -> Option<String> {
        Some(format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION 's3://contract/items/' \
             OPTIONS ('aws.endpoint' '{}', 'aws.access_key_id' '{ACCESS_KEY}', \
             'aws.secret_access_key' '{SECRET_KEY}')",
            self.s3.endpoint
        ))
    }
    fn secret(&self) -> Option<&'static str> {
        Some(SECRET_KEY)
    }
}

struct Postgres {
    pg: PgServer,
}

impl Postgres {
    fn new(dir: &TempDir) -> Self {
        let pg = PgServer::start(dir);
        let values: Vec<String> = ROWS
            .iter()
            .map(|r| {
                let text = text_of(r);
                let lit = |v: &Option<String>| match v {
                    None => "NULL".to_string(),
                    Some(s) => format!("'{}'", s.replace('\'', "''")),
                };
                format!("({})", text.iter().map(lit).collect::<Vec<_>>().join(", "))
            })
            .collect();
        pg.psql(
            DATABASE,
            &format!(
                "CREATE TABLE items ({COLUMNS}); INSERT INTO items VALUES {}; \
                 GRANT SELECT ON items TO reporting;",
                values.join(", ")
            ),
        );
        Self { pg }
    }

    fn options(&self, extra: &str) -> String {
        format!(
            "OPTIONS ('table' 'items', 'password_env' 'CONTRACT_PG_PASSWORD', 'sslmode' 'disable', \
             'partition_column' 'id', 'partitions' '2'{extra})"
        )
    }
}

impl Fixture for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            records_requests: true,
            secrets: true,
            empty_text_is_null: false,
        }
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("CONTRACT_PG_PASSWORD", PASSWORD.to_string())]
    }
    fn create(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' {}",
            self.pg.location(),
            self.options("")
        )
    }
    fn create_with_unknown_option(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' {}",
            self.pg.location(),
            self.options(", 'colour' 'red'")
        )
    }
    fn create_missing(&self, name: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' \
             OPTIONS ('table' 'no_such_table', 'password_env' 'CONTRACT_PG_PASSWORD', 'sslmode' 'disable')",
            self.pg.location()
        )
    }
    fn create_with_secret_value(&self, name: &str) -> Option<String> {
        Some(format!(
            "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' \
             OPTIONS ('table' 'items', 'password' '{PASSWORD}')",
            self.pg.location()
        ))
    }
    fn secret(&self) -> Option<&'static str> {
        Some(PASSWORD)
    }
    fn request_mark(&self) -> usize {
        self.pg.log_text().len()
    }
    fn requests_since(&self, mark: usize) -> Vec<String> {
        self.pg.statements_since(mark)
    }
}

/// An OpenSearch index, its columns declared (`day` as `DATE`), read in two
/// slices; requests are read from the server's search slow log.
struct Search {
    es: &'static OpenSearch,
}

/// The API key the search fixture's tables name (OpenSearch without its
/// security plugin ignores it; it must never be shown).
const SEARCH_KEY: &str = "contract-api-key-s3cr3t";

impl Search {
    fn new() -> Self {
        let es = OpenSearch::shared();
        es.create_index(
            "contract_items",
            2,
            &serde_json::json!({"properties": {
                "id": {"type": "long"}, "name": {"type": "keyword"}, "qty": {"type": "integer"},
                "price": {"type": "double"}, "day": {"type": "date", "format": "yyyy-MM-dd"},
                "flag": {"type": "boolean"}
            }}),
        );
        let docs: Vec<(String, serde_json::Value)> = ROWS
            .iter()
            .map(|r| {
                let mut doc = serde_json::json!({ "id": r.0 });
                if let Some(v) = r.1 {
                    doc["name"] = v.into();
                }
                if let Some(v) = r.2 {
                    doc["qty"] = v.into();
                }
                if let Some(v) = r.3 {
                    doc["price"] = v.into();
                }
                if let Some(v) = r.4 {
                    doc["day"] = date_text(v).into();
                }
                if let Some(v) = r.5 {
                    doc["flag"] = v.into();
                }
                (r.0.to_string(), doc)
            })
            .collect();
        es.bulk("contract_items", &docs);
        es.log_searches("contract_items");
        Self { es }
    }

    fn table(&self, name: &str, index: &str, extra: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} ({COLUMNS}) STORED AS OPENSEARCH LOCATION '{}' \
             OPTIONS ('index' '{index}', 'slices' '2', 'api_key_env' 'CONTRACT_SEARCH_KEY'{extra})",
            self.es.url()
        )
    }
}

impl Fixture for Search {
    fn name(&self) -> &'static str {
        "opensearch"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            records_requests: true,
            secrets: true,
            empty_text_is_null: false,
        }
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("CONTRACT_SEARCH_KEY", SEARCH_KEY.to_string())]
    }
    fn create(&self, name: &str) -> String {
        self.table(name, "contract_items", "")
    }
    fn create_with_unknown_option(&self, name: &str) -> String {
        self.table(name, "contract_items", ", 'colour' 'red'")
    }
    fn create_missing(&self, name: &str) -> String {
        self.table(name, "no_such_index", "")
    }
    fn create_with_secret_value(&self, name: &str) -> Option<String> {
        Some(format!(
            "CREATE EXTERNAL TABLE {name} STORED AS OPENSEARCH LOCATION '{}' \
             OPTIONS ('index' 'contract_items', 'api_key' '{SEARCH_KEY}')",
            self.es.url()
        ))
    }
    fn secret(&self) -> Option<&'static str> {
        Some(SEARCH_KEY)
    }
    fn request_mark(&self) -> usize {
        self.es.search_log().len()
    }
    fn requests_since(&self, mark: usize) -> Vec<String> {
        // The slow log is written after each shard's query phase.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let log = self.es.search_log();
        log.get(mark..)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("[contract_items]"))
            .map(str::to_string)
            .collect()
    }
    fn carries_qty_over_5(&self, request: &str) -> bool {
        request.contains(r#""range":{"qty":{"from":5"#)
            && request.contains(r#""include_lower":false"#)
    }
}

/// A Cassandra table (`id` its partition key), its columns declared in the
/// contract's order, read over two token ranges; non-key filters are pushed
/// with `allow_filtering`, and requests are read from the server's traces.
struct Wide {
    cass: &'static Cassandra,
    session: scylla::client::session::Session,
}

impl Wide {
    async fn new() -> Self {
        let cass = Cassandra::shared();
        let session = cass.session().await;
        for statement in [
            "CREATE KEYSPACE IF NOT EXISTS contract WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            "CREATE TABLE IF NOT EXISTS contract.items (id bigint PRIMARY KEY, name text, qty int, price double, day date, flag boolean)",
        ] {
            session.query_unpaged(statement, ()).await.unwrap();
        }
        let insert = session
            .prepare("INSERT INTO contract.items (id, name, qty, price, day, flag) VALUES (?, ?, ?, ?, ?, ?)")
            .await
            .unwrap();
        for r in ROWS {
            let day = r.4.map(|d| {
                let (y, m, dd) = chrono_like_date(d);
                scylla::value::CqlDate((days_from_civil(y, m, dd) + (1i64 << 31)) as u32)
            });
            session
                .execute_unpaged(&insert, (r.0, r.1, r.2, r.3, day, r.5))
                .await
                .unwrap();
        }
        Self { cass, session }
    }

    fn table(&self, name: &str, table: &str, extra: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} ({COLUMNS}) STORED AS CASSANDRA LOCATION '{}' \
             OPTIONS ('keyspace' 'contract', 'table' '{table}', 'user' '{}', 'password_env' 'CONTRACT_CASS_PASSWORD', \
             'splits' '2', 'allow_filtering' 'true', 'tracing' 'true'{extra})",
            self.cass.location(),
            common::cassandra::USER
        )
    }

    /// Traced statements on `contract.items` since `since_ms`: the statement
    /// and its bound values.
    fn traced_since(&self, since_ms: i64) -> Vec<String> {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let mut statement = scylla::statement::Statement::new(
                    "SELECT started_at, parameters FROM system_traces.sessions",
                );
                statement.set_consistency(scylla::statement::Consistency::One);
                let rows = self
                    .session
                    .query_unpaged(statement, ())
                    .await
                    .unwrap()
                    .into_rows_result()
                    .unwrap();
                let mut out = Vec::new();
                for row in rows
                    .rows::<(
                        Option<scylla::value::CqlTimestamp>,
                        Option<std::collections::BTreeMap<String, String>>,
                    )>()
                    .unwrap()
                {
                    let (Some(at), Some(parameters)) = row.unwrap() else {
                        continue;
                    };
                    if at.0 >= since_ms
                        && parameters
                            .get("query")
                            .is_some_and(|q| q.contains("\"contract\".\"items\""))
                    {
                        out.push(format!("{parameters:?}"));
                    }
                }
                out
            })
        })
    }
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Fixture for Wide {
    fn name(&self) -> &'static str {
        "cassandra"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            records_requests: true,
            secrets: true,
            empty_text_is_null: false,
        }
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![(
            "CONTRACT_CASS_PASSWORD",
            common::cassandra::PASSWORD.to_string(),
        )]
    }
    fn create(&self, name: &str) -> String {
        self.table(name, "items", "")
    }
    fn create_with_unknown_option(&self, name: &str) -> String {
        self.table(name, "items", ", 'colour' 'red'")
    }
    fn create_missing(&self, name: &str) -> String {
        self.table(name, "no_such_table", "")
    }
    fn create_with_secret_value(&self, name: &str) -> Option<String> {
        Some(format!(
            "CREATE EXTERNAL TABLE {name} STORED AS CASSANDRA LOCATION '{}' \
             OPTIONS ('keyspace' 'contract', 'table' 'items', 'user' 'x', 'password' '{}')",
            self.cass.location(),
            common::cassandra::PASSWORD
        ))
    }
    fn secret(&self) -> Option<&'static str> {
        Some(common::cassandra::PASSWORD)
    }
    fn request_mark(&self) -> usize {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as usize
    }
    fn requests_since(&self, mark: usize) -> Vec<String> {
        // Traces are written after each request.
        std::thread::sleep(std::time::Duration::from_millis(1000));
        self.traced_since(mark as i64)
    }
    fn carries_qty_over_5(&self, request: &str) -> bool {
        request.contains(r#"\"qty\" > ?"#) && request.contains(r#""bound_var_2_qty": "5""#)
    }
}

// ---------------------------------------------------------------------------
// The contract

/// A query and the rows it must answer, computed from [`ROWS`].
struct Case {
    sql: &'static str,
    expected: Vec<Vec<Option<String>>>,
}

/// The rows as a connector with `caps` reads them back.
fn rows_read_back(caps: Capabilities) -> Vec<Row> {
    ROWS.iter()
        .map(|r| {
            let mut r = *r;
            if caps.empty_text_is_null && r.1 == Some("") {
                r.1 = None;
            }
            r
        })
        .collect()
}

fn select(rows: &[Row], sql: &'static str, keep: impl Fn(&Row) -> bool, columns: &[usize]) -> Case {
    Case {
        sql,
        expected: rows
            .iter()
            .filter(|r| keep(r))
            .map(|r| {
                let text = text_of(r);
                columns.iter().map(|&c| text[c].clone()).collect()
            })
            .collect(),
    }
}

fn cases(caps: Capabilities) -> Vec<Case> {
    let rows = rows_read_back(caps);
    let rows = rows.as_slice();
    let all = [0, 1, 2, 3, 4, 5];
    let one = |v: String| vec![vec![Some(v)]];
    vec![
        // Types round-trip: every column of every row, as written.
        select(
            rows,
            "SELECT id, name, qty, price, day, flag FROM contract_items ORDER BY id",
            |_| true,
            &all,
        ),
        // Projection.
        select(
            rows,
            "SELECT name, id FROM contract_items ORDER BY id",
            |_| true,
            &[1, 0],
        ),
        // Filters of each type.
        select(
            rows,
            "SELECT id FROM contract_items WHERE qty > 5 ORDER BY id",
            |r| r.2.is_some_and(|q| q > 5),
            &[0],
        ),
        select(
            rows,
            "SELECT id, name FROM contract_items WHERE name = 'plum''s' OR name = '' ORDER BY id",
            |r| matches!(r.1, Some("plum's") | Some("")),
            &[0, 1],
        ),
        select(
            rows,
            "SELECT id FROM contract_items WHERE name IS NULL ORDER BY id",
            |r| r.1.is_none(),
            &[0],
        ),
        select(
            rows,
            "SELECT id FROM contract_items WHERE day >= DATE '2024-02-29' ORDER BY id",
            |r| r.4.is_some_and(|d| d >= 59),
            &[0],
        ),
        select(
            rows,
            "SELECT id FROM contract_items WHERE flag ORDER BY id",
            |r| r.5 == Some(true),
            &[0],
        ),
        select(
            rows,
            "SELECT id, price FROM contract_items WHERE price BETWEEN 1 AND 5 AND id <> 7 ORDER BY id",
            |r| r.3.is_some_and(|p| (1.0..=5.0).contains(&p)) && r.0 != 7,
            &[0, 3],
        ),
        select(
            rows,
            "SELECT id FROM contract_items WHERE name LIKE 'p%' ORDER BY id",
            |r| r.1.is_some_and(|n| n.starts_with('p')),
            &[0],
        ),
        // Limits.
        select(
            rows,
            "SELECT id FROM contract_items ORDER BY id LIMIT 3",
            |r| r.0 <= 3,
            &[0],
        ),
        Case {
            sql: "SELECT count(*) FROM (SELECT id FROM contract_items LIMIT 4) t",
            expected: one("4".into()),
        },
        // Aggregates.
        Case {
            sql: "SELECT count(*), count(name), sum(qty), max(price), min(day) FROM contract_items",
            expected: vec![vec![
                Some(rows.len().to_string()),
                Some(rows.iter().filter(|r| r.1.is_some()).count().to_string()),
                Some(
                    rows.iter()
                        .filter_map(|r| r.2.map(i64::from))
                        .sum::<i64>()
                        .to_string(),
                ),
                Some("99.5".into()),
                Some(date_text(0)),
            ]],
        },
    ]
}

/// Every case answers its rows on `server`, with pushdown on and off.
async fn check_cases(fixture: &dyn Fixture, server: &Server, label: &str, setup: &str) {
    let client = server.client().await;
    client.batch_execute(setup).await.unwrap();
    for pushdown in ["on", "off"] {
        client
            .batch_execute(&format!("SET vivace.pushdown = {pushdown}"))
            .await
            .unwrap();
        for case in cases(fixture.capabilities()) {
            assert_eq!(
                rows(&client, case.sql).await,
                case.expected,
                "{} ({label}, pushdown {pushdown}): {}",
                fixture.name(),
                case.sql
            );
        }
    }
}

/// Small files are one task by default (256 KiB of them per task); the test
/// files are split anyway.
const SPLIT_SMALL_FILES: &str = "SET distributed.file_scan_config_bytes_per_partition = 1";

async fn server_for(dir: &TempDir, fixture: &dyn Fixture, args: &[&str]) -> Server {
    let env = fixture.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(dir, args, &env).await
}

async fn run_contract(fixture: &dyn Fixture, dir: &TempDir) {
    let caps = fixture.capabilities();
    let mut server = server_for(dir, fixture, &["--workers", "1"]).await;
    let client = server.client().await;
    client
        .batch_execute(&fixture.create("contract_items"))
        .await
        .unwrap_or_else(|e| panic!("{}: CREATE failed: {e:?}", fixture.name()));

    // Rows, types, projection, filters, limits; pushdown on = off.
    check_cases(fixture, &server, "1 worker", "").await;

    // The source receives the filter when pushdown is on, and not when off.
    if caps.records_requests {
        for (pushdown, pushed) in [("on", true), ("off", false)] {
            client
                .batch_execute(&format!("SET vivace.pushdown = {pushdown}"))
                .await
                .unwrap();
            let mark = fixture.request_mark();
            rows(&client, "SELECT id FROM contract_items WHERE qty > 5").await;
            let received = fixture.requests_since(mark);
            assert!(
                !received.is_empty(),
                "{}: nothing reached the source",
                fixture.name()
            );
            assert_eq!(
                received.iter().any(|r| fixture.carries_qty_over_5(r)),
                pushed,
                "{} (pushdown {pushdown}) received: {received:?}",
                fixture.name()
            );
        }
    }

    // A CREATE that fails leaves nothing behind, not even after a restart.
    for (sql, code) in [
        (
            fixture.create_with_unknown_option("contract_broken"),
            "22023",
        ),
        (fixture.create_missing("contract_missing"), ""),
    ] {
        let (got, message) = sql_error(&client, &sql).await;
        if code.is_empty() {
            assert!(
                !got.is_empty() && got != "XX000",
                "{}: {sql}\n{got} {message}",
                fixture.name()
            );
        } else {
            assert_eq!(got, code, "{}: {sql}\n{message}", fixture.name());
        }
    }
    if let Some(sql) = fixture.create_with_secret_value("contract_secret") {
        let (code, message) = sql_error(&client, &sql).await;
        assert_eq!(code, "22023", "{}: {message}", fixture.name());
        assert!(message.contains("secret"), "{message}");
    }
    let tables = |client: tokio_postgres::Client| async move {
        text_rows(
            &client,
            "SELECT table_name FROM information_schema.tables \
             WHERE table_name LIKE 'contract%' ORDER BY 1",
        )
        .await
    };
    assert_eq!(
        tables(server.client().await).await,
        [["contract_items"]],
        "{}",
        fixture.name()
    );
    server.restart().await;
    assert_eq!(
        tables(server.client().await).await,
        [["contract_items"]],
        "{} after a restart",
        fixture.name()
    );

    // Secrets appear nowhere: not in SHOW CREATE, the catalog views, or the log.
    if let (true, Some(secret)) = (caps.secrets, fixture.secret()) {
        let client = server.client().await;
        let shown = [
            "SHOW CREATE TABLE contract_items",
            "SELECT * FROM information_schema.columns WHERE table_name = 'contract_items'",
            "SHOW ALL",
        ];
        for sql in shown {
            let text = format!("{:?}", rows(&client, sql).await);
            assert!(
                !text.contains(secret),
                "{}: {sql} shows the secret",
                fixture.name()
            );
        }
        assert!(
            !server.log_text().contains(secret),
            "{}: the log shows the secret",
            fixture.name()
        );
    }

    // A scan split over two workers answers what one worker answers.
    let two_dir = TempDir::new(&format!(
        "contract-two-{}",
        fixture.name().replace(' ', "-")
    ));
    let two = server_for(&two_dir, fixture, &["--workers", "2"]).await;
    two.client()
        .await
        .batch_execute(&fixture.create("contract_items"))
        .await
        .unwrap();
    // The scan ships to workers: EXPLAIN shows it split into two tasks and
    // names no table left on the coordinator.
    let two_client = two.client().await;
    two_client.batch_execute(SPLIT_SMALL_FILES).await.unwrap();
    let plan = text_rows(&two_client, "EXPLAIN SELECT id, name FROM contract_items")
        .await
        .concat()
        .join("\n");
    assert!(
        plan.contains("DistributedExec")
            && plan.contains("tasks=2")
            && !plan.contains("runs on the coordinator"),
        "{}: the scan was not split over two workers:\n{plan}",
        fixture.name()
    );
    check_cases(fixture, &two, "2 workers", SPLIT_SMALL_FILES).await;

    // A table whose scans cannot ship (a temp table, in the coordinator's
    // memory) says so in EXPLAIN; the join still answers.
    two_client
        .batch_execute(
            "CREATE TEMP TABLE picks (name TEXT); INSERT INTO picks VALUES ('kiwi'), ('lime')",
        )
        .await
        .unwrap();
    let join = "SELECT i.id FROM contract_items i JOIN picks p ON p.name = i.name ORDER BY i.id";
    let plan = text_rows(&two_client, &format!("EXPLAIN {join}"))
        .await
        .concat()
        .join("\n");
    assert!(
        plan.contains("runs on the coordinator") && plan.contains("picks"),
        "{}: EXPLAIN does not say the temp table stays:\n{plan}",
        fixture.name()
    );
    assert_eq!(text_rows(&two_client, join).await, [["4"], ["10"]]);
}

#[tokio::test]
async fn local_parquet_keeps_the_contract() {
    let dir = TempDir::new("contract-parquet");
    let fixture = LocalParquet::new(dir.path());
    run_contract(&fixture, &dir).await;
}

#[tokio::test]
async fn local_csv_keeps_the_contract() {
    let dir = TempDir::new("contract-csv");
    let fixture = LocalCsv::new(dir.path());
    run_contract(&fixture, &dir).await;
}

#[tokio::test]
async fn s3_parquet_keeps_the_contract() {
    let dir = TempDir::new("contract-s3");
    let fixture = S3Parquet::new().await;
    run_contract(&fixture, &dir).await;
}

#[tokio::test]
async fn opensearch_keeps_the_contract() {
    let dir = TempDir::new("contract-opensearch");
    let fixture = Search::new();
    run_contract(&fixture, &dir).await;
}

#[tokio::test]
async fn postgres_keeps_the_contract() {
    let dir = TempDir::new("contract-postgres");
    let fixture = Postgres::new(&dir);
    run_contract(&fixture, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cassandra_keeps_the_contract() {
    let dir = TempDir::new("contract-cassandra");
    let fixture = Wide::new().await;
    run_contract(&fixture, &dir).await;
}
