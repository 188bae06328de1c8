//! Frontend messages as they arrive on the socket: cut into whole frames,
//! checked against the protocol's layout, and only then decoded by pgwire.
//!
//! pgwire 0.41 decodes straight out of the connection's read buffer and trusts
//! the counts and lengths inside a message: a Parse that claims 65,535
//! parameter types without sending them, or a Bind parameter of length 2^31-1,
//! made it read past the message (`advance out of bounds` panics in the `bytes`
//! crate). So every frame is first read whole into a buffer of its own, no
//! larger than [`MAX_MESSAGE_BYTES`], and its layout is walked here; a frame
//! that does not fit its type's layout is a protocol violation (`08P01`), which
//! ends the connection, as in PostgreSQL.

use bytes::{Buf, BytesMut};
use pgwire::messages::startup::Startup;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest message Vivace accepts after start-up (type byte excluded).
/// PostgreSQL allows 1 GiB; a query text or a row of bound parameters beyond
/// 64 MiB is not a real client's, and each connection may buffer one message.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The largest start-up packet, as in PostgreSQL (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_BYTES: usize = 10_000;

/// Request codes carried where a start-up packet has its protocol version.
const SSL_REQUEST_CODE: i32 = 80_877_103;
const GSSENC_REQUEST_CODE: i32 = 80_877_104;
const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// Why no frame came.
#[derive(Debug)]
pub enum FrameError {
    /// The client closed the connection (cleanly, between frames).
    Closed,
    /// Reading failed.
    Io(std::io::Error),
    /// The bytes are not a valid frame: answered with `08P01` and a closed connection.
    Violation(String),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn violation(message: impl Into<String>) -> FrameError {
    FrameError::Violation(message.into())
}

/// The first packets of a connection, which carry no type byte.
#[derive(Debug)]
pub enum StartupPacket {
    /// `SSLRequest`.
    Ssl,
    /// `GSSENCRequest`.
    GssEnc,
    /// `CancelRequest`, decoded.
    Cancel(PgWireFrontendMessage),
    /// `StartupMessage`, decoded.
    Startup(PgWireFrontendMessage),
}

/// Read `n` more bytes than `buf` holds from `reader`, unless it ends first.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> Result<(), FrameError> {
    while buf.len() < n {
        // Take what has arrived (at least 8 KiB at a time), but grow with what
        // arrives, not with what a length field claims.
        buf.reserve((n - buf.len()).clamp(8 << 10, 64 << 10));
        if reader.read_buf(buf).await? == 0 {
            return Err(if buf.is_empty() {
                FrameError::Closed
            } else {
                violation("the connection ended in the middle of a message")
            });
        }
    }
    Ok(())
}

/// Read one start-up-phase packet (length, then body) and classify it. `buf`
/// keeps whatever arrived after it.
pub async fn read_startup_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<StartupPacket, FrameError> {
    fill(reader, buf, 4).await?;
    let length = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let length = usize::try_from(length).unwrap_or(0);
    if !(8..=MAX_STARTUP_BYTES).contains(&length) {
        return Err(violation("invalid length of startup packet"));
    }
    fill(reader, buf, length).await?;
    let mut frame = buf.split_to(length);
    let code = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE if length != 8 => Err(violation(
            "invalid length of SSL or GSS encryption negotiation request",
        )),
        SSL_REQUEST_CODE => Ok(StartupPacket::Ssl),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEnc),
        CANCEL_REQUEST_CODE => {
            // Protocol 3.0 keys are 4 bytes; 3.2 allows up to 256.
            if !(16..=12 + 256).contains(&length) {
                return Err(violation("invalid length of cancel request packet"));
            }
            let mut ctx = DecodeContext::new(if length == 16 {
                ProtocolVersion::PROTOCOL3_0
            } else {
                ProtocolVersion::PROTOCOL3_2
            });
            ctx.awaiting_frontend_ssl = false;
            decode_whole(&mut frame, &ctx, "cancel request")
                .map(|m| StartupPacket::Cancel(m.expect("a whole frame decodes")))
        }
        _ => {
            let major = code >> 16;
            let minor = code & 0xffff;
            if major != i32::from(Startup::PG_PROTOCOL_LATEST) {
                return Err(FrameError::Violation(format!(
                    "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2"
                )));
            }
            check_startup_parameters(&frame[8..])?;
            let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
            ctx.awaiting_frontend_ssl = false;
            decode_whole(&mut frame, &ctx, "startup packet")
                .map(|m| StartupPacket::Startup(m.expect("a whole frame decodes")))
        }
    }
}

