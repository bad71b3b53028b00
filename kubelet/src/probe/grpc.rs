//! The grpc probe: `grpc.health.v1.Health/Check` over plain HTTP/2, SERVING is success.

use super::*;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub(super) service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct HealthCheckResponse {
    #[prost(enumeration = "ServingStatus", tag = "1")]
    pub(super) status: i32,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(super) enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    ServiceUnknown = 3,
}

pub(super) fn serving_status_name(status: i32) -> String {
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Unknown) => "UNKNOWN".to_owned(),
        Ok(ServingStatus::Serving) => "SERVING".to_owned(),
        Ok(ServingStatus::NotServing) => "NOT_SERVING".to_owned(),
        Ok(ServingStatus::ServiceUnknown) => "SERVICE_UNKNOWN".to_owned(),
        Err(_) => status.to_string(),
    }
}

pub(super) const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// A gRPC status code's name as grpc-go prints it.
pub(super) fn code_name(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".to_owned(),
        tonic::Code::Cancelled => "Canceled".to_owned(),
        other => format!("{other:?}"),
    }
}

pub(super) async fn grpc_probe(
    action: &GRPCAction,
    target: &Target<'_>,
    timeout: Duration,
) -> Outcome {
    if let Some(mode) = action.mode.as_deref().filter(|m| !m.is_empty())
        && !mode.eq_ignore_ascii_case("Plaintext")
    {
        return Outcome::Unknown(format!("unsupported grpc probe mode {mode:?}"));
    }
    let Some(ip) = target.pod_ip else {
        return Outcome::Unknown("the pod has no IP address".to_owned());
    };
    let port = match u16::try_from(action.port).ok().filter(|p| *p > 0) {
        Some(port) => port,
        None => return Outcome::Unknown(format!("invalid port number: {}", action.port)),
    };
    let addr = SocketAddr::new(ip, port).to_string();
    let service = action.service.clone().unwrap_or_default();
    let within = go_duration(timeout);
    let deadline = Instant::now() + timeout;

    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .and_then(|e| e.user_agent(format!("kube-probe/{KUBE_VERSION}")))
    {
        Ok(endpoint) => endpoint,
        Err(e) => return Outcome::Unknown(format!("grpc endpoint {addr}: {e}")),
    };
    let channel = match tokio::time::timeout_at(deadline, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => {
            return Outcome::Failure(format!(
                "error: failed to connect service at {}: {}",
                quoted(&addr),
                error_chain(&e)
            ));
        }
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {} within {within}: context deadline exceeded",
                quoted(&addr)
            ));
        }
    };

    let mut client = tonic::client::Grpc::new(channel);
    let call = async {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(error_chain(&e)))?;
        let mut request = tonic::Request::new(HealthCheckRequest { service });
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        client
            .unary(
                request,
                tonic::codegen::http::uri::PathAndQuery::from_static(HEALTH_CHECK_PATH),
                codec,
            )
            .await
    };
    let timed_out = format!("timeout: health rpc did not complete within {within}");
    match tokio::time::timeout_at(deadline, call).await {
        Err(_) => Outcome::Failure(timed_out),
        Ok(Err(status)) => match status.code() {
            tonic::Code::Unimplemented => Outcome::Failure(format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {}",
                status.message()
            )),
            tonic::Code::DeadlineExceeded => Outcome::Failure(timed_out),
            code => Outcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {}",
                code_name(code),
                status.message()
            )),
        },
        Ok(Ok(response)) => {
            let status = response.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Outcome::Success
            } else {
                Outcome::Failure(format!(
                    "service unhealthy (responded with {})",
                    quoted(&serving_status_name(status))
                ))
            }
        }
    }
}
