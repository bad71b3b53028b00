//! The writer: the only code that writes to the connection. It owns the outbound header
//! compression context, so frames with headers are compressed in exactly the order they are sent.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{debug, trace};

use super::Error;
use super::frame::FrameEncoder;
use super::shared::{Outbound, Shared};

/// Bytes gathered into one write before it goes out.
const BATCH: usize = 256 << 10;

/// Writes queued frames in batches until told to shut down or the connection fails.
pub(crate) async fn run<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
    mut io: W,
) -> Result<(), Error> {
    let mut encoder = FrameEncoder::new();
    let mut buf = BytesMut::with_capacity(64 << 10);
    // The state holds a sender for as long as `shared` lives, so this only ends by returning.
    while let Some(first) = queue.recv().await {
        let (mut cost, mut last_seq, mut shutdown) = (0, 0, false);
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outbound::Frame {
                    seq,
                    cost: c,
                    frame,
                } => {
                    trace!(frame = frame.name(), stream_id = ?frame.stream_id(), "SPDY frame out");
                    encoder.encode(&frame, &mut buf)?;
                    cost += c;
                    last_seq = seq;
                }
                Outbound::Shutdown { seq } => {
                    last_seq = seq;
                    shutdown = true;
                    break;
                }
            }
            if buf.len() < BATCH {
                next = queue.try_recv().ok();
            }
        }
        io.write_all(&buf).await?;
        io.flush().await?;
        buf.clear();
        {
            let mut s = shared.lock();
            s.queued_bytes = s.queued_bytes.saturating_sub(cost);
            s.flushed_seq = last_seq;
            s.wake_writers();
        }
        shared.drained.notify_waiters();
        if shutdown {
            debug!("SPDY session: shutting the connection down");
            // The peer may already be gone; there is nothing left to tell it either way.
            let _ = io.shutdown().await;
            return Ok(());
        }
    }
    Ok(())
}
