//! Cold image pulls: after every pull the image is removed and its content garbage-collected.
//!
//! Both daemons delete a removed image's snapshots after RemoveImage has answered (Corral on
//! its reclaim thread, containerd in its garbage collection), so a pull that follows at once
//! may race the previous copy's deletion. `Settle::Reclaimed` waits until each daemon's
//! snapshot directory is empty again before the next pull (and reports how long that took);
//! `Settle::None` pulls back to back. CPU is each daemon process's user and system time
//! (`/proc/<pid>/stat`) over the timed pulls, their removals and the waits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
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

/// One daemon in the comparison.
pub struct Side<'a> {
    pub client: &'a mut ImageServiceClient<Channel>,
    pub pid: u32,
    /// The directory whose entries are the daemon's unpacked layers, removed ones included
    /// until their files are gone (Corral: `snapshots/.staging` holds those being deleted;
    /// containerd: the overlayfs snapshotter's `snapshots/`).
    pub reclaim_dir: PathBuf,
}

/// Whether the next pull waits for the removed image's files to be deleted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    None,
    Reclaimed,
}

/// User and system CPU of a process so far (all its threads).
pub fn cpu(pid: u32) -> (Duration, Duration) {
    let t = crate::procs::stat_times(&pid.to_string());
    (t.user, t.system)
}

async fn wait_reclaimed(side: &Side<'_>) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let left = match std::fs::read_dir(&side.reclaim_dir) {
            Ok(d) => d.count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).context(format!("read {}", side.reclaim_dir.display())),
        };
        if left == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "{} still holds {left} entries after 120 s",
                side.reclaim_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One cold pull and its cost.
struct Pulled {
    took: Duration,
    /// The daemon's CPU (user + system) during the pull alone.
    cpu: Duration,
    /// How long the removed image's files took to go (`Settle::Reclaimed`).
    reclaim: Duration,
}

/// One cold pull, then the image removed (and, with `Settle::Reclaimed`, its files waited for).
async fn cold_pull(side: &mut Side<'_>, image: &str, settle: Settle) -> Result<Pulled> {
    let (u0, s0) = cpu(side.pid);
    let started = Instant::now();
    pull(side.client, image).await?;
    let took = started.elapsed();
    let (u1, s1) = cpu(side.pid);
    side.client
        .remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    let reclaim = match settle {
        Settle::None => Duration::ZERO,
        Settle::Reclaimed => wait_reclaimed(side).await?,
    };
    Ok(Pulled {
        took,
        cpu: (u1 + s1).saturating_sub(u0 + s0),
        reclaim,
    })
}

#[derive(Default)]
struct Totals {
    pulls: Vec<Duration>,
    reclaims: Vec<Duration>,
    /// CPU during the pulls alone.
    pull_cpu: Duration,
    user: Duration,
    sys: Duration,
}

async fn timed(side: &mut Side<'_>, image: &str, settle: Settle, t: &mut Totals) -> Result<()> {
    let (u0, s0) = cpu(side.pid);
    let p = cold_pull(side, image, settle).await?;
    let (u1, s1) = cpu(side.pid);
    t.pulls.push(p.took);
    t.reclaims.push(p.reclaim);
    t.pull_cpu += p.cpu;
    t.user += u1.saturating_sub(u0);
    t.sys += s1.saturating_sub(s0);
    Ok(())
}

/// What one image's comparison found.
pub struct Compared {
    /// Median corral/containerd.
    pub ratio: f64,
    /// Corral's median pull.
    pub ours: Duration,
    /// corrald's CPU (user + system) per pull, the pull alone (mean).
    pub our_cpu: Duration,
}

/// Cold pulls of `image`, `runs` times each after one warm-up, alternating which goes first.
pub async fn compare(
    ours: &mut Side<'_>,
    theirs: &mut Side<'_>,
    label: &str,
    image: &str,
    runs: usize,
    settle: Settle,
) -> Result<Compared> {
    // Warm the registry's page cache and both code paths once.
    cold_pull(ours, image, Settle::Reclaimed).await?;
    cold_pull(theirs, image, Settle::Reclaimed).await?;
    let (mut c, mut d) = (Totals::default(), Totals::default());
    for run in 0..runs {
        if run % 2 == 0 {
            timed(ours, image, settle, &mut c).await?;
            timed(theirs, image, settle, &mut d).await?;
        } else {
            timed(theirs, image, settle, &mut d).await?;
            timed(ours, image, settle, &mut c).await?;
        }
        println!(
            "  {label} run {run}: corral {:>8.1} ms   containerd {:>8.1} ms",
            ms(c.pulls[run]),
            ms(d.pulls[run])
        );
    }
    let (mc, md) = (median(&c.pulls), median(&d.pulls));
    let ratio = mc.as_secs_f64() / md.as_secs_f64();
    let sorted = |v: &[Duration]| {
        let mut v: Vec<String> = v.iter().map(|d| format!("{:.0}", ms(*d))).collect();
        v.sort_by_key(|s| s.parse::<u64>().unwrap_or(0));
        v.join(" ")
    };
    println!(
        "PullImage {label}: corral median {:.1} ms, containerd median {:.1} ms, ratio corral/containerd {:.2}",
        ms(mc),
        ms(md),
        ratio
    );
    println!(
        "  spread (ms, sorted): corral [{}]  containerd [{}]",
        sorted(&c.pulls),
        sorted(&d.pulls)
    );
    let per = |t: Duration| ms(t) / runs as f64;
    println!(
        "  CPU per pull+remove{}: corral user {:.0} ms sys {:.0} ms, containerd user {:.0} ms sys {:.0} ms",
        if settle == Settle::Reclaimed {
            " (+ deletion)"
        } else {
            ""
        },
        per(c.user),
        per(c.sys),
        per(d.user),
        per(d.sys)
    );
    println!(
        "  CPU during the pull alone: corral {:.0} ms, containerd {:.0} ms",
        per(c.pull_cpu),
        per(d.pull_cpu)
    );
    if settle == Settle::Reclaimed {
        println!(
            "  deletion after RemoveImage, median: corral {:.1} ms, containerd {:.1} ms",
            ms(median(&c.reclaims)),
            ms(median(&d.reclaims))
        );
    }
    Ok(Compared {
        ratio,
        ours: mc,
        our_cpu: c.pull_cpu / runs.max(1) as u32,
    })
}
