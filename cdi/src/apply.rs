//! Container edits applied to an OCI runtime spec.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec};

use crate::CdiError;
use crate::spec::{ContainerEdits, DeviceNode};

/// The edits of the resolved devices, in order, each with the device (or spec) it came from.
#[derive(Debug, Default, Clone)]
pub struct Edits {
    list: Vec<(String, ContainerEdits)>,
}

impl Edits {
    pub(crate) fn push(&mut self, from: String, edits: ContainerEdits) {
        self.list.push((from, edits));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every `NAME=value` the edits set, in order.
    pub fn env(&self) -> Vec<String> {
        self.list.iter().flat_map(|(_, e)| e.env.clone()).collect()
    }

    /// Applies every edit to `spec`: environment (replacing a variable of the same name),
    /// device nodes (type, numbers and mode taken from the host node where the spec leaves
    /// them out) with a device cgroup rule each, mounts (replacing one at the same path; then
    /// ordered so a parent is mounted before its children), and supplementary groups. Hooks,
    /// Intel RDT and network devices are refused: this runtime does not run them.
    pub fn apply(&self, spec: &mut Spec) -> Result<(), CdiError> {
        for (from, edits) in &self.list {
            let invalid = |why: String| CdiError::Invalid {
                name: from.clone(),
                why,
            };
            if let Some(h) = edits.hooks.first() {
                return Err(invalid(format!(
                    "hook {} ({}) cannot be run: this runtime does not run OCI hooks",
                    h.hook_name, h.path
                )));
            }
            if edits.intel_rdt.is_some() {
                return Err(invalid("intelRdt is not supported".into()));
            }
            if !edits.net_devices.is_empty() {
                return Err(invalid("netDevices are not supported".into()));
            }
            apply_env(spec, &edits.env).map_err(invalid)?;
            for node in &edits.device_nodes {
                apply_device(spec, node).map_err(invalid)?;
            }
            for m in &edits.mounts {
                apply_mount(spec, m).map_err(invalid)?;
            }
            if !edits.additional_gids.is_empty() {
                let mut process = spec.process().clone().unwrap_or_default();
                let mut user = process.user().clone();
                let mut gids = user.additional_gids().clone().unwrap_or_default();
                for g in &edits.additional_gids {
                    if *g != 0 && !gids.contains(g) {
                        gids.push(*g);
                    }
                }
                user.set_additional_gids(Some(gids));
                process.set_user(user);
                spec.set_process(Some(process));
            }
        }
        sort_mounts(spec);
        Ok(())
    }
}

fn apply_env(spec: &mut Spec, env: &[String]) -> Result<(), String> {
    if env.is_empty() {
        return Ok(());
    }
    let mut process = spec.process().clone().unwrap_or_default();
    let mut all = process.env().clone().unwrap_or_default();
    for kv in env {
        let Some((key, _)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!("env entry {kv:?} is not NAME=value"));
        };
        if kv.contains('\0') {
            return Err(format!("env entry {kv:?} holds a NUL byte"));
        }
        let prefix = format!("{key}=");
        all.retain(|e| !e.starts_with(&prefix));
        all.push(kv.clone());
    }
    process.set_env(Some(all));
    spec.set_process(Some(process));
    Ok(())
}

fn absolute(what: &str, path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() || path.contains('\0') || p.components().any(|c| c.as_os_str() == "..") {
        return Err(format!(
            "{what} {path:?} is not an absolute path without .."
        ));
    }
    Ok(p.to_path_buf())
}

fn apply_device(spec: &mut Spec, node: &DeviceNode) -> Result<(), String> {
    let path = absolute("deviceNodes path", &node.path)?;
    let host = absolute(
        "deviceNodes hostPath",
        node.host_path.as_deref().unwrap_or(&node.path),
    )?;
    let host_meta = std::fs::metadata(&host);
    let typ = match node.typ.as_deref() {
        Some("c") => LinuxDeviceType::C,
        Some("b") => LinuxDeviceType::B,
        Some("u") => LinuxDeviceType::U,
        Some("p") => LinuxDeviceType::P,
        Some(other) => {
            return Err(format!(
                "device {path:?}: type {other:?} is not c, b, u or p"
            ));
        }
        None => {
            let meta = host_meta
                .as_ref()
                .map_err(|e| format!("device {path:?}: host node {}: {e}", host.display()))?;
            let ft = meta.file_type();
            if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else if ft.is_fifo() {
                LinuxDeviceType::P
            } else {
                return Err(format!(
                    "device {path:?}: host {} is not a device",
                    host.display()
                ));
            }
        }
    };
    let rdev = host_meta.as_ref().map(|m| m.rdev()).ok();
    let number = |given: Option<i64>, from: fn(u64) -> u64| -> Result<i64, String> {
        match (given, rdev) {
            (Some(n), _) => Ok(n),
            (None, Some(r)) => Ok(from(r) as i64),
            (None, None) => Err(format!(
                "device {path:?}: no major/minor and no host node {} to read them from",
                host.display()
            )),
        }
    };
    let (major, minor) = if typ == LinuxDeviceType::P {
        (0, 0)
    } else {
        (
            number(node.major, nix::sys::stat::major)?,
            number(node.minor, nix::sys::stat::minor)?,
        )
    };
    let perms = node.permissions.as_deref().unwrap_or("rwm");
    if perms.is_empty() || !perms.chars().all(|c| "rwm".contains(c)) {
        return Err(format!(
            "device {path:?}: permissions {perms:?} are not a combination of r, w and m"
        ));
    }
    let mut dev = LinuxDevice::default();
    dev.set_path(path.clone());
    dev.set_typ(typ);
    dev.set_major(major);
    dev.set_minor(minor);
    dev.set_file_mode(
        node.file_mode
            .or_else(|| host_meta.as_ref().ok().map(|m| m.mode() & 0o777)),
    );
    dev.set_uid(node.uid);
    dev.set_gid(node.gid);
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut devices = linux.devices().clone().unwrap_or_default();
    devices.retain(|d| d.path() != &path);
    devices.push(dev);
    linux.set_devices(Some(devices));
    if matches!(typ, LinuxDeviceType::C | LinuxDeviceType::B) {
        let mut resources = linux.resources().clone().unwrap_or_default();
        let mut rules = resources.devices().clone().unwrap_or_default();
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(typ));
        rule.set_major(Some(major));
        rule.set_minor(Some(minor));
        rule.set_access(Some(perms.to_owned()));
        rules.push(rule);
        resources.set_devices(Some(rules));
        linux.set_resources(Some(resources));
    }
    spec.set_linux(Some(linux));
    Ok(())
}

