//! The pod manager's CRI client: the only way it reaches a runtime. [`Cri::new`] takes any
//! implementation of the CRI service traits (corrald passes its own `RuntimeService` and
//! `ImageService`, called in process: the same code paths a kubelet reaches over the socket,
//! without the encoding); [`Cri::remote`] takes a channel to any CRI socket (containerd's
//! included). Since this crate does not depend on the daemon, the compiler holds the pod
//! manager to the CRI.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use corral_cri_api::v1::image_service_client::ImageServiceClient;
use corral_cri_api::v1::image_service_server::ImageService;
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use corral_cri_api::v1::runtime_service_server::RuntimeService;
use corral_cri_api::v1::{
    AuthConfig, Container, ContainerConfig, ContainerFilter, ContainerStatus,
    ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest,
    CreateContainerResponse, ExecSyncRequest, ExecSyncResponse, ImageSpec, ImageStatusRequest,
    ImageStatusResponse, ListContainersRequest, ListContainersResponse, ListPodSandboxRequest,
    ListPodSandboxResponse, PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxStatus,
    PodSandboxStatusRequest, PodSandboxStatusResponse, PullImageRequest, PullImageResponse,
    RemoveContainerRequest, RemoveContainerResponse, RemovePodSandboxRequest,
    RemovePodSandboxResponse, ReopenContainerLogRequest, ReopenContainerLogResponse,
    RunPodSandboxRequest, RunPodSandboxResponse, StartContainerRequest, StartContainerResponse,
    StopContainerRequest, StopContainerResponse, StopPodSandboxRequest, StopPodSandboxResponse,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::translate::POD_UID_LABEL;

/// Declares an object-safe trait with the CRI calls the pod manager makes (the generated
/// service traits are not object-safe: their streaming calls have associated types), with an
/// impl for every implementation of the service trait and one for the service's client.
macro_rules! calls {
    ($(#[$doc:meta])* $name:ident: $service:ident, $client:ident
        { $($method:ident($req:ty) -> $resp:ty;)* }) => {
        $(#[$doc])*
        trait $name: Send + Sync + 'static {
            $(fn $method(&self, r: Request<$req>) -> Call<'_, $resp>;)*
        }
        impl<T: $service> $name for T {
            $(fn $method(&self, r: Request<$req>) -> Call<'_, $resp> {
                <T as $service>::$method(self, r)
            })*
        }
        impl $name for Remote<$client<Channel>> {
            $(fn $method(&self, r: Request<$req>) -> Call<'_, $resp> {
                let mut client = self.0.clone();
                Box::pin(async move { client.$method(r).await })
            })*
        }
    };
}

/// One call's answer to come.
type Call<'a, T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send + 'a>>;

/// A CRI client over a channel (a type of this crate, so its impls cannot overlap the
/// service traits' ones).
struct Remote<C>(C);

calls! {
    /// The `RuntimeService` calls the pod manager makes.
    RuntimeCalls: RuntimeService, RuntimeServiceClient {
        list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse;
        pod_sandbox_status(PodSandboxStatusRequest) -> PodSandboxStatusResponse;
        run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse;
        stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse;
        remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse;
        list_containers(ListContainersRequest) -> ListContainersResponse;
        reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse;
        container_status(ContainerStatusRequest) -> ContainerStatusResponse;
        create_container(CreateContainerRequest) -> CreateContainerResponse;
        start_container(StartContainerRequest) -> StartContainerResponse;
        stop_container(StopContainerRequest) -> StopContainerResponse;
        remove_container(RemoveContainerRequest) -> RemoveContainerResponse;
        exec_sync(ExecSyncRequest) -> ExecSyncResponse;
    }
}

calls! {
    /// The `ImageService` calls the pod manager makes.
    ImageCalls: ImageService, ImageServiceClient {
        image_status(ImageStatusRequest) -> ImageStatusResponse;
        pull_image(PullImageRequest) -> PullImageResponse;
    }
}

/// Handles on the CRI services.
#[derive(Clone)]
pub struct Cri {
    runtime: Arc<dyn RuntimeCalls>,
    images: Arc<dyn ImageCalls>,
}

/// What an image pull left.
pub struct Pulled {
    /// The image reference the runtime resolved (what CreateContainer gets).
    pub image_ref: String,
    /// The pulled image as ImageStatus reports it (size, user), when it could be read.
    pub image: Option<corral_cri_api::v1::Image>,
}

impl Cri {
    /// Calls these service implementations in process.
    pub fn new(runtime: Arc<impl RuntimeService>, images: Arc<impl ImageService>) -> Cri {
        Cri { runtime, images }
    }

    /// Calls a CRI runtime over `channel` (from [`corral_cri_api::connect`]).
    pub fn remote(channel: Channel) -> Cri {
        Cri {
            runtime: Arc::new(Remote(RuntimeServiceClient::new(channel.clone()))),
            images: Arc::new(Remote(ImageServiceClient::new(channel))),
        }
    }

    /// The pod's sandboxes (any state), oldest first.
    pub async fn sandboxes(&self, pod_uid: &str) -> Result<Vec<PodSandbox>, Status> {
        let filter = PodSandboxFilter {
            label_selector: HashMap::from([(POD_UID_LABEL.to_string(), pod_uid.to_string())]),
            ..Default::default()
        };
        let mut items = self
            .runtime
            .list_pod_sandbox(Request::new(ListPodSandboxRequest {
                filter: Some(filter),
            }))
            .await?
            .into_inner()
            .items;
        items.sort_by_key(|s| s.created_at);
        Ok(items)
    }

    pub async fn sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, Status> {
        self.runtime
            .pod_sandbox_status(Request::new(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            }))
            .await?
            .into_inner()
            .status
            .ok_or_else(|| Status::internal("PodSandboxStatus without a status"))
    }

    /// RunPodSandbox on `handler` (empty: the runtime's default).
    pub async fn run_sandbox(
        &self,
        config: PodSandboxConfig,
        handler: &str,
    ) -> Result<String, Status> {
        Ok(self
            .runtime
            .run_pod_sandbox(Request::new(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler.to_owned(),
            }))
            .await?
            .into_inner()
            .pod_sandbox_id)
    }

    pub async fn stop_sandbox(&self, id: &str) -> Result<(), Status> {
        self.runtime
            .stop_pod_sandbox(Request::new(StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }))
            .await
            .map(drop)
    }

    pub async fn remove_sandbox(&self, id: &str) -> Result<(), Status> {
        self.runtime
            .remove_pod_sandbox(Request::new(RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            }))
            .await
            .map(drop)
    }

    /// The containers of one sandbox (any state).
    pub async fn containers(&self, sandbox_id: &str) -> Result<Vec<Container>, Status> {
        Ok(self
            .runtime
            .list_containers(Request::new(ListContainersRequest {
                filter: Some(ContainerFilter {
                    pod_sandbox_id: sandbox_id.into(),
                    ..Default::default()
                }),
            }))
            .await?
            .into_inner()
            .containers)
    }

    /// The running containers the pod manager made (they carry its pod-uid label).
    pub async fn running_pod_containers(&self) -> Result<Vec<Container>, Status> {
        let running = corral_cri_api::v1::ContainerStateValue {
            state: corral_cri_api::v1::ContainerState::ContainerRunning as i32,
        };
        let mut containers = self
            .runtime
            .list_containers(Request::new(ListContainersRequest {
                filter: Some(ContainerFilter {
                    state: Some(running),
                    ..Default::default()
                }),
            }))
            .await?
            .into_inner()
            .containers;
        containers.retain(|c| c.labels.contains_key(POD_UID_LABEL));
        Ok(containers)
    }

    /// Has the runtime write the container's log to a new file at its log path.
    pub async fn reopen_container_log(&self, id: &str) -> Result<(), Status> {
        self.runtime
            .reopen_container_log(Request::new(ReopenContainerLogRequest {
                container_id: id.into(),
            }))
            .await
            .map(drop)
    }

    pub async fn container_status(&self, id: &str) -> Result<ContainerStatus, Status> {
        self.runtime
            .container_status(Request::new(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            }))
            .await?
            .into_inner()
            .status
            .ok_or_else(|| Status::internal("ContainerStatus without a status"))
    }

    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, Status> {
        Ok(self
            .runtime
            .create_container(Request::new(CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            }))
            .await?
            .into_inner()
            .container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), Status> {
        self.runtime
            .start_container(Request::new(StartContainerRequest {
                container_id: id.into(),
            }))
            .await
            .map(drop)
    }

    /// Stops a container: SIGTERM (or the image's stop signal), SIGKILL after `grace`.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), Status> {
        self.runtime
            .stop_container(Request::new(StopContainerRequest {
                container_id: id.into(),
                // Whole seconds, rounded up: never less grace than asked for.
                timeout: i64::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
                    .unwrap_or(i64::MAX),
            }))
            .await
            .map(drop)
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), Status> {
        self.runtime
            .remove_container(Request::new(RemoveContainerRequest {
                container_id: id.into(),
            }))
            .await
            .map(drop)
    }

    /// The image when it is present (its id, user...).
    pub async fn image_present(
        &self,
        image: &str,
    ) -> Result<Option<corral_cri_api::v1::Image>, Status> {
        let resp = self
            .images
            .image_status(Request::new(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                verbose: false,
            }))
            .await?
            .into_inner();
        Ok(resp.image)
    }

    pub async fn pull(
        &self,
        image: &str,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> Result<Pulled, Status> {
        let image_ref = self
            .images
            .pull_image(Request::new(PullImageRequest {
                image: Some(ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                auth,
                sandbox_config,
            }))
            .await?
            .into_inner()
            .image_ref;
        let image = self.image_present(&image_ref).await.ok().flatten();
        Ok(Pulled { image_ref, image })
    }

    /// ExecSync with a timeout (0: none).
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, Vec<u8>), Status> {
        let r = self
            .runtime
            .exec_sync(Request::new(ExecSyncRequest {
                container_id: container_id.into(),
                cmd,
                timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            }))
            .await?
            .into_inner();
        Ok((r.exit_code, r.stdout, r.stderr))
    }
}
