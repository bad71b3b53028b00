//! CDI devices: `CDI_devices` and `cdi.k8s.io/*` annotations resolved against spec files (YAML
//! and JSON) in the daemon's spec directories, read afresh for each container.

use crate::common;

use anyhow::Result;
use common::pod::{PodEnv, env_with};
use corral_cri_api::v1::{CdiDevice, ExecSyncRequest, ListContainersRequest};
use corral_tests::daemon::DaemonOptions;

struct Cdi {
    e: PodEnv,
    specs: tempfile::TempDir,
    pod: String,
}

async fn cdi_env() -> Result<Cdi> {
    let specs = tempfile::Builder::new().prefix("corral-cdi-").tempdir()?;
    for d in ["etc", "run", "host"] {
        std::fs::create_dir(specs.path().join(d))?;
    }
    std::fs::write(specs.path().join("host/hello"), "from the host\n")?;
    let opts = DaemonOptions {
        runtime_config: format!(
            "cdi_spec_dirs = [{:?}, {:?}]",
            specs.path().join("etc"),
            specs.path().join("run")
        ),
        ..Default::default()
    };
    let mut e = env_with(opts).await?;
    let pod = e.run_pod("cdi").await?;
    Ok(Cdi { e, specs, pod })
}

impl Cdi {
    fn write(&self, rel: &str, body: &str) -> Result<()> {
        Ok(std::fs::write(self.specs.path().join(rel), body)?)
    }

    /// Starts a container naming `devices` (and `annotations`) and returns its id, or the
    /// CreateContainer error.
    async fn start(
        &mut self,
        name: &str,
        devices: &[&str],
        annotations: &[(&str, &str)],
    ) -> Result<String, tonic::Status> {
        let mut config = self.e.ctr_config(name, &["sleep", "1000"]);
        config.cdi_devices = devices
            .iter()
            .map(|d| CdiDevice {
                name: d.to_string(),
            })
            .collect();
        config.annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let pod = self.pod.clone();
        let id = self.e.create(&pod, "cdi", config).await?;
        self.e
            .rt
            .start_container(corral_cri_api::v1::StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        Ok(id)
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdi_devices_bring_their_nodes_mounts_and_env_from_spec_files() -> Result<()> {
    let mut c = cdi_env().await?;
    // A fake vendor device backed by the host's /dev/loop-control (not one of the default devices,
    // so only the device's cgroup rule lets the container open it).
    c.write(
        "etc/fake.yaml",
        &format!(
            "cdiVersion: 0.6.0\nkind: example.com/fake\ncontainerEdits:\n  env: [FAKE_SPEC=1]\ndevices:\n- name: dev0\n  containerEdits:\n    env: [FAKE_DEVICE=dev0]\n    deviceNodes:\n    - path: /dev/fake0\n      hostPath: /dev/loop-control\n    mounts:\n    - hostPath: {}\n      containerPath: /opt/fake\n      options: [ro, nosuid, nodev]\n",
            c.specs.path().join("host").display()
        ),
    )?;
    let id = c
        .start("with-device", &["example.com/fake=dev0"], &[])
        .await?;
    let out = c
        .sh(
            &id,
            "exec 3<>/dev/fake0 && echo opened; cat /opt/fake/hello; echo \"env $FAKE_DEVICE $FAKE_SPEC\"; touch /opt/fake/x 2>/dev/null || echo read-only",
        )
        .await?;
    for want in ["opened", "from the host", "env dev0 1", "read-only"] {
        assert!(out.contains(want), "{want:?} not in {out:?}");
    }
    // A container without the device has no such node, and cannot make one it may open.
    let plain = c.start("without", &[], &[]).await?;
    let out = c
        .sh(
            &plain,
            "test -e /dev/fake0 || echo absent; mknod /dev/t c 10 237 && exec 3<>/dev/t && echo opened",
        )
        .await?;
    assert!(out.contains("absent") && !out.contains("opened"), "{out}");

    // A spec written now (JSON, in the higher-priority directory) is used without a restart,
    // through the annotation form too.
    c.write(
        "run/other.json",
        r#"{"cdiVersion":"0.5.0","kind":"example.com/other","devices":[{"name":"d1","containerEdits":{"env":["OTHER=d1"]}}]}"#,
    )?;
    let id = c
        .start(
            "annotated",
            &[],
            &[("cdi.k8s.io/test", "example.com/other=d1")],
        )
        .await?;
    let out = c.sh(&id, "echo \"other=$OTHER\"").await?;
    assert!(out.contains("other=d1"), "{out}");

    // Unknown vendor, class or device: INVALID_ARGUMENT naming what is missing, nothing made.
    let before =
        c.e.rt
            .list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers
            .len();
    for (name, want) in [
        ("nobody.com/fake=dev0", "no spec file in"),
        (
            "example.com/gpu=dev0",
            "has no class \"gpu\" (its classes: fake, other)",
        ),
        (
            "example.com/fake=dev9",
            "has no device \"dev9\" (its devices: dev0)",
        ),
        ("example.com/fake", "not a qualified CDI device name"),
    ] {
        let err = c.start("bad", &[name], &[]).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(want) && err.message().contains("CDI_devices"),
            "{name}: {}",
            err.message()
        );
    }
    let after =
        c.e.rt
            .list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers
            .len();
    assert_eq!(before, after, "a failed CreateContainer left a container");
    let pod = c.pod.clone();
    c.e.remove_pod(&pod).await?;
    c.e.assert_clean();
    Ok(())
}
