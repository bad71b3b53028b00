//! Pulls: the pull policy, the image pull back-off, the pod's pull secrets as credentials,
//! and the ImageStatus record the container is created from.

use super::*;

impl Worker {
    /// The image reference to create the container from, pulling it when the policy says so,
    /// and its ImageStatus record.
    pub(super) async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        path: &str,
        sandbox_config: &PodSandboxConfig,
    ) -> Option<(String, Option<corral_cri_api::v1::Image>)> {
        let image = c.image.clone().unwrap_or_default();
        let cri = self.kubelet.cri.clone();
        let present = cri.image_present(&image).await.ok().flatten();
        let policy = translate::pull_policy(c);
        let must_pull = match policy {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => present.is_none(),
            PullPolicy::Never => false,
        };
        if !must_pull {
            return match present {
                Some(record) => {
                    self.event(
                        path,
                        EventType::Normal,
                        "Pulled",
                        &format!("Container image \"{image}\" already present on machine"),
                    );
                    self.images.insert(image.clone(), image.clone());
                    Some((image, Some(record)))
                }
                None => {
                    let msg = format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    );
                    self.event(path, EventType::Warning, "ErrImageNeverPull", &msg);
                    self.waiting.insert(
                        c.name.clone(),
                        Waiting {
                            reason: "ErrImageNeverPull".into(),
                            message: msg,
                        },
                    );
                    None
                }
            };
        }
        let key = format!("{}/{image}", self.key.uid);
        let last_failure = self.pull_failed.get(&key).copied();
        if last_failure.is_some_and(|at| {
            self.pull_backoff
                .in_backoff_since(&key, at, now())
                .is_some()
        }) {
            self.event(
                path,
                EventType::Normal,
                "BackOff",
                &format!("Back-off pulling image \"{image}\""),
            );
            self.waiting.insert(
                c.name.clone(),
                Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: backoff::image_pull_message(&image),
                },
            );
            return None;
        }
        self.event(
            path,
            EventType::Normal,
            "Pulling",
            &format!("Pulling image \"{image}\""),
        );
        let secrets = self.pull_secrets(pod);
        let auth = match translate::auth_for(&image, &secrets) {
            Ok(a) => a.into_iter().next(),
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.event(path, EventType::Warning, "Failed", &msg);
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "ErrImagePull".into(),
                        message: msg,
                    },
                );
                return None;
            }
        };
        let begun = std::time::Instant::now();
        match cri.pull(&image, auth, Some(sandbox_config.clone())).await {
            Ok(pulled) => {
                let took = begun.elapsed();
                self.event(
                    path,
                    EventType::Normal,
                    "Pulled",
                    &format!(
                        "Successfully pulled image \"{image}\" in {took:.3?} ({took:.3?} including waiting). Image size: {} bytes.",
                        pulled.image.as_ref().map_or(0, |i| i.size)
                    ),
                );
                self.pull_backoff.reset(&key);
                self.pull_failed.remove(&key);
                self.images.insert(image.clone(), pulled.image_ref.clone());
                Some((image, pulled.image))
            }
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {}", e.message());
                self.event(path, EventType::Warning, "Failed", &msg);
                self.event(path, EventType::Warning, "Failed", "Error: ErrImagePull");
                let at = now();
                self.pull_backoff.next(&key, at, at);
                self.pull_failed.insert(key.clone(), at);
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "ErrImagePull".into(),
                        message: msg,
                    },
                );
                None
            }
        }
    }

    pub(super) fn pull_secrets(&self, pod: &Pod) -> Vec<Secret> {
        let store = self.kubelet.store();
        pod.spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .filter_map(
                |r| match store.get(Kind::Secret, &self.key.namespace, &r.name) {
                    Some(corral_kube::Object::Secret(s)) => Some(s.clone()),
                    _ => None,
                },
            )
            .collect()
    }
}
