//! Container edits applied to an OCI runtime spec.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec};

use crate::CdiError;
use crate::spec::{ContainerEdits, DeviceNode, Hook};

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
    /// ordered so a parent is mounted before its children), supplementary groups, and hooks
    /// (appended to the spec's list named by `hookName`, in order). Intel RDT and network
    /// devices are refused: this runtime does not handle them.
    pub fn apply(&self, spec: &mut Spec) -> Result<(), CdiError> {
        for (from, edits) in &self.list {
            let invalid = |why: String| CdiError::Invalid {
                name: from.clone(),
                why,
            };
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
            for h in &edits.hooks {
                apply_hook(spec, h).map_err(invalid)?;
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

/// Appends `hook` to the spec's hook list its `hookName` names.
fn apply_hook(spec: &mut Spec, hook: &Hook) -> Result<(), String> {
    let what = |field: &str| format!("hook {} ({}) {field}", hook.hook_name, hook.path);
    let path = absolute(&what("path"), &hook.path)?;
    for e in &hook.env {
        if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) || e.contains('\0') {
            return Err(format!("{}: {e:?} is not NAME=value", what("env")));
        }
    }
    if hook.args.iter().any(|a| a.contains('\0')) {
        return Err(format!("{}: a NUL byte", what("args")));
    }
    if let Some(t) = hook.timeout.filter(|t| *t <= 0) {
        return Err(format!("{}: {t} is not greater than zero", what("timeout")));
    }
    let mut oci = oci_spec::runtime::Hook::default();
    oci.set_path(path);
    oci.set_args((!hook.args.is_empty()).then(|| hook.args.clone()));
    oci.set_env((!hook.env.is_empty()).then(|| hook.env.clone()));
    oci.set_timeout(hook.timeout);
    let mut hooks = spec.hooks().clone().unwrap_or_default();
    let list = match hook.hook_name.as_str() {
        "prestart" => hooks.prestart().clone(),
        "createRuntime" => hooks.create_runtime().clone(),
        "createContainer" => hooks.create_container().clone(),
        "startContainer" => hooks.start_container().clone(),
        "poststart" => hooks.poststart().clone(),
        "poststop" => hooks.poststop().clone(),
        other => {
            return Err(format!(
                "hookName {other:?} is not one of prestart, createRuntime, createContainer, startContainer, poststart, poststop"
            ));
        }
    };
    let mut list = list.unwrap_or_default();
    list.push(oci);
    let list = Some(list);
    match hook.hook_name.as_str() {
        "prestart" => hooks.set_prestart(list),
        "createRuntime" => hooks.set_create_runtime(list),
        "createContainer" => hooks.set_create_container(list),
        "startContainer" => hooks.set_start_container(list),
        "poststart" => hooks.set_poststart(list),
        _ => hooks.set_poststop(list),
    };
    spec.set_hooks(Some(hooks));
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
    fn hooks_go_to_the_list_their_name_names_in_order() {
        let mut spec = Spec::default();
        let hook = |name: &str, path: &str| Hook {
            hook_name: name.into(),
            path: path.into(),
            ..Default::default()
        };
        let e = edits(ContainerEdits {
            hooks: vec![
                hook("createContainer", "/usr/bin/a"),
                Hook {
                    args: vec!["b".into(), "--x".into()],
                    env: vec!["K=v".into()],
                    timeout: Some(5),
                    ..hook("createContainer", "/usr/bin/b")
                },
                hook("poststop", "/usr/bin/c"),
                hook("prestart", "/usr/bin/d"),
            ],
            ..Default::default()
        });
        e.apply(&mut spec).unwrap();
        let hooks = spec.hooks().clone().unwrap();
        let cc = hooks.create_container().clone().unwrap();
        let paths: Vec<_> = cc.iter().map(|h| h.path().clone()).collect();
        assert_eq!(paths, [PathBuf::from("/usr/bin/a"), "/usr/bin/b".into()]);
        assert_eq!(cc[1].args().clone().unwrap(), ["b", "--x"]);
        assert_eq!(cc[1].env().clone().unwrap(), ["K=v"]);
        assert_eq!(cc[1].timeout(), Some(5));
        assert_eq!(cc[0].args(), &None);
        assert_eq!(hooks.poststop().clone().unwrap().len(), 1);
        assert_eq!(hooks.prestart().clone().unwrap().len(), 1);
        assert!(hooks.create_runtime().is_none());
        for (bad, want) in [
            (hook("onCreate", "/usr/bin/a"), "hookName \"onCreate\""),
            (hook("poststop", "usr/bin/a"), "not an absolute path"),
            (
                Hook {
                    timeout: Some(0),
                    ..hook("poststop", "/usr/bin/a")
                },
                "0 is not greater than zero",
            ),
            (
                Hook {
                    env: vec!["novalue".into()],
                    ..hook("poststop", "/usr/bin/a")
                },
                "is not NAME=value",
            ),
        ] {
            let e = edits(ContainerEdits {
                hooks: vec![bad],
                ..Default::default()
            })
            .apply(&mut Spec::default())
            .unwrap_err()
            .to_string();
            assert!(e.contains("vendor.com/x=a") && e.contains(want), "{e}");
        }
    }

    #[test]
    fn what_the_runtime_cannot_do_is_refused_by_name() {
        let mut spec = Spec::default();
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
