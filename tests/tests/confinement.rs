//! No way out of a container: nothing of the shim is reachable from a pod's processes before
//! their `execve` (descriptors, `/proc/<pid>/root`, a cwd through a leaked descriptor), every
//! exec'd process is confined exactly like the container's init (ExecSync, streaming Exec and
//! an exec probe), stopping a pod while an exec runs in its PID namespace finishes, and mount
//! propagation works both ways without `pivot_root` failing.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use common::kube::kube_env;
use common::pod::{PodEnv, env, parse_log, with_pod_ns};
use corral_cri_api::v1::security_profile::ProfileType;
use corral_cri_api::v1::{
    ContainerConfig, ExecSyncRequest, IdMapping, Int64Value, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount,
    MountPropagation, NamespaceMode, NamespaceOption, PodSandboxConfig, SecurityProfile,
    StartContainerRequest, StopPodSandboxRequest, UserNamespace,
};
use corral_streaming::client::{self, CommandIo, Outcome, Transport};
use tokio::io::AsyncReadExt as _;

/// Lists what the container can reach of every other process it sees: a `/proc/<pid>/root`
/// that is not a root of this pod (its `/etc/hostname` differs), and a descriptor naming a
/// path that is not that same file in this container (a host file, directory or procfs).
const WATCH: &str = r#"
end=$(( $(date +%s) + 8 ))
me=$(cat /etc/hostname)
n=0
while [ $(date +%s) -lt $end ]; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/$$ ] && continue
    n=$((n+1))
    h=$(cat $p/root/etc/hostname 2>/dev/null) && [ "$h" != "$me" ] \
      && echo "ROOT $p $(cat $p/comm 2>/dev/null) $h"
    for f in $p/fd/*; do
      t=$(readlink "$f" 2>/dev/null) || continue
      case "$t" in /*) ;; *) continue;; esac
      # Only what the descriptor still shows (the process may be gone by now).
      s=$(stat -L -c '%d:%i %F' "$f" 2>/dev/null) || continue
      case "$s" in *character*) continue;; esac
      [ "$s" = "$(stat -c '%d:%i %F' "$t" 2>/dev/null)" ] \
        || echo "FD $f -> $t ($s, $(cat $p/comm 2>/dev/null))"
    done
  done
done
echo "done $n"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_root_is_visible_before_execve() -> Result<()> {
    let mut e = env().await?;
    // One PID namespace for the pod, so the watcher sees its sibling's init (waiting for
    // StartContainer) and every exec'd process.
    let pod = e
        .run_pod_with(pod_pid_namespace(e.pod_config("watched")))
        .await?;
    let waiting = e.ctr_config("waiting", &["true"]);
    e.create(&pod, "watched", waiting).await?;
    let watcher = e
        .start(&pod, "watched", "watch", &["sh", "-c", WATCH])
        .await?;

    // Execs (the window before each one's execve) while the watcher looks.
    let until = Instant::now() + Duration::from_secs(7);
    let mut execs = 0;
    while Instant::now() < until {
        let r =
            e.rt.exec_sync(ExecSyncRequest {
                container_id: watcher.clone(),
                cmd: vec!["true".into()],
                timeout: 10,
            })
            .await;
        if r.is_err() {
            break;
        }
        let transport = [Transport::Spdy, Transport::WebSocket][execs % 2];
        let (outcome, _) = stream_exec(&mut e, &watcher, &["true"], transport).await?;
        assert_eq!(outcome, Outcome::Exited(0));
        execs += 1;
    }
    assert!(execs > 5, "only {execs} execs ran");
    e.wait_exited(&watcher, Duration::from_secs(30)).await?;
    let lines: Vec<String> = parse_log(&std::fs::read_to_string(e.log_file("watch"))?)
        .into_iter()
        .map(|(_, _, l)| l)
        .collect();
    let found: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("ROOT") || l.starts_with("FD"))
        .collect();
    assert!(found.is_empty(), "reachable from the container: {found:#?}");
    let done = lines
        .iter()
        .find(|l| l.starts_with("done"))
        .context("watcher output")?;
    let seen: u32 = done.trim_start_matches("done ").parse()?;
    assert!(seen > 0, "the watcher saw no other process: {lines:?}");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_directory_through_an_inherited_descriptor_is_refused() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("cwd").await?;
    // CVE-2024-21626: a cwd of /proc/self/fd/N, N a descriptor the init inherited from the
    // shim, is outside the container's root. Every such N must fail to create or start.
    for n in 3..16 {
        let mut config = e.ctr_config(&format!("cwd{n}"), &["sh", "-c", "ls -a ../../..; pwd"]);
        config.working_dir = format!("/proc/self/fd/{n}");
        let Ok(id) = e.create(&pod, "cwd", config).await else {
            continue;
        };
        let started =
            e.rt.start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await;
        if let Err(status) = started {
            assert!(
                status.message().contains("cwd") || status.message().contains("chdir"),
                "fd {n}: {status:?}"
            );
            continue;
        }
        e.wait_exited(&id, Duration::from_secs(20)).await?;
        let log = std::fs::read_to_string(e.log_file(&format!("cwd{n}")))?;
        bail!("a container started with its cwd at /proc/self/fd/{n}: {log}");
    }
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// Processes start with every signal at its default action, as under runc: the shim (a Rust
/// program, which ignores SIGPIPE) must not hand its ignored signals down, or `yes | head` never
/// ends in a container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_and_execs_start_with_no_signal_ignored() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("sig").await?;
    let ctr = e.start(&pod, "sig", "init", &["sleep", "1000"]).await?;
    let ignored = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let init = exec_sync(&mut e, &ctr, &["cat", "/proc/1/status"]).await?;
    assert_eq!(
        ignored(&init),
        "0000000000000000",
        "the init's ignored signals"
    );
    let exec = exec_sync(&mut e, &ctr, &["cat", "/proc/self/status"]).await?;
    assert_eq!(
        ignored(&exec),
        "0000000000000000",
        "an exec's ignored signals"
    );
    // What the ignored SIGPIPE broke: a pipeline whose reader goes first.
    let piped = exec_sync(&mut e, &ctr, &["sh", "-c", "yes | head -c 3; echo"]).await?;
    assert_eq!(piped, "y\ny\n");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// `/proc/1/status` and `/proc/self/status` lines that confinement shows in, then the
/// namespaces and limits of both.
const COMPARE: &str = r#"
f='^(Seccomp|Seccomp_filters|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb|Uid|Gid|Groups):'
grep -E "$f" /proc/1/status | tr -s ' \t' ' '; echo ---
grep -E "$f" /proc/self/status | tr -s ' \t' ' '; echo ---
for n in cgroup ipc mnt net pid user uts; do readlink /proc/1/ns/$n; done; echo ---
for n in cgroup ipc mnt net pid user uts; do readlink /proc/self/ns/$n; done; echo ---
cat /proc/1/limits; echo ---
cat /proc/self/limits; echo ---
cat /proc/1/cgroup; echo ---
cat /proc/self/cgroup
"#;

/// Checks `out` (the output of [`COMPARE`]): each pair of sections is equal.
fn assert_same_confinement(case: &str, path: &str, out: &str) {
    let sections: Vec<&str> = out.split("---\n").collect();
    assert_eq!(sections.len(), 8, "{case}/{path}: {out}");
    for (pair, what) in sections
        .chunks(2)
        .zip(["status", "namespaces", "limits", "cgroup"])
    {
        assert!(
            !pair[0].trim().is_empty(),
            "{case}/{path}: no {what}: {out}"
        );
        assert_eq!(pair[0], pair[1], "{case}/{path}: {what} differ");
    }
}

fn sc_profile(typ: ProfileType, localhost_ref: &str) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: typ as i32,
        localhost_ref: localhost_ref.into(),
    })
}

/// `config` with one PID namespace for the whole pod (its init is the shim's PID holder).
fn pod_pid_namespace(config: PodSandboxConfig) -> PodSandboxConfig {
    let ns = NamespaceOption {
        pid: NamespaceMode::Pod as i32,
        ..Default::default()
    };
    with_pod_ns(config, ns)
}

/// The ID mapping of a user-namespaced pod: 0 → 100000, 65536 IDs.
fn mapping() -> Vec<IdMapping> {
    vec![IdMapping {
        host_id: 100000,
        container_id: 0,
        length: 65536,
    }]
}

/// PID namespace options for a pod whose containers each have their own (and with `userns`,
/// the pod's user namespace).
fn own_pid_namespace(userns: bool) -> NamespaceOption {
    NamespaceOption {
        pid: NamespaceMode::Container as i32,
        userns_options: userns.then(|| UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids: mapping(),
            gids: mapping(),
        }),
        ..Default::default()
    }
}

/// A streaming Exec without stdin: how it ended, and its stdout.
async fn stream_exec(
    e: &mut PodEnv,
    ctr: &str,
    cmd: &[&str],
    transport: Transport,
) -> Result<(Outcome, String)> {
    let url = crate::streaming::exec_url(e, ctr, cmd, false, false).await?;
    let (out, mut out_r) = tokio::io::duplex(1 << 20);
    let (err, _err_r) = tokio::io::duplex(1 << 20);
    let io = CommandIo {
        stdin: None,
        stdout: Some(Box::new(out)),
        stderr: Some(Box::new(err)),
        resize: None,
    };
    let outcome = client::remote_command(&url, transport, io).await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), out_r.read_to_string(&mut text)).await??;
    Ok((outcome, text))
}

async fn exec_sync(e: &mut PodEnv, ctr: &str, cmd: &[&str]) -> Result<String> {
    let r =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: ctr.to_owned(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        })
        .await?
        .into_inner();
    let err = String::from_utf8_lossy(&r.stderr);
    anyhow::ensure!(r.exit_code == 0, "exit {}: {err}", r.exit_code);
    Ok(String::from_utf8_lossy(&r.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_processes_are_confined_like_the_init() -> Result<()> {
    let mut e = env().await?;
    let prof = e.logs.path().join("no-mkdir.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )?;
    let prof = prof.to_str().context("path")?.to_owned();
    let runtime_default = LinuxContainerSecurityContext {
        seccomp: sc_profile(ProfileType::RuntimeDefault, ""),
        ..Default::default()
    };
    let cases: Vec<(&str, bool, LinuxContainerSecurityContext)> = vec![
        ("runtime-default", false, runtime_default.clone()),
        (
            "localhost",
            false,
            LinuxContainerSecurityContext {
                seccomp: sc_profile(ProfileType::Localhost, &prof),
                no_new_privs: true,
                ..Default::default()
            },
        ),
        (
            "unconfined",
            false,
            LinuxContainerSecurityContext::default(),
        ),
        (
            "non-root",
            false,
            LinuxContainerSecurityContext {
                run_as_user: Some(Int64Value { value: 1000 }),
                run_as_group: Some(Int64Value { value: 1001 }),
                supplemental_groups: vec![2000],
                ..runtime_default.clone()
            },
        ),
        ("userns", true, runtime_default),
    ];
    for (case, userns, sc) in cases {
        let pod_name = format!("conf-{case}");
        let config = with_pod_ns(e.pod_config(&pod_name), own_pid_namespace(userns));
        let pod = e.run_pod_with(config).await?;
        let mut ctr = e.ctr_config(case, &["sleep", "3600"]);
        let mut sc = sc;
        if userns {
            sc.namespace_options = Some(own_pid_namespace(true));
        }
        ctr.linux = Some(LinuxContainerConfig {
            security_context: Some(sc),
            ..Default::default()
        });
        let id = e.create(&pod, &pod_name, ctr).await?;
        e.rt.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;

        let out = exec_sync(&mut e, &id, &["sh", "-c", COMPARE]).await?;
        assert_same_confinement(case, "ExecSync", &out);
        if case != "unconfined" && case != "userns" {
            assert!(!out.starts_with("Seccomp: 0"), "{case}: {out}");
        }
        for transport in [Transport::Spdy, Transport::WebSocket] {
            let (outcome, out) =
                stream_exec(&mut e, &id, &["sh", "-c", COMPARE], transport).await?;
            assert_eq!(outcome, Outcome::Exited(0), "{case}: {out}");
            assert_same_confinement(case, &format!("Exec {transport:?}"), &out);
        }
        e.remove_pod(&pod).await?;
    }
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probes_are_confined_like_the_init() -> Result<()> {
    let mut k = kube_env().await?;
    // The probe copies its own confinement where the test can read it; it succeeds only once
    // the copy is there.
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 1001
    supplementalGroups: [3000]
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: ["ALL"], add: ["NET_BIND_SERVICE"]}
    readinessProbe:
      exec:
        command: ["sh", "-c", "f='^(Seccomp|Seccomp_filters|NoNewPrivs|Cap[A-Za-z]+|Uid|Gid|Groups):'; grep -E \"$f\" /proc/self/status > /tmp/probe.new && mv /tmp/probe.new /tmp/probe"]
      periodSeconds: 1
"#,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let probe = loop {
        let (code, out) = k
            .exec("probed", "main", &["cat", "/tmp/probe"])
            .await
            .unwrap_or((1, String::new()));
        if code == 0 && !out.is_empty() {
            break out;
        }
        if Instant::now() > deadline {
            bail!("the readiness probe never ran");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let f = "^(Seccomp|Seccomp_filters|NoNewPrivs|Cap[A-Za-z]+|Uid|Gid|Groups):";
    let (_, init) = k
        .exec("probed", "main", &["grep", "-E", f, "/proc/1/status"])
        .await?;
    assert_eq!(
        probe, init,
        "the probe's confinement differs from the init's"
    );
    assert!(probe.contains("NoNewPrivs:\t1"), "{probe}");
    assert!(!probe.contains("Seccomp:\t0"), "{probe}");
    k.delete_all_and_assert_clean().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_pod_while_an_exec_runs_in_its_pid_namespace_finishes() -> Result<()> {
    let mut e = env().await?;
    // A PID namespace for the pod, whose init is the shim's PID holder.
    let pod = e
        .run_pod_with(pod_pid_namespace(e.pod_config("busy")))
        .await?;
    let ctr = e.start(&pod, "busy", "main", &["sleep", "3600"]).await?;
    let mut rt = e.rt.clone();
    let exec = tokio::spawn(async move {
        rt.exec_sync(ExecSyncRequest {
            container_id: ctr,
            cmd: vec!["sh".into(), "-c".into(), "yes > /dev/null".into()],
            timeout: 120,
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !exec.is_finished(),
        "the exec is not running: {:?}",
        exec.await
    );
    assert!(
        !common::pod::shim_pids(&e.d.state()).is_empty(),
        "no shim found"
    );
    let began = Instant::now();
    let stop = e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    });
    tokio::time::timeout(Duration::from_secs(30), stop)
        .await
        .context("StopPodSandbox hung with an exec running")??;
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(10), exec)
        .await
        .context("the exec never ended")??
        .ok();
    e.remove_pod(&pod).await?;
    // The shim itself is gone, not stuck waiting for its PID holder.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::pod::shim_pids(&e.d.state()).is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the pod's shim is still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.assert_clean();
    Ok(())
}

/// A host directory bind-mounted on itself and made shared (as every mount is on a systemd
/// host); lazily unmounts it and whatever propagated below it on drop.
struct SharedDir {
    dir: tempfile::TempDir,
}

impl SharedDir {
    fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("corral-shared-")
            .tempdir()?;
        let p = dir.path().to_str().context("path")?;
        run("mount", &["--bind", p, p])?;
        run("mount", &["--make-rshared", p])?;
        Ok(SharedDir { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let p = self.dir.path();
        for sub in ["from-host", "from-container"] {
            let _ = std::process::Command::new("umount")
                .args(["-l", &p.join(sub).display().to_string()])
                .status();
        }
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(p)
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let s = std::process::Command::new(cmd).args(args).status()?;
    anyhow::ensure!(s.success(), "{cmd} {args:?}: {s}");
    Ok(())
}

fn bind(container: &str, host: &Path, propagation: MountPropagation) -> Mount {
    Mount {
        container_path: container.into(),
        host_path: host.display().to_string(),
        propagation: propagation as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_propagation_works_both_ways_with_shared_host_mounts() -> Result<()> {
    let shared = SharedDir::new()?;
    let host: PathBuf = shared.path().to_path_buf();
    std::fs::create_dir(host.join("from-host"))?;
    std::fs::create_dir(host.join("from-container"))?;
    let mut e = env().await?;
    let mut pod_config = e.pod_config("prop");
    pod_config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = e.run_pod_with(pod_config).await?;
    let script = "mount -t tmpfs inside /both/from-container && touch /both/from-container/made-inside; \
        i=0; while [ ! -e /down/from-host/made-outside ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
        ls /down/from-host /both/from-host; sleep 3600";
    let mut config: ContainerConfig = e.ctr_config("prop", &["sh", "-c", script]);
    config.mounts = vec![
        bind("/both", &host, MountPropagation::PropagationBidirectional),
        bind("/down", &host, MountPropagation::PropagationHostToContainer),
    ];
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = e.create(&pod, "prop", config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    // The container's mount reaches the host.
    let inside = host.join("from-container/made-inside");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !inside.exists() {
        let log = std::fs::read_to_string(e.log_file("prop")).unwrap_or_default();
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} never appeared; the container said: {log}",
            inside.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The host's mount reaches the container, through both mounts.
    let p = host.join("from-host");
    run(
        "mount",
        &["-t", "tmpfs", "outside", p.to_str().context("path")?],
    )?;
    std::fs::write(p.join("made-outside"), "x")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(e.log_file("prop")).unwrap_or_default();
        let seen = parse_log(&log)
            .iter()
            .filter(|(_, _, l)| l == "made-outside")
            .count();
        if seen == 2 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not seen inside: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    e.remove_pod(&pod).await?;
    drop(shared);
    e.assert_clean();
    Ok(())
}

/// Swaps `a` and `b` (`renameat2(RENAME_EXCHANGE)`) until `stop` is set: the attacker's loop
/// of CVE-2021-25741, run here from the host on the directory a pod shares.
fn swap_loop(a: PathBuf, b: PathBuf, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use nix::fcntl::{RenameFlags, renameat2};
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        renameat2(None, &a, None, &b, RenameFlags::RENAME_EXCHANGE).expect("renameat2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_path_swapped_for_a_symlink_never_mounts_the_host() -> Result<()> {
    let mut k = kube_env().await?;
    // `sub` (a directory with a marker) and `evil` (a symlink to /) trade places all the time.
    let shared = tempfile::Builder::new()
        .prefix("corral-subpath-")
        .tempdir()?;
    std::fs::create_dir(shared.path().join("sub"))?;
    std::fs::write(shared.path().join("sub/marker"), "inside")?;
    std::os::unix::fs::symlink("/", shared.path().join("evil"))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (a, b, stop) = (
            shared.path().join("sub"),
            shared.path().join("evil"),
            stop.clone(),
        );
        std::thread::spawn(move || swap_loop(a, b, stop))
    };
    let containers: String = (0..10)
        .map(|i| {
            format!(
                "  - name: c{i}\n    image: IMAGE\n    imagePullPolicy: IfNotPresent\n    \
                 command: [sh, -c, 'cat /mnt/marker 2>/dev/null || ls -d /mnt/etc /mnt/proc; sleep 3600']\n    \
                 volumeMounts: [{{name: shared, mountPath: /mnt, subPath: sub}}]\n"
            )
        })
        .collect();
    let (mut started, mut escaped) = (0, Vec::new());
    for round in 0..5 {
        let name = format!("victim{round}");
        k.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  volumes:\n  \
             - {{name: shared, hostPath: {{path: {}}}}}\n  containers:\n{containers}",
            shared.path().display()
        ))
        .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let p = k.pod(&name).await?;
        for i in 0..10 {
            let c = format!("c{i}");
            if common::kube::container_id(&p, &c).is_none() {
                continue;
            }
            let Ok(log) = k.log(&name, &c).await else {
                continue;
            };
            if log.is_empty() {
                continue;
            }
            started += 1;
            if log.trim() != "inside" {
                escaped.push(format!("{name}/{c}: {log}"));
            }
        }
        k.delete(&name, Some(0)).await?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper
        .join()
        .map_err(|_| anyhow::anyhow!("the swap loop panicked"))?;
    assert!(
        escaped.is_empty(),
        "the host's root was mounted: {escaped:#?}"
    );
    assert!(started >= 10, "only {started} containers started");
    k.delete_all_and_assert_clean().await
}
