//! Requests with fields at absurd sizes and NUL bytes where paths go, strings that are not
//! UTF-8 and messages over the 16 MiB limit: each is refused with a code and a message naming
//! the field (or the size and the limit), the daemon stays up and small, and nothing is stored.

use crate::common;

use std::collections::HashMap;

use anyhow::Result;
use common::pod::{PodEnv, env};
use corral_cri_api::v1::{
    CreateContainerRequest, KeyValue, ListContainersRequest, ListPodSandboxRequest, Mount,
    PodSandboxConfig, RunPodSandboxRequest,
};
use tonic::Code;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn assert_refused(
    what: &str,
    result: Result<impl std::fmt::Debug, tonic::Status>,
    codes: &[Code],
    field: &str,
) {
    let status = result.expect_err(what);
    assert!(
        codes.contains(&status.code()),
        "{what}: {:?} {}",
        status.code(),
        status.message()
    );
    assert!(
        status.message().contains(field),
        "{what}: the message names {field:?}: {}",
        status.message()
    );
}

async fn run_pod(e: &mut PodEnv, config: PodSandboxConfig) -> Result<String, tonic::Status> {
    e.rt.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    })
    .await
    .map(|r| r.into_inner().pod_sandbox_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_requests_are_refused_naming_the_field_and_store_nothing() -> Result<()> {
    let mut e = env().await?;
    let mib = "x".repeat(1 << 20);
    let invalid = [Code::InvalidArgument];
    let too_big = [Code::ResourceExhausted];

    // Pods.
    let mut config = e.pod_config("big");
    config.labels.insert("big".into(), mib.clone());
    assert_refused(
        "1 MiB label",
        run_pod(&mut e, config).await,
        &invalid,
        "labels",
    );
    let mut config = e.pod_config("big");
    config.annotations.insert("big".into(), mib.clone());
    assert_refused(
        "1 MiB annotation",
        run_pod(&mut e, config).await,
        &invalid,
        "annotations",
    );
    let mut config = e.pod_config("huge");
    config
        .annotations
        .insert("huge".into(), "x".repeat(17 << 20));
    assert_refused(
        "a 17 MiB message",
        run_pod(&mut e, config).await,
        &too_big,
        "message",
    );
    let mut config = e.pod_config("nul");
    config.log_directory = "/var/log/pods/a\0b".into();
    assert_refused(
        "NUL in log_directory",
        run_pod(&mut e, config).await,
        &invalid,
        "log_directory",
    );

    // Containers, in a pod that exists.
    let pod = e.run_pod("ok").await?;
    let base = e.ctr_config("c", &["true"]);
    let mut cases: Vec<(&str, corral_cri_api::v1::ContainerConfig, &str)> = Vec::new();
    let mut c = base.clone();
    c.envs = (0..100_000)
        .map(|i| KeyValue {
            key: format!("VAR_{i}"),
            value: "value".into(),
        })
        .collect();
    cases.push(("100 000 env entries", c, "envs"));
    let mut c = base.clone();
    c.args = (0..100_000).map(|i| format!("argument-{i}")).collect();
    cases.push(("a 100 000-argument command", c, "args"));
    let mut c = base.clone();
    c.labels = HashMap::from([("big".to_string(), mib.clone())]);
    cases.push(("1 MiB container label", c, "labels"));
    let mut c = base.clone();
    c.working_dir = "/tmp\0/etc".into();
    cases.push(("NUL in working_dir", c, "working_dir"));
    let mut c = base.clone();
    c.log_path = "c\0.log".into();
    cases.push(("NUL in log_path", c, "log_path"));
    let mut c = base.clone();
    c.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/tmp\0/etc".into(),
        ..Default::default()
    }];
    cases.push(("NUL in a mount's host_path", c, "mounts[0].host_path"));
    let mut c = base.clone();
    c.command = vec!["sh\0".into()];
    cases.push(("NUL in the command", c, "command[0]"));
    for (what, config, field) in cases {
        let sandbox_config = e.pod_config("ok");
        let r =
            e.rt.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        assert_refused(what, r, &invalid, field);
    }

    // Nothing was stored: one pod (the good one), no container.
    let pods =
        e.rt.list_pod_sandbox(ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items;
    assert_eq!(pods.len(), 1, "{pods:?}");
    let ctrs =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
    assert!(ctrs.is_empty(), "{ctrs:?}");
    // The daemon is still small: the requests were read (16 MiB at most each) and dropped.
    let rss = rss_kib(e.d.pid().unwrap_or(0));
    assert!(rss < 200 << 10, "corrald RSS {rss} KiB after the requests");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// A codec for requests as raw protobuf bytes (what the typed client cannot send: strings that
/// are not UTF-8), with the response kept as bytes too.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf as _;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Sends `body` as the request of `path` (`/runtime.v1.RuntimeService/RunPodSandbox`) over
/// the daemon's socket.
async fn call_raw(e: &PodEnv, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let channel =
        e.d.channel()
            .await
            .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// `msg` encoded, with the first byte of `marker` (which must occur once) replaced by 0xff:
/// the field that held `marker` is no longer UTF-8, the rest of the request is as sent.
fn not_utf8(msg: &impl prost::Message, marker: &str) -> Vec<u8> {
    let mut bytes = msg.encode_to_vec();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the marker is in the message");
    bytes[at] = 0xff;
    bytes
}

/// Counts the entries of `dir` (absent: none).
fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| rd.count())
}

