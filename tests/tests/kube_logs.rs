//! Container log rotation by the pod manager, as the kubelet rotates: a container flooding its
//! stdout never holds more than its files' worth on disk, rotated files are compressed, and
//! `corralctl logs` reads across them.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use common::kube::{kube_env_with, manifest};
use corral_cri_api::v1::ContainerStatusRequest;
use corral_tests::daemon::DaemonOptions;

const MAX_SIZE: u64 = 256 << 10;
const MAX_FILES: usize = 3;

/// 300 lines of 64 KiB, at most one every 20 ms (3.2 MB/s), each numbered; then quiet.
const FLOOD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: flood
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "i=0; while [ $i -lt 300 ]; do i=$((i+1)); head -c 65536 /dev/zero | tr '\\0' x; echo \" line $i\"; sleep 0.02; done; sleep 1000"]
"#;

/// The container's log file and every file it was rotated to.
fn log_files(log: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let dir = log.parent().context("a log directory")?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Rotation may remove a file between the listing and the look.
        if let Ok(meta) = entry.metadata() {
            files.push((entry.path(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_container_never_holds_more_than_its_files_on_disk() -> Result<()> {
    let mut k = kube_env_with(DaemonOptions {
        extra_config: format!(
            "[kubelet]\ncontainer_log_max_size = \"{}Ki\"\ncontainer_log_max_files = {MAX_FILES}\ncontainer_log_monitor_interval_secs = 1\n",
            MAX_SIZE >> 10
        ),
        ..Default::default()
    })
    .await?;
    k.apply(&manifest(FLOOD, k.image())).await?;
    let pod = k
        .wait_pod("flood", Duration::from_secs(60), "running", |p| {
            common::kube::running(p, "main")
        })
        .await?;
    let id = pod
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| c.container_id)
        .context("a container id")?;
    let id = id.trim_start_matches("corral://").to_owned();
    let status = k
        .pods
        .rt
        .container_status(ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .context("a status")?;
    let log = PathBuf::from(&status.log_path);

    // 300 lines are 19.7 MB: without rotation the file outgrows the bound below nearly twice. With it, the current file and the newest rotated one are each at
    // most the size limit plus what one check interval (1 s) lets through; older files are
    // compressed (the x's shrink a thousandfold).
    let bound: u64 = 2 * (MAX_SIZE + (3_200_000 * 3) / 2) + (1 << 20);
    let until = Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    let mut compressed_seen = false;
    loop {
        assert!(Instant::now() < until, "the flood never ended");
        let files = log_files(&log)?;
        // The last line is in a plain file: the current one or the newest rotated one.
        let ended = files.iter().any(|(p, _)| {
            !p.to_string_lossy().ends_with(".gz")
                && std::fs::read(p).is_ok_and(|b| b.windows(9).any(|w| w == b" line 300"))
        });
        if ended {
            break;
        }
        let total: u64 = files.iter().map(|(_, len)| len).sum();
        most = most.max(total);
        assert!(
            total <= bound,
            "{total} bytes of logs on disk (bound {bound}): {files:?}"
        );
        assert!(
            files.len() <= MAX_FILES,
            "at most {MAX_FILES} files: {files:?}"
        );
        compressed_seen |= files
            .iter()
            .any(|(p, _)| p.to_string_lossy().ends_with(".gz"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(compressed_seen, "older rotated files are compressed");
    let files = log_files(&log)?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let base = log
        .file_name()
        .context("a name")?
        .to_string_lossy()
        .into_owned();
    assert!(
        names
            .iter()
            .all(|n| n == &base || n.starts_with(&format!("{base}."))),
        "only this log and its rotations: {names:?}"
    );

    // corralctl reads the rotated files too: the lines it prints are numbered without a gap,
    // across more than the current file holds. (Once the flood is over and the last rotation
    // done, so no rotation runs while it reads.)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out =
        std::process::Command::new(corral_tests::daemon::corrald_bin().with_file_name("corralctl"))
            .arg("-r")
            .arg(format!("unix://{}", k.pods.d.socket().display()))
            .args(["logs", &id])
            .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let numbers: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit(" line ").next()?.trim().parse().ok())
        .collect();
    let current_lines = std::fs::read_to_string(&log)?
        .lines()
        .filter(|l| l.contains(" line "))
        .count();
    assert!(
        numbers.len() > current_lines,
        "{} lines printed, {current_lines} in the current file",
        numbers.len()
    );
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive line numbers: {:?}..{:?}",
        numbers.first(),
        numbers.last()
    );
    assert!(most > 0);
    Ok(())
}
