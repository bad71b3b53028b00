//! GetContainerEvents through the socket: the events of a pod's and its containers' lives as
//! the kubelet's evented PLEG reads them, several subscribers, and a subscriber that stops
//! reading being dropped without holding the daemon up.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use common::pod::{PodEnv, env_with, host_network};
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use corral_cri_api::v1::{
    ContainerEventResponse, ContainerEventType, ContainerState, GetEventsRequest, PodSandboxState,
    RemoveContainerRequest, StopPodSandboxRequest,
};
use corral_tests::daemon::DaemonOptions;
use tonic::Streaming;

type Events = Streaming<ContainerEventResponse>;

async fn subscribe(e: &mut PodEnv) -> Result<Events> {
    Ok(e.rt
        .get_container_events(GetEventsRequest {})
        .await?
        .into_inner())
}

async fn next(events: &mut Events) -> Result<ContainerEventResponse> {
    match tokio::time::timeout(Duration::from_secs(10), events.message()).await {
        Ok(Ok(Some(ev))) => Ok(ev),
        Ok(Ok(None)) => bail!("the event stream ended"),
        Ok(Err(status)) => bail!("the event stream failed: {status:?}"),
        Err(_) => bail!("no event within 10 s"),
    }
}

/// Reads the next event and checks it is `kind` about `id`.
async fn expect(
    events: &mut Events,
    id: &str,
    kind: ContainerEventType,
) -> Result<ContainerEventResponse> {
    let ev = next(events).await?;
    let got = ContainerEventType::try_from(ev.container_event_type)?;
    if (ev.container_id.as_str(), got) != (id, kind) {
        bail!(
            "expected {kind:?} for {id}, got {got:?} for {}",
            ev.container_id
        );
    }
    Ok(ev)
}

fn pod_state(ev: &ContainerEventResponse) -> Option<i32> {
    ev.pod_sandbox_status.as_ref().map(|s| s.state)
}

