//! The Prometheus endpoint through a real daemon: `[metrics] address` on loopback, scraped
//! over HTTP after real calls, a CNI ADD/DEL, a pull and an OOM kill.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use common::pod::env_with;
use corral_cri_api::v1::ContainerStatusRequest;
use corral_tests::daemon::{DaemonOptions, TestDaemon};

/// The metrics URL the daemon logged (it binds port 0).
pub(crate) async fn metrics_url(d: &TestDaemon) -> Result<String> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(url) = d
            .log()
            .lines()
            .find(|l| l.contains("metrics endpoint listening"))
            .and_then(|l| l.split("http://").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        {
            // The log may colour its fields: keep what an address can hold.
            let url: String = url
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ":./".contains(*c))
                .collect();
            return Ok(format!("http://{url}"));
        }
        if Instant::now() > until {
            bail!("no metrics endpoint in the log:\n{}", d.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scrape(url: &str) -> Result<String> {
    let resp = reqwest::get(url).await?;
    assert!(resp.status().is_success(), "{}", resp.status());
    Ok(resp.text().await?)
}

/// The value of the sample `name` (with its labels exactly as written), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_pulls_cni_pods_and_oom_kills() -> Result<()> {
    let mut e = env_with(DaemonOptions {
        extra_config: "[metrics]\naddress = \"127.0.0.1:0\"\n".into(),
        ..DaemonOptions::default()
    })
    .await?;
    let url = metrics_url(&e.d).await?;
    let pod = e.run_pod("metrics").await?;
    let config = e.oom_hog_config("hog");
    let hog = e.create(&pod, "metrics", config).await?;
    e.rt.start_container(corral_cri_api::v1::StartContainerRequest {
        container_id: hog.clone(),
    })
    .await?;
    let s = e.wait_exited(&hog, Duration::from_secs(20)).await?;
    assert_eq!(s.reason, "OOMKilled");
    let missing =
        e.rt.container_status(ContainerStatusRequest {
            container_id: "nope".into(),
            verbose: false,
        })
        .await;
    assert_eq!(
        missing.map(|_| ()).unwrap_err().code(),
        tonic::Code::NotFound
    );

    let text = scrape(&url).await?;
    let expect = [
        (
            "corral_grpc_requests_total{method=\"ContainerStatus\",code=\"NotFound\"}",
            1.0,
        ),
        (
            "corral_grpc_requests_total{method=\"RunPodSandbox\",code=\"Ok\"}",
            1.0,
        ),
        (
            "corral_grpc_request_duration_seconds_count{method=\"RunPodSandbox\"}",
            1.0,
        ),
        ("corral_image_pull_duration_seconds_count", 1.0),
        (
            "corral_cni_duration_seconds_count{command=\"ADD\",result=\"ok\"}",
            1.0,
        ),
        ("corral_oom_kills_total", 1.0),
        ("corral_pods{state=\"SANDBOX_READY\"}", 1.0),
        ("corral_containers{state=\"CONTAINER_EXITED\"}", 1.0),
        ("corral_shims", 1.0),
    ];
    for (name, value) in expect {
        assert_eq!(sample(&text, name), Some(value), "{name} in\n{text}");
    }
    let pulled = sample(&text, "corral_image_pulled_bytes_total").context("pulled bytes")?;
    assert!(pulled > 100_000.0, "busybox is bigger than {pulled} bytes");

    e.remove_pod(&pod).await?;
    let text = scrape(&url).await?;
    assert_eq!(
        sample(&text, "corral_pods{state=\"SANDBOX_READY\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "corral_shims"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            "corral_cni_duration_seconds_count{command=\"DEL\",result=\"ok\"}"
        ),
        Some(1.0)
    );
    let other = reqwest::get(url.replace("/metrics", "/other")).await?;
    assert_eq!(other.status().as_u16(), 404);
    e.assert_clean();
    Ok(())
}
