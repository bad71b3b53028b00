//! Stopping: a container killed for a restart, every container within the grace period
//! (preStop hooks first), and the pod's teardown (sandboxes, volumes, directory).

use super::*;

impl Worker {
    /// Stops a running container in the background (its grace period may be long) so that
    /// the next sync restarts it: a Killing event saying why, its probes stopped.
    pub(super) fn kill_for_restart(&mut self, pod: &Pod, c: &Container, id: &str, why: &str) {
        self.event(
            &container_path(false, &c.name),
            EventType::Normal,
            "Killing",
            &format!("Container {} {why}, will be restarted", c.name),
        );
        self.probes.forget(id);
        let cri = self.kubelet.cri.clone();
        let (id, grace) = (id.to_string(), grace_of(pod));
        let notify = Arc::clone(&self.notify);
        tokio::spawn(async move {
            let _ = cri.stop_container(&id, grace).await;
            notify.notify_one();
        });
    }

    /// Stops every running container (preStop hooks first) within `grace` seconds.
    pub(super) async fn kill_containers(&mut self, pod: &Pod, grace: i64) {
        self.probes.stop_all();
        let Some((sandbox_id, _)) = self.sandbox.clone() else {
            return;
        };
        let Ok(list) = self.kubelet.cri.containers(&sandbox_id).await else {
            return;
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        let deadline = tokio::time::Instant::now() + grace;
        let mut tasks = Vec::new();
        for cc in list {
            if cc.state() != CriState::ContainerRunning && cc.state() != CriState::ContainerCreated
            {
                continue;
            }
            let name = cc
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .unwrap_or_default();
            let init = !spec.containers.iter().any(|c| c.name == name);
            let container = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == name)
                .cloned();
            self.event(
                &container_path(init, &name),
                EventType::Normal,
                "Killing",
                &format!("Stopping container {name}"),
            );
            let kubelet = Arc::clone(&self.kubelet);
            let ips = self.pod_ips.clone();
            tasks.push(tokio::spawn(async move {
                if let Some(c) = &container
                    && let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
                {
                    let hook = crate::prober::run_hook(&kubelet, h, &cc.id, c, &ips);
                    if tokio::time::timeout_at(deadline, hook).await.is_err() {
                        tracing::info!(container = %cc.id, "preStop hook outlived the grace period");
                    }
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Err(e) = kubelet.cri.stop_container(&cc.id, left).await {
                    tracing::warn!(container = %cc.id, error = %e, "stopping a container");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Kills the pod's containers and removes its sandboxes, volumes and directory.
    pub(super) async fn terminate(&mut self, pod: Option<&Pod>, grace: i64) -> Result<(), String> {
        // After a restart the worker may not know its sandbox yet: the newest one.
        if self.sandbox.is_none()
            && let Ok(list) = self.kubelet.cri.sandboxes(&self.key.uid).await
            && let Some(s) = list.last()
        {
            self.sandbox = Some((s.id.clone(), PodSandboxConfig::default()));
        }
        if let Some(pod) = pod {
            self.kill_containers(pod, grace).await;
        }
        let sandboxes = self
            .kubelet
            .cri
            .sandboxes(&self.key.uid)
            .await
            .map_err(|e| e.message().to_string())?;
        for s in sandboxes {
            self.kubelet
                .cri
                .stop_sandbox(&s.id)
                .await
                .map_err(|e| e.message().to_string())?;
            self.kubelet
                .cri
                .remove_sandbox(&s.id)
                .await
                .map_err(|e| e.message().to_string())?;
        }
        let dir = self.pod_dir.clone();
        tokio::task::spawn_blocking(move || {
            volumes::teardown(&dir.join("volumes")).map_err(|e| e.to_string())?;
            // Iterative and descriptor-bounded: what is left here may be container-shaped.
            corral_fsutil::remove_tree(&dir).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        self.sandbox = None;
        Ok(())
    }
}
