//! The daemon: owns its directories, opens its subsystems, serves CRI on a Unix socket.
//!
//! [`Daemon::open`] takes the locks and opens the stores; [`Daemon::serve`] runs the gRPC server
//! on a bound listener until the shutdown future resolves (the mini-redis shape, so tests and
//! `main` share one entry point).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use corral_cri_api::v1::image_service_server::ImageServiceServer;
use corral_cri_api::v1::runtime_service_server::RuntimeServiceServer;
use corral_images::{CredentialsFile, HostsConfig, ImageConfig, ImageManager};
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::Config;
use crate::cri::batch::MAX_MESSAGE;
use crate::cri::image::ImageApi;
use crate::cri::runtime::RuntimeApi;
use crate::event_bus::EventBus;
use crate::lock::{self, DirLock, LockError};
use crate::message_limit::MessageLimitLayer;
use crate::metrics::{Metrics, MetricsLayer};
use crate::network::Network;
use crate::pods::{Pods, PodsConfig};
use crate::streaming::PodsBackend;
use corral_cri_api::corral::kube_service_server::KubeServiceServer;
use corral_kubelet::{Cri, KubeApi, Kubelet, KubeletConfig, KubeletError};
use corral_streaming::{ServerConfig, StreamingServer, TlsConfig};

