//! The fake CRI server the end-to-end tests talk to, over a Unix socket in a temporary
//! directory. Images live in a list; the runtime half records every request and answers from
//! canned pods and containers (see [`RuntimeState`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_cri_api::v1;
use corral_cri_api::v1::image_service_server::{ImageService, ImageServiceServer};
use corral_cri_api::v1::runtime_service_server::RuntimeServiceServer;
use tonic::{Request, Response, Status};

mod runtime;
pub mod streaming;

pub use runtime::RuntimeState;

pub const BUSYBOX: &str = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";
pub const PAUSE: &str = "sha256:e6f1816883972d4be47bd48879a08919b96afcd344132622e4d444987919323c";
pub const NGINX: &str = "sha256:605c77e624ddb75e6110f997c58876baa13f8754486b461117934b24a9dc3a85";

#[derive(Clone, Default)]
pub struct Fake {
    images: Arc<Mutex<Vec<v1::Image>>>,
    runtime: Arc<Mutex<RuntimeState>>,
    /// Serves the URLs of Exec and PortForward, when set.
    pub streaming: Arc<Mutex<Option<Arc<corral_streaming::StreamingServer>>>>,
}

impl Fake {
    pub fn with_images() -> Self {
        let fake = Fake::default();
        fake.lock().extend([
            v1::Image {
                id: BUSYBOX.into(),
                repo_tags: vec!["docker.io/library/busybox:1.36".into()],
                repo_digests: vec![format!("docker.io/library/busybox@{BUSYBOX}")],
                size: 2_155_000,
                ..Default::default()
            },
            v1::Image {
                id: PAUSE.into(),
                repo_tags: vec!["registry.k8s.io/pause:3.10".into()],
                size: 320_000,
                pinned: true,
                ..Default::default()
            },
        ]);
        fake
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Vec<v1::Image>> {
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime half: recorded requests and canned pods and containers.
    pub fn rt(&self) -> std::sync::MutexGuard<'_, RuntimeState> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: &str) {
        self.rt().calls.push(call.to_owned());
    }

    pub fn find(&self, name: &str) -> Option<v1::Image> {
        self.lock()
            .iter()
            .find(|i| {
                i.id == name
                    || i.repo_tags.iter().any(|t| {
                        t == name
                            || t.ends_with(&format!("/{name}"))
                            || t.ends_with(&format!("/{name}:latest"))
                    })
            })
            .cloned()
    }
}

fn spec_name(spec: Option<&v1::ImageSpec>) -> String {
    spec.map(|s| s.image.clone()).unwrap_or_default()
}

#[tonic::async_trait]
impl ImageService for Fake {
    async fn list_images(
        &self,
        request: Request<v1::ListImagesRequest>,
    ) -> Result<Response<v1::ListImagesResponse>, Status> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image);
        let images = match filter {
            Some(name) if !name.is_empty() => self.find(&name).into_iter().collect(),
            _ => self.lock().clone(),
        };
        Ok(Response::new(v1::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<v1::ImageStatusRequest>,
    ) -> Result<Response<v1::ImageStatusResponse>, Status> {
        self.record("ImageStatus");
        let request = request.into_inner();
        let image = self.find(&spec_name(request.image.as_ref()));
        let mut info = HashMap::new();
        if request.verbose && image.is_some() {
            info.insert(
                "info".to_owned(),
                r#"{"chainID":"sha256:c0ffee"}"#.to_owned(),
            );
        }
        Ok(Response::new(v1::ImageStatusResponse { image, info }))
    }

    async fn pull_image(
        &self,
        request: Request<v1::PullImageRequest>,
    ) -> Result<Response<v1::PullImageResponse>, Status> {
        self.record("PullImage");
        let request = request.into_inner();
        self.rt().pulls.push(request.clone());
        let name = spec_name(request.image.as_ref());
        if name.contains("slow") {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if let Some(auth) = request.auth
            && auth.username != "user"
        {
            return Err(Status::unauthenticated("bad credentials"));
        }
        let tag = if name.contains(':') {
            name
        } else {
            format!("docker.io/library/{name}:latest")
        };
        self.lock().push(v1::Image {
            id: NGINX.into(),
            repo_tags: vec![tag],
            size: 56_700_000,
            ..Default::default()
        });
        Ok(Response::new(v1::PullImageResponse {
            image_ref: NGINX.into(),
        }))
    }

    async fn remove_image(
        &self,
        request: Request<v1::RemoveImageRequest>,
    ) -> Result<Response<v1::RemoveImageResponse>, Status> {
        let name = spec_name(request.into_inner().image.as_ref());
        if let Some(image) = self.find(&name) {
            self.lock().retain(|i| i.id != image.id);
        }
        Ok(Response::new(v1::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _: Request<v1::ImageFsInfoRequest>,
    ) -> Result<Response<v1::ImageFsInfoResponse>, Status> {
        Ok(Response::new(v1::ImageFsInfoResponse {
            image_filesystems: vec![v1::FilesystemUsage {
                timestamp: 1_700_000_000_000_000_000,
                fs_id: Some(v1::FilesystemIdentifier {
                    mountpoint: "/var/lib/fake".into(),
                }),
                used_bytes: Some(v1::UInt64Value { value: 4096 }),
                inodes_used: Some(v1::UInt64Value { value: 12 }),
            }],
            container_filesystems: vec![],
        }))
    }
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub fake: Fake,
}

pub async fn serve(fake: Fake) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("cri.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let router = tonic::transport::Server::builder()
        .add_service(ImageServiceServer::new(fake.clone()))
        .add_service(RuntimeServiceServer::new(fake.clone()));
    tokio::spawn(router.serve_with_incoming(incoming));
    Server { dir, socket, fake }
}

pub async fn run(socket: &Path, args: &[&str]) -> Output {
    let endpoint = format!("unix://{}", socket.display());
    tokio::process::Command::new(env!("CARGO_BIN_EXE_corralctl"))
        .arg("-r")
        .arg(&endpoint)
        .args(args)
        .env_remove("IMAGE_SERVICE_ENDPOINT")
        .output()
        .await
        .expect("run corralctl")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// Writes `text` to `name` in the server's directory and returns the path as a string.
pub fn write_file(server: &Server, name: &str, text: &str) -> String {
    let path = server.dir.path().join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}
