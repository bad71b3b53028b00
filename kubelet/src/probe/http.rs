//! The httpGet probe: the kubelet's client (same-host redirects only, its headers, a body
//! read up to a bound), 2xx and 3xx success, the kubelet's messages for everything else.

use super::*;

#[derive(Debug, thiserror::Error)]
#[error("stopped after 10 redirects")]
pub(super) struct TooManyRedirects;

/// The kubelet's redirect rule for probes: follow redirects to the same host name (any port),
/// at most 10; stop at a redirect elsewhere and return that response.
pub(super) fn same_host_redirects(
    attempt: reqwest::redirect::Attempt<'_>,
) -> reqwest::redirect::Action {
    let first = attempt
        .previous()
        .first()
        .and_then(|u| u.host_str())
        .map(str::to_owned);
    if attempt.url().host_str() != first.as_deref() {
        attempt.stop()
    } else if attempt.previous().len() >= 10 {
        attempt.error(TooManyRedirects)
    } else {
        attempt.follow()
    }
}

/// The HTTP client probes and handlers share: no certificate verification, no proxy, no
/// connection reuse, the kubelet's redirect rule. Timeouts are per request.
pub(super) fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .tls_danger_accept_invalid_hostnames(true)
                .no_proxy()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::custom(same_host_redirects))
                .build()
                .map_err(|e| format!("building the HTTP client: {}", error_chain(&e)))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The request an httpGet action makes: its URL and headers.
pub(super) fn http_request(
    action: &HTTPGetAction,
    target: &Target<'_>,
    user_agent: &str,
) -> Result<(reqwest::Url, HeaderMap), String> {
    if let Some(protocol) = action.protocol.as_deref().filter(|p| !p.is_empty())
        && !protocol.eq_ignore_ascii_case("HTTP/1.1")
    {
        return Err(format!("unsupported httpGet protocol {protocol:?}"));
    }
    let scheme = match action.scheme.as_deref().unwrap_or("") {
        "" => "http".to_owned(),
        s => s.to_ascii_lowercase(),
    };
    let port = resolve_port(&action.port, target.ports)?;
    let host = host_or_pod_ip(action.host.as_deref(), target)?;
    let path = action.path.as_deref().unwrap_or("");
    let slash = if path.starts_with('/') { "" } else { "/" };
    let url = format!("{scheme}://{}{slash}{path}", join_host_port(&host, port));
    let url = reqwest::Url::parse(&url).map_err(|e| format!("parse {url:?}: {e}"))?;

    let mut headers = HeaderMap::new();
    for header in action.http_headers.iter().flatten() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("invalid HTTP header name {:?}", header.name))?;
        let value = HeaderValue::from_str(&header.value).map_err(|_| {
            format!(
                "invalid HTTP header value for {:?}: {:?}",
                header.name, header.value
            )
        })?;
        headers.append(name, value);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(
            USER_AGENT,
            HeaderValue::from_str(user_agent).map_err(|e| e.to_string())?,
        );
    } else if headers.get(USER_AGENT).is_some_and(|v| v.is_empty()) {
        // Go sends no User-Agent when it is set but empty.
        headers.remove(USER_AGENT);
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    Ok((url, headers))
}

pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    match innermost.downcast_ref::<std::io::Error>() {
        Some(io) => io_error_text(io),
        None => innermost.to_string(),
    }
}

/// A failed request as Go's `*url.Error` prints it: `Get "http://…": …`.
pub(super) fn request_error(url: &reqwest::Url, e: &reqwest::Error) -> String {
    let detail = if e.is_timeout() {
        "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned()
    } else if e.is_connect() {
        let addr = join_host_port(
            url.host_str()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']'),
            url.port_or_known_default().unwrap_or(0),
        );
        format!("dial tcp {addr}: connect: {}", error_chain(e))
    } else {
        error_chain(e)
    };
    format!("Get {}: {detail}", quoted(url.as_str()))
}

pub(super) async fn read_limited(
    mut response: reqwest::Response,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while body.len() < MAX_OUTPUT {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(MAX_OUTPUT);
    Ok(body)
}

pub(super) async fn http_probe(
    action: &HTTPGetAction,
    target: &Target<'_>,
    timeout: Duration,
) -> Outcome {
    let (url, headers) = match http_request(action, target, &format!("kube-probe/{KUBE_VERSION}")) {
        Ok(request) => request,
        Err(e) => return Outcome::Unknown(e),
    };
    let client = match http_client() {
        Ok(client) => client,
        Err(e) => return Outcome::Unknown(e),
    };
    let deadline = Instant::now() + timeout;
    let sent = client
        .get(url.clone())
        .headers(headers)
        .timeout(timeout)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Outcome::Failure(request_error(&url, &e)),
    };
    let status = response.status().as_u16();
    let body = match tokio::time::timeout_at(deadline, read_limited(response)).await {
        Ok(Ok(body)) => String::from_utf8_lossy(&body).into_owned(),
        Ok(Err(e)) => return Outcome::Unknown(request_error(&url, &e)),
        Err(_) => {
            return Outcome::Unknown(format!(
                "reading the response of {}: context deadline exceeded",
                quoted(url.as_str())
            ));
        }
    };
    match status {
        200..=299 => Outcome::Success,
        300..=399 => {
            tracing::debug!(%url, status, "probe terminated redirects");
            Outcome::Warning(format!("Probe terminated redirects, Response body: {body}"))
        }
        _ => {
            tracing::debug!(%url, status, %body, "HTTP probe failed");
            // The kubelet keeps the body out of the user-facing message (issue 99425).
            Outcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
        }
    }
}
