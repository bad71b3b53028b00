//! Steps 3 to 6 of a sync: the deadline, the sandbox, init containers one at a time, app
//! containers started or restarted per the restart policy and killed when a probe says so;
//! and, after a restart, adopting a pod that had already finished.

use super::*;

impl Worker {
    /// Steps 3 to 6, filling `observed`.
    pub(super) async fn sync_running(
        &mut self,
        pod: &Pod,
        observed: &mut Observed,
    ) -> Result<Next, String> {
        let spec = pod.spec.clone().unwrap_or_default();
        if !self.terminal && self.deadline_passed(pod) {
            self.event(
                "",
                EventType::Normal,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            );
            self.deadline_exceeded = true;
            self.terminal = true;
            self.kill_containers(pod, 0).await;
        }
        if !self.terminal && self.sandbox.is_none() {
            self.ensure_sandbox(pod).await?;
        }
        let Some((sandbox_id, sandbox_config)) = self.sandbox.clone() else {
            return Ok(Next::After(RESYNC));
        };
        observed.sandbox_ready = !self.terminal;
        observed.pod_ips = self.pod_ips.clone();
        observed.deadline_exceeded = self.deadline_exceeded;
        let instances = self.instances(&sandbox_id).await?;
        let restart_policy = spec
            .restart_policy
            .as_deref()
            .unwrap_or("Always")
            .to_string();
        let mut next = RESYNC;

        // Init containers, one after another.
        let inits = spec.init_containers.clone().unwrap_or_default();
        let mut inits_done = true;
        for c in &inits {
            let inst = instances.get(&c.name);
            observed
                .init_containers
                .extend(self.observe(c, inst).map(|o| (c.name.clone(), o)));
            if self.terminal {
                continue;
            }
            let latest = inst.and_then(Instances::latest);
            match latest.map(|(_, s)| s.state()) {
                None => {
                    inits_done = false;
                    self.start(pod, c, ContainerKind::Init, 0, &sandbox_id, &sandbox_config)
                        .await;
                    break;
                }
                Some(CriState::ContainerCreated | CriState::ContainerRunning) => {
                    inits_done = false;
                    break;
                }
                Some(CriState::ContainerExited) | Some(CriState::ContainerUnknown) => {
                    let Some((_, st)) = latest else { break };
                    if st.exit_code == 0 && st.state() == CriState::ContainerExited {
                        continue;
                    }
                    inits_done = false;
                    if restart_policy == "Never" {
                        self.terminal = true;
                        break;
                    }
                    if let Some(wait) = self.backoff_wait(c, true, st) {
                        next = next.min(wait);
                    } else {
                        self.restart(pod, c, ContainerKind::Init, &instances).await;
                    }
                    break;
                }
            }
        }

        // App containers.
        let mut any_will_run = false;
        for c in &spec.containers {
            let inst = instances.get(&c.name);
            if !self.terminal && inits_done {
                let latest = inst.and_then(Instances::latest);
                match latest {
                    None => {
                        any_will_run = true;
                        self.start(
                            pod,
                            c,
                            ContainerKind::Regular,
                            0,
                            &sandbox_id,
                            &sandbox_config,
                        )
                        .await;
                    }
                    Some((cc, st)) => match st.state() {
                        CriState::ContainerRunning
                            if cc
                                .annotations
                                .get(translate::CONTAINER_HASH_ANNOTATION)
                                .is_some_and(|h| *h != translate::container_hash(c)) =>
                        {
                            // The spec changed (a new image): kill it; it starts again at once.
                            any_will_run = true;
                            if self.changed.insert(st.id.clone()) {
                                self.kill_for_restart(pod, c, &st.id, "definition changed");
                            }
                        }
                        CriState::ContainerRunning => {
                            any_will_run = true;
                            self.probes.ensure(
                                &self.kubelet,
                                &self.key,
                                pod,
                                c,
                                &st.id,
                                &self.pod_ips,
                            );
                            if let Some(why) = self.probes.liveness_failed(&st.id) {
                                self.kill_for_restart(pod, c, &st.id, &format!("failed {why}"));
                            }
                        }
                        CriState::ContainerCreated => any_will_run = true,
                        CriState::ContainerExited | CriState::ContainerUnknown
                            if self.changed.contains(&st.id) =>
                        {
                            any_will_run = true;
                            self.changed.remove(&st.id);
                            self.waiting.remove(&c.name);
                            self.restart(pod, c, ContainerKind::Regular, &instances)
                                .await;
                        }
                        CriState::ContainerExited | CriState::ContainerUnknown => {
                            self.probes.forget(&st.id);
                            let restart = match restart_policy.as_str() {
                                "Never" => false,
                                "OnFailure" => st.exit_code != 0,
                                _ => true,
                            };
                            if restart {
                                any_will_run = true;
                                if let Some(wait) = self.backoff_wait(c, false, st) {
                                    next = next.min(wait);
                                } else {
                                    self.restart(pod, c, ContainerKind::Regular, &instances)
                                        .await;
                                }
                            }
                        }
                    },
                }
            } else if !inits_done && !self.terminal {
                any_will_run = true;
            }
            let inst = instances.get(&c.name);
            let mut o = self.observe(c, inst);
            if let Some(o) = &mut o
                && matches!(o.state, State::Running { .. })
            {
                let id = o.container_id.clone().unwrap_or_default();
                let id = id.trim_start_matches("corral://");
                let (ready, started) = self.probes.status(id, c);
                o.ready = ready;
                o.started = Some(started);
            }
            observed.containers.extend(o.map(|o| (c.name.clone(), o)));
        }
        if !any_will_run && inits_done && !spec.containers.is_empty() {
            self.terminal = true;
        }
        if self.terminal {
            observed.terminal = true;
            observed.sandbox_ready = false;
            self.probes.stop_all();
            if let Err(e) = self.kubelet.cri.stop_sandbox(&sandbox_id).await {
                tracing::warn!(pod = %self.key, error = %e, "stopping a finished pod's sandbox");
            }
            return Ok(Next::After(RESYNC * 5));
        }
        Ok(Next::After(next))
    }

    /// After a restart: a pod the store says has finished stays finished (its containers are
    /// not run again); its newest sandbox is where its containers are.
    pub(super) async fn adopt_finished(&mut self, pod: &Pod) {
        let status = pod.status.as_ref();
        if !matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            return;
        }
        self.terminal = true;
        self.deadline_exceeded =
            status.and_then(|s| s.reason.as_deref()) == Some("DeadlineExceeded");
        self.pod_ips = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect())
            .unwrap_or_default();
        if let Ok(list) = self.kubelet.cri.sandboxes(&self.key.uid).await
            && let Some(s) = list.last()
        {
            self.sandbox = Some((s.id.clone(), PodSandboxConfig::default()));
        }
    }

    pub(super) fn deadline_passed(&self, pod: &Pod) -> bool {
        let (Some(secs), Some(start)) = (
            pod.spec.as_ref().and_then(|s| s.active_deadline_seconds),
            self.start_time,
        ) else {
            return false;
        };
        now().duration_since(start) >= SignedDuration::from_secs(secs)
    }
}
