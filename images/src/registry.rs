//! A distribution-API client: manifests and blobs over HTTP(S), with the registry auth flows.
//!
//! Written on reqwest rather than taken from oci-client because a runtime needs what that
//! crate does not offer: per-host TLS settings and extra headers from `hosts.toml`, the `ns=`
//! parameter on mirror requests, the OAuth2 refresh-token (identity token) exchange, and a hard
//! cap on manifest size while reading (a hostile registry must not make us buffer gigabytes).
//!
//! Auth: a request goes out with any cached token; on `401` the `WWW-Authenticate` challenge
//! decides: `Basic` resends with the username and password, `Bearer` fetches a token from the
//! realm (GET with basic credentials, or POST with the identity token) and resends once.
//! A registry token from the caller is sent as a bearer token from the first request on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE,
};

use crate::auth::Credentials;
use crate::hosts::Endpoint;

/// Media types we accept for manifests, most wanted first.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Why a fetch from one endpoint failed.
#[derive(Debug)]
pub enum FetchError {
    NotFound(String),
    Unauthorized(String),
    TooLarge(u64),
    /// The answer contradicts what the caller already knows: a `Content-Length` other than the
    /// descriptor's size, a `Docker-Content-Digest` other than the body's digest.
    Mismatch(String),
    Other(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotFound(d) => write!(f, "not found: {d}"),
            FetchError::Unauthorized(d) => write!(f, "unauthorized: {d}"),
            FetchError::TooLarge(n) => write!(f, "more than {n} bytes"),
            FetchError::Mismatch(d) => f.write_str(d),
            FetchError::Other(d) => f.write_str(d),
        }
    }
}

/// What the caller asks of one endpoint.
pub struct Target<'a> {
    pub endpoint: &'a Endpoint,
    pub repository: &'a str,
    /// The upstream registry name, sent as `ns=` to mirrors.
    pub upstream: &'a str,
    pub credentials: Option<&'a Credentials>,
}

impl Target<'_> {
    fn url(&self, kind: &str, reference: &str) -> String {
        let mut url = format!(
            "{}/{}/{kind}/{reference}",
            self.endpoint.api_base(),
            self.repository
        );
        if self.endpoint.is_mirror {
            url.push_str("?ns=");
            url.push_str(self.upstream);
        }
        url
    }

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    skip_verify: bool,
    ca: Vec<std::path::PathBuf>,
}

/// Shared HTTP clients (one per TLS setting) and cached bearer tokens.
pub struct RegistryClient {
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    pub max_manifest_bytes: u64,
}

impl Default for RegistryClient {
    fn default() -> Self {
        RegistryClient::new(4 << 20)
    }
}

impl RegistryClient {
    pub fn new(max_manifest_bytes: u64) -> RegistryClient {
        RegistryClient {
            clients: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            max_manifest_bytes,
        }
    }

