//! `corralctl`: a crictl-style command line for any CRI v1 socket (Corral, containerd, CRI-O).
//!
//! One module per command group; `client` owns connections and deadlines, `output` owns
//! rendering. Errors print as `corralctl: <context>: <gRPC code>: <message>` and exit 1.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod attach;
mod client;
mod config_file;
mod containers;
mod events;
mod exec;
mod filters;
mod images;
mod info;
mod kubectl;
mod logformat;
mod logs;
mod output;
mod pods;
mod portforward;
mod ps;
mod runtime_json;
mod session;
mod terminal;
mod timefmt;

use client::Cri;

#[derive(Debug, Parser)]
#[command(
    name = "corralctl",
    version,
    about = "Client for the Kubernetes Container Runtime Interface (CRI v1)"
)]
struct Cli {
    /// Endpoint of the CRI runtime service (unix:///path or a socket path).
    #[arg(
        short = 'r',
        long,
        env = "CONTAINER_RUNTIME_ENDPOINT",
        default_value = client::DEFAULT_ENDPOINT,
        value_name = "ENDPOINT"
    )]
    runtime_endpoint: String,
    /// Endpoint of the CRI image service; defaults to the runtime endpoint.
    #[arg(
        short = 'i',
        long,
        env = "IMAGE_SERVICE_ENDPOINT",
        value_name = "ENDPOINT"
    )]
    image_endpoint: Option<String>,
    /// Deadline of connections and calls, e.g. 2s, 500ms, 1m30s [default: 2s; pulls: none].
    #[arg(short = 't', long, value_name = "DURATION", value_parser = client::parse_duration)]
    timeout: Option<Duration>,
    /// Print requests and responses to stderr.
    #[arg(short = 'D', long)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Display runtime version information.
    Version,
    /// Display information of the container runtime.
    Info(info::InfoArgs),
    /// Pull an image from a registry.
    Pull(images::PullArgs),
    /// List images.
    #[command(visible_aliases = ["image", "img"])]
    Images(images::ImagesArgs),
    /// Return the status of one or more images.
    Inspecti(images::InspectiArgs),
    /// Remove one or more images.
    Rmi(images::RmiArgs),
    /// Return image filesystem info.
    Imagefsinfo(images::ImageFsInfoArgs),
    /// Run a new pod sandbox.
    Runp(pods::RunpArgs),
    /// Stop one or more running pod sandboxes.
    Stopp(pods::StoppArgs),
    /// Remove one or more pod sandboxes.
    Rmp(pods::RmpArgs),
    /// List pod sandboxes.
    Pods(pods::PodsArgs),
    /// Display the status of one or more pod sandboxes.
    Inspectp(pods::InspectpArgs),
    /// Create a new container in a pod sandbox (kubectl form: create -f FILE, create namespace NAME).
    #[command(
        after_help = "With -f FILE|DIR|- or `namespace NAME` this is kubectl's create \
(see `corralctl create -f x --help`)."
    )]
    Create(containers::CreateArgs),
    /// Run a new container inside a new pod sandbox (kubectl form: run NAME --image IMAGE).
    #[command(after_help = "With --image this is kubectl's run \
