//! A second test host: a private network namespace, so a client can connect
//! from an address that is not loopback.

use std::process::Command;

/// A network namespace joined to the host by a veth pair, removed on drop.
pub struct TestHost {
    /// The namespace, for `ip netns exec`.
    pub ns: String,
    host_if: String,
    /// The host's address on the pair, which the namespace can reach.
    pub host_ip: String,
}

impl TestHost {
    /// Make the namespace and its link (needs root).
    pub fn create() -> Self {
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
