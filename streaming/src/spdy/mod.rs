//! SPDY/3.1 as Kubernetes streaming uses it: the framing ([`frame`]), compressed header blocks
//! ([`Headers`]) and a multiplexed [`Session`] of [`Stream`]s over one async byte stream.
//!
//! The peer is `github.com/moby/spdystream` (kubectl, the kubelet, crictl), so its wire
//! behaviour is the reference, not the letter of the draft:
//!
//! - **Stream ids.** The client opens odd ids from 1, the server even ids from 2; a peer's ids
//!   must grow. A stream is created with SYN_STREAM and answered with SYN_REPLY (empty headers,
//!   as the kubelet sends); data is only sent after the reply (spdystream drops DATA for a
//!   stream it has not replied to, or whose reply it has not seen).
//! - **Accepting.** [`Incoming::accept`] replies at once. The kubelet checks a stream's headers
//!   before replying and resets instead of replying to one it rejects; here a rejected stream is
//!   replied to, then reset (spdystream then reads it as ended).
//! - **Half-close and reset.** An empty DATA frame with FIN ends one direction; RST_STREAM
//!   (CANCEL from [`Stream::reset`] and from dropping an unfinished [`Stream`]) ends both.
//! - **PING.** Answered automatically; a client's ping ids are odd, a server's even.
//! - **GOAWAY.** Sent by [`Session::close`] (and on drop): no new streams either way, open ones
//!   run on. spdystream stops reading as soon as it receives a GOAWAY, so with a Go peer a GOAWAY
//!   ends the connection in practice: close a session when its work is done.
//! - **No flow control.** SPDY/3 specifies 64 KiB stream windows and WINDOW_UPDATE, but
//!   spdystream never sends WINDOW_UPDATE nor SETTINGS and ignores both when received, sending
//!   as much as it likes. A sender that honoured windows would stall forever after 64 KiB, so
//!   this session does not count windows, never sends WINDOW_UPDATE and ignores received
//!   WINDOW_UPDATE and SETTINGS frames.
//! - **Backpressure instead.** Each stream buffers at most [`Limits::stream_recv_buffer`]
//!   bytes the application has not read; past that the session stops reading the connection
//!   until the application reads (spdystream blocks its frame loop the same way). A stream nobody
//!   reads therefore stalls every stream of its session: read every stream you accept, or drop or
//!   reset it. The alternatives are unbounded memory or dropping data. Writes wait once
//!   [`Limits::write_queue`] bytes are queued for the connection.
//!
//! Everything from the peer is untrusted: frame lengths, the decompressed size of header blocks,
//! the number of headers and of concurrent streams are bounded by [`Limits`], and any malformed
//! frame ends the session with an error, never a panic.

pub mod frame;
mod headers;
mod reader;
mod session;
mod shared;
mod stream;
mod writer;

pub use frame::{FrameError, GoAwayStatus, RstStatus};
pub use headers::{HeaderError, Headers};
pub use session::{Incoming, Role, Session};
pub use stream::Stream;

use std::sync::Arc;

/// Bounds on what a peer can make a session hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest frame payload accepted (at most [`frame::MAX_PAYLOAD`], 16 MiB − 1).
    pub max_frame_len: usize,
    /// The largest decompressed header block.
    pub max_header_block: usize,
    /// The most header names in one block.
    pub max_headers: usize,
    /// The most streams open at once, both sides together; more SYN_STREAMs are refused.
    pub max_streams: usize,
    /// Bytes one stream buffers for its reader before the session stops reading the connection
    /// (also at most 1024 DATA payloads, so tiny frames cannot multiply the overhead).
    pub stream_recv_buffer: usize,
    /// Bytes queued for the connection before writers wait.
    pub write_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_len: frame::MAX_PAYLOAD,
            // Kubernetes sends a few short headers; this times `max_streams` bounds what streams
            // waiting to be accepted can hold.
            max_header_block: 64 << 10,
            max_headers: 256,
            max_streams: 1024,
            stream_recv_buffer: 256 << 10,
            write_queue: 1 << 20,
        }
    }
}

/// Errors of a session or one of its streams.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("SPDY connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the SPDY connection")]
    PeerClosed,
    #[error("the peer closed the SPDY connection in the middle of a frame")]
    Truncated,
    #[error("the SPDY session was closed locally")]
    LocallyClosed,
    #[error("SPDY session closed: {0}")]
    Closed(Arc<Error>),
    #[error("the SPDY session is going away: no new streams")]
    GoingAway,
    #[error("SPDY stream {id} was reset by the peer ({status})")]
    Reset { id: u32, status: RstStatus },
    #[error("SPDY stream {0} was reset locally")]
    LocalReset(u32),
    #[error("too many concurrent SPDY streams (limit {0})")]
    TooManyStreams(usize),
    #[error("SPDY stream ids are exhausted")]
    StreamIdsExhausted,
}
