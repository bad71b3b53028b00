//! Container queries: `ps` and `inspect`.

use std::collections::HashMap;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use corral_cri_api::v1;

use crate::client::{Cri, Deadline};
use crate::containers::container_status;
use crate::filters::{self, ListView, Pattern};
use crate::output::{self, Format};
use crate::{pods, runtime_json, timefmt};

/// Label kubelet puts on containers naming their pod.
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";

/// Container state as `--state` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContainerStateArg {
    Created,
    Running,
    Exited,
    Unknown,
}

/// `ps`: list containers.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones).
    #[arg(short, long)]
    all: bool,
    /// Only containers whose ID starts with this.
    #[arg(long)]
    id: Option<String>,
    /// Only containers of this pod sandbox.
    #[arg(short, long, value_name = "POD_ID")]
    pod: Option<String>,
    /// Only containers whose name matches this pattern.
    #[arg(long)]
    name: Option<String>,
    /// Only containers in this state.
    #[arg(short, long, value_enum, ignore_case = true)]
    state: Option<ContainerStateArg>,
    /// Only containers with this label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Only containers using this image (name, reference or ID prefix).
    #[arg(long)]
    image: Option<String>,
    #[command(flatten)]
    view: ListView,
}

/// `inspect`: show the status of one or more containers.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true, value_name = "CONTAINER_ID")]
    ids: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
    /// Do not show verbose information.
    #[arg(short, long)]
    quiet: bool,
}

/// The server-side filter `ps` sends; without `-a` (or `--latest`/`--last`) only running ones.
fn container_filter(args: &PsArgs) -> anyhow::Result<Option<v1::ContainerFilter>> {
    let state = match args.state {
        Some(s) => Some(match s {
            ContainerStateArg::Created => v1::ContainerState::ContainerCreated,
            ContainerStateArg::Running => v1::ContainerState::ContainerRunning,
            ContainerStateArg::Exited => v1::ContainerState::ContainerExited,
            ContainerStateArg::Unknown => v1::ContainerState::ContainerUnknown,
        }),
        None if args.all || args.view.latest || args.view.last > 0 => None,
        None => Some(v1::ContainerState::ContainerRunning),
    };
    let filter = v1::ContainerFilter {
        id: args.id.clone().unwrap_or_default(),
        state: state.map(|s| v1::ContainerStateValue { state: s as i32 }),
        pod_sandbox_id: args.pod.clone().unwrap_or_default(),
        label_selector: filters::parse_labels(&args.labels)?,
    };
    Ok((filter != v1::ContainerFilter::default()).then_some(filter))
}

/// Whether the container uses `wanted`: its image name (with or without the Docker Hub
/// defaults), its reference, or a prefix of its image ID.
fn image_matches(container: &v1::Container, wanted: &str) -> bool {
    let name = container.image.as_ref().map_or("", |s| s.image.as_str());
    let user = container
        .image
        .as_ref()
        .map_or("", |s| s.user_specified_image.as_str());
    let normalized = normalize_image(wanted);
    let names = [name, user, container.image_ref.as_str()];
    if names
        .iter()
        .any(|n| !n.is_empty() && (*n == wanted || normalize_image(n) == normalized))
    {
        return true;
    }
    let bare = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    bare.len() >= 3
        && [
            name,
            container.image_ref.as_str(),
            container.image_id.as_str(),
        ]
        .iter()
        .any(|id| id.strip_prefix("sha256:").unwrap_or(id).starts_with(bare))
}

/// `busybox` → `docker.io/library/busybox:latest`.
fn normalize_image(name: &str) -> String {
    let (repo, suffix) = match name.split_once('@') {
        Some((repo, digest)) => (repo.to_owned(), format!("@{digest}")),
        None => match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), format!(":{tag}")),
            _ => (name.to_owned(), ":latest".to_owned()),
        },
    };
    let first = repo.split('/').next().unwrap_or("");
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if has_host {
        repo
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{repo}{suffix}")
}

pub async fn ps(cri: &Cri, args: PsArgs) -> anyhow::Result<()> {
    let filter = container_filter(&args)?;
    let name = args.name.as_deref().map(Pattern::new).transpose()?;
    let mut client = cri.runtime().await?;
    let request = v1::ListContainersRequest { filter };
    let mut containers = cri
        .call("ListContainers", Deadline::Call, request, |r| {
            client.list_containers(r)
        })
        .await
        .context("listing containers")?
        .containers;
    containers.retain(|c| {
        let meta_name = c.metadata.as_ref().map_or("", |m| m.name.as_str());
        filters::matches(name.as_ref(), meta_name)
            && args.image.as_deref().is_none_or(|i| image_matches(c, i))
    });
    args.view.newest(&mut containers, |c| c.created_at);
    let text = match args.view.output {
        Format::Json | Format::Yaml => {
            output::render(
                &runtime_json::containers_json(&containers),
                args.view.output,
            )? + "\n"
        }
        Format::Table if args.view.quiet => {
            containers.iter().map(|c| format!("{}\n", c.id)).collect()
        }
        Format::Table if args.view.verbose => containers_verbose(&containers),
        Format::Table => {
            let mut pod_names = HashMap::new();
            if containers
                .iter()
                .any(|c| !c.labels.contains_key(POD_NAME_LABEL))
            {
                // Best effort: the POD column falls back to "unknown".
                if let Ok(pods) = pods::list_pods(cri, &mut client, None).await {
                    for pod in pods {
                        pod_names.insert(pod.id, pod.metadata.unwrap_or_default().name);
                    }
                }
            }
            containers_table(
                &containers,
                &pod_names,
                args.view.no_trunc,
                timefmt::now_nanos(),
            )
        }
    };
    print!("{text}");
    Ok(())
}

