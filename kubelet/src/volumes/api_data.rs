//! The configMap, secret, downwardAPI and projected plugins: what files a volume holds
//! (its keys or items, their modes and owners, the downward API's values), handed to the
//! shared payload writer (`writer.rs`) on a tmpfs of the volume's own. ConfigMap and Secret
//! references share one path (`keyed_source_files`), differing only in lookup and errors.

use super::*;

/// A configMap, secret, downwardAPI or projected volume: its files written by the atomic
/// writer, on a tmpfs of its own.
pub(super) fn prepare_api_data(
    volume: &Volume,
    kind: Kind,
    path: &Path,
    sources: &Sources,
    ownership: Option<Ownership>,
) -> Result<(), VolumeError> {
    let name = volume.name.as_str();
    ensure_dir(path, 0o755).map_err(io_err(name, path))?;
    if kind.in_memory() {
        ensure_tmpfs(name, path, None, None)?;
    }
    let files = payload(volume, path, sources)?;
    write_payload(name, path, &files, ownership)?;
    Ok(())
}

/// The kubelet's checks on an item path (`validatePath` of the atomic writer).
pub(super) fn check_item_path(volume: &str, path: &str) -> Result<(), VolumeError> {
    let reason = if path.is_empty() {
        Some("must not be empty")
    } else if path.len() > MAX_PATH_LEN {
        Some("must be less than or equal to 4096 characters")
    } else if Path::new(path).is_absolute() {
        Some("must be relative path")
    } else if path.split('/').any(|c| c == "..") {
        Some("must not contain '..'")
    } else if path.starts_with("..") {
        Some("must not start with '..'")
    } else if path.split('/').any(|c| c.len() > 255) {
        Some("each path component must be at most 255 characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(VolumeError::InvalidPath {
            volume: volume.into(),
            path: path.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A file mode from a manifest: permission bits only (the API server refuses anything above
/// 0777; setuid, setgid and sticky bits are dropped should one get here).
pub(super) fn mode_bits(mode: Option<i32>, default: u32) -> u32 {
    mode.map_or(default, |m| m as u32 & 0o777)
}

pub(super) fn uid_of(user: Option<i64>) -> Option<u32> {
    user.and_then(|u| u32::try_from(u).ok())
}

/// The files of an API data volume (`path` is its directory, for errors).
pub(super) fn payload(
    volume: &Volume,
    path: &Path,
    sources: &Sources,
) -> Result<Payload, VolumeError> {
    let name = volume.name.as_str();
    let mut files = Payload::new();
    if let Some(cm) = &volume.config_map {
        let defaults = (
            mode_bits(cm.default_mode, DEFAULT_FILE_MODE),
            uid_of(cm.default_user),
        );
        let target = KeyedSource {
            kind: KeyedKind::ConfigMap,
            object: &cm.name,
            items: cm.items.as_deref(),
            optional: cm.optional == Some(true),
        };
        keyed_source_files(name, path, &target, defaults, sources, &mut files)?;
    } else if let Some(s) = &volume.secret {
        let defaults = (
            mode_bits(s.default_mode, DEFAULT_FILE_MODE),
            uid_of(s.default_user),
        );
        let target = KeyedSource {
            kind: KeyedKind::Secret,
            object: s.secret_name.as_deref().unwrap_or(""),
            items: s.items.as_deref(),
            optional: s.optional == Some(true),
        };
        keyed_source_files(name, path, &target, defaults, sources, &mut files)?;
    } else if let Some(d) = &volume.downward_api {
        let defaults = (
            mode_bits(d.default_mode, DEFAULT_FILE_MODE),
            uid_of(d.default_user),
        );
        downward_files(name, d.items.as_deref(), defaults, sources, &mut files)?;
    } else if let Some(p) = &volume.projected {
        let defaults = (
            mode_bits(p.default_mode, DEFAULT_FILE_MODE),
            uid_of(p.default_user),
        );
        for source in p.sources.iter().flatten() {
            let unsupported = |kind| VolumeError::UnsupportedProjection {
                volume: name.into(),
                path: path.to_path_buf(),
                kind,
            };
            if source.service_account_token.is_some() {
                return Err(unsupported("serviceAccountToken"));
            }
            if source.cluster_trust_bundle.is_some() {
                return Err(unsupported("clusterTrustBundle"));
            }
            if source.pod_certificate.is_some() {
                return Err(unsupported("podCertificate"));
            }
            if let Some(cm) = &source.config_map {
                let target = KeyedSource {
                    kind: KeyedKind::ConfigMap,
                    object: &cm.name,
                    items: cm.items.as_deref(),
                    optional: cm.optional == Some(true),
                };
                keyed_source_files(name, path, &target, defaults, sources, &mut files)?;
            }
            if let Some(s) = &source.secret {
                let target = KeyedSource {
                    kind: KeyedKind::Secret,
                    object: &s.name,
                    items: s.items.as_deref(),
                    optional: s.optional == Some(true),
                };
                keyed_source_files(name, path, &target, defaults, sources, &mut files)?;
            }
            if let Some(d) = &source.downward_api {
                downward_files(name, d.items.as_deref(), defaults, sources, &mut files)?;
            }
        }
    }
    Ok(files)
}

/// Which object a keyed volume or projection takes its files from.
#[derive(Clone, Copy)]
pub(super) enum KeyedKind {
    ConfigMap,
    Secret,
}

/// A ConfigMap or Secret reference of a volume or projection.
pub(super) struct KeyedSource<'a> {
    pub(super) kind: KeyedKind,
    pub(super) object: &'a str,
    pub(super) items: Option<&'a [KeyToPath]>,
    pub(super) optional: bool,
}

/// Default mode and owner of a volume's files.
pub(super) type Defaults = (u32, Option<u32>);

/// The files of a ConfigMap's or Secret's keys: a ConfigMap's `data` and `binaryData`, a
/// Secret's `data` and `stringData` (which the API server merges into `data`; objects applied
/// here may still have it).
pub(super) fn keyed_source_files(
    volume: &str,
    path: &Path,
    src: &KeyedSource,
    defaults: Defaults,
    sources: &Sources,
    files: &mut Payload,
) -> Result<(), VolumeError> {
    let data: Option<BTreeMap<String, Vec<u8>>> = match src.kind {
        KeyedKind::ConfigMap => sources
            .objects
            .config_map(sources.namespace, src.object)
            .map(|cm| {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.iter().flatten() {
                    data.insert(k.clone(), v.0.clone());
                }
                data
            }),
        KeyedKind::Secret => sources
            .objects
            .secret(sources.namespace, src.object)
            .map(|secret| {
                let mut data: BTreeMap<String, Vec<u8>> = secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect();
                for (k, v) in secret.string_data.iter().flatten() {
                    data.insert(k.clone(), v.clone().into_bytes());
                }
                data
            }),
    };
    let Some(data) = data else {
        if src.optional {
            return Ok(());
        }
        let (volume, path, name) = (volume.into(), path.to_path_buf(), src.object.into());
        return Err(match src.kind {
            KeyedKind::ConfigMap => VolumeError::ConfigMapNotFound { volume, path, name },
            KeyedKind::Secret => VolumeError::SecretNotFound { volume, path, name },
        });
    };
    keyed_files(volume, src, &data, defaults, files, |key| {
        let (volume, path) = (volume.into(), path.to_path_buf());
        match src.kind {
            KeyedKind::ConfigMap => VolumeError::ConfigMapKeyNotFound { volume, path, key },
            KeyedKind::Secret => VolumeError::SecretKeyNotFound { volume, path, key },
        }
    })
}

/// Every key as a file, or the listed `items` at their paths.
pub(super) fn keyed_files(
    volume: &str,
    src: &KeyedSource,
    data: &BTreeMap<String, Vec<u8>>,
    (mode, uid): Defaults,
    files: &mut Payload,
    missing: impl Fn(String) -> VolumeError,
) -> Result<(), VolumeError> {
    let Some(items) = src.items else {
        for (key, bytes) in data {
            check_item_path(volume, key)?;
            let file = FileData {
                bytes: bytes.clone(),
                mode,
                uid,
            };
            files.insert(key.clone(), file);
        }
        return Ok(());
    };
    for item in items {
        let Some(bytes) = data.get(&item.key) else {
            if src.optional {
                continue;
            }
            return Err(missing(item.key.clone()));
        };
        check_item_path(volume, &item.path)?;
        let file = FileData {
            bytes: bytes.clone(),
            mode: mode_bits(item.mode, mode),
            uid: uid_of(item.user).or(uid),
        };
        files.insert(item.path.clone(), file);
    }
    Ok(())
}

pub(super) fn downward_files(
    volume: &str,
    items: Option<&[DownwardAPIVolumeFile]>,
    (mode, uid): Defaults,
    sources: &Sources,
    files: &mut Payload,
) -> Result<(), VolumeError> {
    for item in items.into_iter().flatten() {
        check_item_path(volume, &item.path)?;
        let value = downward_value(item, sources).map_err(|source| VolumeError::DownwardApi {
            volume: volume.into(),
            path: item.path.clone(),
            source: Box::new(source),
        })?;
        let file = FileData {
            bytes: value.into_bytes(),
            mode: mode_bits(item.mode, mode),
            uid: uid_of(item.user).or(uid),
        };
        files.insert(item.path.clone(), file);
    }
    Ok(())
}

/// One downwardAPI file's contents: whole `metadata.labels` / `metadata.annotations` as
/// `key="value"` lines, anything else through the environment's downward API helpers.
pub(super) fn downward_value(
    item: &DownwardAPIVolumeFile,
    sources: &Sources,
) -> Result<String, EnvError> {
    let pod = sources.pod;
    if let Some(f) = &item.field_ref {
        return match f.field_path.as_str() {
            "metadata.labels" => Ok(format_map(pod.metadata.labels.as_ref())),
            "metadata.annotations" => Ok(format_map(pod.metadata.annotations.as_ref())),
            path => env::field_value(path, pod, sources.ctx),
        };
    }
    if let Some(r) = &item.resource_field_ref {
        let name = r.container_name.as_deref().unwrap_or("");
        let spec = pod.spec.as_ref();
        let container = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| EnvError::ContainerNotFound(name.into()))?;
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        return env::resource_value(&r.resource, divisor, container, sources.ctx);
    }
    Ok(String::new())
}

/// The kubelet's `fieldpath.FormatMap`: `key="value"` lines in key order, values quoted as Go's
/// `%q` does, no trailing newline.
pub(super) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
