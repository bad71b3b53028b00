//! Registry host configuration, compatible with containerd's `hosts.toml` directories.
//!
//! For a registry `R`, `<config_path>/R/hosts.toml` (or `<config_path>/_default/hosts.toml`) may
//! list mirrors as `[host."<url>"]` tables, tried in file order, then the upstream `server`.
//! Each host has `capabilities` (`pull`, `resolve`, `push`), `skip_verify`, `ca` (a path or a
//! list), `header` (name to a value or a list) and `override_path`. Without a file the upstream
//! is `https://R` (`https://registry-1.docker.io` for `docker.io`), or plain HTTP for loopback
//! hosts. Files are read at every pull, so edits apply without a restart.

use std::path::{Path, PathBuf};

use crate::error::{ImageError, Result};

/// One place to fetch from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port]` plus any path prefix from the URL.
    pub url: String,
    /// Whether `url` already holds the full API path (containerd's `override_path`).
    pub override_path: bool,
    pub pull: bool,
    pub resolve: bool,
    pub skip_verify: bool,
    pub ca: Vec<PathBuf>,
    pub headers: Vec<(String, String)>,
    /// True for a mirror, false for the upstream registry itself.
    pub is_mirror: bool,
}

impl Endpoint {
    fn new(url: &str, is_mirror: bool) -> Endpoint {
        Endpoint {
            url: url.trim_end_matches('/').to_owned(),
            override_path: false,
            pull: true,
            resolve: true,
            skip_verify: false,
            ca: Vec::new(),
            headers: Vec::new(),
            is_mirror,
        }
    }

    /// Base of the distribution API: `<url>/v2` unless the path is overridden.
    pub fn api_base(&self) -> String {
        if self.override_path {
            self.url.clone()
        } else {
            format!("{}/v2", self.url)
        }
    }

    /// The `host[:port]` part of the URL, used to find credentials.
    pub fn authority(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }
}

/// Where hosts directories live; `None` means built-in defaults only.
#[derive(Clone, Debug, Default)]
pub struct HostsConfig {
    pub config_path: Option<PathBuf>,
}

impl HostsConfig {
    /// The endpoints to try for `registry`, mirrors first.
    pub fn endpoints(&self, registry: &str) -> Result<Vec<Endpoint>> {
        if let Some(dir) = &self.config_path {
            for name in [registry, "_default"] {
                let file = dir.join(name).join("hosts.toml");
                if file.is_file() {
                    let text =
                        std::fs::read_to_string(&file).map_err(ImageError::io("read", &file))?;
                    return parse(&file, &text, registry);
                }
            }
        }
        Ok(vec![Endpoint::new(&default_server(registry), false)])
    }
}

fn default_server(registry: &str) -> String {
    if registry == "docker.io" {
        return "https://registry-1.docker.io".into();
    }
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    let loopback = host == "localhost"
        || host.starts_with("127.")
        || host == "[::1]"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        format!("http://{registry}")
    } else {
        format!("https://{registry}")
    }
}

/// Parses one hosts.toml for `registry`.
pub fn parse(path: &Path, text: &str, registry: &str) -> Result<Vec<Endpoint>> {
    let err = |detail: String| ImageError::HostsConfig {
        path: path.to_path_buf(),
        detail,
    };
    let doc: toml::Table = text.parse().map_err(|e| err(format!("{e}")))?;
    let mut out = Vec::new();
    if let Some(hosts) = doc.get("host") {
        let hosts = hosts
            .as_table()
            .ok_or_else(|| err("`host` must be a table of tables".into()))?;
        // toml::Table keeps document order (preserve_order is on by default in toml 1).
        for (url, table) in hosts {
            let table = table
                .as_table()
                .ok_or_else(|| err(format!("host {url:?} must be a table")))?;
            let mut ep = Endpoint::new(&normalise_url(url).map_err(&err)?, true);
            apply(&mut ep, table).map_err(|e| err(format!("host {url:?}: {e}")))?;
            out.push(ep);
        }
    }
    let server = match doc.get("server") {
        Some(v) => v
            .as_str()
            .ok_or_else(|| err("`server` must be a string".into()))
            .and_then(|s| normalise_url(s).map_err(&err))?,
        None => default_server(registry),
    };
    let mut upstream = Endpoint::new(&server, false);
    apply(&mut upstream, &doc).map_err(|e| err(format!("server: {e}")))?;
    out.push(upstream);
    Ok(out)
}

