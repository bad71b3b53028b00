//! OCI hooks brought by CDI devices: shell scripts in a host temporary directory that record
//! the state JSON they read, where they ran (mount and network namespaces) and when.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common;

use anyhow::{Context as _, Result};
use common::pod::{PodEnv, env_with};
use corral_cri_api::v1::{
    CdiDevice, ExecSyncRequest, ListContainersRequest, RemoveContainerRequest,
    StartContainerRequest,
};
use corral_tests::daemon::DaemonOptions;

struct Hooks {
    e: PodEnv,
    dir: tempfile::TempDir,
    pod: String,
}

impl Hooks {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// An executable shell script at `rel`.
    fn script(&self, rel: &str, body: &str) -> Result<String> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(rel);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(p.display().to_string())
    }

    /// A CDI spec for `example.com/hooks=<device>` whose device carries `hooks` (JSON).
    fn device(&self, device: &str, hooks: &str, mounts: &str) -> Result<()> {
        let body = format!(
            r#"{{"cdiVersion":"0.6.0","kind":"example.com/hooks","devices":[{{"name":"{device}","containerEdits":{{"hooks":[{hooks}],"mounts":[{mounts}]}}}}]}}"#
        );
        std::fs::write(self.path(&format!("cdi/{device}.json")), body)?;
        Ok(())
    }

    async fn create(
        &mut self,
        name: &str,
        device: &str,
        cmd: &[&str],
    ) -> Result<String, tonic::Status> {
        let mut config = self.e.ctr_config(name, cmd);
        config.cdi_devices = vec![CdiDevice {
            name: format!("example.com/hooks={device}"),
        }];
        config
            .annotations
            .insert("hooks.test/annotation".into(), "passed".into());
        let pod = self.pod.clone();
        self.e.create(&pod, "hooks", config).await
    }

    async fn sh(&mut self, id: &str, script: &str) -> Result<String> {
        let out = self
            .e
            .rt
            .exec_sync(ExecSyncRequest {
                container_id: id.to_owned(),
                cmd: vec!["sh".into(), "-c".into(), script.into()],
                timeout: 10,
            })
            .await?
            .into_inner();
        Ok(String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr))
    }

    async fn containers(&mut self) -> Result<usize> {
        Ok(self
            .e
            .rt
            .list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers
            .len())
    }

    /// What a failed create could leave: container directories, mounts, cgroups.
    fn leftovers(&self) -> (usize, usize, Vec<PathBuf>) {
        let count = |p: PathBuf| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
        let dirs =
            count(self.e.d.root().join("containers")) + count(self.e.d.state().join("containers"));
        let mounts = corral_tests::cleanup::mounts_under(self.e.d.dir()).len();
        let root = self.e.d.cgroup_root().trim_start_matches('/').to_owned();
        let mut cgroups = Vec::new();
        for c in ["", "memory", "pids"] {
            dirs_under(
                &Path::new("/sys/fs/cgroup").join(c).join(&root),
                &mut cgroups,
            );
        }
        // A pod's spare intermediate (made again a second after a create used it) is the
        // pod's, not what a create left.
        cgroups.retain(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("corral-spare-"))
        });
        (dirs, mounts, cgroups)
    }
}

fn dirs_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
            dirs_under(&e.path(), out);
        }
    }
}

async fn hooks_env() -> Result<Hooks> {
    let dir = tempfile::Builder::new().prefix("corral-hooks-").tempdir()?;
    for d in ["cdi", "out", "shared"] {
        std::fs::create_dir(dir.path().join(d))?;
    }
    let opts = DaemonOptions {
        runtime_config: format!("cdi_spec_dirs = [{:?}]", dir.path().join("cdi")),
        ..Default::default()
    };
    let mut e = env_with(opts).await?;
    let pod = e.run_pod("hooks").await?;
    Ok(Hooks { e, dir, pod })
}

fn json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("{}: {text:?}", path.display()))
}