fn apply_mount(spec: &mut Spec, m: &crate::spec::Mount) -> Result<(), String> {
    let dest = absolute("mounts containerPath", &m.container_path)?;
    let typ = m.typ.clone().unwrap_or_else(|| "bind".to_owned());
    let mut options = m.options.clone();
    let source = if typ == "bind" {
        if !options.iter().any(|o| o == "bind" || o == "rbind") {
            options.push("rbind".into());
        }
        absolute("mounts hostPath", &m.host_path)?
    } else {
        PathBuf::from(&m.host_path)
    };
    let mut mount = Mount::default();
    mount.set_destination(dest.clone());
    mount.set_typ(Some(typ));
    mount.set_source(Some(source));
    mount.set_options(Some(options));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|x| x.destination() != &dest);
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Orders mounts by the depth of their destination (stable), so `/a` comes before `/a/b`.
fn sort_mounts(spec: &mut Spec) {
    if let Some(mut mounts) = spec.mounts().clone() {
        mounts.sort_by_key(|m| m.destination().components().count());
        spec.set_mounts(Some(mounts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Hook;

    fn edits(e: ContainerEdits) -> Edits {
        let mut out = Edits::default();
        out.push("vendor.com/x=a".into(), e);
        out
    }

    #[test]
    fn nodes_mounts_env_and_groups_land_in_the_spec() {
        let mut spec = Spec::default();
        let e = edits(ContainerEdits {
            env: vec!["PATH=/x".into(), "FAKE=1".into()],
            device_nodes: vec![DeviceNode {
                path: "/dev/fake0".into(),
                host_path: Some("/dev/null".into()),
                permissions: Some("rw".into()),
                ..Default::default()
            }],
            mounts: vec![crate::spec::Mount {
                host_path: "/etc".into(),
                container_path: "/opt/etc".into(),
                options: vec!["ro".into()],
                typ: None,
            }],
            additional_gids: vec![44, 0],
            ..Default::default()
        });
        e.apply(&mut spec).unwrap();
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert!(env.contains(&"FAKE=1".to_owned()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        let linux = spec.linux().as_ref().unwrap();
        let dev = &linux.devices().as_ref().unwrap()[0];
        assert_eq!(dev.path(), Path::new("/dev/fake0"));
        assert_eq!(
            (dev.typ(), dev.major(), dev.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        let rule = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap()[0]
            .clone();
        assert_eq!(rule.access().as_deref(), Some("rw"));
        let mounts = spec.mounts().clone().unwrap();
        let m = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/opt/etc"))
            .unwrap();
        assert_eq!(
            m.options().clone().unwrap(),
            vec!["ro".to_owned(), "rbind".to_owned()]
        );
        let gids = spec
            .process()
            .as_ref()
            .unwrap()
            .user()
            .additional_gids()
            .clone();
        assert_eq!(gids, Some(vec![44]));
    }

    #[test]
    fn what_the_runtime_cannot_do_is_refused_by_name() {
        let mut spec = Spec::default();
        let hook = edits(ContainerEdits {
            hooks: vec![Hook {
                hook_name: "createContainer".into(),
                path: "/usr/bin/hook".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let e = hook.apply(&mut spec).unwrap_err().to_string();
        assert!(
            e.contains("vendor.com/x=a") && e.contains("/usr/bin/hook"),
            "{e}"
        );
        let relative = edits(ContainerEdits {
            device_nodes: vec![DeviceNode {
                path: "dev/x".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(relative.apply(&mut spec).is_err());
        let missing = edits(ContainerEdits {
            device_nodes: vec![DeviceNode {
                path: "/dev/does-not-exist-here".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let e = missing.apply(&mut spec).unwrap_err().to_string();
        assert!(e.contains("/dev/does-not-exist-here"), "{e}");
    }
}
