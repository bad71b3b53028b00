//! Many sessions, finished, abandoned and port-forwarded, leave nothing behind: no session,
//! connection or task in the server, no process in the backend, no file descriptor.
//! Alone in its test binary so the descriptor count is not disturbed by other tests.
#![allow(clippy::unwrap_used)] // helpers too: a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;

use common::*;
use corral_streaming::PortForwardSpec;
use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Processes whose parent is this test process (zombies included).
fn children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may contain spaces, so split after the ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_leave_nothing_behind() {
    let (server, backend) = start().await;
    let (echo_port, echo) = echo_server(40).await;
    // Warm up (lazy runtime state, the first process spawn), then count.
    let url = server
        .exec_url(exec_spec(&["true"], false, true, false))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    receive_all(&mut ws, false).await;
    drop(ws);
    eventually("warm-up to end", || server.stats().sessions == 0).await;
    let fds_before = open_fds();
    assert_eq!(children(), 0);

    let mut batch = Vec::new();
    for i in 0..200 {
        let url = match i % 5 {
            // Port-forward one connection to the echo server.
            4 => server
                .port_forward_url(PortForwardSpec {
                    pod_sandbox_id: "sandbox".into(),
                    ports: vec![echo_port],
                })
                .unwrap(),
            // Abandoned mid-session: the process must be killed.
            3 => server
                .exec_url(exec_spec(
                    &["sh", "-c", "echo up; exec sleep 1000"],
                    false,
                    true,
                    false,
                ))
                .unwrap(),
            // A full stdin/stdout round trip.
            _ => server
                .exec_url(exec_spec(&["cat"], true, true, true))
                .unwrap(),
        };
        batch.push(tokio::spawn(async move {
            let (mut ws, _) = connect(&url, &["v5.channel.k8s.io", "v4.channel.k8s.io"])
                .await
                .unwrap();
            match i % 5 {
                4 => {
                    send(&mut ws, 0, b"ping").await;
                    loop {
                        let msg = ws.next().await.unwrap().unwrap();
                        if msg.into_data().as_ref() == b"\x00ping" {
                            break;
                        }
                    }
                }
                3 => loop {
                    let msg = ws.next().await.unwrap().unwrap();
                    if msg.into_data().as_ref() == b"\x01up\n" {
                        break;
                    }
                },
                _ => {
                    send(&mut ws, 0, b"data").await;
                    ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
                    let received = receive_all(&mut ws, false).await;
                    assert_eq!(received.channel(1), b"data");
                }
            }
        }));
        // Twenty at a time.
        if batch.len() == 20 {
            for task in batch.drain(..) {
                task.await.unwrap();
            }
        }
    }

    eventually("sessions, connections and tasks to end", || {
        let stats = server.stats();
        stats.sessions == 0 && stats.connections == 0 && stats.tasks == 0
    })
    .await;
    eventually("every process to be gone", || {
        backend.observed.live.load(Ordering::SeqCst) == 0
    })
    .await;
    eventually("every child to be reaped", || children() == 0).await;
    tokio::time::timeout(WAIT, echo).await.unwrap().unwrap();
    assert_eq!(server.stats().outstanding_tokens, 0);
    // Killed children are reaped by tokio in the background; give their pipes a moment.
    eventually("descriptors to be closed", || open_fds() <= fds_before).await;
}
