//! One client connection, from its first byte to its last.
//!
//! pgwire's own loop (`process_socket`) is not used. After a FATAL error it sent
//! ErrorResponse and ReadyForQuery, shut down only its write half and went on
//! reading: the next Query on the socket ran, so a client whose password was
//! refused could still change the catalog. It also decoded frames in place and
//! panicked on malformed ones. Here:
//!
//! - the opening (SSL/GSS negotiation, TLS, the start-up packet) is read by
//!   [`frames`], which refuses bad lengths at once;
//! - until authentication succeeds, only the authentication exchange is
//!   processed; anything else is a protocol violation;
//! - after any FATAL error the error is sent and the connection closed, with
//!   nothing more read, as PostgreSQL does;
//! - messages are read by a task of their own, so the end of the connection is
//!   noticed while a statement is still being planned or run, and the statement
//!   is stopped.
//!
//! Decoded messages are handed to pgwire's `process_message`, so the handlers
//! and the extended protocol's state machine stay pgwire's.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures::{FutureExt, SinkExt};
use pgwire::api::{ClientInfo, DefaultClient, NoopHandler, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{PgWireMessageServerCodec, process_error, process_message};
use pgwire::tokio::tokio_rustls::server::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::frames::{self, FrameError, StartupPacket};
use super::handler::QueryHandler;
use super::startup::Startup;
use crate::engine::cancel::{CancelRegistry, SessionCancel};
use crate::error::sqlstate;

/// How long a client has from connecting to being authenticated
/// (PostgreSQL's `authentication_timeout` default).
pub const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The handlers of one connection.
pub(super) struct Handlers {
    /// Simple and extended query protocol.
    pub query: Arc<QueryHandler>,
    /// Start-up and authentication.
    pub startup: Arc<Startup>,
    /// Where CancelRequests (which arrive on connections of their own) find sessions.
    pub cancels: Arc<CancelRegistry>,
    /// The session's cancel switch: the reader flips it when the client goes.
    pub session: Arc<SessionCancel>,
}

/// Serve one accepted TCP connection until it ends.
pub(super) async fn serve(tcp: TcpStream, tls: Option<TlsAcceptor>, handlers: Handlers) {
    let Ok(peer) = tcp.peer_addr() else { return };
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + AUTHENTICATION_TIMEOUT;
    let opening = match tokio::time::timeout_at(deadline, open(tcp, tls)).await {
        Ok(Ok(opening)) => opening,
        Ok(Err(refusal)) => {
            if let (Some(mut transport), FrameError::Violation(why)) =
                (refusal.transport, refusal.error)
            {
                tracing::debug!(%peer, reason = %why, "refused a connection's opening");
                let _ = write_fatal(&mut transport, sqlstate::PROTOCOL_VIOLATION, &why).await;
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "a connection did not send its start-up packet in time");
            return;
        }
    };
    match opening {
        Opening::Cancel(PgWireFrontendMessage::CancelRequest(request)) => {
            handlers
                .cancels
                .cancel(&(request.pid, request.secret_key.to_bytes().to_vec()));
        }
        Opening::Cancel(_) => {}
        Opening::Startup {
            transport,
            message,
            rest,
        } => run(peer, transport, message, rest, deadline, handlers).await,
    }
}

/// The messages of an opened connection, until it ends.
async fn run(
    peer: SocketAddr,
    transport: Transport,
    startup: PgWireFrontendMessage,
    rest: BytesMut,
    deadline: Instant,
    handlers: Handlers,
) {
    let secure = matches!(transport, Transport::Tls(_));
    let (reader, writer) = tokio::io::split(transport);
    let mut socket = Framed::new(
        WriteOnly(writer),
        PgWireMessageServerCodec::new(DefaultClient::new(peer, secure)),
    );
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    let (tx, mut rx) = mpsc::channel(2);
    let reader = tokio::spawn(read_messages(reader, rest, tx, handlers.session.clone()));
    let _reader = AbortOnDrop(reader);
    let copy = Arc::new(NoopHandler);
    let mut next = Some(Ok(startup));
    loop {
        let received = match next.take() {
            Some(message) => message,
            None if is_authenticated(&socket) => match rx.recv().await {
                Some(message) => message,
                None => break,
            },
            None => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => {
                    tracing::info!(%peer, "authentication timed out");
                    let why = "canceling authentication due to timeout";
                    send_fatal(&mut socket, sqlstate::PROTOCOL_VIOLATION, why).await;
                    break;
                }
            },
        };
        let message = match received {
            Ok(message) => message,
            Err(why) => {
                tracing::debug!(%peer, reason = %why, "protocol violation");
                send_fatal(&mut socket, sqlstate::PROTOCOL_VIOLATION, &why).await;
                break;
            }
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_))
            || handlers.session.is_client_gone()
        {
            break;
        }
        let authenticated = is_authenticated(&socket);
        if !authenticated && !is_authentication_message(&socket, &message) {
            let why = format!(
                "expected an authentication message, got {}",
                message_name(&message)
            );
            send_fatal(&mut socket, sqlstate::PROTOCOL_VIOLATION, &why).await;
            break;
        }
        let extended = message.is_extended_query();
        let outcome = std::panic::AssertUnwindSafe(process_message(
            message,
            &mut socket,
            handlers.startup.clone(),
            handlers.query.clone(),
            handlers.query.clone(),
            copy.clone(),
            copy.clone(),
        ))
        .catch_unwind()
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let mut info = ErrorInfo::from(error);
                // Errors raised inside pgwire and arrow-pg (row encoding) come
                // as XX000; give them PostgreSQL's code where one is known.
                if info.code == sqlstate::INTERNAL_ERROR
                    && let Some(code) = crate::error::code_for_wording(&info.message)
                {
                    info.code = code.to_string();
                }
                // Every failure before authentication ends the connection.
                if info.is_fatal() || !authenticated || !is_authenticated(&socket) {
                    send_fatal(&mut socket, &info.code, &info.message).await;
                    break;
                }
                let error = PgWireError::UserError(Box::new(info));
                if process_error(&mut socket, error, extended).await.is_err() {
                    break;
                }
            }
            Err(_) => {
                // The panic hook has logged where; the session's state is unknown.
                tracing::error!(%peer, "a message handler panicked; closing the connection");
                send_fatal(&mut socket, sqlstate::INTERNAL_ERROR, "internal error").await;
                break;
            }
        }
    }
    let _ = socket.close().await;
}

