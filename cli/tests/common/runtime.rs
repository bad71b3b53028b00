//! The runtime half of the fake: records requests, keeps canned pods and containers.

use std::collections::HashMap;

use corral_cri_api::v1;
use corral_cri_api::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};

use super::Fake;

/// What the fake runtime holds and what it was asked.
#[derive(Debug, Default)]
pub struct RuntimeState {
    /// Every RPC, in order, by method name.
    pub calls: Vec<String>,
    pub run_pod: Vec<v1::RunPodSandboxRequest>,
    pub create: Vec<v1::CreateContainerRequest>,
    pub pulls: Vec<v1::PullImageRequest>,
    pub list_pods: Vec<v1::ListPodSandboxRequest>,
    pub list_containers: Vec<v1::ListContainersRequest>,
    pub stops: Vec<v1::StopContainerRequest>,
    pub execs: Vec<v1::ExecSyncRequest>,
    pub updates: Vec<v1::UpdateContainerResourcesRequest>,
    pub pods: Vec<v1::PodSandbox>,
    pub containers: Vec<v1::Container>,
    /// Log path per container ID, reported by ContainerStatus.
    pub log_paths: HashMap<String, String>,
    /// Answer ListContainers with UNIMPLEMENTED, as a minimal CRI server would.
    pub no_list_containers: bool,
}

fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn not_found(what: &str, id: &str) -> Status {
    Status::not_found(format!("{what} {id:?} not found"))
}

impl Fake {
    fn set_container_state(&self, id: &str, state: v1::ContainerState) -> Result<(), Status> {
        let mut rt = self.rt();
        let container = rt
            .containers
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("container", id))?;
        container.state = state as i32;
        Ok(())
    }
}