/// Read one typed message (type byte, length, body), check its layout, decode it.
/// `buf` keeps whatever arrived after it.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<PgWireFrontendMessage, FrameError> {
    fill(reader, buf, 5).await?;
    let kind = buf[0];
    let length = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let length = usize::try_from(length).unwrap_or(0);
    if length < 4 {
        return Err(FrameError::Violation(format!(
            "invalid message length {length} for message type \"{}\"",
            printable(kind)
        )));
    }
    if length > MAX_MESSAGE_BYTES {
        return Err(FrameError::Violation(format!(
            "message of type \"{}\" is {length} bytes long; the limit is {MAX_MESSAGE_BYTES}",
            printable(kind)
        )));
    }
    fill(reader, buf, 1 + length).await?;
    let mut frame = buf.split_to(1 + length);
    check_layout(kind, &frame[5..])?;
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    let decoded = decode_whole(&mut frame, &ctx, "message")?;
    decoded.ok_or_else(|| violation("incomplete message"))
}

/// Decode one frame that fills `frame` exactly; leftover bytes are a violation.
fn decode_whole(
    frame: &mut BytesMut,
    ctx: &DecodeContext,
    what: &str,
) -> Result<Option<PgWireFrontendMessage>, FrameError> {
    let decoded = PgWireFrontendMessage::decode(frame, ctx)
        .map_err(|e| FrameError::Violation(format!("invalid {what}: {e}")))?;
    if frame.has_remaining() {
        return Err(FrameError::Violation(format!("invalid {what} format")));
    }
    Ok(decoded)
}

/// The type byte as text for messages (`Q`, or its number when unprintable).
fn printable(kind: u8) -> String {
    if kind.is_ascii_graphic() {
        (kind as char).to_string()
    } else {
        format!("{kind}")
    }
}

/// A cursor over a message body that refuses to read past its end.
struct Body<'a> {
    bytes: &'a [u8],
    kind: u8,
}

impl<'a> Body<'a> {
    fn malformed(&self) -> FrameError {
        FrameError::Violation(format!(
            "invalid message format (type \"{}\")",
            printable(self.kind)
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.bytes.len() {
            return Err(self.malformed());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn cstring(&mut self) -> Result<&'a [u8], FrameError> {
        let end = self
            .bytes
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| self.malformed())?;
        let text = self.take(end)?;
        self.take(1)?;
        Ok(text)
    }

    fn i16(&mut self) -> Result<i16, FrameError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, FrameError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count field: not negative.
    fn count(&mut self) -> Result<usize, FrameError> {
        usize::try_from(self.i16()?).map_err(|_| self.malformed())
    }

    fn end(&self) -> Result<(), FrameError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.malformed())
        }
    }
}

