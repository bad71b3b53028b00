//! Bounds on what a RunPodSandbox or CreateContainer request may carry, checked before anything
//! is stored or started, so an absurd request is refused with INVALID_ARGUMENT naming the field
//! and leaves nothing behind. The whole message is bounded by the server's 16 MiB limit; these
//! bound what would otherwise be stored in every record and copied into every status.

use corral_cri_api::v1::{ContainerConfig, Device, Mount, PodSandboxConfig};
use tonic::Status;

/// Labels, and annotations, of one pod or container: keys and values together (the API
/// server's limit for annotations).
pub const MAX_METADATA_BYTES: usize = 256 << 10;
/// A container's command, arguments and environment together, each string with its NUL: what
/// fits in `execve` with the default 8 MiB stack limit with room to spare.
pub const MAX_EXEC_BYTES: usize = 1 << 20;
/// Mounts, and devices, of one container.
pub const MAX_MOUNTS: usize = 1024;

fn refuse(what: &str, field: &str, why: String) -> Status {
    Status::invalid_argument(format!("{what}: {field}: {why}"))
}

fn map_bytes<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> usize {
    map.into_iter().map(|(k, v)| k.len() + v.len()).sum()
}

fn check_metadata_maps(
    what: &str,
    labels: &std::collections::HashMap<String, String>,
    annotations: &std::collections::HashMap<String, String>,
) -> Result<(), Status> {
    for (field, map) in [("labels", labels), ("annotations", annotations)] {
        let size = map_bytes(map);
        if size > MAX_METADATA_BYTES {
            return Err(refuse(
                what,
                field,
                format!("{size} bytes, more than the {MAX_METADATA_BYTES} allowed"),
            ));
        }
    }
    Ok(())
}

/// A string that becomes a path (or a C string) must not hold a NUL.
fn no_nul(what: &str, field: &str, value: &str) -> Result<(), Status> {
    if value.contains('\0') {
        return Err(refuse(
            what,
            field,
            format!("{value:?} contains a NUL byte"),
        ));
    }
    Ok(())
}

pub fn check_sandbox_config(config: &PodSandboxConfig) -> Result<(), Status> {
    const WHAT: &str = "RunPodSandbox";
    check_metadata_maps(WHAT, &config.labels, &config.annotations)?;
    no_nul(WHAT, "hostname", &config.hostname)?;
    no_nul(WHAT, "log_directory", &config.log_directory)?;
    if let Some(linux) = &config.linux {
        no_nul(WHAT, "linux.cgroup_parent", &linux.cgroup_parent)?;
    }
    Ok(())
}

fn check_mounts(what: &str, mounts: &[Mount], devices: &[Device]) -> Result<(), Status> {
    for (field, len) in [("mounts", mounts.len()), ("devices", devices.len())] {
        if len > MAX_MOUNTS {
            return Err(refuse(
                what,
                field,
                format!("{len} entries, more than the {MAX_MOUNTS} allowed"),
            ));
        }
    }
    for (i, m) in mounts.iter().enumerate() {
        no_nul(
            what,
            &format!("mounts[{i}].container_path"),
            &m.container_path,
        )?;
        no_nul(what, &format!("mounts[{i}].host_path"), &m.host_path)?;
    }
    for (i, d) in devices.iter().enumerate() {
        no_nul(
            what,
            &format!("devices[{i}].container_path"),
            &d.container_path,
        )?;
        no_nul(what, &format!("devices[{i}].host_path"), &d.host_path)?;
    }
    Ok(())
}

fn check_exec(what: &str, config: &ContainerConfig) -> Result<(), Status> {
    let mut total = 0;
    for (field, strings) in [("command", &config.command), ("args", &config.args)] {
        for (i, s) in strings.iter().enumerate() {
            no_nul(what, &format!("{field}[{i}]"), s)?;
            total += s.len() + 1;
        }
    }
    for (i, kv) in config.envs.iter().enumerate() {
        no_nul(what, &format!("envs[{i}].key"), &kv.key)?;
        no_nul(what, &format!("envs[{i}].value"), &kv.value)?;
        total += kv.key.len() + kv.value.len() + 2;
    }
    if total > MAX_EXEC_BYTES {
        return Err(refuse(
            what,
            "command, args and envs",
            format!("{total} bytes together, more than the {MAX_EXEC_BYTES} allowed"),
        ));
    }
    Ok(())
}

pub fn check_container_config(config: &ContainerConfig) -> Result<(), Status> {
    const WHAT: &str = "CreateContainer";
    check_metadata_maps(WHAT, &config.labels, &config.annotations)?;
    check_exec(WHAT, config)?;
    no_nul(WHAT, "working_dir", &config.working_dir)?;
    no_nul(WHAT, "log_path", &config.log_path)?;
    check_mounts(WHAT, &config.mounts, &config.devices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_cri_api::v1::KeyValue;

    #[test]
    fn each_bound_names_its_field() {
        let mut pod = PodSandboxConfig::default();
        pod.annotations
            .insert("a".into(), "x".repeat(MAX_METADATA_BYTES));
        let e = check_sandbox_config(&pod).expect_err("too big");
        assert!(e.message().contains("annotations"), "{}", e.message());
        let pod = PodSandboxConfig {
            log_directory: "/var/log/pods/a\0b".into(),
            ..Default::default()
        };
        let e = check_sandbox_config(&pod).expect_err("NUL");
        assert!(e.message().contains("log_directory"), "{}", e.message());

        let ctr = ContainerConfig {
            envs: vec![
                KeyValue {
                    key: "K".into(),
                    value: "v".into(),
                };
                MAX_EXEC_BYTES / 3
            ],
            ..Default::default()
        };
        let e = check_container_config(&ctr).expect_err("too much");
        assert!(
            e.message().contains("command, args and envs"),
            "{}",
            e.message()
        );
        let ctr = ContainerConfig {
            args: vec!["ok".into(), "a\0b".into()],
            ..Default::default()
        };
        let e = check_container_config(&ctr).expect_err("NUL");
        assert!(e.message().contains("args[1]"), "{}", e.message());
        assert!(check_container_config(&ContainerConfig::default()).is_ok());
        assert!(check_sandbox_config(&PodSandboxConfig::default()).is_ok());
    }
}
