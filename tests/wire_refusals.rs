//! A refused login runs nothing. Every refusal path is driven at the byte
//! level with a statement that would change the catalog pipelined right behind
//! the refused step: the server must answer with one FATAL error, close the
//! connection, and never run the statement (the catalog is unchanged and the
//! log has no "external table created").

mod common;

use common::credentials::{make_certificates, users_line};
use common::wire::{
    RawConnection, assert_fatal, bind, execute, parse, query, sasl_initial, sasl_response,
    ssl_request, startup, sync, typed, untyped,
};
use common::{Server, TempDir, table_names};

/// A CREATE that would succeed if it ran.
fn payload(dir: &TempDir, name: &str) -> String {
    let data = dir.path().join("csv");
    if !data.exists() {
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("t.csv"), "a\n1\n").unwrap();
    }
    format!(
        "CREATE EXTERNAL TABLE {name} STORED AS CSV LOCATION '{}'",
        data.display()
    )
}

/// A server with one user (`analyst`) and TLS.
async fn guarded_server(dir: &TempDir) -> Server {
    make_certificates(dir.path());
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert_file = \"{0}/server.crt\"\ntls_key_file = \"{0}/server.key\"\n[users]\n{1}",
            dir.path().display(),
            users_line("analyst", "correct horse")
        ),
    )
    .unwrap();
    Server::start_with(dir, &["--config", config.to_str().unwrap()], &[]).await
}

/// Start a SCRAM exchange as `user`; returns the connection after the
/// server-first message, and the full nonce to echo.
async fn scram_until_server_first(port: u16, user: &str) -> (RawConnection, String) {
    let mut conn = RawConnection::connect(port).await;
    conn.send(&startup(user)).await;
    let sasl = conn.next().await.expect("an authentication request");
    assert_eq!(sasl.kind, b'R');
    assert_eq!(&sasl.body[..4], &10i32.to_be_bytes(), "SASL expected");
    conn.send(&sasl_initial(
        "SCRAM-SHA-256",
        b"n,,n=,r=clientnonce0123456789",
    ))
    .await;
    let first = conn.next().await.expect("a SASL continue");
    assert_eq!(&first.body[..4], &11i32.to_be_bytes(), "{first:?}");
    let text = String::from_utf8(first.body[4..].to_vec()).unwrap();
    let nonce = text
        .split(',')
        .find_map(|f| f.strip_prefix("r="))
        .unwrap()
        .to_string();
    (conn, nonce)
}

/// A client-final message whose proof is all zeros: a wrong password.
fn wrong_proof(nonce: &str) -> Vec<u8> {
    sasl_response(
        format!("c=biws,r={nonce},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").as_bytes(),
    )
}