/// Read, check and decode messages until the connection ends, a message is
/// malformed (sent on as `Err`), or Terminate. When the client goes away,
/// the session's running statement is stopped.
async fn read_messages(
    mut reader: ReadHalf<Transport>,
    mut buf: BytesMut,
    tx: mpsc::Sender<Result<PgWireFrontendMessage, String>>,
    session: Arc<SessionCancel>,
) {
    loop {
        match frames::read_message(&mut reader, &mut buf).await {
            Ok(message) => {
                let last = matches!(message, PgWireFrontendMessage::Terminate(_));
                if tx.send(Ok(message)).await.is_err() || last {
                    return;
                }
            }
            Err(FrameError::Violation(why)) => {
                let _ = tx.send(Err(why)).await;
                return;
            }
            Err(FrameError::Closed) => {
                session.client_gone();
                return;
            }
            Err(FrameError::Io(e)) => {
                tracing::debug!(error = %e, "reading from the client failed");
                session.client_gone();
                return;
            }
        }
    }
}

fn is_authenticated<S>(
    socket: &Framed<S, PgWireMessageServerCodec<super::handler::ParsedStatement>>,
) -> bool
where
    S: 'static,
{
    !matches!(
        socket.state(),
        PgWireConnectionState::AwaitingSslRequest
            | PgWireConnectionState::AwaitingStartup
            | PgWireConnectionState::AuthenticationInProgress
    )
}

/// Whether `message` belongs to the authentication exchange in the
/// connection's current state.
fn is_authentication_message<S: 'static>(
    socket: &Framed<S, PgWireMessageServerCodec<super::handler::ParsedStatement>>,
    message: &PgWireFrontendMessage,
) -> bool {
    match socket.state() {
        PgWireConnectionState::AwaitingStartup => {
            matches!(message, PgWireFrontendMessage::Startup(_))
        }
        PgWireConnectionState::AuthenticationInProgress => {
            matches!(message, PgWireFrontendMessage::PasswordMessageFamily(_))
        }
        _ => false,
    }
}

/// The name of a message, for errors.
fn message_name(message: &PgWireFrontendMessage) -> &'static str {
    match message {
        PgWireFrontendMessage::Startup(_) => "a start-up message",
        PgWireFrontendMessage::PasswordMessageFamily(_) => "a password message",
        PgWireFrontendMessage::Query(_) => "a Query message",
        PgWireFrontendMessage::Parse(_) => "a Parse message",
        PgWireFrontendMessage::Bind(_) => "a Bind message",
        PgWireFrontendMessage::Execute(_) => "an Execute message",
        PgWireFrontendMessage::Describe(_) => "a Describe message",
        PgWireFrontendMessage::Close(_) => "a Close message",
        PgWireFrontendMessage::Sync(_) => "a Sync message",
        PgWireFrontendMessage::Flush(_) => "a Flush message",
        PgWireFrontendMessage::CopyData(_)
        | PgWireFrontendMessage::CopyDone(_)
        | PgWireFrontendMessage::CopyFail(_) => "a COPY message",
        _ => "another message",
    }
}

