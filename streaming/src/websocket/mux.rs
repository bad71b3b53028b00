//! The channel multiplexer. A connection runs as three futures in one task: the reader
//! demultiplexes client messages into per-channel queues, the writer sends what the session's
//! [`ChannelWriter`]s queue, and the session itself. None is spawned, so dropping the connection
//! drops everything.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut as _, Bytes, BytesMut};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::io::StreamReader;
use tokio_util::sync::{CancellationToken, PollSender};

use super::Codec;
use crate::remotecommand::CLOSE_SIGNAL_CHANNEL;

/// Largest message accepted from a client (stdin chunks and forwarded data are far smaller).
pub const MAX_MESSAGE_SIZE: usize = 512 * 1024;
/// Largest payload the server puts in one message.
const MAX_OUTPUT_CHUNK: usize = 32 * 1024;
/// Messages queued per input channel before the reader waits for the session to consume them.
const INPUT_QUEUE: usize = 4;
/// Messages queued for the writer.
const OUTPUT_QUEUE: usize = 16;
/// How long a finished session waits for the client to answer the close handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The WebSocket configuration for every connection: bounded messages, modest buffers.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(32 * 1024)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}
/// One message for the client.
#[derive(Debug)]
pub struct OutFrame {
    pub channel: u8,
    pub data: Bytes,
}

/// The session's end of an input channel: the client's bytes, end-of-file when the client
/// half-closes it (v5) or the connection ends.
pub type ChannelReader = StreamReader<ReceiverStream<io::Result<Bytes>>, Bytes>;

/// The session's end of an output channel: each write becomes one message (at most 32 KiB).
/// Writes wait while the writer's queue is full; they fail once the connection is gone.
pub struct ChannelWriter {
    channel: u8,
    tx: PollSender<OutFrame>,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        if ready!(this.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(MAX_OUTPUT_CHUNK);
        let frame = OutFrame {
            channel: this.channel,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        match this.tx.send_item(frame) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The server never half-closes a channel on the wire (the kubelet does not either); this
    /// only releases the writer's place in the queue.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx.close();
        Poll::Ready(Ok(()))
    }
}

/// The channels of one connection, before it runs: hand out readers and writers to the session,
/// queue the first messages, then [`run`](Channels::run).
pub struct Channels {
    inputs: Vec<Option<mpsc::Sender<io::Result<Bytes>>>>,
    frames: mpsc::Sender<OutFrame>,
    frames_rx: mpsc::Receiver<OutFrame>,
    initial: Vec<OutFrame>,
}

impl Channels {
    /// Channels `0..count`, none readable yet.
    pub fn new(count: usize) -> Self {
        let (frames, frames_rx) = mpsc::channel(OUTPUT_QUEUE);
        Self {
            inputs: (0..count).map(|_| None).collect(),
            frames,
            frames_rx,
            initial: Vec::new(),
        }
    }

    /// Makes `channel` readable and returns the session's end of it.
    /// A channel outside `0..count` is never fed: its reader is at end-of-file at once.
    pub fn reader(&mut self, channel: u8) -> ChannelReader {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        if let Some(slot) = self.inputs.get_mut(usize::from(channel)) {
            *slot = Some(tx);
        }
        StreamReader::new(ReceiverStream::new(rx))
    }

    /// A writer for `channel`.
    pub fn writer(&self, channel: u8) -> ChannelWriter {
        ChannelWriter {
            channel,
            tx: PollSender::new(self.frames.clone()),
        }
    }

    /// Queues a message to send before anything the session writes (even an empty one).
    pub fn send_first(&mut self, channel: u8, data: &[u8]) {
        self.initial.push(OutFrame {
            channel,
            data: Bytes::copy_from_slice(data),
        });
    }

    /// Runs the connection until the session ends (then closes the WebSocket), the client goes
    /// away, or `shutdown` fires. Dropping the session is how a vanished client is handled.
    pub async fn run<S, F>(
        self,
        ws: WebSocketStream<S>,
        codec: Codec,
        close_signal: bool,
        session: F,
        shutdown: &CancellationToken,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
        F: Future<Output = ()>,
    {
        let Channels {
            inputs,
            frames,
            frames_rx,
            initial,
        } = self;
        // From here on only the session's writers keep the queue open: when the session has
        // dropped them all, the writer sends what is left and closes the WebSocket.
        drop(frames);
        let (mut sink, mut stream) = ws.split();
        let (abort, abort_rx) = oneshot::channel();
        let connection = async {
            let reader = read_loop(&mut stream, codec, close_signal, inputs);
            let writer = write_loop(&mut sink, codec, initial, frames_rx, abort_rx);
            tokio::pin!(reader, writer, session);

            let mut writer_done = false;
            tokio::select! {
                () = &mut session => {}
                close = &mut reader => {
                    // The client closed the connection or broke the protocol; in the latter
                    // case tell it why before hanging up.
                    if let Some(close) = close {
                        let _ = abort.send(close);
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut writer).await;
                    } else {
                        tracing::debug!("client closed the connection before the session ended");
                    }
                    return;
                }
                ok = &mut writer => {
                    if !ok {
                        tracing::debug!("client stopped taking data");
                        return;
                    }
                    // Every writer is gone, so the session is finishing.
                    writer_done = true;
                    tokio::select! {
                        () = &mut session => {}
                        _ = &mut reader => return,
                        () = shutdown.cancelled() => return,
                    }
                }
                () = shutdown.cancelled() => return,
            }
            // The session is over: let the writer flush and close, and the reader see the
            // client's close frame, for a bounded time.
            let close = async {
                if !writer_done {
                    writer.await;
                }
                let _ = reader.await;
            };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        };
        connection.await;
        // Shut the transport down cleanly (TLS close_notify, TCP FIN), bounded in time.
        if let Ok(mut ws) = stream.reunite(sink) {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.get_mut().shutdown()).await;
        }
    }
}

