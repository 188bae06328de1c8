//! `STORED AS ELASTICSEARCH` / `OPENSEARCH` against a real OpenSearch 3.8
//! (started once for this binary): columns from mappings (every type, arrays,
//! nested, custom date formats, pattern merge), filters pushed as query DSL and
//! checked against the server's own answer and against pushdown off, point-in-
//! time reads past 10,000 hits, sliced reads on two workers, full-text
//! functions, quoting, cancellation and errors. And against a real
//! Elasticsearch 9.5.3 with security on (also started once, by the first test
//! that needs it): the Elasticsearch flavour's point-in-time API, sliced and
//! past 10,000 hits, composite aggregations, basic authentication and API keys,
//! cancellation, and the mapping types that node has.

mod common;

use std::collections::BTreeSet;

use common::elasticsearch::{Elasticsearch, SearchServer};
use common::http::{metric_sum, metrics_text};
use common::opensearch::OpenSearch;
use common::{Server, TempDir, both_ways, explain, rows, sql_error, text_rows};
use serde_json::{Value, json};
use tokio_postgres::Client;

const CITIES: [&str; 6] = [
    "Oslo",
    "Bergen",
    "Paris",
    "Lyon",
    "Tromsø",
    "Zürich \"Old\" \\ *?",
];
const CATEGORIES: [&str; 4] = ["cars", "bikes", "boats", "toys"];
const WORDS: [&str; 8] = [
    "red",
    "fast",
    "timeout",
    "connection",
    "quiet",
    "old",
    "new",
    "blue",
];

/// The `listings` index: `n` documents with keyword, numeric, date (custom
/// format), boolean, text and array fields, some fields missing.
fn listings(es: &impl SearchServer, index: &str, n: usize, shards: u32) {
    listings_rated(
        es,
        index,
        n,
        shards,
        json!({"type": "scaled_float", "scaling_factor": 10}),
    );
}

/// [`listings`] with `rating` mapped as given.
fn listings_rated(es: &impl SearchServer, index: &str, n: usize, shards: u32, rating: Value) {
    es.create_index(
        index,
        shards,
        &json!({
            "_meta": {"vivace": {"arrays": ["tags"]}},
            "properties": {
                "city": {"type": "keyword"},
                "category": {"type": "keyword"},
                "price": {"type": "long"},
                "rating": rating,
                "title": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "ts": {"type": "date", "format": "dd/MM/yyyy HH:mm||epoch_millis"},
                "active": {"type": "boolean"},
                "tags": {"type": "keyword"},
                "sku": {"type": "keyword"}
            }
        }),
    );
    let docs: Vec<(String, Value)> = (0..n)
        .map(|i| {
            let mut doc = json!({
                "city": CITIES[i % CITIES.len()],
                "price": (i * 37) % 1000,
                "rating": (i % 50) as f64 / 10.0,
                "title": format!("{} {} {}", WORDS[i % 8], WORDS[(i / 8) % 8], WORDS[(i / 64) % 8]),
                "ts": format!("{:02}/{:02}/2024 {:02}:{:02}", 1 + i % 28, 1 + (i / 28) % 12, i % 24, i % 60),
                "active": i % 3 == 0,
                "tags": (0..(i % 3)).map(|t| format!("t{}", (i + t) % 5)).collect::<Vec<_>>(),
                "sku": format!("s{i:06}"),
            });
            if i % 17 != 0 {
                doc["category"] = json!(CATEGORIES[i % CATEGORIES.len()]);
            }
            (format!("l{i:05}"), doc)
        })
        .collect();
    es.bulk(index, &docs);
}

async fn server_with_workers(dir: &TempDir, workers: &str) -> Server {
    Server::start_with(
        dir,
        &["--workers", workers],
        &[("VIVACE_TEST_ES_KEY", "k3y")],
    )
    .await
}

