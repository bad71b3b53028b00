//! A real OCI distribution registry (Debian's `docker-registry`, distribution v2) on loopback.
//!
//! Every test starts its own [`Registry`]: it listens on `127.0.0.1:<free port>`, keeps its
//! storage and config in a temp dir and is killed and reaped on drop. With
//! [`RegistryOptions::tls`] it serves HTTPS with a certificate from a CA made for it alone
//! ([`Registry::ca_path`]). [`RegistryClient`] speaks the distribution HTTP API (push blobs and
//! manifests, fetch them back); [`FakeRegistry`] serves hand-written responses for cases a real
//! registry refuses to store (malformed or oversized manifests, lying headers).
//!
//! Limits of the real registry worth knowing when writing malicious cases: it refuses manifests
//! larger than 4 MiB and manifests that are not valid JSON on push, refuses to serve stored
//! manifests it cannot parse, and verifies blob digests on upload. It does not verify blobs on
//! download, so [`Registry::corrupt_blob`] makes it serve content that does not match its digest.

#![allow(unsafe_code)] // one pre_exec closure, see `spawn_registry`

mod client;
mod fake;
mod tls;

pub use client::{FetchedManifest, RegistryClient};
pub use fake::{BearerGate, CannedResponse, FakeRegistry};

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use tls::TlsFiles;

/// The registry binary from Debian's `docker-registry` package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// How long [`Registry::start`] waits for `GET /v2/` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try when the one picked was taken between probing and binding.
const BIND_ATTEMPTS: usize = 8;
/// Realm of the htpasswd basic auth.
pub const AUTH_REALM: &str = "corral-test";

