//! The kubelet-managed `/etc/hosts` of a pod (its IPs, hostname and `hostAliases`), and of a
//! host-network pod (the host's file with the aliases).

use super::*;

pub(super) const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
pub(super) const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str =
    "# Kubernetes-managed hosts file (host network).\n";

/// Whether the kubelet mounts its managed `/etc/hosts` into `c`: the pod has an IP and the
/// container does not mount something of its own there.
pub fn mounts_etc_hosts(c: &Container, pod_ips: &[String]) -> bool {
    !pod_ips.is_empty()
        && !c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/etc/hosts")
}

/// The kubelet's managed `/etc/hosts` of a pod with its own network (`managedHostsFileContent`):
/// the header, localhost entries, a line per pod IP (`<ip>\t<host>.<domain>\t<host>` when there
/// is a domain) and the `hostAliases`.
pub fn etc_hosts(pod: &Pod, pod_ips: &[String], hostname: &str, domain: &str) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER);
    out.push_str(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        if domain.is_empty() {
            out.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
        }
    }
    out.push_str(&host_aliases(pod));
    out
}

/// The kubelet's `/etc/hosts` of a host-network pod (`nodeHostsFileContent`): a header, the
/// host's file and the `hostAliases`.
pub fn etc_hosts_host_network(pod: &Pod, host_hosts: &str) -> String {
    format!(
        "{MANAGED_HOSTS_HEADER_HOST_NETWORK}{host_hosts}{}",
        host_aliases(pod)
    )
}

pub(super) fn host_aliases(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or(&[]);
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names = a.hostnames.as_deref().unwrap_or(&[]).join("\t");
        out.push_str(&format!("{}\t{names}\n", a.ip));
    }
    out
}