/// crictl's short state names.
pub fn container_state_label(state: i32) -> &'static str {
    match v1::ContainerState::try_from(state) {
        Ok(v1::ContainerState::ContainerCreated) => "Created",
        Ok(v1::ContainerState::ContainerRunning) => "Running",
        Ok(v1::ContainerState::ContainerExited) => "Exited",
        _ => "Unknown",
    }
}

pub fn containers_table(
    containers: &[v1::Container],
    pod_names: &HashMap<String, String>,
    no_trunc: bool,
    now: i64,
) -> String {
    let header = [
        "CONTAINER",
        "IMAGE",
        "CREATED",
        "STATE",
        "NAME",
        "ATTEMPT",
        "POD ID",
        "POD",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for c in containers {
        let meta = c.metadata.clone().unwrap_or_default();
        let mut image = c.image.as_ref().map_or(String::new(), |s| s.image.clone());
        let (mut id, mut pod_id) = (c.id.clone(), c.pod_sandbox_id.clone());
        if !no_trunc {
            id = output::truncate_id(&id);
            pod_id = output::truncate_id(&pod_id);
            // kubelet passes image IDs; those are truncated like IDs.
            if image.starts_with("sha256:") {
                image = output::truncate_id(&image);
            }
        }
        let pod = c
            .labels
            .get(POD_NAME_LABEL)
            .or_else(|| pod_names.get(&c.pod_sandbox_id))
            .filter(|n| !n.is_empty())
            .map_or("unknown".to_owned(), Clone::clone);
        rows.push(vec![
            id,
            image,
            timefmt::ago(c.created_at, now),
            container_state_label(c.state).to_owned(),
            meta.name,
            meta.attempt.to_string(),
            pod_id,
            pod,
        ]);
    }
    output::render_table(&rows)
}

fn containers_verbose(containers: &[v1::Container]) -> String {
    let mut out = String::new();
    for c in containers {
        out.push_str(&format!("ID: {}\n", c.id));
        out.push_str(&format!("PodSandboxID: {}\n", c.pod_sandbox_id));
        if let Some(m) = &c.metadata {
            out.push_str(&format!("Name: {}\nAttempt: {}\n", m.name, m.attempt));
        }
        out.push_str(&format!(
            "State: {}\n",
            runtime_json::container_state_name(c.state)
        ));
        if let Some(image) = &c.image {
            out.push_str(&format!("Image: {}\n", image.image));
        }
        out.push_str(&format!(
            "Created: {}\n",
            timefmt::format_rfc3339_nano(c.created_at)
        ));
        let mut labels: Vec<_> = c.labels.iter().collect();
        labels.sort();
        if !labels.is_empty() {
            out.push_str("Labels:\n");
            for (k, v) in labels {
                out.push_str(&format!("\t{k} -> {v}\n"));
            }
        }
        out.push('\n');
    }
    out
}

fn status_table(status: &v1::ContainerStatus) -> String {
    let meta = status.metadata.clone().unwrap_or_default();
    let mut out = format!(
        "ID: {}\nName: {}\nState: {}\nCreated: {}\n",
        status.id,
        meta.name,
        runtime_json::container_state_name(status.state),
        timefmt::format_rfc3339_nano(status.created_at)
    );
    if status.started_at != 0 {
        out.push_str(&format!(
            "Started: {}\n",
            timefmt::format_rfc3339_nano(status.started_at)
        ));
    }
    if status.state == v1::ContainerState::ContainerExited as i32 {
        out.push_str(&format!(
            "Finished: {}\nExit Code: {}\nReason: {}\n",
            timefmt::format_rfc3339_nano(status.finished_at),
            status.exit_code,
            status.reason
        ));
    }
    out
}

pub async fn inspect(cri: &Cri, args: InspectArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let mut docs = Vec::new();
    for id in &args.ids {
        let response = container_status(cri, &mut client, id, !args.quiet).await?;
        let Some(status) = &response.status else {
            bail!("no status for container {id:?}");
        };
        if args.output == Format::Table {
            print!("{}", status_table(status));
            continue;
        }
        docs.push(output::status_document(
            vec![("status", runtime_json::container_status_json(status))],
            &response.info,
        ));
    }
    if !docs.is_empty() {
        println!("{}", output::render(&output::combine(docs), args.output)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
