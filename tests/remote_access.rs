//! With no users configured, only loopback clients may connect. A client in a
//! private network namespace (a separate test host made for this test) is refused
//! with SQLSTATE 28000 and a message saying why; loopback still works.

mod common;

use std::process::Command;

use common::netns::TestHost;
use common::wire::{assert_fatal, messages};
use common::{Server, TempDir, table, table_names, text_rows};

#[tokio::test]
async fn non_loopback_clients_are_refused_without_users() {
    let host = TestHost::create();
    let dir = TempDir::new("remote");
    let server = Server::start_on(&dir, "0.0.0.0").await;
    let port = server.port;

    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &host.ns,
            "psql",
            "-X",
            "-h",
            &host.host_ip,
            "-p",
            &port.to_string(),
        ])
        .args(["-U", "vivace", "-c", "SELECT 1", "vivace"])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a remote client was let in");
    // libpq prints no SQLSTATE for start-up failures; the FATAL text is what users see.
    assert!(err.contains("FATAL:  connections from 10.231."), "{err}");
    assert!(err.contains("accepts only loopback connections"), "{err}");

    // At the byte level: a statement pipelined behind the refused start-up
    // never runs, and the connection is closed after the FATAL error.
    let data = dir.path().join("csv");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("t.csv"), "a\n1\n").unwrap();
    let create = format!(
        "CREATE EXTERNAL TABLE pwned STORED AS CSV LOCATION '{}'",
        data.display()
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &host.ns, "python3", "-c", RAW_CLIENT])
        .args([&host.host_ip, &port.to_string(), &create])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answered = String::from_utf8(out.stdout).unwrap();
    let bytes: Vec<u8> = (0..answered.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&answered[i..i + 2], 16).unwrap())
        .collect();
    assert_fatal(&messages(&bytes), "28000");

    // The same server still serves loopback clients, and nothing was created.
    let client = server.client().await;
    assert_eq!(text_rows(&client, "SELECT 1 + 1").await, table(&[&["2"]]));
    assert_eq!(table_names(&client).await, Vec::<String>::new());
    assert!(!server.log_text().contains("external table created"));
}

/// Sends a start-up packet and a Query in one write, then prints (as hex)
/// everything the server answers until it closes the connection.
const RAW_CLIENT: &str = r#"
import socket, struct, sys
host, port, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = struct.pack("!I", 196608) + b"user\0vivace\0database\0vivace\0\0"
startup = struct.pack("!I", len(body) + 4) + body
text = sql.encode() + b"\0"
query = b"Q" + struct.pack("!I", len(text) + 4) + text
s = socket.create_connection((host, port), timeout=20)
s.sendall(startup + query)
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.hex())
"#;
