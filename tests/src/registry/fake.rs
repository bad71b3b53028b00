//! A tiny HTTP server that answers with canned responses, for registry behaviour that a real
//! registry refuses to produce: malformed or oversized manifests, lying digest and length
//! headers, a response that stalls half way, redirect loops, a tag that moves between requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::fixtures::sha256_digest;

/// Upper bound of a request head; requests are GET/HEAD without meaningful bodies.
const MAX_HEAD: usize = 64 * 1024;

/// One canned HTTP response.
#[derive(Debug, Clone)]
pub struct CannedResponse {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers. A `Content-Length` given here replaces the computed one (it may lie).
    pub headers: Vec<(String, String)>,
    /// The body (not sent for HEAD).
    pub body: Vec<u8>,
    /// Send only this many body bytes, then hold the connection open without sending more.
    pub stall_after: Option<usize>,
    /// Answer this many requests with `503 Service Unavailable` first.
    pub fail_first: usize,
    /// Send only this many body bytes, then reset the connection (TCP RST).
    pub reset_after: Option<usize>,
    /// Send no `Content-Length`: the body ends when the connection closes.
    pub omit_length: bool,
    /// Once this response has been served (after any `fail_first`), the route answers with
    /// `next` instead: a tag that moves, a blob that appears.
    pub next: Option<Box<CannedResponse>>,
}

impl CannedResponse {
    /// A response with `status` and `body`.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            stall_after: None,
            fail_first: 0,
            reset_after: None,
            omit_length: false,
            next: None,
        }
    }

    /// A `307 Temporary Redirect` to `location` (a path on this server or a whole URL).
    pub fn redirect(location: &str) -> Self {
        Self::new(307, "").header("Location", location)
    }

    /// Sends no `Content-Length`; the body is delimited by closing the connection.
    pub fn without_length(mut self) -> Self {
        self.omit_length = true;
        self
    }

    /// Serves this response once, then `next` for every later request.
    pub fn then(mut self, next: CannedResponse) -> Self {
        self.next = Some(Box::new(next));
        self
    }

    /// Resets the connection after `bytes` bytes of body.
    pub fn reset_after(mut self, bytes: usize) -> Self {
        self.reset_after = Some(bytes);
        self
    }

    /// Answers the first `n` requests with 503 before this response.
    pub fn fail_first(mut self, n: usize) -> Self {
        self.fail_first = n;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Stalls after `bytes` bytes of body.
    pub fn stall_after(mut self, bytes: usize) -> Self {
        self.stall_after = Some(bytes);
        self
    }
}

type Routes = Arc<Mutex<HashMap<String, CannedResponse>>>;
type Gate = Arc<Mutex<Option<BearerGate>>>;

/// Makes the fake registry demand bearer tokens, the way public registries do: every `/v2/...`
/// request without `Authorization: Bearer <token>` gets a 401 challenge pointing at the fake's
/// own `/token` endpoint, which hands out `token` for a GET with the right basic credentials
/// (or any GET when `basic` is `None`), or for a POST with the right OAuth2 refresh token.
#[derive(Debug, Clone)]
pub struct BearerGate {
    pub token: String,
    pub basic: Option<(String, String)>,
    pub refresh_token: Option<String>,
}
type Log = Arc<Mutex<Vec<String>>>;

/// A fake registry on `127.0.0.1:<free port>`, plain HTTP. Paths without a route answer 404;
/// `/v2/` answers 200 unless replaced. Stops when dropped.
#[derive(Debug)]
pub struct FakeRegistry {
    addr: SocketAddr,
    routes: Routes,
    gate: Gate,
    requests: Log,
    task: JoinHandle<()>,
}

impl FakeRegistry {
    /// Binds a free loopback port and starts serving.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding fake registry")?;
        let addr = listener.local_addr().context("local_addr")?;
        let routes: Routes = Arc::default();
        let requests: Log = Arc::default();
        let gate: Gate = Arc::default();
        let task = tokio::spawn(serve(
            listener,
            routes.clone(),
            requests.clone(),
            gate.clone(),
            addr,
        ));
        let fake = Self {
            addr,
            routes,
            gate,
            requests,
            task,
        };
        fake.route(
            "/v2/",
            CannedResponse::new(200, "{}").header("Content-Type", "application/json"),
        );
        Ok(fake)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Answers requests for `path` (no query string, e.g. `/v2/x/manifests/latest`).
    pub fn route(&self, path: &str, response: CannedResponse) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), response);
    }

    /// Serves `body` as manifest `name:reference` and as `name@<its sha256>`, with
    /// `Content-Type: media_type` and a correct `Docker-Content-Digest`.
    pub fn serve_manifest(&self, name: &str, reference: &str, media_type: &str, body: &[u8]) {
        let digest = sha256_digest(body);
        let resp = CannedResponse::new(200, body)
            .header("Content-Type", media_type)
            .header("Docker-Content-Digest", &digest);
        self.route(&format!("/v2/{name}/manifests/{reference}"), resp.clone());
        self.route(&format!("/v2/{name}/manifests/{digest}"), resp);
    }

    /// Serves `body` as blob `digest` of `name`, whether or not it matches.
    pub fn serve_blob(&self, name: &str, digest: &str, body: &[u8]) {
        let resp = CannedResponse::new(200, body)
            .header("Content-Type", "application/octet-stream")
            .header("Docker-Content-Digest", digest);
        self.route(&format!("/v2/{name}/blobs/{digest}"), resp);
    }

    /// Demands bearer tokens from now on (see [`BearerGate`]).
    pub fn require_bearer(&self, gate: BearerGate) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = Some(gate);
    }

    /// How many `GET` requests for exactly `path` (query ignored) arrived so far.
    pub fn gets(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter_map(|r| r.strip_prefix("GET "))
            .filter(|t| t.split('?').next() == Some(path))
            .count()
    }

    /// Requests received so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, routes: Routes, requests: Log, gate: Gate, addr: SocketAddr) {
    // Connections live in the set so that aborting this task ends them too.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    conns.spawn(handle(stream, routes.clone(), requests.clone(), gate.clone(), addr));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves one request and closes the connection (`Connection: close`).
