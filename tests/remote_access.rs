//! With no users configured, only loopback clients may connect. A client in a
//! private network namespace (a separate test host made for this test) is refused
//! with SQLSTATE 28000 and a message saying why; loopback still works.

mod common;

use std::process::Command;

use common::{Server, TempDir, table, text_rows};

/// A network namespace joined to the host by a veth pair, removed on drop.
struct TestHost {
    ns: String,
    host_if: String,
    host_ip: String,
}

impl TestHost {
    fn create() -> Self {
        let id = std::process::id() % 10_000;
        let subnet = 1 + std::process::id() % 250;
        let host = Self {
            ns: format!("vivace-t{id}"),
            host_if: format!("vvh{id}"),
            host_ip: format!("10.231.{subnet}.1"),
        };
        let peer_if = format!("vvn{id}");
        let peer_ip = format!("10.231.{subnet}.2");
        let _ = host.cleanup();
        for args in [
            vec!["netns", "add", &host.ns],
            vec![
                "link",
                "add",
                &host.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer_if,
            ],
            vec!["link", "set", &peer_if, "netns", &host.ns],
            vec![
                "addr",
                "add",
                &format!("{}/30", host.host_ip),
                "dev",
                &host.host_if,
            ],
            vec!["link", "set", &host.host_if, "up"],
            vec![
                "-n",
                &host.ns,
                "addr",
                "add",
                &format!("{peer_ip}/30"),
                "dev",
                &peer_if,
            ],
            vec!["-n", &host.ns, "link", "set", &peer_if, "up"],
            vec!["-n", &host.ns, "link", "set", "lo", "up"],
        ] {
            let out = Command::new("ip")
                .args(&args)
                .output()
                .expect("iproute2 must be installed");
            assert!(
                out.status.success(),
                "ip {args:?} failed (the test needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        host
    }

    fn cleanup(&self) -> std::io::Result<()> {
        Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output()?;
        Command::new("ip")
            .args(["netns", "del", &self.ns])
            .output()?;
        Ok(())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

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

    // The same server still serves loopback clients.
    let client = server.client().await;
    assert_eq!(text_rows(&client, "SELECT 1 + 1").await, table(&[&["2"]]));
}
