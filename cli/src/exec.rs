//! `exec`: run a command in a container. Only the synchronous `ExecSync` path exists for now;
//! interactive sessions need the streaming server.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use corral_cri_api::v1;

use crate::client::{Cri, Deadline};

/// `exec`: run a command in a running container.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Run the command synchronously (the only mode supported for now).
    #[arg(short, long)]
    sync: bool,
    /// Kill the command after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    timeout: i64,
    /// Keep stdin open (needs the streaming server).
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a TTY (needs the streaming server).
    #[arg(short, long)]
    tty: bool,
    #[arg(value_name = "CONTAINER_ID")]
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

pub async fn exec(cri: &Cri, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if args.interactive || args.tty {
        bail!("interactive exec needs the streaming server (not yet supported); drop -i/-t");
    }
    if args.timeout < 0 {
        bail!("--timeout must not be negative");
    }
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
    Ok(ExitCode::from(exit_status(response.exit_code)))
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
