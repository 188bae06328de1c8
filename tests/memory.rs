//! `--memory-limit` bounds what queries hold: a sort larger than the limit spills
//! to disk and still streams every row, in order; a hash join whose build side
//! does not fit fails with SQLSTATE 53200, and the server carries on.

mod common;

use common::{Server, TempDir, sql_error, text_rows};

/// 4M rows of (id, key): 64 MB to sort, against a 64 MiB pool that the rest of
/// the plan shares.
const ROWS: i64 = 4_000_000;

fn big_sort() -> String {
    format!(
        "SELECT v, (v * 7919) % 1000003 AS k FROM generate_series(1, {ROWS}) AS t(v) ORDER BY k, v"
    )
}

#[tokio::test]
async fn a_memory_limit_spills_sorts_and_refuses_what_cannot_spill() {
    use futures::TryStreamExt;

    let dir = TempDir::new("memory");
    let server = Server::start_with(&dir, &["--memory-limit", "64M"], &[]).await;
    let client = server.client().await;
    // The plan's shape (and so its memory) depends on the partition count.
    client
        .simple_query("SET datafusion.execution.target_partitions = 2")
        .await
        .unwrap();

    let plan = text_rows(&client, &format!("EXPLAIN ANALYZE {}", big_sort()))
        .await
        .concat()
        .join("\n");
    let spills: u64 = plan
        .split("spill_count=")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(spills > 0, "the sort did not spill:\n{plan}");

    // Stream the sorted rows and check each one: every id once, its key right,
    // keys in order.
    let rows = client
        .query_raw(&big_sort(), std::iter::empty::<i64>())
        .await
        .unwrap();
    futures::pin_mut!(rows);
    let (mut count, mut id_sum, mut last) = (0i64, 0i64, (i64::MIN, i64::MIN));
    while let Some(row) = rows.try_next().await.unwrap() {
        let (v, k): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(k, (v * 7919) % 1_000_003, "row {count}");
        assert!((k, v) > last, "row {count} out of order");
        last = (k, v);
        count += 1;
        id_sum += v;
    }
    assert_eq!(count, ROWS);
    assert_eq!(id_sum, ROWS * (ROWS + 1) / 2);

    let (code, msg) = sql_error(
        &client,
        "SELECT count(*) FROM generate_series(1, 10000000) AS a(x) \
         JOIN generate_series(1, 10000000) AS b(y) ON x = y",
    )
    .await;
    assert_eq!(code, "53200", "{msg}");
    assert!(msg.contains("HashJoinInput"), "{msg}");

    let other = server.client().await;
    assert_eq!(
        text_rows(&other, "SELECT count(*) FROM generate_series(1, 10)").await,
        vec![vec!["10".to_string()]]
    );
}
