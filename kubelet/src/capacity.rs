//! What the node offers pods: its allocatable resources (memory, huge pages, CPU), its
//! addresses, and whether a pod's `nodeSelector` lets it run here.

use super::*;

impl Kubelet {
    pub(super) fn memory_capacity(&self) -> i64 {
        self.memory_capacity
    }

    pub(super) fn allocatable(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity::from_units(self.cpus)),
            (
                "memory".to_string(),
                Quantity::from_units(self.memory_capacity),
            ),
            (
                "ephemeral-storage".to_string(),
                Quantity::from_units(i64::MAX / 1_000_000_000),
            ),
        ])
    }

    /// The node's addresses for `status.hostIP(s)`.
    pub(super) fn host_ips(&self) -> Vec<String> {
        self.config.node_ips.clone()
    }

    pub(super) fn unschedulable(&self, pod: &Pod) -> Option<String> {
        let sel = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
        (!worker::node_selector_matches(sel, &self.config.node_labels))
            .then(|| corral_kube::status::UNSCHEDULABLE_NODE_SELECTOR.to_string())
    }
}
