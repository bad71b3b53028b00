//! The state a session's I/O task, its handles and its streams share.
//!
//! One mutex guards the session ([`State`]); each stream has its own ([`StreamState`]). Lock
//! order: the session before a stream, never the reverse, and neither is held across an await.
//! A [`super::Stream`] handle must never be dropped with the session lock held (its `Drop`
//! takes it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::frame::{Data, Frame, GoAway, GoAwayStatus, RstStatus, RstStream};
use super::{Error, Limits, Role, Stream};

/// What the writer is asked to do, in order.
pub(crate) enum Outbound {
    /// A frame; `cost` is what it counts against [`Limits::write_queue`].
    Frame { seq: u64, cost: usize, frame: Frame },
    /// Shut the connection's write side down after everything before it.
    Shutdown { seq: u64 },
}

pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) state: Mutex<State>,
    /// Signalled by the writer whenever it has written a batch.
    pub(crate) drained: Notify,
    /// Set once the writer has finished: the reader stops too.
    pub(crate) writer_done: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than losing the session; keep going with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the write queue is below its limit (or the session is over), so frames the
    /// reader answers with (PING replies, refusals) cannot pile up behind a peer that does not
    /// read.
    pub(crate) async fn write_space(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if s.queued_bytes < self.limits.write_queue
                    || s.closed.is_some()
                    || s.shutdown_queued
                {
                    return;
                }
            }
            notified.await;
        }
    }
}

/// Why a stream was reset.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ResetBy {
    Peer(RstStatus),
    Local,
}

pub(crate) struct State {
    pub(crate) role: Role,
    out: mpsc::UnboundedSender<Outbound>,
    pub(crate) streams: HashMap<u32, Arc<StreamCell>>,
    /// The next id we open; 0 once they are used up.
    pub(crate) next_stream_id: u32,
    pub(crate) last_peer_stream_id: u32,
    pub(crate) next_ping_id: u32,
    pub(crate) pings: HashMap<u32, oneshot::Sender<()>>,
    /// Where peer-opened streams go; `None` once no more are accepted.
    pub(crate) incoming: Option<mpsc::UnboundedSender<Stream>>,
    pub(crate) go_away_sent: bool,
    pub(crate) go_away_received: bool,
    pub(crate) shutdown_queued: bool,
    /// Why the session ended, once it has.
    pub(crate) closed: Option<Arc<Error>>,
    /// Why writing to the connection failed, if it did (reading may go on).
    pub(crate) write_failed: Option<Arc<Error>>,
    pub(crate) queued_bytes: usize,
    enqueued_seq: u64,
    pub(crate) flushed_seq: u64,
    /// Tasks waiting for queue space or for a flush.
    pub(crate) write_wakers: Vec<Waker>,
}

impl State {
    pub(crate) fn new(
        role: Role,
        out: mpsc::UnboundedSender<Outbound>,
        incoming: mpsc::UnboundedSender<Stream>,
    ) -> Self {
        let first = match role {
            Role::Client => 1,
            Role::Server => 2,
        };
        Self {
            role,
            out,
            streams: HashMap::new(),
            next_stream_id: first,
            last_peer_stream_id: 0,
            next_ping_id: first,
            pings: HashMap::new(),
            incoming: Some(incoming),
            go_away_sent: false,
            go_away_received: false,
            shutdown_queued: false,
            closed: None,
            write_failed: None,
            queued_bytes: 0,
            enqueued_seq: 0,
            flushed_seq: 0,
            write_wakers: Vec::new(),
        }
    }

    /// Queues a frame for the writer and returns its sequence number. Frames queued after the
    /// shutdown are dropped (the connection is going).
    pub(crate) fn send(&mut self, frame: Frame) -> u64 {
        if self.shutdown_queued {
            return self.enqueued_seq;
        }
        let cost = match &frame {
            Frame::Data(d) => d.data.len() + 8,
            _ => 64,
        };
        self.enqueued_seq += 1;
        let seq = self.enqueued_seq;
        self.queued_bytes += cost;
        // The writer owns the receiver until it stops; after that nothing is written anyway.
        let _ = self.out.send(Outbound::Frame { seq, cost, frame });
        seq
    }

    pub(crate) fn send_rst(&mut self, stream_id: u32, status: RstStatus) {
        self.send(Frame::RstStream(RstStream { stream_id, status }));
    }

    pub(crate) fn send_fin(&mut self, stream_id: u32) -> u64 {
        self.send(Frame::Data(Data {
            stream_id,
            fin: true,
            data: Bytes::new(),
        }))
    }

    /// Sends GOAWAY once; no more streams are accepted.
    pub(crate) fn go_away(&mut self, status: GoAwayStatus) {
        if !self.go_away_sent && self.closed.is_none() {
            let last_good_stream_id = self.last_peer_stream_id;
            self.send(Frame::GoAway(GoAway {
                last_good_stream_id,
                status,
            }));
        }
        self.go_away_sent = true;
        self.incoming = None;
        self.maybe_shutdown();
    }

