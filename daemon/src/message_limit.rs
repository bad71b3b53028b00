//! A request message larger than the daemon's limit is RESOURCE_EXHAUSTED, as grpc-go (and so
//! containerd) answers it, with the message's size and the limit.
//!
//! tonic checks each message's 5-byte prefix (compressed flag, big-endian length) against the
//! service's `max_decoding_message_size`, before it buffers the message, but answers
//! OUT_OF_RANGE (`tonic::codec::decode`), and no setting changes that. This tower layer on the
//! server follows the same prefixes as the request body streams through and fails the body
//! with RESOURCE_EXHAUSTED at the prefix of a message over the limit, before tonic sees it:
//! tonic's decoder passes a `Status` that a body fails with through unchanged. Nothing more of
//! the message is read; the services keep their own limit, the same, as a second line.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;

/// Length of a gRPC message prefix: the compressed flag and a big-endian `u32` length.
const PREFIX: usize = 5;

/// Wraps every request body in a [`LimitedBody`].
#[derive(Debug, Clone, Copy)]
pub struct MessageLimitLayer {
    /// Largest message accepted, in bytes.
    pub limit: usize,
}

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> tower::Service<http::Request<Body>> for MessageLimit<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let limit = self.limit;
        self.inner.call(req.map(|inner| {
            Body::new(LimitedBody {
                inner,
                limit,
                prefixes: Prefixes::default(),
            })
        }))
    }
}

/// Where a body is in its sequence of length-prefixed messages.
#[derive(Debug, Default)]
struct Prefixes {
    /// The prefix being read.
    prefix: [u8; PREFIX],
    /// How much of it has been seen.
    seen: usize,
    /// Bytes of the current message still to pass.
    left: u64,
}

impl Prefixes {
    /// Follows `data`; returns the length of a message over `limit`, if one begins in it.
    fn follow(&mut self, mut data: &[u8], limit: usize) -> Option<u64> {
        while !data.is_empty() {
            if self.left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(PREFIX - self.seen);
            self.prefix[self.seen..self.seen + n].copy_from_slice(&data[..n]);
            self.seen += n;
            data = &data[n..];
            if self.seen == PREFIX {
                self.seen = 0;
                let [_, a, b, c, d] = self.prefix;
                let len = u64::from(u32::from_be_bytes([a, b, c, d]));
                if len > limit as u64 {
                    return Some(len);
                }
                self.left = len;
            }
        }
        None
    }
}

/// A request body that fails with RESOURCE_EXHAUSTED at the prefix of a message over `limit`.
struct LimitedBody {
    inner: Body,
    limit: usize,
    prefixes: Prefixes,
}

/// The status for a request message of `len` bytes over `limit`.
pub fn too_large(len: u64, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "the request message is {len} bytes, more than the {limit} bytes ({} MiB) a message may have",
        limit >> 20
    ))
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        if let Some(data) = frame.data_ref()
            && let Some(len) = this.prefixes.follow(data, this.limit)
        {
            return Poll::Ready(Some(Err(too_large(len, this.limit))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    #[test]
    fn messages_are_followed_across_any_split() {
        let mut body = message(10);
        body.extend(message(0));
        body.extend(message(3));
        body.extend(&message(100)[..PREFIX]);
        for chunk in [1, 2, 4, 5, 6, 13, body.len()] {
            let mut p = Prefixes::default();
            let over: Vec<_> = body.chunks(chunk).filter_map(|c| p.follow(c, 10)).collect();
            assert_eq!(over, vec![100], "chunks of {chunk}");
        }
        let mut p = Prefixes::default();
        assert_eq!(p.follow(&body[..body.len() - PREFIX], 10), None);
    }

    #[test]
    fn the_status_names_size_and_limit() {
        let s = too_large(17 << 20, 16 << 20);
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("17825792 bytes"), "{}", s.message());
        assert!(s.message().contains("16777216 bytes"), "{}", s.message());
    }
}
