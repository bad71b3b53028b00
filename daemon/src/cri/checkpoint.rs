//! CheckpointContainer: checks the request, the container (running) and whether the
//! configured CRIU can run here (FAILED_PRECONDITION saying why not), then has
//! `Pods::checkpoint_container` write the archive. A pod on the built-in runtime cannot be
//! checkpointed (its shim answers FAILED_PRECONDITION); one on an OCI runtime handler can.

use std::path::Path;
use std::time::Duration;

use corral_cri_api::v1::{CheckpointContainerRequest, CheckpointContainerResponse, ContainerState};
use tonic::Status;

use super::runtime::RuntimeApi;
use crate::checkpoint::{Criu, DEFAULT_DUMP_TIMEOUT};
use crate::pods::view;
use crate::status::pod_status;

impl RuntimeApi {
    pub(super) async fn do_checkpoint_container(
        &self,
        req: CheckpointContainerRequest,
    ) -> Result<CheckpointContainerResponse, Status> {
        if req.container_id.is_empty() {
            return Err(Status::invalid_argument(
                "CheckpointContainer: container_id is empty",
            ));
        }
        if req.location.is_empty() {
            return Err(Status::invalid_argument(
                "CheckpointContainer: location is empty (the path of the archive to write)",
            ));
        }
        let location = Path::new(&req.location);
        if !location.is_absolute() || location.file_name().is_none() || req.location.contains('\0')
        {
            return Err(Status::invalid_argument(format!(
                "CheckpointContainer: location {:?} must be an absolute path naming a file",
                req.location
            )));
        }
        if let Some(parent) = location.parent()
            && !parent.is_dir()
        {
            return Err(Status::invalid_argument(format!(
                "CheckpointContainer: location {:?}: the directory {} does not exist",
                req.location,
                parent.display()
            )));
        }
        let timeout = match req.timeout {
            0 => DEFAULT_DUMP_TIMEOUT,
            t if t > 0 => Duration::from_secs(t.unsigned_abs()),
            t => {
                return Err(Status::invalid_argument(format!(
                    "CheckpointContainer: timeout {t} is negative (seconds; 0 for the default)"
                )));
            }
        };
        let ctr = self.pods.container(&req.container_id).map_err(pod_status)?;
        if view::container_state(&ctr) != ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!(
                "CheckpointContainer: container {} is not running",
                ctr.meta.id
            )));
        }
        if let Criu::Unusable(why) = self.criu.probe().await {
            return Err(Status::failed_precondition(format!(
                "CheckpointContainer: CRIU cannot checkpoint on this host: {why}"
            )));
        }
        self.pods
            .checkpoint_container(&ctr.meta.id, location, timeout)
            .await
            .map_err(|e| {
                let s = pod_status(e);
                Status::new(s.code(), format!("CheckpointContainer: {}", s.message()))
            })?;
        Ok(CheckpointContainerResponse {})
    }
}