/// Options for [`Registry::start_with`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Users of htpasswd basic auth as (user, password). Empty: anonymous access.
    pub users: Vec<(String, String)>,
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost` signed by a CA made at
    /// start ([`Registry::ca_path`]). False: plain HTTP.
    pub tls: bool,
}

impl RegistryOptions {
    /// Anonymous access.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a basic-auth user; a registry with at least one user rejects anonymous requests.
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    /// Serves HTTPS (see [`tls`](Self::tls)).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }
}

/// A running `docker-registry` on loopback. Killed, reaped and its storage removed on drop.
///
/// The registry process also gets `SIGKILL` when the thread that started it exits (parent-death
/// signal), so a killed test binary leaves no registry behind: start it from the test's own
/// thread or a runtime that outlives it, not from a short-lived helper thread.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
    users: Vec<(String, String)>,
    tls: Option<TlsFiles>,
    client: RegistryClient,
}

impl Registry {
    /// Starts an anonymous registry.
    pub async fn start() -> Result<Self> {
        Self::start_with(RegistryOptions::new()).await
    }

    /// Starts a registry with `opts`.
    pub async fn start_with(opts: RegistryOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("corral-registry-")
            .tempdir()
            .context("creating registry temp dir")?;
        if !opts.users.is_empty() {
            write_htpasswd(&dir.path().join("htpasswd"), &opts.users)?;
        }
        let tls = if opts.tls {
            Some(TlsFiles::generate(dir.path())?)
        } else {
            None
        };
        // A token in a response header proves that `/v2/` was answered by our process and not
        // by another one that grabbed the port first.
        let token = hex::encode(Sha256::digest(dir.path().as_os_str().as_encoded_bytes()));
        let mut last_err = None;
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port()?;
            write_config(
                dir.path(),
                port,
                &token,
                !opts.users.is_empty(),
                tls.as_ref(),
            )?;
            let mut child = spawn_registry(dir.path())?;
            let ca_pem = tls.as_ref().map(|t| t.ca_pem.as_bytes());
            match wait_ready(&mut child, dir.path(), port, &token, ca_pem).await {
                Ok(()) => {
                    let addr = format!("127.0.0.1:{port}");
                    let client = match ca_pem {
                        Some(pem) => RegistryClient::with_ca(&addr, pem),
                        None => RegistryClient::new(&addr),
                    };
                    let mut client = match client {
                        Ok(client) => client,
                        Err(e) => {
                            let _ = child.kill();
                            let _ = child.wait();
                            return Err(e);
                        }
                    };
                    if let Some((user, password)) = opts.users.first() {
                        client = client.with_basic_auth(user, password);
                    }
                    return Ok(Self {
                        child,
                        port,
                        dir,
                        users: opts.users,
                        tls,
                        client,
                    });
                }
                Err(e) => {
                    // Best effort: the child may already have exited.
                    let _ = child.kill();
                    let _ = child.wait();
                    if !e.port_in_use {
                        return Err(e.error);
                    }
                    last_err = Some(e.error);
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!(
                "registry could not bind a port in {BIND_ATTEMPTS} attempts"
            )))
    }

    /// `127.0.0.1:<port>`, the registry host as used in image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of the registry process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`, or `https://...` for a TLS registry.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Path of the PEM certificate of the CA that signed this registry's server certificate
    /// (valid for `127.0.0.1` and `localhost`); `None` for a plain-HTTP registry. The file
    /// lives as long as the registry.
    pub fn ca_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_path.as_path())
    }

    /// A full image reference: `127.0.0.1:<port>/<name>:<tag>`, or `...@<digest>` when
    /// `reference` is a digest (`sha256:...`).
    pub fn image_ref(&self, name: &str, reference: &str) -> String {
        image_ref(&self.addr(), name, reference)
    }

    /// The first configured user, if auth is enabled.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.users.first().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// An HTTP client for this registry, authenticated as the first user if auth is enabled.
    pub fn client(&self) -> RegistryClient {
        self.client.clone()
    }

    /// The registry's log (stdout and stderr, `log.level: error`).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Root of the registry's filesystem storage.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn blob_data_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .with_context(|| format!("not a sha256 digest: {digest}"))?;
        Ok(self
            .storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"))
    }

    /// Replaces the stored content of blob `digest` (already pushed) with `data`. The registry
    /// keeps serving it under the old digest (with the new length), so a client that does not
    /// verify what it downloads is caught.
    pub fn corrupt_blob(&self, digest: &str, data: &[u8]) -> Result<()> {
        let path = self.blob_data_path(digest)?;
        if !path.exists() {
            bail!("blob {digest} is not stored in this registry");
        }
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))
    }

    /// Stores `data` as blob `digest` of repository `name` directly in the registry's storage,
    /// bypassing the upload digest check. Manifests pushed afterwards may reference `digest`.
    pub fn plant_blob(&self, name: &str, digest: &str, data: &[u8]) -> Result<()> {
        let path = self.blob_data_path(digest)?;
        let parent = path.parent().context("blob path has no parent")?;
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        let hex = digest.trim_start_matches("sha256:");
        let link_dir = self
            .storage_dir()
            .join("docker/registry/v2/repositories")
            .join(name)
            .join("_layers/sha256")
            .join(hex);
        fs::create_dir_all(&link_dir)
            .with_context(|| format!("creating {}", link_dir.display()))?;
        fs::write(link_dir.join("link"), digest).context("writing blob link")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Errors are ignored: the process may already be gone, and drop cannot report them.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("addr", &self.addr())
            .field("pid", &self.child.id())
            .field("dir", &self.dir.path())
            .field("auth", &!self.users.is_empty())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// `host/name:tag`, or `host/name@digest` when `reference` is a digest.
pub fn image_ref(host: &str, name: &str, reference: &str) -> String {
    if reference.contains(':') {
        format!("{host}/{name}@{reference}")
    } else {
        format!("{host}/{name}:{reference}")
    }
}

/// Asks the kernel for a free loopback port. The port is released before the registry binds
/// it, so another process may take it in between: `start_with` then retries.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

fn write_htpasswd(path: &Path, users: &[(String, String)]) -> Result<()> {
    let mut out = String::new();
    for (user, password) in users {
        if user.contains(':') || user.contains('\n') {
            bail!("htpasswd user name {user:?} must not contain ':' or a newline");
        }
        // Minimum cost: the registry checks the hash on every request.
        let hash = bcrypt::hash_with_result(password, 4)
            .with_context(|| format!("bcrypt for user {user}"))?
            .format_for_version(bcrypt::Version::TwoY);
        writeln!(out, "{user}:{hash}")?;
    }
    fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn write_config(
    dir: &Path,
    port: u16,
    token: &str,
    auth: bool,
    tls: Option<&TlsFiles>,
) -> Result<()> {
    // Paths go through serde_json so that they are valid (JSON-compatible) YAML strings.
    let data = serde_json::to_string(&dir.join("data").to_string_lossy())?;
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Corral-Registry: [\"{token}\"]\n"
    );
    if let Some(tls) = tls {
        let cert = serde_json::to_string(&tls.cert_path.to_string_lossy())?;
        let key = serde_json::to_string(&tls.key_path.to_string_lossy())?;
        writeln!(config, "  tls:\n    certificate: {cert}\n    key: {key}")?;
    }
    if auth {
        let htpasswd = serde_json::to_string(&dir.join("htpasswd").to_string_lossy())?;
        writeln!(
            config,
            "auth:\n  htpasswd:\n    realm: {AUTH_REALM}\n    path: {htpasswd}"
        )?;
    }
    let path = dir.join("config.yml");
    fs::write(&path, config).with_context(|| format!("writing {}", path.display()))
}

fn spawn_registry(dir: &Path) -> Result<Child> {
    let log = fs::File::create(dir.join("registry.log")).context("creating registry log")?;
    let log2 = log.try_clone().context("cloning log fd")?;
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve")
        .arg(dir.join("config.yml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // The registry reads REGISTRY_* variables as config overrides: keep the host's out.
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"REGISTRY_") {
            cmd.env_remove(key);
        }
    }
    // SAFETY: the closure runs between fork and exec and only makes the prctl(2) syscall,
    // which is async-signal-safe; it neither allocates nor touches locks.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    cmd.spawn().with_context(|| {
        format!("spawning {REGISTRY_BIN} (is Debian's docker-registry installed?)")
    })
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
}