#[tokio::test]
async fn refused_logins_close_the_connection_and_run_nothing() {
    let dir = TempDir::new("refusals");
    let server = guarded_server(&dir).await;
    let port = server.port;

    // Wrong password: FATAL 28P01, and the Query behind it never runs.
    let (mut conn, nonce) = scram_until_server_first(port, "analyst").await;
    let mut bytes = wrong_proof(&nonce);
    bytes.extend(query(&payload(&dir, "pwned_password")));
    conn.send(&bytes).await;
    assert_fatal(&conn.until_closed().await, "28P01");

    // Unknown user: the same answer.
    let (mut conn, nonce) = scram_until_server_first(port, "mallory").await;
    let mut bytes = wrong_proof(&nonce);
    bytes.extend(query(&payload(&dir, "pwned_user")));
    conn.send(&bytes).await;
    assert_fatal(&conn.until_closed().await, "28P01");

    // Unknown SASL mechanism, all in one write: FATAL 28000.
    let mut conn = RawConnection::connect(port).await;
    let mut bytes = startup("analyst");
    bytes.extend(sasl_initial("BOGUS", b""));
    bytes.extend(query(&payload(&dir, "pwned_mechanism")));
    conn.send(&bytes).await;
    assert_fatal(&conn.until_closed().await, "28000");

    // A malformed SASLInitialResponse (its length runs past the message).
    let mut conn = RawConnection::connect(port).await;
    let mut bytes = startup("analyst");
    let mut body = b"SCRAM-SHA-256\0".to_vec();
    body.extend_from_slice(&1000i32.to_be_bytes());
    bytes.extend(typed(b'p', &body));
    bytes.extend(query(&payload(&dir, "pwned_malformed_sasl")));
    conn.send(&bytes).await;
    assert_fatal(&conn.until_closed().await, "08P01");

    // Out of order: a Query where the password belongs.
    let mut conn = RawConnection::connect(port).await;
    let mut bytes = startup("analyst");
    bytes.extend(query(&payload(&dir, "pwned_query_first")));
    conn.send(&bytes).await;
    assert_fatal(&conn.until_closed().await, "08P01");

    // Out of order: the extended protocol where the password belongs.
    let mut conn = RawConnection::connect(port).await;
    let mut bytes = startup("analyst");
    bytes.extend(parse(&payload(&dir, "pwned_parse_first")));
    bytes.extend(bind());
    bytes.extend(execute());
    bytes.extend(sync());
    conn.send(&bytes).await;
    assert_fatal(&conn.until_closed().await, "08P01");

    // Out of order: a Query in the middle of the SCRAM exchange.
    let (mut conn, _) = scram_until_server_first(port, "analyst").await;
    conn.send(&query(&payload(&dir, "pwned_mid_scram"))).await;
    assert_fatal(&conn.until_closed().await, "08P01");

    // A Query instead of a start-up packet: its type byte makes an absurd length.
    let mut conn = RawConnection::connect(port).await;
    conn.send(&query(&payload(&dir, "pwned_no_startup"))).await;
    assert_fatal(&conn.until_closed().await, "08P01");

    // Bad TLS negotiation: plaintext pipelined behind an SSLRequest...
    let mut conn = RawConnection::connect(port).await;
    let mut bytes = ssl_request();
    bytes.extend(startup("analyst"));
    bytes.extend(query(&payload(&dir, "pwned_after_sslrequest")));
    conn.send(&bytes).await;
    assert_fatal(&conn.until_closed().await, "08P01");
    // ...a handshake that is not TLS...
    let mut conn = RawConnection::connect(port).await;
    conn.send(&ssl_request()).await;
    assert_eq!(conn.byte().await, Some(b'S'));
    let mut bytes = startup("analyst");
    bytes.extend(query(&payload(&dir, "pwned_not_tls")));
    conn.send(&bytes).await;
    let answered = conn.raw_until_closed().await;
    assert!(answered.first() != Some(&b'C'), "{answered:?}");
    // ...a direct TLS opening that is not TLS either...
    let mut conn = RawConnection::connect(port).await;
    let mut bytes = vec![0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5];
    bytes.extend(query(&payload(&dir, "pwned_direct_tls")));
    conn.send(&bytes).await;
    let answered = conn.raw_until_closed().await;
    assert!(answered.first() != Some(&b'C'), "{answered:?}");
    // ...and a second SSLRequest after a refused GSS encryption request.
    let mut conn = RawConnection::connect(port).await;
    let mut bytes = untyped(&80_877_104i32.to_be_bytes());
    bytes.extend(untyped(&80_877_104i32.to_be_bytes()));
    bytes.extend(startup("analyst"));
    bytes.extend(query(&payload(&dir, "pwned_gss")));
    conn.send(&bytes).await;
    assert_eq!(conn.byte().await, Some(b'N'));
    assert_fatal(&conn.until_closed().await, "08P01");

    // Nothing ran: the right password sees no table, the log no creation.
    let client = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=analyst dbname=vivace password='correct horse'"),
        tokio_postgres::NoTls,
    )
    .await
    .map(|(client, conn)| {
        tokio::spawn(conn);
        client
    })
    .expect("the right password still works");
    assert_eq!(table_names(&client).await, Vec::<String>::new());
    let log = server.log_text();
    assert!(!log.contains("external table created"), "{log}");
    // The same statement runs once logged in: the payload was a real one.
    client
        .simple_query(&payload(&dir, "allowed"))
        .await
        .unwrap();
    assert_eq!(table_names(&client).await, vec!["allowed".to_string()]);
}

#[tokio::test]
async fn start_up_packets_of_impossible_length_are_refused_at_once() {
    let dir = TempDir::new("startup-length");
    let server = Server::start(&dir).await;
    for length in [0i32, 4, 7, -1, 10_001, i32::MAX] {
        let mut conn = RawConnection::connect(server.port).await;
        let mut bytes = length.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 3, 0]);
        conn.send(&bytes).await;
        // Refused without waiting for the rest of a packet that cannot exist
        // (RawConnection gives up after 20 s; the start-up timeout is 60 s).
        assert_fatal(&conn.until_closed().await, "08P01");
    }
    // A protocol version from the future, and a start-up packet missing its terminator.
    let mut conn = RawConnection::connect(server.port).await;
    conn.send(&untyped(&[0, 4, 0, 0, b'u', 0, b'x', 0, 0]))
        .await;
    assert_fatal(&conn.until_closed().await, "08P01");
    let mut conn = RawConnection::connect(server.port).await;
    conn.send(&untyped(&[0, 3, 0, 0, b'u', b's', b'e', b'r', 0, b'x']))
        .await;
    assert_fatal(&conn.until_closed().await, "08P01");
    // The server carries on.
    let client = server.client().await;
    assert_eq!(
        common::text_rows(&client, "SELECT 1").await,
        common::table(&[&["1"]])
    );
}