/// Send a FATAL error; the caller then closes the connection.
async fn send_fatal<S>(
    socket: &mut Framed<S, PgWireMessageServerCodec<super::handler::ParsedStatement>>,
    code: &str,
    message: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let info = ErrorInfo::new("FATAL".into(), code.into(), message.into());
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await;
}

/// A FATAL error written straight to the transport, before pgwire's codec exists.
async fn write_fatal(transport: &mut Transport, code: &str, message: &str) -> std::io::Result<()> {
    let info = ErrorInfo::new("FATAL".into(), code.into(), message.into());
    let mut out = BytesMut::new();
    PgWireBackendMessage::ErrorResponse(info.into())
        .encode(&mut out)
        .map_err(std::io::Error::other)?;
    transport.write_all(&out).await?;
    transport.shutdown().await
}

/// How a connection opened.
enum Opening {
    /// A start-up packet: a session follows.
    Startup {
        transport: Transport,
        message: PgWireFrontendMessage,
        /// Bytes that arrived after the start-up packet.
        rest: BytesMut,
    },
    /// A CancelRequest: nothing follows.
    Cancel(PgWireFrontendMessage),
}

/// Why a connection's opening was refused, and where to say so.
struct Refusal {
    transport: Option<Transport>,
    error: FrameError,
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Self {
            transport: None,
            error: FrameError::Io(e),
        }
    }
}

/// TLS record type of a ClientHello: a client that opens TLS at once
/// (`sslnegotiation=direct`).
const TLS_HANDSHAKE: u8 = 0x16;

/// Read the opening packets: negotiate TLS if asked (and offered), answer GSS
/// encryption with no, and stop at the start-up packet or a CancelRequest.
async fn open(tcp: TcpStream, tls: Option<TlsAcceptor>) -> Result<Opening, Refusal> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(Refusal {
            transport: None,
            error: FrameError::Closed,
        });
    }
    let mut transport = if first[0] == TLS_HANDSHAKE {
        let Some(acceptor) = tls.as_ref() else {
            return Err(Refusal {
                transport: None,
                error: FrameError::Closed,
            });
        };
        let stream = acceptor.accept(tcp).await?;
        let alpn_ok = stream.get_ref().1.alpn_protocol() == Some(b"postgresql".as_slice());
        let transport = Transport::Tls(Box::new(stream));
        if !alpn_ok {
            return Err(Refusal {
                error: FrameError::Violation(
                    "received direct SSL connection request without ALPN protocol negotiation extension"
                        .into(),
                ),
                transport: Some(transport),
            });
        }
        transport
    } else {
        Transport::Plain(tcp)
    };
    let mut buf = BytesMut::new();
    let (mut ssl_done, mut gss_done) = (matches!(transport, Transport::Tls(_)), false);
    loop {
        let packet = match frames::read_startup_packet(&mut transport, &mut buf).await {
            Ok(packet) => packet,
            Err(error) => {
                return Err(Refusal {
                    transport: Some(transport),
                    error,
                });
            }
        };
        match packet {
            StartupPacket::Ssl if !ssl_done => {
                ssl_done = true;
                let Some(acceptor) = tls.as_ref() else {
                    transport.write_all(b"N").await?;
                    continue;
                };
                if !buf.is_empty() {
                    return Err(Refusal {
                        transport: Some(transport),
                        error: FrameError::Violation(
                            "received unencrypted data after SSL request".into(),
                        ),
                    });
                }
                transport.write_all(b"S").await?;
                let Transport::Plain(tcp) = transport else {
                    unreachable!("TLS is negotiated once")
                };
                transport = Transport::Tls(Box::new(acceptor.accept(tcp).await?));
            }
            StartupPacket::GssEnc if !gss_done && !matches!(transport, Transport::Tls(_)) => {
                gss_done = true;
                transport.write_all(b"N").await?;
            }
            StartupPacket::Ssl | StartupPacket::GssEnc => {
                return Err(Refusal {
                    transport: Some(transport),
                    error: FrameError::Violation(
                        "unexpected repeated encryption negotiation request".into(),
                    ),
                });
            }
            StartupPacket::Cancel(request) => return Ok(Opening::Cancel(request)),
            StartupPacket::Startup(message) => {
                return Ok(Opening::Startup {
                    transport,
                    message,
                    rest: buf,
                });
            }
        }
    }
}

/// The byte stream of one connection: TCP, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Self::Tls(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Self::Tls(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_flush(cx),
            Self::Tls(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Self::Tls(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// The write half under pgwire's codec. Its reads end at once: messages are
/// read by [`read_messages`], never through the codec.
struct WriteOnly(WriteHalf<Transport>);

impl AsyncRead for WriteOnly {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WriteOnly {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Stops the reader task when the connection ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
