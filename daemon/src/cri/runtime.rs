//! `runtime.v1.RuntimeService`: Version, Status, UpdateRuntimeConfig and RuntimeConfig here; pod
//! sandbox, container and streaming calls delegate to `cri::sandbox`, `cri::container` and
//! `cri::streaming`, stats to `cri::stats`, events to `cri::events`, checkpoints to
//! `cri::checkpoint`; the metrics calls to `cri::stats` too. UpdatePodSandboxResources answers
//! UNIMPLEMENTED through the generated default.

use std::collections::HashMap;
use std::sync::Arc;

use corral_cri_api::v1::runtime_service_server::RuntimeService;
use corral_cri_api::v1::{
    AttachRequest, AttachResponse, CheckpointContainerRequest, CheckpointContainerResponse,
    ExecRequest, ExecResponse, GetEventsRequest, PortForwardRequest, PortForwardResponse,
};
use corral_cri_api::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigRequest,
    RuntimeConfigResponse, RuntimeStatus, StatusRequest, StatusResponse, VersionRequest,
    VersionResponse,
};
use corral_cri_api::v1::{
    ContainerStatsRequest, ContainerStatsResponse, ListContainerStatsRequest,
    ListContainerStatsResponse, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse,
    PodSandboxStatsRequest, PodSandboxStatsResponse, StreamContainerStatsRequest,
    StreamContainerStatsResponse, StreamPodSandboxStatsRequest, StreamPodSandboxStatsResponse,
};
use corral_cri_api::v1::{
    ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest,
    CreateContainerResponse, ExecSyncRequest, ExecSyncResponse, ListContainersRequest,
    ListContainersResponse, ListPodSandboxRequest, ListPodSandboxResponse, PodSandboxStatusRequest,
    PodSandboxStatusResponse, RemoveContainerRequest, RemoveContainerResponse,
    RemovePodSandboxRequest, RemovePodSandboxResponse, ReopenContainerLogRequest,
    ReopenContainerLogResponse, RunPodSandboxRequest, RunPodSandboxResponse, StartContainerRequest,
    StartContainerResponse, StopContainerRequest, StopContainerResponse, StopPodSandboxRequest,
    StopPodSandboxResponse, StreamContainersRequest, StreamContainersResponse,
    StreamPodSandboxesRequest, StreamPodSandboxesResponse, UpdateContainerResourcesRequest,
    UpdateContainerResourcesResponse, UpdatePodSandboxResourcesRequest,
    UpdatePodSandboxResourcesResponse, UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse,
};
use corral_cri_api::v1::{
    ListMetricDescriptorsRequest, ListMetricDescriptorsResponse, ListPodSandboxMetricsRequest,
    ListPodSandboxMetricsResponse, StreamPodSandboxMetricsRequest, StreamPodSandboxMetricsResponse,
};
use tonic::{Request, Response, Status};

use corral_streaming::StreamingServer;

use super::batch::BatchStream;
use crate::config::Config;
use crate::event_bus::EventBus;
use crate::handlers::Features;
use crate::network::Network;
use crate::pods::Pods;

/// The CRI API version this runtime speaks.
pub const RUNTIME_API_VERSION: &str = "v1";
/// The kubelet's "version" of the CRI protocol itself.
const KUBE_API_VERSION: &str = "0.1.0";

pub struct RuntimeApi {
    config: Arc<Config>,
    pub(super) pods: Arc<Pods>,
    network: Arc<Network>,
    pub(super) streaming: Arc<StreamingServer>,
    pub(super) stats: crate::stats::Stats,
    pub(super) events: Arc<EventBus>,
    /// `criu check` of the configured CRIU, kept (CheckpointContainer, `Status`).
    pub(super) criu: crate::checkpoint::Prober,
}