#[tonic::async_trait]
impl RuntimeService for Fake {
    async fn version(
        &self,
        _: Request<v1::VersionRequest>,
    ) -> Result<Response<v1::VersionResponse>, Status> {
        Ok(Response::new(v1::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "9.9.9".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn status(
        &self,
        request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        let mut info = HashMap::new();
        if request.into_inner().verbose {
            info.insert(
                "config".to_owned(),
                r#"{"root":"/var/lib/fake"}"#.to_owned(),
            );
        }
        Ok(Response::new(v1::StatusResponse {
            status: Some(v1::RuntimeStatus {
                conditions: vec![v1::RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    ..Default::default()
                }],
            }),
            info,
            ..Default::default()
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<v1::RunPodSandboxRequest>,
    ) -> Result<Response<v1::RunPodSandboxResponse>, Status> {
        self.record("RunPodSandbox");
        let request = request.into_inner();
        let mut rt = self.rt();
        let id = format!("{:064x}", 0xb0d_0000 + rt.pods.len());
        let config = request.config.clone().unwrap_or_default();
        rt.pods.push(v1::PodSandbox {
            id: id.clone(),
            metadata: config.metadata,
            state: v1::PodSandboxState::SandboxReady as i32,
            created_at: 1,
            labels: config.labels,
            annotations: config.annotations,
            runtime_handler: request.runtime_handler.clone(),
        });
        rt.run_pod.push(request);
        Ok(Response::new(v1::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<v1::StopPodSandboxRequest>,
    ) -> Result<Response<v1::StopPodSandboxResponse>, Status> {
        self.record("StopPodSandbox");
        let id = request.into_inner().pod_sandbox_id;
        let mut rt = self.rt();
        let pod = rt
            .pods
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| not_found("pod sandbox", &id))?;
        pod.state = v1::PodSandboxState::SandboxNotready as i32;
        Ok(Response::new(v1::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<v1::RemovePodSandboxRequest>,
    ) -> Result<Response<v1::RemovePodSandboxResponse>, Status> {
        self.record("RemovePodSandbox");
        let id = request.into_inner().pod_sandbox_id;
        let mut rt = self.rt();
        let before = rt.pods.len();
        rt.pods.retain(|p| p.id != id);
        if rt.pods.len() == before {
            return Err(not_found("pod sandbox", &id));
        }
        Ok(Response::new(v1::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<v1::PodSandboxStatusRequest>,
    ) -> Result<Response<v1::PodSandboxStatusResponse>, Status> {
        self.record("PodSandboxStatus");
        let request = request.into_inner();
        let id = request.pod_sandbox_id;
        let rt = self.rt();
        let pod = rt
            .pods
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| not_found("pod sandbox", &id))?;
        let mut info = HashMap::new();
        if request.verbose {
            info.insert("info".to_owned(), r#"{"pid":4242}"#.to_owned());
        }
        Ok(Response::new(v1::PodSandboxStatusResponse {
            status: Some(v1::PodSandboxStatus {
                id: pod.id.clone(),
                metadata: pod.metadata.clone(),
                state: pod.state,
                created_at: pod.created_at,
                network: Some(v1::PodSandboxNetworkStatus {
                    ip: "10.88.0.7".into(),
                    additional_ips: vec![],
                }),
                labels: pod.labels.clone(),
                runtime_handler: pod.runtime_handler.clone(),
                ..Default::default()
            }),
            info,
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<v1::ListPodSandboxRequest>,
    ) -> Result<Response<v1::ListPodSandboxResponse>, Status> {
        self.record("ListPodSandbox");
        let request = request.into_inner();
        let mut rt = self.rt();
        let filter = request.filter.clone().unwrap_or_default();
        let items = rt
            .pods
            .iter()
            .filter(|p| p.id.starts_with(&filter.id))
            .filter(|p| filter.state.as_ref().is_none_or(|s| s.state == p.state))
            .filter(|p| labels_match(&p.labels, &filter.label_selector))
            .cloned()
            .collect();
        rt.list_pods.push(request);
        Ok(Response::new(v1::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        request: Request<v1::CreateContainerRequest>,
    ) -> Result<Response<v1::CreateContainerResponse>, Status> {
        self.record("CreateContainer");
        let request = request.into_inner();
        let config = request.config.clone().unwrap_or_default();
        let image = config.image.clone().unwrap_or_default();
        if self.find(&image.image).is_none() {
            return Err(Status::failed_precondition(format!(
                "image {:?} is not present",
                image.image
            )));
        }
        let mut rt = self.rt();
        if !rt.pods.iter().any(|p| p.id == request.pod_sandbox_id) {
            return Err(not_found("pod sandbox", &request.pod_sandbox_id));
        }
        let id = format!("{:064x}", 0xc0_0000 + rt.containers.len());
        rt.containers.push(v1::Container {
            id: id.clone(),
            pod_sandbox_id: request.pod_sandbox_id.clone(),
            metadata: config.metadata,
            image: Some(image),
            state: v1::ContainerState::ContainerCreated as i32,
            created_at: 1,
            labels: config.labels,
            ..Default::default()
        });
        rt.create.push(request);
        Ok(Response::new(v1::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        request: Request<v1::StartContainerRequest>,
    ) -> Result<Response<v1::StartContainerResponse>, Status> {
        self.record("StartContainer");
        let id = request.into_inner().container_id;
        self.set_container_state(&id, v1::ContainerState::ContainerRunning)?;
        Ok(Response::new(v1::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<v1::StopContainerRequest>,
    ) -> Result<Response<v1::StopContainerResponse>, Status> {
        self.record("StopContainer");
        let request = request.into_inner();
        self.set_container_state(&request.container_id, v1::ContainerState::ContainerExited)?;
        self.rt().stops.push(request);
        Ok(Response::new(v1::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<v1::RemoveContainerRequest>,
    ) -> Result<Response<v1::RemoveContainerResponse>, Status> {
        self.record("RemoveContainer");
        let id = request.into_inner().container_id;
        let mut rt = self.rt();
        let before = rt.containers.len();
        rt.containers.retain(|c| c.id != id);
        if rt.containers.len() == before {
            return Err(not_found("container", &id));
        }
        Ok(Response::new(v1::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<v1::ListContainersRequest>,
    ) -> Result<Response<v1::ListContainersResponse>, Status> {
        self.record("ListContainers");
        let request = request.into_inner();
        let mut rt = self.rt();
        if rt.no_list_containers {
            return Err(Status::unimplemented("ListContainers"));
        }
        let filter = request.filter.clone().unwrap_or_default();
        let containers = rt
            .containers
            .iter()
            .filter(|c| c.id.starts_with(&filter.id))
            .filter(|c| {
                filter.pod_sandbox_id.is_empty() || c.pod_sandbox_id == filter.pod_sandbox_id
            })
            .filter(|c| filter.state.as_ref().is_none_or(|s| s.state == c.state))
            .filter(|c| labels_match(&c.labels, &filter.label_selector))
            .cloned()
            .collect();
        rt.list_containers.push(request);
        Ok(Response::new(v1::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<v1::ContainerStatusRequest>,
    ) -> Result<Response<v1::ContainerStatusResponse>, Status> {
        self.record("ContainerStatus");
        let request = request.into_inner();
        let id = request.container_id;
        let rt = self.rt();
        let c = rt
            .containers
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("container", &id))?;
        let mut info = HashMap::new();
        if request.verbose {
            info.insert(
                "info".to_owned(),
                r#"{"pid":77,"sandboxID":"x"}"#.to_owned(),
            );
        }
        Ok(Response::new(v1::ContainerStatusResponse {
            status: Some(v1::ContainerStatus {
                id: c.id.clone(),
                metadata: c.metadata.clone(),
                state: c.state,
                created_at: c.created_at,
                image: c.image.clone(),
                image_ref: c.image_ref.clone(),
                labels: c.labels.clone(),
                log_path: rt.log_paths.get(&id).cloned().unwrap_or_default(),
                ..Default::default()
            }),
            info,
        }))
    }

    async fn update_container_resources(
        &self,
        request: Request<v1::UpdateContainerResourcesRequest>,
    ) -> Result<Response<v1::UpdateContainerResourcesResponse>, Status> {
        self.record("UpdateContainerResources");
        self.rt().updates.push(request.into_inner());
        Ok(Response::new(v1::UpdateContainerResourcesResponse {}))
    }

    /// `exit N` exits with N; anything else echoes its arguments.
    async fn exec_sync(
        &self,
        request: Request<v1::ExecSyncRequest>,
    ) -> Result<Response<v1::ExecSyncResponse>, Status> {
        self.record("ExecSync");
        let request = request.into_inner();
        self.rt().execs.push(request.clone());
        let exit_code = match request.cmd.as_slice() {
            [exit, code] if exit == "exit" => code.parse().unwrap_or(255),
            _ => 0,
        };
        Ok(Response::new(v1::ExecSyncResponse {
            stdout: format!("out: {}\n", request.cmd.join(" ")).into_bytes(),
            stderr: b"err: done\n".to_vec(),
            exit_code,
        }))
    }

    async fn exec(
        &self,
        request: Request<v1::ExecRequest>,
    ) -> Result<Response<v1::ExecResponse>, Status> {
        self.record("Exec");
        let r = request.into_inner();
        let server = self.streaming.lock().expect("lock").clone();
        let server = server.ok_or_else(|| Status::unimplemented("Exec"))?;
        let url = server
            .exec_url(corral_streaming::ExecSpec {
                container_id: r.container_id,
                cmd: r.cmd,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            })
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(v1::ExecResponse { url }))
    }

    async fn port_forward(
        &self,
        request: Request<v1::PortForwardRequest>,
    ) -> Result<Response<v1::PortForwardResponse>, Status> {
        self.record("PortForward");
        let r = request.into_inner();
        let server = self.streaming.lock().expect("lock").clone();
        let server = server.ok_or_else(|| Status::unimplemented("PortForward"))?;
        let url = server
            .port_forward_url(corral_streaming::PortForwardSpec {
                pod_sandbox_id: r.pod_sandbox_id,
                ports: r.port.iter().map(|&p| p as u16).collect(),
            })
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(v1::PortForwardResponse { url }))
    }
}
