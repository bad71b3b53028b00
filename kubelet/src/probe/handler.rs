//! Lifecycle handlers (`postStart`, `preStop`, `pkg/kubelet/lifecycle/handlers.go`): exec,
//! httpGet (any HTTP answer is success) or sleep; `tcpSocket` fails at run time, as in the
//! kubelet.

use super::*;

/// Why a lifecycle handler failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The exec handler could not run or exited non-zero.
    #[error("Exec lifecycle hook ({command}) failed - error: {error}, message: {output:?}")]
    Exec {
        /// The command, as Go prints a `[]string`: `[sh -c …]`.
        command: String,
        /// What went wrong (`command '…' exited with 1: …`).
        error: String,
        /// The command's output.
        output: String,
    },
    /// The HTTP request failed (the response's status does not matter).
    #[error("HTTP lifecycle hook ({path}) failed - error: {error}")]
    Http {
        /// The handler's path.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// The handler has no action this kubelet can run (none, or `tcpSocket`).
    #[error("Cannot run handler: {0}")]
    Invalid(String),
}

impl HandlerError {
    /// The kubelet's event message for a failed hook of `container` in `pod` (the pod as the
    /// kubelet formats it, `name_namespace(uid)`).
    pub fn event_message(&self, container: &str, pod: &str) -> String {
        match self {
            HandlerError::Exec {
                command,
                error,
                output,
            } => format!(
                "Exec lifecycle hook ({command}) for Container {} in Pod {} failed - error: \
                 {error}, message: {}",
                quoted(container),
                quoted(pod),
                quoted(output)
            ),
            HandlerError::Http { path, error } => format!(
                "HTTP lifecycle hook ({path}) for Container {} in Pod {} failed - error: {error}",
                quoted(container),
                quoted(pod)
            ),
            HandlerError::Invalid(_) => self.to_string(),
        }
    }
}

/// Runs a `postStart` or `preStop` handler to completion. Exec has no timeout and HTTP no
/// deadline, as in the kubelet: bound it by dropping the future.
pub async fn run_handler(h: &LifecycleHandler, target: &Target<'_>) -> Result<(), HandlerError> {
    if let Some(exec) = &h.exec {
        exec_handler(exec, target).await
    } else if let Some(http) = &h.http_get {
        http_handler(http, target).await
    } else if let Some(sleep) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0).unsigned_abs())).await;
        Ok(())
    } else if h.tcp_socket.is_some() {
        Err(HandlerError::Invalid(
            "invalid handler: tcpSocket is not supported as a lifecycle handler".to_owned(),
        ))
    } else {
        Err(HandlerError::Invalid(
            "invalid handler: no action".to_owned(),
        ))
    }
}

pub(super) async fn exec_handler(
    action: &ExecAction,
    target: &Target<'_>,
) -> Result<(), HandlerError> {
    let command = action.command.clone().unwrap_or_default();
    let joined = command.join(" ");
    let printed = format!("[{joined}]");
    match target
        .exec
        .exec_sync(target.container_id, command, Duration::ZERO)
        .await
    {
        Ok(output) if output.exit_code == 0 => Ok(()),
        Ok(output) => Err(HandlerError::Exec {
            command: printed,
            error: format!(
                "command '{joined}' exited with {}: {}",
                output.exit_code,
                String::from_utf8_lossy(&output.stderr)
            ),
            output: combined_output(&output),
        }),
        Err(e) => Err(HandlerError::Exec {
            command: printed,
            error: match e {
                ExecError::TimedOut => format!("command {} timed out", quoted(&joined)),
                ExecError::Failed(message) => message,
            },
            output: String::new(),
        }),
    }
}

/// Whether an HTTPS request failed because the server answered in plain HTTP (rustls reads
/// the HTTP response as a record of an invalid content type).
pub(super) fn is_plain_http_answer(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if text.contains("InvalidContentType") || text.contains("HTTP response to HTTPS") {
            return true;
        }
        source = err.source();
    }
    false
}

pub(super) async fn http_handler(
    action: &HTTPGetAction,
    target: &Target<'_>,
) -> Result<(), HandlerError> {
    let path = action.path.clone().unwrap_or_default();
    let fail = |error: String| HandlerError::Http {
        path: path.clone(),
        error,
    };
    if action.host.as_deref().is_none_or(str::is_empty) && target.pod_ip.is_none() {
        return Err(fail("failed to find networking container".to_owned()));
    }
    let (url, headers) =
        http_request(action, target, &format!("kube-lifecycle/{KUBE_VERSION}")).map_err(&fail)?;
    let client = http_client().map_err(&fail)?;
    let sent = client
        .get(url.clone())
        .headers(headers.clone())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let _ = read_limited(response).await;
            Ok(())
        }
        Err(e) if url.scheme() == "https" && is_plain_http_answer(&e) => {
            let mut plain = url.clone();
            // Always valid: switching between two special schemes.
            let _ = plain.set_scheme("http");
            let mut headers = headers;
            headers.remove(reqwest::header::AUTHORIZATION);
            tracing::warn!(
                host = url.host_str().unwrap_or(""),
                "HTTPS request to lifecycle hook got HTTP response, retrying with HTTP"
            );
            match client.get(plain).headers(headers).send().await {
                Ok(response) => {
                    let _ = read_limited(response).await;
                    Ok(())
                }
                Err(_) => Err(fail(request_error(&url, &e))),
            }
        }
        Err(e) => Err(fail(request_error(&url, &e))),
    }
}