/// Check that `body` has the layout of a message of type `kind`.
fn check_layout(kind: u8, body: &[u8]) -> Result<(), FrameError> {
    let mut b = Body { bytes: body, kind };
    match kind {
        // Query: the text.
        b'Q' => {
            b.cstring()?;
        }
        // Parse: name, text, parameter type oids.
        b'P' => {
            b.cstring()?;
            b.cstring()?;
            let types = b.count()?;
            b.take(types.saturating_mul(4))?;
        }
        // Bind: portal, statement, parameter formats, values, result formats.
        b'B' => {
            b.cstring()?;
            b.cstring()?;
            let formats = b.count()?;
            for _ in 0..formats {
                format_code(&mut b)?;
            }
            let values = b.count()?;
            if formats > 1 && formats != values {
                return Err(FrameError::Violation(format!(
                    "bind message has {formats} parameter formats but {values} parameters"
                )));
            }
            for _ in 0..values {
                match b.i32()? {
                    -1 => {}
                    n if n < -1 => return Err(b.malformed()),
                    n => {
                        b.take(n as usize)?;
                    }
                }
            }
            let results = b.count()?;
            for _ in 0..results {
                format_code(&mut b)?;
            }
        }
        // Execute: portal, row limit.
        b'E' => {
            b.cstring()?;
            b.i32()?;
        }
        // Describe, Close: 'S'tatement or 'P'ortal, then its name.
        b'D' | b'C' => {
            let target = b.take(1)?[0];
            if target != b'S' && target != b'P' {
                return Err(FrameError::Violation(format!(
                    "invalid {} message subtype {target}",
                    if kind == b'D' { "DESCRIBE" } else { "CLOSE" }
                )));
            }
            b.cstring()?;
        }
        // Sync, Flush, Terminate, CopyDone: nothing.
        b'S' | b'H' | b'X' | b'c' => {}
        // CopyFail: a message.
        b'f' => {
            b.cstring()?;
        }
        // CopyData and the password family: bytes, checked where they are used.
        b'd' | b'p' => return Ok(()),
        other => {
            return Err(FrameError::Violation(format!(
                "invalid frontend message type {}",
                printable(other)
            )));
        }
    }
    b.end()
}

/// One format code: 0 (text) or 1 (binary).
fn format_code(b: &mut Body<'_>) -> Result<(), FrameError> {
    match b.i16()? {
        0 | 1 => Ok(()),
        other => Err(FrameError::Violation(format!(
            "unsupported format code: {other}"
        ))),
    }
}

/// Start-up parameters: name/value C-string pairs ending with an empty name.
fn check_startup_parameters(body: &[u8]) -> Result<(), FrameError> {
    let mut b = Body {
        bytes: body,
        kind: b'0',
    };
    let invalid = || violation("invalid startup packet layout: expected terminator as last byte");
    loop {
        let name = b.cstring().map_err(|_| invalid())?;
        if name.is_empty() {
            return b.end().map_err(|_| invalid());
        }
        b.cstring().map_err(|_| invalid())?;
    }
}

