//! The tunnel carrier: a WebSocket whose binary messages carry the bytes of another connection,
//! read and written as one byte stream. Port-forward's `SPDY/3.1+portforward.k8s.io` (KEP-4006)
//! runs a whole SPDY/3.1 session over it, as client-go's `TunnelingConnection` and the API
//! server's `TunnelingHandler` do.
//!
//! - **Boundaries mean nothing.** A peer may split one SPDY frame over several messages
//!   (spdystream writes a frame's header and its payload separately, and client-go sends every
//!   write as a message) or put several frames in one. Reads return the messages' bytes in
//!   order; each write becomes one message of at most [`MAX_TUNNEL_MESSAGE`] bytes.
//! - **Binary only.** A text message is an error, as in client-go; the tunnel is then closed
//!   with 1003 (unsupported data).
//! - **Control frames.** Pings are answered by tungstenite while reading; pongs are ignored. A
//!   close frame from the peer is the end of the stream (client-go reads a normal closure as
//!   `io.EOF`). Shutting the tunnel down sends a close frame (1000 unless reading failed) and
//!   then shuts the transport down (TCP FIN, TLS close_notify).
//! - **Bounded.** One received message (at most the connection's `max_message_size`) is held
//!   until it is read; writes wait while tungstenite's write buffer is full.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Largest message a write sends.
pub const MAX_TUNNEL_MESSAGE: usize = 64 * 1024;

/// A WebSocket's binary messages as an [`AsyncRead`] + [`AsyncWrite`] byte stream.
pub struct Tunnel<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary message.
    pending: Bytes,
    /// The peer closed the WebSocket (or the connection ended): reads are at end of file.
    read_done: bool,
    /// The close frame to send at shutdown: normal unless the peer broke the rules.
    close: CloseFrame,
    /// The close frame was queued.
    close_queued: bool,
}

