//! Cold image pulls: after every pull the image is removed and its content garbage-collected.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use corral_cri_api::v1::image_service_client::ImageServiceClient;
use corral_cri_api::v1::{ImageSpec, PullImageRequest, RemoveImageRequest};
use tonic::transport::Channel;

use crate::stats::{median, ms};

pub fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    })
}

/// Pulls `image` (and keeps it).
pub async fn pull(c: &mut ImageServiceClient<Channel>, image: &str) -> Result<()> {
    c.pull_image(PullImageRequest {
        image: spec(image),
        ..Default::default()
    })
    .await
    .with_context(|| format!("pull {image}"))?;
    Ok(())
}

/// One cold pull: returns its duration, then removes the image.
async fn cold_pull(c: &mut ImageServiceClient<Channel>, image: &str) -> Result<Duration> {
    let started = Instant::now();
    pull(c, image).await?;
    let took = started.elapsed();
    c.remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    Ok(took)
}

/// Cold pulls of `image`, `runs` times each after one warm-up, alternating which goes first.
pub async fn compare(
    ours: &mut ImageServiceClient<Channel>,
    theirs: &mut ImageServiceClient<Channel>,
    label: &str,
    image: &str,
    runs: usize,
) -> Result<()> {
    // Warm the registry's page cache and both code paths once.
    cold_pull(ours, image).await?;
    cold_pull(theirs, image).await?;
    let (mut c, mut d) = (Vec::new(), Vec::new());
    for run in 0..runs {
        if run % 2 == 0 {
            c.push(cold_pull(ours, image).await?);
            d.push(cold_pull(theirs, image).await?);
        } else {
            d.push(cold_pull(theirs, image).await?);
            c.push(cold_pull(ours, image).await?);
        }
        println!(
            "  {label} run {run}: corral {:>8.1} ms   containerd {:>8.1} ms",
            ms(c[run]),
            ms(d[run])
        );
    }
    let (mc, md) = (median(&c), median(&d));
    println!(
        "PullImage {label}: corral median {:.1} ms, containerd median {:.1} ms, ratio corral/containerd {:.2}",
        ms(mc),
        ms(md),
        mc.as_secs_f64() / md.as_secs_f64()
    );
    Ok(())
}
