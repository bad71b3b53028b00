//! corrald's logs: the level changes at run time on SIGHUP (from the config file's
//! `[log] level`), a bad level keeps the old one, and `format = "json"` writes one JSON object
//! per line.

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