/// Check a `SASLInitialResponse` body (mechanism, then a length-prefixed
/// response or -1) before pgwire reads it.
pub fn check_sasl_initial_response(body: &[u8]) -> Result<(), String> {
    let mut b = Body {
        bytes: body,
        kind: b'p',
    };
    let malformed = || "malformed SASLInitialResponse message".to_string();
    b.cstring().map_err(|_| malformed())?;
    match b.i32().map_err(|_| malformed())? {
        -1 => {}
        n if n < -1 => return Err(malformed()),
        n => {
            b.take(n as usize).map_err(|_| malformed())?;
        }
    }
    b.end().map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    async fn read(bytes: Vec<u8>) -> Result<PgWireFrontendMessage, FrameError> {
        let mut reader = bytes.as_slice();
        read_message(&mut reader, &mut BytesMut::new()).await
    }

    fn is_violation(r: Result<PgWireFrontendMessage, FrameError>) -> bool {
        matches!(r, Err(FrameError::Violation(_)))
    }

    #[tokio::test]
    async fn well_formed_messages_decode() {
        let msg = read(typed(b'Q', b"SELECT 1\0")).await.unwrap();
        assert!(matches!(msg, PgWireFrontendMessage::Query(q) if q.query == "SELECT 1"));
        let mut parse = BytesMut::new();
        parse.put_slice(b"s1\0SELECT $1\0");
        parse.put_i16(1);
        parse.put_i32(23);
        assert!(matches!(
            read(typed(b'P', &parse)).await.unwrap(),
            PgWireFrontendMessage::Parse(_)
        ));
        let mut bind = BytesMut::new();
        bind.put_slice(b"\0s1\0");
        bind.put_i16(1);
        bind.put_i16(0);
        bind.put_i16(2);
        bind.put_i32(1);
        bind.put_slice(b"7");
        bind.put_i32(-1);
        bind.put_i16(0);
        assert!(matches!(
            read(typed(b'B', &bind)).await.unwrap(),
            PgWireFrontendMessage::Bind(_)
        ));
        assert!(matches!(
            read(typed(b'S', b"")).await.unwrap(),
            PgWireFrontendMessage::Sync(_)
        ));
    }

    #[tokio::test]
    async fn counts_beyond_the_message_are_violations() {
        // Parse claiming 65,535 parameter types, none sent.
        let mut parse = BytesMut::new();
        parse.put_slice(b"\0SELECT 1\0");
        parse.put_i16(-1);
        assert!(is_violation(read(typed(b'P', &parse)).await));
        let mut parse = BytesMut::new();
        parse.put_slice(b"\0SELECT 1\0");
        parse.put_i16(3);
        parse.put_i32(23);
        assert!(is_violation(read(typed(b'P', &parse)).await));
        // Bind with a parameter of length 2^31-1.
        let mut bind = BytesMut::new();
        bind.put_slice(b"\0\0");
        bind.put_i16(0);
        bind.put_i16(1);
        bind.put_i32(i32::MAX);
        bind.put_i16(0);
        assert!(is_violation(read(typed(b'B', &bind)).await));
        // Bind with a negative parameter count.
        let mut bind = BytesMut::new();
        bind.put_slice(b"\0\0");
        bind.put_i16(0);
        bind.put_i16(-2);
        assert!(is_violation(read(typed(b'B', &bind)).await));
        // Trailing bytes, unknown types, bad lengths.
        assert!(is_violation(read(typed(b'S', b"x")).await));
        assert!(is_violation(read(typed(b'F', b"")).await));
        assert!(is_violation(read(vec![b'Q', 0, 0, 0, 2]).await));
        assert!(is_violation(read(vec![b'Q', 0x7f, 0xff, 0xff, 0xff]).await));
        assert!(is_violation(read(vec![b'Q', 0, 0, 0, 9, b'a']).await));
        assert!(matches!(read(vec![]).await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn startup_packets() {
        let read_startup = |bytes: Vec<u8>| async move {
            let mut reader = bytes.as_slice();
            read_startup_packet(&mut reader, &mut BytesMut::new()).await
        };
        assert!(matches!(
            read_startup(vec![0, 0, 0, 7, 0, 0, 0]).await,
            Err(FrameError::Violation(_))
        ));
        assert!(matches!(
            read_startup(vec![0, 0, 0, 8, 4, 210, 22, 47]).await,
            Ok(StartupPacket::Ssl)
        ));
        let mut ok = BytesMut::new();
        ok.put_i32(0);
        ok.put_i32(196_608);
        ok.put_slice(b"user\0ann\0\0");
        let len = ok.len() as i32;
        ok[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            read_startup(ok.to_vec()).await,
            Ok(StartupPacket::Startup(_))
        ));
        let mut unterminated = ok.clone();
        unterminated.truncate(ok.len() - 1);
        let len = unterminated.len() as i32;
        unterminated[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            read_startup(unterminated.to_vec()).await,
            Err(FrameError::Violation(_))
        ));
    }

    #[test]
    fn sasl_initial_response_layout() {
        let mut ok = BytesMut::new();
        ok.put_slice(b"SCRAM-SHA-256\0");
        ok.put_i32(3);
        ok.put_slice(b"abc");
        assert!(check_sasl_initial_response(&ok).is_ok());
        let mut long = BytesMut::new();
        long.put_slice(b"SCRAM-SHA-256\0");
        long.put_i32(300);
        assert!(check_sasl_initial_response(&long).is_err());
        assert!(check_sasl_initial_response(b"BOGUS").is_err());
    }
}
