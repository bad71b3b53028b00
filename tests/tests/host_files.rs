//! What the daemon keeps on the host, seen by a hostile container and an unprivileged host
//! user (issue 15, items 3, 9 and 11): no host user enters the daemon's directories, reads a
//! Secret or writes a termination log; a directory tree 20 000 levels deep in a writable layer
//! or an emptyDir neither crashes the daemon nor stops it from starting; a container writing to
//! `/etc/resolv.conf` cannot fill the state directory's filesystem.

use crate::common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use common::kube::{KubeEnv, container_id, kube_env, running};
use common::pod::env;
use corral_cri_api::v1::{
    ContainerStatsRequest, ExecSyncRequest, RemoveContainerRequest, StopContainerRequest,
};
use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, mkdirat};

const MINUTE: Duration = Duration::from_secs(60);

/// Runs `sh -c script` as `nobody` (UID and GID 65534, no supplementary groups); its exit
/// status and stderr.
fn as_nobody(script: &str) -> Result<(bool, String)> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .uid(65534)
        .gid(65534)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Asserts `nobody` cannot run `script`, for lack of permission.
fn refused_to_nobody(script: &str) -> Result<()> {
    let (ok, err) = as_nobody(script)?;
    if ok || !err.contains("Permission denied") {
        bail!("as nobody, {script:?} was not refused for permission: success {ok}, {err:?}");
    }
    Ok(())
}

/// Makes `root/d/d/.../d`, `depth` levels, relative to descriptors (fast, no long paths): what
/// a container gets with `mkdir n && mv d n/d && mv n d` in a loop.
fn deep_tree(root: &Path, depth: usize) -> Result<()> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = Dir::open(root, flags, Mode::empty())?;
    for _ in 0..depth {
        mkdirat(Some(dir.as_raw_fd()), c"d", Mode::from_bits_truncate(0o755))?;
        dir = Dir::openat(Some(dir.as_raw_fd()), c"d", flags, Mode::empty())?;
    }
    Ok(())
}

/// Removes a [`deep_tree`] on drop, before the test daemon's directory goes (a recursive
/// removal of it would overflow the test's own stack when the daemon failed to).
struct DeepTree(std::path::PathBuf);

impl Drop for DeepTree {
    fn drop(&mut self) {
        let _ = corral_fsutil::remove_tree(&self.0.join("d"));
    }
}

fn daemon_alive(pid: Option<u32>) -> bool {
    pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
        && pid.is_some_and(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z "))
        })
}

async fn running_pod(k: &mut KubeEnv, name: &str, container: &str) -> Result<String> {
    let p = k
        .wait_pod(name, MINUTE, "Running", |p| running(p, container))
        .await?;
    Ok(p.metadata.uid.clone().unwrap_or_default())
}

#[tokio::test]
async fn host_users_cannot_enter_the_daemons_directories_or_read_a_secret() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: topsecret}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Pod
metadata: {name: suid}
spec:
  containers:
  - name: c
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "cp /bin/busybox /suid-sh && chmod 4755 /suid-sh && sleep 3600"]
    env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: topsecret, key: password}}}]
