//! Container lifecycle commands: `create`, `start`, `stop`, `rm`, `run`, `update`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use corral_cri_api::v1;

use crate::client::{Cri, Deadline};
use crate::config_file;
use crate::pods::{self, RuntimeClient, for_each};

/// How `create` and `run` get the container's image.
#[derive(Debug, Args)]
pub struct PullFlags {
    /// Do not pull the image, even if it is missing.
    #[arg(long, conflicts_with = "with_pull")]
    no_pull: bool,
    /// Always pull the image, even if it is present.
    #[arg(long)]
    with_pull: bool,
}

/// `create`: create a container in a pod sandbox.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(value_name = "POD_ID")]
    pod_id: String,
    /// Container config file (JSON or YAML).
    #[arg(value_name = "CONTAINER_CONFIG")]
    container_config: PathBuf,
    /// Pod sandbox config file (JSON or YAML).
    #[arg(value_name = "POD_CONFIG")]
    pod_config: PathBuf,
    #[command(flatten)]
    pull: PullFlags,
}

/// `run`: run a pod sandbox and a container in it.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container config file (JSON or YAML).
    #[arg(value_name = "CONTAINER_CONFIG")]
    container_config: PathBuf,
    /// Pod sandbox config file (JSON or YAML).
    #[arg(value_name = "POD_CONFIG")]
    pod_config: PathBuf,
    /// Runtime handler to use (available ones are defined by the runtime).
    #[arg(long, visible_alias = "runtime", value_name = "HANDLER")]
    runtime_handler: Option<String>,
    #[command(flatten)]
    pull: PullFlags,
}

/// `start`: start one or more created containers.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(required = true, value_name = "CONTAINER_ID")]
    ids: Vec<String>,
}

/// `stop`: stop one or more running containers.
#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(required = true, value_name = "CONTAINER_ID")]
    ids: Vec<String>,
    /// Seconds to wait before killing the container.
    #[arg(short, long, default_value_t = 0, value_name = "SECONDS")]
    timeout: i64,
}

/// `rm`: remove one or more containers.
#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(value_name = "CONTAINER_ID", required_unless_present = "all")]
    ids: Vec<String>,
    /// Stop the containers first if they are running.
    #[arg(short, long)]
    force: bool,
    /// Remove all containers.
    #[arg(short, long)]
    all: bool,
}

/// `update`: update the resources of one or more containers.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(required = true, value_name = "CONTAINER_ID")]
    ids: Vec<String>,
    /// CPU CFS period in microseconds.
    #[arg(long, value_name = "US")]
    cpu_period: Option<i64>,
    /// CPU CFS quota in microseconds.
    #[arg(long, value_name = "US")]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    cpu_share: Option<i64>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Memory limit (512m, 1g, 1073741824).
    #[arg(long, value_parser = parse_memory)]
    memory: Option<i64>,
}

/// Parses a memory size like go-units `RAMInBytes`: binary units (`k`, `m`, `g`, `t`, `p`),
/// optional `i` and `b`, case-insensitive, fractions allowed.
pub fn parse_memory(text: &str) -> anyhow::Result<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let number_len = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_len);
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {text:?}"))?;
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!("invalid size {text:?}: unknown unit"),
    };
    let bytes = value * 2_f64.powi(shift);
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        bail!("invalid size {text:?}: too large");
    }
    // Truncation toward zero, like Go's int64 conversion.
    #[allow(clippy::cast_possible_truncation)]
    Ok(bytes as i64)
}

