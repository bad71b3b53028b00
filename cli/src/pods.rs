//! Pod sandbox commands: `runp`, `stopp`, `rmp`, `pods`, `inspectp`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use corral_cri_api::v1;
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::client::{Cri, Deadline};
use crate::filters::{self, ListView, Pattern};
use crate::output::{self, Format};
use crate::{config_file, runtime_json, timefmt};

pub type RuntimeClient = RuntimeServiceClient<Channel>;

/// `runp`: run a new pod sandbox.
#[derive(Debug, Args)]
pub struct RunpArgs {
    /// Runtime handler to use (available ones are defined by the runtime).
    #[arg(long, visible_alias = "runtime", value_name = "HANDLER")]
    pub runtime_handler: Option<String>,
    /// Pod sandbox config file (JSON or YAML).
    #[arg(value_name = "POD_CONFIG")]
    pub config: PathBuf,
}

/// `stopp`: stop one or more pod sandboxes.
#[derive(Debug, Args)]
pub struct StoppArgs {
    #[arg(required = true, value_name = "POD_ID")]
    ids: Vec<String>,
}

/// `rmp`: remove one or more pod sandboxes.
#[derive(Debug, Args)]
pub struct RmpArgs {
    #[arg(value_name = "POD_ID", required_unless_present = "all")]
    ids: Vec<String>,
    /// Stop the pod sandboxes first if they are running.
    #[arg(short, long)]
    force: bool,
    /// Remove all pod sandboxes.
    #[arg(short, long)]
    all: bool,
}

/// Pod state as `--state` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PodState {
    Ready,
    #[value(alias = "not-ready", alias = "not_ready")]
    Notready,
}

/// `pods`: list pod sandboxes.
#[derive(Debug, Args)]
pub struct PodsArgs {
    /// Only pods whose ID starts with this.
    #[arg(long)]
    id: Option<String>,
    /// Only pods whose name matches this pattern.
    #[arg(long)]
    name: Option<String>,
    /// Only pods whose namespace matches this pattern.
    #[arg(long)]
    namespace: Option<String>,
    /// Only pods in this state.
    #[arg(short, long, value_enum, ignore_case = true)]
    state: Option<PodState>,
    /// Only pods with this label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    #[command(flatten)]
    view: ListView,
}

/// `inspectp`: show the status of one or more pod sandboxes.
#[derive(Debug, Args)]
pub struct InspectpArgs {
    #[arg(required = true, value_name = "POD_ID")]
    ids: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
    /// Do not show verbose information.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs a pod sandbox from a config and returns its ID.
pub async fn run_pod(
    cri: &Cri,
    client: &mut RuntimeClient,
    config: v1::PodSandboxConfig,
    handler: Option<String>,
) -> anyhow::Result<String> {
    let request = v1::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: handler.unwrap_or_default(),
    };
    let response = cri
        .call("RunPodSandbox", Deadline::Long, request, |r| {
            client.run_pod_sandbox(r)
        })
        .await
        .context("running pod sandbox")?;
    Ok(response.pod_sandbox_id)
}

pub async fn runp(cri: &Cri, args: RunpArgs) -> anyhow::Result<()> {
    let config = config_file::load_pod_config(&args.config)?;
    let mut client = cri.runtime().await?;
    let id = run_pod(cri, &mut client, config, args.runtime_handler).await?;
    println!("{id}");
    Ok(())
}

async fn pod_status(
    cri: &Cri,
    client: &mut RuntimeClient,
    id: &str,
    verbose: bool,
) -> anyhow::Result<v1::PodSandboxStatusResponse> {
    let request = v1::PodSandboxStatusRequest {
        pod_sandbox_id: id.to_owned(),
        verbose,
    };
    cri.call("PodSandboxStatus", Deadline::Call, request, |r| {
        client.pod_sandbox_status(r)
    })
    .await
    .with_context(|| format!("getting the pod sandbox status of {id:?}"))
}

async fn stop_one(cri: &Cri, client: &mut RuntimeClient, id: &str) -> anyhow::Result<()> {
    let request = v1::StopPodSandboxRequest {
        pod_sandbox_id: id.to_owned(),
    };
    cri.call("StopPodSandbox", Deadline::Long, request, |r| {
        client.stop_pod_sandbox(r)
    })
    .await
    .with_context(|| format!("stopping the pod sandbox {id:?}"))?;
    Ok(())
}