/// Asserts the daemon holds exactly `pods` pods and no container, in memory and on disk.
async fn assert_stored(e: &mut PodEnv, pods: usize) -> Result<()> {
    let listed =
        e.rt.list_pod_sandbox(ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items;
    assert_eq!(listed.len(), pods, "{listed:?}");
    let ctrs =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
    assert!(ctrs.is_empty(), "{ctrs:?}");
    for base in [e.d.root(), e.d.state()] {
        assert_eq!(entries(&base.join("pods")), pods, "{}", base.display());
        assert_eq!(entries(&base.join("containers")), 0, "{}", base.display());
    }
    Ok(())
}

/// A string field that is not UTF-8, anywhere in a request to any of the daemon's services,
/// is INVALID_ARGUMENT naming the message and field (it was INTERNAL, from tonic's decoder),
/// stores nothing, and the daemon answers on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_that_are_not_utf8_are_invalid_argument_naming_the_field() -> Result<()> {
    use corral_cri_api::corral::ApplyRequest;
    use corral_cri_api::v1::{ImageSpec, PullImageRequest};

    let mut e = env().await?;
    let pod = e.run_pod("ok").await?;
    let mut cases: Vec<(&str, &'static str, Vec<u8>, &[&str])> = Vec::new();

    let mut config = e.pod_config("utf8");
    config.labels.insert("app".into(), "MARKER-label".into());
    let request = RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    };
    cases.push((
        "a label value",
        "/runtime.v1.RuntimeService/RunPodSandbox",
        not_utf8(&request, "MARKER-label"),
        &["PodSandboxConfig.labels", "RunPodSandboxRequest.config"],
    ));
    let mut config = e.pod_config("utf8");
    config.log_directory = "/var/log/MARKER-dir".into();
    let request = RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    };
    cases.push((
        "the log directory",
        "/runtime.v1.RuntimeService/RunPodSandbox",
        not_utf8(&request, "MARKER-dir"),
        &["PodSandboxConfig.log_directory"],
    ));

    let container = |config| CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(config),
        sandbox_config: Some(e.pod_config("ok")),
    };
    let mut c = e.ctr_config("c", &["true"]);
    c.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/tmp/MARKER-mount".into(),
        ..Default::default()
    }];
    cases.push((
        "a mount's host_path",
        "/runtime.v1.RuntimeService/CreateContainer",
        not_utf8(&container(c), "MARKER-mount"),
        &["Mount.host_path", "ContainerConfig.mounts"],
    ));
    let c = e.ctr_config("c", &["MARKER-cmd"]);
    cases.push((
        "the command",
        "/runtime.v1.RuntimeService/CreateContainer",
        not_utf8(&container(c), "MARKER-cmd"),
        &["ContainerConfig.command"],
    ));
    let mut c = e.ctr_config("c", &["true"]);
    c.labels.insert("MARKER-key".into(), "v".into());
    cases.push((
        "a container label key",
        "/runtime.v1.RuntimeService/CreateContainer",
        not_utf8(&container(c), "MARKER-key"),
        &["ContainerConfig.labels"],
    ));

    let request = PullImageRequest {
        image: Some(ImageSpec {
            image: "example.com/MARKER-image:1".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    cases.push((
        "an image name",
        "/runtime.v1.ImageService/PullImage",
        not_utf8(&request, "MARKER-image"),
        &["ImageSpec.image", "PullImageRequest.image"],
    ));
    let request = ApplyRequest {
        manifest: "kind: Pod # MARKER-manifest".into(),
        ..Default::default()
    };
    cases.push((
        "a manifest",
        "/corral.v1.KubeService/Apply",
        not_utf8(&request, "MARKER-manifest"),
        &["ApplyRequest.manifest"],
    ));

    for (what, path, body, fields) in cases {
        let status = call_raw(&e, path, body).await.expect_err(what);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{what}: {}",
            status.message()
        );
        for field in fields.iter().chain(&["UTF-8"]) {
            assert!(
                status.message().contains(field),
                "{what}: the message names {field:?}: {}",
                status.message()
            );
        }
    }

    // Nothing was stored, and the daemon answers on: a pod and a container still run.
    assert_stored(&mut e, 1).await?;
    let id = e.start(&pod, "ok", "after", &["true"]).await?;
    e.wait_exited(&id, std::time::Duration::from_secs(20))
        .await?;
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// A request message over the daemon's 16 MiB limit is RESOURCE_EXHAUSTED, as grpc-go answers
/// it, naming its size and the limit (it was OUT_OF_RANGE, from tonic's decoder), on every
/// service; nothing is stored and the daemon answers on, still small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_resource_exhausted_naming_size_and_limit() -> Result<()> {
    let mut e = env().await?;
    let limit = 16usize << 20;
    let just_over = vec![b'x'; limit + 1];
    for path in [
        "/runtime.v1.RuntimeService/RunPodSandbox",
        "/runtime.v1.RuntimeService/CreateContainer",
        "/runtime.v1.ImageService/PullImage",
        "/corral.v1.KubeService/Apply",
    ] {
        // The bytes need not be a valid message: the length is refused before they are read.
        let status = call_raw(&e, path, just_over.clone()).await.expect_err(path);
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{path}: {}",
            status.message()
        );
        for part in [format!("{} bytes", limit + 1), format!("{limit} bytes")] {
            assert!(
                status.message().contains(&part),
                "{path}: the message names {part:?}: {}",
                status.message()
            );
        }
    }
    // Exactly the limit is still read (and then refused for what it holds: not a pod).
    let mut config = e.pod_config("at-limit");
    let request = RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    };
    let overhead = prost::Message::encoded_len(&request) + 32;
    config
        .annotations
        .insert("big".into(), "x".repeat(limit - overhead));
    let request = RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    };
    let body = prost::Message::encode_to_vec(&request);
    assert!(body.len() <= limit, "{} bytes", body.len());
    let status = call_raw(&e, "/runtime.v1.RuntimeService/RunPodSandbox", body)
        .await
        .expect_err("annotations over their limit");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(
        status.message().contains("annotations"),
        "{}",
        status.message()
    );

    assert_stored(&mut e, 0).await?;
    let rss = rss_kib(e.d.pid().unwrap_or(0));
    assert!(rss < 200 << 10, "corrald RSS {rss} KiB after the requests");
    let pod = e.run_pod("after").await?;
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
