//! Results of the streaming list calls (`StreamImages`, `StreamPodSandboxes`,
//! `StreamContainers`) cut into batches that each stay far below the gRPC message limit, and
//! the guard that makes a List call too large for one message fail clearly.

use std::pin::Pin;

use prost::Message;
use tonic::Status;

/// Largest gRPC message accepted or sent (kubelet uses 16 MiB): the server's limit both ways
/// (`server.rs`; a larger request is RESOURCE_EXHAUSTED, [`crate::message_limit`]) and the
/// bound a List answer must stay under. Defined here, below the server, so that the CRI
/// handlers need not import the server that imports them.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Most items in one batch.
const BATCH_ITEMS: usize = 256;
/// Most encoded bytes in one batch (a single larger item still goes, alone). A kubelet pod's
/// labels and annotations may reach 256 KiB, so a count alone could not bound the size.
const BATCH_BYTES: usize = 4 << 20;

/// A server stream of responses built ahead.
pub type BatchStream<R> = Pin<Box<dyn futures::Stream<Item = Result<R, Status>> + Send>>;

/// Splits `items` into non-empty batches of at most [`BATCH_ITEMS`] items and about
/// [`BATCH_BYTES`] bytes, in order; no items, no batch.
pub fn batches<T: Message>(items: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for item in items {
        // Field tag and length prefix of a repeated message.
        let len = item.encoded_len() + 8;
        if !current.is_empty() && (current.len() == BATCH_ITEMS || bytes + len > BATCH_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The stream of `items` in batches, each wrapped by `wrap`.
pub fn stream<T, R>(items: Vec<T>, wrap: impl Fn(Vec<T>) -> R) -> BatchStream<R>
where
    T: Message,
    R: Send + 'static,
{
    let responses: Vec<Result<R, Status>> =
        batches(items).into_iter().map(|b| Ok(wrap(b))).collect();
    Box::pin(futures::stream::iter(responses))
}

/// Fails a List answer that could not be sent as one message with RESOURCE_EXHAUSTED naming
/// the streaming call to use, instead of the transport's bare "message too large".
pub fn fits<R: Message>(
    call: &str,
    what: &str,
    count: usize,
    stream_call: &str,
    resp: R,
) -> Result<R, Status> {
    let len = resp.encoded_len();
    if len > MAX_MESSAGE {
        return Err(Status::resource_exhausted(format!(
            "{call}: {count} {what} take {len} bytes, above the {} MiB gRPC message limit: \
             use {stream_call} or a filter",
            MAX_MESSAGE >> 20
        )));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use corral_cri_api::v1::PodSandbox;

    use super::*;

    fn pod(id: usize, pad: usize) -> PodSandbox {
        PodSandbox {
            id: format!("{id:064}"),
            runtime_handler: "x".repeat(pad),
            ..Default::default()
        }
    }

    #[test]
    fn batches_keep_order_and_bounds() {
        assert!(batches(Vec::<PodSandbox>::new()).is_empty());
        let small: Vec<_> = (0..1000).map(|i| pod(i, 0)).collect();
        let b = batches(small);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            [256, 256, 256, 232]
        );
        assert_eq!(b[3][231].id, format!("{:064}", 999));
        // 1 MiB items: four fit under the byte bound... barely not, so three per batch.
        let big: Vec<_> = (0..7).map(|i| pod(i, 1 << 20)).collect();
        let b = batches(big);
        assert!(
            b.iter()
                .all(|x| x.iter().map(|p| p.encoded_len()).sum::<usize>() <= BATCH_BYTES)
        );
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 7);
        // An item above the bound goes alone.
        let huge = batches(vec![pod(0, 5 << 20), pod(1, 0)]);
        assert_eq!(huge.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
    }
}
