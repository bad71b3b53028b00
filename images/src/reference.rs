//! Image references: parsing and normalisation the way Docker and kubelet name images.
//!
//! `busybox` is `docker.io/library/busybox:latest`; `quay.io/a/b@sha256:...` is kept as is.
//!
//! The grammar is distribution's (`reference/regexp.go`), checked by hand here. oci-spec's
//! `Reference` checks it with one regex whose tag part (Unicode `\w` repeated up to 128 times)
//! compiles, at the first parse, to about 5.4 MiB that stay resident for the daemon's life:
//! the largest single allocation in an idle corrald (measured with heaptrack). Its `\w` also
//! let non-ASCII tags through, which distribution's ASCII grammar does not.

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
        let (name, tag, digest) = grammar::split(input).map_err(|e| {
            // The grammar rejects upper case in repository paths; say so, as Docker does.
            let path = input.split_once('/').map_or(input, |(_, p)| p);
            if path.bytes().any(|b| b.is_ascii_uppercase()) {
                invalid(format!("{e}: repository name must be lowercase"))
            } else {
                invalid(e.to_owned())
            }
        })?;
        let (registry, repository) = grammar::split_domain(name);
        if repository.len() > grammar::NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(format!(
                "repository name must not be more than {} characters",
                grammar::NAME_TOTAL_LENGTH_MAX
            )));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase".into()));
        }
        if let Some(d) = digest {
            grammar::check_digest_length(d).map_err(|e| invalid(e.to_owned()))?;
        }
        let digest = digest.map(Digest::parse).transpose().map_err(invalid)?;
        Ok(ImageRef {
            registry,
            repository,
            tag: match (tag, &digest) {
                (Some(t), _) => Some(t.to_owned()),
                (None, Some(_)) => None,
                (None, None) => Some("latest".to_owned()),
            },
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

/// distribution's reference grammar:
///
/// ```text
/// reference      := name [ ":" tag ] [ "@" digest ]
/// name           := [ domain "/" ] path
/// domain         := host [ ":" port ]          host := component ( "." component )*
/// component      := [a-zA-Z0-9] | [a-zA-Z0-9] [a-zA-Z0-9-]* [a-zA-Z0-9]
/// port           := [0-9]+
/// path           := path-component ( "/" path-component )*
/// path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*   separator := [._] | "__" | "-"+
/// tag            := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
/// digest         := algorithm ":" [0-9a-fA-F]{32,}
/// algorithm      := [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*
/// ```
mod grammar {
    pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
    const INVALID: &str = "invalid reference format";

    /// `(name, tag, digest)` of a reference that matches the grammar.
    pub fn split(input: &str) -> Result<(&str, Option<&str>, Option<&str>), &'static str> {
        if input.is_empty() {
            return Err("repository name must have at least one component");
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (rest, Some(d)),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it is the domain's port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let ok = name_ok(name) && tag.is_none_or(tag_ok) && digest.is_none_or(digest_ok);
        if ok {
            Ok((name, tag, digest))
        } else {
            Err(INVALID)
        }
    }

    /// The registry host and repository of a checked name, normalised as Docker does:
    /// no domain (a first part without '.' or ':' that is not `localhost`) is Docker Hub, whose
    /// single-part names are under `library/`.
    pub fn split_domain(name: &str) -> (String, String) {
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains(['.', ':']) || d == "localhost" => (d, p.to_owned()),
            _ => ("docker.io", name.to_owned()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io"
        } else {
            domain
        };
        if domain == "docker.io" && !path.contains('/') {
            return (domain.to_owned(), format!("library/{path}"));
        }
        (domain.to_owned(), path)
    }

    /// A known algorithm's digest has its exact length.
    pub fn check_digest_length(digest: &str) -> Result<(), &'static str> {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or("invalid checksum digest format")?;
        let want = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err("unsupported digest algorithm"),
        };
        if hex.len() == want {
            Ok(())
        } else {
            Err("invalid checksum digest length")
        }
    }

    fn name_ok(name: &str) -> bool {
        path_ok(name)
            || name
                .split_once('/')
                .is_some_and(|(d, p)| domain_ok(d) && path_ok(p))
    }

    fn domain_ok(domain: &str) -> bool {
        let (host, port) = match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        };
        let component = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        host.split('.').all(component)
            && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    }

    fn path_ok(path: &str) -> bool {
        path.split('/').all(path_component_ok)
    }

    fn path_component_ok(c: &str) -> bool {
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let b = c.as_bytes();
        let mut i = 0;
        loop {
            // A run of [a-z0-9]+.
            let start = i;
            while i < b.len() && alnum(b[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
            if i == b.len() {
                return true;
            }
            // A separator: '.', '_', "__" or one or more '-'.
            match b[i] {
                b'.' => i += 1,
                b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
                b'-' => {
                    while i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
        }
    }

    fn tag_ok(tag: &str) -> bool {
        let b = tag.as_bytes();
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        (1..=128).contains(&b.len())
            && word(b[0])
            && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
    }

    fn digest_ok(digest: &str) -> bool {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return false;
        };
        let component = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
        };
        algorithm.split(['-', '_', '+', '.']).all(component)
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
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

    /// Docker's and distribution's own cases: (input, registry, repository, tag, digest).
    #[test]
    fn the_grammar_and_docker_normalisation() {
        let h64 = "f".repeat(64);
        type Case = (
            String,
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<String>,
        );
        let cases: Vec<Case> = vec![
            (
                "busybox".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
            ),
            (
                "test.com:tag".into(),
                "docker.io",
                "library/test.com",
                Some("tag"),
                None,
            ),
            (
                "test.com:5000".into(),
                "docker.io",
                "library/test.com",
                Some("5000"),
                None,
            ),
            (
                "test.com/repo:tag".into(),
                "test.com",
                "repo",
                Some("tag"),
                None,
            ),
            (
                "test:5000/repo".into(),
                "test:5000",
                "repo",
                Some("latest"),
                None,
            ),
            (
                "test:5000/repo:tag".into(),
                "test:5000",
                "repo",
                Some("tag"),
                None,
            ),
            (
                format!("test:5000/repo@sha256:{h64}"),
                "test:5000",
                "repo",
                None,
                Some(format!("sha256:{h64}")),
            ),
            (
                format!("test:5000/repo:tag@sha256:{h64}"),
                "test:5000",
                "repo",
                Some("tag"),
                Some(format!("sha256:{h64}")),
            ),
            (
                "lowercase:Uppercase".into(),
                "docker.io",
                "library/lowercase",
                Some("Uppercase"),
                None,
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux".into(),
                "sub-dom1.foo.com",
                "bar/baz/quux",
                Some("latest"),
                None,
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com".into(),
                "b.gcr.io",
                "test.example.com/my-app",
                Some("test.example.com"),
                None,
            ),
            (
                "xn--n3h.com/myimage:xn--n3h.com".into(),
                "xn--n3h.com",
                "myimage",
                Some("xn--n3h.com"),
                None,
            ),
            (
                "foo_bar.com:8080".into(),
                "docker.io",
                "library/foo_bar.com",
                Some("8080"),
                None,
            ),
            (
                "foo/foo_bar.com:8080".into(),
                "docker.io",
                "foo/foo_bar.com",
                Some("8080"),
                None,
            ),
            (
                "opensuse/leap:15.3".into(),
                "docker.io",
                "opensuse/leap",
                Some("15.3"),
                None,
            ),
            (
                "index.docker.io/library/nginx".into(),
                "docker.io",
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "localhost/app".into(),
                "localhost",
                "app",
                Some("latest"),
                None,
            ),
            (
                "a/b__c/d--e/f.g/h_i:t".into(),
                "docker.io",
                "a/b__c/d--e/f.g/h_i",
                Some("t"),
                None,
            ),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let r = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry, registry, "{input}");
            assert_eq!(r.repository, repository, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.map(|d| d.to_string()), digest, "{input}");
        }
    }

    #[test]
    fn references_outside_the_grammar_say_why() {
        let h64 = "f".repeat(64);
        let cases = [
            (":justtag".to_owned(), "invalid reference format"),
            (format!("@sha256:{h64}"), "invalid reference format"),
            (
                "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
                "invalid checksum digest length",
            ),
            (
                format!("validname@invaliddigest:{h64}"),
                "unsupported digest algorithm",
            ),
            ("Uppercase:tag".into(), "invalid reference format"),
            (
                "test:5000/Uppercase/lowercase:tag".into(),
                "repository name must be lowercase",
            ),
            (
                "Uppercase/lowercase:tag".into(),
                "repository name must be lowercase",
            ),
            (
                "a".repeat(256),
                "repository name must not be more than 255 characters",
            ),
            ("aa/asdf$$^/aa".into(), "invalid reference format"),
            ("a/b._c".into(), "invalid reference format"),
            ("a/b___c".into(), "invalid reference format"),
            ("a/-b".into(), "invalid reference format"),
            ("a//b".into(), "invalid reference format"),
            ("-a.com/b".into(), "invalid reference format"),
            ("a.com:/b".into(), "invalid reference format"),
            ("busybox:".into(), "invalid reference format"),
            (
                format!("busybox:{}", "t".repeat(129)),
                "invalid reference format",
            ),
            ("busybox:.t".into(), "invalid reference format"),
            // Distribution's `\w` is ASCII.
            ("busybox:t\u{e9}".into(), "invalid reference format"),
            ("busybox@sha256:abc".into(), "invalid reference format"),
            (format!("a@b@sha256:{h64}"), "invalid reference format"),
            // The grammar's; the store keeps sha256 only.
            (format!("a/b@sha512:{}", "f".repeat(128)), "is not sha256"),
        ];
        for (input, why) in cases {
            match ImageRef::parse(&input) {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(e) => assert!(e.to_string().contains(why), "{input:?}: {e}"),
            }
        }
        let max = format!("{}:t", "a".repeat(255 - "library/".len()));
        assert!(ImageRef::parse(&max).is_ok());
    }

    #[test]
    fn bad_references_are_rejected() {
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("UPPER/case").is_err());
        assert!(ImageRef::parse("a@sha256:123").is_err());
        assert!(ImageRef::parse(&format!("sha256:{}", "a".repeat(64))).is_err());
    }
}
