//! A pod's DNS (`GetPodDNS`): `dnsPolicy`, `dnsConfig` merged over the host's or the cluster's
//! settings, the kubelet's limits on nameservers and search domains; `resolv.conf` parsing.

use super::*;

/// The pod's DNS (`GetPodDNS`), `None` when Corral's copy of the host's `resolv.conf` is the
/// kubelet's result (`Default` policy without `dnsConfig`).
pub fn dns_config(pod: &Pod, opts: &SandboxOptions) -> Result<Option<DnsConfig>, TranslateError> {
    let spec = spec(pod)?;
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "ClusterFirst" => Some(!host_network),
        "Default" => Some(false),
        other => {
            return Err(invalid(
                "spec.dnsPolicy",
                other,
                "supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
            ));
        }
    };
    let host = parse_resolv_conf(&opts.host_resolv_conf);
    let mut dns = match cluster {
        None => DnsConfig::default(),
        Some(true) if !opts.cluster_dns.is_empty() => DnsConfig {
            servers: opts.cluster_dns.clone(),
            searches: cluster_searches(host.searches, pod, opts.cluster_domain.as_deref()),
            options: CLUSTER_DNS_OPTIONS.iter().map(|s| s.to_string()).collect(),
        },
        // ClusterFirst without cluster DNS falls back to Default (the kubelet warns with a
        // MissingClusterDNS event).
        Some(_) => match &spec.dns_config {
            None => return Ok(None),
            Some(_) => host,
        },
    };
    if let Some(pc) = &spec.dns_config {
        dns.servers = dedup(
            dns.servers
                .into_iter()
                .chain(pc.nameservers.iter().flatten().cloned()),
        );
        dns.searches = dedup(
            dns.searches
                .into_iter()
                .chain(pc.searches.iter().flatten().cloned()),
        );
        dns.options = merge_dns_options(&dns.options, pc.options.iter().flatten());
    }
    Ok(Some(fit_dns_limits(dns)))
}

pub(super) fn cluster_searches(host: Vec<String>, pod: &Pod, domain: Option<&str>) -> Vec<String> {
    let Some(d) = domain.filter(|d| !d.is_empty()) else {
        return host;
    };
    let ns = meta_str(&pod.metadata.namespace);
    let cluster = [format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_owned()];
    dedup(cluster.into_iter().chain(host))
}

pub(super) fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// `mergeDNSOptions`: `name[:value]` entries, the pod's replacing the base's of the same name;
/// kept in first-seen order (the kubelet's order is a Go map's).
pub(super) fn merge_dns_options<'a>(
    base: &[String],
    pod: impl Iterator<Item = &'a corral_kube::k8s_openapi::api::core::v1::PodDNSConfigOption>,
) -> Vec<String> {
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match opts.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_owned(),
        None => opts.push((name.to_owned(), value.to_owned())),
    };
    for o in base {
        let (n, v) = o.split_once(':').unwrap_or((o, ""));
        set(n, v);
    }
    for o in pod {
        set(
            o.name.as_deref().unwrap_or(""),
            o.value.as_deref().unwrap_or(""),
        );
    }
    opts.into_iter()
        .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
        .collect()
}

/// `formDNSConfigFitsLimits`: 3 nameservers, 32 search domains of at most 253 characters,
/// 2048 characters of search line.
pub(super) fn fit_dns_limits(mut dns: DnsConfig) -> DnsConfig {
    dns.servers.truncate(MAX_NAMESERVERS);
    dns.searches.truncate(MAX_SEARCHES);
    dns.searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN_LEN);
    while dns.searches.join(" ").len() > MAX_SEARCH_CHARS {
        dns.searches.pop();
    }
    dns
}

/// The nameservers, search domains and options of a `resolv.conf` as the kubelet reads it (the
/// last `search` line wins, trailing dots go, `#` and `;` start comments).
pub fn parse_resolv_conf(content: &str) -> DnsConfig {
    let mut dns = DnsConfig::default();
    for line in content.lines() {
        if line.starts_with(['#', ';']) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", server, ..] => dns.servers.push((*server).to_owned()),
            ["search", rest @ ..] => {
                dns.searches = rest
                    .iter()
                    .filter(|s| **s != ".")
                    .map(|s| s.trim_end_matches('.').to_owned())
                    .collect();
            }
            ["options", rest @ ..] => {
                for o in rest {
                    let name = o.split(':').next().unwrap_or(o);
                    dns.options.retain(|e| e.split(':').next() != Some(name));
                    dns.options.push((*o).to_owned());
                }
            }
            _ => {}
        }
    }
    dns
}
