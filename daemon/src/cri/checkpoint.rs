//! CheckpointContainer: checks the request and the container, then whether CRIU can run here.
//! Where it cannot, FAILED_PRECONDITION says why; where it can, checkpointing itself is not
//! built yet (UNIMPLEMENTED).

use corral_cri_api::v1::{CheckpointContainerRequest, CheckpointContainerResponse, ContainerState};
use tonic::Status;

use super::runtime::RuntimeApi;
use crate::checkpoint::{self, Criu};
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
        let ctr = self.pods.container(&req.container_id).map_err(pod_status)?;
        if view::container_state(&ctr) != ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!(
                "CheckpointContainer: container {} is not running",
                ctr.meta.id
            )));
        }
        match checkpoint::criu::probe(std::path::Path::new("criu")).await {
            Criu::Unusable(why) => Err(Status::failed_precondition(format!(
                "CheckpointContainer: CRIU cannot checkpoint on this host: {why}"
            ))),
            Criu::Usable => Err(Status::unimplemented(
                "CheckpointContainer: CRIU works on this host, but Corral does not checkpoint containers yet",
            )),
        }
    }
}