/// The state of container `id` among the statuses the event carries.
fn ctr_state(ev: &ContainerEventResponse, id: &str) -> Option<(i32, i32)> {
    ev.containers_statuses
        .iter()
        .find(|s| s.id == id)
        .map(|s| (s.state, s.exit_code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_pods_and_containers_for_every_subscriber() -> Result<()> {
    use ContainerEventType::*;
    let mut e = env_with(DaemonOptions::default()).await?;
    let mut subs = vec![subscribe(&mut e).await?, subscribe(&mut e).await?];
    let config = host_network(e.pod_config("ev"));
    let pod = e.run_pod_with(config).await?;
    let done = e.start(&pod, "ev", "done", &["sh", "-c", "exit 3"]).await?;
    e.wait_exited(&done, Duration::from_secs(10)).await?;
    e.rt.remove_container(RemoveContainerRequest {
        container_id: done.clone(),
    })
    .await?;
    let sleeper = e.start(&pod, "ev", "sleeper", &["sleep", "1000"]).await?;
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await?;
    e.remove_pod(&pod).await?;

    let running = ContainerState::ContainerRunning as i32;
    let exited = ContainerState::ContainerExited as i32;
    let ready = PodSandboxState::SandboxReady as i32;
    let not_ready = PodSandboxState::SandboxNotready as i32;
    for events in &mut subs {
        // The sandbox's own events carry its ID as the container ID.
        let ev = expect(events, &pod, ContainerCreatedEvent).await?;
        let md = ev
            .pod_sandbox_status
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .context("pod metadata (the kubelet keys events by the pod UID)")?;
        assert_eq!(md.uid, "ev-uid");
        expect(events, &pod, ContainerStartedEvent).await?;
        let ev = expect(events, &done, ContainerCreatedEvent).await?;
        assert_eq!(
            ctr_state(&ev, &done),
            Some((ContainerState::ContainerCreated as i32, 0))
        );
        let ev = expect(events, &done, ContainerStartedEvent).await?;
        assert_eq!(ctr_state(&ev, &done).map(|s| s.0), Some(running));
        // It exited by itself: STOPPED without any StopContainer, with its exit code.
        let ev = expect(events, &done, ContainerStoppedEvent).await?;
        assert_eq!(ctr_state(&ev, &done), Some((exited, 3)));
        assert_eq!(pod_state(&ev), Some(ready));
        let ev = expect(events, &done, ContainerDeletedEvent).await?;
        assert_eq!(ctr_state(&ev, &done), None, "a deleted container is gone");
        expect(events, &sleeper, ContainerCreatedEvent).await?;
        expect(events, &sleeper, ContainerStartedEvent).await?;
        // StopPodSandbox: the container is killed, then the sandbox stops.
        let ev = expect(events, &sleeper, ContainerStoppedEvent).await?;
        assert_eq!(ctr_state(&ev, &sleeper), Some((exited, 137)));
        let ev = expect(events, &pod, ContainerStoppedEvent).await?;
        assert_eq!(pod_state(&ev), Some(not_ready));
        expect(events, &sleeper, ContainerDeletedEvent).await?;
        let ev = expect(events, &pod, ContainerDeletedEvent).await?;
        assert_eq!(
            ev.pod_sandbox_status.as_ref().map(|s| s.id.as_str()),
            Some(pod.as_str()),
            "the sandbox's last status goes with its DELETED event"
        );
        assert!(ev.containers_statuses.is_empty());
        assert!(ev.created_at > 0);
    }
    e.assert_clean();
    Ok(())
}

/// A client whose HTTP/2 stream window is tiny, so it holds only a few events unread and the
/// daemon's per-subscriber queue is what fills up.
async fn stingy_client(e: &PodEnv) -> Result<RuntimeServiceClient<tonic::transport::Channel>> {
    let path = e.d.socket();
    let channel = tonic::transport::Endpoint::from_static("http://corral.invalid")
        .initial_stream_window_size(Some(1024))
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await?;
    Ok(RuntimeServiceClient::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_dropped_and_never_blocks_the_daemon() -> Result<()> {
    let mut e = env_with(DaemonOptions {
        extra_config: "[events]\nsubscriber_buffer = 8\n".into(),
        ..DaemonOptions::default()
    })
    .await?;
    let mut slow = stingy_client(&e)
        .await?
        .get_container_events(GetEventsRequest {})
        .await?
        .into_inner();
    let mut fast = subscribe(&mut e).await?;
    let pod = e.run_pod_with(host_network(e.pod_config("slow"))).await?;
    // 2 + 3 * 40 events while `slow` reads nothing (removing a created container kills its
    // waiting process: STOPPED comes before DELETED).
    let begun = Instant::now();
    let mut ids = Vec::new();
    for i in 0..40 {
        let config = e.ctr_config(&format!("c{i}"), &["true"]);
        let id = e.create(&pod, "slow", config).await?;
        e.rt.remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await?;
        ids.push(id);
    }
    let took = begun.elapsed();
    // The fast subscriber saw every event, in order.
    next(&mut fast).await?;
    next(&mut fast).await?;
    for id in &ids {
        expect(&mut fast, id, ContainerEventType::ContainerCreatedEvent).await?;
        expect(&mut fast, id, ContainerEventType::ContainerStoppedEvent).await?;
        expect(&mut fast, id, ContainerEventType::ContainerDeletedEvent).await?;
    }
    // The slow one gets what was queued for it, then the reason it was dropped.
    let mut delivered = 0;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.message()).await? {
            Ok(Some(_)) => delivered += 1,
            Ok(None) => bail!("the slow stream ended without a status after {delivered} events"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("fell 8 events behind"),
        "{status:?}"
    );
    assert!(
        delivered < 122,
        "dropped before the end: {delivered} events"
    );
    assert!(
        e.d.log().contains("dropping a subscriber that fell behind"),
        "logged"
    );
    eprintln!("40 creates+removes with a stalled subscriber: {took:?}; it got {delivered} events");
    // The fast subscriber is still served.
    e.remove_pod(&pod).await?;
    expect(&mut fast, &pod, ContainerEventType::ContainerStoppedEvent).await?;
    expect(&mut fast, &pod, ContainerEventType::ContainerDeletedEvent).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_end_when_the_daemon_stops() -> Result<()> {
    let mut e = env_with(DaemonOptions::default()).await?;
    let mut events = subscribe(&mut e).await?;
    let begun = Instant::now();
    e.d.stop()?;
    let end = tokio::time::timeout(Duration::from_secs(5), events.message()).await?;
    let status = end.expect_err("a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "the open stream did not hold the daemon up for the grace period: {:?}",
        begun.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corralctl_events_prints_one_json_document_per_event() -> Result<()> {
    let mut e = env_with(DaemonOptions::default()).await?;
    let ctl = corral_tests::daemon::corrald_bin().with_file_name("corralctl");
    let child = tokio::process::Command::new(ctl)
        .arg("-r")
        .arg(e.d.socket())
        .args(["events", "-o", "json", "-n", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // Wait until corralctl has subscribed (the daemon logs it), then make two events.
    let until = Instant::now() + Duration::from_secs(10);
    while !e.d.log().contains("GetContainerEvents: new subscriber") {
        if Instant::now() > until {
            bail!("corralctl did not subscribe within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pods = vec![
        e.run_pod_with(host_network(e.pod_config("ctl-last")))
            .await?,
    ];
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await??;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let docs: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(docs.len(), 2, "{text}");
    let last = pods.last().context("a pod")?;
    assert_eq!(docs[0]["containerEventType"], "CONTAINER_CREATED_EVENT");
    assert_eq!(docs[1]["containerEventType"], "CONTAINER_STARTED_EVENT");
    assert_eq!(docs[1]["containerId"], last.as_str());
    assert_eq!(
        docs[1]["podSandboxStatus"]["metadata"]["uid"],
        "ctl-last-uid"
    );
    for pod in pods {
        e.remove_pod(&pod).await?;
    }
    e.assert_clean();
    Ok(())
}
