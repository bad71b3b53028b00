//! Stats RPCs: thin handlers over [`crate::stats::Stats`]. The `Stream*` variants send the same
//! records as the `List*` calls, in batches (`cri::batch`).

use corral_cri_api::v1::{
    ContainerStatsRequest, ContainerStatsResponse, ListContainerStatsRequest,
    ListContainerStatsResponse, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse,
    PodSandboxStatsRequest, PodSandboxStatsResponse, StreamContainerStatsRequest,
    StreamContainerStatsResponse, StreamPodSandboxStatsRequest, StreamPodSandboxStatsResponse,
};
use tonic::Status;

use corral_cri_api::v1::{
    ListMetricDescriptorsResponse, ListPodSandboxMetricsResponse, PodSandboxMetrics,
    StreamPodSandboxMetricsResponse,
};

use super::batch::{self, BatchStream};
use super::runtime::RuntimeApi;
use crate::status::pod_status;

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
    ) -> BatchStream<StreamContainerStatsResponse> {
        let all = self.stats.containers(req.filter.as_ref()).await;
        batch::stream(all, |container_stats| StreamContainerStatsResponse {
            container_stats,
        })
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
    ) -> BatchStream<StreamPodSandboxStatsResponse> {
        let all = self.stats.sandboxes(req.filter.as_ref()).await;
        batch::stream(all, |pod_sandbox_stats| StreamPodSandboxStatsResponse {
            pod_sandbox_stats,
        })
    }

    pub(super) fn do_list_metric_descriptors(&self) -> ListMetricDescriptorsResponse {
        ListMetricDescriptorsResponse {
            descriptors: crate::cadvisor::descriptors(),
        }
    }

    async fn pod_metrics(&self) -> Vec<PodSandboxMetrics> {
        let stats = self.stats.sandboxes(None).await;
        stats.iter().map(crate::cadvisor::pod_metrics).collect()
    }

    pub(super) async fn do_list_pod_sandbox_metrics(&self) -> ListPodSandboxMetricsResponse {
        ListPodSandboxMetricsResponse {
            pod_metrics: self.pod_metrics().await,
        }
    }

    pub(super) async fn do_stream_pod_sandbox_metrics(
        &self,
    ) -> BatchStream<StreamPodSandboxMetricsResponse> {
        batch::stream(self.pod_metrics().await, |pod_sandbox_metrics| {
            StreamPodSandboxMetricsResponse {
                pod_sandbox_metrics,
            }
        })
    }
}
