//! What a restoring CreateContainer creates: the container config made from the request and
//! an unpacked checkpoint archive, as CRI-O's `CRImportCheckpoint` does.
//!
//! From the archive: the process (command as `spec.dump`'s `process.args`, its environment
//! and working directory) and the image (`config.dump`'s `rootfsImageRef`, else its
//! `rootfsImageName`, else `rootfsImage`; it must be present locally). From the request:
//! everything else (metadata, mounts, labels, annotations, log path, devices, resources,
//! security context). Like CRI-O, every bind mount the checkpointed container had must be
//! named again by the request (the same container path): a crafted archive cannot bring a
//! host path of its own choosing, and CRIU needs the mount to restore. The pod's own files,
//! `/dev`, `/proc`, `/sys` and the like are made afresh and need no such mount.

use std::path::{Path, PathBuf};

use corral_cri_api::v1::{ContainerConfig, KeyValue};
use oci_spec::runtime::Spec;

use super::dump::{self, ConfigDump};
use super::{CheckpointError, Result};

/// The annotation a restored container carries (ContainerStatus shows it): the archive it
/// came from.
pub const RESTORED_FROM: &str = "io.corral.checkpoint.restored-from";

/// Mount destinations a container gets whatever its config says (CRI-O's list, plus
/// `/etc/hosts`, which Corral makes for every container of a pod).
const MADE_AFRESH: &[&str] = &[
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
    "/dev/shm",
    "/etc/resolv.conf",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/passwd",
    "/etc/group",
    "/run/secrets",
    "/run/.containerenv",
];

/// An unpacked archive's metadata.
#[derive(Debug)]
pub struct Dumps {
    pub config: ConfigDump,
    pub spec: Spec,
    /// `deleted.files` (empty when the archive has none).
    pub deleted: Vec<String>,
}

/// Reads the metadata of the archive `archive` unpacked at `dir`, and checks it has CRIU
/// images.
pub fn read(dir: &Path, archive: &Path) -> Result<Dumps> {
    let config: ConfigDump = dump::read_json(dir, dump::CONFIG_DUMP, archive)?;
    let spec: Spec = dump::read_json(dir, dump::SPEC_DUMP, archive)?;
    let deleted = if dir.join(dump::DELETED_FILES).exists() {
        dump::read_json(dir, dump::DELETED_FILES, archive)?
    } else {
        Vec::new()
    };
    if !dir.join(dump::CHECKPOINT_DIR).is_dir() {
        return Err(CheckpointError::Invalid {
            archive: archive.to_path_buf(),
            why: "it has no checkpoint/ directory (CRIU images)".into(),
        });
    }
    Ok(Dumps {
        config,
        spec,
        deleted,
    })
}

/// The image names to try, best first.
pub fn image_candidates(config: &ConfigDump) -> Vec<&str> {
    [
        &config.rootfs_image_ref,
        &config.rootfs_image_name,
        &config.rootfs_image,
    ]
    .into_iter()
    .map(String::as_str)
    .filter(|s| !s.is_empty())
    .collect()
}

