//! Nested values end to end, from a Parquet file: maps and structs reach
//! clients as `json`, lists of scalars as PostgreSQL arrays and lists of
//! anything else as `json`, in text (psql, simple protocol) and binary
//! (tokio-postgres' extended protocol) format; their elements are reachable in
//! SQL (`attrs['k']`, `addr.zip`, `tags[1]`).

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Server, TempDir, table, text_rows};
use datafusion::arrow::array::{
    ArrayRef, BinaryArray, Decimal128Array, FixedSizeListArray, RecordBatch, StructArray,
    TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema, TimeUnit};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use tokio_postgres::types::{FromSql, Type};

/// The rows of the nested columns a JSON reader can build.
const ROWS: &str = r#"
{"id":1,"attrs":{"a":1,"b":null},"addr":{"zip":"75001","lines":["1 rue","b\"q\\"]},"tags":[1,2,null],"pts":[{"x":1,"y":1.5}],"amounts":["123456789012345678901234567890123456.78",null],"seen":["2024-01-02T03:04:05",null]}
{"id":2,"attrs":{},"addr":null,"tags":[],"pts":null,"amounts":[],"seen":[]}
{"id":3,"attrs":null,"addr":{"zip":null,"lines":[]},"tags":null,"pts":[],"amounts":null,"seen":null}
{"id":4,"attrs":{"k":7},"addr":{"zip":"10001","lines":null},"tags":[4],"pts":[{"x":null,"y":2.0}],"amounts":["-0.05"],"seen":["2024-01-02T03:04:05.5"]}
"#;

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(t, true)))
}

/// `t.parquet` in `dir`: the columns of [`ROWS`], plus `vec` (a fixed-size
/// list of floats, as Cassandra's `vector<float, 3>`) and `meta` (a struct of
/// a timestamp with a zone, bytes, a `u64` and a wide decimal).
fn write_nested_parquet(dir: &Path) -> PathBuf {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Int32, true),
            ]
            .into(),
        ),
        false,
    );
    let json_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("attrs", DataType::Map(Arc::new(entries), false), true),
        Field::new(
            "addr",
            DataType::Struct(
                vec![
                    Field::new("zip", DataType::Utf8, true),
                    Field::new("lines", list_of(DataType::Utf8), true),
                ]
                .into(),
            ),
            true,
        ),
        Field::new("tags", list_of(DataType::Int32), true),
        Field::new(
            "pts",
            list_of(DataType::Struct(
                vec![
                    Field::new("x", DataType::Int64, true),
                    Field::new("y", DataType::Float64, true),
                ]
                .into(),
            )),
            true,
        ),
        Field::new("amounts", list_of(DataType::Decimal128(38, 2)), true),
        Field::new(
            "seen",
            list_of(DataType::Timestamp(TimeUnit::Microsecond, None)),
            true,
        ),
    ]));
    let mut reader = ReaderBuilder::new(json_schema)
        .build(Cursor::new(ROWS.trim()))
        .unwrap();
    let from_json = reader.next().unwrap().unwrap();

    let vec: ArrayRef = Arc::new(
        FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            [
                Some(vec![Some(1.5), Some(2.0), Some(-0.25)]),
                Some(vec![Some(0.1), Some(0.0), Some(1e20)]),
                None,
                Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
            ],
            3,
        ),
    );
    let at = 1_704_164_645_120_000; // 2024-01-02 03:04:05.12 UTC
    let meta_fields: Vec<(Arc<Field>, ArrayRef)> = vec![
        (
            Arc::new(Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            )),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(at), Some(at), None, Some(at)])
                    .with_timezone("UTC"),
            ),
        ),
        (
            Arc::new(Field::new("raw", DataType::Binary, true)),
            Arc::new(BinaryArray::from(vec![
                Some(&b"\x01\xab"[..]),
                None,
                Some(&b""[..]),
                Some(&b"\xff"[..]),
            ])),
        ),
        (
            Arc::new(Field::new("big", DataType::UInt64, true)),
            Arc::new(UInt64Array::from(vec![
                Some(u64::MAX),
                Some(0),
                None,
                Some(1),
            ])),
        ),
        (
            Arc::new(Field::new("price", DataType::Decimal128(38, 10), true)),
            Arc::new(
                Decimal128Array::from(vec![
                    Some(12345678901234567890123456789012345678),
                    None,
                    Some(0),
                    Some(-15_000_000_000),
                ])
                .with_precision_and_scale(38, 10)
                .unwrap(),
            ),
        ),
    ];
    let (fields, arrays): (Vec<_>, Vec<_>) = meta_fields.into_iter().unzip();
    let meta: ArrayRef = Arc::new(
        StructArray::try_new(
            fields.into(),
            arrays,
            Some(NullBuffer::from(vec![true, false, true, true])),
        )
        .unwrap(),
    );

    let mut fields: Vec<Field> = from_json
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("vec", vec.data_type().clone(), true));
    fields.push(Field::new("meta", meta.data_type().clone(), true));
    let mut columns = from_json.columns().to_vec();
    columns.extend([vec, meta]);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();

    let path = dir.join("t.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

async fn start_with_table(name: &str) -> (TempDir, Server) {
    let dir = TempDir::new(name);
    let path = write_nested_parquet(dir.path());
    let server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
            path.display()
        ))
        .await
        .unwrap();
    (dir, server)
}

