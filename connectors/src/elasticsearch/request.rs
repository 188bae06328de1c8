//! What one slice of a scan sends: the search body (query, `_source`
//! includes, dates as doc values, the slice) with the index and how each
//! column is read. Planned on the coordinator, shipped as JSON text to the
//! worker that runs it, and shown as such by `EXPLAIN`.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mapping::{Column, ID, SCORE, SOURCE};

/// One slice of a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// The index, alias or pattern.
    pub index: String,
    /// The search body, without the paging fields (`pit`, `sort`,
    /// `search_after`, `size`) added per page.
    pub body: Value,
    /// Most hits to read (a pushed `LIMIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Hits per page.
    pub page_size: u32,
    /// Mapping type of each column read, by column name.
    pub columns: BTreeMap<String, String>,
    /// For a pushed aggregation: where each output column comes from in
    /// the answer (the body then holds the aggregations, no hits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<Output>>,
}

/// Where one output column of a pushed aggregation is read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Output {
    /// A composite source's key (a group column).
    Key {
        /// The source's name.
        source: String,
    },
    /// The bucket's document count (`count(*)`).
    DocCount,
    /// A `value_count` aggregation (`count(column)`).
    Count {
        /// The aggregation's name.
        agg: String,
    },
    /// A single-value metric (`min`, `max`, `sum`), NULL when `count` is 0.
    Value {
        /// The metric's name.
        agg: String,
        /// The `value_count` of the same field.
        count: String,
    },
    /// `sum / count`, computed exactly by Vivace.
    Avg {
        /// The `sum` aggregation's name.
        sum: String,
        /// The `value_count` aggregation's name.
        count: String,
    },
}

/// The date types, read as doc values in one format whatever the field's own.
pub fn is_date(es_type: &str) -> bool {
    matches!(es_type, "date" | "date_nanos")
}

/// Format dates are read (and range bounds written) in.
pub const DATE_FORMAT: &str = "strict_date_optional_time_nanos";
/// Format of date fields declared `DATE`.
pub const DAY_FORMAT: &str = "strict_date";

impl SearchRequest {
    /// The requests of a scan of `columns` matching `query`, one per slice,
    /// reading hits in `sort` order when it has clauses (a top-n read).
    pub fn plan(
        index: &str,
        columns: &[Column],
        query: Value,
        sort: &[Value],
        limit: Option<u64>,
        page_size: u32,
        slices: u32,
    ) -> Vec<String> {
        let mut includes: Vec<&str> = Vec::new();
        let mut dates: Vec<Value> = Vec::new();
        for column in columns {
            match column.name.as_str() {
                ID | SCORE => {}
                SOURCE => includes.push("*"),
                _ if is_date(&column.es_type) => {
                    let format = if column.data_type == DataType::Date32 {
                        DAY_FORMAT
                    } else {
                        DATE_FORMAT
                    };
                    dates.push(json!({ "field": column.name, "format": format }))
                }
                _ => includes.push(column.source_field()),
            }
        }
        includes.sort_unstable();
        includes.dedup();
        if includes.contains(&"*") {
            includes = vec!["*"];
        }
        let mut body = serde_json::Map::new();
        body.insert("query".into(), query);
        body.insert(
            "_source".into(),
            if includes.is_empty() {
                json!(false)
            } else {
                json!(includes)
            },
        );
        if !dates.is_empty() {
            body.insert("docvalue_fields".into(), json!(dates));
        }
        if columns.iter().any(|c| c.name == SCORE) {
            body.insert("track_scores".into(), json!(true));
        }
        body.insert("track_total_hits".into(), json!(false));
        if !sort.is_empty() {
            body.insert("sort".into(), json!(sort));
        }
        let columns: BTreeMap<String, String> = columns
            .iter()
            .map(|c| (c.name.clone(), c.es_type.clone()))
            .collect();
        let slices = slices.max(1);
        (0..slices)
            .map(|id| {
                let mut body = body.clone();
                if slices > 1 {
                    body.insert("slice".into(), json!({ "id": id, "max": slices }));
                }
                let request = SearchRequest {
                    index: index.to_string(),
                    body: Value::Object(body),
                    limit,
                    page_size,
                    columns: columns.clone(),
                    buckets: None,
                };
                serde_json::to_string(&request).unwrap_or_default()
            })
            .collect()
    }
}