/// The config to create: `request` with the archive's process, `image` (the candidate that
/// resolved) and [`RESTORED_FROM`]. An error is the reason the request cannot restore this
/// archive (INVALID_ARGUMENT).
pub fn container_config(
    request: &ContainerConfig,
    dumps: &Dumps,
    image: &str,
    archive: &Path,
) -> Result<ContainerConfig> {
    let invalid = |why: String| CheckpointError::Invalid {
        archive: archive.to_path_buf(),
        why,
    };
    let mut missing: Vec<String> = Vec::new();
    for m in dumps.spec.mounts().iter().flatten() {
        let dest = m.destination().to_string_lossy();
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if !bind || MADE_AFRESH.contains(&dest.as_ref()) {
            continue;
        }
        if !request.mounts.iter().any(|r| r.container_path == dest) {
            missing.push(dest.into_owned());
        }
    }
    if !missing.is_empty() {
        return Err(invalid(format!(
            "the checkpointed container had bind mounts the request does not name: {}",
            missing.join(", ")
        )));
    }
    let process = dumps
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid(format!("{} has no process", dump::SPEC_DUMP)))?;
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(invalid(format!("{} has no process.args", dump::SPEC_DUMP)));
    }
    let mut config = request.clone();
    let mut spec_image = config.image.take().unwrap_or_default();
    spec_image.user_specified_image = spec_image.image.clone();
    spec_image.image = image.to_owned();
    config.image = Some(spec_image);
    config.command = args;
    config.args = Vec::new();
    config.envs = process
        .env()
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| KeyValue {
            key: k.to_owned(),
            value: v.to_owned(),
        })
        .collect();
    config.working_dir = process.cwd().to_string_lossy().into_owned();
    config
        .annotations
        .insert(RESTORED_FROM.to_owned(), archive.display().to_string());
    Ok(config)
}

/// Whether CreateContainer's image names a checkpoint archive: an absolute path (no image
/// reference starts with `/`; CRI-O restores from any path that exists).
pub fn archive_path(image: &str) -> Option<PathBuf> {
    image.starts_with('/').then(|| PathBuf::from(image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_cri_api::v1::{ImageSpec, Mount};

    fn dumps(spec: serde_json::Value) -> Dumps {
        Dumps {
            config: ConfigDump {
                rootfs_image_ref: "sha256:abcd".into(),
                rootfs_image: "busybox".into(),
                ..ConfigDump::default()
            },
            spec: serde_json::from_value(spec).unwrap(),
            deleted: vec![],
        }
    }

    #[test]
    fn the_process_comes_from_the_archive_and_the_rest_from_the_request() {
        let d = dumps(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "count"], "env": ["A=1", "PATH=/bin", "junk"], "cwd": "/work"},
            "mounts": [
                {"destination": "/etc/hosts", "type": "bind", "source": "/x", "options": ["rbind"]},
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/host/data", "options": ["rbind"]}
            ]
        }));
        let mut req = ContainerConfig {
            image: Some(ImageSpec {
                image: "/ckpt/a.tar".into(),
                ..Default::default()
            }),
            command: vec!["ignored".into()],
            args: vec!["ignored".into()],
            log_path: "c/0.log".into(),
            ..Default::default()
        };
        req.labels.insert("l".into(), "v".into());
        let a = Path::new("/ckpt/a.tar");
        let err = container_config(&req, &d, "sha256:abcd", a)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/data") && !err.contains("/etc/hosts"),
            "{err}"
        );
        req.mounts.push(Mount {
            container_path: "/data".into(),
            host_path: "/elsewhere".into(),
            ..Default::default()
        });
        let c = container_config(&req, &d, "sha256:abcd", a).unwrap();
        assert_eq!(c.command, ["sh", "-c", "count"]);
        assert!(c.args.is_empty());
        assert_eq!(c.envs.len(), 2);
        assert_eq!(c.working_dir, "/work");
        assert_eq!(c.log_path, "c/0.log");
        assert_eq!(c.labels["l"], "v");
        assert_eq!(c.mounts[0].host_path, "/elsewhere");
        let image = c.image.unwrap();
        assert_eq!(image.image, "sha256:abcd");
        assert_eq!(image.user_specified_image, "/ckpt/a.tar");
        assert_eq!(c.annotations[RESTORED_FROM], "/ckpt/a.tar");
    }

    #[test]
    fn image_candidates_go_from_the_id_to_the_name() {
        let d = dumps(serde_json::json!({"ociVersion": "1.0.2"}));
        assert_eq!(image_candidates(&d.config), ["sha256:abcd", "busybox"]);
        assert_eq!(archive_path("busybox:1"), None);
        assert_eq!(archive_path("/a.tar"), Some(PathBuf::from("/a.tar")));
    }
}
