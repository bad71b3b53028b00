//! ListMetricDescriptors and ListPodSandboxMetrics: the stats of [`crate::stats`] under the
//! cAdvisor metric names the kubelet serves on `/metrics/cadvisor` when the runtime provides
//! them (`PodAndContainerStatsFromCRI`). CRI metric values are integers, so CPU seconds are
//! whole seconds, as CRI-O reports them.

use corral_cri_api::v1::{
    ContainerMetrics, ContainerStats, Metric, MetricDescriptor, MetricType, PodSandboxMetrics,
    PodSandboxStats, UInt64Value,
};

/// Label keys of a container's metrics (sorted, as the CRI asks).
const CONTAINER_LABELS: [&str; 4] = ["container", "id", "namespace", "pod"];
/// Label keys of a pod's network metrics (sorted).
const NETWORK_LABELS: [&str; 4] = ["id", "interface", "namespace", "pod"];

/// (name, help, type, label keys) of every metric this runtime reports.
const DESCRIPTORS: [(&str, &str, MetricType, &[&str]); 10] = [
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        MetricType::Counter,
        &CONTAINER_LABELS,
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        MetricType::Gauge,
        &CONTAINER_LABELS,
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        MetricType::Gauge,
        &CONTAINER_LABELS,
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes.",
        MetricType::Gauge,
        &CONTAINER_LABELS,
    ),
    (
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        MetricType::Gauge,
        &CONTAINER_LABELS,
    ),
    (
        "container_fs_inodes_total",
        "Number of inodes the container's writable layer uses.",
        MetricType::Gauge,
        &CONTAINER_LABELS,
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        MetricType::Counter,
        &NETWORK_LABELS,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        MetricType::Counter,
        &NETWORK_LABELS,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        MetricType::Counter,
        &NETWORK_LABELS,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        MetricType::Counter,
        &NETWORK_LABELS,
    ),
];

/// ListMetricDescriptors.
pub fn descriptors() -> Vec<MetricDescriptor> {
    DESCRIPTORS
        .iter()
        .map(|(name, help, _, keys)| MetricDescriptor {
            name: (*name).to_owned(),
            help: (*help).to_owned(),
            label_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        })
        .collect()
}

fn metric(name: &str, labels: &[String], value: Option<u64>) -> Option<Metric> {
    let (_, _, kind, _) = DESCRIPTORS.iter().find(|d| d.0 == name)?;
    Some(Metric {
        name: name.to_owned(),
        // Gathered live.
        timestamp: 0,
        metric_type: *kind as i32,
        label_values: labels.to_vec(),
        value: Some(UInt64Value { value: value? }),
    })
}

fn v(x: &Option<UInt64Value>) -> Option<u64> {
    x.as_ref().map(|v| v.value)
}

