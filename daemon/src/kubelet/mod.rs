//! The pod manager: a kubelet for one host with no API server (issue 8).
//!
//! Kubernetes objects applied through `corral.v1.KubeService` are kept in the `corral-kube`
//! store; a worker per pod drives the pod's sandbox and containers through Corral's own CRI
//! services, as a kubelet would, and writes the pod's status back.
//!
//! - `translate`: a Pod into CRI `PodSandboxConfig` and `ContainerConfig`.
//! - `volumes`: a pod's volumes on disk (emptyDir, hostPath, configMap, secret, downwardAPI,
//!   projected) and each container's mounts of them.
//! - `probe`: liveness, readiness and startup probes (exec, httpGet, tcpSocket, grpc).

pub mod probe;
