//! Image references: parsing and normalisation the way Docker and kubelet name images.
//!
//! `busybox` is `docker.io/library/busybox:latest`; `quay.io/a/b@sha256:...` is kept as is.

use oci_client::Reference;

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// A normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host as named, e.g. `docker.io`, `registry.k8s.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalises a reference; a reference without tag or digest gets `latest`.
    pub fn parse(input: &str) -> Result<ImageRef> {
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: input.to_owned(),
            reason,
        };
        if input.trim().is_empty() {
            return Err(invalid("empty image name".into()));
        }
        if input.starts_with("sha256:") {
            return Err(invalid("an image ID is not a pullable reference".into()));
        }
        let parsed: Reference = input.parse().map_err(|e| {
            // The grammar rejects upper case in repository paths; say so, as Docker does.
            let path = input.split_once('/').map_or(input, |(_, p)| p);
            if path.bytes().any(|b| b.is_ascii_uppercase()) {
                invalid(format!("{e}: repository name must be lowercase"))
            } else {
                invalid(format!("{e}"))
            }
        })?;
        if parsed.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase".into()));
        }
        let digest = parsed
            .digest()
            .map(Digest::parse)
            .transpose()
            .map_err(invalid)?;
        Ok(ImageRef {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            tag: parsed.tag().map(str::to_owned),
            digest,
        })
    }

    /// `registry/repository`, the name part of repo tags and repo digests.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag`, when the reference has a tag.
    pub fn repo_tag(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `registry/repository@digest` for a given digest.
    pub fn repo_digest(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.name())
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_normalised() {
        let r = ImageRef::parse("busybox").expect("parse");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = ImageRef::parse("user/app:1").expect("parse");
        assert_eq!(r.to_string(), "docker.io/user/app:1");
        let r = ImageRef::parse("registry.k8s.io/pause:3.10").expect("parse");
        assert_eq!(r.repo_tag().as_deref(), Some("registry.k8s.io/pause:3.10"));
        let r = ImageRef::parse("127.0.0.1:5000/a/b").expect("parse");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
    }

    #[test]
    fn digests_are_kept() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("quay.io/x/y@{d}")).expect("parse");
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), d);
    }

    #[test]
    fn bad_references_are_rejected() {
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("UPPER/case").is_err());
        assert!(ImageRef::parse("a@sha256:123").is_err());
        assert!(ImageRef::parse(&format!("sha256:{}", "a".repeat(64))).is_err());
    }
}
