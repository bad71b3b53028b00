//! The reader: decodes the peer's frames and routes them to streams, answers PINGs, refuses
//! streams it cannot take, and applies backpressure by not reading while a stream is full.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tracing::{debug, trace, warn};

use super::frame::{
    Data, Frame, FrameDecoder, GoAway, GoAwayStatus, HeadersFrame, Ping, RstStatus, RstStream,
    SynReply, SynStream,
};
use super::shared::{ResetBy, SMALL_PAYLOAD, Shared, StreamCell, StreamState};
use super::{Error, Role, Stream};

/// Reads frames until the connection ends or the writer has shut it down.
pub(crate) async fn run<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    io: R,
    mut writer_done: watch::Receiver<bool>,
) {
    let result = tokio::select! {
        result = read_frames(&shared, io) => result,
        _ = writer_done.wait_for(|done| *done) => Err(Error::LocallyClosed),
    };
    let mut s = shared.lock();
    let reason = match result {
        Ok(()) => Error::PeerClosed,
        Err(Error::Frame(e)) => {
            warn!(error = %e, "SPDY session: protocol error from the peer");
            s.go_away(GoAwayStatus::PROTOCOL_ERROR);
            Error::Frame(e)
        }
        Err(e) => {
            debug!(error = %e, "SPDY session: reading ended");
            e
        }
    };
    s.close(reason);
}

async fn read_frames<R: AsyncRead + Unpin>(shared: &Arc<Shared>, mut io: R) -> Result<(), Error> {
    let mut decoder = FrameDecoder::new(&shared.limits);
    let mut buf = BytesMut::with_capacity(16 << 10);
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            trace!(frame = frame.name(), stream_id = ?frame.stream_id(), "SPDY frame in");
            // Only frames we may answer wait for the write queue to drain. DATA must not: the
            // queue may be full of what a stream's task writes back once it has read its input to
            // the end, so waiting here would stop the very reads that let it get there.
            if matches!(frame, Frame::Ping(_) | Frame::SynStream(_)) {
                shared.write_space().await;
            }
            dispatch(shared, frame).await;
        }
        buf.reserve(16 << 10);
        if io.read_buf(&mut buf).await? == 0 {
            return if buf.is_empty() {
                Ok(())
            } else {
                Err(Error::Truncated)
            };
        }
    }
}

async fn dispatch(shared: &Arc<Shared>, frame: Frame) {
    match frame {
        Frame::Data(data) => on_data(shared, data).await,
        Frame::SynStream(syn) => on_syn_stream(shared, syn),
        Frame::SynReply(SynReply { stream_id, fin, .. }) => on_reply(shared, stream_id, fin),
        Frame::RstStream(rst) => on_rst(shared, rst),
        Frame::Ping(Ping { id }) => {
            let mut s = shared.lock();
            let ours = (id & 1) == (s.next_ping_id & 1);
            if !ours {
                s.send(Frame::Ping(Ping { id }));
            } else if let Some(waiter) = s.pings.remove(&id) {
                let _ = waiter.send(());
            }
        }
        Frame::GoAway(go_away) => on_go_away(shared, go_away),
        Frame::Headers(HeadersFrame {
            stream_id,
            fin,
            headers,
        }) => {
            // spdystream hands these to `ReceiveHeader`, which the Kubernetes protocols never call.
            debug!(stream_id, ?headers, "SPDY HEADERS frame ignored");
            if fin {
                finish_remote(shared, stream_id);
            }
        }
        Frame::Settings(settings) => debug!(?settings, "SPDY SETTINGS ignored"),
        Frame::WindowUpdate(update) => {
            trace!(?update, "SPDY WINDOW_UPDATE ignored (no flow control)")
        }
    }
}

fn on_syn_stream(shared: &Arc<Shared>, syn: SynStream) {
    let id = syn.stream_id;
    let mut refused = None;
    {
        let mut s = shared.lock();
        let peer_parity = match s.role {
            Role::Server => 1,
            Role::Client => 0,
        };
        if id & 1 != peer_parity || id <= s.last_peer_stream_id {
            debug!(
                stream_id = id,
                last = s.last_peer_stream_id,
                "SPDY SYN_STREAM with a bad stream id refused"
            );
            s.send_rst(id, RstStatus::PROTOCOL_ERROR);
            return;
        }
        s.last_peer_stream_id = id;
        if s.incoming.is_none() || s.streams.len() >= shared.limits.max_streams {
            debug!(
                stream_id = id,
                open = s.streams.len(),
                "SPDY stream refused"
            );
            s.send_rst(id, RstStatus::REFUSED_STREAM);
            return;
        }
        let state = StreamState {
            remote_fin: syn.fin,
            local_fin: syn.unidirectional,
            needs_reply: true,
            ..StreamState::default()
        };
        let cell = StreamCell::new(id, state);
        s.streams.insert(id, cell.clone());
        let stream = Stream::new(shared.clone(), cell, syn.headers);
        if let Some(incoming) = &s.incoming
            && let Err(unsent) = incoming.send(stream)
        {
            // `Incoming` is gone; the stream is refused when dropped, after the lock.
            refused = Some(unsent.0);
        }
    }
    drop(refused);
}

