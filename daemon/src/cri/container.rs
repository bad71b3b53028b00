//! Container RPCs: thin handlers over [`crate::pods::Pods`].

use corral_cri_api::v1::{
    ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest,
    CreateContainerResponse, ExecSyncRequest, ExecSyncResponse, ListContainersRequest,
    ListContainersResponse, RemoveContainerRequest, RemoveContainerResponse,
    ReopenContainerLogRequest, ReopenContainerLogResponse, StartContainerRequest,
    StartContainerResponse, StopContainerRequest, StopContainerResponse, StreamContainersRequest,
    StreamContainersResponse, UpdateContainerResourcesRequest, UpdateContainerResourcesResponse,
};
use tonic::Status;

use super::batch::{self, BatchStream};
use super::runtime::RuntimeApi;
use crate::pods::view;
use crate::status::pod_status;

impl RuntimeApi {
    pub(super) async fn do_create_container(
        &self,
        req: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("CreateContainer: config is missing"))?;
        super::limits::check_container_config(&config)?;
        let id = self
            .pods
            .create_container(&req.pod_sandbox_id, config)
            .await
            .map_err(pod_status)?;
        Ok(CreateContainerResponse { container_id: id })
    }

    pub(super) async fn do_start_container(
        &self,
        req: StartContainerRequest,
    ) -> Result<StartContainerResponse, Status> {
        self.pods
            .start_container(&req.container_id)
            .await
            .map_err(pod_status)?;
        Ok(StartContainerResponse {})
    }

    pub(super) async fn do_stop_container(
        &self,
        req: StopContainerRequest,
    ) -> Result<StopContainerResponse, Status> {
        self.pods
            .stop_container(&req.container_id, req.timeout)
            .await
            .map_err(pod_status)?;
        Ok(StopContainerResponse {})
    }

    pub(super) async fn do_remove_container(
        &self,
        req: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse, Status> {
        self.pods
            .remove_container(&req.container_id)
            .await
            .map_err(pod_status)?;
        Ok(RemoveContainerResponse {})
    }

    pub(super) fn do_list_containers(
        &self,
        req: ListContainersRequest,
    ) -> Result<ListContainersResponse, Status> {
        let containers = self.pods.list_containers(req.filter.as_ref());
        let count = containers.len();
        batch::fits(
            "ListContainers",
            "containers",
            count,
            "StreamContainers",
            ListContainersResponse { containers },
        )
    }

    pub(super) fn do_stream_containers(
        &self,
        req: StreamContainersRequest,
    ) -> BatchStream<StreamContainersResponse> {
        let containers = self.pods.list_containers(req.filter.as_ref());
        batch::stream(containers, |containers| StreamContainersResponse {
            containers,
        })
    }

    pub(super) fn do_container_status(
        &self,
        req: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse, Status> {
        let ctr = self.pods.container(&req.container_id).map_err(pod_status)?;
        Ok(ContainerStatusResponse {
            status: Some(view::container_status(&ctr)),
            info: if req.verbose {
                view::container_info(&ctr)
            } else {
                Default::default()
            },
        })
    }

    pub(super) async fn do_exec_sync(
        &self,
        req: ExecSyncRequest,
    ) -> Result<ExecSyncResponse, Status> {
        let out = self
            .pods
            .exec_sync(&req.container_id, &req.cmd, req.timeout)
            .await
            .map_err(pod_status)?;
        Ok(ExecSyncResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
        })
    }

    pub(super) async fn do_reopen_container_log(
        &self,
        req: ReopenContainerLogRequest,
    ) -> Result<ReopenContainerLogResponse, Status> {
        self.pods
            .reopen_log(&req.container_id)
            .await
            .map_err(pod_status)?;
        Ok(ReopenContainerLogResponse {})
    }

    pub(super) async fn do_update_container_resources(
        &self,
        req: UpdateContainerResourcesRequest,
    ) -> Result<UpdateContainerResourcesResponse, Status> {
        let linux = req.linux.ok_or_else(|| {
            Status::invalid_argument("UpdateContainerResources: linux resources are missing")
        })?;
        self.pods
            .update_resources(&req.container_id, linux)
            .await
            .map_err(pod_status)?;
        Ok(UpdateContainerResourcesResponse {})
    }
}
