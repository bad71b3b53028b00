//! `runtime.v1.RuntimeService`: the calls this build serves (Version, Status, RuntimeConfig).
//! Pod sandbox and container calls are not built yet and answer UNIMPLEMENTED through the
//! generated default methods.

use std::collections::HashMap;
use std::sync::Arc;

use corral_cri_api::v1::runtime_service_server::RuntimeService;
use corral_cri_api::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigRequest,
    RuntimeConfigResponse, RuntimeStatus, StatusRequest, StatusResponse, VersionRequest,
    VersionResponse,
};
use tonic::{Request, Response, Status};

use crate::config::Config;

/// The CRI API version this runtime speaks.
pub const RUNTIME_API_VERSION: &str = "v1";
/// The kubelet's "version" of the CRI protocol itself.
const KUBE_API_VERSION: &str = "0.1.0";

pub struct RuntimeApi {
    config: Arc<Config>,
}

impl RuntimeApi {
    pub fn new(config: Arc<Config>) -> RuntimeApi {
        RuntimeApi { config }
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
        let conditions = vec![
            condition("RuntimeReady", true, "", ""),
            condition(
                "NetworkReady",
                false,
                "NetworkPluginNotReady",
                "Network plugin returns error: pod networking (CNI) is not part of this corral build yet",
            ),
        ];
        let mut info = HashMap::new();
        if verbose {
            let config = serde_json::to_string(&*self.config)
                .map_err(|e| Status::internal(format!("encode config: {e}")))?;
            info.insert("config".to_owned(), config);
        }
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus { conditions }),
            info,
            ..Default::default()
        }))
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
}
