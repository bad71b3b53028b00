//! Streaming sessions through both daemons' streaming servers, with the same SPDY/3.1 client
//! (what kubectl speaks, and the only transport containerd serves): exec session set-up and
//! port-forward throughput.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::v1::{ExecRequest, PortForwardRequest};
use corral_streaming::client::{self, CommandIo, Outcome, Transport, spdy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::pods::Target;
use crate::stats;

/// The port busybox httpd listens on inside the pod.
const HTTP_PORT: u16 = 8080;

/// One `kubectl exec POD -- true`: the Exec RPC, the SPDY upgrade and streams, the process, and
/// its exit status on the error stream.
async fn exec_session(t: &mut Target, ctr: &str) -> Result<Duration> {
    let started = Instant::now();
    let url =
        t.rt.exec(ExecRequest {
            container_id: ctr.to_owned(),
            cmd: vec!["true".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .with_context(|| format!("{}: Exec", t.name))?
        .into_inner()
        .url;
    let io = CommandIo {
        stdin: None,
        stdout: Some(Box::new(tokio::io::sink())),
        stderr: Some(Box::new(tokio::io::sink())),
        resize: None,
    };
    let outcome = client::remote_command(&url, Transport::Spdy, io)
        .await
        .with_context(|| format!("{}: SPDY exec session at {url}", t.name))?;
    let took = started.elapsed();
    if outcome != Outcome::Exited(0) {
        bail!("{}: exec true ended {outcome:?}", t.name);
    }
    Ok(took)
}

/// Exec sessions of `true` on a running container (host-network pod), `n` alternating after 2
/// warm-ups each. Prints the row; returns the ratio of medians.
pub async fn exec(c: &mut Target, d: &mut Target, n: usize) -> Result<f64> {
    let (cpod, cctr, _) = c.start_pod(true).await?;
    let (dpod, dctr, _) = d.start_pod(true).await?;
    for _ in 0..2 {
        exec_session(c, &cctr).await?;
        exec_session(d, &dctr).await?;
    }
    let (mut vc, mut vd) = (Vec::new(), Vec::new());
    for i in 0..n {
        if i % 2 == 0 {
            vc.push(exec_session(c, &cctr).await?);
            vd.push(exec_session(d, &dctr).await?);
        } else {
            vd.push(exec_session(d, &dctr).await?);
            vc.push(exec_session(c, &cctr).await?);
        }
    }
    stats::header();
    let r = stats::row("exec session `true`", &vc, &vd);
    c.remove_pod_now(&cpod).await?;
    d.remove_pod_now(&dpod).await?;
    Ok(r)
}

/// A pod (own network namespace) whose container serves a `mib` MiB file over HTTP on
/// [`HTTP_PORT`], and a port-forward session to it once it answers.
async fn http_pod(
    t: &mut Target,
    mib: u64,
) -> Result<(String, std::sync::Arc<spdy::PortForwarder>)> {
    let script = format!(
        "mkdir -p /www && dd if=/dev/zero of=/www/blob bs=1M count={mib} 2>/dev/null && exec httpd -f -p {HTTP_PORT} -h /www"
    );
    let (pod, _ctr, _) = t.start_pod_with(false, &["sh", "-c", &script]).await?;
    let url =
        t.rt.port_forward(PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![i32::from(HTTP_PORT)],
        })
        .await
        .with_context(|| format!("{}: PortForward", t.name))?
        .into_inner()
        .url;
    let forwarder = spdy::PortForwarder::connect(&url)
        .await
        .with_context(|| format!("{}: SPDY port-forward session at {url}", t.name))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match download(&forwarder, 0).await {
            Ok(_) => return Ok((pod, forwarder)),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("{}: httpd in the pod never answered", t.name)));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// GETs `/blob` (or `/` when `expect` is 0) through a new forwarded connection; returns the
/// bytes of the body.
async fn download(forwarder: &std::sync::Arc<spdy::PortForwarder>, expect: u64) -> Result<u64> {
    let (mut conn, done) = forwarder.open(HTTP_PORT).await?;
    let path = if expect == 0 { "/" } else { "/blob" };
    conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    let mut head = Vec::new();
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if head.len() < 4096 {
            head.extend_from_slice(&buf[..n.min(4096)]);
        }
        total += n as u64;
    }
    drop(conn);
    done.await.context("forwarded connection")??;
    if !head.starts_with(b"HTTP/1.") {
        bail!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&head[..head.len().min(80)])
        );
    }
    if expect > 0 && total < expect {
        bail!("short download: {total} of {expect} bytes");
    }
    Ok(total)
}

/// Port-forward throughput: `rounds` downloads of `mib` MiB from busybox httpd in a pod, each
/// through a new connection of one SPDY session, alternating. Prints times and MiB/s; returns
/// the ratio of median times (below 1: Corral is faster).
pub async fn port_forward(c: &mut Target, d: &mut Target, rounds: usize, mib: u64) -> Result<f64> {
    let (cpod, cfwd) = http_pod(c, mib).await?;
    let (dpod, dfwd) = http_pod(d, mib).await?;
    let bytes = mib << 20;
    let timed = |fwd: std::sync::Arc<spdy::PortForwarder>| async move {
        let t = Instant::now();
        download(&fwd, bytes).await?;
        anyhow::Ok(t.elapsed())
    };
    timed(cfwd.clone()).await?;
    timed(dfwd.clone()).await?;
    let (mut vc, mut vd) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        if i % 2 == 0 {
            vc.push(timed(cfwd.clone()).await.context("corral")?);
            vd.push(timed(dfwd.clone()).await.context("containerd")?);
        } else {
            vd.push(timed(dfwd.clone()).await.context("containerd")?);
            vc.push(timed(cfwd.clone()).await.context("corral")?);
        }
    }
    stats::header();
    let r = stats::row(&format!("GET {mib} MiB"), &vc, &vd);
    let rate = |v: &[Duration]| mib as f64 / stats::median(v).as_secs_f64();
    println!(
        "  throughput (median): corral {:.0} MiB/s, containerd {:.0} MiB/s",
        rate(&vc),
        rate(&vd)
    );
    cfwd.close();
    dfwd.close();
    c.remove_pod_now(&cpod).await?;
    d.remove_pod_now(&dpod).await?;
    Ok(r)
}