fn normalise_url(url: &str) -> std::result::Result<String, String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else if url.contains("://") {
        Err(format!("unsupported URL scheme in {url:?}"))
    } else {
        Ok(format!("https://{}", url.trim_end_matches('/')))
    }
}

fn apply(ep: &mut Endpoint, t: &toml::Table) -> std::result::Result<(), String> {
    if let Some(caps) = t.get("capabilities") {
        let caps = strings(caps).map_err(|e| format!("capabilities: {e}"))?;
        ep.pull = caps.iter().any(|c| c == "pull");
        ep.resolve = caps.iter().any(|c| c == "resolve");
        if let Some(bad) = caps
            .iter()
            .find(|c| !["pull", "resolve", "push"].contains(&c.as_str()))
        {
            return Err(format!("unknown capability {bad:?}"));
        }
    }
    if let Some(v) = t.get("skip_verify") {
        ep.skip_verify = v.as_bool().ok_or("skip_verify must be a boolean")?;
    }
    if let Some(v) = t.get("override_path") {
        ep.override_path = v.as_bool().ok_or("override_path must be a boolean")?;
    }
    if let Some(v) = t.get("ca") {
        ep.ca = strings(v)
            .map_err(|e| format!("ca: {e}"))?
            .into_iter()
            .map(PathBuf::from)
            .collect();
    }
    if let Some(v) = t.get("header") {
        let headers = v.as_table().ok_or("header must be a table")?;
        for (name, value) in headers {
            for value in strings(value).map_err(|e| format!("header {name}: {e}"))? {
                ep.headers.push((name.clone(), value));
            }
        }
    }
    Ok(())
}

fn strings(v: &toml::Value) -> std::result::Result<Vec<String>, String> {
    match v {
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "expected strings".into())
            })
            .collect(),
        _ => Err("expected a string or a list of strings".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first_in_file_order() {
        let text = r#"
server = "https://registry.k8s.io"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
[host."https://mirror.example/v2/k8s"]
  capabilities = ["pull"]
  override_path = true
  skip_verify = true
  ca = ["/a.pem", "/b.pem"]
  [host."https://mirror.example/v2/k8s".header]
    x-token = "t"
    x-multi = ["a", "b"]
"#;
        let eps = parse(Path::new("h.toml"), text, "registry.k8s.io").expect("parse");
        assert_eq!(eps.len(), 3);
        assert_eq!(eps[0].url, "http://127.0.0.1:5000");
        assert_eq!(eps[0].api_base(), "http://127.0.0.1:5000/v2");
        assert!(eps[0].is_mirror && eps[0].pull && eps[0].resolve);
        assert_eq!(eps[1].api_base(), "https://mirror.example/v2/k8s");
        assert!(!eps[1].resolve && eps[1].skip_verify);
        assert_eq!(eps[1].ca.len(), 2);
        assert_eq!(eps[1].headers.len(), 3);
        assert_eq!(eps[2].url, "https://registry.k8s.io");
        assert!(!eps[2].is_mirror);
        assert_eq!(eps[0].authority(), "127.0.0.1:5000");
    }

    #[test]
    fn defaults_without_a_file() {
        let cfg = HostsConfig::default();
        assert_eq!(
            cfg.endpoints("docker.io").expect("eps")[0].url,
            "https://registry-1.docker.io"
        );
        assert_eq!(
            cfg.endpoints("127.0.0.1:5000").expect("eps")[0].url,
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            cfg.endpoints("quay.io").expect("eps")[0].url,
            "https://quay.io"
        );
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = parse(Path::new("h.toml"), "capabilities = [\"fly\"]", "x").expect_err("bad cap");
        assert!(e.to_string().contains("fly"), "{e}");
        let e = parse(Path::new("h.toml"), "server = 3", "x").expect_err("bad server");
        assert!(e.to_string().contains("server"), "{e}");
    }
}
