//! `port-forward`: listen on 127.0.0.1 and carry each accepted connection to a port in the pod's
//! network namespace. Every connection asks for its own URL (PortForward RPC) and runs over its
//! own WebSocket session; the SPDY client cannot forward ports yet, so `--transport spdy` is
//! refused.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context as _, bail};
use clap::Args;
use corral_cri_api::v1;
use corral_streaming::client::websocket;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::client::{Cri, Deadline};
use crate::session::TransportArg;

/// `port-forward`: forward local ports to a pod.
#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// Protocol of the sessions (only websocket for now: SPDY port-forward is not implemented).
    #[arg(long, value_enum, default_value_t = TransportArg::Websocket)]
    transport: TransportArg,
    #[arg(value_name = "POD_ID")]
    pod: String,
    /// `LOCAL:REMOTE`, or `PORT` for the same port on both sides.
    #[arg(required = true, value_name = "[LOCAL:]REMOTE")]
    ports: Vec<PortSpec>,
}

/// One forwarded port: local (on 127.0.0.1) to remote (in the pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub local: u16,
    pub remote: u16,
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadPortSpec(String);

impl fmt::Display for BadPortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadPortSpec {}

fn port(text: &str) -> Result<u16, BadPortSpec> {
    match text.parse::<u16>() {
        Ok(0) => Err(BadPortSpec(format!("port {text:?} must be 1 to 65535"))),
        Ok(port) => Ok(port),
        Err(_) => Err(BadPortSpec(format!(
            "port {text:?} is not a number from 1 to 65535"
        ))),
    }
}

impl FromStr for PortSpec {
    type Err = BadPortSpec;

    fn from_str(text: &str) -> Result<PortSpec, BadPortSpec> {
        match text.split_once(':') {
            Some((local, remote)) => Ok(PortSpec {
                local: port(local)?,
                remote: port(remote)?,
            }),
            None => {
                let port = port(text)?;
                Ok(PortSpec {
                    local: port,
                    remote: port,
                })
            }
        }
    }
}

pub async fn port_forward(cri: &Cri, args: PortForwardArgs) -> anyhow::Result<()> {
    if args.transport == TransportArg::Spdy {
        bail!("port-forward over SPDY is not supported yet; use --transport websocket");
    }
    let mut client = cri.runtime().await?;
    let (accepted, mut connections) = mpsc::channel::<(TcpStream, PortSpec)>(16);
    for spec in &args.ports {
        let listener = TcpListener::bind(("127.0.0.1", spec.local))
            .await
            .with_context(|| format!("listening on 127.0.0.1:{}", spec.local))?;
        println!(
            "Forwarding from 127.0.0.1:{} -> {}",
            spec.local, spec.remote
        );
        let accepted = accepted.clone();
        let spec = *spec;
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if accepted.send((stream, spec)).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => eprintln!("corralctl: accepting on port {}: {err}", spec.local),
                }
            }
        });
    }
    drop(accepted);
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (stream, spec) = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            next = connections.recv() => match next {
                Some(next) => next,
                None => return Ok(()),
            },
        };
        println!("Handling connection for {}", spec.local);
        let request = v1::PortForwardRequest {
            pod_sandbox_id: args.pod.clone(),
            port: vec![i32::from(spec.remote)],
        };
        let url = match cri
            .call("PortForward", Deadline::Call, request, |r| {
                client.port_forward(r)
            })
            .await
        {
            Ok(response) => response.url,
            Err(err) => {
                eprintln!("corralctl: port-forward to pod {:?}: {err}", args.pod);
                continue;
            }
        };
        tokio::spawn(async move {
            if let Err(err) = forward(stream, &url, spec.remote).await {
                eprintln!("corralctl: forwarding port {}: {err:#}", spec.remote);
            }
        });
    }
}

/// Pumps one local connection through its own session until either side closes.
async fn forward(mut stream: TcpStream, url: &str, remote: u16) -> anyhow::Result<()> {
    let (mut session, task) = websocket::port_forward(url, remote).await?;
    let copied = tokio::io::copy_bidirectional(&mut stream, &mut session).await;
    drop(session);
    task.await.context("session task")??;
    copied.context("copying")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_like_kubectl() {
        let spec = |l, r| PortSpec {
            local: l,
            remote: r,
        };
        assert_eq!("8080:80".parse(), Ok(spec(8080, 80)));
        assert_eq!("80".parse(), Ok(spec(80, 80)));
        assert_eq!("65535:1".parse(), Ok(spec(65535, 1)));
        for bad in [
            "0", "70000", "a:b", "8080:", ":80", "1:2:3", "", "-1", "80:0",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad:?} parsed");
        }
    }
}
