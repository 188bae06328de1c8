//! A minimal HTTP/1.0 client for the coordinator's HTTP listener: the test
//! suite needs no HTTP crate for a handful of GETs and POSTs.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status code and body of `method path` on `127.0.0.1:port`, with HTTP
/// basic credentials when given.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    login: Option<(&str, &str)>,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the HTTP listener accepts connections");
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n");
    if let Some((user, password)) = login {
        head.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{user}:{password}").as_bytes())
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head}"));
    (status, body.to_string())
}

/// `GET path` without credentials.
pub async fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, None).await
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The sum of the samples of metric `name` in the Prometheus text `metrics`
/// whose labels include every pair of `labels` (0 when there is none).
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The coordinator's (or a worker's) `/metrics` text on `port`.
pub async fn metrics_text(port: u16) -> String {
    let (status, body) = get(port, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}
