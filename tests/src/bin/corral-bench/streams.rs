//! Streaming sessions through both daemons' streaming servers, with the same SPDY/3.1 client
//! (what kubectl speaks, and the only transport containerd serves): exec session set-up and
//! port-forward throughput.

use std::sync::Arc;
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

/// A new SPDY port-forward session to [`HTTP_PORT`] of `pod` (PortForward RPC + upgrade).
async fn forwarder(t: &mut Target, pod: &str) -> Result<Arc<spdy::PortForwarder>> {
    let url =
        t.rt.port_forward(PortForwardRequest {
            pod_sandbox_id: pod.to_owned(),
            port: vec![i32::from(HTTP_PORT)],
        })
        .await
        .with_context(|| format!("{}: PortForward", t.name))?
        .into_inner()
        .url;
    spdy::PortForwarder::connect(&url)
        .await
        .with_context(|| format!("{}: SPDY port-forward session at {url}", t.name))
}

/// A pod (own network namespace) whose container serves a `mib` MiB file over HTTP on
/// [`HTTP_PORT`], once it answers.
async fn http_pod(t: &mut Target, mib: u64) -> Result<String> {
    let script = format!(
        "mkdir -p /www && dd if=/dev/zero of=/www/blob bs=1M count={mib} 2>/dev/null && exec httpd -f -p {HTTP_PORT} -h /www"
    );
    let (pod, _ctr, _) = t.start_pod_with(false, &["sh", "-c", &script]).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fwd = forwarder(t, &pod).await?;
        let answered = download(&fwd, 0, Duration::from_secs(5)).await;
        fwd.close();
        match answered {
            Ok(_) => return Ok(pod),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("{}: httpd in the pod never answered", t.name)));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One timed download of `mib` MiB over a session of its own (as one `kubectl port-forward`
/// and one client connection); the session's set-up is not timed.
async fn timed_download(t: &mut Target, pod: &str, mib: u64) -> Result<Duration> {
    let fwd = forwarder(t, pod).await?;
    let started = Instant::now();
    let got = download(&fwd, mib << 20, DOWNLOAD_LIMIT).await;
    let took = started.elapsed();
    fwd.close();
    got.with_context(|| format!("{}: downloading {mib} MiB", t.name))?;
    Ok(took)
}

/// How long one download may take before the benchmark gives up on it.
const DOWNLOAD_LIMIT: Duration = Duration::from_secs(60);

/// GETs `/blob` (or `/` when `expect` is 0) through a new forwarded connection and reads
/// the answer's head and `expect` bytes of body; returns the body bytes read. The time is the
/// transfer's: runtimes differ in how long they keep a stream after the pod closed its side
/// (containerd waits a second for the other direction), which is not throughput.
async fn download(
    forwarder: &Arc<spdy::PortForwarder>,
    expect: u64,
    limit: Duration,
) -> Result<u64> {
    tokio::time::timeout(limit, download_once(forwarder, expect))
        .await
        .with_context(|| format!("a download took more than {limit:?}"))?
}

async fn download_once(forwarder: &Arc<spdy::PortForwarder>, expect: u64) -> Result<u64> {
    let (mut conn, _done) = forwarder.open(HTTP_PORT).await?;
    let path = if expect == 0 { "/" } else { "/blob" };
    conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![0u8; 256 << 10];
    let mut head = Vec::new();
    let mut body: Option<u64> = None;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        match &mut body {
            Some(b) => *b += n as u64,
            None => {
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    body = Some((head.len() - end - 4) as u64);
                    head.truncate(end);
                }
            }
        }
        if body.is_some_and(|b| b >= expect) {
            break;
        }
    }
    if !head.starts_with(b"HTTP/1.") {
        bail!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&head[..head.len().min(80)])
        );
    }
    let body = body.context("the answer ended inside its head")?;
    if body < expect {
        bail!("short download: {body} of {expect} bytes");
    }
    Ok(body)
}

/// Port-forward throughput: `rounds` downloads of `mib` MiB from busybox httpd in a pod, each
/// over a session of its own, alternating, after one warm-up each. Prints times and MiB/s;
/// returns the ratio of median times (below 1: Corral is faster).
pub async fn port_forward(c: &mut Target, d: &mut Target, rounds: usize, mib: u64) -> Result<f64> {
    let cpod = http_pod(c, mib).await?;
    let dpod = http_pod(d, mib).await?;
    timed_download(c, &cpod, mib).await?;
    timed_download(d, &dpod, mib).await?;
    let (mut vc, mut vd) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        if i % 2 == 0 {
            vc.push(timed_download(c, &cpod, mib).await?);
            vd.push(timed_download(d, &dpod, mib).await?);
        } else {
            vd.push(timed_download(d, &dpod, mib).await?);
            vc.push(timed_download(c, &cpod, mib).await?);
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
    c.remove_pod_now(&cpod).await?;
    d.remove_pod_now(&dpod).await?;
    Ok(r)
}