const ALL: &str = "SELECT id, attrs, addr, tags, pts, vec, amounts, seen, meta FROM t ORDER BY id";

/// What PostgreSQL's text of each row of [`ALL`] is (`NULL` for NULL).
fn expected_text() -> Vec<Vec<String>> {
    table(&[
        &[
            "1",
            r#"{"a":1,"b":null}"#,
            r#"{"zip":"75001","lines":["1 rue","b\"q\\"]}"#,
            "{1,2,NULL}",
            r#"[{"x":1,"y":1.5}]"#,
            "{1.5,2,-0.25}",
            "{123456789012345678901234567890123456.78,NULL}",
            r#"{"2024-01-02 03:04:05",NULL}"#,
            r#"{"at":"2024-01-02T03:04:05.12+00:00","raw":"\\x01ab","big":18446744073709551615,"price":1234567890123456789012345678.9012345678}"#,
        ],
        &[
            "2",
            "{}",
            "NULL",
            "{}",
            "NULL",
            "{0.1,0,1e+20}",
            "{}",
            "{}",
            "NULL",
        ],
        &[
            "3",
            "NULL",
            r#"{"zip":null,"lines":[]}"#,
            "NULL",
            "[]",
            "NULL",
            "NULL",
            "NULL",
            r#"{"at":null,"raw":"\\x","big":null,"price":0.0000000000}"#,
        ],
        &[
            "4",
            r#"{"k":7}"#,
            r#"{"zip":"10001","lines":null}"#,
            "{4}",
            r#"[{"x":null,"y":2}]"#,
            "{1,2,3}",
            "{-0.05}",
            r#"{"2024-01-02 03:04:05.5"}"#,
            r#"{"at":"2024-01-02T03:04:05.12+00:00","raw":"\\xff","big":1,"price":-1.5000000000}"#,
        ],
    ])
}