impl<S> Tunnel<S> {
    /// Carries a byte stream over `ws`, in either role.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
            read_done: false,
            close: CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            },
            close_queued: false,
        }
    }

    /// Remembers why the tunnel failed, for the close frame.
    fn fail(&mut self, code: CloseCode, reason: &'static str) {
        self.close = CloseFrame {
            code,
            reason: reason.into(),
        };
    }
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        e => io::Error::other(e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tunnel<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Close(frame))) => {
                    tracing::debug!(?frame, "tunnel: the peer closed the WebSocket");
                    this.read_done = true;
                    // tungstenite sends its answering close frame on the next read; what that
                    // read returns after a close is only the end or an error, so it is dropped.
                    let _ = this.ws.poll_next_unpin(cx);
                }
                Some(Ok(Message::Text(_))) => {
                    this.fail(CloseCode::Unsupported, "binary messages only");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text message in a tunnel of binary messages",
                    )));
                }
                // Pings (answered by tungstenite), pongs, raw frames.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    match &e {
                        WsError::Capacity(_) => this.fail(CloseCode::Size, "message too big"),
                        WsError::Protocol(_) => this.fail(CloseCode::Protocol, "protocol error"),
                        _ => {}
                    }
                    tracing::debug!(error = %e, "tunnel: reading the WebSocket failed");
                    return Poll::Ready(Err(io_error(e)));
                }
                None => this.read_done = true,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tunnel<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        ready!(this.ws.poll_ready_unpin(cx)).map_err(io_error)?;
        let n = buf.len().min(MAX_TUNNEL_MESSAGE);
        this.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
            .map_err(io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().ws.poll_flush_unpin(cx).map_err(io_error)
    }

    /// Sends the close frame (unless the peer closed first: then tungstenite's answer), flushes,
    /// and shuts the transport down. Close handshake errors only mean the peer is gone.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_queued {
            let queued = match ready!(this.ws.poll_ready_unpin(cx)) {
                Ok(()) => this
                    .ws
                    .start_send_unpin(Message::Close(Some(this.close.clone()))),
                Err(e) => Err(e),
            };
            if let Err(e) = queued {
                tracing::debug!(error = %e, "tunnel: no close frame sent");
            }
            this.close_queued = true;
        }
        if let Err(e) = ready!(this.ws.poll_close_unpin(cx)) {
            tracing::debug!(error = %e, "tunnel: closing the WebSocket");
        }
        Pin::new(this.ws.get_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    /// A server tunnel and the raw client WebSocket facing it.
    async fn pair() -> (Tunnel<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        (Tunnel::new(server), client)
    }

    #[tokio::test]
    async fn reads_ignore_message_boundaries() {
        let (mut tunnel, mut peer) = pair().await;
        for part in [&b"he"[..], b"", b"llo, ", b"tunnel"] {
            peer.send(Message::binary(part.to_vec())).await.unwrap();
        }
        peer.send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        peer.send(Message::binary(b"!".to_vec())).await.unwrap();
        let mut got = [0u8; 14];
        tunnel.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello, tunnel!");
        // A short read takes part of a message; the rest comes next.
        peer.send(Message::binary(b"abcdef".to_vec()))
            .await
            .unwrap();
        let mut small = [0u8; 4];
        assert_eq!(tunnel.read(&mut small).await.unwrap(), 4);
        assert_eq!(&small, b"abcd");
        assert_eq!(tunnel.read(&mut small).await.unwrap(), 2);
        assert_eq!(&small[..2], b"ef");
        // The ping was answered.
        tunnel.flush().await.unwrap();
        let pong = peer.next().await.unwrap().unwrap();
        assert_eq!(pong, Message::Pong(Bytes::from_static(b"p")));
    }

    #[tokio::test]
    async fn large_writes_are_split_into_messages() {
        let (mut tunnel, mut peer) = pair().await;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let write = async move {
            tunnel.write_all(&data).await.unwrap();
            tunnel.flush().await.unwrap();
            tunnel
        };
        let read = async {
            let mut got = Vec::new();
            let mut sizes = Vec::new();
            while got.len() < expected.len() {
                match peer.next().await.unwrap().unwrap() {
                    Message::Binary(data) => {
                        sizes.push(data.len());
                        got.extend_from_slice(&data);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            (got, sizes)
        };
        let (_tunnel, (got, sizes)) = tokio::join!(write, read);
        assert_eq!(got, expected);
        assert!(sizes.iter().all(|&n| n <= MAX_TUNNEL_MESSAGE), "{sizes:?}");
        assert_eq!(sizes.len(), 200_000usize.div_ceil(MAX_TUNNEL_MESSAGE));
    }

    #[tokio::test]
    async fn a_close_from_the_peer_is_end_of_file_and_is_answered() {
        let (mut tunnel, mut peer) = pair().await;
        peer.send(Message::binary(b"last".to_vec())).await.unwrap();
        peer.close(None).await.unwrap();
        let mut got = Vec::new();
        tunnel.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last");
        assert_eq!(tunnel.read(&mut [0u8; 8]).await.unwrap(), 0);
        // Writing after the close fails; shutting down still succeeds.
        assert!(tunnel.write_all(b"late").await.is_err());
        tunnel.shutdown().await.unwrap();
        // The peer got tungstenite's answer to its close, then the end.
        while let Some(msg) = peer.next().await {
            match msg {
                Ok(Message::Close(_)) | Err(WsError::ConnectionClosed) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn shutdown_sends_a_normal_close() {
        let (mut tunnel, mut peer) = pair().await;
        tunnel.write_all(b"bye").await.unwrap();
        tunnel.shutdown().await.unwrap();
        assert_eq!(
            peer.next().await.unwrap().unwrap(),
            Message::binary(b"bye".to_vec())
        );
        let Message::Close(Some(frame)) = peer.next().await.unwrap().unwrap() else {
            panic!("no close frame");
        };
        assert_eq!(frame.code, CloseCode::Normal);
        // The transport was shut down after the close frame.
        assert!(peer.next().await.is_none_or(|m| m.is_err()));
    }

    #[tokio::test]
    async fn a_text_message_is_an_error_and_closes_with_1003() {
        let (mut tunnel, mut peer) = pair().await;
        peer.send(Message::text("SPDY?")).await.unwrap();
        let err = tunnel.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        tunnel.shutdown().await.unwrap();
        let Message::Close(Some(frame)) = peer.next().await.unwrap().unwrap() else {
            panic!("no close frame");
        };
        assert_eq!(frame.code, CloseCode::Unsupported);
    }
}
