//! One stream of a session, as an async byte stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{Data, Frame, RstStatus, SynReply};
use super::shared::{ResetBy, Shared, StreamCell, StreamState};
use super::{Error, Headers};

/// The most one `poll_write` puts in a DATA frame.
pub(crate) const MAX_DATA_CHUNK: usize = 64 << 10;

/// A stream: reads return the peer's DATA until its FIN (then EOF), writes send DATA,
/// `shutdown` sends FIN (half-close). After a RST_STREAM either way, reads (once buffered data is
/// read) and writes fail. If the connection ends before the peer's FIN, reads fail.
///
/// Dropping a stream that is not finished both ways resets it (RST_STREAM CANCEL).
pub struct Stream {
    shared: Arc<Shared>,
    cell: Arc<StreamCell>,
    headers: Headers,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.cell.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Stream {
    pub(crate) fn new(shared: Arc<Shared>, cell: Arc<StreamCell>, headers: Headers) -> Self {
        Self {
            shared,
            cell,
            headers,
        }
    }

    pub fn id(&self) -> u32 {
        self.cell.id
    }

    /// The headers of the SYN_STREAM that opened the stream (the peer's or ours).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Sends RST_STREAM (CANCEL): both directions end at once, here and at the peer.
    pub fn reset(&self) {
        self.reset_with(RstStatus::CANCEL);
    }

    fn reset_with(&self, status: RstStatus) {
        let mut s = self.shared.lock();
        let mut st = self.cell.lock();
        // A stream already finished both ways (or reset, or whose session ended) has nothing
        // left to reset.
        if !s.streams.contains_key(&self.cell.id) {
            return;
        }
        s.send_rst(self.cell.id, status);
        st.reset = Some(ResetBy::Local);
        st.wake_reader();
        self.cell.space.notify_one();
        s.settle(self.cell.id, &st);
        drop(st);
        s.wake_writers();
    }

    /// Answers a peer-opened stream with an empty SYN_REPLY; false if it is already reset.
    pub(crate) fn reply(&self) -> bool {
        let mut s = self.shared.lock();
        let mut st = self.cell.lock();
        if st.reset.is_some() || st.closed.is_some() {
            return false;
        }
        if st.needs_reply {
            let reply = SynReply {
                stream_id: self.cell.id,
                fin: false,
                headers: Headers::new(),
            };
            st.last_seq = s.send(Frame::SynReply(reply));
            st.needs_reply = false;
            s.settle(self.cell.id, &st);
        }
        true
    }
}

fn write_error(id: u32, st: &StreamState) -> Option<io::Error> {
    if let Some(reset) = st.reset {
        return Some(reset_error(id, reset));
    }
    if let Some(reason) = &st.closed {
        return Some(io::Error::new(
            io::ErrorKind::BrokenPipe,
            Error::Closed(reason.clone()),
        ));
    }
    if st.local_fin {
        return Some(io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("SPDY stream {id}: write after shutdown"),
        ));
    }
    None
}

fn reset_error(id: u32, reset: ResetBy) -> io::Error {
    match reset {
        ResetBy::Peer(status) => {
            io::Error::new(io::ErrorKind::ConnectionReset, Error::Reset { id, status })
        }
        ResetBy::Local => io::Error::new(io::ErrorKind::ConnectionAborted, Error::LocalReset(id)),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.cell.lock();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(chunk) = st.recv.front_mut() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.advance(n);
            if chunk.is_empty() {
                st.recv.pop_front();
            }
            st.recv_len -= n;
            if !st.over(self.shared.limits.stream_recv_buffer) {
                self.cell.space.notify_one();
            }
            return Poll::Ready(Ok(()));
        }
        if st.remote_fin {
            return Poll::Ready(Ok(()));
        }
        if let Some(reset) = st.reset {
            return Poll::Ready(Err(reset_error(self.cell.id, reset)));
        }
        if let Some(reason) = &st.closed {
            let kind = match **reason {
                Error::PeerClosed => io::ErrorKind::UnexpectedEof,
                _ => io::ErrorKind::ConnectionAborted,
            };
            return Poll::Ready(Err(io::Error::new(kind, Error::Closed(reason.clone()))));
        }
        st.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut s = self.shared.lock();
        let mut st = self.cell.lock();
        if let Some(e) = write_error(self.cell.id, &st) {
            return Poll::Ready(Err(e));
        }
        if let Some(reason) = s.write_error() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                Error::Closed(reason),
            )));
        }
        if s.shutdown_queued {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "SPDY session is shutting down",
            )));
        }
        if s.queued_bytes >= self.shared.limits.write_queue {
            s.write_wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(MAX_DATA_CHUNK);
        let data = Data {
            stream_id: self.cell.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        st.last_seq = s.send(Frame::Data(data));
        Poll::Ready(Ok(n))
    }

    /// Ready once everything written so far has been handed to the connection.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.shared.lock();
        let last_seq = self.cell.lock().last_seq;
        if s.flushed_seq >= last_seq {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = s.write_error() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                Error::Closed(reason),
            )));
        }
        s.write_wakers.push(cx.waker().clone());
        Poll::Pending
    }

    /// Sends FIN (once), then flushes. The stream can still be read.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        {
            let mut s = self.shared.lock();
            let mut st = self.cell.lock();
            if !st.local_fin {
                if let Some(e) = write_error(self.cell.id, &st) {
                    return Poll::Ready(Err(e));
                }
                if let Some(reason) = s.write_error() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        Error::Closed(reason),
                    )));
                }
                st.last_seq = s.send_fin(self.cell.id);
                st.local_fin = true;
                s.settle(self.cell.id, &st);
            }
        }
        self.poll_flush(cx)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        let mut st = self.cell.lock();
        st.dropped = true;
        st.recv.clear();
        st.recv_len = 0;
        self.cell.space.notify_one();
        if s.streams.contains_key(&self.cell.id) {
            // Not finished both ways: tell the peer we are gone. A stream never accepted is
            // refused rather than cancelled.
            let status = if st.needs_reply {
                RstStatus::REFUSED_STREAM
            } else {
                RstStatus::CANCEL
            };
            if s.closed.is_none() {
                s.send_rst(self.cell.id, status);
            }
            st.reset = Some(ResetBy::Local);
            st.needs_reply = false;
            s.settle(self.cell.id, &st);
        }
    }
}
