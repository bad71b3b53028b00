//! A tonic channel over a Unix socket.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// Failure to open a CRI connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to CRI socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to a CRI server listening on the Unix socket at `path`.
///
/// Accepts a plain path or a `unix://` URL, as crictl's `--runtime-endpoint` does.
pub async fn connect(path: impl AsRef<Path>) -> Result<Channel, ConnectError> {
    let raw = path.as_ref().to_string_lossy();
    let path = PathBuf::from(raw.strip_prefix("unix://").unwrap_or(&raw));
    let target = path.clone();
    // The URI is never dialled: the connector below opens the socket.
    let endpoint = Endpoint::from_static("http://corral.invalid");
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let target = target.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(target).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|source| ConnectError::Connect { path, source })
}