#[tokio::test]
async fn nested_columns_reach_text_clients_as_postgres_prints_them() {
    let (_dir, server) = start_with_table("nested-text").await;
    let client = server.client().await;
    assert_eq!(text_rows(&client, ALL).await, expected_text());

    // psql prints the same, unaligned.
    let (out, err, ok) = server.psql(&["-A", "-t", "-P", "null=NULL", "-c", ALL]);
    assert!(ok, "{err}");
    let want: Vec<String> = expected_text().into_iter().map(|r| r.join("|")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);

    // Values DataFusion builds go the same way as those read from files.
    assert_eq!(
        text_rows(
            &client,
            "SELECT named_struct('a', 1, 'b', make_array(map(['x'], [1.5]))), \
             make_array(make_array(1, 2), make_array(3))"
        )
        .await,
        table(&[&[r#"{"a":1,"b":[{"x":1.5}]}"#, "[[1,2],[3]]"]])
    );
}

/// A value's bytes as the server sent them, whatever its type.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The text of a binary `numeric`.
fn numeric_text(b: &[u8]) -> String {
    let (n, weight, sign, scale) = (
        be_i16(b, 0) as i32,
        be_i16(b, 2) as i32,
        be_i16(b, 4) as u16,
        be_i16(b, 6) as usize,
    );
    let digit = |k: i32| {
        if (0..n).contains(&k) {
            be_i16(b, 8 + 2 * k as usize)
        } else {
            0
        }
    };
    let mut int = String::new();
    for p in (0..=weight.max(0)).rev() {
        let g = digit(weight - p);
        if int.is_empty() {
            int = if weight >= 0 {
                g.to_string()
            } else {
                "0".into()
            };
        } else {
            int.push_str(&format!("{g:04}"));
        }
    }
    let mut frac = String::new();
    let mut p = -1;
    while frac.len() < scale {
        frac.push_str(&format!("{:04}", digit(weight - p)));
        p -= 1;
    }
    frac.truncate(scale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// The elements of a one-dimensional binary array, each as `element` reads it.
fn array_elements<T>(b: &[u8], element: impl Fn(&[u8]) -> T) -> Vec<Option<T>> {
    let ndim = be_i32(b, 0);
    if ndim == 0 {
        return vec![];
    }
    assert_eq!((ndim, be_i32(b, 16)), (1, 1), "one dimension from 1");
    let mut at = 20;
    (0..be_i32(b, 12))
        .map(|_| {
            let len = be_i32(b, at);
            at += 4;
            if len < 0 {
                return None;
            }
            let value = element(&b[at..at + len as usize]);
            at += len as usize;
            Some(value)
        })
        .collect()
}

#[tokio::test]
async fn nested_columns_reach_binary_clients() {
    let (_dir, server) = start_with_table("nested-binary").await;
    let client = server.client().await;
    let statement = client.prepare(ALL).await.unwrap();
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(
        types,
        [
            Type::INT4,
            Type::JSON,
            Type::JSON,
            Type::INT4_ARRAY,
            Type::JSON,
            Type::FLOAT4_ARRAY,
            Type::NUMERIC_ARRAY,
            Type::TIMESTAMP_ARRAY,
            Type::JSON,
        ]
    );
    let rows = client.query(&statement, &[]).await.unwrap();
    let expected = expected_text();
    let text = |v: Option<String>| v.unwrap_or_else(|| "NULL".into());
    for (row, want) in rows.iter().zip(&expected) {
        // json's binary form is its text.
        for i in [1, 2, 4, 8] {
            let got = row
                .get::<_, Option<Raw>>(i)
                .map(|r| String::from_utf8(r.0).unwrap());
            assert_eq!(text(got), want[i], "column {i}");
        }
    }
    let tags: Vec<Option<Vec<Option<i32>>>> = rows.iter().map(|r| r.get(3)).collect();
    assert_eq!(
        tags,
        [
            Some(vec![Some(1), Some(2), None]),
            Some(vec![]),
            None,
            Some(vec![Some(4)])
        ]
    );
    let vec: Vec<Option<Vec<Option<f32>>>> = rows.iter().map(|r| r.get(5)).collect();
    assert_eq!(
        vec,
        [
            Some(vec![Some(1.5), Some(2.0), Some(-0.25)]),
            Some(vec![Some(0.1), Some(0.0), Some(1e20)]),
            None,
            Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
        ]
    );
    // numeric[] wider than 28 digits, exact.
    let amounts: Vec<Option<Vec<Option<String>>>> = rows
        .iter()
        .map(|r| {
            r.get::<_, Option<Raw>>(6)
                .map(|raw| array_elements(&raw.0, numeric_text))
        })
        .collect();
    assert_eq!(
        amounts,
        [
            Some(vec![
                Some("123456789012345678901234567890123456.78".to_string()),
                None
            ]),
            Some(vec![]),
            None,
            Some(vec![Some("-0.05".to_string())]),
        ]
    );
}

#[tokio::test]
async fn elements_are_reachable_in_sql() {
    let (_dir, server) = start_with_table("nested-access").await;
    let client = server.client().await;
    // Map values by key; a missing key or a NULL map gives NULL.
    assert_eq!(
        text_rows(
            &client,
            "SELECT attrs['a'], attrs['b'], attrs['k'], attrs['missing'] FROM t ORDER BY id"
        )
        .await,
        table(&[
            &["1", "NULL", "NULL", "NULL"],
            &["NULL", "NULL", "NULL", "NULL"],
            &["NULL", "NULL", "NULL", "NULL"],
            &["NULL", "NULL", "7", "NULL"],
        ])
    );
    // Struct fields, each way of writing one.
    assert_eq!(
        text_rows(
            &client,
            "SELECT addr['zip'], (addr).zip, addr.zip, t.addr.zip, meta.big FROM t ORDER BY id"
        )
        .await,
        table(&[
            &["75001", "75001", "75001", "75001", "18446744073709551615"],
            &["NULL", "NULL", "NULL", "NULL", "NULL"],
            &["NULL", "NULL", "NULL", "NULL", "NULL"],
            &["10001", "10001", "10001", "10001", "1"],
        ])
    );
    // List elements from 1, and access through several levels.
    assert_eq!(
        text_rows(
            &client,
            "SELECT tags[1], tags[3], vec[2], pts[1]['y'], (pts[1]).x, addr['lines'][2] \
             FROM t ORDER BY id"
        )
        .await,
        table(&[
            &["1", "NULL", "2", "1.5", "1", r#"b"q\"#],
            &["NULL", "NULL", "0", "NULL", "NULL", "NULL"],
            &["NULL", "NULL", "NULL", "NULL", "NULL", "NULL"],
            &["4", "NULL", "2", "2", "NULL", "NULL"],
        ])
    );
    assert_eq!(
        text_rows(&client, "SELECT id FROM t WHERE attrs['k'] = 7").await,
        table(&[&["4"]])
    );
}