fn hook(name: &str, path: &str, args: &[&str], env: &[String], timeout: Option<u32>) -> String {
    let t = timeout
        .map(|t| format!(r#","timeout":{t}"#))
        .unwrap_or_default();
    format!(
        r#"{{"hookName":"{name}","path":"{path}","args":{},"env":{}{t}}}"#,
        serde_json::to_string(args).unwrap_or_default(),
        serde_json::to_string(env).unwrap_or_default()
    )
}

fn ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdi_hooks_run_at_their_lifecycle_points_with_the_state_on_stdin() -> Result<()> {
    let mut h = hooks_env().await?;
    let out = h.path("out");
    let env = vec![
        format!("OUT={}", out.display()),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    ];
    // Each records its stdin, its args, its environment and its namespaces.
    let record = |kind: &str| {
        format!(
            "cat > \"$OUT/{kind}.json\"; echo \"$*\" > \"$OUT/{kind}.args\"; env > \"$OUT/{kind}.env\"\n\
             readlink /proc/self/ns/mnt > \"$OUT/{kind}.mnt\"; readlink /proc/self/ns/net > \"$OUT/{kind}.net\""
        )
    };
    let runtime = h.script("create-runtime.sh", &record("createRuntime"))?;
    // In the container's mount namespace before pivot_root: the rootfs's /shared is the
    // device's mount there, so the file lands in the host directory and the container sees
    // it; run on the host it would land under the mount point, hidden.
    let container = h.script(
        "create-container.sh",
        &format!(
            "{}\ntest -e \"$OUT/createRuntime.json\" && echo after-createRuntime > \"$OUT/order\"\n\
             bundle=$(sed 's/.*\"bundle\":\"\\([^\"]*\\)\".*/\\1/' \"$OUT/createContainer.json\")\n\
             echo from-createContainer > \"$bundle/rootfs/shared/made-by-hook\"",
            record("createContainer")
        ),
    )?;
    // startContainer's path resolves in the container: the script is on the shared mount.
    h.script(
        "shared/start.sh",
        "cat > /startContainer.json; readlink /proc/self/ns/mnt > /startContainer.mnt",
    )?;
    let poststart = h.script("poststart.sh", &record("poststart"))?;
    let poststop = h.script("poststop.sh", &record("poststop"))?;
    let mount = format!(
        r#"{{"hostPath":"{}","containerPath":"/shared","options":["rw"]}}"#,
        h.path("shared").display()
    );
    let hooks = [
        hook(
            "createRuntime",
            &runtime,
            &["create-runtime.sh", "one", "two"],
            &env,
            Some(10),
        ),
        hook("createContainer", &container, &[], &env, Some(10)),
        hook("startContainer", "/shared/start.sh", &[], &[], Some(10)),
        hook("poststart", &poststart, &[], &env, None),
        hook("poststop", &poststop, &[], &env, Some(10)),
    ]
    .join(",");
    h.device("all", &hooks, &mount)?;

    // The container's process sees what startContainer made before it ran.
    let cmd = [
        "sh",
        "-c",
        "cp /startContainer.json /seen-at-start 2>/dev/null; sleep 1000",
    ];
    let id = h.create("hooked", "all", &cmd).await?;
    let rt = json(&out.join("createRuntime.json"))?;
    let cc = json(&out.join("createContainer.json"))?;
    for (state, status) in [(&rt, "creating"), (&cc, "creating")] {
        assert_eq!(state["id"], id.as_str(), "{state}");
        assert_eq!(state["status"], status, "{state}");
        assert!(
            state["ociVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with('1')),
            "{state}"
        );
        assert!(
            state["bundle"].as_str().is_some_and(|b| b.ends_with(&id)),
            "{state}"
        );
        assert_eq!(
            state["annotations"]["hooks.test/annotation"], "passed",
            "{state}"
        );
    }
    let host_pid = rt["pid"]
        .as_i64()
        .context("createRuntime state has no pid")?;
    assert!(host_pid > 1, "{rt}");
    assert!(cc["pid"].as_i64().is_some_and(|p| p > 0), "{cc}");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    assert_eq!(read("createRuntime.args").trim(), "one two");
    assert_eq!(read("order").trim(), "after-createRuntime");
    // Exactly the hook's env (the shell adds PWD, SHLVL, _).
    let env_out = read("createRuntime.env");
    assert!(
        env_out.contains(&format!("OUT={}", out.display())),
        "{env_out}"
    );
    assert!(
        !env_out.contains("RUST") && !env_out.contains("CARGO"),
        "{env_out}"
    );
    // createRuntime in the runtime's namespaces, createContainer in the container's.
    assert_eq!(read("createRuntime.net").trim(), ns("net"));
    assert_ne!(read("createContainer.net").trim(), ns("net"));
    assert_ne!(
        read("createContainer.mnt").trim(),
        read("createRuntime.mnt").trim()
    );
    assert!(
        !out.join("poststart.json").exists(),
        "poststart ran at create"
    );
    assert!(
        !out.join("poststop.json").exists(),
        "poststop ran at create"
    );
    assert_eq!(
        std::fs::read_to_string(h.path("shared/made-by-hook"))?.trim(),
        "from-createContainer"
    );

    h.e.rt
        .start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
    let ps = json(&out.join("poststart.json"))?;
    assert_eq!(ps["status"], "running", "{ps}");
    assert_eq!(ps["pid"].as_i64(), Some(host_pid), "{ps}");
    let inside = h
        .sh(
            &id,
            "cat /shared/made-by-hook; echo; cat /seen-at-start; echo; \
             echo mnt=$(readlink /proc/self/ns/mnt) net=$(readlink /proc/self/ns/net); \
             echo start-mnt=$(cat /startContainer.mnt)",
        )
        .await?;
    assert!(inside.contains("from-createContainer"), "{inside}");
    let mnt = format!("mnt={}", read("createContainer.mnt").trim());
    let net = format!("net={}", read("createContainer.net").trim());
    assert!(
        inside.contains(&mnt) && inside.contains(&net),
        "{inside} vs {mnt} {net}"
    );
    assert!(inside.contains(&format!("start-{mnt}")), "{inside}");
    let start_state: serde_json::Value = inside
        .lines()
        .find(|l| l.contains("\"status\""))
        .map(serde_json::from_str)
        .context(format!(
            "the process did not see startContainer's state: {inside}"
        ))??;
    assert_eq!(start_state["status"], "created", "{start_state}");
    assert_eq!(start_state["id"], id.as_str(), "{start_state}");
    assert!(
        !out.join("poststop.json").exists(),
        "poststop ran before removal"
    );

    h.e.rt
        .remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await?;
    let stop = json(&out.join("poststop.json"))?;
    assert_eq!(stop["status"], "stopped", "{stop}");
    assert_eq!(stop["id"], id.as_str(), "{stop}");
    assert!(stop.get("pid").is_none(), "{stop}");
    assert_eq!(read("poststop.net").trim(), ns("net"));

    let pod = h.pod.clone();
    h.e.remove_pod(&pod).await?;
    h.e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_hook_fails_create_and_leaves_nothing() -> Result<()> {
    let mut h = hooks_env().await?;
    let out = h.path("out");
    let env = vec![
        format!("OUT={}", out.display()),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    ];
    let fails = h.script("fails.sh", "echo boom from the hook >&2; exit 3")?;
    let poststop = h.script("poststop.sh", "cat > \"$OUT/poststop.json\"")?;
    h.device(
        "fails",
        &[
            hook("createContainer", &fails, &[], &env, Some(10)),
            hook("poststop", &poststop, &[], &env, Some(10)),
        ]
        .join(","),
        "",
    )?;
    // Makes a grandchild, then outlives its timeout: both are killed.
    let marker = "37.25";
    let slow = h.script(
        "slow.sh",
        &format!("sleep {marker} & sleep {marker}; echo finished > \"$OUT/slow.finished\""),
    )?;
    h.device(
        "slow",
        &hook("createRuntime", &slow, &[], &env, Some(1)),
        "",
    )?;
    // The pod's cgroup is made with its first container: one runs before the baseline.
    let pod = h.pod.clone();
    let first =
        h.e.start(&pod, "hooks", "first", &["sleep", "1000"])
            .await?;
    let (count, left) = (h.containers().await?, h.leftovers());

    let err = h
        .create("fails", "fails", &["sleep", "1000"])
        .await
        .expect_err("a failing createContainer hook must fail CreateContainer");
    let want = format!("createContainer hook {fails} failed: exited with status 3");
    assert!(err.message().contains(&want), "{}", err.message());
    assert!(
        err.message().contains("boom from the hook"),
        "{}",
        err.message()
    );
    // The lifecycle's delete ran: poststop got the stopped state.
    let stop = json(&out.join("poststop.json"))?;
    assert_eq!(stop["status"], "stopped", "{stop}");
    assert_eq!(
        h.containers().await?,
        count,
        "a failed create left a container"
    );
    assert_eq!(
        h.leftovers(),
        left,
        "(container dirs, mounts, cgroups) left behind"
    );

    let t0 = Instant::now();
    let err = h
        .create("slow", "slow", &["sleep", "1000"])
        .await
        .expect_err("a hook over its timeout must fail CreateContainer");
    let took = t0.elapsed();
    let want = format!("createRuntime hook {slow} failed: killed after its timeout of 1 s");
    assert!(err.message().contains(&want), "{}", err.message());
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let sleepers = || {
        std::fs::read_dir("/proc")
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        std::fs::read(e.path().join("cmdline"))
                            .is_ok_and(|c| c == format!("sleep\0{marker}\0").as_bytes())
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(sleepers(), 0, "the hook's processes outlived its timeout");
    assert_eq!(h.containers().await?, count);
    assert_eq!(
        h.leftovers(),
        left,
        "(container dirs, mounts, cgroups) left behind"
    );

    // The pod still works.
    assert!(h.sh(&first, "echo alive").await?.contains("alive"));
    h.e.remove_pod(&pod).await?;
    h.e.assert_clean();
    assert!(!out.join("slow.finished").exists());
    Ok(())
}
