//! `exec`: run a command in a container, through a streaming session (the Exec RPC hands out a
//! URL) or, with `-s`, synchronously through `ExecSync`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use corral_cri_api::v1;

use crate::client::{Cri, Deadline};
use crate::session::{self, Streams, TransportArg};

/// `exec`: run a command in a running container.
#[derive(Debug, Args)]
#[command(
    after_help = "CONTAINER_ID may be a pod name (kubectl form, `exec -it web -- sh`): it is one \
when -n or -c is given or when written pod/NAME; otherwise, when no container id known to the \
runtime starts with it and the pod manager has a pod of that name. A pod's container is -c, or its first (\"Defaulted container\" on stderr)."
)]
pub struct ExecArgs {
    /// Run the command synchronously through ExecSync (no stdin, no TTY).
    #[arg(short, long, conflicts_with_all = ["interactive", "tty"])]
    sync: bool,
    /// Kill the command after this many seconds (0: no limit); implies --sync.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    timeout: i64,
    /// Pass stdin to the command.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a TTY (raw mode and window size when stdin is a terminal).
    #[arg(short, long)]
    tty: bool,
    /// Protocol of the streaming session.
    #[arg(long, value_enum, default_value_t = TransportArg::Spdy)]
    transport: TransportArg,
    /// The pod's container (pod names only).
    #[arg(short, long)]
    container: Option<String>,
    /// The pod's namespace (pod names only).
    #[arg(short, long)]
    namespace: Option<String>,
    #[arg(value_name = "CONTAINER_ID|POD")]
    id: String,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    cmd: Vec<String>,
}

/// The exit status `exec` ends with: the command's, clamped to what a process can return.
pub fn exit_status(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(if code < 0 { 1 } else { 255 })
}

pub async fn exec(cri: &Cri, mut args: ExecArgs) -> anyhow::Result<ExitCode> {
    let target = crate::kubectl::pod_target::container_id(
        cri,
        &args.id,
        args.namespace.as_deref(),
        args.container.as_deref(),
        false,
    )
    .await?;
    args.id = target.id;
    let code = exec_in(cri, args).await?;
    if target.via_pod && code != 0 {
        // What kubectl says before it exits with the command's status.
        eprintln!("command terminated with exit code {code}");
    }
    Ok(ExitCode::from(exit_status(code)))
}

/// Runs the command in the container `args.id` names (a CRI id); returns its exit code.
pub async fn exec_in(cri: &Cri, args: ExecArgs) -> anyhow::Result<i32> {
    if args.timeout < 0 {
        bail!("--timeout must not be negative");
    }
    if args.sync || args.timeout > 0 {
        if args.interactive || args.tty {
            bail!("--timeout runs the command synchronously, without -i/-t");
        }
        return exec_sync(cri, args).await;
    }
    let mut client = cri.runtime().await?;
    let request = v1::ExecRequest {
        container_id: args.id.clone(),
        cmd: args.cmd.clone(),
        tty: args.tty,
        stdin: args.interactive,
        stdout: true,
        stderr: !args.tty,
    };
    let response = cri
        .call("Exec", Deadline::Call, request, |r| client.exec(r))
        .await
        .with_context(|| format!("exec {:?} in container {:?}", args.cmd, args.id))?;
    let streams = Streams {
        interactive: args.interactive,
        tty: args.tty,
    };
    session::run(&response.url, args.transport, streams)
        .await
        .with_context(|| format!("running {:?} in container {:?}", args.cmd, args.id))
}

async fn exec_sync(cri: &Cri, args: ExecArgs) -> anyhow::Result<i32> {
    let mut client = cri.runtime().await?;
    let request = v1::ExecSyncRequest {
        container_id: args.id.clone(),
        cmd: args.cmd.clone(),
        timeout: args.timeout,
    };
    let response = cri
        .call("ExecSync", Deadline::Long, request, |r| client.exec_sync(r))
        .await
        .with_context(|| format!("running {:?} in container {:?}", args.cmd, args.id))?;
    let mut stdout = std::io::stdout();
    stdout.write_all(&response.stdout)?;
    stdout.flush()?;
    let mut stderr = std::io::stderr();
    stderr.write_all(&response.stderr)?;
    stderr.flush()?;
    Ok(response.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_fit_a_byte() {
        assert_eq!(exit_status(0), 0);
        assert_eq!(exit_status(3), 3);
        assert_eq!(exit_status(255), 255);
        assert_eq!(exit_status(256), 255);
        assert_eq!(exit_status(-1), 1);
    }
}
