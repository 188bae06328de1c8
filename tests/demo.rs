//! `vivace serve --demo` registers TPC-H tables that answer at once.

mod common;

use common::{Server, TempDir, table, table_names, text_rows};

#[tokio::test]
async fn demo_serves_tpch_tables() {
    let dir = TempDir::new("demo");
    let mut server =
        Server::start_with(&dir, &["--demo", "--demo-scale-factor", "0.01"], &[]).await;
    let client = server.client().await;
    let names = table_names(&client).await;
    assert_eq!(
        names,
        [
            "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"
        ]
    );
    // Sizes fixed by the TPC-H specification at SF 0.01.
    let counts = "SELECT (SELECT count(*) FROM region) AS r, (SELECT count(*) FROM nation) AS n, \
                  (SELECT count(*) FROM customer) AS c, (SELECT count(*) FROM orders) AS o";
    assert_eq!(
        text_rows(&client, counts).await,
        table(&[&["5", "25", "1500", "15000"]])
    );
    let europe = "SELECT n_name FROM nation JOIN region ON n_regionkey = r_regionkey \
                  WHERE r_name = 'EUROPE' ORDER BY n_name";
    assert_eq!(
        text_rows(&client, europe).await,
        table(&[
            &["FRANCE"],
            &["GERMANY"],
            &["ROMANIA"],
            &["RUSSIA"],
            &["UNITED KINGDOM"]
        ])
    );
    // Restarting with --demo again reuses the files and the registrations.
    server.restart().await;
    let client = server.client().await;
    assert_eq!(
        text_rows(&client, counts).await,
        table(&[&["5", "25", "1500", "15000"]])
    );
}
