//! The metadata files of a checkpoint archive: names, `config.dump` (checkpointctl's
//! `ContainerConfig`, a reduced copy of Podman's), and bounded reading of the JSON files an
//! untrusted archive carries.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CheckpointError, Result};

/// CRIU's images.
pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const CONFIG_DUMP: &str = "config.dump";
pub const SPEC_DUMP: &str = "spec.dump";
pub const ROOTFS_DIFF: &str = "rootfs-diff.tar";
pub const DELETED_FILES: &str = "deleted.files";
pub const DUMP_LOG: &str = "dump.log";
/// The container's log, under the name CRI-O gives it (its log path annotation's key).
pub const CONTAINER_LOG: &str = "io.kubernetes.cri-o.LogPath";

/// The most a JSON metadata file (`config.dump`, `spec.dump`, `deleted.files`) may hold: a
/// spec with a large environment fits many times over.
pub const MAX_JSON: u64 = 4 << 20;

/// `config.dump`: checkpointctl's `ContainerConfig`. Times are RFC 3339 strings (Go's
/// `time.Time`), kept as text: nothing here computes with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDump {
    pub id: String,
    pub name: String,
    /// The image as the client named it.
    #[serde(
        rename = "rootfsImage",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub rootfs_image: String,
    /// The image's ID (CRI-O: its storage ID; containerd: the CRI image ref). What a restore
    /// looks the image up by first.
    #[serde(
        rename = "rootfsImageRef",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub rootfs_image_ref: String,
    /// A human-readable name of the image with its digest (`repo@sha256:...`).
    #[serde(
        rename = "rootfsImageName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub rootfs_image_name: String,
    /// The runtime handler (CRI-O: its default runtime when the pod names none).
    #[serde(rename = "runtime", default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    #[serde(rename = "createdTime", default)]
    pub created_time: String,
    #[serde(rename = "checkpointedTime", default)]
    pub checkpointed_time: String,
    #[serde(rename = "restoredTime", default)]
    pub restored_time: String,
    #[serde(default)]
    pub restored: bool,
}

/// Reads and parses the JSON file `name` of an unpacked archive (at `dir`), at most
/// [`MAX_JSON`] bytes; `archive` names the archive in errors.
pub fn read_json<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
    archive: &Path,
) -> Result<T> {
    let invalid = |why: String| CheckpointError::Invalid {
        archive: archive.to_path_buf(),
        why,
    };
    let path = dir.join(name);
    let file = match std::fs::File::open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid(format!(
                "{name} is missing (not a checkpoint archive?)"
            )));
        }
        other => other.map_err(|e| CheckpointError::io(&path, e))?,
    };
    let mut body = Vec::new();
    file.take(MAX_JSON + 1)
        .read_to_end(&mut body)
        .map_err(|e| CheckpointError::io(&path, e))?;
    if body.len() as u64 > MAX_JSON {
        return Err(invalid(format!("{name} is larger than {MAX_JSON} bytes")));
    }
    serde_json::from_slice(&body).map_err(|e| invalid(format!("{name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dump_reads_what_cri_o_writes() {
        let text = r#"{"id":"abc","name":"k8s_counter","rootfsImage":"quay.io/x/counter:latest",
            "rootfsImageRef":"0b1f","rootfsImageName":"quay.io/x/counter@sha256:00",
            "runtime":"runc","createdTime":"2023-02-13T16:19:22.123Z",
            "checkpointedTime":"2023-02-13T16:20:09Z","restoredTime":"0001-01-01T00:00:00Z",
            "restored":false}"#;
        let c: ConfigDump = serde_json::from_str(text).unwrap();
        assert_eq!(c.rootfs_image_ref, "0b1f");
        assert_eq!(c.runtime, "runc");
        let back: ConfigDump = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn oversize_and_missing_dump_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let a = Path::new("/x/a.tar");
        let err = read_json::<ConfigDump>(d.path(), CONFIG_DUMP, a).unwrap_err();
        assert!(err.to_string().contains("config.dump is missing"), "{err}");
        std::fs::write(d.path().join(SPEC_DUMP), vec![b' '; MAX_JSON as usize + 1]).unwrap();
        let err = read_json::<serde_json::Value>(d.path(), SPEC_DUMP, a).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        std::fs::write(d.path().join(CONFIG_DUMP), b"{not json").unwrap();
        let err = read_json::<ConfigDump>(d.path(), CONFIG_DUMP, a).unwrap_err();
        assert!(matches!(err, CheckpointError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("/x/a.tar"), "{err}");
    }
}
