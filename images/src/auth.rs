//! Registry credentials: from a CRI `AuthConfig`, or from a Docker-style credentials file.
//!
//! The credentials file has the shape of Docker's `config.json`:
//! `{"auths": {"<host>": {"auth": "<base64 user:password>" | "username"/"password",
//! "identitytoken": "...", "registrytoken": "..."}}}`. It is read at every pull, so edits apply
//! without a restart. Keys may be bare hosts or URLs (`https://index.docker.io/v1/`).

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{ImageError, Result};

/// What to present to a registry. Debug output never shows secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token, exchanged at the token endpoint for an access token.
    pub identity_token: String,
    /// A bearer token sent as is.
    pub registry_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("identity_token", &redact(&self.identity_token))
            .field("registry_token", &redact(&self.registry_token))
            .finish()
    }
}

fn redact(s: &str) -> &'static str {
    if s.is_empty() { "" } else { "<redacted>" }
}

impl Credentials {
    /// Builds credentials from the CRI `AuthConfig` fields. `auth` is base64 of
    /// `username:password` and wins over the separate fields when both are given.
    pub fn from_parts(
        username: &str,
        password: &str,
        auth: &str,
        identity_token: &str,
        registry_token: &str,
    ) -> std::result::Result<Credentials, String> {
        let (mut username, mut password) = (username.to_owned(), password.to_owned());
        if !auth.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| format!("auth is not base64: {e}"))?;
            let text = String::from_utf8(raw).map_err(|_| "auth is not UTF-8".to_owned())?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| "auth does not decode to username:password".to_owned())?;
            username = u.to_owned();
            password = p.to_owned();
        }
        Ok(Credentials {
            username,
            password,
            identity_token: identity_token.to_owned(),
            registry_token: registry_token.to_owned(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }
}

#[derive(Deserialize)]
struct FileFormat {
    #[serde(default)]
    auths: HashMap<String, FileEntry>,
}

#[derive(Deserialize, Default)]
struct FileEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

/// Looks up static credentials by registry host.
#[derive(Clone, Debug, Default)]
pub struct CredentialsFile {
    pub path: Option<PathBuf>,
}

impl CredentialsFile {
    /// The credentials stored for `host` (`registry.example:5000`), if any.
    pub fn lookup(&self, host: &str) -> Result<Option<Credentials>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let data = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            other => other.map_err(ImageError::io("read", path))?,
        };
        let err = |detail: String| ImageError::Credentials {
            path: path.clone(),
            detail,
        };
        let file: FileFormat = serde_json::from_slice(&data).map_err(|e| err(e.to_string()))?;
        let wanted = canonical_host(host);
        for (key, entry) in file.auths {
            if canonical_host(&key) == wanted {
                let creds = Credentials::from_parts(
                    &entry.username,
                    &entry.password,
                    &entry.auth,
                    &entry.identity_token,
                    &entry.registry_token,
                )
                .map_err(|e| err(format!("entry {key:?}: {e}")))?;
                return Ok(Some(creds));
            }
        }
        Ok(None)
    }
}

/// Reduces a key or host to a comparable host name; Docker Hub's aliases become `docker.io`.
fn canonical_host(key: &str) -> String {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_string_is_decoded() {
        let c = Credentials::from_parts("", "", "dXNlcjpwYXNzOndvcmQ=", "", "").expect("decode");
        assert_eq!(c.username, "user");
        assert_eq!(c.password, "pass:word");
        assert!(Credentials::from_parts("", "", "%%%", "", "").is_err());
        assert!(!format!("{c:?}").contains("pass:word"));
    }

    #[test]
    fn file_lookup_matches_hosts_and_urls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "YTpi"},
                          "127.0.0.1:5000": {"username": "u", "password": "p"}}}"#,
        )
        .expect("write");
        let f = CredentialsFile { path: Some(path) };
        assert_eq!(
            f.lookup("docker.io")
                .expect("lookup")
                .expect("found")
                .username,
            "a"
        );
        assert_eq!(
            f.lookup("127.0.0.1:5000")
                .expect("lookup")
                .expect("found")
                .password,
            "p"
        );
        assert!(f.lookup("quay.io").expect("lookup").is_none());
    }
}
