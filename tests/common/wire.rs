//! A raw PostgreSQL protocol client for byte-level tests: frontend messages
//! built by hand, backend messages read one by one until the server closes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the server to answer or close.
const PATIENCE: Duration = Duration::from_secs(20);

/// A `StartupMessage` (protocol 3.0) for `user` and database `vivace`.
pub fn startup(user: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", "vivace")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    untyped(&body)
}

/// A packet with a length and no type byte (start-up phase).
pub fn untyped(body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// An `SSLRequest`.
pub fn ssl_request() -> Vec<u8> {
    untyped(&80_877_103i32.to_be_bytes())
}

/// A message of type `kind` with `body`, its length computed.
pub fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A simple-protocol `Query`.
pub fn query(sql: &str) -> Vec<u8> {
    typed(b'Q', &cstring(sql))
}

/// `Parse` of an unnamed statement, no parameter types.
pub fn parse(sql: &str) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(&cstring(sql));
    body.extend_from_slice(&0i16.to_be_bytes());
    typed(b'P', &body)
}

/// `Bind` of the unnamed statement to the unnamed portal, no parameters.
pub fn bind() -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    typed(b'B', &body)
}

/// `Execute` of the unnamed portal, all rows.
pub fn execute() -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(&0i32.to_be_bytes());
    typed(b'E', &body)
}

/// `Sync`.
pub fn sync() -> Vec<u8> {
    typed(b'S', &[])
}

/// `SASLInitialResponse` with `mechanism` and `data`.
pub fn sasl_initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = cstring(mechanism);
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    typed(b'p', &body)
}

/// `SASLResponse` carrying `data`.
pub fn sasl_response(data: &[u8]) -> Vec<u8> {
    typed(b'p', data)
}

/// `text` followed by a NUL.
pub fn cstring(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

/// One backend message.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Its type byte (`E`, `Z`, `R`, ...).
    pub kind: u8,
    /// Its body.
    pub body: Vec<u8>,
}

impl Backend {
    /// A field of an ErrorResponse or NoticeResponse (`C` code, `S` severity, `M` message).
    pub fn field(&self, code: u8) -> Option<String> {
        if self.kind != b'E' && self.kind != b'N' {
            return None;
        }
        let mut rest = self.body.as_slice();
        while let Some((&tag, tail)) = rest.split_first() {
            if tag == 0 {
                break;
            }
            let end = tail.iter().position(|b| *b == 0)?;
            if tag == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }

    /// `(severity, SQLSTATE)` of an ErrorResponse.
    pub fn error(&self) -> Option<(String, String)> {
        Some((self.field(b'V').or(self.field(b'S'))?, self.field(b'C')?))
    }
}

/// The backend messages in `bytes` (a whole conversation read elsewhere).
pub fn messages(mut bytes: &[u8]) -> Vec<Backend> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert!(bytes.len() > len, "a message was cut short");
        out.push(Backend {
            kind: bytes[0],
            body: bytes[5..1 + len].to_vec(),
        });
        bytes = &bytes[1 + len..];
    }
    assert!(bytes.is_empty(), "trailing bytes");
    out
}

/// One raw connection.
pub struct RawConnection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConnection {
    /// Connect to a server on loopback.
    pub async fn connect(port: u16) -> Self {
        Self {
            stream: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Start-up as `user` on a server that asks for no password, and read up to
    /// the first ReadyForQuery.
    pub async fn ready(port: u16, user: &str) -> Self {
        let mut conn = Self::connect(port).await;
        conn.send(&startup(user)).await;
        let answered = conn.until_ready().await;
        assert!(
            answered.iter().any(|m| m.kind == b'Z'),
            "no ReadyForQuery: {answered:?}"
        );
        conn
    }

    /// Send bytes; a server that has already closed may refuse them.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Read one raw byte (the answer to an SSLRequest); `None` if closed.
    pub async fn byte(&mut self) -> Option<u8> {
        if !self.buf.is_empty() {
            return Some(self.buf.remove(0));
        }
        let mut one = [0u8; 1];
        match tokio::time::timeout(PATIENCE, self.stream.read(&mut one)).await {
            Ok(Ok(1)) => Some(one[0]),
            Ok(_) => None,
            Err(_) => panic!("the server neither answered nor closed"),
        }
    }

    /// The next message, or `None` once the server has closed the connection.
    pub async fn next(&mut self) -> Option<Backend> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let total = 1 + len as usize;
                if self.buf.len() >= total {
                    let message: Vec<u8> = self.buf.drain(..total).collect();
                    return Some(Backend {
                        kind: message[0],
                        body: message[5..].to_vec(),
                    });
                }
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    assert!(self.buf.is_empty(), "the connection closed mid-message");
                    return None;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("the server neither answered nor closed"),
            }
        }
    }

    /// Messages up to and including the next ReadyForQuery, or until the
    /// server closes.
    pub async fn until_ready(&mut self) -> Vec<Backend> {
        let mut out = Vec::new();
        while let Some(message) = self.next().await {
            let ready = message.kind == b'Z';
            out.push(message);
            if ready {
                break;
            }
        }
        out
    }

    /// Every message until the server closes the connection; panics if it
    /// does not close.
    pub async fn until_closed(&mut self) -> Vec<Backend> {
        let mut out = Vec::new();
        while let Some(message) = self.next().await {
            out.push(message);
        }
        out
    }

    /// Every byte until the server closes (a TLS alert is not a message).
    pub async fn raw_until_closed(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 8192];
        loop {
            match tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return out,
                Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("the server did not close the connection"),
            }
        }
    }
}

/// Assert that `answered` ends with one FATAL error of `code` and that nothing
/// ran after it (no CommandComplete, no ReadyForQuery once it was sent).
pub fn assert_fatal(answered: &[Backend], code: &str) {
    let last = answered
        .last()
        .unwrap_or_else(|| panic!("no answer before the close; wanted FATAL {code}"));
    assert_eq!(
        last.error(),
        Some(("FATAL".to_string(), code.to_string())),
        "{answered:?} (message: {:?})",
        last.field(b'M')
    );
    assert!(
        !answered.iter().any(|m| m.kind == b'C'),
        "a command completed: {answered:?}"
    );
}
