//! Stats RPCs: thin handlers over [`crate::stats::Stats`]. The `Stream*` variants send the same
//! records as the `List*` calls, in batches that stay far below the gRPC message limit.

use std::pin::Pin;

use corral_cri_api::v1::{
    ContainerStatsRequest, ContainerStatsResponse, ListContainerStatsRequest,
    ListContainerStatsResponse, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse,
    PodSandboxStatsRequest, PodSandboxStatsResponse, StreamContainerStatsRequest,
    StreamContainerStatsResponse, StreamPodSandboxStatsRequest, StreamPodSandboxStatsResponse,
};
use tonic::Status;

use super::runtime::RuntimeApi;
use crate::status::pod_status;

/// Records per message of the `Stream*` stats calls.
const BATCH: usize = 500;

pub type ContainerStatsStream =
    Pin<Box<dyn futures::Stream<Item = Result<StreamContainerStatsResponse, Status>> + Send>>;
pub type PodSandboxStatsStream =
    Pin<Box<dyn futures::Stream<Item = Result<StreamPodSandboxStatsResponse, Status>> + Send>>;

fn batches<T: Clone, R>(items: Vec<T>, wrap: impl Fn(Vec<T>) -> R) -> Vec<Result<R, Status>> {
    items.chunks(BATCH).map(|c| Ok(wrap(c.to_vec()))).collect()
}

impl RuntimeApi {
    pub(super) async fn do_container_stats(
        &self,
        req: ContainerStatsRequest,
    ) -> Result<ContainerStatsResponse, Status> {
        if req.container_id.is_empty() {
            return Err(Status::invalid_argument(
                "ContainerStats: container_id is empty",
            ));
        }
        let stats = self
            .stats
            .container(&req.container_id)
            .await
            .map_err(pod_status)?;
        Ok(ContainerStatsResponse { stats: Some(stats) })
    }

    pub(super) async fn do_list_container_stats(
        &self,
        req: ListContainerStatsRequest,
    ) -> ListContainerStatsResponse {
        ListContainerStatsResponse {
            stats: self.stats.containers(req.filter.as_ref()).await,
        }
    }

    pub(super) async fn do_stream_container_stats(
        &self,
        req: StreamContainerStatsRequest,
    ) -> ContainerStatsStream {
        let all = self.stats.containers(req.filter.as_ref()).await;
        let out = batches(all, |container_stats| StreamContainerStatsResponse {
            container_stats,
        });
        Box::pin(futures::stream::iter(out))
    }

    pub(super) async fn do_pod_sandbox_stats(
        &self,
        req: PodSandboxStatsRequest,
    ) -> Result<PodSandboxStatsResponse, Status> {
        if req.pod_sandbox_id.is_empty() {
            return Err(Status::invalid_argument(
                "PodSandboxStats: pod_sandbox_id is empty",
            ));
        }
        let stats = self
            .stats
            .sandbox(&req.pod_sandbox_id)
            .await
            .map_err(pod_status)?;
        Ok(PodSandboxStatsResponse { stats: Some(stats) })
    }

    pub(super) async fn do_list_pod_sandbox_stats(
        &self,
        req: ListPodSandboxStatsRequest,
    ) -> ListPodSandboxStatsResponse {
        ListPodSandboxStatsResponse {
            stats: self.stats.sandboxes(req.filter.as_ref()).await,
        }
    }

    pub(super) async fn do_stream_pod_sandbox_stats(
        &self,
        req: StreamPodSandboxStatsRequest,
    ) -> PodSandboxStatsStream {
        let all = self.stats.sandboxes(req.filter.as_ref()).await;
        let out = batches(all, |pod_sandbox_stats| StreamPodSandboxStatsResponse {
            pod_sandbox_stats,
        });
        Box::pin(futures::stream::iter(out))
    }
}
