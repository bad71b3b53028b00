//! The tcpSocket probe: a connection within the timeout is success.

use super::*;

pub(super) async fn tcp_probe(
    action: &TCPSocketAction,
    target: &Target<'_>,
    timeout: Duration,
) -> Outcome {
    let port = match resolve_port(&action.port, target.ports) {
        Ok(port) => port,
        Err(e) => return Outcome::Unknown(e),
    };
    let host = match host_or_pod_ip(action.host.as_deref(), target) {
        Ok(host) => host,
        Err(e) => return Outcome::Unknown(e),
    };
    let addr = join_host_port(&host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(stream)) => {
            drop(stream);
            Outcome::Success
        }
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {}", io_error_text(&e))),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}