    fn client(&self, ep: &Endpoint) -> Result<reqwest::Client, FetchError> {
        let key = ClientKey {
            skip_verify: ep.skip_verify,
            ca: ep.ca.clone(),
        };
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| FetchError::Other("client cache poisoned".into()))?;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut certs = Vec::new();
        for path in &ep.ca {
            let pem = std::fs::read(path)
                .map_err(|e| FetchError::Other(format!("read CA {}: {e}", path.display())))?;
            certs.push(
                reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| FetchError::Other(format!("CA {}: {e}", path.display())))?,
            );
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("corral/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            // A pull opens a connection per concurrent layer, each with read buffers of up to a
            // few hundred KiB (heaptrack: 4 MiB left after a pull burst); reqwest keeps idle
            // ones 90 s. Layers and back-to-back pulls reuse them within seconds.
            .pool_idle_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::custom(follow_redirect))
            .danger_accept_invalid_certs(ep.skip_verify);
        if !certs.is_empty() {
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::Other(format!("HTTP client: {e}")))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Fetches a manifest: its bytes, the content type the registry named, and the digest it
    /// claims in `Docker-Content-Digest` (for the caller to check against the bytes).
    pub async fn manifest(
        &self,
        t: &Target<'_>,
        reference: &str,
    ) -> Result<FetchedManifest, FetchError> {
        let resp = self
            .get(t, &t.url("manifests", reference), MANIFEST_TYPES.join(", "))
            .await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned())
        };
        let content_type = header(CONTENT_TYPE.as_str()).unwrap_or_default();
        let claimed_digest = header("docker-content-digest").filter(|d| !d.is_empty());
        let bytes = read_bounded(resp, self.max_manifest_bytes).await?;
        Ok(FetchedManifest {
            bytes,
            content_type,
            claimed_digest,
        })
    }

    /// Fetches a small blob (an image config) whole: exactly `size` bytes, the descriptor's.
    pub async fn small_blob(
        &self,
        t: &Target<'_>,
        digest: &str,
        size: u64,
    ) -> Result<Bytes, FetchError> {
        let resp = self.blob(t, digest, size).await?;
        read_bounded(resp, size).await.map_err(|e| match e {
            FetchError::TooLarge(_) => FetchError::Mismatch(format!(
                "the registry sent more than the {size} bytes the manifest names"
            )),
            e => e,
        })
    }

    /// Starts a blob download of `size` bytes (the descriptor's); the caller streams the body
    /// and holds it to that size. A `Content-Length` announcing another size is refused before
    /// any of the body is read.
    pub async fn blob(
        &self,
        t: &Target<'_>,
        digest: &str,
        size: u64,
    ) -> Result<reqwest::Response, FetchError> {
        let url = t.url("blobs", digest);
        let resp = self.get(t, &url, "*/*".into()).await?;
        match content_length(resp.headers()) {
            Some(announced) if announced != size => Err(FetchError::Mismatch(format!(
                "GET {url}: the registry announces {announced} bytes (Content-Length), the manifest names {size}"
            ))),
            _ => Ok(resp),
        }
    }

    async fn get(
        &self,
        t: &Target<'_>,
        url: &str,
        accept: String,
    ) -> Result<reqwest::Response, FetchError> {
        let client = self.client(t.endpoint)?;
        // Tokens are cached per set of credentials: a token obtained with one caller's
        // credentials must never serve a caller with other credentials, or none.
        let token_key = (
            t.endpoint.authority().to_owned(),
            format!("{} {}", t.scope(), fingerprint(t.credentials)),
        );
        let mut auth = t
            .credentials
            .filter(|c| !c.registry_token.is_empty())
            .map(|c| format!("Bearer {}", c.registry_token))
            .or_else(|| self.cached_token(&token_key));
        let mut backoff = RETRY_FIRST_WAIT;
        let mut reauthorized = false;
        let mut retries = 0;
        loop {
            let mut req = client.get(url).header(ACCEPT, accept.as_str());
            for (k, v) in &t.endpoint.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.as_str());
            }
            // No answer at all is not retried here: the next endpoint (a mirror's upstream) is
            // tried at once, as containerd does.
            let resp = req.send().await.map_err(|e| {
                // A redirect error would name the URL it came from, which may be a presigned
                // one with credentials in its query; our own message names the request's URL.
                let e = if e.is_redirect() { e.without_url() } else { e };
                FetchError::Other(format!("GET {url}: {}", error_chain(&e)))
            })?;
            match resp.status() {
                s if s.is_success() => return Ok(resp),
                s if retries < RETRIES && transient(s) => {
                    retries += 1;
                    let wait = retry_after(resp.headers()).unwrap_or(backoff);
                    tracing::debug!(url, status = %s, ?wait, "registry answered a transient error; retrying");
                    tokio::time::sleep(wait).await;
                    backoff *= 4;
                }
                StatusCode::NOT_FOUND => {
                    return Err(FetchError::NotFound(format!(
                        "GET {url}: {}",
                        body_hint(resp).await
                    )));
                }
                StatusCode::UNAUTHORIZED if !reauthorized => {
                    reauthorized = true;
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(Challenge::parse);
                    auth = Some(self.authorize(&client, t, challenge, &token_key).await?);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(FetchError::Unauthorized(format!(
                        "GET {url}: {}",
                        body_hint(resp).await
                    )));
                }
                s => {
                    return Err(FetchError::Other(format!(
                        "GET {url}: HTTP {s}: {}",
                        body_hint(resp).await
                    )));
                }
            }
        }
    }

    fn cached_token(&self, key: &(String, String)) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Answers a 401 challenge with an `Authorization` header value.
    async fn authorize(
        &self,
        client: &reqwest::Client,
        t: &Target<'_>,
        challenge: Option<Challenge>,
        token_key: &(String, String),
    ) -> Result<String, FetchError> {
        let creds = t.credentials.cloned().unwrap_or_default();
        let Some(challenge) = challenge else {
            return Err(FetchError::Unauthorized(
                "401 without a WWW-Authenticate challenge".into(),
            ));
        };
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            if creds.username.is_empty() {
                return Err(FetchError::Unauthorized(
                    "registry wants basic auth and no credentials were given".into(),
                ));
            }
            use base64::Engine as _;
            let raw = format!("{}:{}", creds.username, creds.password);
            return Ok(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ));
        }
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return Err(FetchError::Unauthorized(format!(
                "unsupported auth scheme {:?}",
                challenge.scheme
            )));
        }
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| FetchError::Unauthorized("bearer challenge without realm".into()))?;
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(FetchError::Unauthorized(format!(
                "token realm {realm:?} is not an HTTP URL"
            )));
        }
        let service = challenge.params.get("service").cloned().unwrap_or_default();
        let scope = challenge
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| t.scope());
        let resp = if !creds.identity_token.is_empty() {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", creds.identity_token.as_str()),
                ("service", service.as_str()),
                ("scope", scope.as_str()),
                ("client_id", "corral"),
            ];
            client.post(realm).form(&form).send().await
        } else {
            let mut req = client
                .get(realm)
                .query(&[("service", &service), ("scope", &scope)]);
            if !creds.username.is_empty() {
                req = req.basic_auth(&creds.username, Some(&creds.password));
            }
            req.send().await
        }
        .map_err(|e| FetchError::Other(format!("token request to {realm}: {}", error_chain(&e))))?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(FetchError::Unauthorized(format!(
                "token request to {realm}: HTTP {status}: {}",
                body_hint(resp).await
            )));
        }
        let body = read_bounded(resp, 1 << 20).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Other(format!("token response from {realm}: {e}")))?;
        let token = parsed
            .access_token
            .or(parsed.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                FetchError::Other(format!("token response from {realm} holds no token"))
            })?;
        let header = format!("Bearer {token}");
        let ttl = Duration::from_secs(parsed.expires_in.unwrap_or(60).clamp(10, 3600));
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(token_key.clone(), (header.clone(), Instant::now() + ttl));
        }
        Ok(header)
    }
}

