//! Exec, Attach and PortForward: check the request against the pod subsystem, then hand out a
//! single-use URL of the streaming server (which runs the session when the client connects).

use corral_cri_api::v1::{
    AttachRequest, AttachResponse, ExecRequest, ExecResponse, PortForwardRequest,
    PortForwardResponse,
};
use corral_streaming::{AttachSpec, ExecSpec, PortForwardSpec, RequestError};
use tonic::Status;

use super::runtime::RuntimeApi;
use crate::pods::streams::StreamsWanted;
use crate::status::pod_status;

fn url_status(e: RequestError) -> Status {
    match e {
        RequestError::Invalid(msg) => Status::invalid_argument(msg),
        RequestError::Token(e) => Status::resource_exhausted(e.to_string()),
    }
}

impl RuntimeApi {
    pub(super) async fn do_exec(&self, req: ExecRequest) -> Result<ExecResponse, Status> {
        let wanted = StreamsWanted::new(req.tty, req.stdin, req.stdout, req.stderr);
        let container_id = self
            .pods
            .check_exec(&req.container_id, &req.cmd, wanted)
            .map_err(pod_status)?;
        let url = self
            .streaming
            .exec_url(ExecSpec {
                container_id,
                cmd: req.cmd,
                tty: req.tty,
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
            })
            .map_err(url_status)?;
        Ok(ExecResponse { url })
    }

    pub(super) async fn do_attach(&self, req: AttachRequest) -> Result<AttachResponse, Status> {
        let wanted = StreamsWanted::new(req.tty, req.stdin, req.stdout, req.stderr);
        let container_id = self
            .pods
            .check_attach(&req.container_id, wanted)
            .map_err(pod_status)?;
        let url = self
            .streaming
            .attach_url(AttachSpec {
                container_id,
                tty: req.tty,
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
            })
            .map_err(url_status)?;
        Ok(AttachResponse { url })
    }

    pub(super) async fn do_port_forward(
        &self,
        req: PortForwardRequest,
    ) -> Result<PortForwardResponse, Status> {
        let pod_sandbox_id = self
            .pods
            .check_port_forward(&req.pod_sandbox_id, &req.port)
            .map_err(pod_status)?;
        let ports = req
            .port
            .iter()
            .filter_map(|p| u16::try_from(*p).ok())
            .collect();
        let url = self
            .streaming
            .port_forward_url(PortForwardSpec {
                pod_sandbox_id,
                ports,
            })
            .map_err(url_status)?;
        Ok(PortForwardResponse { url })
    }
}