/// Runs `action` on every ID, reporting each failure and failing at the end if any did.
pub async fn for_each<'a, F>(ids: &'a [String], what: &str, mut action: F) -> anyhow::Result<()>
where
    F: AsyncFnMut(&'a str) -> anyhow::Result<()>,
{
    let mut failed = 0;
    for id in ids {
        if let Err(err) = action(id).await {
            eprintln!("corralctl: {err:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("unable to {what} {failed} of {} item(s)", ids.len());
    }
    Ok(())
}

pub async fn stopp(cri: &Cri, args: StoppArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    for_each(&args.ids, "stop", async |id| {
        stop_one(cri, &mut client, id).await?;
        println!("Stopped sandbox {id}");
        Ok(())
    })
    .await
}

pub async fn rmp(cri: &Cri, args: RmpArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let mut ids = args.ids.clone();
    if args.all {
        let pods = list_pods(cri, &mut client, None).await?;
        ids.extend(pods.into_iter().map(|p| p.id));
    }
    if ids.is_empty() {
        eprintln!("No pods to remove");
        return Ok(());
    }
    for_each(&ids, "remove", async |id| {
        let status = pod_status(cri, &mut client, id, false).await?;
        let ready = status
            .status
            .is_some_and(|s| s.state == v1::PodSandboxState::SandboxReady as i32);
        if ready {
            if !args.force {
                bail!("pod sandbox {id:?} is running, please stop it first (or use -f)");
            }
            stop_one(cri, &mut client, id).await?;
        }
        let request = v1::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        cri.call("RemovePodSandbox", Deadline::Long, request, |r| {
            client.remove_pod_sandbox(r)
        })
        .await
        .with_context(|| format!("removing the pod sandbox {id:?}"))?;
        println!("Removed sandbox {id}");
        Ok(())
    })
    .await
}

pub async fn list_pods(
    cri: &Cri,
    client: &mut RuntimeClient,
    filter: Option<v1::PodSandboxFilter>,
) -> anyhow::Result<Vec<v1::PodSandbox>> {
    let request = v1::ListPodSandboxRequest { filter };
    let response = cri
        .call("ListPodSandbox", Deadline::Call, request, |r| {
            client.list_pod_sandbox(r)
        })
        .await
        .context("listing pod sandboxes")?;
    Ok(response.items)
}

/// The server-side filter `pods` sends.
fn pod_filter(args: &PodsArgs) -> anyhow::Result<Option<v1::PodSandboxFilter>> {
    let filter = v1::PodSandboxFilter {
        id: args.id.clone().unwrap_or_default(),
        state: args.state.map(|s| v1::PodSandboxStateValue {
            state: match s {
                PodState::Ready => v1::PodSandboxState::SandboxReady,
                PodState::Notready => v1::PodSandboxState::SandboxNotready,
            } as i32,
        }),
        label_selector: filters::parse_labels(&args.labels)?,
    };
    Ok((filter != v1::PodSandboxFilter::default()).then_some(filter))
}

pub async fn pods(cri: &Cri, args: PodsArgs) -> anyhow::Result<()> {
    let filter = pod_filter(&args)?;
    let name = args.name.as_deref().map(Pattern::new).transpose()?;
    let namespace = args.namespace.as_deref().map(Pattern::new).transpose()?;
    let mut client = cri.runtime().await?;
    let mut pods = list_pods(cri, &mut client, filter).await?;
    pods.retain(|p| {
        let meta = p.metadata.clone().unwrap_or_default();
        filters::matches(name.as_ref(), &meta.name)
            && filters::matches(namespace.as_ref(), &meta.namespace)
    });
    args.view.newest(&mut pods, |p| p.created_at);
    let text = match args.view.output {
        Format::Json | Format::Yaml => {
            output::render(&runtime_json::pods_json(&pods), args.view.output)? + "\n"
        }
        Format::Table if args.view.quiet => pods.iter().map(|p| format!("{}\n", p.id)).collect(),
        Format::Table if args.view.verbose => pods_verbose(&pods),
        Format::Table => pods_table(&pods, args.view.no_trunc, timefmt::now_nanos()),
    };
    print!("{text}");
    Ok(())
}

/// crictl's short state names.
pub fn pod_state_label(state: i32) -> &'static str {
    match v1::PodSandboxState::try_from(state) {
        Ok(v1::PodSandboxState::SandboxReady) => "Ready",
        Ok(v1::PodSandboxState::SandboxNotready) => "NotReady",
        Err(_) => "Unknown",
    }
}

fn id_column(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_owned()
    } else {
        output::truncate_id(id)
    }
}

pub fn pods_table(pods: &[v1::PodSandbox], no_trunc: bool, now: i64) -> String {
    let header = [
        "POD ID",
        "CREATED",
        "STATE",
        "NAME",
        "NAMESPACE",
        "ATTEMPT",
        "RUNTIME",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for pod in pods {
        let meta = pod.metadata.clone().unwrap_or_default();
        let handler = if pod.runtime_handler.is_empty() {
            "(default)".to_owned()
        } else {
            pod.runtime_handler.clone()
        };
        rows.push(vec![
            id_column(&pod.id, no_trunc),
            timefmt::ago(pod.created_at, now),
            pod_state_label(pod.state).to_owned(),
            meta.name,
            meta.namespace,
            meta.attempt.to_string(),
            handler,
        ]);
    }
    output::render_table(&rows)
}

fn sorted_pairs(map: &std::collections::HashMap<String, String>) -> String {
    let mut keys: Vec<_> = map.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| format!("\t{k} -> {}\n", map[*k]))
        .collect()
}

fn pods_verbose(pods: &[v1::PodSandbox]) -> String {
    let mut out = String::new();
    for pod in pods {
        out.push_str(&format!("ID: {}\n", pod.id));
        if let Some(m) = &pod.metadata {
            for (key, value) in [
                ("Name", &m.name),
                ("UID", &m.uid),
                ("Namespace", &m.namespace),
            ] {
                if !value.is_empty() {
                    out.push_str(&format!("{key}: {value}\n"));
                }
            }
            if m.attempt != 0 {
                out.push_str(&format!("Attempt: {}\n", m.attempt));
            }
        }
        out.push_str(&format!("Status: {}\n", pod_state_label(pod.state)));
        out.push_str(&format!(
            "Created: {}\n",
            timefmt::format_rfc3339_nano(pod.created_at)
        ));
        if !pod.labels.is_empty() {
            out.push_str(&format!("Labels:\n{}", sorted_pairs(&pod.labels)));
        }
        if !pod.annotations.is_empty() {
            out.push_str(&format!("Annotations:\n{}", sorted_pairs(&pod.annotations)));
        }
        if !pod.runtime_handler.is_empty() {
            out.push_str(&format!("Runtime handler: {}\n", pod.runtime_handler));
        }
        out.push('\n');
    }
    out
}

pub async fn inspectp(cri: &Cri, args: InspectpArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let mut docs = Vec::new();
    for id in &args.ids {
        let response = pod_status(cri, &mut client, id, !args.quiet).await?;
        let Some(status) = &response.status else {
            bail!("no status for pod sandbox {id:?}");
        };
        if args.output == Format::Table {
            let meta = status.metadata.clone().unwrap_or_default();
            print!(
                "ID: {}\nName: {}\nUID: {}\nNamespace: {}\nAttempt: {}\nStatus: {}\nCreated: {}\n",
                status.id,
                meta.name,
                meta.uid,
                meta.namespace,
                meta.attempt,
                pod_state_label(status.state),
                timefmt::format_rfc3339_nano(status.created_at)
            );
            if let Some(network) = &status.network {
                println!("IP Addresses: {}", network.ip);
                for extra in &network.additional_ips {
                    println!("Additional IP: {}", extra.ip);
                }
            }
            continue;
        }
        docs.push(output::status_document(
            vec![("status", runtime_json::pod_status_json(status))],
            &response.info,
        ));
    }
    if !docs.is_empty() {
        println!("{}", output::render(&output::combine(docs), args.output)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_table_matches_crictl_columns() {
        let pod = v1::PodSandbox {
            id: "4f6a2b3c8d9e0f1a2b3c4d5e6f".into(),
            metadata: Some(v1::PodSandboxMetadata {
                name: "nginx-sandbox".into(),
                namespace: "default".into(),
                attempt: 1,
                uid: "u".into(),
            }),
            state: v1::PodSandboxState::SandboxReady as i32,
            created_at: 0,
            ..Default::default()
        };
        let table = pods_table(&[pod], false, 120_000_000_000);
        assert_eq!(
            table,
            "POD ID              CREATED             STATE               NAME                \
             NAMESPACE           ATTEMPT             RUNTIME\n\
             4f6a2b3c8d9e0       2 minutes ago       Ready               nginx-sandbox       \
             default             1                   (default)\n"
        );
    }
}
