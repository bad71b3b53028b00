//! The SPDY/3.1 transport: [`SpdyTransport`] on top of the [`spdy`](crate::spdy) session.
//!
//! As the kubelet does (`remotecommand/httpstream.go`, `portforward/httpstream.go`):
//!
//! - **Remote command.** Every stream the client opens is sorted by its `streamtype` header into
//!   a [`StreamCollector`]; an unknown or repeated type is reset. Once the collector is complete
//!   the session runs; streams opened after that are reset. A client that has not opened its
//!   streams within [`STREAM_CREATION_TIMEOUT`] gets its connection closed. When the session has
//!   ended (status written), every stream is reset and the connection closed, like the kubelet's
//!   `conn.Close()`.
//! - **Port-forward.** Streams are paired by `requestid` in a [`PairTable`] (a stream without
//!   the header gets the kubelet's fallback: its own id for an error stream, its id − 2 for a
//!   data stream); a refused stream is reset; every complete pair is forwarded concurrently on
//!   the one connection; a pair still incomplete after [`STREAM_CREATION_TIMEOUT`] is dropped
//!   (its streams reset, without the kubelet's "timed out" message on the error stream). The
//!   connection ends when the client closes it (or sends GOAWAY and its forwards end).
//!
//! Everything runs inside the future the server spawns; nothing is spawned here, so `shutdown`
//! or the client going away drops every stream and forward.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::BoxStream;
use crate::portforward::{PORT_HEADER, PairTable, REQUEST_ID_HEADER};
use crate::remotecommand::STREAM_TYPE_HEADER;
use crate::spdy::{Incoming, Session, Stream};
use crate::transport::{
    PortForwardSession, RemoteCommandSession, STREAM_CREATION_TIMEOUT, SpdyTransport,
    StreamCollector,
};

/// How long a finished connection may take to flush its last frames before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The SPDY/3.1 transport, for [`StreamingServer::start`](crate::StreamingServer::start).
pub fn spdy_transport() -> Arc<dyn SpdyTransport> {
    Arc::new(Spdy {
        stream_creation_timeout: STREAM_CREATION_TIMEOUT,
    })
}

/// The transport with a shorter stream creation timeout (for tests).
pub fn spdy_transport_with_timeout(stream_creation_timeout: Duration) -> Arc<dyn SpdyTransport> {
    Arc::new(Spdy {
        stream_creation_timeout,
    })
}

struct Spdy {
    stream_creation_timeout: Duration,
}

/// Runs `handle` over an SPDY server session on `io` until it ends or `shutdown` fires, then
/// finishes the connection.
fn serve<F>(
    io: BoxStream,
    shutdown: CancellationToken,
    handle: impl FnOnce(Incoming) -> F + Send + 'static,
) -> BoxFuture<'static, ()>
where
    F: std::future::Future<Output = ()> + Send,
{
    Box::pin(async move {
        let (conn, incoming) = Session::server(io);
        tokio::select! {
            () = handle(incoming) => {}
            () = shutdown.cancelled() => {}
        }
        finish(conn).await;
    })
}

impl SpdyTransport for Spdy {
    fn serve_remote_command(
        &self,
        io: BoxStream,
        session: RemoteCommandSession,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        let timeout = self.stream_creation_timeout;
        serve(io, shutdown, move |incoming| {
            remote_command(incoming, session, timeout)
        })
    }

    fn serve_port_forward(
        &self,
        io: BoxStream,
        session: Arc<PortForwardSession>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        let timeout = self.stream_creation_timeout;
        serve(io, shutdown, move |incoming| {
            port_forward(incoming, session, timeout)
        })
    }
}

/// Resets what is left, says GOAWAY and waits (bounded) for the connection to be flushed.
async fn finish(conn: Session) {
    conn.abort();
    let _ = tokio::time::timeout(CLOSE_GRACE, conn.closed()).await;
}

