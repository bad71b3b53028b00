//! A pod's `/etc/hostname`, `/etc/resolv.conf` and `/etc/hosts`, written once per sandbox and
//! bind-mounted into each of its containers.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use corral_cri_api::v1::{DnsConfig, NamespaceMode, PodSandboxConfig};

use super::SpecError;

/// The files [`write_pod_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFiles {
    /// `<dir>/hosts`.
    pub hosts: PathBuf,
    /// `<dir>/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// `<dir>/hostname`.
    pub hostname: PathBuf,
}

/// The start of the hosts file of a pod with its own network namespace (containerd's); a line
/// with the pod's IP and hostname follows when the pod has an IP. (The kubelet mounts its own
/// managed `/etc/hosts` over this one.)
pub const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// Most search domains we accept (Kubernetes' own limit).
const MAX_SEARCHES: usize = 32;

/// Where the host's files are (tests point these elsewhere).
pub(super) struct HostFiles<'a> {
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
}

/// The pod's hostname: `hostname` from its config or, when empty, the host's (as containerd
/// does; the CRI only allows it empty with host networking). Validated: 1 to 64 characters of
/// letters, digits, `-`, `.` and `_`.
pub fn pod_hostname(pod: &PodSandboxConfig) -> Result<String, SpecError> {
    let name = if pod.hostname.is_empty() {
        nix::unistd::gethostname()
            .map_err(|e| SpecError::io("gethostname", e.into()))?
            .to_string_lossy()
            .into_owned()
    } else {
        pod.hostname.clone()
    };
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !ok {
        return Err(SpecError::invalid(format!(
            "pod config: hostname {name:?} is not a valid hostname"
        )));
    }
    Ok(name)
}

/// Writes the pod's `hostname`, `resolv.conf` and `hosts` into `dir` (which must exist), each
/// 0644, each replaced atomically.
///
/// - `hostname`: [`pod_hostname`] and a newline.
/// - `resolv.conf`: from `dns_config` (`search`, `nameserver` and `options` lines, like
///   containerd); a copy of the host's `/etc/resolv.conf` when `dns_config` is absent or empty.
/// - `hosts`: with host networking a copy of the host's `/etc/hosts`; otherwise [`DEFAULT_HOSTS`]
///   and, when the pod has an IP, `<pod_ip>\t<hostname>`.
pub fn write_pod_files(
    pod: &PodSandboxConfig,
    dir: &Path,
    pod_ip: Option<IpAddr>,
) -> Result<PodFiles, SpecError> {
    let host = HostFiles {
        hosts: Path::new("/etc/hosts"),
        resolv_conf: Path::new("/etc/resolv.conf"),
    };
    write_pod_files_from(pod, dir, &host, pod_ip)
}

pub(super) fn write_pod_files_from(
    pod: &PodSandboxConfig,
    dir: &Path,
    host: &HostFiles<'_>,
    pod_ip: Option<IpAddr>,
) -> Result<PodFiles, SpecError> {
    let hostname = pod_hostname(pod)?;
    let resolv = match &pod.dns_config {
        Some(dns)
            if !dns.servers.is_empty() || !dns.searches.is_empty() || !dns.options.is_empty() =>
        {
            resolv_conf(dns)?.into_bytes()
        }
        _ => read_host(host.resolv_conf)?,
    };
    let host_network = pod
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.network == NamespaceMode::Node as i32);
    let hosts = if host_network {
        read_host(host.hosts)?
    } else {
        let mut hosts = DEFAULT_HOSTS.to_owned();
        if let Some(ip) = pod_ip {
            hosts.push_str(&format!("{ip}\t{hostname}\n"));
        }
        hosts.into_bytes()
    };

    let files = PodFiles {
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        hostname: dir.join("hostname"),
    };
    write_file(&files.hostname, format!("{hostname}\n").as_bytes())?;
    write_file(&files.resolv_conf, &resolv)?;
    write_file(&files.hosts, &hosts)?;
    Ok(files)
}

/// The contents of `resolv.conf` for `dns`, after checking every entry cannot break the format.
pub(super) fn resolv_conf(dns: &DnsConfig) -> Result<String, SpecError> {
    let word_ok =
        |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    for (i, s) in dns.servers.iter().enumerate() {
        // An IPv6 server may carry a zone (`fe80::1%eth0`).
        let (addr, zone) = s.split_once('%').unwrap_or((s, ""));
        let zone_ok = zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let ip = addr.parse::<IpAddr>();
        if !zone_ok || ip.is_err() || (s.contains('%') && !matches!(ip, Ok(IpAddr::V6(_)))) {
            return Err(SpecError::invalid(format!(
                "dns_config.servers[{i}]: {s:?} is not an IP address"
            )));
        }
    }
    if dns.searches.len() > MAX_SEARCHES {
        return Err(SpecError::invalid(format!(
            "dns_config.searches: {} domains, at most {MAX_SEARCHES} are allowed",
            dns.searches.len()
        )));
    }
    for (field, list) in [("searches", &dns.searches), ("options", &dns.options)] {
        for (i, s) in list.iter().enumerate() {
            if !word_ok(s) || s.len() > 253 {
                return Err(SpecError::invalid(format!(
                    "dns_config.{field}[{i}]: {s:?} is empty, too long or contains whitespace"
                )));
            }
        }
    }
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for s in &dns.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Ok(out)
}

/// A host file's contents; a missing one reads as empty (with a warning).
fn read_host(path: &Path) -> Result<Vec<u8>, SpecError> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "host file missing; the pod gets an empty one");
            Ok(Vec::new())
        }
        Err(e) => Err(SpecError::io(path, e)),
    }
}

/// Writes `path` through a temporary file in the same directory and renames it into place, so a
/// container never sees a partial file.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SpecError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir, path)?;
    let res = (|| {
        tmp.1.write_all(bytes)?;
        tmp.1
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp.0, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp.0);
        return Err(SpecError::io(path, e));
    }
    Ok(())
}

fn tempfile_in(dir: &Path, target: &Path) -> Result<(PathBuf, std::fs::File), SpecError> {
    let name = target
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    for n in 0..100u32 {
        let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(SpecError::io(tmp, e)),
        }
    }
    Err(SpecError::io(
        target,
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary name"),
    ))
}