impl RuntimeApi {
    pub fn new(
        config: Arc<Config>,
        pods: Arc<Pods>,
        network: Arc<Network>,
        streaming: Arc<StreamingServer>,
        events: Arc<EventBus>,
    ) -> RuntimeApi {
        RuntimeApi {
            criu: crate::checkpoint::Prober::new(config.runtime.criu()),
            config,
            stats: crate::stats::Stats::new(Arc::clone(&pods)),
            pods,
            network,
            streaming,
            events,
        }
    }
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> RuntimeCondition {
    RuntimeCondition {
        r#type: kind.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

#[tonic::async_trait]
impl RuntimeService for RuntimeApi {
    async fn version(
        &self,
        _req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: KUBE_API_VERSION.to_owned(),
            runtime_name: "corral".to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            runtime_api_version: RUNTIME_API_VERSION.to_owned(),
        }))
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let verbose = req.into_inner().verbose;
        let network = self.network.ready();
        let network_condition = match &network {
            Ok(_) => condition("NetworkReady", true, "", ""),
            Err(why) => condition(
                "NetworkReady",
                false,
                "NetworkPluginNotReady",
                &format!("Network plugin returns error: {why}"),
            ),
        };
        let conditions = vec![condition("RuntimeReady", true, "", ""), network_condition];
        let pods = Arc::clone(&self.pods);
        let user_namespaces = tokio::task::spawn_blocking(move || pods.userns_supported())
            .await
            .unwrap_or(false);
        let mut info = HashMap::new();
        if verbose {
            let config = serde_json::to_string(&*self.config)
                .map_err(|e| Status::internal(format!("encode config: {e}")))?;
            info.insert("config".to_owned(), config);
            if let Ok(chosen) = &network {
                info.insert("cniconfig".to_owned(), chosen.describe().to_string());
            }
            let criu = super::info::CriuInfo {
                program: self.criu.program(),
                usable: self.criu.probe().await == crate::checkpoint::Criu::Usable,
            };
            info.extend(super::info::verbose_info(
                &self.config,
                &network,
                user_namespaces,
                criu,
            ));
        }
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus { conditions }),
            info,
            runtime_handlers: self.pods.handlers().status(Features {
                recursive_read_only_mounts: corral_runtime::has_mount_setattr(),
                user_namespaces,
            }),
            features: Some(super::info::runtime_features()),
        }))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        self.do_exec(req.into_inner()).await.map(Response::new)
    }

    async fn attach(
        &self,
        req: Request<AttachRequest>,
    ) -> Result<Response<AttachResponse>, Status> {
        self.do_attach(req.into_inner()).await.map(Response::new)
    }

    async fn port_forward(
        &self,
        req: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        self.do_port_forward(req.into_inner())
            .await
            .map(Response::new)
    }

    /// Only the pod CIDR is configurable this way; it applies to the built-in network.
    async fn update_runtime_config(
        &self,
        req: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        let cidr = req
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        self.network
            .set_pod_cidr(&cidr)
            .map_err(|e| crate::status::pod_status(e.into()))?;
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    async fn runtime_config(
        &self,
        _req: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        Ok(Response::new(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        self.do_run_pod_sandbox(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        self.do_stop_pod_sandbox(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        self.do_remove_pod_sandbox(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        self.do_pod_sandbox_status(req.into_inner())
            .map(Response::new)
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        self.do_list_pod_sandbox(req.into_inner())
            .map(Response::new)
    }

    async fn stream_pod_sandboxes(
        &self,
        req: Request<StreamPodSandboxesRequest>,
    ) -> Result<Response<BatchStream<StreamPodSandboxesResponse>>, Status> {
        Ok(Response::new(
            self.do_stream_pod_sandboxes(req.into_inner()),
        ))
    }

    async fn create_container(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        self.do_create_container(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn start_container(
        &self,
        req: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        self.do_start_container(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn stop_container(
        &self,
        req: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        self.do_stop_container(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn remove_container(
        &self,
        req: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        self.do_remove_container(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_containers(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        self.do_list_containers(req.into_inner()).map(Response::new)
    }

    async fn stream_containers(
        &self,
        req: Request<StreamContainersRequest>,
    ) -> Result<Response<BatchStream<StreamContainersResponse>>, Status> {
        Ok(Response::new(self.do_stream_containers(req.into_inner())))
    }

    async fn container_stats(
        &self,
        req: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        self.do_container_stats(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_container_stats(
        &self,
        req: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        Ok(Response::new(
            self.do_list_container_stats(req.into_inner()).await,
        ))
    }

    async fn stream_container_stats(
        &self,
        req: Request<StreamContainerStatsRequest>,
    ) -> Result<Response<BatchStream<StreamContainerStatsResponse>>, Status> {
        Ok(Response::new(
            self.do_stream_container_stats(req.into_inner()).await,
        ))
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<PodSandboxStatsRequest>,
    ) -> Result<Response<PodSandboxStatsResponse>, Status> {
        self.do_pod_sandbox_stats(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<ListPodSandboxStatsRequest>,
    ) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
        Ok(Response::new(
            self.do_list_pod_sandbox_stats(req.into_inner()).await,
        ))
    }

    async fn stream_pod_sandbox_stats(
        &self,
        req: Request<StreamPodSandboxStatsRequest>,
    ) -> Result<Response<BatchStream<StreamPodSandboxStatsResponse>>, Status> {
        Ok(Response::new(
            self.do_stream_pod_sandbox_stats(req.into_inner()).await,
        ))
    }

    async fn list_metric_descriptors(
        &self,
        _req: Request<ListMetricDescriptorsRequest>,
    ) -> Result<Response<ListMetricDescriptorsResponse>, Status> {
        Ok(Response::new(self.do_list_metric_descriptors()))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _req: Request<ListPodSandboxMetricsRequest>,
    ) -> Result<Response<ListPodSandboxMetricsResponse>, Status> {
        Ok(Response::new(self.do_list_pod_sandbox_metrics().await))
    }

    async fn stream_pod_sandbox_metrics(
        &self,
        _req: Request<StreamPodSandboxMetricsRequest>,
    ) -> Result<Response<BatchStream<StreamPodSandboxMetricsResponse>>, Status> {
        Ok(Response::new(self.do_stream_pod_sandbox_metrics().await))
    }

    async fn container_status(
        &self,
        req: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        self.do_container_status(req.into_inner())
            .map(Response::new)
    }

    async fn exec_sync(
        &self,
        req: Request<ExecSyncRequest>,
    ) -> Result<Response<ExecSyncResponse>, Status> {
        self.do_exec_sync(req.into_inner()).await.map(Response::new)
    }

    async fn reopen_container_log(
        &self,
        req: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        self.do_reopen_container_log(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn checkpoint_container(
        &self,
        req: Request<CheckpointContainerRequest>,
    ) -> Result<Response<CheckpointContainerResponse>, Status> {
        self.do_checkpoint_container(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_container_events(
        &self,
        req: Request<GetEventsRequest>,
    ) -> Result<Response<super::events::EventStream>, Status> {
        Ok(Response::new(
            self.do_get_container_events(req.into_inner()),
        ))
    }

    async fn update_pod_sandbox_resources(
        &self,
        req: Request<UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<UpdatePodSandboxResourcesResponse>, Status> {
        let req = req.into_inner();
        self.pods
            .update_sandbox_resources(&req.pod_sandbox_id, req.overhead, req.resources)
            .await
            .map_err(crate::status::pod_status)?;
        Ok(Response::new(UpdatePodSandboxResourcesResponse {}))
    }

    async fn update_container_resources(
        &self,
        req: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        self.do_update_container_resources(req.into_inner())
            .await
            .map(Response::new)
    }
}
