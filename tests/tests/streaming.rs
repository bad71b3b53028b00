//! Exec, Attach and PortForward through the socket and the streaming server, with the
//! `corral-streaming` client: stdin round trips, separate stdout and stderr, exit codes, a TTY
//! whose resize `stty size` sees, attach to a container's stdio, port-forward to an HTTP server
//! in a pod (over WebSocket channels, SPDY/3.1, and SPDY tunnelled through a WebSocket), and a
//! client that goes away killing its process.

use crate::common;

use std::time::Duration;

use anyhow::{Context as _, Result};
use common::pod::{PodEnv, env, parse_log};
use corral_cri_api::v1::{
    AttachRequest, ExecRequest, ExecSyncRequest, PortForwardRequest, StartContainerRequest,
};
use corral_streaming::client::{self, CommandIo, Outcome, Transport};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Output collected from a session.
type Sink = tokio::io::DuplexStream;

pub(crate) fn sink() -> (Box<Sink>, Sink) {
    let (a, b) = tokio::io::duplex(1 << 20);
    (Box::new(a), b)
}

pub(crate) async fn read_all(mut s: Sink) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) async fn exec_url(
    e: &mut PodEnv,
    ctr: &str,
    cmd: &[&str],
    tty: bool,
    stdin: bool,
) -> Result<String> {
    Ok(e.rt
        .exec(ExecRequest {
            container_id: ctr.to_owned(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        })
        .await?
        .into_inner()
        .url)
}

/// Runs the session at `url` with `input` on stdin; returns how it ended, stdout and stderr.
pub(crate) async fn run_with_stdin(
    url: &str,
    transport: Transport,
    input: &'static [u8],
) -> Result<(Outcome, String, String)> {
    let (out, out_r) = sink();
    let (err, err_r) = sink();
    let io = CommandIo {
        stdin: Some(Box::new(input)),
        stdout: Some(out),
        stderr: Some(err),
        resize: None,
    };
    let outcome = client::remote_command(url, transport, io).await?;
    Ok((outcome, read_all(out_r).await, read_all(err_r).await))
}

/// Runs the TTY session at `url`, its window resized to 77x33 at once; returns how it ended
/// and its output.
pub(crate) async fn run_resized_to_77x33(url: &str) -> Result<(Outcome, String)> {
    let (out, out_r) = sink();
    let (resize_tx, resize_rx) = tokio::sync::mpsc::channel(4);
    resize_tx.send((77, 33)).await?;
    let io = CommandIo {
        stdin: None,
        stdout: Some(out),
        stderr: None,
        resize: Some(resize_rx),
    };
    let outcome = client::remote_command(url, Transport::WebSocket, io).await?;
    Ok((outcome, read_all(out_r).await))
}

/// A running pod with one `sleep` container.
async fn sleeper(e: &mut PodEnv, name: &str) -> Result<(String, String)> {
    let pod = e.run_pod(name).await?;
    let ctr = e.start(&pod, name, "sleep", &["sleep", "3600"]).await?;
    Ok((pod, ctr))
}

#[tokio::test]
async fn exec_over_websocket_stdin_streams_exit_codes_and_tty_resize() -> Result<()> {
    let mut e = env().await?;
    let (pod, ctr) = sleeper(&mut e, "exec").await?;

    let url = exec_url(
        &mut e,
        &ctr,
        &[
            "sh",
            "-c",
            "read line; echo \"out:$line\"; echo err:$line >&2; exit 3",
        ],
        false,
        true,
    )
    .await?;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (outcome, out, err) = run_with_stdin(&url, Transport::WebSocket, b"hello\n").await?;
    assert_eq!(outcome, Outcome::Exited(3));
    assert_eq!(out, "out:hello\n");
    assert_eq!(err, "err:hello\n");

    // A URL is single-use.
    let again = client::remote_command(
        &url,
        Transport::WebSocket,
        CommandIo {
            stdin: None,
            stdout: None,
            stderr: None,
            resize: None,
        },
    )
    .await;
    assert!(again.is_err(), "a used URL was accepted again");

    // A terminal: the resize reaches it, stdout and stderr are one stream.
    let script =
        "while [ \"$(stty size)\" != \"33 77\" ]; do sleep 0.05; done; echo resized; stty size";
    let url = exec_url(&mut e, &ctr, &["sh", "-c", script], true, false).await?;
    let (outcome, text) = run_resized_to_77x33(&url).await?;
    assert_eq!(outcome, Outcome::Exited(0));
    assert!(text.contains("resized\r\n33 77\r\n"), "{text:?}");

    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn a_client_that_goes_away_kills_its_process() -> Result<()> {
    let mut e = env().await?;
    let (pod, ctr) = sleeper(&mut e, "gone").await?;
    let url = exec_url(
        &mut e,
        &ctr,
        &["sh", "-c", "echo started; exec sleep 1234"],
        false,
        false,
    )
    .await?;
    let (out, mut out_r) = sink();
    let io = CommandIo {
        stdin: None,
        stdout: Some(out),
        stderr: None,
        resize: None,
    };
    let session =
        tokio::spawn(async move { client::remote_command(&url, Transport::WebSocket, io).await });
    let mut first = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(20), out_r.read_exact(&mut first)).await??;
    assert_eq!(&first, b"started\n");
    session.abort();
    let _ = session.await;
    let mut seen = String::new();
    for _ in 0..100 {
        let ps =
            e.rt.exec_sync(ExecSyncRequest {
                container_id: ctr.clone(),
                cmd: vec!["ps".into()],
                timeout: 10,
            })
            .await?
            .into_inner();
        seen = String::from_utf8_lossy(&ps.stdout).into_owned();
        if !seen.contains("sleep 1234") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !seen.contains("sleep 1234"),
        "the exec'd process outlived its client:\n{seen}"
    );
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn attach_joins_the_main_process_and_detaching_keeps_it() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("att").await?;
    let mut config = e.ctr_config(
        "echoer",
        &[
            "sh",
            "-c",
            "while read l; do echo \"echo:$l\"; done; echo bye",
        ],
    );
    config.stdin = true;
    let ctr = e.create(&pod, "att", config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: ctr.clone(),
    })
    .await?;

    for (word, transport) in [
        ("one", Transport::WebSocket),
        ("two", Transport::Spdy),
        ("three", Transport::Spdy),
    ] {
        let url =
            e.rt.attach(AttachRequest {
                container_id: ctr.clone(),
                stdin: true,
                tty: false,
                stdout: true,
                stderr: true,
            })
            .await?
            .into_inner()
            .url;
        let (mut to_ctr, from_client) = tokio::io::duplex(1024);
        let (out, mut out_r) = sink();
        let (err, _err_r) = sink();
        let io = CommandIo {
            stdin: Some(Box::new(from_client)),
            stdout: Some(out),
            stderr: Some(err),
            resize: None,
        };
        let session =
            tokio::spawn(async move { client::remote_command(&url, transport, io).await });
        let want = format!("echo:{word}\n");
        let mut got = vec![0u8; want.len()];
        // The attach may not be in place when the first line is written: repeat it.
        let read = async {
            out_r.read_exact(&mut got).await?;
            anyhow::Ok(())
        };
        tokio::pin!(read);
        loop {
            to_ctr.write_all(format!("{word}\n").as_bytes()).await?;
            tokio::select! {
                r = &mut read => { r?; break; }
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        assert_eq!(String::from_utf8_lossy(&got), want);
        session.abort();
        let _ = session.await;
    }
    // Detached three times, still running.
    let status = e.status(&ctr).await?;
    assert_eq!(
        status.state,
        corral_cri_api::v1::ContainerState::ContainerRunning as i32
    );
    let log: Vec<String> = parse_log(&std::fs::read_to_string(e.log_file("echoer"))?)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert!(log.contains(&"echo:one".to_owned()), "{log:?}");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn port_forward_over_websocket_reaches_a_server_in_the_pod() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("pf").await?;
    let httpd = "mkdir -p /tmp/www && echo hello-pf > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";
    e.start(&pod, "pf", "httpd", &["sh", "-c", httpd]).await?;
    let mut answer = String::new();
    for _ in 0..100 {
        let url =
            e.rt.port_forward(PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![8080],
            })
            .await?
            .into_inner()
            .url;
        let (mut conn, task) = client::websocket::port_forward(&url, 8080).await?;
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        answer.clear();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer)).await;
        let result = task.await.context("port-forward task")?;
        if answer.contains("hello-pf") {
            break;
        }
        // httpd not listening yet: the error channel says so.
        assert!(result.is_err() || answer.is_empty(), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answer.contains("hello-pf"), "{answer:?}");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn bad_streaming_requests_are_refused_with_clear_errors() -> Result<()> {
    let mut e = env().await?;
    let (pod, ctr) = sleeper(&mut e, "bad").await?;
    let missing =
        e.rt.exec(ExecRequest {
            container_id: "nope".into(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let both =
        e.rt.exec(ExecRequest {
            container_id: ctr.clone(),
            cmd: vec!["true".into()],
            tty: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(both.code(), tonic::Code::InvalidArgument, "{both:?}");
    assert!(both.message().contains("tty and stderr"), "{both:?}");
    let empty =
        e.rt.exec(ExecRequest {
            container_id: ctr.clone(),
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(empty.message().contains("cmd is empty"), "{empty:?}");
    let tty =
        e.rt.attach(AttachRequest {
            container_id: ctr.clone(),
            tty: true,
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(tty.code(), tonic::Code::InvalidArgument, "{tty:?}");
    assert!(tty.message().contains("created with tty false"), "{tty:?}");
    let stdin =
        e.rt.attach(AttachRequest {
            container_id: ctr.clone(),
            stdin: true,
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        stdin.message().contains("not created with stdin"),
        "{stdin:?}"
    );
    let port =
        e.rt.port_forward(PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![70000],
        })
        .await
        .unwrap_err();
    assert_eq!(port.code(), tonic::Code::InvalidArgument, "{port:?}");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// Open descriptors and resident memory (KiB) of a process.
fn fds_and_rss(pid: i32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

#[tokio::test]
async fn five_hundred_sessions_leak_no_descriptor_task_or_memory() -> Result<()> {
    let mut e = env().await?;
    let (pod, ctr) = sleeper(&mut e, "leak").await?;
    let daemon = e.d.pid().context("daemon pid")? as i32;
    let shims = common::pod::shim_pids(&e.d.state());
    assert_eq!(shims.len(), 1, "{shims:?}");
    let shim = shims[0];
    let run = async |n: usize, e: &mut PodEnv| -> Result<()> {
        for i in 0..n {
            let url = exec_url(e, &ctr, &["cat"], false, true).await?;
            let (out, out_r) = sink();
            let input = format!("session {i}\n");
            let io = CommandIo {
                stdin: Some(Box::new(std::io::Cursor::new(input.clone().into_bytes()))),
                stdout: Some(out),
                stderr: None,
                resize: None,
            };
            let outcome = client::remote_command(&url, Transport::WebSocket, io).await?;
            assert_eq!(outcome, Outcome::Exited(0));
            assert_eq!(read_all(out_r).await, input);
        }
        Ok(())
    };
    // Warm up (allocator arenas, lazily created tasks), then measure, once the shim has made
    // its next spare intermediate (a second after the create used the first; its pipes and
    // pidfd are the shim's descriptors too).
    run(50, &mut e).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (d_fds, d_rss) = fds_and_rss(daemon);
    let (s_fds, s_rss) = fds_and_rss(shim);
    run(500, &mut e).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (d_fds2, d_rss2) = fds_and_rss(daemon);
    let (s_fds2, s_rss2) = fds_and_rss(shim);
    assert!(
        d_fds2 <= d_fds + 2,
        "daemon descriptors {d_fds} -> {d_fds2}"
    );
    assert_eq!(s_fds2, s_fds, "shim descriptors");
    assert!(d_rss2 < d_rss + 4096, "daemon RSS {d_rss} -> {d_rss2} KiB");
    assert!(s_rss2 < s_rss + 512, "shim RSS {s_rss} -> {s_rss2} KiB");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn spdy_exec_and_port_forward_through_the_daemon() -> Result<()> {
    let mut e = env().await?;
    let (pod, ctr) = sleeper(&mut e, "spdy").await?;
    let url = exec_url(
        &mut e,
        &ctr,
        &[
            "sh",
            "-c",
            "read line; echo \"out:$line\"; echo err:$line >&2; exit 5",
        ],
        false,
        true,
    )
    .await?;
    let (outcome, out, err) = run_with_stdin(&url, Transport::Spdy, b"spdy\n").await?;
    assert_eq!(outcome, Outcome::Exited(5));
    assert_eq!(out, "out:spdy\n");
    assert_eq!(err, "err:spdy\n");

    let httpd = "mkdir -p /tmp/www && echo hello-spdy > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";
    e.start(&pod, "spdy", "httpd", &["sh", "-c", httpd]).await?;
    let url =
        e.rt.port_forward(PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        })
        .await?
        .into_inner()
        .url;
    // One SPDY session carries every connection.
    let forwarder = client::spdy::PortForwarder::connect(&url).await?;
    let mut answer = String::new();
    for _ in 0..100 {
        let (mut conn, _errors) = forwarder.open(8080).await?;
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        answer.clear();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer)).await;
        if answer.contains("hello-spdy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answer.contains("hello-spdy"), "{answer:?}");
    forwarder.close();
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// `crictl port-forward --transport websocket` (cri-tools 1.32) and kubectl 1.30+ (KEP-4006): a
/// WebSocket asking for `SPDY/3.1+portforward.k8s.io`, whose binary messages carry the SPDY
/// session in which the client opens an error and a data stream per connection.
#[tokio::test]
async fn port_forward_over_spdy_tunnelled_through_a_websocket() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("tunnel").await?;
    // `big`: "tunnel." 2^17 times (917504 bytes), so a lost or repeated piece shows.
    let httpd = "mkdir -p /tmp/www && echo hello-tunnel > /tmp/www/index.html && s=tunnel. && \
                 for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17; do s=$s$s; done && \
                 printf %s \"$s\" > /tmp/www/big && exec httpd -f -p 8080 -h /tmp/www";
    e.start(&pod, "tunnel", "httpd", &["sh", "-c", httpd])
        .await?;
    let url =
        e.rt.port_forward(PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        })
        .await?
        .into_inner()
        .url;
    let forwarder = client::spdy::PortForwarder::connect_websocket(&url).await?;
    // The server's Sec-WebSocket-Protocol.
    assert_eq!(forwarder.protocol(), "SPDY/3.1+portforward.k8s.io");
    // Each GET is a new connection: a new pair of streams in the one tunnelled session.
    let get = async |path: &str| -> Result<Vec<u8>> {
        let (mut conn, _errors) = forwarder.open(8080).await?;
        let request = format!("GET {path} HTTP/1.0\r\n\r\n");
        conn.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        let read = conn.read_to_end(&mut answer);
        let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
        Ok(answer)
    };
    let mut answer = String::new();
    for _ in 0..100 {
        answer = String::from_utf8_lossy(&get("/").await?).into_owned();
        if answer.contains("hello-tunnel") {
            break;
        }
        // httpd not listening yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answer.contains("hello-tunnel"), "{answer:?}");
    // Many tunnel messages' worth, whole and in order.
    let big = get("/big").await?;
    let start = big
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response head")?;
    let expected: Vec<u8> = b"tunnel.".iter().copied().cycle().take(7 << 17).collect();
    assert!(
        big[start + 4..] == expected[..],
        "{} body bytes",
        big.len() - start - 4
    );
    forwarder.close();
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// Prints `own-devpts` when the terminal on stdin is a node of the devpts on /dev/pts: the
/// container's own, not one of the host's.
const OWN_DEVPTS: &str =
    "[ \"$(stat -c %d /dev/pts)\" = \"$(stat -c %d \"$(tty)\")\" ] && echo own-devpts";

#[tokio::test]
async fn spdy_tty_exec_and_attach_use_the_containers_own_terminal() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("spdytty").await?;
    // The main process on a terminal of its own; attach reaches it.
    let mut config = e.ctr_config("term", &["sh", "-c", &format!("{OWN_DEVPTS}; exec cat")]);
    config.tty = true;
    config.stdin = true;
    let ctr = e.create(&pod, "spdytty", config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: ctr.clone(),
    })
    .await?;

    // Exec with a terminal: resized, and its terminal belongs to the container's devpts.
    let script = format!(
        "while [ \"$(stty size)\" != \"33 77\" ]; do sleep 0.05; done; echo resized; stty size; {OWN_DEVPTS}"
    );
    let url = exec_url(&mut e, &ctr, &["sh", "-c", &script], true, false).await?;
    let (out, out_r) = sink();
    let (resize_tx, resize_rx) = tokio::sync::mpsc::channel(4);
    resize_tx.send((77, 33)).await?;
    let io = CommandIo {
        stdin: None,
        stdout: Some(out),
        stderr: None,
        resize: Some(resize_rx),
    };
    let outcome = client::remote_command(&url, Transport::Spdy, io).await?;
    let text = read_all(out_r).await;
    assert_eq!(outcome, Outcome::Exited(0), "{text:?}");
    assert!(
        text.contains("resized\r\n33 77\r\nown-devpts\r\n"),
        "{text:?}"
    );

    let url =
        e.rt.attach(AttachRequest {
            container_id: ctr.clone(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        })
        .await?
        .into_inner()
        .url;
    let (mut to_ctr, from_client) = tokio::io::duplex(1024);
    let (out, mut out_r) = sink();
    // With a terminal, a SPDY client opens the resize stream too (the server waits for it).
    let (_resize_tx, resize_rx) = tokio::sync::mpsc::channel(1);
    let io = CommandIo {
        stdin: Some(Box::new(from_client)),
        stdout: Some(out),
        stderr: None,
        resize: Some(resize_rx),
    };
    let session =
        tokio::spawn(async move { client::remote_command(&url, Transport::Spdy, io).await });
    // The terminal echoes the line and `cat` repeats it.
    to_ctr.write_all(b"ping\n").await?;
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("ping\r\nping\r\n") {
            let n = out_r.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "attach output ended");
            seen.extend_from_slice(&buf[..n]);
        }
        anyhow::Ok(())
    };
    let in_time = tokio::time::timeout(Duration::from_secs(20), read).await;
    if session.is_finished() {
        anyhow::bail!(
            "attach session ended early ({:?}); output {:?}",
            session.await,
            String::from_utf8_lossy(&seen)
        );
    }
    in_time.with_context(|| {
        format!(
            "attach output in time; output {:?}",
            String::from_utf8_lossy(&seen)
        )
    })??;
    session.abort();
    let _ = session.await;

    let log = std::fs::read_to_string(e.log_file("term"))?;
    assert!(log.contains("own-devpts"), "{log}");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn tty_exec_output_arrives_whole_and_without_waiting_for_the_drain_limit() -> Result<()> {
    let mut e = env().await?;
    let (pod, ctr) = sleeper(&mut e, "ttyout").await?;
    let script = "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line$i; done";
    for round in 0..40 {
        let transport = if round % 2 == 0 {
            Transport::Spdy
        } else {
            Transport::WebSocket
        };
        let url = exec_url(&mut e, &ctr, &["sh", "-c", script], true, false).await?;
        let (out, out_r) = sink();
        let (_resize_tx, resize_rx) = tokio::sync::mpsc::channel(1);
        let io = CommandIo {
            stdin: None,
            stdout: Some(out),
            stderr: None,
            resize: Some(resize_rx),
        };
        let started = std::time::Instant::now();
        let outcome = client::remote_command(&url, transport, io).await?;
        let took = started.elapsed();
        let text = read_all(out_r).await;
        assert_eq!(outcome, Outcome::Exited(0), "round {round}: {text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 200, "round {round} ({transport:?}): {text:?}");
        assert_eq!(
            lines.last(),
            Some(&"line200"),
            "round {round} ({transport:?})"
        );
        // The output drain limit after an exit is 5 s: a session that hit it lost its EOF.
        assert!(
            took < corral_streaming::session::OUTPUT_DRAIN_TIMEOUT,
            "round {round} ({transport:?}) took {took:?}"
        );
    }
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