"#,
    )
    .await?;
    running_pod(&mut k, "suid", "c").await?;
    let p = k.pod("suid").await?;
    let id = container_id(&p, "c").context("container id")?;
    let (root, state) = (k.pods.d.root(), k.pods.d.state());
    let rootfs = state.join("containers").join(&id).join("rootfs");
    let upper = root.join("containers").join(&id).join("upper");
    // The container made its setuid-root copy.
    for _ in 0..100 {
        if std::fs::metadata(upper.join("suid-sh")).is_ok_and(|m| m.mode() & 0o4000 != 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::fs::metadata(upper.join("suid-sh"))?.mode() & 0o4000 != 0);
    let secret = root.join("kubelet/store/secrets/default/topsecret.json");
    assert!(std::fs::read_to_string(&secret)?.contains("password"));
    for script in [
        format!("ls {}", root.join("containers").display()),
        format!("ls {}", upper.display()),
        format!("{}/suid-sh id", upper.display()),
        format!("ls {}", rootfs.display()),
        format!("{}/suid-sh id", rootfs.display()),
        format!("ls {}", state.join("containers").join(&id).display()),
        format!(
            "cat {}",
            state
                .join("containers")
                .join(&id)
                .join("config.json")
                .display()
        ),
        format!("ls {}", root.join("snapshots").display()),
        format!("ls {}", root.join("kubelet/store").display()),
        format!("cat {}", secret.display()),
    ] {
        refused_to_nobody(&script)?;
    }
    // Inside, the container's own setuid file still works (the rootfs is not nosuid).
    let out = k
        .pods
        .rt
        .exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sh".into(), "-c".into(), "ls -l /suid-sh".into()],
            timeout: 10,
        })
        .await?
        .into_inner();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("-rwsr-xr-x"),
        "{out:?}"
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn host_users_cannot_write_a_termination_log() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: term}
spec:
  containers:
  - name: c
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 3600"]
"#,
    )
    .await?;
    let uid = running_pod(&mut k, "term", "c").await?;
    let dir = k.pods.d.root().join("kubelet/pods").join(&uid);
    let log = dir.join("containers/c/0-termination-log");
    assert!(log.is_file(), "{} is missing", log.display());
    refused_to_nobody(&format!("echo injected >> {}", log.display()))?;
    assert_eq!(std::fs::read_to_string(&log)?, "");
    assert_eq!(std::fs::metadata(&dir)?.mode() & 0o7777, 0o750);
    assert_eq!(
        std::fs::metadata(dir.join("containers/c"))?.mode() & 0o7777,
        0o750
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn a_container_cannot_fill_the_state_directory_through_resolv_conf() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("fill").await?;
    let script = "dd if=/dev/zero of=/etc/resolv.conf bs=4k count=256 2>/dev/null; \
                  echo size=$(wc -c < /etc/resolv.conf); \
                  dd if=/dev/zero of=/etc/hostname bs=4k count=256 2>/dev/null; \
                  echo size=$(wc -c < /etc/hostname); sleep 3600";
    let ctr = e.start(&pod, "fill", "fill", &["sh", "-c", script]).await?;
    let log = e.log_file("fill");
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("size=").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sizes: Vec<u64> = text
        .split("size=")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(sizes.len(), 2, "{text:?}");
    // 1 MiB asked each time; the pod's files hold what they need plus 64 KiB in all.
    for size in sizes {
        assert!(
            size < 256 * 1024,
            "a container wrote {size} bytes to a pod file"
        );
    }
    // And what it wrote is not on the state directory's filesystem.
    let state = e.d.state();
    let files = state.join("pods").join(&pod).join("files");
    let state_dev = std::fs::metadata(&state)?.dev();
    assert_ne!(
        std::fs::metadata(&files)
            .with_context(|| files.display().to_string())?
            .dev(),
        state_dev
    );
    e.rt.stop_container(StopContainerRequest {
        container_id: ctr.clone(),
        timeout: 0,
    })
    .await?;
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn a_deep_writable_layer_is_counted_and_removed_and_the_daemon_lives() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("deep").await?;
    let ctr = e.start(&pod, "deep", "deep", &["sleep", "3600"]).await?;
    let upper = e.d.root().join("containers").join(&ctr).join("upper");
    deep_tree(&upper, 20_000)?;
    let _tree = DeepTree(upper.clone());
    let stats =
        e.rt.container_stats(ContainerStatsRequest {
            container_id: ctr.clone(),
        })
        .await?
        .into_inner()
        .stats
        .context("no stats")?;
    let inodes = stats
        .writable_layer
        .as_ref()
        .and_then(|w| w.inodes_used.as_ref())
        .map_or(0, |v| v.value);
    e.rt.stop_container(StopContainerRequest {
        container_id: ctr.clone(),
        timeout: 0,
    })
    .await?;
    let removed =
        e.rt.remove_container(RemoveContainerRequest {
            container_id: ctr.clone(),
        })
        .await;
    assert!(daemon_alive(e.d.pid()), "corrald died removing the layer");
    removed?;
    assert!(daemon_alive(e.d.pid()), "corrald died removing the layer");
    assert!(!upper.exists());
    assert!(inodes >= 20_000, "writable layer inodes: {inodes}");
    e.d.restart().await?;
    e.rt = e.d.runtime().await?;
    e.remove_pod(&pod).await?;
    assert!(daemon_alive(e.d.pid()));
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn a_deep_empty_dir_with_fs_group_survives_restart_and_delete() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: deepvol}
spec:
  securityContext: {fsGroup: 2000}
  volumes:
  - name: work
    emptyDir: {}
  containers:
  - name: c
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 3600"]
    volumeMounts: [{name: work, mountPath: /work}]
"#,
    )
    .await?;
    let uid = running_pod(&mut k, "deepvol", "c").await?;
    let vol = k
        .pods
        .d
        .root()
        .join("kubelet/pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/work");
    deep_tree(&vol, 20_000)?;
    let _tree = DeepTree(vol.clone());
    // The ownership walk runs again when the daemon starts.
    k.pods.d.restart().await?;
    k.kube = corral_cri_api::corral::kube_service_client::KubeServiceClient::new(
        k.pods.d.channel().await?,
    );
    k.pods.rt = k.pods.d.runtime().await?;
    running_pod(&mut k, "deepvol", "c").await?;
    assert!(daemon_alive(k.pods.d.pid()), "corrald died after restart");
    k.delete_all_and_assert_clean().await?;
    assert!(
        daemon_alive(k.pods.d.pid()),
        "corrald died deleting the pod"
    );
    assert!(!vol.exists());
    Ok(())
}