struct StartError {
    error: anyhow::Error,
    port_in_use: bool,
}

async fn wait_ready(
    child: &mut Child,
    dir: &Path,
    port: u16,
    token: &str,
    ca_pem: Option<&[u8]>,
) -> std::result::Result<(), StartError> {
    let fail = |error: anyhow::Error| StartError {
        error,
        port_in_use: false,
    };
    let mut http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2));
    if let Some(pem) = ca_pem {
        let ca = reqwest::Certificate::from_pem(pem).map_err(|e| fail(e.into()))?;
        http = http.tls_certs_only([ca]);
    }
    let http = http.build().map_err(|e| fail(e.into()))?;
    let scheme = if ca_pem.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{port}/v2/");
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(e.into()))? {
            let log = read_log(dir);
            return Err(StartError {
                port_in_use: log.contains("address already in use"),
                error: anyhow::anyhow!(
                    "docker-registry exited with {status} at start; log:\n{log}"
                ),
            });
        }
        match http.get(&url).send().await {
            Ok(resp) => {
                let ours = resp
                    .headers()
                    .get("x-corral-registry")
                    .is_some_and(|v| v.as_bytes() == token.as_bytes());
                // 401 is a valid answer of an auth-enabled registry.
                if ours && (resp.status().is_success() || resp.status().as_u16() == 401) {
                    return Ok(());
                }
                if !ours {
                    // Someone else answers on this port: ours will fail to bind; retry.
                    if let Some(status) = wait_exit(child, Duration::from_secs(2)).await {
                        return Err(StartError {
                            port_in_use: true,
                            error: anyhow::anyhow!(
                                "port {port} taken by another server; registry exited with \
                                 {status}; log:\n{}",
                                read_log(dir)
                            ),
                        });
                    }
                }
                last = format!("GET /v2/ answered {}", resp.status());
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(fail(anyhow::anyhow!(
                "docker-registry on port {port} not ready after {START_TIMEOUT:?} ({last}); \
                 log:\n{}",
                read_log(dir)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
