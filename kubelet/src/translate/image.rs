//! Image names as the Docker reference grammar normalizes them, and the pull policy default.

use super::*;

/// An image reference split as the Docker reference grammar normalizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The registry host (`docker.io` for Docker Hub).
    pub domain: String,
    /// The repository path (`library/nginx`).
    pub path: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<String>,
}

impl ImageName {
    /// `domain/path`, what the kubelet looks credentials up with.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

/// Splits `image` (`nginx`, `localhost:5000/x:1`, `quay.io/a/b@sha256:...`).
pub fn parse_image_name(image: &str) -> ImageName {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (image, None),
    };
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_owned())),
        _ => (rest, None),
    };
    let (mut domain, mut path) = match name.split_once('/') {
        Some((d, p)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => {
            (d.to_owned(), p.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "docker.io" && !path.contains('/') {
        path = format!("library/{path}");
    }
    ImageName {
        domain,
        path,
        tag,
        digest,
    }
}

/// The container's pull policy: `imagePullPolicy`, else (the API server's default) `Always`
/// for a `latest` tag or no tag and no digest, `IfNotPresent` otherwise.
pub fn pull_policy(c: &Container) -> PullPolicy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => return PullPolicy::Always,
        Some("IfNotPresent") => return PullPolicy::IfNotPresent,
        Some("Never") => return PullPolicy::Never,
        _ => {}
    }
    let name = parse_image_name(c.image.as_deref().unwrap_or(""));
    let tag = match (&name.tag, &name.digest) {
        (Some(t), _) => t.as_str(),
        (None, None) => "latest",
        (None, Some(_)) => "",
    };
    if tag == "latest" {
        PullPolicy::Always
    } else {
        PullPolicy::IfNotPresent
    }
}
