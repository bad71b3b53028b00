//! Resolving a pull: the endpoints to try, the manifest or index by tag or digest (with the
//! digest a registry claims checked against the bytes), the platform chosen from an index,
//! and the config blob.

use super::*;

impl Pull<'_> {
    pub(super) fn target<'s>(&'s self, s: &'s Source) -> Target<'s> {
        Target {
            endpoint: &s.endpoint,
            repository: &self.r.repository,
            upstream: &self.r.registry,
            credentials: s.credentials.as_ref(),
        }
    }

    /// What a failed fetch of `kind` `name` (a manifest reference, a blob digest) means.
    pub(super) fn fetch_error(
        &self,
        s: &Source,
        kind: &'static str,
        name: &str,
        e: FetchError,
    ) -> ImageError {
        let image = self.image.clone();
        match e {
            FetchError::NotFound(detail) => ImageError::RemoteNotFound {
                image,
                what: format!("{kind} {name}"),
                detail,
            },
            FetchError::Unauthorized(detail) => ImageError::Unauthorized { image, detail },
            FetchError::TooLarge(limit) => ImageError::TooLarge {
                image,
                what: "manifest or config",
                size: limit + 1,
                limit,
            },
            FetchError::Mismatch(detail) => ImageError::Verification {
                image,
                what: kind,
                digest: name.to_owned(),
                detail,
            },
            FetchError::Other(detail) => ImageError::Registry {
                image,
                endpoint: s.endpoint.url.clone(),
                detail,
            },
        }
    }

    /// Tries each endpoint with the capability in order; the first success wins.
    pub(super) async fn manifest(&self, reference: &str, resolve: bool) -> Result<(Bytes, String)> {
        let mut last = None;
        for s in self.sources.iter().filter(|s| {
            if resolve {
                s.endpoint.resolve
            } else {
                s.endpoint.pull
            }
        }) {
            match self.mgr.registry.manifest(&self.target(s), reference).await {
                Ok(m) => {
                    self.check_claimed_digest(reference, m.claimed_digest.as_deref(), &m.bytes)?;
                    return Ok((m.bytes, m.content_type));
                }
                Err(e @ FetchError::TooLarge(_)) => {
                    return Err(self.fetch_error(s, "manifest", reference, e));
                }
                Err(e) => {
                    tracing::debug!(image = %self.image, endpoint = %s.endpoint.url, error = %e, "manifest fetch failed");
                    last = Some(self.fetch_error(s, "manifest", reference, e));
                }
            }
        }
        Err(last.unwrap_or_else(|| ImageError::Registry {
            image: self.image.clone(),
            endpoint: self.r.registry.clone(),
            detail: "no endpoint may resolve or pull (check capabilities in hosts.toml)".into(),
        }))
    }

    /// A registry that names a manifest's digest (`Docker-Content-Digest`, what containerd
    /// resolves a tag to with a HEAD request and then fetches by) must have sent the bytes of
    /// that digest: a tag that moved between two answers, or a proxy that rewrote the body, is
    /// refused rather than half believed. A digest of another algorithm is not checked here;
    /// the bytes are still what the image is built from.
    pub(super) fn check_claimed_digest(
        &self,
        reference: &str,
        claimed: Option<&str>,
        bytes: &[u8],
    ) -> Result<()> {
        let Some(claimed) = claimed else {
            return Ok(());
        };
        let got = Digest::of(bytes);
        match Digest::parse(claimed) {
            Ok(d) if d != got => Err(ImageError::Verification {
                image: self.image.clone(),
                what: "manifest",
                digest: reference.to_owned(),
                detail: format!(
                    "the registry names it {claimed} (Docker-Content-Digest) but the manifest it sent hashes to {got}"
                ),
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(image = %self.image, reference, claimed, error = %e, "Docker-Content-Digest not checked");
                Ok(())
            }
        }
    }

    /// Picks the host platform's manifest from an index.
    pub(super) fn choose(&self, index: &ImageIndex) -> Result<Digest> {
        let want = &self.mgr.cfg.platform;
        let mut best: Option<(u8, &oci_spec::image::Descriptor)> = None;
        for m in index.manifests() {
            let Some(p) = m.platform() else { continue };
            if p.os().to_string() != want.os || p.architecture().to_string() != want.architecture {
                continue;
            }
            // An exact variant beats a missing one; a different variant does not match.
            let rank = match (p.variant().as_deref(), want.variant.as_deref()) {
                (Some(a), Some(b)) if a == b => 2,
                (None, _) => 1,
                (Some(_), None) => 1,
                _ => continue,
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, m));
            }
        }
        let (_, desc) = best.ok_or_else(|| ImageError::RemoteNotFound {
            image: self.image.clone(),
            what: format!("manifest for platform {want}"),
            detail: format!(
                "the index lists {} other manifests",
                index.manifests().len()
            ),
        })?;
        self.digest_of(desc.digest().as_ref(), "manifest")
    }

    pub(super) async fn config_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        let limit = self.mgr.cfg.max_config_bytes;
        if size > limit {
            return Err(ImageError::TooLarge {
                image: self.image.clone(),
                what: "image config",
                size,
                limit,
            });
        }
        if self.mgr.content.contains(digest) {
            return self.mgr.content.read(digest);
        }
        let mut last = None;
        for s in self.sources.iter().filter(|s| s.endpoint.pull) {
            match self
                .mgr
                .registry
                .small_blob(&self.target(s), digest.as_str(), size)
                .await
            {
                Ok(bytes) => {
                    let got = Digest::of(&bytes);
                    if got != *digest || bytes.len() as u64 != size {
                        return Err(self.verification(
                            "config",
                            digest,
                            format!(
                                "content hashes to {got} ({} bytes, manifest says {size})",
                                bytes.len()
                            ),
                        ));
                    }
                    return Ok(bytes.to_vec());
                }
                Err(e) => last = Some(self.fetch_error(s, "config", digest.as_str(), e)),
            }
        }
        Err(last.unwrap_or_else(|| self.no_pull_endpoint()))
    }
}
