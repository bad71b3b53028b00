//! Logging: a tracing subscriber writing text or JSON to stderr, whose filter can be replaced
//! while the daemon runs (SIGHUP re-reads the config file's `[log] level`).

use std::path::{Path, PathBuf};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogConfig};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log level {level:?}: {message}")]
    Filter { level: String, message: String },
    #[error("installing the log subscriber: {0}")]
    Init(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Changes the level of the installed subscriber.
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    level: std::sync::Mutex<String>,
}

fn filter(level: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(level).map_err(|e| LogError::Filter {
        level: level.to_owned(),
        message: e.to_string(),
    })
}

/// Installs the process's subscriber (once, at start).
pub fn init(config: &LogConfig) -> Result<LogHandle, LogError> {
    let (layer, handle) = reload::Layer::new(filter(&config.level)?);
    let registry = tracing_subscriber::registry().with(layer);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = if config.format == "json" {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt).try_init()
    };
    installed.map_err(|e| LogError::Init(e.to_string()))?;
    Ok(LogHandle {
        handle,
        level: std::sync::Mutex::new(config.level.clone()),
    })
}

impl LogHandle {
    /// Applies `level`; on error the current filter stays.
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        let next = filter(level)?;
        let mut current = self.level.lock().unwrap_or_else(|e| e.into_inner());
        // Said under the old filter: the new one may hide it.
        tracing::info!(from = %*current, to = level, "log level changed");
        self.handle
            .reload(next)
            .map_err(|e| LogError::Init(e.to_string()))?;
        *current = level.to_owned();
        Ok(())
    }

    /// Re-reads `[log] level` from the config file (`None`: the default file).
    pub fn reload_from(&self, file: Option<&Path>) -> Result<(), LogError> {
        let config = Config::load(file)?;
        self.set_level(&config.log.level)
    }
}

/// Follows SIGHUP for the daemon's life: each one re-reads the config file's log level.
pub async fn follow_sighup(handle: LogHandle, file: Option<PathBuf>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the log level cannot change at run time");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: re-reading the log level");
        if let Err(e) = handle.reload_from(file.as_deref()) {
            tracing::error!(error = %e, "SIGHUP: the log level stays as it was");
        }
    }
}