fn container_metrics(c: &ContainerStats, namespace: &str, pod: &str) -> ContainerMetrics {
    let attrs = c.attributes.clone().unwrap_or_default();
    let name = attrs.metadata.map(|m| m.name).unwrap_or_default();
    let labels = [name, attrs.id.clone(), namespace.to_owned(), pod.to_owned()];
    let cpu = c.cpu.as_ref();
    let mem = c.memory.as_ref();
    let fs = c.writable_layer.as_ref();
    let metrics = [
        (
            "container_cpu_usage_seconds_total",
            cpu.and_then(|c| v(&c.usage_core_nano_seconds))
                .map(|ns| ns / 1_000_000_000),
        ),
        (
            "container_memory_usage_bytes",
            mem.and_then(|m| v(&m.usage_bytes)),
        ),
        (
            "container_memory_working_set_bytes",
            mem.and_then(|m| v(&m.working_set_bytes)),
        ),
        ("container_memory_rss", mem.and_then(|m| v(&m.rss_bytes))),
        (
            "container_fs_usage_bytes",
            fs.and_then(|f| v(&f.used_bytes)),
        ),
        (
            "container_fs_inodes_total",
            fs.and_then(|f| v(&f.inodes_used)),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| metric(name, &labels, value))
    .collect();
    ContainerMetrics {
        container_id: attrs.id,
        metrics,
    }
}

/// One pod's metrics from its stats: the network counters of each interface, and each
/// container's usage.
pub fn pod_metrics(stats: &PodSandboxStats) -> PodSandboxMetrics {
    let attrs = stats.attributes.clone().unwrap_or_default();
    let (pod, namespace) = attrs
        .metadata
        .map(|m| (m.name, m.namespace))
        .unwrap_or_default();
    let linux = stats.linux.clone().unwrap_or_default();
    let mut metrics = Vec::new();
    if let Some(net) = &linux.network {
        for iface in net.default_interface.iter().chain(&net.interfaces) {
            let labels = [
                attrs.id.clone(),
                iface.name.clone(),
                namespace.clone(),
                pod.clone(),
            ];
            for (name, value) in [
                ("container_network_receive_bytes_total", &iface.rx_bytes),
                ("container_network_transmit_bytes_total", &iface.tx_bytes),
                ("container_network_receive_errors_total", &iface.rx_errors),
                ("container_network_transmit_errors_total", &iface.tx_errors),
            ] {
                metrics.extend(metric(name, &labels, v(value)));
            }
        }
    }
    PodSandboxMetrics {
        pod_sandbox_id: attrs.id,
        metrics,
        container_metrics: linux
            .containers
            .iter()
            .map(|c| container_metrics(c, &namespace, &pod))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_cri_api::v1::{
        ContainerAttributes, ContainerMetadata, CpuUsage, LinuxPodSandboxStats,
        NetworkInterfaceUsage, NetworkUsage, PodSandboxAttributes, PodSandboxMetadata,
    };

    fn u(value: u64) -> Option<UInt64Value> {
        Some(UInt64Value { value })
    }

    #[test]
    fn every_metric_names_a_descriptor_and_matches_its_label_keys() {
        let stats = PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                id: "pod1".into(),
                metadata: Some(PodSandboxMetadata {
                    name: "web".into(),
                    namespace: "default".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            linux: Some(LinuxPodSandboxStats {
                network: Some(NetworkUsage {
                    timestamp: 1,
                    default_interface: Some(NetworkInterfaceUsage {
                        name: "eth0".into(),
                        rx_bytes: u(10),
                        rx_errors: u(0),
                        tx_bytes: u(20),
                        tx_errors: u(1),
                    }),
                    interfaces: vec![],
                }),
                containers: vec![ContainerStats {
                    attributes: Some(ContainerAttributes {
                        id: "c1".into(),
                        metadata: Some(ContainerMetadata {
                            name: "nginx".into(),
                            attempt: 0,
                        }),
                        ..Default::default()
                    }),
                    cpu: Some(CpuUsage {
                        timestamp: 1,
                        usage_core_nano_seconds: u(3_500_000_000),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            windows: None,
        };
        let m = pod_metrics(&stats);
        assert_eq!(m.pod_sandbox_id, "pod1");
        assert_eq!(m.metrics.len(), 4);
        let descs = descriptors();
        let all = m
            .metrics
            .iter()
            .chain(m.container_metrics.iter().flat_map(|c| &c.metrics));
        for metric in all {
            let d = descs
                .iter()
                .find(|d| d.name == metric.name)
                .expect("a descriptor");
            assert_eq!(d.label_keys.len(), metric.label_values.len(), "{metric:?}");
        }
        let rx = &m.metrics[0];
        assert_eq!(rx.name, "container_network_receive_bytes_total");
        assert_eq!(rx.label_values, ["pod1", "eth0", "default", "web"]);
        assert_eq!(rx.metric_type, MetricType::Counter as i32);
        let c = &m.container_metrics[0];
        assert_eq!(c.container_id, "c1");
        // Only what was measured is reported: CPU here, in whole seconds.
        assert_eq!(c.metrics.len(), 1);
        assert_eq!(c.metrics[0].value, u(3));
        assert_eq!(c.metrics[0].label_values, ["nginx", "c1", "default", "web"]);
        let mut keys = CONTAINER_LABELS.to_vec();
        keys.sort_unstable();
        assert_eq!(keys, CONTAINER_LABELS, "label keys are sorted");
    }
}