async fn on_data(shared: &Arc<Shared>, data: Data) {
    let Data {
        stream_id,
        fin,
        data,
    } = data;
    let cell = {
        let mut s = shared.lock();
        let Some(cell) = s.streams.get(&stream_id).cloned() else {
            trace!(stream_id, "SPDY DATA for a stream that is gone; dropped");
            return;
        };
        let mut st = cell.lock();
        if st.remote_fin {
            debug!(stream_id, "SPDY DATA after FIN; dropped");
            return;
        }
        if !st.dropped && !data.is_empty() {
            st.recv_len += data.len();
            // A small payload would keep its whole read buffer alive while it waits.
            let data = if data.len() < SMALL_PAYLOAD {
                Bytes::copy_from_slice(&data)
            } else {
                data
            };
            st.recv.push_back(data);
        }
        st.remote_fin = fin;
        st.wake_reader();
        s.settle(stream_id, &st);
        drop(st);
        cell
    };
    // Backpressure: stop reading the connection until this stream's reader catches up.
    cell.recv_space(shared.limits.stream_recv_buffer).await;
}

fn on_reply(shared: &Arc<Shared>, stream_id: u32, fin: bool) {
    let mut s = shared.lock();
    let Some(cell) = s.streams.get(&stream_id).cloned() else {
        return;
    };
    let mut st = cell.lock();
    match st.reply.take() {
        Some(reply) => {
            let _ = reply.send(Ok(()));
        }
        None => debug!(stream_id, "unexpected SPDY SYN_REPLY ignored"),
    }
    if fin {
        st.remote_fin = true;
        st.wake_reader();
    }
    s.settle(stream_id, &st);
}

fn finish_remote(shared: &Arc<Shared>, stream_id: u32) {
    let mut s = shared.lock();
    if let Some(cell) = s.streams.get(&stream_id).cloned() {
        let mut st = cell.lock();
        st.remote_fin = true;
        st.wake_reader();
        s.settle(stream_id, &st);
    }
}

fn on_rst(shared: &Arc<Shared>, RstStream { stream_id, status }: RstStream) {
    let mut s = shared.lock();
    let Some(cell) = s.streams.get(&stream_id).cloned() else {
        return;
    };
    debug!(stream_id, %status, "SPDY stream reset by the peer");
    let mut st = cell.lock();
    st.reset = Some(ResetBy::Peer(status));
    st.wake_reader();
    if let Some(reply) = st.reply.take() {
        let _ = reply.send(Err(Error::Reset {
            id: stream_id,
            status,
        }));
    }
    cell.space.notify_one();
    s.settle(stream_id, &st);
    drop(st);
    s.wake_writers();
}

fn on_go_away(
    shared: &Arc<Shared>,
    GoAway {
        last_good_stream_id,
        status,
    }: GoAway,
) {
    let mut s = shared.lock();
    debug!(
        last_good_stream_id,
        status = status.0,
        "SPDY GOAWAY from the peer"
    );
    s.go_away_received = true;
    s.incoming = None;
    // Streams we opened that the peer never saw will get no reply.
    let ours = match s.role {
        Role::Client => 1,
        Role::Server => 0,
    };
    let unseen: Vec<_> = s
        .streams
        .iter()
        .filter(|(id, _)| *id & 1 == ours && **id > last_good_stream_id)
        .map(|(_, cell)| cell.clone())
        .collect();
    for cell in unseen {
        let mut st = cell.lock();
        if let Some(reply) = st.reply.take() {
            let status = RstStatus::REFUSED_STREAM;
            let _ = reply.send(Err(Error::Reset {
                id: cell.id,
                status,
            }));
            st.reset = Some(ResetBy::Peer(status));
            s.settle(cell.id, &st);
        }
    }
    s.maybe_shutdown();
}
