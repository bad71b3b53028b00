//! A full state directory, and a full root, while pods are made (issue 16, item 3): each of
//! RunPodSandbox and CreateContainer fails with RESOURCE_EXHAUSTED naming the cause, leaves
//! nothing half-made (no record, directory, temporary file, mount, cgroup, shim, veth or IP
//! reservation beyond what the pods that exist hold), also after a daemon restart; then room
//! comes back a page at a time, so RunPodSandbox fails at each of its writes in turn (the
//! same checks after each), until it succeeds, and so does CreateContainer.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use common::pod::{PodEnv, env_with, shim_pids};
use corral_cri_api::v1::{ListContainersRequest, ListPodSandboxRequest, RunPodSandboxRequest};
use corral_tests::daemon::DaemonOptions;
use tonic::Code;

/// Pages of room given back one at a time (see [`fill`]).
const SPARE_PAGES: usize = 24;

/// Fills the file system of `dir` to the last byte with a file it returns, after
/// [`SPARE_PAGES`] files of one page each (`filler-spare-<n>`), which give room back a page
/// at a time when removed.
fn fill(dir: &Path) -> Result<PathBuf> {
    use std::io::Write as _;
    for n in 0..SPARE_PAGES {
        std::fs::write(dir.join(format!("filler-spare-{n}")), [0u8; 4096])?;
    }
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler)?;
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    Ok(filler)
}

/// Every path under `dir` (not following symbolic links, not entering other mounts' trees
/// twice), relative to `dir`.
fn walk(dir: &Path, out: &mut BTreeSet<String>, base: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        out.insert(
            path.strip_prefix(base)
                .unwrap_or(&path)
                .display()
                .to_string(),
        );
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, out, base);
        }
    }
}

/// Cgroup directories under `root` in each controller the harness checks.
fn cgroups(root: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ctrl in ["memory", "pids", "cpu"] {
        let dir = Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(root.trim_start_matches('/'));
        let mut all = BTreeSet::new();
        walk(&dir, &mut all, &dir);
        // Only the directories: a cgroup's files are the kernel's.
        out.extend(
            all.into_iter()
                .filter(|p| dir.join(p).is_dir())
                .map(|p| format!("{ctrl}/{p}")),
        );
    }
    out
}

/// What the daemon's pods hold on the host.
#[derive(Debug, PartialEq, Eq)]
struct Held {
    files: BTreeSet<String>,
    mounts: Vec<PathBuf>,
    cgroups: BTreeSet<String>,
    shims: usize,
    veths: usize,
    leases: Vec<String>,
}

impl Held {
    fn now(e: &PodEnv) -> Held {
        let mut files = BTreeSet::new();
        for base in [e.d.root(), e.d.state()] {
            walk(&base, &mut files, e.d.dir());
        }
        files.retain(|p| !p.contains("/filler"));
        Held {
            files,
            mounts: corral_tests::cleanup::mounts_under(e.d.dir()),
            cgroups: cgroups(e.d.cgroup_root()),
            shims: shim_pids(&e.d.state()).len(),
            veths: e.d.net().bridge_ports().len(),
            leases: e.d.ip_reservations(),
        }
    }

    /// Asserts nothing more is held than `before` was (listing what is).
    fn assert_same(&self, before: &Held, when: &str) {
        let extra: Vec<_> = self.files.difference(&before.files).collect();
        let gone: Vec<_> = before.files.difference(&self.files).collect();
        assert!(
            extra.is_empty() && gone.is_empty(),
            "{when}: files left {extra:#?}, files gone {gone:#?}"
        );
        assert_eq!(self, before, "{when}");
    }
}

async fn listed(e: &mut PodEnv) -> Result<(usize, usize)> {
    let pods =
        e.rt.list_pod_sandbox(ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items;
    let ctrs =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
    Ok((pods.len(), ctrs.len()))
}

fn assert_no_space(what: &str, status: tonic::Status) {
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{what}: {}",
        status.message()
    );
    assert!(
        status
            .message()
            .to_lowercase()
            .contains("no space left on device"),
        "{what}: the cause is named: {}",
        status.message()
    );
}

