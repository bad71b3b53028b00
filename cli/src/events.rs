//! `events`: follow GetContainerEvents, one line per event (text, or protojson with `-o json`),
//! until Ctrl-C, `--count` events, or the runtime ends the stream.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use corral_cri_api::v1;
use serde_json::{Value, json};

use crate::client::{Cri, Deadline};
use crate::runtime_json::{
    container_state_name, container_status_json, pod_state_name, pod_status_json,
};
use crate::timefmt::format_rfc3339_nano;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// `TIME EVENT ID POD STATE`, one line per event.
    Text,
    /// One protojson `ContainerEventResponse` per line.
    Json,
}

/// `events`: stream container and pod sandbox events.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    output: EventsFormat,
    /// Stop after this many events.
    #[arg(short = 'n', long)]
    count: Option<u64>,
}

pub async fn events(cri: &Cri, args: EventsArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let mut request = tonic::Request::new(v1::GetEventsRequest {});
    // A stream has no end to wait for: only an explicit --timeout bounds it.
    if let Some(limit) = cri.deadline(Deadline::Long) {
        request.set_timeout(limit);
    }
    cri.debug(|| "GetContainerEventsRequest: {}".to_owned());
    let mut stream = client
        .get_container_events(request)
        .await
        .context("subscribing to container events")?
        .into_inner();
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let event = tokio::select! {
            next = stream.message() => match next {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(()),
                Err(status) => bail!("container events: {:?}: {}", status.code(), status.message()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let line = match args.output {
            EventsFormat::Text => event_line(&event),
            EventsFormat::Json => event_json(&event).to_string(),
        };
        println!("{line}");
        seen += 1;
    }
    Ok(())
}

fn event_type_name(kind: i32) -> &'static str {
    v1::ContainerEventType::try_from(kind).map_or("UNKNOWN", |k| k.as_str_name())
}

/// `2026-12-02T04:50:00.123456789Z  CONTAINER_STARTED_EVENT  <id>  <pod>_<namespace>  <state>`:
/// the state is the container's, or the pod's for the sandbox's own events.
fn event_line(event: &v1::ContainerEventResponse) -> String {
    let pod = event.pod_sandbox_status.as_ref();
    let pod_name = pod
        .and_then(|p| p.metadata.as_ref())
        .map_or_else(|| "-".to_owned(), |m| format!("{}_{}", m.name, m.namespace));
    let state = match event
        .containers_statuses
        .iter()
        .find(|c| c.id == event.container_id)
    {
        Some(c) => container_state_name(c.state),
        None if pod.is_some_and(|p| p.id == event.container_id) => {
            pod.map_or("-", |p| pod_state_name(p.state))
        }
        None => "-",
    };
    format!(
        "{}  {:<24} {}  {}  {}",
        format_rfc3339_nano(event.created_at),
        event_type_name(event.container_event_type),
        event.container_id,
        pod_name,
        state
    )
}

/// `ContainerEventResponse` in protojson, as crictl prints it.
fn event_json(event: &v1::ContainerEventResponse) -> Value {
    json!({
        "containerId": event.container_id,
        "containerEventType": event_type_name(event.container_event_type),
        "createdAt": event.created_at.to_string(),
        "podSandboxStatus": event.pod_sandbox_status.as_ref().map_or(Value::Null, pod_status_json),
        "containersStatuses": event.containers_statuses.iter().map(container_status_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> v1::ContainerEventResponse {
        v1::ContainerEventResponse {
            container_id: "c1".into(),
            container_event_type: v1::ContainerEventType::ContainerStoppedEvent as i32,
            created_at: 1_700_000_000_123_456_789,
            pod_sandbox_status: Some(v1::PodSandboxStatus {
                id: "p1".into(),
                metadata: Some(v1::PodSandboxMetadata {
                    name: "web".into(),
                    namespace: "default".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers_statuses: vec![v1::ContainerStatus {
                id: "c1".into(),
                state: v1::ContainerState::ContainerExited as i32,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn text_lines_name_the_event_pod_and_state() {
        assert_eq!(
            event_line(&event()),
            "2023-11-14T22:13:20.123456789Z  CONTAINER_STOPPED_EVENT  c1  web_default  CONTAINER_EXITED"
        );
        let mut sandbox = event();
        sandbox.container_id = "p1".into();
        assert!(event_line(&sandbox).ends_with("p1  web_default  SANDBOX_READY"));
    }

    #[test]
    fn json_is_protojson() {
        let doc = event_json(&event());
        assert_eq!(doc["containerEventType"], "CONTAINER_STOPPED_EVENT");
        assert_eq!(doc["createdAt"], "1700000000123456789");
        assert_eq!(doc["podSandboxStatus"]["metadata"]["name"], "web");
        assert_eq!(doc["containersStatuses"][0]["state"], "CONTAINER_EXITED");
    }
}
