//! A SPDY session over one connection: its handles, [`Session`] and [`Incoming`].
//!
//! One spawned task drives the connection: the [`super::reader`] and the [`super::writer`] run
//! side by side in it. It ends when the peer closes the connection, on an I/O or protocol error, or after
//! our own shutdown (GOAWAY and no streams left, or [`Session::abort`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::debug;

use super::frame::{Frame, GoAwayStatus, MAX_STREAM_ID, Ping, RstStatus, SynStream};
use super::shared::{ResetBy, Shared, State, StreamCell, StreamState};
use super::{Error, Headers, Limits, Stream, reader, writer};

/// Which end of the connection we are: the client opens odd stream ids, the server even ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// A SPDY session. Dropping it is [`Session::close`]: keep it while streams may still be
/// opened or accepted. Streams keep working after it is dropped.
pub struct Session {
    shared: Arc<Shared>,
    finished: watch::Receiver<bool>,
}

/// The streams the peer opens, in order.
pub struct Incoming {
    shared: Arc<Shared>,
    streams: mpsc::UnboundedReceiver<Stream>,
}

impl Session {
    /// A session answering a client (the kubelet's side). Needs a tokio runtime.
    pub fn server<T>(io: T) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::new(io, Role::Server, Limits::default())
    }

    /// A session opening streams to a server (kubectl's side). Needs a tokio runtime.
    pub fn client<T>(io: T) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::new(io, Role::Client, Limits::default())
    }

    /// A session in either role with explicit limits. Spawns the task that drives `io`, so it
    /// needs a tokio runtime.
    pub fn new<T>(io: T, role: Role, limits: Limits) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (writer_done, writer_done_rx) = watch::channel(false);
        let (finished_tx, finished) = watch::channel(false);
        let shared = Arc::new(Shared {
            limits,
            state: Mutex::new(State::new(role, out_tx, in_tx)),
            drained: Notify::new(),
            writer_done,
        });
        let (rd, wr) = tokio::io::split(io);
        let task_shared = shared.clone();
        tokio::spawn(async move {
            let reader = reader::run(task_shared.clone(), rd, writer_done_rx);
            let writer = async {
                match writer::run(task_shared.clone(), out_rx, wr).await {
                    Ok(()) => {
                        // Our shutdown went out: nothing more is read either.
                        task_shared.lock().close(Error::LocallyClosed);
                        task_shared.writer_done.send_replace(true);
                    }
                    Err(e) => {
                        // Nothing more can be sent, but what the peer sent before it went is
                        // still read and delivered; the reader ends the session at EOF.
                        debug!(error = %e, "SPDY session: writing failed");
                        task_shared.lock().write_failed(e);
                    }
                }
                task_shared.drained.notify_waiters();
            };
            tokio::join!(reader, writer);
            finished_tx.send_replace(true);
        });
        let incoming = Incoming {
            shared: shared.clone(),
            streams: in_rx,
        };
        (Session { shared, finished }, incoming)
    }

    pub fn role(&self) -> Role {
        self.shared.lock().role
    }

    /// Streams open now (either side); fully closed and reset streams are gone from the count.
    pub fn active_streams(&self) -> usize {
        self.shared.lock().streams.len()
    }

    /// Opens a stream: sends SYN_STREAM with `headers` (and FIN if `fin`: we send no data) and
    /// waits for the peer's SYN_REPLY, which comes once the peer's application accepts the
    /// stream. A RST_STREAM instead is [`Error::Reset`]. Dropping the future resets the stream.
    pub async fn open_stream(&self, headers: Headers, fin: bool) -> Result<Stream, Error> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let cell = {
            let mut s = self.shared.lock();
            if let Some(reason) = &s.closed {
                return Err(Error::Closed(reason.clone()));
            }
            if s.go_away_sent || s.go_away_received || s.shutdown_queued {
                return Err(Error::GoingAway);
            }
            if s.streams.len() >= self.shared.limits.max_streams {
                return Err(Error::TooManyStreams(self.shared.limits.max_streams));
            }
            let id = s.next_stream_id;
            if id == 0 {
                return Err(Error::StreamIdsExhausted);
            }
            s.next_stream_id = id
                .checked_add(2)
                .filter(|n| *n <= MAX_STREAM_ID)
                .unwrap_or(0);
            let state = StreamState {
                local_fin: fin,
                reply: Some(reply_tx),
                ..StreamState::default()
            };
            let cell = StreamCell::new(id, state);
            s.streams.insert(id, cell.clone());
            let syn = SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                fin,
                unidirectional: false,
                headers: headers.clone(),
            };
            cell.lock().last_seq = s.send(Frame::SynStream(syn));
            cell
        };
        // From here on, dropping the handle (this future cancelled, or an error) resets the stream.
        let stream = Stream::new(self.shared.clone(), cell, headers);
        match reply_rx.await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.closed_error()),
        }
    }

    /// Sends a PING and waits for its echo.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut s = self.shared.lock();
            if let Some(reason) = s.closed.as_ref().or(s.write_failed.as_ref()) {
                return Err(Error::Closed(reason.clone()));
            }
            if s.shutdown_queued {
                return Err(Error::GoingAway);
            }
            let id = s.next_ping_id;
            // Wrap within 31 bits, keeping the parity that tells our pings from the peer's.
            s.next_ping_id = if id > 0x7fff_fffd {
                id - 0x7fff_fffe
            } else {
                id + 2
            };
            s.pings.insert(id, tx);
            s.send(Frame::Ping(Ping { id }));
            id
        };
        let start = Instant::now();
        let result = rx.await;
        self.shared.lock().pings.remove(&id);
        result.map_err(|_| self.closed_error())?;
        Ok(start.elapsed())
    }

    /// Sends GOAWAY: neither side opens streams any more; open streams run to their end, then
    /// the connection is shut. Idempotent.
    pub fn close(&self) {
        self.shared.lock().go_away(GoAwayStatus::OK);
    }

    /// Resets every open stream, sends GOAWAY and shuts the connection down (what the kubelet's
    /// `Close` does once a command has ended).
    pub fn abort(&self) {
        let mut s = self.shared.lock();
        let streams: Vec<_> = s.streams.drain().map(|(_, cell)| cell).collect();
        for cell in streams {
            let mut st = cell.lock();
            st.reset = Some(ResetBy::Local);
            st.wake_reader();
            if let Some(reply) = st.reply.take() {
                let _ = reply.send(Err(Error::LocalReset(cell.id)));
            }
            s.send_rst(cell.id, RstStatus::CANCEL);
            cell.space.notify_one();
        }
        s.go_away(GoAwayStatus::OK);
        s.shutdown();
        s.wake_writers();
    }

    /// Waits until the connection is finished with (both directions).
    pub async fn closed(&self) {
        let mut finished = self.finished.clone();
        // An error means the task is gone, which is finished too.
        let _ = finished.wait_for(|done| *done).await;
    }

    fn closed_error(&self) -> Error {
        match &self.shared.lock().closed {
            Some(reason) => Error::Closed(reason.clone()),
            None => Error::LocallyClosed,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

impl Incoming {
    /// The next stream the peer opens, already answered with an empty SYN_REPLY (as the
    /// kubelet's handler does). `None` once the session is closed or going away. To refuse a
    /// stream, [`Stream::reset`] it.
    pub async fn accept(&mut self) -> Option<Stream> {
        loop {
            let stream = self.streams.recv().await?;
            if stream.reply() {
                return Some(stream);
            }
            // Reset by the peer before we got to it.
            drop(stream);
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Streams still queued are dropped with the receiver, after this, and refused then.
        self.shared.lock().incoming = None;
    }
}
