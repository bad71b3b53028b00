//! ExecSync, ReopenContainerLog, UpdateContainerResources.

use std::path::PathBuf;
use std::time::Duration;

use corral_cri_api::v1::{ContainerState, LinuxContainerResources};
use corral_shim::proto::{ExecRequest, Request, Response};
use oci_spec::runtime::{LinuxResources, Spec};

use super::model;
use super::{Container, PodError, Pods, Result};
use crate::spec;

/// What an ExecSync returned.
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl Pods {
    pub(super) fn running(&self, id: &str) -> Result<std::sync::Arc<Container>> {
        let ctr = self.container(id)?;
        if ctr.status().state() != ContainerState::ContainerRunning {
            return Err(PodError::FailedPrecondition(format!(
                "container {} is not running",
                ctr.meta.id
            )));
        }
        Ok(ctr)
    }

    pub(super) fn load_spec(ctr: &Container) -> Result<Spec> {
        let path = ctr.bundle.join("config.json");
        Spec::load(&path).map_err(|e| PodError::Corrupt(format!("{}: {e}", path.display())))
    }

    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout_secs: i64,
    ) -> Result<ExecOutput> {
        if cmd.is_empty() {
            return Err(PodError::InvalidArgument("ExecSync: cmd is empty".into()));
        }
        if timeout_secs < 0 {
            return Err(PodError::InvalidArgument(
                "ExecSync: timeout is negative".into(),
            ));
        }
        let ctr = self.running(id)?;
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        let spec = Self::load_spec(&ctr)?;
        let process = spec::exec_process(&spec, cmd, false)?;
        let process =
            serde_json::to_value(&process).map_err(|e| PodError::Internal(e.to_string()))?;
        let request = Request::Exec(ExecRequest {
            id: ctr.meta.id.clone(),
            process,
            timeout_ms: u64::try_from(timeout_secs)
                .unwrap_or(0)
                .saturating_mul(1000),
        });
        match sandbox.shim.call(&request).await? {
            Response::ExecDone {
                exit_code,
                stdout,
                stderr,
            } => Ok(ExecOutput {
                stdout,
                stderr,
                exit_code,
            }),
            other => Err(PodError::Shim(format!(
                "unexpected answer to Exec: {other:?}"
            ))),
        }
    }

    pub async fn reopen_log(&self, id: &str) -> Result<()> {
        let ctr = self.running(id)?;
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        let request = Request::ReopenLog {
            id: ctr.meta.id.clone(),
        };
        sandbox
            .shim
            .call_within(&request, Duration::from_secs(10))
            .await
            .map(|_| ())
    }

    pub async fn update_resources(
        &self,
        id: &str,
        resources: LinuxContainerResources,
    ) -> Result<()> {
        let ctr = self.container(id)?;
        let _op = ctr.op.lock().await;
        let s = ctr.status();
        if s.is_over() {
            return Err(PodError::FailedPrecondition(format!(
                "container {} is not running or created",
                ctr.meta.id
            )));
        }
        let oci: LinuxResources = spec::linux_resources(&resources)?;
        let path = PathBuf::from(&ctr.meta.cgroups_path);
        tokio::task::spawn_blocking(move || corral_runtime::cgroups::update(&path, &oci))
            .await
            .map_err(|e| PodError::Internal(e.to_string()))??;
        let encoded = model::encode_pb(&resources);
        self.update_status(&ctr, |s| s.resources = Some(encoded))
    }
}