async fn handle(
    mut stream: TcpStream,
    routes: Routes,
    requests: Log,
    gate: Gate,
    addr: SocketAddr,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(pos) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if head.len() > MAX_HEAD {
            return;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut parts = text.lines().next().unwrap_or_default().split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("{method} {target}"));
    let path = target.split('?').next().unwrap_or_default();
    let gate = gate.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if let Some(gate) = gate {
        let header = |name: &str| {
            text.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let resp = if path == "/token" {
            let body = read_body(&mut stream, &head[end + 4..], header("content-length")).await;
            token_response(&gate, &method, header("authorization"), &body)
        } else {
            let wanted = format!("Bearer {}", gate.token);
            (header("authorization").as_deref() != Some(wanted.as_str())).then(|| {
                let repo = path.strip_prefix("/v2/").and_then(|p| p.split("/manifests/").next()).unwrap_or("");
                let repo = repo.split("/blobs/").next().unwrap_or(repo);
                CannedResponse::new(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#).header(
                    "WWW-Authenticate",
                    &format!(r#"Bearer realm="http://{addr}/token",service="fake-registry",scope="repository:{repo}:pull""#),
                )
            })
        };
        if let Some(resp) = resp {
            let _ = write_response(&mut stream, &resp, method == "HEAD").await;
            return;
        }
    }
    let resp = routes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_mut(path)
        .map(|r| {
            if r.fail_first > 0 {
                r.fail_first -= 1;
                CannedResponse::new(503, "overloaded")
            } else if let Some(next) = r.next.take() {
                std::mem::replace(r, *next)
            } else {
                r.clone()
            }
        })
        .unwrap_or_else(|| {
            CannedResponse::new(
                404,
                r#"{"errors":[{"code":"NOT_FOUND","message":"no canned response"}]}"#,
            )
            .header("Content-Type", "application/json")
        });
    let _ = write_response(&mut stream, &resp, method == "HEAD").await;
}

/// The rest of a request body after the head, up to Content-Length (small bodies only).
async fn read_body(stream: &mut TcpStream, already: &[u8], len: Option<String>) -> Vec<u8> {
    let len: usize = len.and_then(|l| l.parse().ok()).unwrap_or(0).min(MAX_HEAD);
    let mut body = already.to_vec();
    let mut buf = [0u8; 4096];
    while body.len() < len {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    body.truncate(len);
    body
}

/// Answers the token endpoint; `None` never (always answers).
fn token_response(
    gate: &BearerGate,
    method: &str,
    auth: Option<String>,
    body: &[u8],
) -> Option<CannedResponse> {
    use base64::Engine as _;
    let deny = || Some(CannedResponse::new(401, r#"{"details":"bad credentials"}"#));
    let grant = |field: &str| {
        Some(
            CannedResponse::new(
                200,
                format!(r#"{{"{field}": "{}", "expires_in": 300}}"#, gate.token),
            )
            .header("Content-Type", "application/json"),
        )
    };
    if method == "POST" {
        let form = String::from_utf8_lossy(body);
        let refresh = form
            .split('&')
            .find_map(|kv| kv.strip_prefix("refresh_token="));
        let grant_type = form.split('&').any(|kv| kv == "grant_type=refresh_token");
        return match (&gate.refresh_token, refresh) {
            (Some(want), Some(got)) if grant_type && want == got => grant("access_token"),
            _ => deny(),
        };
    }
    match &gate.basic {
        None => grant("token"),
        Some((u, p)) => {
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            );
            if auth.as_deref() == Some(want.as_str()) {
                grant("token")
            } else {
                deny()
            }
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    resp: &CannedResponse,
    head_only: bool,
) -> Result<()> {
    let reason = reqwest::StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    out.push_str("Connection: close\r\nDocker-Distribution-API-Version: registry/2.0\r\n");
    let has_len = resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    if !has_len && !resp.omit_length {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    if !head_only {
        let n = resp
            .stall_after
            .unwrap_or(resp.body.len())
            .min(resp.body.len());
        let n = resp.reset_after.unwrap_or(n).min(n);
        stream.write_all(&resp.body[..n]).await?;
        if resp.reset_after.is_some() {
            stream.flush().await?;
            // Closed with a zero linger: the peer sees a reset, not an end.
            stream.set_zero_linger()?;
            return Ok(());
        }
        if resp.stall_after.is_some() {
            stream.flush().await?;
            std::future::pending::<()>().await;
        }
    }
    stream.shutdown().await?;
    Ok(())
}
