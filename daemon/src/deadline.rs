//! The client's gRPC deadline, as seen by a handler.
//!
//! tonic enforces `grpc-timeout` itself, but answers CANCELLED when it fires. Handlers that may
//! run long wrap their work in [`within`], whose timer fires a little earlier than tonic's, so
//! the client gets DEADLINE_EXCEEDED and the work is dropped (and cleaned up by its guards).

use std::future::Future;
use std::time::Duration;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// Our timer runs ahead of tonic's (and of the client's own timer) by a twentieth of the
/// deadline, at least 1 ms and at most 250 ms, so our answer is on the wire first.
fn margin(d: Duration) -> Duration {
    (d / 20).clamp(Duration::from_millis(1), Duration::from_millis(250))
}

/// Parses the `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n).
pub fn from_metadata(md: &MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs `work` within the request's deadline, if it has one.
pub async fn within<T>(
    deadline: Option<Duration>,
    what: &str,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match deadline {
        None => work.await,
        Some(d) => tokio::time::timeout(d.saturating_sub(margin(d)), work)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "{what}: deadline of {d:?} exceeded"
                )))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let mut md = MetadataMap::new();
        md.insert("grpc-timeout", "1m".parse().expect("value"));
        assert_eq!(from_metadata(&md), Some(Duration::from_millis(1)));
        md.insert("grpc-timeout", "2S".parse().expect("value"));
        assert_eq!(from_metadata(&md), Some(Duration::from_secs(2)));
        md.insert("grpc-timeout", "x".parse().expect("value"));
        assert_eq!(from_metadata(&md), None);
    }
}