/// A manifest as the registry answered it.
#[derive(Debug)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    /// The `Content-Type`, without parameters; empty when none.
    pub content_type: String,
    /// The `Docker-Content-Digest` header, when the registry sent one.
    pub claimed_digest: Option<String>,
}

/// Redirects followed for one request at most, as containerd and Docker (Go's HTTP client).
pub const MAX_REDIRECTS: usize = 10;

/// Why a redirect was not followed.
#[derive(Debug, thiserror::Error)]
enum RedirectError {
    #[error("redirect loop: the registry sent the request back to {0}, already visited")]
    Loop(String),
    #[error("stopped after {MAX_REDIRECTS} redirects (the next to {0})")]
    TooMany(String),
}

/// The redirect policy: at most [`MAX_REDIRECTS`] hops, and none back to a URL already
/// requested (a loop fails at once instead of after ten round trips). Blob downloads are
/// commonly redirected to a storage service; reqwest drops `Authorization` when the host
/// changes.
fn follow_redirect(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    // Named without the query string, which may hold a presigned URL's signature.
    let url = attempt.url();
    let mut shown = url.clone();
    shown.set_query(None);
    let shown = shown.to_string();
    if attempt.previous().contains(url) {
        return attempt.error(RedirectError::Loop(shown));
    }
    // The first of `previous` is the original request, not a redirect.
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(RedirectError::TooMany(shown));
    }
    attempt.follow()
}

/// A digest of the credentials, so the token cache can tell callers apart without keeping
/// secrets in its keys.
fn fingerprint(c: Option<&Credentials>) -> String {
    use sha2::Digest as _;
    let Some(c) = c else {
        return "anonymous".into();
    };
    let mut h = sha2::Sha256::new();
    for part in [
        &c.username,
        &c.password,
        &c.identity_token,
        &c.registry_token,
    ] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// A parsed `WWW-Authenticate` header: a scheme and its `key="value"` parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

impl Challenge {
    pub fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = HashMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        Challenge {
            scheme: scheme.to_owned(),
            params,
        }
    }
}

/// Reads a body, refusing (early, from Content-Length, or while reading) more than `limit`.
/// Retries of one request after a transient answer (a 5xx gateway or overload answer, 429),
/// waiting 200 ms, then 800 ms, then 3.2 s (or what `Retry-After` asks, up to 10 s).
const RETRIES: u32 = 3;
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(200);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Answers worth asking again: the registry or a proxy in front of it is overloaded or
/// restarting.
fn transient(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// `Retry-After` in seconds (the HTTP-date form is not used by registries), capped.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: u64 = h
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

async fn read_bounded(resp: reqwest::Response, limit: u64) -> Result<Bytes, FetchError> {
    if let Some(len) = content_length(resp.headers())
        && len > limit
    {
        return Err(FetchError::TooLarge(limit));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| FetchError::Other(format!("reading body: {}", error_chain(&e))))?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(FetchError::TooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A short, printable excerpt of an error body.
async fn body_hint(resp: reqwest::Response) -> String {
    let status = resp.status();
    match read_bounded(resp, 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b)
            .trim()
            .chars()
            .take(300)
            .collect(),
        _ => status.to_string(),
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let b = Challenge::parse(r#"Basic realm="Registry Realm""#);
        assert_eq!(b.scheme, "Basic");
        assert_eq!(b.params["realm"], "Registry Realm");
    }
}
