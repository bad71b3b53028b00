//! End-to-end: the real `corralctl` binary against an in-process fake CRI server on a Unix
//! socket. The fake implements only what the image commands need; everything else answers
//! UNIMPLEMENTED, as a minimal CRI server would (ListContainers included, to cover `rmi --prune`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_cri_api::v1;
use corral_cri_api::v1::image_service_server::{ImageService, ImageServiceServer};
use corral_cri_api::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use tonic::{Request, Response, Status};

const BUSYBOX: &str = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";
const PAUSE: &str = "sha256:e6f1816883972d4be47bd48879a08919b96afcd344132622e4d444987919323c";
const NGINX: &str = "sha256:605c77e624ddb75e6110f997c58876baa13f8754486b461117934b24a9dc3a85";

#[derive(Clone, Default)]
struct Fake {
    images: Arc<Mutex<Vec<v1::Image>>>,
}

impl Fake {
    fn with_images() -> Self {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<v1::Image>> {
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, name: &str) -> Option<v1::Image> {
        self.lock()
            .iter()
            .find(|i| {
                i.id == name
                    || i.repo_tags
                        .iter()
                        .any(|t| t == name || t.ends_with(&format!("/{name}")))
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
        let request = request.into_inner();
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
}

struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    fake: Fake,
}

async fn serve(fake: Fake) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("cri.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let router = tonic::transport::Server::builder()
        .add_service(ImageServiceServer::new(fake.clone()))
        .add_service(RuntimeServiceServer::new(fake.clone()));
    tokio::spawn(router.serve_with_incoming(incoming));
    Server {
        _dir: dir,
        socket,
        fake,
    }
}

async fn run(socket: &Path, args: &[&str]) -> Output {
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[tokio::test(flavor = "multi_thread")]
async fn version_and_info() {
    let server = serve(Fake::default()).await;
    let out = run(&server.socket, &["version"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Version:  0.1.0\nRuntimeName:  fake\nRuntimeVersion:  9.9.9\nRuntimeApiVersion:  v1\n"
    );

    let out = run(&server.socket, &["info"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["status"]["conditions"][0]["type"], "RuntimeReady");
    assert_eq!(doc["config"]["root"], "/var/lib/fake");

    let out = run(&server.socket, &["info", "-o", "yaml"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("root: /var/lib/fake"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_inspect_images() {
    let server = serve(Fake::with_images()).await;
    let out = run(&server.socket, &["images"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "IMAGE                       TAG                 IMAGE ID            SIZE\n\
         docker.io/library/busybox   1.36                3f57d9401f8d4       2.15MB\n\
         registry.k8s.io/pause       3.10                e6f1816883972       320kB\n"
    );

    let out = run(&server.socket, &["images", "-q"]).await;
    assert_eq!(stdout(&out), format!("{BUSYBOX}\n{PAUSE}\n"));

    let out = run(&server.socket, &["images", "-o", "json", "busybox:1.36"]).await;
    let doc = json(&out);
    assert_eq!(doc["images"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        doc["images"][0]["repoTags"][0],
        "docker.io/library/busybox:1.36"
    );
    assert_eq!(doc["images"][0]["size"], "2155000");

    let out = run(&server.socket, &["inspecti", "busybox:1.36"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["status"]["id"], BUSYBOX);
    assert_eq!(doc["info"]["chainID"], "sha256:c0ffee");

    let out = run(&server.socket, &["inspecti", BUSYBOX, PAUSE]).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(2));

    let out = run(&server.socket, &["inspecti", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "corralctl: no such image \"nope\" present\n");

    let out = run(&server.socket, &["imagefsinfo"]).await;
    let doc = json(&out);
    let fs = &doc["status"]["imageFilesystems"][0];
    assert_eq!(fs["fsId"]["mountpoint"], "/var/lib/fake");
    assert_eq!(fs["usedBytes"]["value"], "4096");
    assert_eq!(doc["status"]["containerFilesystems"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_then_remove() {
    let server = serve(Fake::default()).await;
    let out = run(&server.socket, &["pull", "nginx"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Image is up to date for {NGINX}\n"));
    assert!(server.fake.find("nginx:latest").is_some());

    let out = run(&server.socket, &["pull", "--creds", "mallory:pw", "nginx"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "corralctl: pulling image \"nginx\": Unauthenticated: bad credentials\n"
    );

    let out = run(&server.socket, &["rmi", "nginx:latest"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Deleted: docker.io/library/nginx:latest\n");
    assert!(server.fake.lock().is_empty());

    let out = run(&server.socket, &["rmi", "ghost"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no such image \"ghost\" present"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_pinned_images_without_list_containers() {
    let server = serve(Fake::with_images()).await;
    let out = run(&server.socket, &["rmi", "--prune"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Deleted: docker.io/library/busybox:1.36\n");
    let left: Vec<String> = server.fake.lock().iter().map(|i| i.id.clone()).collect();
    assert_eq!(left, [PAUSE]);

    let out = run(&server.socket, &["rmi", "--all"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(server.fake.lock().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_obeys_an_explicit_timeout() {
    let server = serve(Fake::default()).await;
    let started = Instant::now();
    let out = run(&server.socket, &["-t", "300ms", "pull", "slow"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&out);
    assert!(
        err.starts_with("corralctl: pulling image \"slow\": "),
        "{err}"
    );
    assert!(
        err.contains("DeadlineExceeded") || err.contains("Cancelled"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_cannot_hang_the_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    // Accept connections and never speak.
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            streams.push(stream);
        }
    });
    let started = Instant::now();
    let out = run(&socket, &["-t", "500ms", "images"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&out);
    assert!(err.starts_with("corralctl: "), "{err}");
    assert!(err.contains("500ms"), "{err}");
    assert!(
        err.contains("DeadlineExceeded") || err.contains("cannot connect"),
        "{err}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_socket_names_the_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("absent.sock");
    let out = run(&socket, &["version"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("unix://{}", socket.display())),
        "{err}"
    );
    assert!(err.contains("--runtime-endpoint"), "{err}");
}