/// How long calls in flight may take to finish after shutdown begins. Idle client connections
/// do not hold the daemon up beyond this.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("open image store under {root}: {source}")]
    Images {
        root: PathBuf,
        #[source]
        source: Box<corral_images::ImageError>,
    },
    #[error("shim program: {0}")]
    Shim(String),
    #[error("streaming server: {0}")]
    Streaming(String),
    #[error("metrics endpoint: {0}")]
    Metrics(String),
    #[error("setting the modes of the daemon's directories: {0}")]
    Dirs(std::io::Error),
    #[error("pod manager: {0}")]
    Kubelet(#[from] KubeletError),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A daemon that owns its directories.
pub struct Daemon {
    config: Arc<Config>,
    images: Arc<ImageManager>,
    network: Arc<Network>,
    pods: Arc<Pods>,
    events: Arc<EventBus>,
    metrics: Arc<Metrics>,
    _locks: (DirLock, DirLock),
}

impl Daemon {
    /// Locks the root and state directories and opens the image subsystem.
    pub fn open(config: Config) -> Result<Daemon, DaemonError> {
        let root_lock = lock::lock_dir(&config.root)?;
        let state_lock = lock::lock_dir(&config.state)?;
        crate::dirs::secure(&config.root, &config.state).map_err(DaemonError::Dirs)?;
        // Work directories a checkpoint or restore left when the daemon died mid-way.
        crate::checkpoint::sweep(&config.root);
        let mut icfg = ImageConfig::new(config.root.clone());
        icfg.hosts = HostsConfig {
            config_path: config.images.registry_config_path.clone(),
        };
        icfg.credentials = CredentialsFile {
            path: config.images.credentials_file.clone(),
        };
        icfg.max_concurrent_layers = config.images.max_concurrent_layers;
        icfg.max_manifest_bytes = config.images.max_manifest_bytes;
        icfg.max_config_bytes = config.images.max_config_bytes;
        icfg.unpack_limits.max_tar_bytes = config.images.max_layer_bytes;
        icfg.pinned = config.images.pinned_images.clone();
        icfg.min_rate = corral_images::MinRate {
            bytes_per_sec: config.images.min_pull_rate_bytes_per_sec,
            window: std::time::Duration::from_secs(config.images.pull_rate_window_secs),
        };
        icfg.failed_pull_retention =
            std::time::Duration::from_secs(config.images.failed_pull_retention_secs);
        icfg.sync_layers = config.images.sync_unpacked_layers;
        let images = ImageManager::open(icfg).map_err(|source| DaemonError::Images {
            root: config.root.clone(),
            source: Box::new(source),
        })?;
        let shim = match &config.runtime.shim_path {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .map_err(|e| DaemonError::Shim(format!("locating corrald: {e}")))?
                .with_file_name("corral-shim"),
        };
        if !shim.is_file() {
            return Err(DaemonError::Shim(format!(
                "{} does not exist",
                shim.display()
            )));
        }
        let metrics = Arc::new(Metrics::new());
        let network = Arc::new(Network::new(
            config.network.clone(),
            &config.root,
            Arc::clone(&metrics),
        ));
        let events = Arc::new(EventBus::new(config.events.subscriber_buffer));
        let pods = Arc::new(Pods::new(
            PodsConfig {
                root: config.root.clone(),
                state: config.state.clone(),
                shim,
                cgroup_root: config.runtime.cgroup_root.clone(),
                cdi_spec_dirs: config.runtime.cdi_spec_dirs.clone(),
                handlers: Arc::new(crate::handlers::Handlers::probe(
                    config.runtime.handlers.iter().map(|(n, h)| (n, &h.path)),
                    Some(config.runtime.criu()),
                )),
            },
            Arc::clone(&images),
            Arc::clone(&network),
            Arc::clone(&events),
            Arc::clone(&metrics),
        ));
        Ok(Daemon {
            config: Arc::new(config),
            images,
            network,
            pods,
            events,
            metrics,
            _locks: (root_lock, state_lock),
        })
    }

    /// Starts the exec/attach/port-forward server (needs a tokio runtime).
    async fn start_streaming(&self) -> Result<StreamingServer, DaemonError> {
        let st = &self.config.streaming;
        let ip: std::net::IpAddr = st
            .address
            .parse()
            .map_err(|_| DaemonError::Streaming(format!("bad address {:?}", st.address)))?;
        let config = ServerConfig {
            addr: std::net::SocketAddr::new(ip, st.port),
            tls: match (&st.tls_cert, &st.tls_key) {
                (Some(cert_path), Some(key_path)) => Some(TlsConfig {
                    cert_path: cert_path.clone(),
                    key_path: key_path.clone(),
                }),
                _ => None,
            },
            token_ttl: std::time::Duration::from_secs(st.token_ttl_secs),
            max_tokens: st.max_tokens,
            ..ServerConfig::default()
        };
        let backend = Arc::new(PodsBackend {
            pods: Arc::clone(&self.pods),
        });
        let server = StreamingServer::start(config, backend)
            .await
            .map_err(|e| DaemonError::Streaming(crate::status::error_chain(&e)))?;
        tracing::info!(url = server.base_url(), "streaming server listening");
        Ok(server)
    }

    /// Starts the metrics endpoint when `[metrics] address` is set.
    async fn start_metrics(&self) -> Result<Option<tokio::task::JoinHandle<()>>, DaemonError> {
        let Some(addr) = &self.config.metrics.address else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| DaemonError::Metrics(format!("bind {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| DaemonError::Metrics(e.to_string()))?;
        tracing::info!(url = %format!("http://{local}/metrics"), "metrics endpoint listening");
        let (pods, events) = (Arc::clone(&self.pods), Arc::clone(&self.events));
        Ok(Some(tokio::spawn(crate::metrics::serve(
            listener,
            Arc::clone(&self.metrics),
            Arc::new(move || crate::pods::view::live(&pods, &events)),
        ))))
    }

    /// Opens the pod manager's store, starts its workers (which adopt their pods' sandboxes
    /// after a restart) and wakes a pod's worker on each of its container events.
    fn start_kubelet(
        &self,
        runtime: Arc<RuntimeApi>,
        images: Arc<ImageApi>,
    ) -> Result<Arc<Kubelet>, DaemonError> {
        let k = &self.config.kubelet;
        let node_name = k.node_name.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        });
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let mut node_labels = std::collections::BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), node_name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), arch.to_string()),
        ]);
        node_labels.extend(k.node_labels.clone());
        let kubelet = Kubelet::open(
            KubeletConfig {
                dir: self.config.root.join("kubelet"),
                node_name,
                node_labels,
                node_ips: corral_kubelet::node::host_ips(&k.node_ips),
                logs: k
                    .log_policy()
                    .map_err(|e| KubeletError::BadRequest(e.to_string()))?,
            },
            Cri::new(runtime, images),
        )?;
        kubelet.start();
        let events = Arc::clone(&self.events);
        let weak = Arc::downgrade(&kubelet);
        tokio::spawn(async move {
            use futures::StreamExt;
            loop {
                let mut stream = Box::pin(events.subscribe().into_stream());
                while let Some(ev) = stream.next().await {
                    let Some(k) = weak.upgrade() else { return };
                    match ev {
                        Ok(ev) => k.wake_pod_of(&ev),
                        Err(_) => break,
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        Ok(kubelet)
    }

    /// Binds the configured socket (needs a tokio runtime).
    pub fn bind(&self) -> Result<tokio::net::UnixListener, DaemonError> {
        let g = &self.config.grpc;
        Ok(lock::bind_socket(&g.socket, g.socket_mode, g.socket_gid)?)
    }

    /// Serves CRI on `listener` until `shutdown` resolves, then finishes in-flight calls.
    pub async fn serve(
        self,
        listener: tokio::net::UnixListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), DaemonError> {
        self.pods.recover().await;
        let streaming = Arc::new(self.start_streaming().await?);
        let runtime_api = Arc::new(RuntimeApi::new(
            Arc::clone(&self.config),
            Arc::clone(&self.pods),
            Arc::clone(&self.network),
            Arc::clone(&streaming),
            Arc::clone(&self.events),
        ));
        let image_api = Arc::new(ImageApi::new(
            Arc::clone(&self.images),
            Arc::clone(&self.pods),
            Arc::clone(&self.metrics),
        ));
        let kubelet = self.start_kubelet(Arc::clone(&runtime_api), Arc::clone(&image_api))?;
        let runtime = RuntimeServiceServer::from_arc(runtime_api)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let image = ImageServiceServer::from_arc(image_api)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let kube = KubeServiceServer::new(KubeApi::new(Arc::clone(&kubelet)))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        tracing::info!(socket = %self.config.grpc.socket.display(), root = %self.config.root.display(), "serving CRI");
        if let Ok(l) = corral_runtime::cgroups::layout()
            && !l.favordynmods
        {
            tracing::info!(
                "no cgroup hierarchy is mounted with favordynmods: each container's first move into its cgroup may wait for an RCU grace period (milliseconds; see README, \"Container start-up latency\")"
            );
        }
        let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
        let events = Arc::clone(&self.events);
        let shutdown = async move {
            shutdown.await;
            // Event streams never end by themselves: end them so they do not hold up the exit.
            events.close(tonic::Status::unavailable("corrald is shutting down"));
            let _ = begun_tx.send(());
        };
        let metrics_task = self.start_metrics().await?;
        let answered = Arc::clone(&self.metrics);
        let trimmer = tokio::spawn(crate::alloc::trim_when_quiet(
            move || answered.answered(),
            crate::alloc::trim,
        ));
        let server = tonic::transport::Server::builder()
            .layer(MetricsLayer {
                metrics: Arc::clone(&self.metrics),
            })
            .layer(MessageLimitLayer { limit: MAX_MESSAGE })
            .add_service(runtime)
            .add_service(image)
            .add_service(kube)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown);
        let grace = async {
            if begun_rx.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            r = server => r,
            () = grace => {
                tracing::info!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them");
                Ok(())
            }
        };
        let _ = std::fs::remove_file(&self.config.grpc.socket);
        kubelet.shutdown();
        drop(kubelet);
        if let Some(task) = metrics_task {
            task.abort();
        }
        trimmer.abort();
        // Sessions end with the daemon (their shims kill exec'd processes; attaches detach).
        match Arc::try_unwrap(streaming) {
            Ok(server) => server.shutdown().await,
            Err(shared) => drop(shared),
        }
        tracing::info!("stopped");
        Ok(result?)
    }
}