(see `corralctl run NAME --image IMAGE --help`).")]
    Run(containers::RunArgs),
    /// kubectl's create, which `create -f` and `create namespace` become.
    #[command(name = "kube-create", hide = true)]
    KubeCreate(kubectl::apply::KubeCreateArgs),
    /// kubectl's run, which `run NAME --image IMAGE` becomes.
    #[command(name = "kube-run", hide = true)]
    KubeRun(kubectl::apply::KubeRunArgs),
    /// Create or update pod-manager objects from manifests (kubectl apply).
    Apply(kubectl::apply::ApplyArgs),
    /// Display pod-manager objects (kubectl get).
    Get(kubectl::get::GetArgs),
    /// Show a pod in detail with its events (kubectl describe).
    Describe(kubectl::describe::DescribeArgs),
    /// Delete pod-manager objects (kubectl delete).
    Delete(kubectl::delete::DeleteArgs),
    /// Set and remove labels of pod-manager objects (kubectl label).
    Label(kubectl::label::LabelArgs),
    /// Start one or more created containers.
    Start(containers::StartArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Remove one or more containers.
    Rm(containers::RmArgs),
    /// Update one or more running containers' resources.
    Update(containers::UpdateArgs),
    /// List containers.
    Ps(ps::PsArgs),
    /// Display the status of one or more containers.
    Inspect(ps::InspectArgs),
    /// Fetch the logs of a container.
    Logs(logs::LogsArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Attach to a running container.
    Attach(attach::AttachArgs),
    /// Forward local ports to a pod.
    PortForward(portforward::PortForwardArgs),
    /// Stream container and pod sandbox events.
    Events(events::EventsArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse_from(kubectl::route::route(std::env::args_os().collect()));
    let cri = Cri::new(
        cli.runtime_endpoint,
        cli.image_endpoint,
        cli.timeout,
        cli.debug,
    );
    let kubectl_verb = matches!(
        cli.command,
        Command::KubeCreate(_)
            | Command::KubeRun(_)
            | Command::Apply(_)
            | Command::Get(_)
            | Command::Describe(_)
            | Command::Delete(_)
            | Command::Label(_)
    );
    let result = match cli.command {
        Command::Exec(args) => exec::exec(&cri, args).await,
        Command::Attach(args) => attach::attach(&cri, args).await,
        command => run(&cri, command).await.map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if kubectl_verb || kubectl::errors::is_kube(&err) {
                if let Some(text) = kubectl::errors::report(&err) {
                    eprintln!("{text}");
                }
            } else {
                eprintln!("corralctl: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cri: &Cri, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Version => info::version(cri).await,
        Command::Info(args) => info::info(cri, args).await,
        Command::Pull(args) => images::pull(cri, args).await,
        Command::Images(args) => images::images(cri, args).await,
        Command::Inspecti(args) => images::inspecti(cri, args).await,
        Command::Rmi(args) => images::rmi(cri, args).await,
        Command::Imagefsinfo(args) => images::imagefsinfo(cri, args).await,
        Command::Runp(args) => pods::runp(cri, args).await,
        Command::Stopp(args) => pods::stopp(cri, args).await,
        Command::Rmp(args) => pods::rmp(cri, args).await,
        Command::Pods(args) => pods::pods(cri, args).await,
        Command::Inspectp(args) => pods::inspectp(cri, args).await,
        Command::Create(args) => containers::create(cri, args).await,
        Command::Run(args) => containers::run(cri, args).await,
        Command::Start(args) => containers::start(cri, args).await,
        Command::Stop(args) => containers::stop(cri, args).await,
        Command::Rm(args) => containers::rm(cri, args).await,
        Command::Update(args) => containers::update(cri, args).await,
        Command::Ps(args) => ps::ps(cri, args).await,
        Command::Inspect(args) => ps::inspect(cri, args).await,
        Command::Logs(args) => logs::logs(cri, args).await,
        Command::Exec(args) => exec::exec(cri, args).await.map(|_| ()),
        Command::Attach(args) => attach::attach(cri, args).await.map(|_| ()),
        Command::PortForward(args) => portforward::port_forward(cri, args).await,
        Command::Events(args) => events::events(cri, args).await,
        Command::KubeCreate(args) => kubectl::apply::create(cri, args).await,
        Command::KubeRun(args) => kubectl::apply::run(cri, args).await,
        Command::Apply(args) => kubectl::apply::apply(cri, args).await,
        Command::Get(args) => kubectl::get::get(cri, args).await,
        Command::Describe(args) => kubectl::describe::describe(cri, args).await,
        Command::Delete(args) => kubectl::delete::delete(cri, args).await,
        Command::Label(args) => kubectl::label::label(cri, args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_parse_like_crictl() {
        let cli = Cli::try_parse_from([
            "corralctl",
            "-r",
            "unix:///tmp/x.sock",
            "-t",
            "5s",
            "-D",
            "images",
            "-q",
        ])
        .expect("parses");
        assert_eq!(cli.runtime_endpoint, "unix:///tmp/x.sock");
        assert_eq!(cli.timeout, Some(Duration::from_secs(5)));
        assert!(cli.debug);
        assert!(matches!(cli.command, Command::Images(_)));
    }

    #[test]
    fn rmi_needs_an_image_or_a_mode() {
        assert!(Cli::try_parse_from(["corralctl", "rmi"]).is_err());
        assert!(Cli::try_parse_from(["corralctl", "rmi", "-a"]).is_ok());
        assert!(Cli::try_parse_from(["corralctl", "rmi", "-q"]).is_ok());
        assert!(Cli::try_parse_from(["corralctl", "rmi", "busybox"]).is_ok());
    }

    #[test]
    fn pull_rejects_conflicting_credentials() {
        let parse =
            |args: &[&str]| Cli::try_parse_from(["corralctl", "pull"].iter().chain(args).copied());
        assert!(parse(&["busybox", "--creds", "a:b", "--auth", "YTpi"]).is_err());
        assert!(parse(&["busybox", "--username", "a", "--creds", "a:b"]).is_err());
        assert!(parse(&["busybox", "--password", "b"]).is_err());
        assert!(parse(&["busybox", "-u", "a", "--password", "b"]).is_ok());
    }

    #[test]
    fn runtime_commands_parse_like_crictl() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("corralctl").chain(args.iter().copied()))
        };
        // Everything after the container ID belongs to the command, dashes included.
        let cli = parse(&["exec", "-s", "c1", "ls", "-la", "--color"]).expect("exec");
        let Command::Exec(exec) = cli.command else {
            panic!("not exec");
        };
        let text = format!("{exec:?}");
        assert!(text.contains(r#"cmd: ["ls", "-la", "--color"]"#), "{text}");
        assert!(parse(&["exec", "c1"]).is_err());
        assert!(parse(&["logs", "--tail", "-1", "c1"]).is_ok());
        assert!(parse(&["rm"]).is_err());
        assert!(parse(&["rm", "-a"]).is_ok());
        assert!(parse(&["rmp", "-f", "-a"]).is_ok());
        assert!(parse(&["stop", "-t", "10", "c1"]).is_ok());
        assert!(parse(&["ps", "--state", "Running", "-n", "2"]).is_ok());
        assert!(parse(&["ps", "--state", "sleeping"]).is_err());
        assert!(parse(&["pods", "--state", "NotReady", "-n", "1"]).is_ok());
        assert!(
            parse(&[
                "create",
                "--no-pull",
                "--with-pull",
                "p",
                "c.json",
                "p.json"
            ])
            .is_err()
        );
        assert!(parse(&["create", "p", "c.json"]).is_err());
        assert!(parse(&["update", "--memory", "1g", "c1"]).is_ok());
        assert!(parse(&["update", "--memory", "1q", "c1"]).is_err());
        assert!(parse(&["runp", "--runtime", "runc", "p.json"]).is_ok());
    }

    #[test]
    fn kubectl_verbs_parse_and_route() {
        let parse = |args: &[&str]| {
            let argv = std::iter::once("corralctl")
                .chain(args.iter().copied())
                .map(std::ffi::OsString::from)
                .collect();
            Cli::try_parse_from(kubectl::route::route(argv))
        };
        let cli = parse(&["create", "-f", "pod.yaml", "-n", "dev"]).expect("create -f");
        assert!(matches!(cli.command, Command::KubeCreate(_)));
        let cli = parse(&["create", "namespace", "dev"]).expect("create ns");
        assert!(matches!(cli.command, Command::KubeCreate(_)));
        let cli = parse(&["create", "p1", "c.json", "p.json"]).expect("crictl create");
        assert!(matches!(cli.command, Command::Create(_)));
        let cli = parse(&["run", "web", "--image", "nginx", "--", "sleep", "1"]).expect("run");
        assert!(matches!(cli.command, Command::KubeRun(_)));
        assert!(matches!(
            parse(&["run", "c.json", "p.json"])
                .expect("crictl run")
                .command,
            Command::Run(_)
        ));
        assert!(parse(&["apply", "-f", "a.yaml", "-f", "-"]).is_ok());
        assert!(parse(&["apply"]).is_err());
        assert!(parse(&["get", "pods", "-A", "-o", "wide", "--show-labels", "-w"]).is_ok());
        assert!(parse(&["delete", "pods", "-l", "app=web", "--force", "--wait=false"]).is_ok());
        // A flag after the labels is a flag, not a label.
        let cli = parse(&["label", "pods", "web", "a=b", "c-", "--overwrite"]).expect("label");
        let text = format!("{:?}", cli.command);
        assert!(text.contains("overwrite: true"), "{text}");
        assert!(!text.contains("\"--overwrite\""), "{text}");
        assert!(parse(&["describe", "pod", "web", "-n", "dev"]).is_ok());
        assert!(parse(&["logs", "web", "-c", "a", "-p", "--tail", "5", "-n", "dev"]).is_ok());
        assert!(parse(&["port-forward", "-n", "dev", "web", "8080:80"]).is_ok());
        // kubectl's `exec -it NAME -- CMD`: the `--` is not part of the command.
        let cli = parse(&["exec", "-it", "web", "-c", "a", "--", "sh", "-c", "ls"]).expect("exec");
        let text = format!("{:?}", cli.command);
        assert!(text.contains(r#"cmd: ["sh", "-c", "ls"]"#), "{text}");
        assert!(text.contains(r#"container: Some("a")"#), "{text}");
    }

    #[test]
    fn info_rejects_table_output() {
        assert!(Cli::try_parse_from(["corralctl", "info", "-o", "table"]).is_err());
        assert!(Cli::try_parse_from(["corralctl", "info", "-o", "yaml"]).is_ok());
    }
}
