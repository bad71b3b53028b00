//! `port-forward`: listen on 127.0.0.1 and carry each accepted connection to a port in the pod's
//! network namespace. Over SPDY (the default, as kubectl) one URL serves every port and every
//! connection is a new pair of streams in one session; over WebSocket every connection asks
//! for its own URL (PortForward RPC) and runs in its own session.

use std::fmt;
use std::str::FromStr;

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::Args;
use corral_cri_api::v1;
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use corral_streaming::client::{spdy, websocket};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::client::{Cri, Deadline};
use crate::session::TransportArg;

/// `port-forward`: forward local ports to a pod.
#[derive(Debug, Args)]
#[command(
    after_help = "POD_ID may be a pod name (kubectl form, `port-forward web 8080:80`): it is one \
when -n is given or when written pod/NAME; otherwise, when no sandbox id known to the \
runtime starts with it and the pod manager has a pod of that name.; its sandbox is found by the label io.kubernetes.pod.uid."
)]
pub struct PortForwardArgs {
    /// Protocol of the sessions.
    #[arg(long, value_enum, default_value_t = TransportArg::Spdy)]
    transport: TransportArg,
    /// The pod's namespace (pod names only).
    #[arg(short, long)]
    namespace: Option<String>,
    #[arg(value_name = "POD_ID|POD")]
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

/// Asks for a URL forwarding `ports` of `pod`.
async fn url(
    cri: &Cri,
    client: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    ports: impl IntoIterator<Item = u16>,
) -> anyhow::Result<String> {
    let request = v1::PortForwardRequest {
        pod_sandbox_id: pod.to_owned(),
        port: ports.into_iter().map(i32::from).collect(),
    };
    let response = cri
        .call("PortForward", Deadline::Call, request, |r| {
            client.port_forward(r)
        })
        .await
        .map_err(|err| anyhow!("port-forward to pod {pod:?}: {err}"))?;
    Ok(response.url)
}

pub async fn port_forward(cri: &Cri, mut args: PortForwardArgs) -> anyhow::Result<()> {
    args.pod =
        crate::kubectl::pod_target::sandbox_id(cri, &args.pod, args.namespace.as_deref()).await?;
    forward(cri, args).await
}

/// Forwards to the sandbox `args.pod` names (a CRI id).
pub async fn forward(cri: &Cri, args: PortForwardArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let spdy = match args.transport {
        TransportArg::Spdy => {
            let url = url(
                cri,
                &mut client,
                &args.pod,
                args.ports.iter().map(|p| p.remote),
            )
            .await?;
            Some(spdy::PortForwarder::connect(&url).await?)
        }
        TransportArg::Websocket => None,
    };
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
        let forwarded = match &spdy {
            Some(forwarder) => Forward::Spdy(Arc::clone(forwarder)),
            None => match url(cri, &mut client, &args.pod, [spec.remote]).await {
                Ok(url) => Forward::WebSocket(url),
                Err(err) => {
                    eprintln!("corralctl: {err}");
                    continue;
                }
            },
        };
        tokio::spawn(async move {
            if let Err(err) = forwarded.run(stream, spec.remote).await {
                eprintln!("corralctl: forwarding port {}: {err:#}", spec.remote);
            }
        });
    }
}

/// How one local connection reaches the pod.
enum Forward {
    /// A new pair of streams in the one SPDY session.
    Spdy(Arc<spdy::PortForwarder>),
    /// A WebSocket session of its own, at this URL.
    WebSocket(String),
}

impl Forward {
    /// Pumps the connection until either side closes; the error the server reported, if any.
    async fn run(self, mut stream: TcpStream, remote: u16) -> anyhow::Result<()> {
        match self {
            Forward::Spdy(forwarder) => {
                let (mut session, done) = forwarder.open(remote).await?;
                let copied = tokio::io::copy_bidirectional(&mut stream, &mut session).await;
                drop(session);
                done.await.context("session ended")??;
                copied.context("copying")?;
            }
            Forward::WebSocket(url) => {
                let (mut session, task) = websocket::port_forward(&url, remote).await?;
                let copied = tokio::io::copy_bidirectional(&mut stream, &mut session).await;
                drop(session);
                task.await.context("session task")??;
                copied.context("copying")?;
            }
        }
        Ok(())
    }
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
