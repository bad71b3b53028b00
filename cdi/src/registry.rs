//! The spec directories read into a lookup of `vendor/class=name`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::CdiError;
use crate::apply::Edits;
use crate::name::QualifiedName;
use crate::spec::Spec;

/// Larger spec files are skipped (a real one is a few KiB).
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// One device's definition: its spec file and its index there.
#[derive(Debug, Clone)]
struct Entry {
    spec: Arc<Spec>,
    file: PathBuf,
    index: usize,
    priority: usize,
    /// Another file of the same priority that defines it too: it cannot be used.
    conflict: Option<PathBuf>,
}

/// Every device of the spec directories.
#[derive(Debug, Default)]
pub struct Registry {
    dirs: Vec<PathBuf>,
    /// vendor → class → device.
    devices: BTreeMap<String, BTreeMap<String, BTreeMap<String, Entry>>>,
    /// Spec files that could not be used, and why.
    pub errors: Vec<(PathBuf, String)>,
}

impl Registry {
    /// Reads `*.json`, `*.yaml` and `*.yml` in each directory (missing ones are empty). A later
    /// directory has priority over an earlier one for the same device; two files of one
    /// directory that define the same device make it unusable.
    pub fn load(dirs: &[PathBuf]) -> Registry {
        let mut reg = Registry {
            dirs: dirs.to_vec(),
            ..Registry::default()
        };
        for (priority, dir) in dirs.iter().enumerate() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let json = match file.extension().and_then(|e| e.to_str()) {
                    Some("json") => true,
                    Some("yaml" | "yml") => false,
                    _ => continue,
                };
                match read_spec(&file, json) {
                    Ok(spec) => reg.add(Arc::new(spec), &file, priority),
                    Err(why) => {
                        tracing::warn!(file = %file.display(), %why, "CDI spec file skipped");
                        reg.errors.push((file, why));
                    }
                }
            }
        }
        reg
    }

    fn add(&mut self, spec: Arc<Spec>, file: &Path, priority: usize) {
        let Some((vendor, class)) = crate::name::parse_kind(&spec.kind) else {
            return;
        };
        let (vendor, class) = (vendor.to_owned(), class.to_owned());
        for (index, device) in spec.devices.iter().enumerate() {
            let entry = Entry {
                spec: Arc::clone(&spec),
                file: file.to_path_buf(),
                index,
                priority,
                conflict: None,
            };
            let slot = self
                .devices
                .entry(vendor.clone())
                .or_default()
                .entry(class.clone())
                .or_default();
            match slot.get_mut(&device.name) {
                Some(old) if old.priority == priority => old.conflict = Some(file.to_path_buf()),
                _ => {
                    slot.insert(device.name.clone(), entry);
                }
            }
        }
    }

    /// The edits for `names` (each `vendor/class=name`; repeats count once), in order: each
    /// spec's own edits before the first of its devices.
    pub fn resolve<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<Edits, CdiError> {
        let mut edits = Edits::default();
        let mut seen = BTreeSet::new();
        let mut specs_seen = BTreeSet::new();
        for text in names {
            let name = QualifiedName::parse(text)?;
            if !seen.insert(name.to_string()) {
                continue;
            }
            let entry = self.lookup(&name)?;
            if let Some(other) = &entry.conflict {
                return Err(CdiError::Conflict {
                    name: name.to_string(),
                    first: entry.file.display().to_string(),
                    second: other.display().to_string(),
                });
            }
            if specs_seen.insert(entry.file.clone()) && !entry.spec.container_edits.is_empty() {
                edits.push(
                    format!("{} (spec {})", name.kind(), entry.file.display()),
                    entry.spec.container_edits.clone(),
                );
            }
            edits.push(
                name.to_string(),
                entry.spec.devices[entry.index].container_edits.clone(),
            );
        }
        Ok(edits)
    }

    fn lookup(&self, name: &QualifiedName) -> Result<&Entry, CdiError> {
        let list = |keys: Vec<&String>| {
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.into_iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        let classes = self
            .devices
            .get(&name.vendor)
            .ok_or_else(|| CdiError::UnknownVendor {
                name: name.to_string(),
                vendor: name.vendor.clone(),
                dirs: self
                    .dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let devices = classes
            .get(&name.class)
            .ok_or_else(|| CdiError::UnknownClass {
                name: name.to_string(),
                vendor: name.vendor.clone(),
                class: name.class.clone(),
                known: list(classes.keys().collect()),
            })?;
        devices
            .get(&name.device)
            .ok_or_else(|| CdiError::UnknownDevice {
                name: name.to_string(),
                kind: name.kind(),
                device: name.device.clone(),
                known: list(devices.keys().collect()),
            })
    }
}

fn read_spec(file: &Path, json: bool) -> Result<Spec, String> {
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_SPEC_BYTES {
        return Err(format!("larger than {MAX_SPEC_BYTES} bytes"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Spec::parse(&bytes, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn devices_resolve_by_priority_and_unknown_parts_are_named() {
        let d = tempfile::tempdir().unwrap();
        let (etc, run) = (d.path().join("etc"), d.path().join("run"));
        write(
            &etc,
            "a.yaml",
            "cdiVersion: 0.6.0\nkind: vendor.com/gpu\ncontainerEdits:\n  env: [SPEC=1]\ndevices:\n- name: g0\n  containerEdits:\n    env: [GPU=etc]\n- name: g1\n  containerEdits:\n    env: [GPU=1]\n",
        );
        write(
            &run,
            "b.json",
            r#"{"cdiVersion":"0.5.0","kind":"vendor.com/gpu","devices":[{"name":"g0","containerEdits":{"env":["GPU=run"]}}]}"#,
        );
        write(&run, "broken.json", "{");
        write(&run, "ignored.txt", "nothing");
        let reg = Registry::load(&[etc.clone(), run.clone()]);
        assert_eq!(reg.errors.len(), 1, "{:?}", reg.errors);
        let e = reg
            .resolve(["vendor.com/gpu=g0", "vendor.com/gpu=g0"])
            .unwrap();
        assert_eq!(e.env(), vec!["GPU=run".to_owned()]);
        let e = reg.resolve(["vendor.com/gpu=g1"]).unwrap();
        assert_eq!(e.env(), vec!["SPEC=1".to_owned(), "GPU=1".to_owned()]);
        let err = |n: &str| reg.resolve([n]).unwrap_err().to_string();
        assert!(
            err("other.com/gpu=g0").contains("no spec file in"),
            "{}",
            err("other.com/gpu=g0")
        );
        assert!(err("vendor.com/npu=g0").contains("its classes: gpu"));
        assert!(err("vendor.com/gpu=g9").contains("its devices: g0, g1"));
        assert!(err("vendor.com/gpu").contains("not a qualified"));
        write(
            &run,
            "c.json",
            r#"{"cdiVersion":"0.5.0","kind":"vendor.com/gpu","devices":[{"name":"g0"}]}"#,
        );
        let reg = Registry::load(&[etc, run]);
        assert!(
            reg.resolve(["vendor.com/gpu=g0"])
                .unwrap_err()
                .to_string()
                .contains("defined twice")
        );
    }

    #[test]
    fn unknown_versions_and_bad_kinds_are_refused() {
        assert!(Spec::parse(br#"{"cdiVersion":"9.9.9","kind":"a.com/b"}"#, true).is_err());
        assert!(Spec::parse(br#"{"cdiVersion":"0.6.0","kind":"nokind"}"#, true).is_err());
        assert!(
            Spec::parse(
                br#"{"cdiVersion":"0.6.0","kind":"a.com/b","devices":[{"name":"-x"}]}"#,
                true
            )
            .is_err()
        );
    }
}