/// A close frame for a client that broke the rules.
fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Reads client messages and feeds the input channels until the connection ends. Returns the
/// close frame to send when the client broke the protocol.
async fn read_loop<S>(
    stream: &mut futures::stream::SplitStream<WebSocketStream<S>>,
    codec: Codec,
    close_signal: bool,
    mut inputs: Vec<Option<mpsc::Sender<io::Result<Bytes>>>>,
) -> Option<CloseFrame>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = stream.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Text(text)) => Bytes::from(text),
            // Pings are answered by tungstenite; after a close frame it answers on the next
            // read, which then ends the stream.
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "reading from the WebSocket");
                return match e {
                    WsError::Capacity(_) => Some(close_frame(CloseCode::Size, "message too big")),
                    WsError::Protocol(_) | WsError::Utf8(_) => {
                        Some(close_frame(CloseCode::Protocol, "protocol error"))
                    }
                    _ => None,
                };
            }
        };
        let Some(&first) = data.first() else {
            continue;
        };
        if close_signal && first == CLOSE_SIGNAL_CHANNEL {
            // `[255, channel]`; anything else is a protocol error that ends the connection.
            let Some(slot) = (data.len() == 2)
                .then(|| inputs.get_mut(usize::from(data[1])))
                .flatten()
            else {
                tracing::debug!(len = data.len(), "malformed CLOSE signal");
                return Some(close_frame(CloseCode::Protocol, "malformed CLOSE signal"));
            };
            *slot = None;
            continue;
        }
        let channel = match codec {
            Codec::Binary => first,
            Codec::Base64 => first.wrapping_sub(b'0'),
        };
        let Some(slot) = inputs.get_mut(usize::from(channel)) else {
            continue;
        };
        let Some(tx) = slot else {
            continue;
        };
        let payload = match codec {
            Codec::Binary => data.slice(1..),
            Codec::Base64 => match STANDARD.decode(&data[1..]) {
                Ok(raw) => Bytes::from(raw),
                Err(e) => {
                    tracing::debug!(error = %e, channel, "dropping a message that is not base64");
                    continue;
                }
            },
        };
        if payload.is_empty() {
            continue;
        }
        if tx.send(Ok(payload)).await.is_err() {
            // The session no longer reads this channel.
            *slot = None;
        }
    }
    None
}

/// Sends the initial messages, then whatever the session writes; when every writer is gone,
/// closes the WebSocket. A close frame on `abort` is sent at once and ends the loop. Returns
/// whether everything was sent.
async fn write_loop<S>(
    sink: &mut futures::stream::SplitSink<WebSocketStream<S>, Message>,
    codec: Codec,
    initial: Vec<OutFrame>,
    mut frames: mpsc::Receiver<OutFrame>,
    mut abort: oneshot::Receiver<CloseFrame>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for frame in initial {
        if sink.feed(encode(codec, frame)).await.is_err() {
            return false;
        }
    }
    loop {
        // Feed what is queued, flush when the queue runs dry.
        let frame = match frames.try_recv() {
            Ok(frame) => frame,
            Err(_) => {
                if sink.flush().await.is_err() {
                    return false;
                }
                tokio::select! {
                    frame = frames.recv() => match frame {
                        Some(frame) => frame,
                        None => break,
                    },
                    close = &mut abort => {
                        if let Ok(close) = close {
                            let _ = sink.send(Message::Close(Some(close))).await;
                        }
                        return false;
                    }
                }
            }
        };
        if let Err(e) = sink.feed(encode(codec, frame)).await {
            tracing::debug!(error = %e, "writing to the WebSocket");
            return false;
        }
    }
    sink.send(Message::Close(Some(close_frame(CloseCode::Normal, ""))))
        .await
        .is_ok()
}

/// Encodes one channel message.
pub fn encode(codec: Codec, frame: OutFrame) -> Message {
    match codec {
        Codec::Binary => {
            let mut buf = BytesMut::with_capacity(frame.data.len() + 1);
            buf.put_u8(frame.channel);
            buf.put_slice(&frame.data);
            Message::Binary(buf.freeze())
        }
        Codec::Base64 => {
            let mut text = String::with_capacity(1 + frame.data.len().div_ceil(3) * 4);
            text.push(char::from(b'0'.wrapping_add(frame.channel)));
            STANDARD.encode_string(&frame.data, &mut text);
            Message::text(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_encode_like_wsstream() {
        let frame = |channel, data: &[u8]| OutFrame {
            channel,
            data: Bytes::copy_from_slice(data),
        };
        assert_eq!(
            encode(Codec::Binary, frame(1, b"hi")),
            Message::Binary(Bytes::from_static(b"\x01hi"))
        );
        // wsstream's example: "\n" on stdout is "1Cg==".
        assert_eq!(
            encode(Codec::Base64, frame(1, b"\n")),
            Message::text("1Cg==")
        );
        assert_eq!(encode(Codec::Base64, frame(3, b"")), Message::text("3"));
    }
}
