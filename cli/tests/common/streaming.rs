//! A real streaming server behind the fake's Exec and PortForward: exec runs the command as a
//! local process, port-forward connects to 127.0.0.1.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;

use corral_streaming::{
    AttachSpec, Backend, BackendError, BoxStream, ExecSpec, ProcessIo, ServerConfig,
    StreamingServer,
};

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send>>;

struct LocalBackend;

impl Backend for LocalBackend {
    fn exec(&self, spec: ExecSpec) -> Boxed<ProcessIo> {
        Box::pin(async move {
            let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
            let mut child = tokio::process::Command::new(&spec.cmd[0])
                .args(&spec.cmd[1..])
                .stdin(pipe(spec.stdin))
                .stdout(pipe(spec.stdout))
                .stderr(pipe(spec.stderr))
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| BackendError::Failed(e.to_string()))?;
            Ok(ProcessIo {
                stdin: child.stdin.take().map(|s| Box::new(s) as _),
                stdout: child.stdout.take().map(|s| Box::new(s) as _),
                stderr: child.stderr.take().map(|s| Box::new(s) as _),
                resize: None,
                exit: Box::pin(async move {
                    let status = child
                        .wait()
                        .await
                        .map_err(|e| BackendError::Failed(e.to_string()))?;
                    Ok(status.code().unwrap_or(255))
                }),
            })
        })
    }

    fn attach(&self, spec: AttachSpec) -> Boxed<ProcessIo> {
        Box::pin(async move { Err(BackendError::ContainerNotRunning(spec.container_id)) })
    }

    fn port_forward(&self, _pod: &str, port: u16) -> Boxed<BoxStream> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| BackendError::Failed(e.to_string()))?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

pub async fn start() -> Arc<StreamingServer> {
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().expect("addr"),
        ..ServerConfig::default()
    };
    Arc::new(
        StreamingServer::start(config, Arc::new(LocalBackend))
            .await
            .expect("streaming server"),
    )
}