/// Fills `full` (the daemon's state directory or its root) once a pod runs, then asks for a
/// second pod and a container in the first. With `stop_while_full`, a container of the first
/// pod is stopped on the full disk too: its exit is recorded and the pod's shim serves on (the
/// shim's own log and its exit records are on the state directory).
async fn creation_on_a_full_disk(
    opts: DaemonOptions,
    full: fn(&PodEnv) -> PathBuf,
    stop_while_full: bool,
) -> Result<()> {
    let mut e = env_with(opts).await?;
    let pod = e.run_pod("first").await?;
    let sleeper = if stop_while_full {
        let id = e
            .start(&pod, "first", "sleeper", &["sleep", "3600"])
            .await?;
        let pod_dir = e.d.state().join("pods").join(&pod);
        // Where the shim writes the exit record (as after any earlier exit in the pod).
        std::fs::create_dir_all(pod_dir.join("exits"))?;
        // A tmpfs file has its last page whole: pad the shim's log to a page boundary, so its
        // next line needs a new page, as it would at some point after enough earlier lines.
        let log = pod_dir.join("shim.log");
        let pad = (4096 - std::fs::metadata(&log)?.len() % 4096) % 4096;
        if pad > 0 {
            use std::io::Write as _;
            let mut line = vec![b'.'; usize::try_from(pad)? - 1];
            line.push(b'\n');
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)?
                .write_all(&line)?;
        }
        Some(id)
    } else {
        None
    };
    let before = Held::now(&e);
    let filler = fill(&full(&e))?;

    if let Some(id) = &sleeper {
        e.rt.stop_container(corral_cri_api::v1::StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await?;
        let status = e.wait_exited(id, Duration::from_secs(20)).await?;
        assert_eq!(status.exit_code, 137, "{status:?}");
        let sandbox =
            e.rt.pod_sandbox_status(corral_cri_api::v1::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .map(|s| s.state);
        assert_eq!(
            sandbox,
            Some(corral_cri_api::v1::PodSandboxState::SandboxReady as i32),
            "the pod's shim serves on"
        );
    }

    let second =
        e.rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(e.pod_config("second")),
            runtime_handler: String::new(),
        })
        .await
        .map(|_| ())
        .expect_err("RunPodSandbox on a full disk");
    assert_no_space("RunPodSandbox", second);
    let config = e.ctr_config("c", &["true"]);
    let ctr = e
        .create(&pod, "first", config)
        .await
        .map(|_| ())
        .expect_err("CreateContainer on a full disk");
    assert_no_space("CreateContainer", ctr);
    let ctrs = usize::from(sleeper.is_some());
    assert_eq!(
        listed(&mut e).await?,
        (1, ctrs),
        "only the first pod is listed"
    );
    Held::now(&e).assert_same(&before, "after the failures");

    // A restart (on the still full disk) finds nothing half-made either.
    e.d.restart().await?;
    e.rt = e.d.runtime().await?;
    assert_eq!(listed(&mut e).await?, (1, ctrs), "after a restart");
    Held::now(&e).assert_same(&before, "after a restart");

    // Room comes back a page at a time: until RunPodSandbox has what it needs, it fails at
    // whichever write comes first (a record, the shim's files, the built-in network's IP
    // reservation under the root), always RESOURCE_EXHAUSTED and leaving nothing.
    let mut second = None;
    for n in 0..SPARE_PAGES {
        std::fs::remove_file(full(&e).join(format!("filler-spare-{n}")))?;
        let tried =
            e.rt.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(e.pod_config("second")),
                runtime_handler: String::new(),
            })
            .await;
        match tried {
            Ok(r) => {
                second = Some(r.into_inner().pod_sandbox_id);
                break;
            }
            Err(status) => {
                assert_no_space(&format!("RunPodSandbox with {} pages", n + 1), status);
                Held::now(&e).assert_same(&before, &format!("with {} pages", n + 1));
            }
        }
    }
    // Once there is space again, the same requests succeed.
    std::fs::remove_file(&filler)?;
    let second = match second {
        Some(id) => id,
        None => e.run_pod("second").await?,
    };
    let id = e.start(&pod, "first", "c", &["true"]).await?;
    let status = e.wait_exited(&id, Duration::from_secs(20)).await?;
    assert_eq!(status.exit_code, 0);
    e.remove_pod(&second).await?;
    e.remove_pod(&pod).await?;
    e.wait_for_veths_to_go();
    let left = Held::now(&e);
    assert_eq!(left.shims, 0);
    assert_eq!(left.veths, 0);
    assert!(left.leases.is_empty(), "{:?}", left.leases);
    assert!(left.cgroups.is_empty(), "{:?}", left.cgroups);
    // Only the tmpfs the test gave the daemon.
    assert_eq!(left.mounts, vec![full(&e)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_fails_pods_and_containers_cleanly_until_space_returns() -> Result<()>
{
    creation_on_a_full_disk(
        DaemonOptions {
            state_tmpfs_mib: Some(16),
            ..Default::default()
        },
        |e| e.d.state(),
        true,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_root_fails_pods_and_containers_cleanly_until_space_returns() -> Result<()> {
    creation_on_a_full_disk(
        DaemonOptions {
            root_tmpfs_mib: Some(64),
            ..Default::default()
        },
        |e| e.d.root(),
        false,
    )
    .await
}