async fn create(client: &Client, name: &str, es: &impl SearchServer, index: &str, extra: &str) {
    let sql = format!(
        "CREATE EXTERNAL TABLE {name} STORED AS ELASTICSEARCH LOCATION '{}' OPTIONS ('index' '{index}'{extra})",
        es.url()
    );
    client
        .simple_query(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// Search contexts (points in time among them) open on `index`'s shards.
fn open_contexts(es: &impl SearchServer, index: &str) -> u64 {
    let stats = es.request("GET", &format!("/{index}/_stats/search"), None);
    stats["_all"]["total"]["search"]["open_contexts"]
        .as_u64()
        .unwrap_or(0)
        + stats["_all"]["total"]["search"]["point_in_time_current"]
            .as_u64()
            .unwrap_or(0)
}

fn ids(rows: &[Vec<String>]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mapped_type_reads_as_its_column() {
    let es = OpenSearch::shared();
    es.create_index(
        "typed",
        1,
        &json!({
            "properties": {
                "k": {"type": "keyword"}, "ck": {"type": "constant_keyword", "value": "fixed"},
                "w": {"type": "wildcard"}, "mot": {"type": "match_only_text"},
                "t": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "l": {"type": "long"}, "i": {"type": "integer"}, "s": {"type": "short"}, "b": {"type": "byte"},
                "ul": {"type": "unsigned_long"},
                "d": {"type": "double"}, "f": {"type": "float"}, "hf": {"type": "half_float"},
                "sf": {"type": "scaled_float", "scaling_factor": 100},
                "flag": {"type": "boolean"},
                "day": {"type": "date", "format": "dd.MM.yyyy"},
                "at": {"type": "date_nanos"},
                "addr": {"type": "ip"}, "bin": {"type": "binary"},
                "who": {"properties": {"first": {"type": "keyword"}, "age": {"type": "integer"}}},
                "items": {"type": "nested", "properties": {"sku": {"type": "keyword"}, "qty": {"type": "integer"}}},
                "loc": {"type": "geo_point"},
                "shape": {"type": "flat_object"}
            }
        }),
    );
    es.bulk(
        "typed",
        &[
            (
                "a".into(),
                json!({"k": "key", "ck": "fixed", "w": "wild", "mot": "only text", "t": "Some Text",
                       "l": 9007199254740993i64, "i": -5, "s": 300, "b": -7, "ul": 18446744073709551615u64,
                       "d": 1.5, "f": 2.25, "hf": 0.5, "sf": 2.72, "flag": true,
                       "day": "31.12.2023", "at": "2024-01-02T03:04:05.123456789Z",
                       "addr": "192.168.0.1", "bin": "aGVsbG8=",
                       "who": {"first": "Ada", "age": 36},
                       "items": [{"sku": "x1", "qty": 2}, {"sku": "x2", "qty": 3}],
                       "loc": {"lat": 59.9, "lon": 10.75}, "shape": {"a": "b"}}),
            ),
            ("b".into(), json!({"k": "other", "loc": "60.39,5.32", "items": {"sku": "y", "qty": 1}})),
            ("c".into(), json!({"loc": [5.32, 60.39]})),
        ],
    );
    let dir = TempDir::new("es-types");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    create(&client, "typed", es, "typed", "").await;
    let columns = text_rows(
        &client,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'typed' ORDER BY ordinal_position",
    )
    .await;
    let names: Vec<&str> = columns.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "_id", "addr", "at", "b", "bin", "ck", "d", "day", "f", "flag", "hf", "i", "items",
            "k", "l", "loc", "mot", "s", "sf", "shape", "t", "t.raw", "ul", "w", "who", "_score"
        ]
    );
    let got = text_rows(
        &client,
        "SELECT _id, k, ck, w, mot, t, \"t.raw\", l, i, s, b, ul, d, f, hf, sf, flag, day, at, addr, bin, \
         who['first'], who['age'], items[1]['sku'], items[2]['qty'], loc['lat'], loc['lon'], shape \
         FROM typed ORDER BY _id",
    )
    .await;
    let row_a: Vec<&str> = vec![
        "a",
        "key",
        "fixed",
        "wild",
        "only text",
        "Some Text",
        "Some Text",
        "9007199254740993",
        "-5",
        "300",
        "-7",
        "18446744073709551615",
        "1.5",
        "2.25",
        "0.5",
        "2.72",
        "t",
        "2023-12-31 00:00:00+00",
        "2024-01-02 03:04:05.123457+00",
        "192.168.0.1",
        "\\x68656c6c6f",
        "Ada",
        "36",
        "x1",
        "3",
        "59.9",
        "10.75",
        "{\"a\":\"b\"}",
    ];
    assert_eq!(
        got[0],
        row_a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(got[1][1], "other");
    assert_eq!(
        got[1][23], "y",
        "a nested field holding one object is a list of one"
    );
    assert_eq!(
        (got[1][25].as_str(), got[1][26].as_str()),
        ("60.39", "5.32")
    );
    assert_eq!(
        (got[2][25].as_str(), got[2][26].as_str()),
        ("60.39", "5.32"),
        "GeoJSON order"
    );
    assert_eq!(got[2][1], "NULL");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_are_pushed_as_dsl_and_answer_as_the_server_does() {
    let es = OpenSearch::shared();
    listings(es, "listings", 3000, 2);
    let dir = TempDir::new("es-pushdown");
    let server = server_with_workers(&dir, "1").await;
    let client = server.client().await;
    create(&client, "listings", es, "listings", "").await;
    // Each filter, with the server's own query for the same documents.
    let cases: Vec<(&str, Value)> = vec![
        (
            "category IN ('cars','bikes') AND price < 500",
            json!({"bool": {"filter": [
            {"terms": {"category": ["cars", "bikes"]}}, {"range": {"price": {"lt": 500}}}]}}),
        ),
        (
            "city = 'Zürich \"Old\" \\ *?'",
            json!({"term": {"city": "Zürich \"Old\" \\ *?"}}),
        ),
        (
            "city = 'Oslo' OR category IS NULL",
            json!({"bool": {"should": [
            {"term": {"city": "Oslo"}}, {"bool": {"must_not": {"exists": {"field": "category"}}}}]}}),
        ),
        (
            "category <> 'cars'",
            json!({"bool": {"filter": {"exists": {"field": "category"}},
            "must_not": {"term": {"category": "cars"}}}}),
        ),
        (
            "NOT (price >= 100 AND price <= 900)",
            json!({"bool": {"should": [
            {"range": {"price": {"lt": 100}}}, {"range": {"price": {"gt": 900}}}]}}),
        ),
        ("city LIKE 'Tro%'", json!({"prefix": {"city": "Tro"}})),
        ("city LIKE '%r_en'", json!({"wildcard": {"city": "*r?en"}})),
        (
            "ts >= '2024-06-01T00:00:00Z' AND ts < '2024-07-01T00:00:00Z'",
            json!({"range": {"ts": {"gte": "2024-06-01T00:00:00Z", "lt": "2024-07-01T00:00:00Z",
                "format": "strict_date_optional_time"}}}),
        ),
        ("active", json!({"term": {"active": true}})),
        ("rating > 2.5", json!({"range": {"rating": {"gt": 2.5}}})),
        (
            "\"title.raw\" = 'red fast red'",
            json!({"term": {"title.raw": "red fast red"}}),
        ),
        (
            "_id IN ('l00001', 'l00002', 'nope')",
            json!({"ids": {"values": ["l00001", "l00002", "nope"]}}),
        ),
        (
            "match(title, 'timeout connection')",
            json!({"match": {"title": "timeout connection"}}),
        ),
        (
            "match_phrase(title, 'quiet old')",
            json!({"match_phrase": {"title": "quiet old"}}),
        ),
        (
            "query_string('title:(blue AND new) AND price:[10 TO 500]')",
            json!({"query_string": {"query": "title:(blue AND new) AND price:[10 TO 500]"}}),
        ),
    ];
    for (filter, direct) in &cases {
        let sql = format!("SELECT _id, city, price FROM listings WHERE {filter}");
        let got = ids(&both_ways(&client, &sql).await);
        let want = es.ids("listings", direct);
        assert!(!want.is_empty(), "{filter}: the case selects nothing");
        assert_eq!(got, want, "{filter}");
    }
    // EXPLAIN shows the DSL; an exact filter leaves the plan, an inexact one stays.
    let plan = explain(
        &client,
        "SELECT _id FROM listings WHERE category = 'cars' AND price < 10",
    )
    .await;
    assert!(plan.contains(r#"{"term":{"category":"cars"}}"#), "{plan}");
    assert!(plan.contains(r#"{"range":{"price":{"lt":10}}}"#), "{plan}");
    assert!(
        !plan.contains("FilterExec"),
        "exact filters stay in the plan:\n{plan}"
    );
    let plan = explain(&client, "SELECT _id FROM listings WHERE rating > 2.5").await;
    assert!(
        plan.contains("FilterExec") && plan.contains(r#""range""#),
        "{plan}"
    );
    // Pushdown off sends no query, and reads only the projected fields.
    client
        .simple_query("SET vivace.pushdown = off")
        .await
        .unwrap();
    let plan = explain(
        &client,
        "SELECT _id, price FROM listings WHERE category = 'cars'",
    )
    .await;
    assert!(
        plan.contains(r#""match_all""#) && plan.contains(r#""_source":["category","price"]"#),
        "{plan}"
    );
    client
        .simple_query("SET vivace.pushdown = on")
        .await
        .unwrap();
    // A LIMIT becomes the most hits read.
    let plan = explain(&client, "SELECT _id FROM listings WHERE price = 3 LIMIT 2").await;
    assert!(plan.contains(r#""limit":2"#), "{plan}");
    let limited = rows(
        &client,
        "SELECT _id FROM listings WHERE city = 'Oslo' LIMIT 7",
    )
    .await;
    assert_eq!(limited.len(), 7);
    // ORDER BY … LIMIT: the server sorts and sends only the first n hits.
    for sql in [
        "SELECT _id, price, sku FROM listings WHERE category = 'cars' ORDER BY price DESC, sku LIMIT 5",
        "SELECT sku AS s, category FROM listings ORDER BY category NULLS FIRST, s LIMIT 30",
        "SELECT _id, ts FROM listings WHERE price > 100 ORDER BY ts, sku DESC LIMIT 3 OFFSET 2",
    ] {
        let plan = explain(&client, sql).await;
        assert!(
            plan.contains(r#""sort":[{"#) && plan.contains(r#""limit":"#),
            "not pushed: {sql}\n{plan}"
        );
        let mut ordered_on = text_rows(&client, sql).await;
        client
            .simple_query("SET vivace.pushdown = off")
            .await
            .unwrap();
        let ordered_off = text_rows(&client, sql).await;
        client
            .simple_query("SET vivace.pushdown = on")
            .await
            .unwrap();
        assert_eq!(ordered_on, ordered_off, "{sql}");
        ordered_on.dedup();
        assert!(!ordered_on.is_empty());
    }
    let analyzed = explain(
        &client,
        "ANALYZE SELECT _id FROM listings ORDER BY price DESC, sku LIMIT 5",
    )
    .await;
    let scan = analyzed
        .lines()
        .find(|l| l.contains("RemoteScanExec"))
        .unwrap_or_default()
        .to_string();
    assert!(
        scan.contains("output_rows=5"),
        "the server sent more than 5 hits:\n{analyzed}"
    );
    // Aggregates over pushed filters.
    let grouped = both_ways(
        &client,
        "SELECT city, count(*), sum(price), min(ts), max(cardinality(tags)) FROM listings \
         WHERE category IN ('cars','bikes') AND price < 500 GROUP BY city",
    )
    .await;
    let total: i64 = grouped.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    let direct = es.request(
        "POST",
        "/listings/_count",
        Some(&json!({"query": cases[0].1}).to_string()),
    );
    assert_eq!(total, direct["count"].as_i64().unwrap());
    // Arrays read as lists.
    let tags = text_rows(
        &client,
        "SELECT tags FROM listings WHERE _id IN ('l00000', 'l00002') ORDER BY _id",
    )
    .await;
    assert_eq!(tags, [vec!["{}".to_string()], vec!["{t2,t3}".to_string()]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregations_are_pushed_as_composite_aggregations() {
    let es = OpenSearch::shared();
    listings(es, "sales_es", 2000, 2);
    let dir = TempDir::new("es-aggregates");
    let server = server_with_workers(&dir, "1").await;
    let client = server.client().await;
    create(&client, "sales", es, "sales_es", "").await;
    let pushed = [
        "SELECT city, count(*), count(category), sum(price), avg(price), min(price), max(price), min(ts), max(ts) \
         FROM sales GROUP BY city",
        "SELECT category, date_trunc('month', ts) AS month, count(*), sum(price) FROM sales \
         WHERE price < 500 AND city <> 'Oslo' GROUP BY 1, 2",
        "SELECT active, count(*) FROM sales WHERE category IS NULL GROUP BY active",
        "SELECT count(*), sum(price), avg(price), min(ts) FROM sales WHERE city = 'Oslo'",
        "SELECT count(*), sum(price), avg(price), max(price) FROM sales WHERE city = 'nowhere'",
    ];
    for sql in pushed {
        let plan = explain(&client, sql).await;
        assert!(
            plan.contains(r#""aggs""#) && !plan.contains("AggregateExec"),
            "not pushed: {sql}\n{plan}"
        );
        let rows = both_ways(&client, sql).await;
        assert!(!rows.is_empty(), "{sql}");
    }
    // The server's own numbers for one group.
    let oslo = text_rows(
        &client,
        "SELECT count(*), sum(price) FROM sales WHERE city = 'Oslo'",
    )
    .await;
    let direct = es.request(
        "POST",
        "/sales_es/_search",
        Some(
            r#"{"size":0,"query":{"term":{"city":"Oslo"}},"aggs":{"s":{"sum":{"field":"price"}}}}"#,
        ),
    );
    assert_eq!(
        oslo[0][1],
        format!(
            "{}",
            direct["aggregations"]["s"]["value"].as_f64().unwrap() as i64
        )
    );
    // An aggregation on nothing: count 0, sum NULL.
    let none = text_rows(
        &client,
        "SELECT count(*), sum(price) FROM sales WHERE city = 'nowhere'",
    )
    .await;
    assert_eq!(none, [vec!["0".to_string(), "NULL".to_string()]]);
    // count(DISTINCT) is the server's cardinality only when the table opts in.
    create(
        &client,
        "sales_approx",
        es,
        "sales_es",
        ", 'approximate_distinct' 'on'",
    )
    .await;
    let sql = "SELECT city, count(DISTINCT category), count(*) FROM sales_approx GROUP BY city";
    let plan = explain(&client, sql).await;
    assert!(
        plan.contains(r#""cardinality""#) && !plan.contains("AggregateExec"),
        "{plan}"
    );
    assert_eq!(
        both_ways(&client, sql).await,
        both_ways(&client, &sql.replace("sales_approx", "sales")).await,
        "a handful of values counts exactly"
    );
    // What has no exact counterpart stays in Vivace, with the same answer.
    for sql in [
        "SELECT city, count(DISTINCT category) FROM sales GROUP BY city",
        "SELECT city, avg(rating) FROM sales GROUP BY city",
        "SELECT upper(city), count(*) FROM sales GROUP BY 1",
    ] {
        let plan = explain(&client, sql).await;
        assert!(plan.contains("AggregateExec"), "{sql}\n{plan}");
        both_ways(&client, sql).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_receives_the_request_explain_shows() {
    let es = OpenSearch::shared();
    listings(es, "audited", 300, 1);
    es.log_searches("audited");
    let dir = TempDir::new("es-audit");
    let server = server_with_workers(&dir, "1").await;
    let client = server.client().await;
    create(&client, "audited", es, "audited", "").await;
    // Pushdown on: the value reaches the server inside the DSL EXPLAIN printed.
    let sql = "SELECT _id, price FROM audited WHERE city = 'marker-on' AND price >= 7";
    let plan = explain(&client, sql).await;
    assert!(
        plan.contains(r#"{"term":{"city":"marker-on"}}"#)
            && plan.contains(r#"{"range":{"price":{"gte":7}}}"#),
        "{plan}"
    );
    assert!(rows(&client, sql).await.is_empty());
    let logged = wait_for_log(es, "marker-on").await;
    assert!(
        logged.contains(r#""term":{"city":{"value":"marker-on""#),
        "{logged}"
    );
    assert!(logged.contains(r#""range":{"price":{"from":7"#), "{logged}");
    assert!(
        logged.contains(r#""includes":["price"]"#)
            || logged.contains(r#""includes":["city","price"]"#),
        "{logged}"
    );
    // Pushdown off: the server is asked for every document, Vivace filters.
    client
        .simple_query("SET vivace.pushdown = off")
        .await
        .unwrap();
    assert!(
        rows(&client, "SELECT _id FROM audited WHERE city = 'marker-off'")
            .await
            .is_empty()
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !es.search_log().contains("marker-off"),
        "a filter reached the server with pushdown off"
    );
}

/// The slow-log line of the hits search (not the `_count`) carrying `marker`.
async fn wait_for_log(es: &OpenSearch, marker: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = es.search_log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains(marker) && l.contains("includes"))
        {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no search with {marker} in the slow log:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn joins_with_parquet_and_postgresql() {
    use common::postgres::{DATABASE, PASSWORD, PgServer};
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let es = OpenSearch::shared();
    listings(es, "joined", 500, 2);
    let dir = TempDir::new("es-join");
    let pg = PgServer::start(&dir);
    pg.psql(
        DATABASE,
        "CREATE TABLE owners (listing_id text PRIMARY KEY, owner text NOT NULL); \
         INSERT INTO owners SELECT 'l' || lpad(i::text, 5, '0'), 'o' || (i % 7) FROM generate_series(0, 499, 3) i;",
    );
    // Parquet events: two per listing of every fifth listing.
    let ids: Vec<String> = (0..500)
        .step_by(5)
        .flat_map(|i| [format!("l{i:05}"), format!("l{i:05}")])
        .collect();
    let amounts: Vec<i64> = (0..ids.len() as i64).map(|i| i * 3 + 1).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("listing_id", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(Int64Array::from(amounts)),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("events")).unwrap();
    std::fs::write(
        dir.path().join("events/part-0.parquet"),
        common::data::parquet_bytes(&batch),
    )
    .unwrap();
    let server =
        Server::start_with(&dir, &["--workers", "2"], &[("APP_PG_PASSWORD", PASSWORD)]).await;
    let client = server.client().await;
    create(&client, "listings", es, "joined", "").await;
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE owners STORED AS POSTGRES LOCATION '{}' \
             OPTIONS ('table' 'owners', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable')",
            pg.location()
        ))
        .await
        .unwrap();
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION '{}'",
            dir.path().join("events").display()
        ))
        .await
        .unwrap();
    let sql = "SELECT l.city, o.owner, sum(e.amount) AS total, count(*) AS n \
               FROM listings l JOIN events e ON e.listing_id = l._id JOIN owners o ON o.listing_id = l._id \
               WHERE l.category IN ('cars', 'bikes') GROUP BY 1, 2";
    // Without the grant, PostgreSQL's refusal comes back as fdw_error, with
    // its message and SQLSTATE.
    let (code, message) = sql_error(&client, sql).await;
    assert_eq!(code, "HV000", "{message}");
    assert!(
        message.contains("permission denied for table owners") && message.contains("42501"),
        "{message}"
    );
    pg.psql(DATABASE, "GRANT SELECT ON owners TO reporting");
    let got = both_ways(&client, sql).await;
    // The same answer computed here from the rows as loaded.
    let mut want: std::collections::BTreeMap<(String, String), (i64, i64)> = Default::default();
    for (k, i) in (0..500usize).step_by(5).enumerate() {
        let category = (i % 17 != 0).then(|| CATEGORIES[i % CATEGORIES.len()]);
        if i % 3 != 0 || !matches!(category, Some("cars" | "bikes")) {
            continue;
        }
        let entry = want
            .entry((CITIES[i % CITIES.len()].to_string(), format!("o{}", i % 7)))
            .or_default();
        for j in [2 * k, 2 * k + 1] {
            entry.0 += j as i64 * 3 + 1;
            entry.1 += 1;
        }
    }
    let mut want: Vec<Vec<String>> = want
        .into_iter()
        .map(|((city, owner), (total, n))| vec![city, owner, total.to_string(), n.to_string()])
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hit_is_read_past_ten_thousand_and_slices_split_over_workers() {
    let es = OpenSearch::shared();
    listings(es, "big", 23_456, 3);
    let dir = TempDir::new("es-big");
    let server = server_with_workers(&dir, "2").await;
    let client = server.client().await;
    create(
        &client,
        "big",
        es,
        "big",
        ", 'slices' '4', 'page_size' '2000'",
    )
    .await;
    let got = text_rows(
        &client,
        "SELECT count(*), count(DISTINCT _id), sum(price) FROM big",
    )
    .await;
    let want_sum: usize = (0..23_456).map(|i| (i * 37) % 1000).sum();
    assert_eq!(
        got,
        [vec![
            "23456".to_string(),
            "23456".to_string(),
            want_sum.to_string()
        ]]
    );
    let plan = explain(&client, "SELECT _id, price FROM big").await;
    assert!(
        plan.contains("tasks=") && plan.matches(r#""slice":{"id":"#).count() == 4,
        "{plan}"
    );
    // Filtered, every matching hit exactly once.
    let filtered = rows(&client, "SELECT _id FROM big WHERE category = 'cars'").await;
    let distinct: BTreeSet<_> = filtered.iter().map(|r| r[0].clone()).collect();
    let direct = es.request(
        "POST",
        "/big/_count",
        Some(r#"{"query":{"term":{"category":"cars"}}}"#),
    );
    assert_eq!(filtered.len(), direct["count"].as_u64().unwrap() as usize);
    assert_eq!(distinct.len(), filtered.len());
    // A GROUP BY of more buckets than one page is complete.
    let plan = explain(&client, "SELECT sku, count(*) FROM big GROUP BY sku").await;
    assert!(plan.contains(r#""composite""#), "{plan}");
    let groups = both_ways(
        &client,
        "SELECT count(*), count(DISTINCT sku), sum(n) FROM (SELECT sku, count(*) AS n FROM big GROUP BY sku) t",
    )
    .await;
    assert_eq!(
        groups,
        [vec![
            "23456".to_string(),
            "23456".to_string(),
            "23456".to_string()
        ]]
    );
    // No point in time is left open.
    assert_eq!(open_contexts(es, "big"), 0);
}

/// Searches the server ran on the primaries of `index` (query phases: one
/// per search of a one-shard index).
fn searches_run(es: &impl SearchServer, index: &str) -> f64 {
    let stats = es.request("GET", &format!("/{index}/_stats/search"), None);
    stats["_all"]["primaries"]["search"]["query_total"]
        .as_u64()
        .expect("query_total") as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn source_metrics_count_each_page_as_the_server_runs_it() {
    let es = OpenSearch::shared();
    listings(es, "paged", 2_500, 1);
    let dir = TempDir::new("es-paged");
    let (server, http_port) = Server::start_single_with_http(&dir, &[]).await;
    let client = server.client().await;
    // One slice (no planning count), 1,000 hits a page.
    create(
        &client,
        "paged",
        es,
        "paged",
        ", 'slices' '1', 'page_size' '1000'",
    )
    .await;
    let requests = |text: &str, operation: &str| {
        metric_sum(
            text,
            "vivace_source_requests_total",
            &[("connector", "elasticsearch"), ("operation", operation)],
        )
    };
    for (sql, rows_back, least_pages) in [
        // Hits: pages of 1,000, 1,000 and 500 through one point in time.
        ("SELECT _id, price FROM paged", 2_500, 3.0),
        // A GROUP BY pushed as a composite aggregation, 1,000 buckets a page.
        ("SELECT sku, count(*) FROM paged GROUP BY sku", 2_500, 3.0),
    ] {
        let server_before = searches_run(es, "paged");
        let before = metrics_text(http_port).await;
        let got = rows(&client, sql).await;
        let after = metrics_text(http_port).await;
        let server_after = searches_run(es, "paged");
        assert_eq!(got.len(), rows_back, "{sql}");
        let counted = requests(&after, "search") - requests(&before, "search");
        assert_eq!(
            counted,
            server_after - server_before,
            "{sql}: searches counted vs run by the server"
        );
        assert!(counted >= least_pages, "{sql}: {counted} searches");
        let rows_counted = metric_sum(&after, "vivace_source_rows_total", &[])
            - metric_sum(&before, "vivace_source_rows_total", &[]);
        assert_eq!(rows_counted, rows_back as f64, "{sql}");
    }
    // The hits were read through one point in time, opened and closed.
    let metrics = metrics_text(http_port).await;
    assert_eq!(requests(&metrics, "point_in_time"), 2.0, "{metrics}");
    assert_eq!(open_contexts(es, "paged"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn patterns_merge_mappings_and_disagreements_are_errors() {
    let es = OpenSearch::shared();
    es.create_index(
        "logs-a",
        1,
        &json!({"properties": {"msg": {"type": "text"}, "code": {"type": "integer"}}}),
    );
    es.create_index(
        "logs-b",
        1,
        &json!({"properties": {"msg": {"type": "text"}, "host": {"type": "keyword"}}}),
    );
    es.bulk(
        "logs-a",
        &[("1".into(), json!({"msg": "disk full", "code": 507}))],
    );
    es.bulk(
        "logs-b",
        &[("2".into(), json!({"msg": "timeout", "host": "h1"}))],
    );
    es.create_index(
        "clash-a",
        1,
        &json!({"properties": {"v": {"type": "long"}}}),
    );
    es.create_index(
        "clash-b",
        1,
        &json!({"properties": {"v": {"type": "keyword"}}}),
    );
    let dir = TempDir::new("es-patterns");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    create(&client, "logs", es, "logs-*", "").await;
    let got = text_rows(
        &client,
        "SELECT _id, msg, code, host FROM logs ORDER BY _id",
    )
    .await;
    assert_eq!(
        got,
        common::table(&[
            &["1", "disk full", "507", "NULL"],
            &["2", "timeout", "NULL", "h1"]
        ])
    );
    // psql's \dt and \d list the table and its columns from the catalog.
    let (listed, err, ok) = server.psql(&["-c", "\\dt", "-c", "\\d logs"]);
    assert!(ok, "{err}");
    assert!(listed.contains("logs"), "{listed}");
    for column in ["_id", "code", "host", "msg", "_score"] {
        assert!(
            listed.contains(column),
            "\\d logs lacks {column}:\n{listed}"
        );
    }
    let (code, message) = sql_error(
        &client,
        &format!("CREATE EXTERNAL TABLE clash STORED AS OPENSEARCH LOCATION '{}' OPTIONS ('index' 'clash-*')", es.url()),
    )
    .await;
    assert_eq!(code, "42P16", "{message}");
    assert!(
        message.contains("\"v\"") && message.contains("clash-a") && message.contains("clash-b"),
        "{message}"
    );
    // A declared column list: a subset, with an array.
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE logs_b (host TEXT[], msg TEXT) STORED AS OPENSEARCH LOCATION '{}' OPTIONS ('index' 'logs-b')",
            es.url()
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT host, msg FROM logs_b").await,
        [vec!["{h1}".to_string(), "timeout".to_string()]]
    );
    // CREATE EXTERNAL SCHEMA lists every index.
    client
        .simple_query(&format!(
            "CREATE EXTERNAL SCHEMA es FROM OPENSEARCH LOCATION '{}'",
            es.url()
        ))
        .await
        .unwrap();
    let tables = text_rows(
        &client,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'es' ORDER BY 1",
    )
    .await;
    assert!(
        tables.contains(&vec!["logs-a".to_string()])
            && tables.contains(&vec!["logs-b".to_string()]),
        "{tables:?}"
    );
    assert_eq!(
        text_rows(&client, "SELECT code FROM es.\"logs-a\"").await,
        [vec!["507".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_their_cause_and_leave_nothing_behind() {
    let es = OpenSearch::shared();
    es.create_index("arr", 1, &json!({"properties": {"k": {"type": "keyword"}}}));
    es.bulk(
        "arr",
        &[
            ("one".into(), json!({"k": "a"})),
            ("two".into(), json!({"k": ["a", "b"]})),
        ],
    );
    let dir = TempDir::new("es-errors");
    let server = server_with_workers(&dir, "1").await;
    let client = server.client().await;
    let create_sql = |location: &str, options: &str| {
        format!(
            "CREATE EXTERNAL TABLE bad STORED AS ELASTICSEARCH LOCATION '{location}' OPTIONS ({options})"
        )
    };
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    for (sql, want_code, needle) in [
        (create_sql(&dead, "'index' 'x'"), "08001", "cannot reach"),
        (
            create_sql(&es.url(), "'index' 'no-such-index'"),
            "42P01",
            "no such index",
        ),
        (
            create_sql(&es.url(), "'index' 'x', 'password' 'p'"),
            "22023",
            "password_env",
        ),
        (
            create_sql(&es.url(), "'index' 'x', 'colour' 'red'"),
            "22023",
            "valid options",
        ),
        (
            create_sql(
                &es.url(),
                "'index' 'x', 'user' 'u', 'password_env' 'VIVACE_UNSET_VAR'",
            ),
            "22023",
            "VIVACE_UNSET_VAR",
        ),
        (create_sql("ftp://h", "'index' 'x'"), "22023", "http://"),
    ] {
        let (code, message) = sql_error(&client, &sql).await;
        assert_eq!(code, want_code, "{sql}: {message}");
        assert!(message.contains(needle), "{sql}: {message}");
    }
    assert!(
        text_rows(
            &client,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'bad'"
        )
        .await[0][0]
            == "0"
    );
    create(&client, "arr", es, "arr", "").await;
    // An API key is read from the named variable; neither it nor its value is
    // shown back.
    create(
        &client,
        "keyed",
        es,
        "arr",
        ", 'api_key_env' 'VIVACE_TEST_ES_KEY'",
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT k FROM keyed WHERE _id = 'one'").await,
        [vec!["a".to_string()]]
    );
    let shown = text_rows(&client, "SHOW CREATE TABLE keyed")
        .await
        .concat()
        .join(" ");
    assert!(
        shown.contains("VIVACE_TEST_ES_KEY") && !shown.contains("k3y"),
        "{shown}"
    );
    let (code, message) = sql_error(&client, "SELECT k FROM arr").await;
    assert_eq!(code, "22P04", "{message}");
    assert!(
        message.contains("\"k\"") && message.contains("\"two\""),
        "{message}"
    );
    let (code, message) = sql_error(&client, "SELECT k FROM arr WHERE query_string('k:(')").await;
    assert_eq!(code, "HV000", "{message}");
    assert!(message.contains("rejected"), "{message}");
    let (code, message) = sql_error(
        &client,
        "SELECT * FROM (VALUES ('a')) v(x) WHERE match(x, 'a')",
    )
    .await;
    assert_eq!(code, "0A000", "{message}");
    // The index going away fails only the queries that touch it.
    es.request("DELETE", "/arr", None);
    let (code, message) = sql_error(&client, "SELECT count(*) FROM arr").await;
    assert_eq!(code, "42P01", "{message}");
    assert_eq!(
        text_rows(&client, "SELECT 1").await,
        [vec!["1".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_and_tls_against_a_secured_server() {
    use common::opensearch::{SECURE_PASSWORD, SECURE_USER};
    let es = OpenSearch::secured();
    es.create_index(
        "guarded",
        1,
        &json!({"properties": {"k": {"type": "keyword"}}}),
    );
    es.bulk("guarded", &[("1".into(), json!({"k": "v"}))]);
    let dir = TempDir::new("es-secured");
    let server = Server::start_with(
        &dir,
        &["--workers", "2"],
        &[
            ("ES_PASSWORD", SECURE_PASSWORD),
            ("ES_WRONG", "not-the-password"),
        ],
    )
    .await;
    let client = server.client().await;
    let ca = es.ca_file();
    let sql = |name: &str, extra: &str| {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS OPENSEARCH LOCATION '{}' \
             OPTIONS ('index' 'guarded', 'user' '{SECURE_USER}'{extra})",
            es.url()
        )
    };
    // The right password and the CA that signed the server's certificate.
    client
        .simple_query(&sql(
            "guarded",
            &format!(
                ", 'password_env' 'ES_PASSWORD', 'ca_file' '{}'",
                ca.display()
            ),
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT _id, k FROM guarded").await,
        [vec!["1".to_string(), "v".to_string()]]
    );
    // A user who may read this index and nothing else: `GET /` is refused
    // (it needs cluster:monitor/main), the flavour comes from authinfo.
    es.request(
        "PUT",
        "/_plugins/_security/api/roles/guarded_reader",
        Some(r#"{"cluster_permissions":[],"index_permissions":[{"index_patterns":["guarded"],"allowed_actions":["read","indices:admin/mappings/get"]}]}"#),
    );
    es.request(
        "PUT",
        "/_plugins/_security/api/internalusers/guarded_reader",
        Some(&format!(
            r#"{{"password":"{SECURE_PASSWORD}","opendistro_security_roles":["guarded_reader"]}}"#
        )),
    );
    let root_status = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca)
        .args(["-u", &format!("guarded_reader:{SECURE_PASSWORD}")])
        .arg(format!("{}/", es.url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&root_status.stdout), "403");
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE guarded_only STORED AS OPENSEARCH LOCATION '{}' \
             OPTIONS ('index' 'guarded', 'user' 'guarded_reader', 'password_env' 'ES_PASSWORD', 'ca_file' '{}')",
            es.url(),
            ca.display()
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT _id, k FROM guarded_only").await,
        [vec!["1".to_string(), "v".to_string()]]
    );
    // On two workers too: each reads the password from its own environment.
    client
        .simple_query(&format!(
            "{} ",
            sql(
                "sliced",
                &format!(
                    ", 'password_env' 'ES_PASSWORD', 'ca_file' '{}', 'slices' '2'",
                    ca.display()
                )
            )
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM (SELECT _id FROM sliced) t").await,
        [vec!["1".to_string()]]
    );
    // A wrong password: 28P01, nothing stored.
    let (code, message) = sql_error(
        &client,
        &sql(
            "refused",
            &format!(", 'password_env' 'ES_WRONG', 'ca_file' '{}'", ca.display()),
        ),
    )
    .await;
    assert_eq!(code, "28P01", "{message}");
    // Without the CA the certificate is not trusted: 08001 naming it.
    let (code, message) =
        sql_error(&client, &sql("untrusted", ", 'password_env' 'ES_PASSWORD'")).await;
    assert_eq!(code, "08001", "{message}");
    assert!(message.contains("certificate"), "{message}");
    // Unless verification is turned off, on request.
    client
        .simple_query(&sql(
            "unverified",
            ", 'password_env' 'ES_PASSWORD', 'verify' 'off'",
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT k FROM unverified").await,
        [vec!["v".to_string()]]
    );
    let tables = text_rows(
        &client,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .await;
    assert_eq!(
        tables,
        common::table(&[
            &["guarded"],
            &["guarded_only"],
            &["sliced"],
            &["unverified"]
        ])
    );
    // The password is nowhere: not in SHOW CREATE TABLE, errors or the log.
    let shown = text_rows(&client, "SHOW CREATE TABLE guarded")
        .await
        .concat()
        .join(" ");
    assert!(
        shown.contains("ES_PASSWORD") && !shown.contains(SECURE_PASSWORD),
        "{shown}"
    );
    assert!(!message.contains(SECURE_PASSWORD));
    assert!(!server.log_text().contains(SECURE_PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_query_closes_its_point_in_time() {
    let es = OpenSearch::shared();
    listings(es, "slow", 20_000, 1);
    let dir = TempDir::new("es-cancel");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    create(
        &client,
        "slow",
        es,
        "slow",
        ", 'page_size' '1', 'slices' '1'",
    )
    .await;
    client
        .simple_query("SET statement_timeout = 1500")
        .await
        .unwrap();
    let (code, _) = sql_error(&client, "SELECT count(DISTINCT sku) FROM slow").await;
    assert_eq!(code, "57014");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while open_contexts(es, "slow") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the point in time is still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The server saw the read start: it is the cancel that closed it.
    let stats = es.request("GET", "/slow/_stats/search", None);
    assert!(
        stats["_all"]["total"]["search"]["point_in_time_total"]
            .as_u64()
            .unwrap_or(1)
            >= 1,
        "{stats}"
    );
}

/// Basic authentication as `elastic`, the password read from `ES_PASSWORD`
/// ([`es_server`] sets it).
const ES_LOGIN: &str = ", 'user' 'elastic', 'password_env' 'ES_PASSWORD'";

/// A Vivace with `workers` embedded workers and the Elasticsearch node's
/// password in `ES_PASSWORD`.
async fn es_server(dir: &TempDir, workers: &str) -> Server {
    Server::start_with(
        dir,
        &["--workers", workers],
        &[("ES_PASSWORD", common::elasticsearch::PASSWORD)],
    )
    .await
}

/// [`listings`] on the Elasticsearch node, which has no `scaled_float`
/// (mapper-extras is not on Maven Central): `rating` is a `half_float`.
fn es_listings(es: &Elasticsearch, index: &str, n: usize, shards: u32) {
    listings_rated(es, index, n, shards, json!({"type": "half_float"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_reads_every_hit_through_its_point_in_time_api() {
    let es = Elasticsearch::shared();
    let n = 12_345;
    es_listings(es, "es_big", n, 3);
    let dir = TempDir::new("es9-big");
    let server = es_server(&dir, "2").await;
    let client = server.client().await;
    let options = format!("{ES_LOGIN}, 'slices' '3', 'page_size' '2000'");
    create(&client, "big", es, "es_big", &options).await;
    let plan = explain(&client, "SELECT _id, price FROM big").await;
    assert!(
        plan.contains("tasks=") && plan.matches(r#""slice":{"id":"#).count() == 3,
        "{plan}"
    );
    // Every hit once, as the server counts and sums them itself.
    let opened = es.route_requests("/{index}/_pit");
    let closed = es.route_requests("/_pit");
    let got = text_rows(
        &client,
        "SELECT count(*), count(DISTINCT _id), sum(price) FROM big",
    )
    .await;
    let count = es.request("GET", "/es_big/_count", None)["count"].clone();
    let sum = es.request(
        "POST",
        "/es_big/_search",
        Some(r#"{"size":0,"aggs":{"s":{"sum":{"field":"price"}}}}"#),
    )["aggregations"]["s"]["value"]
        .as_f64()
        .unwrap() as i64;
    assert_eq!(count, n);
    assert_eq!(got, [vec![n.to_string(), n.to_string(), sum.to_string()]]);
    // Through Elasticsearch's own point-in-time API (OpenSearch's paths would
    // have failed here): one opened and closed per slice.
    assert!(
        es.route_requests("/{index}/_pit") >= opened + 3,
        "no POST /<index>/_pit per slice"
    );
    assert!(
        es.route_requests("/_pit") >= closed + 3,
        "no DELETE /_pit per slice"
    );
    assert_eq!(open_contexts(es, "es_big"), 0);
    // A pushed count past 10,000 hits is exact too.
    let sql = "SELECT count(*) FROM big";
    let plan = explain(&client, sql).await;
    assert!(!plan.contains("AggregateExec"), "not pushed:\n{plan}");
    assert_eq!(text_rows(&client, sql).await, [vec![n.to_string()]]);
    // Pushdown off reads the same rows; a pushed filter the server's ids.
    let all = both_ways(&client, "SELECT _id, price, sku FROM big").await;
    assert_eq!(all.len(), n);
    let filtered = both_ways(
        &client,
        "SELECT _id, city FROM big WHERE category = 'cars' AND price < 300",
    )
    .await;
    let want = es.ids(
        "es_big",
        &json!({"bool": {"filter": [{"term": {"category": "cars"}}, {"range": {"price": {"lt": 300}}}]}}),
    );
    assert!(!want.is_empty());
    assert_eq!(ids(&filtered), want);
    assert_eq!(open_contexts(es, "es_big"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_groups_pushed_filters_as_a_composite_aggregation() {
    let es = Elasticsearch::shared();
    es_listings(es, "es_sales", 2000, 2);
    let dir = TempDir::new("es9-aggregates");
    let server = es_server(&dir, "1").await;
    let client = server.client().await;
    create(&client, "sales", es, "es_sales", ES_LOGIN).await;
    let sql = "SELECT city, count(*), sum(price), min(price), max(price) FROM sales \
               WHERE category IN ('cars','bikes') AND price < 500 GROUP BY city";
    let plan = explain(&client, sql).await;
    assert!(
        plan.contains(r#""composite""#) && !plan.contains("AggregateExec"),
        "not pushed:\n{plan}"
    );
    let got = both_ways(&client, sql).await;
    // The server's own answer to the same question.
    let direct = es.request(
        "POST",
        "/es_sales/_search",
        Some(
            &json!({
                "size": 0,
                "query": {"bool": {"filter": [
                    {"terms": {"category": ["cars", "bikes"]}}, {"range": {"price": {"lt": 500}}}]}},
                "aggs": {"city": {"terms": {"field": "city", "size": 100}, "aggs": {
                    "sum": {"sum": {"field": "price"}},
                    "min": {"min": {"field": "price"}},
                    "max": {"max": {"field": "price"}}}}}
            })
            .to_string(),
        ),
    );
    let mut want: Vec<Vec<String>> = direct["aggregations"]["city"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let mut row = vec![
                b["key"].as_str().unwrap().to_string(),
                b["doc_count"].to_string(),
            ];
            for metric in ["sum", "min", "max"] {
                row.push((b[metric]["value"].as_f64().unwrap() as i64).to_string());
            }
            row
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), CITIES.len());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_basic_authentication() {
    use common::elasticsearch::PASSWORD;
    let es = Elasticsearch::shared();
    es.create_index(
        "es_guarded",
        1,
        &json!({"properties": {"k": {"type": "keyword"}}}),
    );
    es.bulk("es_guarded", &[("1".into(), json!({"k": "v"}))]);
    let dir = TempDir::new("es9-basic");
    let server = Server::start_with(
        &dir,
        &["--workers", "2"],
        &[("ES_PASSWORD", PASSWORD), ("ES_WRONG", "not-the-password")],
    )
    .await;
    let client = server.client().await;
    let sql = |name: &str, extra: &str| {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS ELASTICSEARCH LOCATION '{}' \
             OPTIONS ('index' 'es_guarded'{extra})",
            es.url()
        )
    };
    client
        .simple_query(&sql("guarded", ES_LOGIN))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT _id, k FROM guarded").await,
        [vec!["1".to_string(), "v".to_string()]]
    );
    // On two workers too: each reads the password from its own environment.
    client
        .simple_query(&sql("sliced", &format!("{ES_LOGIN}, 'slices' '2'")))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM (SELECT _id FROM sliced) t").await,
        [vec!["1".to_string()]]
    );
    // A wrong password, or none: 28P01, nothing stored.
    let (code, wrong) = sql_error(
        &client,
        &sql("refused", ", 'user' 'elastic', 'password_env' 'ES_WRONG'"),
    )
    .await;
    assert_eq!(code, "28P01", "{wrong}");
    let (code, message) = sql_error(&client, &sql("anonymous", "")).await;
    assert_eq!(code, "28P01", "{message}");
    assert_eq!(
        text_rows(
            &client,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        )
        .await,
        common::table(&[&["guarded"], &["sliced"]])
    );
    // The password is nowhere: not in SHOW CREATE TABLE, errors or the log.
    let shown = text_rows(&client, "SHOW CREATE TABLE guarded")
        .await
        .concat()
        .join(" ");
    assert!(
        shown.contains("ES_PASSWORD") && !shown.contains(PASSWORD),
        "{shown}"
    );
    assert!(!wrong.contains("not-the-password") && !wrong.contains(PASSWORD));
    assert!(!server.log_text().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_api_keys() {
    let es = Elasticsearch::shared();
    es.create_index(
        "es_keyed",
        2,
        &json!({"properties": {"k": {"type": "keyword"}}}),
    );
    es.bulk(
        "es_keyed",
        &[
            ("1".into(), json!({"k": "a"})),
            ("2".into(), json!({"k": "b"})),
        ],
    );
    let key = es.api_key("vivace-test", json!({}));
    // A key that may read this index and nothing else: not even `GET /`,
    // which needs the `monitor` cluster privilege.
    let reader = es.api_key(
        "vivace-reader",
        json!({"reader": {"indices": [
            {"names": ["es_keyed"], "privileges": ["read", "view_index_metadata"]}]}}),
    );
    // A well-formed key the server never issued ("id:secret" in base64).
    let bogus = "Ym9ndXMtaWQ6Ym9ndXMtc2VjcmV0";
    let dir = TempDir::new("es9-keys");
    let server = Server::start_with(
        &dir,
        &["--workers", "2"],
        &[
            ("ES_API_KEY", key.as_str()),
            ("ES_READER_KEY", reader.as_str()),
            ("ES_BOGUS_KEY", bogus),
        ],
    )
    .await;
    let client = server.client().await;
    create(
        &client,
        "keyed",
        es,
        "es_keyed",
        ", 'api_key_env' 'ES_API_KEY', 'slices' '2'",
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT _id, k FROM keyed ORDER BY _id").await,
        common::table(&[&["1", "a"], &["2", "b"]])
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT k, count(*) FROM keyed GROUP BY k ORDER BY k"
        )
        .await,
        common::table(&[&["a", "1"], &["b", "1"]])
    );
    // The read-only key reads through a point in time and aggregates.
    create(
        &client,
        "read_only",
        es,
        "es_keyed",
        ", 'api_key_env' 'ES_READER_KEY', 'slices' '2'",
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT _id, k FROM read_only ORDER BY _id").await,
        common::table(&[&["1", "a"], &["2", "b"]])
    );
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM read_only WHERE k = 'b'").await,
        [vec!["1".to_string()]]
    );
    assert_eq!(open_contexts(es, "es_keyed"), 0);
    let (code, refused) = sql_error(
        &client,
        &format!(
            "CREATE EXTERNAL TABLE bogus STORED AS ELASTICSEARCH LOCATION '{}' \
             OPTIONS ('index' 'es_keyed', 'api_key_env' 'ES_BOGUS_KEY')",
            es.url()
        ),
    )
    .await;
    assert_eq!(code, "28P01", "{refused}");
    assert_eq!(
        text_rows(
            &client,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        )
        .await,
        common::table(&[&["keyed"], &["read_only"]])
    );
    // The keys are nowhere: not in SHOW CREATE TABLE, errors or the log.
    let shown = text_rows(&client, "SHOW CREATE TABLE keyed")
        .await
        .concat()
        .join(" ");
    assert!(shown.contains("ES_API_KEY"), "{shown}");
    let log = server.log_text();
    for secret in [key.as_str(), reader.as_str(), bogus] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!refused.contains(secret), "{refused}");
        assert!(!log.contains(secret), "an API key in the log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_cancelled_query_closes_its_point_in_time() {
    let es = Elasticsearch::shared();
    es_listings(es, "es_slow", 5_000, 1);
    let dir = TempDir::new("es9-cancel");
    let server = es_server(&dir, "1").await;
    let client = server.client().await;
    let options = format!("{ES_LOGIN}, 'page_size' '1', 'slices' '1'");
    create(&client, "slow", es, "es_slow", &options).await;
    client
        .simple_query("SET statement_timeout = 1500")
        .await
        .unwrap();
    let opened = es.route_requests("/{index}/_pit");
    let (code, _) = sql_error(&client, "SELECT count(DISTINCT sku) FROM slow").await;
    assert_eq!(code, "57014");
    // The read had opened its point in time: the cancel is what closes it.
    assert!(es.route_requests("/{index}/_pit") > opened);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while open_contexts(es, "es_slow") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the point in time is still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// [`every_mapped_type_reads_as_its_column`] on Elasticsearch, for the types
/// this node maps: `flattened` where OpenSearch has `flat_object`; not
/// `constant_keyword`, `wildcard`, `unsigned_long` (x-pack modules) nor
/// `match_only_text`, `scaled_float` (mapper-extras), none of them on Maven
/// Central.
#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_mapped_types_read_as_their_columns() {
    let es = Elasticsearch::shared();
    es.create_index(
        "es_typed",
        1,
        &json!({
            "properties": {
                "k": {"type": "keyword"},
                "t": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "l": {"type": "long"}, "i": {"type": "integer"}, "s": {"type": "short"}, "b": {"type": "byte"},
                "d": {"type": "double"}, "f": {"type": "float"}, "hf": {"type": "half_float"},
                "flag": {"type": "boolean"},
                "day": {"type": "date", "format": "dd.MM.yyyy"},
                "at": {"type": "date_nanos"},
                "addr": {"type": "ip"}, "bin": {"type": "binary"},
                "who": {"properties": {"first": {"type": "keyword"}, "age": {"type": "integer"}}},
                "items": {"type": "nested", "properties": {"sku": {"type": "keyword"}, "qty": {"type": "integer"}}},
                "loc": {"type": "geo_point"},
                "shape": {"type": "flattened"}
            }
        }),
    );
    es.bulk(
        "es_typed",
        &[
            (
                "a".into(),
                json!({"k": "key", "t": "Some Text", "l": 9007199254740993i64, "i": -5, "s": 300, "b": -7,
                       "d": 1.5, "f": 2.25, "hf": 0.5, "flag": true,
                       "day": "31.12.2023", "at": "2024-01-02T03:04:05.123456789Z",
                       "addr": "192.168.0.1", "bin": "aGVsbG8=",
                       "who": {"first": "Ada", "age": 36},
                       "items": [{"sku": "x1", "qty": 2}, {"sku": "x2", "qty": 3}],
                       "loc": {"lat": 59.9, "lon": 10.75}, "shape": {"a": "b"}}),
            ),
            ("b".into(), json!({"k": "other", "loc": "60.39,5.32", "items": {"sku": "y", "qty": 1}})),
            ("c".into(), json!({"loc": [5.32, 60.39]})),
        ],
    );
    let dir = TempDir::new("es9-types");
    let server = es_server(&dir, "1").await;
    let client = server.client().await;
    create(&client, "typed", es, "es_typed", ES_LOGIN).await;
    let columns = text_rows(
        &client,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'typed' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(
        columns.concat(),
        [
            "_id", "addr", "at", "b", "bin", "d", "day", "f", "flag", "hf", "i", "items", "k", "l",
            "loc", "s", "shape", "t", "t.raw", "who", "_score"
        ]
    );
    let got = text_rows(
        &client,
        "SELECT _id, k, t, \"t.raw\", l, i, s, b, d, f, hf, flag, day, at, addr, bin, \
         who['first'], who['age'], items[1]['sku'], items[2]['qty'], loc['lat'], loc['lon'], shape \
         FROM typed ORDER BY _id",
    )
    .await;
    assert_eq!(
        got[0],
        [
            "a",
            "key",
            "Some Text",
            "Some Text",
            "9007199254740993",
            "-5",
            "300",
            "-7",
            "1.5",
            "2.25",
            "0.5",
            "t",
            "2023-12-31 00:00:00+00",
            "2024-01-02 03:04:05.123457+00",
            "192.168.0.1",
            "\\x68656c6c6f",
            "Ada",
            "36",
            "x1",
            "3",
            "59.9",
            "10.75",
            "{\"a\":\"b\"}",
        ]
    );
    assert_eq!(got[1][1], "other");
    assert_eq!(
        got[1][18], "y",
        "a nested field holding one object is a list of one"
    );
    assert_eq!(
        (got[1][20].as_str(), got[1][21].as_str()),
        ("60.39", "5.32")
    );
    assert_eq!(
        (got[2][20].as_str(), got[2][21].as_str()),
        ("60.39", "5.32"),
        "GeoJSON order"
    );
    assert_eq!(got[2][1], "NULL");
}
