//! `attach`: connect the local stdio to a running container's main process through the
//! streaming session the Attach RPC hands out. Detaching is ending the client; with `-t`, Ctrl-C
//! goes to the container.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use corral_cri_api::v1;

use crate::client::{Cri, Deadline};
use crate::session::{self, Streams, TransportArg};

/// `attach`: attach to a running container.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Pass stdin to the container.
    #[arg(short, long)]
    interactive: bool,
    /// The container has a TTY (raw mode and window size when stdin is a terminal).
    #[arg(short, long)]
    tty: bool,
    /// Protocol of the streaming session.
    #[arg(long, value_enum, default_value_t = TransportArg::Spdy)]
    transport: TransportArg,
    #[arg(value_name = "CONTAINER_ID")]
    id: String,
}

pub async fn attach(cri: &Cri, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let mut client = cri.runtime().await?;
    let request = v1::AttachRequest {
        container_id: args.id.clone(),
        stdin: args.interactive,
        tty: args.tty,
        stdout: true,
        stderr: !args.tty,
    };
    let response = cri
        .call("Attach", Deadline::Call, request, |r| client.attach(r))
        .await
        .with_context(|| format!("attaching to container {:?}", args.id))?;
    let streams = Streams {
        interactive: args.interactive,
        tty: args.tty,
    };
    let code = session::run(&response.url, args.transport, streams)
        .await
        .with_context(|| format!("attached to container {:?}", args.id))?;
    Ok(ExitCode::from(crate::exec::exit_status(code)))
}
