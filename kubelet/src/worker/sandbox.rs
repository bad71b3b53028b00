//! The pod's sandbox: its directory, volumes and `/etc/hosts` prepared, then RunPodSandbox
//! (or the running one adopted).

use super::*;

impl Worker {
    /// Sets up the pod's directory, volumes and sandbox.
    pub(super) async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let sandboxes = self
            .kubelet
            .cri
            .sandboxes(&self.key.uid)
            .await
            .map_err(|e| e.message().to_string())?;
        let ready = sandboxes
            .iter()
            .rev()
            .find(|s| s.state() == PodSandboxState::SandboxReady);
        let attempt = sandboxes
            .iter()
            .filter_map(|s| s.metadata.as_ref().map(|m| m.attempt + 1))
            .max()
            .unwrap_or(0);
        let logs = self.pod_dir.join("logs");
        let opts = SandboxOptions {
            attempt: ready
                .and_then(|s| s.metadata.as_ref().map(|m| m.attempt))
                .unwrap_or(attempt),
            log_dir: logs.clone(),
            cgroup_parent: String::new(),
            cluster_domain: None,
            cluster_dns: Vec::new(),
            host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        };
        let config = translate::sandbox_config(pod, &opts).map_err(|e| e.to_string())?;
        let ctx = self.context(pod);
        let volumes = {
            let pod = pod.clone();
            let dir = self.pod_dir.join("volumes");
            let kubelet = Arc::clone(&self.kubelet);
            let ctx = ctx.clone();
            let pod_dir = self.pod_dir.clone();
            tokio::task::spawn_blocking(move || {
                // 0750 as the kubelet makes it: no host user reaches the pod's volumes, logs or
                // termination-log files (which are 0666 for the container's user).
                corral_fsutil::mode::create_dir(&pod_dir, POD_DIR_MODE)
                    .map_err(|e| format!("{}: {e}", pod_dir.display()))?;
                std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
                let store = kubelet.store();
                PodVolumes::prepare(&pod, &dir, &*store, &ctx).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        };
        let volumes = match volumes {
            Ok(v) => v,
            Err(e) => {
                self.event("", EventType::Warning, "FailedMount", &e);
                return Err(e);
            }
        };
        self.volumes = Some(volumes);
        let id = match ready {
            Some(s) => s.id.clone(),
            None => {
                // Old sandboxes (host reboot, a crashed shim) go before a new one is made.
                for s in &sandboxes {
                    let _ = self.kubelet.cri.stop_sandbox(&s.id).await;
                    let _ = self.kubelet.cri.remove_sandbox(&s.id).await;
                }
                // `runtimeClassName` names the runtime handler itself: there is no API server
                // holding RuntimeClass objects to map it (a RuntimeClass whose handler is its
                // own name, as in most clusters).
                let handler = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.runtime_class_name.clone())
                    .unwrap_or_default();
                match self.kubelet.cri.run_sandbox(config.clone(), &handler).await {
                    Ok(id) => id,
                    Err(e) => {
                        let msg = format!("Failed to create pod sandbox: {}", e.message());
                        self.event("", EventType::Warning, "FailedCreatePodSandBox", &msg);
                        return Err(msg);
                    }
                }
            }
        };
        let status = self
            .kubelet
            .cri
            .sandbox_status(&id)
            .await
            .map_err(|e| e.message().to_string())?;
        self.pod_ips = status
            .network
            .map(|n| {
                std::iter::once(n.ip)
                    .chain(n.additional_ips.into_iter().map(|i| i.ip))
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if self.pod_ips.is_empty() && pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            self.pod_ips = self.kubelet.host_ips();
        }
        let hosts = if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            let host = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            translate::etc_hosts_host_network(pod, &host)
        } else {
            let (hostname, domain) =
                translate::hostname_and_domain(pod, None).map_err(|e| e.to_string())?;
            translate::etc_hosts(pod, &self.pod_ips, &hostname, &domain)
        };
        let hosts_path = self.pod_dir.join("etc-hosts");
        std::fs::write(&hosts_path, hosts).map_err(|e| format!("{}: {e}", hosts_path.display()))?;
        self.sandbox = Some((id, config));
        Ok(())
    }
}
