//! Client of the distribution HTTP API, enough to push fixtures and read them back.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reqwest::{Method, StatusCode, Url};

use crate::fixtures::{media_types, sha256_digest};

/// HTTP client of one registry (`http://<addr>`, or `https://<addr>` trusting one CA),
/// optionally with basic auth. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    addr: String,
    base: Url,
    http: reqwest::Client,
    auth: Option<(String, String)>,
}

/// A manifest as served by `GET /v2/<name>/manifests/<reference>`.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// `Content-Type` of the response.
    pub media_type: String,
    /// `Docker-Content-Digest` header, if present.
    pub digest: Option<String>,
    /// The exact bytes served.
    pub body: Vec<u8>,
}

impl FetchedManifest {
    /// sha256 of the bytes served, `sha256:<hex>`.
    pub fn computed_digest(&self) -> String {
        sha256_digest(&self.body)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("manifest is not JSON")
    }
}

impl RegistryClient {
    /// A client of the registry at `addr` (`host:port`), plain HTTP, no auth.
    pub fn new(addr: &str) -> Result<Self> {
        Self::build(addr, None)
    }

    /// A client of the registry at `addr` (`host:port`) over HTTPS, trusting only the CA
    /// certificate `ca_pem` (no system roots), no auth.
    pub fn with_ca(addr: &str, ca_pem: &[u8]) -> Result<Self> {
        Self::build(addr, Some(ca_pem))
    }

    fn build(addr: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        let base = Url::parse(&format!("{scheme}://{addr}/"))
            .with_context(|| format!("invalid registry address {addr:?}"))?;
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300));
        if let Some(pem) = ca_pem {
            let ca = reqwest::Certificate::from_pem(pem).context("parsing CA certificate")?;
            builder = builder.tls_certs_only([ca]);
        }
        let http = builder.build().context("building HTTP client")?;
        Ok(Self {
            addr: addr.to_owned(),
            base,
            http,
            auth: None,
        })
    }

    /// The same client, sending basic-auth credentials with every request.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// The same client without credentials.
    pub fn anonymous(mut self) -> Self {
        self.auth = None;
        self
    }

    /// `host:port` of the registry.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A request to `path` (e.g. `/v2/`) with this client's credentials, for tests that look
    /// at raw status codes and headers.
    pub fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder> {
        let url = self
            .base
            .join(path)
            .with_context(|| format!("invalid path {path:?}"))?;
        Ok(self.request_url(method, url))
    }

    fn request_url(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.auth {
            Some((user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        }
    }

    /// Status of `GET /v2/` (200, or 401 without valid credentials on an auth registry).
    pub async fn ping(&self) -> Result<StatusCode> {
        let resp = self.request(Method::GET, "/v2/")?.send().await?;
        Ok(resp.status())
    }

    /// Whether repository `name` has blob `digest` (`HEAD /v2/<name>/blobs/<digest>`).
    pub async fn blob_exists(&self, name: &str, digest: &str) -> Result<bool> {
        let resp = self
            .request(Method::HEAD, &format!("/v2/{name}/blobs/{digest}"))?
            .send()
            .await
            .context("HEAD blob")?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => bail!("HEAD /v2/{name}/blobs/{digest}: {s}"),
        }
    }

    /// Uploads `data` to repository `name` (monolithic: `POST .../blobs/uploads/` then
    /// `PUT <location>?digest=`) and returns its digest. Skips the upload if the blob exists.
    pub async fn push_blob_raw(&self, name: &str, data: &[u8]) -> Result<String> {
        let digest = sha256_digest(data);
        if !self.blob_exists(name, &digest).await? {
            self.push_blob_as(name, &digest, data.to_vec()).await?;
        }
        Ok(digest)
    }

    /// Uploads `data` claiming it has `digest`, without checking. The registry verifies the
    /// digest and answers 400 `DIGEST_INVALID` on a mismatch, which is returned as an error.
    pub async fn push_blob_as(&self, name: &str, digest: &str, data: Vec<u8>) -> Result<()> {
        let resp = self
            .request(Method::POST, &format!("/v2/{name}/blobs/uploads/"))?
            .send()
            .await
            .context("POST blob upload")?;
        let resp = check(resp, &format!("POST /v2/{name}/blobs/uploads/")).await?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .context("upload response without Location")?
            .to_str()
            .context("Location is not ASCII")?;
        let mut url = self
            .base
            .join(location)
            .with_context(|| format!("invalid upload Location {location:?}"))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let len = data.len();
        let resp = self
            .request_url(Method::PUT, url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .send()
            .await
            .context("PUT blob")?;
        check(resp, &format!("PUT blob {digest} ({len} bytes) to {name}")).await?;
        Ok(())
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `bytes` as given and `Content-Type:
    /// media_type`. Returns the digest the registry reports (`Docker-Content-Digest`).
    pub async fn push_manifest_raw(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let resp = self
            .request(Method::PUT, &format!("/v2/{name}/manifests/{reference}"))?
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .context("PUT manifest")?;
        let resp = check(resp, &format!("PUT manifest {name}:{reference}")).await?;
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| sha256_digest(bytes));
        Ok(digest)
    }

    /// `GET /v2/<name>/manifests/<reference>` accepting OCI and Docker manifests and indexes.
    pub async fn get_manifest(&self, name: &str, reference: &str) -> Result<FetchedManifest> {
        let accept = [
            media_types::OCI_MANIFEST,
            media_types::OCI_INDEX,
            media_types::DOCKER_MANIFEST,
            media_types::DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let resp = self
            .request(Method::GET, &format!("/v2/{name}/manifests/{reference}"))?
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .context("GET manifest")?;
        let resp = check(resp, &format!("GET manifest {name}:{reference}")).await?;
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let media_type = header("content-type").unwrap_or_default();
        let digest = header("docker-content-digest");
        let body = resp
            .bytes()
            .await
            .context("reading manifest body")?
            .to_vec();
        Ok(FetchedManifest {
            media_type,
            digest,
            body,
        })
    }

    /// `GET /v2/<name>/blobs/<digest>`, unverified.
    pub async fn get_blob(&self, name: &str, digest: &str) -> Result<Vec<u8>> {
        let resp = self
            .request(Method::GET, &format!("/v2/{name}/blobs/{digest}"))?
            .send()
            .await
            .context("GET blob")?;
        let resp = check(resp, &format!("GET blob {name}@{digest}")).await?;
        Ok(resp.bytes().await.context("reading blob")?.to_vec())
    }

    /// `DELETE /v2/<name>/manifests/<digest>` (the registry has delete enabled).
    pub async fn delete_manifest(&self, name: &str, digest: &str) -> Result<()> {
        let resp = self
            .request(Method::DELETE, &format!("/v2/{name}/manifests/{digest}"))?
            .send()
            .await
            .context("DELETE manifest")?;
        check(resp, &format!("DELETE manifest {name}@{digest}")).await?;
        Ok(())
    }
}

/// Turns a non-2xx response into an error carrying the status and the registry's error body.
async fn check(resp: reqwest::Response, what: &str) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: registry answered {status}: {body}")
}