impl UpdateArgs {
    fn resources(&self) -> v1::LinuxContainerResources {
        v1::LinuxContainerResources {
            cpu_period: self.cpu_period.unwrap_or(0),
            cpu_quota: self.cpu_quota.unwrap_or(0),
            cpu_shares: self.cpu_share.unwrap_or(0),
            memory_limit_in_bytes: self.memory.unwrap_or(0),
            cpuset_cpus: self.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: self.cpuset_mems.clone().unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// Pulls the container's image when it is missing (or always, with `--with-pull`).
async fn ensure_image(
    cri: &Cri,
    config: &v1::ContainerConfig,
    sandbox: &v1::PodSandboxConfig,
    flags: &PullFlags,
) -> anyhow::Result<()> {
    let Some(spec) = config.image.clone().filter(|s| !s.image.is_empty()) else {
        bail!("the container config has no image");
    };
    if flags.no_pull {
        return Ok(());
    }
    let mut images = cri.image().await?;
    if !flags.with_pull {
        let request = v1::ImageStatusRequest {
            image: Some(spec.clone()),
            verbose: false,
        };
        let status = cri
            .call("ImageStatus", Deadline::Call, request, |r| {
                images.image_status(r)
            })
            .await
            .with_context(|| format!("image status for {:?}", spec.image))?;
        if status.image.is_some() {
            return Ok(());
        }
    }
    let name = spec.image.clone();
    let request = v1::PullImageRequest {
        image: Some(spec),
        auth: None,
        sandbox_config: Some(sandbox.clone()),
    };
    let response = cri
        .call("PullImage", Deadline::Long, request, |r| {
            images.pull_image(r)
        })
        .await
        .with_context(|| format!("pulling image {name:?}"))?;
    cri.debug(|| format!("pulled image {name:?}: {}", response.image_ref));
    Ok(())
}

async fn create_container(
    cri: &Cri,
    client: &mut RuntimeClient,
    pod_id: &str,
    config: v1::ContainerConfig,
    sandbox: v1::PodSandboxConfig,
) -> anyhow::Result<String> {
    let request = v1::CreateContainerRequest {
        pod_sandbox_id: pod_id.to_owned(),
        config: Some(config),
        sandbox_config: Some(sandbox),
    };
    let response = cri
        .call("CreateContainer", Deadline::Long, request, |r| {
            client.create_container(r)
        })
        .await
        .with_context(|| format!("creating container in pod sandbox {pod_id:?}"))?;
    Ok(response.container_id)
}

async fn start_one(cri: &Cri, client: &mut RuntimeClient, id: &str) -> anyhow::Result<()> {
    let request = v1::StartContainerRequest {
        container_id: id.to_owned(),
    };
    cri.call("StartContainer", Deadline::Long, request, |r| {
        client.start_container(r)
    })
    .await
    .with_context(|| format!("starting container {id:?}"))?;
    Ok(())
}

async fn stop_one(
    cri: &Cri,
    client: &mut RuntimeClient,
    id: &str,
    timeout: i64,
) -> anyhow::Result<()> {
    let request = v1::StopContainerRequest {
        container_id: id.to_owned(),
        timeout,
    };
    cri.call("StopContainer", Deadline::Long, request, |r| {
        client.stop_container(r)
    })
    .await
    .with_context(|| format!("stopping container {id:?}"))?;
    Ok(())
}

/// `ContainerStatus` of one container.
pub async fn container_status(
    cri: &Cri,
    client: &mut RuntimeClient,
    id: &str,
    verbose: bool,
) -> anyhow::Result<v1::ContainerStatusResponse> {
    let request = v1::ContainerStatusRequest {
        container_id: id.to_owned(),
        verbose,
    };
    cri.call("ContainerStatus", Deadline::Call, request, |r| {
        client.container_status(r)
    })
    .await
    .with_context(|| format!("getting the status of container {id:?}"))
}

pub async fn create(cri: &Cri, args: CreateArgs) -> anyhow::Result<()> {
    let config = config_file::load_container_config(&args.container_config)?;
    let sandbox = config_file::load_pod_config(&args.pod_config)?;
    ensure_image(cri, &config, &sandbox, &args.pull).await?;
    let mut client = cri.runtime().await?;
    let id = create_container(cri, &mut client, &args.pod_id, config, sandbox).await?;
    println!("{id}");
    Ok(())
}

pub async fn run(cri: &Cri, args: RunArgs) -> anyhow::Result<()> {
    let config = config_file::load_container_config(&args.container_config)?;
    let sandbox = config_file::load_pod_config(&args.pod_config)?;
    let mut client = cri.runtime().await?;
    let pod_id = pods::run_pod(cri, &mut client, sandbox.clone(), args.runtime_handler).await?;
    cri.debug(|| format!("pod sandbox {pod_id} is running"));
    ensure_image(cri, &config, &sandbox, &args.pull).await?;
    let id = create_container(cri, &mut client, &pod_id, config, sandbox).await?;
    start_one(cri, &mut client, &id).await?;
    println!("{id}");
    Ok(())
}

pub async fn start(cri: &Cri, args: StartArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    for_each(&args.ids, "start", async |id| {
        start_one(cri, &mut client, id).await?;
        println!("{id}");
        Ok(())
    })
    .await
}

pub async fn stop(cri: &Cri, args: StopArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    for_each(&args.ids, "stop", async |id| {
        stop_one(cri, &mut client, id, args.timeout).await?;
        println!("{id}");
        Ok(())
    })
    .await
}

pub async fn rm(cri: &Cri, args: RmArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let mut ids = args.ids.clone();
    if args.all {
        let request = v1::ListContainersRequest { filter: None };
        let all = cri
            .call("ListContainers", Deadline::Call, request, |r| {
                client.list_containers(r)
            })
            .await
            .context("listing containers")?;
        ids.extend(all.containers.into_iter().map(|c| c.id));
    }
    if ids.is_empty() {
        eprintln!("No containers to remove");
        return Ok(());
    }
    for_each(&ids, "remove", async |id| {
        let status = container_status(cri, &mut client, id, false).await?;
        let running = status
            .status
            .is_some_and(|s| s.state == v1::ContainerState::ContainerRunning as i32);
        if running {
            if !args.force {
                bail!("container {id:?} is running, please stop it first (or use -f)");
            }
            stop_one(cri, &mut client, id, 0).await?;
        }
        let request = v1::RemoveContainerRequest {
            container_id: id.to_owned(),
        };
        cri.call("RemoveContainer", Deadline::Long, request, |r| {
            client.remove_container(r)
        })
        .await
        .with_context(|| format!("removing container {id:?}"))?;
        println!("{id}");
        Ok(())
    })
    .await
}

pub async fn update(cri: &Cri, args: UpdateArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let resources = args.resources();
    for_each(&args.ids, "update", async |id| {
        let request = v1::UpdateContainerResourcesRequest {
            container_id: id.to_owned(),
            linux: Some(resources.clone()),
            windows: None,
            annotations: Default::default(),
        };
        cri.call("UpdateContainerResources", Deadline::Call, request, |r| {
            client.update_container_resources(r)
        })
        .await
        .with_context(|| format!("updating container resources for {id:?}"))?;
        println!("{id}");
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_are_binary_like_go_units() {
        let ok = |s: &str| parse_memory(s).expect(s);
        assert_eq!(ok("512m"), 536_870_912);
        assert_eq!(ok("1g"), 1_073_741_824);
        assert_eq!(ok("1G"), 1_073_741_824);
        assert_eq!(ok("1gb"), 1_073_741_824);
        assert_eq!(ok("1GiB"), 1_073_741_824);
        assert_eq!(ok("64k"), 65_536);
        assert_eq!(ok("1.5k"), 1536);
        assert_eq!(ok("1024"), 1024);
        assert_eq!(ok("2t"), 2_199_023_255_552);
        assert_eq!(ok("1p"), 1_125_899_906_842_624);
        for bad in ["", "m", "12x", "-1m", "1.2.3g"] {
            assert!(parse_memory(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn update_sends_only_given_resources() {
        let args = UpdateArgs {
            ids: vec!["c".into()],
            cpu_period: Some(100_000),
            cpu_quota: None,
            cpu_share: Some(256),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: None,
            memory: Some(1024),
        };
        assert_eq!(
            args.resources(),
            v1::LinuxContainerResources {
                cpu_period: 100_000,
                cpu_shares: 256,
                cpuset_cpus: "0-1".into(),
                memory_limit_in_bytes: 1024,
                ..Default::default()
            }
        );
    }
}
