//! Network configuration lists: loading them from a directory and checking them. (Corral's
//! built-in network is done by the daemon without plugins.)

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::Error;

/// CNI spec versions this runtime speaks (the result formats [`crate::result`] reads).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Largest config file read, in bytes.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A checked network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// The network's `name`.
    pub name: String,
    /// The spec version given to every plugin.
    pub cni_version: String,
    /// Each plugin's configuration object; each has a non-empty `type`.
    pub plugins: Vec<Map<String, Value>>,
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
}

impl NetworkList {
    /// Parses and checks a `.conflist` document, or a single-plugin `.conf` document (which
    /// becomes a list of one, as libcni does). `path` names the document in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<NetworkList, Error> {
        let bad = |msg: String| Error::Config {
            path: path.to_path_buf(),
            msg,
        };
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Value::Object(mut doc) = doc else {
            return Err(bad("not a JSON object".into()));
        };
        let name = match doc.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad("missing string field \"name\"".into())),
        };
        let name_ok = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if !name_ok {
            return Err(bad(format!(
                "network name {name:?} must be letters, digits, '_', '.' and '-', starting with a letter or digit"
            )));
        }
        let cni_version = pick_version(&doc).map_err(bad)?;
        let plugins = match doc.remove("plugins") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(bad("\"plugins\" is not an array".into())),
            // A single-plugin config: the document is the plugin.
            None => vec![Value::Object(doc.clone())],
        };
        if plugins.is_empty() {
            return Err(bad("\"plugins\" is empty".into()));
        }
        let mut out = Vec::with_capacity(plugins.len());
        for (i, p) in plugins.into_iter().enumerate() {
            let Value::Object(mut p) = p else {
                return Err(bad(format!("plugins[{i}] is not an object")));
            };
            match p.get("type") {
                Some(Value::String(t))
                    if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => {}
                _ => {
                    return Err(bad(format!(
                        "plugins[{i}]: \"type\" must name a plugin binary"
                    )));
                }
            }
            // The list's name and version win over anything a plugin entry says.
            p.remove("name");
            p.remove("cniVersion");
            p.remove("cniVersions");
            out.push(p);
        }
        Ok(NetworkList {
            name,
            cni_version,
            plugins: out,
            source: Some(path.to_path_buf()),
        })
    }

    /// The plugin types of the chain, in order.
    pub fn plugin_types(&self) -> impl Iterator<Item = &str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
    }

    /// The list as a `.conflist` document (what callers persist next to an attachment).
    pub fn to_json(&self) -> Value {
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": self.plugins,
        })
    }

    /// Parses what [`NetworkList::to_json`] produced.
    pub fn from_json(value: &Value, what: &Path) -> Result<NetworkList, Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Config {
            path: what.to_path_buf(),
            msg: e.to_string(),
        })?;
        let mut list = NetworkList::parse(&bytes, what)?;
        list.source = None;
        Ok(list)
    }
}

/// The version to speak: the highest supported one of `cniVersions` (CNI 1.1), else
/// `cniVersion`.
fn pick_version(doc: &Map<String, Value>) -> Result<String, String> {
    if let Some(Value::Array(versions)) = doc.get("cniVersions") {
        let best = SUPPORTED_VERSIONS
            .iter()
            .rev()
            .find(|v| versions.iter().any(|x| x.as_str() == Some(v)));
        return best.map(|v| (*v).to_owned()).ok_or_else(|| {
            format!("none of \"cniVersions\" {versions:?} is supported ({SUPPORTED_VERSIONS:?})")
        });
    }
    match doc.get("cniVersion") {
        Some(Value::String(v)) if SUPPORTED_VERSIONS.contains(&v.as_str()) => Ok(v.clone()),
        Some(Value::String(v)) => Err(format!(
            "cniVersion {v:?} is not supported ({SUPPORTED_VERSIONS:?})"
        )),
        _ => Err("missing string field \"cniVersion\"".into()),
    }
}

/// The outcome of looking at a config directory.
#[derive(Debug)]
pub enum Found {
    /// The first valid file by name.
    List(NetworkList),
    /// No `.conflist`, `.conf` or `.json` file at all (or no directory).
    Nothing,
    /// Files exist but none is valid: the first one's error.
    Invalid(Error),
}

