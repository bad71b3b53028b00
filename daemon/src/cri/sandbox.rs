//! Pod sandbox RPCs: thin handlers over [`crate::pods::Pods`].

use corral_cri_api::v1::{
    ListPodSandboxRequest, ListPodSandboxResponse, PodSandboxStatusRequest,
    PodSandboxStatusResponse, RemovePodSandboxRequest, RemovePodSandboxResponse,
    RunPodSandboxRequest, RunPodSandboxResponse, StopPodSandboxRequest, StopPodSandboxResponse,
    StreamPodSandboxesRequest, StreamPodSandboxesResponse,
};
use corral_fsutil::time::unix_nanos;
use tonic::Status;

use super::batch::{self, BatchStream};
use super::runtime::RuntimeApi;
use crate::pods::view;
use crate::status::pod_status;

impl RuntimeApi {
    pub(super) async fn do_run_pod_sandbox(
        &self,
        req: RunPodSandboxRequest,
    ) -> Result<RunPodSandboxResponse, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("RunPodSandbox: config is missing"))?;
        super::limits::check_sandbox_config(&config)?;
        let id = self
            .pods
            .run_sandbox(config, req.runtime_handler)
            .await
            .map_err(pod_status)?;
        Ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }

    pub(super) async fn do_stop_pod_sandbox(
        &self,
        req: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse, Status> {
        self.pods
            .stop_sandbox(&req.pod_sandbox_id)
            .await
            .map_err(pod_status)?;
        Ok(StopPodSandboxResponse {})
    }

    pub(super) async fn do_remove_pod_sandbox(
        &self,
        req: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, Status> {
        self.pods
            .remove_sandbox(&req.pod_sandbox_id)
            .await
            .map_err(pod_status)?;
        Ok(RemovePodSandboxResponse {})
    }

    pub(super) fn do_pod_sandbox_status(
        &self,
        req: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse, Status> {
        let sb = self.pods.sandbox(&req.pod_sandbox_id).map_err(pod_status)?;
        Ok(PodSandboxStatusResponse {
            status: Some(view::sandbox_status(&sb)),
            info: if req.verbose {
                view::sandbox_info(&sb)
            } else {
                Default::default()
            },
            containers_statuses: Vec::new(),
            timestamp: unix_nanos(std::time::SystemTime::now()),
        })
    }

    pub(super) fn do_list_pod_sandbox(
        &self,
        req: ListPodSandboxRequest,
    ) -> Result<ListPodSandboxResponse, Status> {
        let items = self.pods.list_sandboxes(req.filter.as_ref());
        let count = items.len();
        batch::fits(
            "ListPodSandbox",
            "pod sandboxes",
            count,
            "StreamPodSandboxes",
            ListPodSandboxResponse { items },
        )
    }

    pub(super) fn do_stream_pod_sandboxes(
        &self,
        req: StreamPodSandboxesRequest,
    ) -> BatchStream<StreamPodSandboxesResponse> {
        let items = self.pods.list_sandboxes(req.filter.as_ref());
        batch::stream(items, |pod_sandboxes| StreamPodSandboxesResponse {
            pod_sandboxes,
        })
    }
}
