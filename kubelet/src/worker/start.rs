//! Starting a container: the crash-loop back-off, the restart that keeps the previous
//! instance for `logs --previous`, and CreateContainer/StartContainer with its image, config,
//! termination log and postStart hook; failures become the container's waiting reason.

use super::*;

impl Worker {
    /// Whether the container must wait before restarting; records the BackOff state.
    pub(super) fn backoff_wait(
        &mut self,
        c: &Container,
        init: bool,
        st: &CriStatus,
    ) -> Option<Duration> {
        let key = backoff::key(&self.key.uid, &c.name);
        let finished = to_timestamp(st.finished_at).unwrap_or_else(now);
        match self.crash_backoff.decide(&key, finished, now()) {
            Decision::Start { .. } => {
                self.waiting.remove(&c.name);
                None
            }
            Decision::Wait { remaining, delay } => {
                let message = backoff::crash_loop_message(
                    delay,
                    &c.name,
                    &self.key.name,
                    &self.key.namespace,
                    &self.key.uid,
                );
                if !matches!(self.waiting.get(&c.name), Some(w) if w.reason == "CrashLoopBackOff") {
                    self.event(
                        &container_path(init, &c.name),
                        EventType::Warning,
                        "BackOff",
                        "Back-off restarting failed container",
                    );
                }
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message,
                    },
                );
                Some(Duration::from_millis(
                    u64::try_from(remaining.as_millis()).unwrap_or(0).max(100),
                ))
            }
        }
    }

    /// Restarts a container: removes instances older than the latest (the latest stays for
    /// `logs --previous`), then starts the next attempt.
    pub(super) async fn restart(
        &mut self,
        pod: &Pod,
        c: &Container,
        kind: ContainerKind,
        instances: &HashMap<String, Instances>,
    ) {
        let Some((sandbox_id, sandbox_config)) = self.sandbox.clone() else {
            return;
        };
        let inst = instances.get(&c.name);
        let next = inst
            .and_then(Instances::latest)
            .map_or(0, |(cc, _)| attempt(cc) + 1);
        for (old, _) in inst.into_iter().flat_map(|i| i.all.iter().skip(1)) {
            let _ = self.kubelet.cri.remove_container(&old.id).await;
        }
        self.start(pod, c, kind, next, &sandbox_id, &sandbox_config)
            .await;
    }

    /// Pulls (per the pull policy), creates and starts one container; failures become the
    /// container's waiting reason and an event.
    pub(super) async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        kind: ContainerKind,
        attempt: u32,
        sandbox_id: &str,
        sandbox_config: &PodSandboxConfig,
    ) {
        let init = matches!(kind, ContainerKind::Init);
        let path = container_path(init, &c.name);
        let Some((image, record)) = self.ensure_image(pod, c, &path, sandbox_config).await else {
            return;
        };
        // Image volumes are pulled like the container's image, by their own pull policy.
        let volume_images = self
            .volumes
            .as_ref()
            .map(|v| v.images_for(c))
            .unwrap_or_default();
        for (reference, policy) in volume_images {
            let as_container = Container {
                name: c.name.clone(),
                image: Some(reference),
                image_pull_policy: policy,
                ..Default::default()
            };
            if self
                .ensure_image(pod, &as_container, &path, sandbox_config)
                .await
                .is_none()
            {
                return;
            }
        }
        // runAsNonRoot against the image's user, as the kubelet checks it before creating.
        if let Some(img) = record {
            let uid = img.uid.map(|u| u.value);
            if let Err(msg) = translate::verify_run_as_non_root(pod, c, uid, &img.username) {
                self.config_error(&path, &c.name, &msg);
                return;
            }
        }
        let ctx = self.context(pod);
        let env = {
            let store = self.kubelet.store();
            corral_kube::env::environment(pod, c, &ctx, &*store)
        };
        let env = match env {
            Ok(env) => env,
            Err(e) => {
                self.config_error(&path, &c.name, &e.to_string());
                return;
            }
        };
        let mut mounts = match self.volumes.as_ref().map(|v| v.mounts(c, Some(&env))) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                self.config_error(&path, &c.name, &e.to_string());
                return;
            }
            None => Vec::new(),
        };
        let hosts = self.pod_dir.join("etc-hosts");
        if translate::mounts_etc_hosts(c, &self.pod_ips)
            && !mounts.iter().any(|m| m.container_path == "/etc/hosts")
        {
            mounts.push(corral_cri_api::v1::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        let termination_log = match self.termination_log(&c.name, attempt) {
            Ok(p) => p,
            Err(e) => {
                self.config_error(&path, &c.name, &e);
                return;
            }
        };
        let seccomp_root = self.kubelet.config.dir.join("seccomp");
        let inputs = ContainerInputs {
            kind,
            attempt,
            image: &image,
            env: &env,
            mounts,
            termination_message_file: Some(termination_log),
            memory_capacity: self.kubelet.memory_capacity(),
            hugepage_sizes: &self.kubelet.hugepage_sizes,
            seccomp_profile_root: &seccomp_root,
            seccomp_default: false,
            log_path: format!("{}/{attempt}.log", c.name),
        };
        let config = match translate::container_config(pod, c, inputs) {
            Ok(cfg) => cfg,
            Err(e) => {
                self.config_error(&path, &c.name, &e.to_string());
                return;
            }
        };
        let cri = &self.kubelet.cri;
        let id = match cri
            .create_container(sandbox_id, config, sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.start_failed(&path, &c.name, "CreateContainerError", e.message());
                return;
            }
        };
        self.event(
            &path,
            EventType::Normal,
            "Created",
            &format!("Created container: {}", c.name),
        );
        if let Err(e) = cri.start_container(&id).await {
            self.start_failed(&path, &c.name, "RunContainerError", e.message());
            return;
        }
        self.waiting.remove(&c.name);
        self.event(
            &path,
            EventType::Normal,
            "Started",
            &format!("Started container {}", c.name),
        );
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let target_ips = self.pod_ips.clone();
            if let Err(msg) = crate::prober::run_hook(&self.kubelet, h, &id, c, &target_ips).await {
                self.event(
                    &path,
                    EventType::Warning,
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {msg}"),
                );
                let _ = cri.stop_container(&id, grace_of(pod)).await;
            }
        }
    }

    /// The host file behind a container's `terminationMessagePath`: world-writable, as the
    /// kubelet makes it, so any container user can write it through its bind mount, inside
    /// 0750 directories (the pod's and the container's), so no host user can.
    pub(super) fn termination_log(&self, name: &str, attempt: u32) -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        // The pod's directory is made 0750 with its volumes; the missing ones here get it too.
        let dir = self.pod_dir.join("containers").join(name);
        corral_fsutil::mode::create_dir(&dir, POD_DIR_MODE)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join(format!("{attempt}-termination-log"));
        std::fs::write(&file, b"").map_err(|e| format!("{}: {e}", file.display()))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(file)
    }

    pub(super) fn config_error(&mut self, path: &str, name: &str, msg: &str) {
        self.start_failed(path, name, "CreateContainerConfigError", msg);
    }

    /// A container that could not be started: a Failed event and its waiting reason.
    pub(super) fn start_failed(&mut self, path: &str, name: &str, reason: &str, msg: &str) {
        self.event(path, EventType::Warning, "Failed", &format!("Error: {msg}"));
        self.waiting.insert(
            name.into(),
            Waiting {
                reason: reason.into(),
                message: msg.into(),
            },
        );
    }
}