/// Looks in `dir` for network configs (`*.conflist`, `*.conf`, `*.json`) and takes the first
/// valid one in name order, as CRI-O does; invalid files before it are logged and skipped.
pub fn load_dir(dir: &Path) -> Found {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Found::Nothing;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            ) && p.is_file()
        })
        .collect();
    files.sort();
    let mut first_error = None;
    for path in files {
        match read_file(&path).and_then(|bytes| NetworkList::parse(&bytes, &path)) {
            Ok(list) => return Found::List(list),
            Err(e) => {
                tracing::warn!(error = %e, "skipping CNI config");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Found::Nothing, Found::Invalid)
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let bad = |msg: String| Error::Config {
        path: path.to_path_buf(),
        msg,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(bad(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    Ok(bytes)
}

/// Checks a subnet in CIDR notation (`10.1.0.0/16`, `fd00::/64`), returning it normalised.
pub fn check_subnet(cidr: &str) -> Result<String, String> {
    let (addr, prefix) = cidr
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{cidr:?} is not in CIDR notation (address/prefix)"))?;
    let addr: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("{cidr:?}: {addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max && *p > 0)
        .ok_or_else(|| format!("{cidr:?}: prefix must be 1 to {max}"))?;
    // Room for a gateway and at least one pod.
    if max - prefix < 2 {
        return Err(format!("{cidr:?}: subnet too small for pods"));
    }
    Ok(format!("{addr}/{prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NetworkList, Error> {
        NetworkList::parse(s.as_bytes(), Path::new("t.conflist"))
    }

    #[test]
    fn conflist_and_single_conf() {
        let l = parse(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","name":"x"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        assert_eq!(l.plugin_types().collect::<Vec<_>>(), ["bridge", "portmap"]);
        assert!(l.plugins[0].get("name").is_none());
        let c = parse(r#"{"cniVersion":"0.3.1","name":"n","type":"ptp","ipMasq":true}"#).unwrap();
        assert_eq!(c.cni_version, "0.3.1");
        assert_eq!(c.plugins.len(), 1);
        assert_eq!(c.plugins[0]["ipMasq"], true);
    }

    #[test]
    fn versions() {
        let l = parse(
            r#"{"cniVersions":["0.4.0","1.1.0","9.9.9"],"name":"n","plugins":[{"type":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, "1.1.0");
        let e = parse(r#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"a"}]}"#).unwrap_err();
        assert!(e.to_string().contains("0.2.0"), "{e}");
    }

    #[test]
    fn rejects_bad_documents() {
        for (doc, want) in [
            ("[]", "not a JSON object"),
            ("{", "not JSON"),
            (r#"{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#, "name"),
            (
                r#"{"cniVersion":"1.0.0","name":"../x","plugins":[{"type":"a"}]}"#,
                "network name",
            ),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#, "empty"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
                "plugins[0]",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#,
                "plugins[0]",
            ),
            (r#"{"name":"n","plugins":[{"type":"a"}]}"#, "cniVersion"),
        ] {
            let e = parse(doc).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
            assert!(e.contains("t.conflist"), "{e}");
        }
    }

    #[test]
    fn directory_order_and_invalid_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(load_dir(&d.path().join("none")), Found::Nothing));
        std::fs::write(d.path().join("README"), "x").unwrap();
        assert!(matches!(load_dir(d.path()), Found::Nothing));
        std::fs::write(d.path().join("05-bad.conflist"), "{").unwrap();
        assert!(matches!(load_dir(d.path()), Found::Invalid(_)));
        let good =
            |name: &str| format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"bridge"}}"#);
        std::fs::write(d.path().join("20-b.conf"), good("b")).unwrap();
        std::fs::write(d.path().join("10-a.conflist"), good("a")).unwrap();
        match load_dir(d.path()) {
            Found::List(l) => {
                assert_eq!(l.name, "a");
                assert_eq!(l.source.unwrap(), d.path().join("10-a.conflist"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subnets() {
        assert_eq!(check_subnet(" 10.1.0.0/16").unwrap(), "10.1.0.0/16");
        assert_eq!(check_subnet("fd00::/64").unwrap(), "fd00::/64");
        for bad in [
            "10.1.0.0",
            "10.1.0.0/33",
            "x/8",
            "10.0.0.0/31",
            "10.0.0.0/0",
        ] {
            assert!(check_subnet(bad).is_err(), "{bad}");
        }
    }
}
