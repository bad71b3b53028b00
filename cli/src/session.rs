//! What `exec` and `attach` share once the runtime handed out a streaming URL: the transport
//! flag, wiring the local stdio (and terminal) to the session, and mapping how it ended to an
//! exit status.

use anyhow::{Context as _, anyhow, bail};
use clap::ValueEnum;
use corral_streaming::client::{self, ClientError, CommandIo, Outcome, Transport};
use tokio::signal::unix::{SignalKind, signal};

use crate::terminal::{self, RawMode};

/// `--transport`: the protocol of the streaming session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// SPDY/3.1, what kubectl and crictl speak (the only one containerd and CRI-O serve).
    Spdy,
    /// WebSocket (`v5.channel.k8s.io`).
    Websocket,
}

impl From<TransportArg> for Transport {
    fn from(arg: TransportArg) -> Transport {
        match arg {
            TransportArg::Spdy => Transport::Spdy,
            TransportArg::Websocket => Transport::WebSocket,
        }
    }
}

/// The local ends of a session: stdin if `interactive`, stdout, and stderr unless `tty`.
pub struct Streams {
    pub interactive: bool,
    pub tty: bool,
}

/// Runs the remote command behind `url` with the local stdio and returns its exit status.
pub async fn run(url: &str, transport: TransportArg, streams: Streams) -> anyhow::Result<i32> {
    // Raw mode and window sizes only make sense with a TTY and a terminal to drive it.
    let terminal = streams.tty && terminal::stdin_is_terminal();
    // A TTY session has a resize stream (a SPDY server waits for it); without a terminal
    // here it carries no sizes, and `_no_sizes` keeps it open until the session ends.
    let (resize, _no_sizes) = if terminal {
        (Some(terminal::window_sizes()?), None)
    } else if streams.tty {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        (Some(rx), Some(tx))
    } else {
        (None, None)
    };
    let io = CommandIo {
        stdin: streams
            .interactive
            .then(|| Box::new(terminal::Stdin::spawn()) as _),
        stdout: Some(Box::new(tokio::io::stdout())),
        stderr: (!streams.tty).then(|| Box::new(tokio::io::stderr()) as _),
        resize,
    };
    let session = client::remote_command(url, transport.into(), io);
    let outcome = if terminal {
        // Dropped on every way out of this block: errors, signals and normal ends alike.
        let _raw = RawMode::enable()?;
        tokio::select! {
            outcome = session => outcome,
            signal = termination() => bail!("session ended by {}", signal?),
        }
    } else {
        session.await
    };
    let outcome = outcome.map_err(|err| match err {
        ClientError::Unsupported(_) if transport == TransportArg::Spdy => {
            anyhow!("{err} (try --transport websocket)")
        }
        err => anyhow!(err),
    });
    exit_code(outcome.context("streaming session")?)
}

/// The command's exit code from a finished session, or an error for a failure the server
/// reported without one.
pub fn exit_code(outcome: Outcome) -> anyhow::Result<i32> {
    match outcome {
        Outcome::Exited(code) => Ok(code),
        Outcome::Failed(message) => bail!("{message}"),
    }
}

/// Waits for a signal that should end the session while the terminal is in raw mode (where
/// Ctrl-C is a byte for the remote side, not SIGINT for us); returns its name.
async fn termination() -> anyhow::Result<&'static str> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_give_the_exit_code_or_the_failure() {
        assert_eq!(exit_code(Outcome::Exited(0)).expect("ok"), 0);
        assert_eq!(exit_code(Outcome::Exited(7)).expect("ok"), 7);
        assert_eq!(exit_code(Outcome::Exited(300)).expect("ok"), 300);
        let err = exit_code(Outcome::Failed("container not running".into())).expect_err("fails");
        assert_eq!(err.to_string(), "container not running");
    }
}
