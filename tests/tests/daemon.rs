//! corrald as a process: identity calls, ownership of its directories and socket, config errors.

use anyhow::Result;
use corral_cri_api::v1::{
    CgroupDriver, ListPodSandboxRequest, RuntimeConfigRequest, StatusRequest, VersionRequest,
};
use corral_tests::daemon::{TestDaemon, corrald_bin};
use tonic::Code;

#[tokio::test]
async fn version_status_and_runtime_config() -> Result<()> {
    let d = TestDaemon::start().await?;
    let mut rt = d.runtime().await?;
    let v = rt.version(VersionRequest::default()).await?.into_inner();
    assert_eq!(v.runtime_name, "corral");
    assert_eq!(v.runtime_api_version, "v1");
    assert!(!v.runtime_version.is_empty());

    let s = rt
        .status(StatusRequest { verbose: true })
        .await?
        .into_inner();
    let conds = s.status.expect("status").conditions;
    let runtime = conds
        .iter()
        .find(|c| c.r#type == "RuntimeReady")
        .expect("RuntimeReady");
    assert!(runtime.status);
    let network = conds
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .expect("NetworkReady");
    // The built-in network with the plugins `make test` installs.
    assert!(network.status, "NetworkReady: {network:?}");
    let cni: serde_json::Value = serde_json::from_str(&s.info["cniconfig"])?;
    assert_eq!(cni["name"], "corral", "the built-in network: {cni}");
    let config: serde_json::Value = serde_json::from_str(&s.info["config"])?;
    assert_eq!(config["root"], d.root().display().to_string());

    let rc = rt
        .runtime_config(RuntimeConfigRequest {})
        .await?
        .into_inner();
    assert_eq!(
        rc.linux.expect("linux").cgroup_driver,
        CgroupDriver::Cgroupfs as i32
    );

    // A pod that does not exist is NotFound, never a fake success.
    let r = rt
        .update_pod_sandbox_resources(
            corral_cri_api::v1::UpdatePodSandboxResourcesRequest::default(),
        )
        .await;
    assert_eq!(r.expect_err("no such pod").code(), Code::NotFound);
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await?;
    assert!(pods.into_inner().items.is_empty());
    Ok(())
}

/// corrald defines the two libm functions it calls (`daemon/src/math.rs`): glibc's libm, half a
/// MiB of its idle memory when loaded, must not come back with a new dependency's call.
#[tokio::test]
async fn the_daemon_does_not_load_libm() -> Result<()> {
    let d = TestDaemon::start().await?;
    let mut rt = d.runtime().await?;
    rt.version(VersionRequest::default()).await?;
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", d.pid().expect("pid")))?;
    let libs: std::collections::BTreeSet<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains(".so"))
        .collect();
    assert!(
        libs.iter().any(|p| p.contains("/libc.so")),
        "the C library is mapped: {libs:?}"
    );
    assert!(
        !libs.iter().any(|p| p.contains("/libm.so")),
        "corrald loads libm: a dependency calls a libm function other than pow and log2 (nm -D --undefined-only corrald): {libs:?}"
    );
    Ok(())
}

#[tokio::test]
async fn socket_is_created_with_its_mode_and_removed_on_stop() -> Result<()> {
    let mut d = TestDaemon::start().await?;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(d.socket())?;
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    d.stop()?;
    assert!(!d.socket().exists(), "socket left after a clean stop");
    Ok(())
}

#[tokio::test]
async fn a_second_daemon_refuses_to_share_root_or_socket() -> Result<()> {
    let d = TestDaemon::start().await?;
    // Same config: the root is locked.
    let out = std::process::Command::new(corrald_bin())
        .arg("--config")
        .arg(d.config_file())
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another corrald"), "{err}");
    assert!(
        err.contains(&format!("pid {}", d.pid().expect("pid"))),
        "{err}"
    );

    // Other directories, same socket: the live socket is not replaced.
    let other = tempfile::tempdir()?;
    let out = corrald_elsewhere(other.path(), &d.socket())?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("served by another live process"), "{err}");

    // The first daemon is unharmed.
    let mut rt = d.runtime().await?;
    rt.version(VersionRequest::default()).await?;

    // A path that is not a socket is never replaced.
    let file = other.path().join("not-a-socket");
    std::fs::write(&file, b"precious")?;
    let out = corrald_elsewhere(other.path(), &file)?;
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&file)?, b"precious");
    Ok(())
}

/// Runs corrald on its own root and state under `dir`, but with the given socket path.
fn corrald_elsewhere(
    dir: &std::path::Path,
    socket: &std::path::Path,
) -> Result<std::process::Output> {
    Ok(std::process::Command::new(corrald_bin())
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(socket)
        .output()?)
}

#[tokio::test]
async fn bad_config_is_refused_with_the_key_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[images]\nmax_concurent_layers = 3\n")?;
    let out = std::process::Command::new(corrald_bin())
        .arg("--config")
        .arg(&cfg)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_concurent_layers"), "{err}");
    let out = std::process::Command::new(corrald_bin())
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    Ok(())
}
