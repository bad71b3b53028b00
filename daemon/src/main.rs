//! `corrald`: reads configuration, sets up logging, serves until SIGTERM or SIGINT; SIGHUP
//! re-reads the config file's log level.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use corrald::{Config, Daemon};

mod math;

/// The Corral container runtime daemon (Kubernetes CRI v1 over a Unix socket).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Config file (TOML). Default: /etc/corral/corrald.toml when it exists.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Durable state directory (images, records).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Volatile state directory.
    #[arg(long)]
    state: Option<PathBuf>,
    /// CRI socket path.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Directory of <host>/hosts.toml registry files (containerd layout).
    #[arg(long)]
    registry_config_path: Option<PathBuf>,
    /// Docker-style credentials file for registries.
    #[arg(long)]
    credentials_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `corrald=debug,info`.
    #[arg(long)]
    log_level: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> anyhow::Result<()> {
    corrald::alloc::tune();
    let args = Args::parse();
    let config_file = args.config.clone();
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(v) = args.root {
        config.root = v;
    }
    if let Some(v) = args.state {
        config.state = v;
    }
    if let Some(v) = args.socket {
        config.grpc.socket = v;
    }
    if let Some(v) = args.registry_config_path {
        config.images.registry_config_path = Some(v);
    }
    if let Some(v) = args.credentials_file {
        config.images.credentials_file = Some(v);
    }
    if let Some(v) = args.log_level {
        config.log.level = v;
    }
    if let Some(v) = args.log_format {
        config.log.format = v;
    }
    config.validate()?;
    if args.print_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    let log_handle = corrald::logging::init(&config.log)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("corrald")
        .build()
        .context("start tokio runtime")?;
    runtime.block_on(async move {
        tokio::spawn(corrald::logging::follow_sighup(log_handle, config_file));
        let daemon = Daemon::open(config)?;
        let listener = daemon.bind()?;
        daemon.serve(listener, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop corrald with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