fn header<'a>(stream: &'a Stream, name: &str) -> &'a str {
    stream.headers().get(name).unwrap_or("")
}

async fn remote_command(mut incoming: Incoming, session: RemoteCommandSession, timeout: Duration) {
    let mut collector = StreamCollector::new(&session);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while !collector.is_complete() {
        let stream = tokio::select! {
            s = incoming.accept() => s,
            () = &mut deadline => {
                tracing::debug!("SPDY remote command: timed out waiting for client to create streams");
                return;
            }
        };
        let Some(stream) = stream else {
            tracing::debug!("SPDY remote command: the client went before opening its streams");
            return;
        };
        let kind = header(&stream, STREAM_TYPE_HEADER).to_owned();
        let id = stream.id();
        // The collector takes the stream by value; a refused one is dropped, which resets it.
        if let Err(e) = collector.add(&kind, Box::new(stream)) {
            tracing::debug!(error = %e, id, "SPDY remote command: refusing a stream");
        }
    }
    let streams = match collector.finish() {
        Ok(streams) => streams,
        Err(e) => {
            tracing::debug!(error = %e, "SPDY remote command: incomplete streams");
            return;
        }
    };
    let run = session.run(streams);
    tokio::pin!(run);
    let mut accepting = true;
    loop {
        tokio::select! {
            outcome = &mut run => {
                tracing::debug!(?outcome, "SPDY remote command finished");
                return;
            }
            extra = incoming.accept(), if accepting => match extra {
                // Streams past the expected ones are not read: reset them so they cannot stall
                // the connection.
                Some(stream) => stream.reset(),
                None => accepting = false,
            },
        }
    }
}

/// The key that pairs a stream, with the kubelet's fallback for clients that send none.
fn request_id(stream: &Stream) -> String {
    let given = header(stream, REQUEST_ID_HEADER);
    if !given.is_empty() {
        return given.to_owned();
    }
    let id = stream.id();
    match header(stream, STREAM_TYPE_HEADER) {
        "data" => id.saturating_sub(2).to_string(),
        _ => id.to_string(),
    }
}

async fn port_forward(mut incoming: Incoming, session: Arc<PortForwardSession>, timeout: Duration) {
    let mut table = PairTable::default();
    // When each half-open pair was first seen, for the timeout.
    let mut opened: HashMap<String, Instant> = HashMap::new();
    let mut forwards = FuturesUnordered::<BoxFuture<'static, ()>>::new();
    let mut accepting = true;
    let mut sweep = tokio::time::interval(
        timeout
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10)),
    );
    loop {
        tokio::select! {
            stream = incoming.accept(), if accepting => {
                let Some(stream) = stream else {
                    accepting = false;
                    continue;
                };
                let id = request_id(&stream);
                let kind = header(&stream, STREAM_TYPE_HEADER).to_owned();
                let port = header(&stream, PORT_HEADER).to_owned();
                let sid = stream.id();
                match table.add(&kind, &port, &id, session.ports(), Box::new(stream) as BoxStream) {
                    Ok(Some(pair)) => {
                        opened.remove(&id);
                        let session = Arc::clone(&session);
                        forwards.push(Box::pin(async move {
                            session.forward(pair.port, pair.data, pair.error).await;
                        }));
                    }
                    Ok(None) => {
                        opened.entry(id).or_insert_with(Instant::now);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, id = sid, "SPDY port-forward: refusing a stream");
                    }
                }
            }
            Some(()) = forwards.next(), if !forwards.is_empty() => {}
            _ = sweep.tick() => {
                let now = Instant::now();
                opened.retain(|id, since| {
                    if now.duration_since(*since) < timeout {
                        return true;
                    }
                    tracing::debug!(request_id = %id, "SPDY port-forward: timed out waiting for the stream pair");
                    table.remove(id);
                    false
                });
            }
        }
        if !accepting && forwards.is_empty() {
            return;
        }
    }
}