    /// Queues the shutdown of the connection's write side.
    pub(crate) fn shutdown(&mut self) {
        if !self.shutdown_queued {
            self.enqueued_seq += 1;
            let _ = self.out.send(Outbound::Shutdown {
                seq: self.enqueued_seq,
            });
            self.shutdown_queued = true;
        }
    }

    /// After a GOAWAY either way, the connection goes once the last stream has.
    pub(crate) fn maybe_shutdown(&mut self) {
        if (self.go_away_sent || self.go_away_received) && self.streams.is_empty() {
            self.shutdown();
        }
    }

    /// Forgets a stream that is fully closed or reset (the handle keeps its unread data).
    pub(crate) fn settle(&mut self, id: u32, st: &StreamState) {
        let finished = st.reset.is_some() || (st.local_fin && st.remote_fin && !st.needs_reply);
        if finished && self.streams.remove(&id).is_some() {
            self.maybe_shutdown();
        }
    }

    pub(crate) fn wake_writers(&mut self) {
        for waker in self.write_wakers.drain(..) {
            waker.wake();
        }
    }

    /// The writer failed: nothing is queued any more, and writers waiting learn why.
    pub(crate) fn write_failed(&mut self, error: Error) {
        self.write_failed = Some(Arc::new(error));
        self.shutdown_queued = true;
        self.wake_writers();
    }

    /// Why writing is impossible, if it is.
    pub(crate) fn write_error(&self) -> Option<Arc<Error>> {
        self.write_failed.clone().or_else(|| self.closed.clone())
    }

    /// Ends the session: every stream, ping and waiter learns why; the connection is shut.
    pub(crate) fn close(&mut self, reason: Error) {
        let reason = self.closed.get_or_insert_with(|| Arc::new(reason)).clone();
        for (_, cell) in self.streams.drain() {
            let mut st = cell.lock();
            st.closed = Some(reason.clone());
            st.wake_reader();
            if let Some(reply) = st.reply.take() {
                let _ = reply.send(Err(Error::Closed(reason.clone())));
            }
            cell.space.notify_one();
        }
        self.pings.clear();
        self.incoming = None;
        self.wake_writers();
        self.shutdown();
    }
}

/// One stream's shared part: the table holds it while the stream is open, the handle for life.
pub(crate) struct StreamCell {
    pub(crate) id: u32,
    state: Mutex<StreamState>,
    /// Signalled when the reader frees buffer space (or the stream can take no more data).
    pub(crate) space: Notify,
}

impl StreamCell {
    pub(crate) fn new(id: u32, state: StreamState) -> Arc<Self> {
        Arc::new(Self {
            id,
            state: Mutex::new(state),
            space: Notify::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, StreamState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the stream's unread data is below `limit`, or nobody will read it.
    pub(crate) async fn recv_space(&self, limit: usize) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.lock();
                if !st.over(limit) || st.dropped || st.reset.is_some() || st.closed.is_some() {
                    return;
                }
            }
            notified.await;
        }
    }
}

#[derive(Default)]
pub(crate) struct StreamState {
    pub(crate) recv: std::collections::VecDeque<Bytes>,
    pub(crate) recv_len: usize,
    /// The peer sent FIN: no more data comes.
    pub(crate) remote_fin: bool,
    /// We sent FIN (or may not send: a unidirectional stream from the peer).
    pub(crate) local_fin: bool,
    pub(crate) reset: Option<ResetBy>,
    pub(crate) closed: Option<Arc<Error>>,
    pub(crate) read_waker: Option<Waker>,
    /// For a stream we opened: told when SYN_REPLY (or RST_STREAM) arrives.
    pub(crate) reply: Option<oneshot::Sender<Result<(), Error>>>,
    /// A peer-opened stream we have not replied to yet.
    pub(crate) needs_reply: bool,
    /// The handle is gone: data for it is thrown away.
    pub(crate) dropped: bool,
    /// The sequence number of our last frame on this stream (for flush).
    pub(crate) last_seq: u64,
}

/// The most DATA payloads one stream queues, whatever their size: a peer sending one-byte
/// frames cannot make the per-payload overhead outgrow the byte limit.
pub(crate) const MAX_QUEUED_PAYLOADS: usize = 1024;

/// Payloads smaller than this are copied out of the read buffer rather than pinning it.
pub(crate) const SMALL_PAYLOAD: usize = 4096;

impl StreamState {
    /// Whether the unread data is at or past `limit` bytes (or payloads).
    pub(crate) fn over(&self, limit: usize) -> bool {
        self.recv_len >= limit || self.recv.len() >= MAX_QUEUED_PAYLOADS
    }

    pub(crate) fn wake_reader(&mut self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }
}
