//! The kernel's price for putting a process into a cgroup: the floor under every runtime's
//! container start on this host.
//!
//! A move takes the kernel's cgroup threadgroup lock for writing. Unless a hierarchy is mounted
//! with `favordynmods`, the first move after a quiet spell waits for an RCU grace period while
//! the lock switches to its writer mode; moves right after it are cheap. runc under containerd
//! waits it in StartContainer (and for the pause container in RunPodSandbox); Corral's shim
//! moves a spare intermediate when the pod starts, so a CreateContainer waits only for what is
//! left of that wait, if anything. This measures it with a `sleep` moved into a cgroup of its
//! own and back, nothing else running.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::stats::{median, ms, p90};

/// The measured cost of a move into a cgroup.
pub struct Floor {
    /// The first move after `QUIET` without one.
    pub quiet: Duration,
    /// A move right after another.
    pub warm: Duration,
}

/// How long nothing moves before each timed move: several grace periods.
const QUIET: Duration = Duration::from_millis(300);

/// A cgroup made for the measurement, removed on drop (after its process left it).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A `sleep` killed and reaped on drop.
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hierarchy to move in: a v1 one with a controller whose new cgroups take processes as
/// they are (not cpuset, which needs its CPUs set first), else the cgroup2 one.
fn hierarchy(layout: &corral_runtime::cgroups::Layout) -> Option<&Path> {
    let v1 = layout.hierarchies.iter().find(|(_, what)| {
        what != "cgroup2"
            && what
                .split(',')
                .any(|o| ["pids", "memory", "cpu", "freezer"].contains(&o))
    });
    v1.or_else(|| {
        layout
            .hierarchies
            .iter()
            .find(|(_, what)| what == "cgroup2")
    })
    .map(|(mount, _)| mount.as_path())
}

fn move_to(dir: &Path, pid: u32) -> Result<Duration> {
    let procs = dir.join("cgroup.procs");
    let t = Instant::now();
    std::fs::write(&procs, pid.to_string()).with_context(|| format!("{}", procs.display()))?;
    Ok(t.elapsed())
}

/// `n` moves into a fresh cgroup, each after `QUIET`, and each followed at once by the move
/// back to the hierarchy's root; prints both medians.
pub fn measure(n: usize) -> Result<Floor> {
    let layout = corral_runtime::cgroups::layout()?;
    let root = hierarchy(&layout).context("no cgroup hierarchy to measure a move in")?;
    let scratch = Scratch(root.join(format!("corral-bench-move-{}", std::process::id())));
    std::fs::create_dir(&scratch.0).with_context(|| format!("{}", scratch.0.display()))?;
    let sleeper = Sleeper(std::process::Command::new("sleep").arg("600").spawn()?);
    let pid = sleeper.0.id();
    let (mut quiet, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..n {
        std::thread::sleep(QUIET);
        quiet.push(move_to(&scratch.0, pid)?);
        warm.push(move_to(root, pid)?);
    }
    drop(sleeper);
    let floor = Floor {
        quiet: median(&quiet),
        warm: median(&warm),
    };
    println!(
        "  into a cgroup after {} ms without a move  {:.2} ms (p90 {:.2})",
        QUIET.as_millis(),
        ms(floor.quiet),
        ms(p90(&quiet))
    );
    println!(
        "  right after another move               {:.2} ms (p90 {:.2})",
        ms(floor.warm),
        ms(p90(&warm))
    );
    println!(
        "  favordynmods on some hierarchy: {}",
        if layout.favordynmods {
            "yes"
        } else {
            "no (the kernel's default: the first move waits for an RCU grace period)"
        }
    );
    Ok(floor)
}
