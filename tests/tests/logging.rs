//! corrald's logs: the level changes at run time on SIGHUP (from the config file's
//! `[log] level`), a bad level keeps the old one, and `format = "json"` writes one JSON object
//! per line.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use corral_cri_api::v1::GetEventsRequest;
use corral_tests::daemon::{DaemonOptions, TestDaemon};

/// A debug line the daemon writes on every GetContainerEvents subscription.
const DEBUG_LINE: &str = "container events: subscribed";

async fn subscribe_once(d: &TestDaemon) -> Result<()> {
    let mut rt = d.runtime().await?;
    drop(rt.get_container_events(GetEventsRequest {}).await?);
    // The line is written before the answer; give the pipe a moment all the same.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

fn count(d: &TestDaemon, needle: &str) -> usize {
    d.log().matches(needle).count()
}

async fn hup_and_wait(d: &TestDaemon, needle: &str, before: usize) -> Result<()> {
    let pid = d.pid().expect("running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )?;
    let until = Instant::now() + Duration::from_secs(10);
    while count(d, needle) <= before {
        if Instant::now() > until {
            bail!("no {needle:?} after SIGHUP:\n{}", d.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn set_level(d: &TestDaemon, from: &str, to: &str) -> Result<()> {
    let text = std::fs::read_to_string(d.config_file())?;
    let changed = text.replace(&format!("level = {from:?}"), &format!("level = {to:?}"));
    assert_ne!(text, changed, "the config file names level {from:?}");
    std::fs::write(d.config_file(), changed)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_log_level() -> Result<()> {
    let d = TestDaemon::start_with(DaemonOptions {
        log_level: Some("info".into()),
        ..DaemonOptions::default()
    })
    .await?;
    subscribe_once(&d).await?;
    assert_eq!(count(&d, DEBUG_LINE), 0, "no debug lines at info");

    set_level(&d, "info", "debug")?;
    hup_and_wait(&d, "log level changed", 0).await?;
    subscribe_once(&d).await?;
    assert_eq!(count(&d, DEBUG_LINE), 1, "debug lines after SIGHUP");

    // A level that does not parse keeps the current one, and says so.
    set_level(&d, "debug", "nonsense=[")?;
    hup_and_wait(&d, "the log level stays as it was", 0).await?;
    subscribe_once(&d).await?;
    assert_eq!(count(&d, DEBUG_LINE), 2, "still debug");

    set_level(&d, "nonsense=[", "warn")?;
    hup_and_wait(&d, "log level changed", 1).await?;
    subscribe_once(&d).await?;
    assert_eq!(count(&d, DEBUG_LINE), 2, "quiet at warn");
    let mut rt = d.runtime().await?;
    rt.version(corral_cri_api::v1::VersionRequest::default())
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_writes_one_object_per_line() -> Result<()> {
    let d = TestDaemon::start_with(DaemonOptions {
        log_level: Some("debug".into()),
        log_format: Some("json".into()),
        ..DaemonOptions::default()
    })
    .await?;
    subscribe_once(&d).await?;
    let log = d.log();
    let mut seen = false;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("not JSON ({e}): {line}"))?;
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        if v["fields"]["message"] == DEBUG_LINE {
            assert_eq!(v["level"], "DEBUG");
            assert!(v["fields"]["subscriber"].is_number(), "{v}");
            seen = true;
        }
    }
    assert!(seen, "the subscription's debug line:\n{log}");
    // The flag sets the same thing.
    let out = std::process::Command::new(corral_tests::daemon::corrald_bin())
        .arg("--config")
        .arg(d.config_file())
        .args([
            "--log-format",
            "json",
            "--log-level",
            "warn",
            "--print-config",
        ])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("format = \"json\""), "{text}");
    assert!(text.contains("level = \"warn\""), "{text}");
    Ok(())
}

/// The value of the unlabelled sample `name` in the daemon's metrics.
async fn metric(url: &str, name: &str) -> Result<Option<f64>> {
    let text = reqwest::get(url).await?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()))
}

/// Waits until the daemon's log has a line with every one of `parts`.
async fn wait_log_line(d: &TestDaemon, parts: &[&str]) -> Result<String> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = d
            .log()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return Ok(line.to_owned());
        }
        if Instant::now() > until {
            bail!("no line with {parts:?} in the daemon's log:\n{}", d.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A container whose log's file system is full keeps running and its shim keeps serving; its
/// output meanwhile is dropped in whole records, and once there is space again the log goes on
/// with a marker of what was lost. The daemon reports it: a warning in its log when the output
/// starts being dropped (naming the container, the log and the error) and another when the log
/// is written again, and the bytes lost in `corral_container_log_dropped_bytes_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_disk_drops_output_resumes_with_a_marker_and_the_daemon_reports_it() -> Result<()>
{
    let mut e = common::pod::env_with(DaemonOptions {
        extra_config: "[metrics]\naddress = \"127.0.0.1:0\"\n".into(),
        ..DaemonOptions::default()
    })
    .await?;
    let url = crate::metrics::metrics_url(&e.d).await?;
    const COUNTER: &str = "corral_container_log_dropped_bytes_total";
    assert_eq!(
        metric(&url, COUNTER).await?,
        Some(0.0),
        "nothing dropped yet"
    );
    let logs = e.d.dir().join("small-logs");
    std::fs::create_dir(&logs)?;
    // Unmounted by the harness's cleanup with the daemon's other mounts.
    corral_tests::cleanup::mount_tmpfs(&logs, "size=1m,mode=0755")?;
    let mut config = e.pod_config("full");
    config.log_directory = logs.display().to_string();
    let pod = e.run_pod_with(config).await?;
    let mut ctr = e.ctr_config(
        "talker",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done",
        ],
    );
    ctr.log_path = "talker.log".into();
    let id = e.create(&pod, "full", ctr).await?;
    e.rt.start_container(corral_cri_api::v1::StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    let log = logs.join("talker.log");
    // Fill the file system to the last byte.
    let filler = logs.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler)?;
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_log_line(
        &e.d,
        &[
            "dropping the container's output",
            &id,
            "talker.log",
            "No space left on device",
        ],
    )
    .await?;
    let status = e.status(&id).await?;
    assert_eq!(
        status.state,
        corral_cri_api::v1::ContainerState::ContainerRunning as i32,
        "the container runs on"
    );
    let alive =
        e.rt.exec_sync(corral_cri_api::v1::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            timeout: 10,
        })
        .await?
        .into_inner();
    assert_eq!(alive.exit_code, 0, "the shim still serves");
    std::fs::remove_file(&filler)?;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log)?;
        if text.contains("bytes of container output were dropped") && text.ends_with('\n') {
            break text;
        }
        assert!(
            std::time::Instant::now() < until,
            "no marker after the space came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Every record is whole: nothing cut short ran into the next one.
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        assert!(
            fields.len() == 4
                && ["stdout", "stderr"].contains(&fields[1])
                && ["F", "P"].contains(&fields[2]),
            "a torn record: {line:?}"
        );
    }
    let marker = text
        .lines()
        .position(|l| l.contains("bytes of container output were dropped"))
        .unwrap_or_default();
    assert!(
        text.lines().skip(marker + 1).any(|l| l.contains("line ")),
        "the output goes on after the marker"
    );
    // The daemon counted what the markers say was lost (a write that fails while the disk
    // fills can be followed by a smaller one that fits: more than one run), and said the log
    // goes on.
    let lost: f64 = text
        .lines()
        .filter(|l| l.contains("bytes of container output were dropped"))
        .map(|l| {
            l.split("corral: ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next()?.parse::<f64>().ok())
                .expect("a marker's byte count")
        })
        .sum();
    assert!(lost > 0.0);
    wait_log_line(&e.d, &["log is written again", &id]).await?;
    let until = Instant::now() + Duration::from_secs(10);
    while metric(&url, COUNTER).await? != Some(lost) {
        assert!(
            Instant::now() < until,
            "{COUNTER} is {:?}, not the {lost} bytes of the marker",
            metric(&url, COUNTER).await?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    e.remove_pod(&pod).await?;
    nix::mount::umount(&logs)?;
    e.assert_clean();
    Ok(())
}
