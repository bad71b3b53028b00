//! Benchmarks Corral against containerd, side by side in one run, through the same CRI client.
//!
//! - Cold pulls: both daemons pull the same images from one loopback registry (containerd
//!   through the same `hosts.toml` directory Corral reads), cold each time.
//! - Pod lifecycle: RunPodSandbox, CreateContainer (`sleep 3600`), StartContainer,
//!   StopPodSandbox, RemovePodSandbox, busybox already pulled; host-network pods (neither daemon
//!   runs CNI), then pods with their own network namespace: both running the same CNI config
//!   (bridge + host-local + portmap), then Corral on its built-in network (no config: done in
//!   corrald over netlink) against containerd's CNI.
//! - The CNI plugins alone (ADD and DEL of the same config from the bench itself): the floor of
//!   RunPodSandbox and StopPodSandbox with CNI.
//! - Churn: 50 pods up (RunPodSandbox + CreateContainer + StartContainer each), 8 calls at a
//!   time, then all stopped and removed the same way; same CNI config, then Corral's built-in
//!   network.
//! - ExecSync `true` on a running container.
//! - Streaming (SPDY/3.1, the same client for both): exec session set-up (`true` from the Exec
//!   RPC to its exit status) and port-forward throughput (HTTP downloads from busybox httpd in
//!   a pod).
//! - The pod manager: `apply` of 20 pods at once to all Running, against containerd given the
//!   kubelet's three CRI calls per pod, all pods at once.
//! - Memory of the per-pod processes (corral-shim; containerd-shim-runc-v2 + pause) and of the
//!   daemons, with 0, 10 and 50 pods.
//!
//! Every comparison alternates which daemon goes first. Prints medians, p90s and the ratio
//! corral/containerd. Removes every pod through CRI at the end and checks nothing is left.
//!
//! Usage: corral-bench [--runs N] [--big-mib N] [--layers N] [--iterations N] [--warmups N]
//!   [--exec-calls N] [--shim-pods N] [--daemon-pods N] [--forward-mib N] [--forward-rounds N]
//!   [--kube-pods N] [--kube-rounds N] [--churn-pods N] [--churn-parallel N] [--churn-rounds N]
//!   [--seccomp runtime-default|unconfined]
//!   [--settle reclaimed|none|both] [--pull-images busybox,big,big-zstd,debian]
//!   [--sections pulls,pods,churn,exec,streaming,memory,kube]
//!   (as root; `make bench`)

mod cgroup_floor;
mod churn;
mod cni_floor;
mod containerd;
mod kube;
mod layout;
mod pods;
mod pulls;
mod stats;
mod streams;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::v1::image_service_client::ImageServiceClient;
use corral_tests::daemon::{DaemonOptions, TestDaemon};
use corral_tests::fixtures::{
    Compression, Image, ManifestFormat, PATH_ENV, big_image_with, busybox_image, busybox_layer,
    debian_image,
};
use corral_tests::procs;
use corral_tests::registry::Registry;

use containerd::Containerd;
use pods::{Kind, Target};
use stats::verdict;

struct Args {
    runs: usize,
    big_mib: u64,
    layers: usize,
    iterations: usize,
    warmups: usize,
    exec_calls: usize,
    shim_pods: usize,
    daemon_pods: usize,
    forward_mib: u64,
    forward_rounds: usize,
    kube_pods: usize,
    kube_rounds: usize,
    churn_pods: usize,
    churn_parallel: usize,
    churn_rounds: usize,
    seccomp_default: bool,
    settle: Vec<pulls::Settle>,
    pull_images: Vec<String>,
    sections: Vec<String>,
}

const PULL_IMAGES: [&str; 4] = ["busybox", "big", "big-zstd", "debian"];
const SECTIONS: [&str; 7] = [
    "pulls",
    "pods",
    "churn",
    "exec",
    "streaming",
    "memory",
    "kube",
];

fn args() -> Result<Args> {
    let mut a = Args {
        runs: 5,
        big_mib: 240,
        layers: 5,
        iterations: 20,
        warmups: 2,
        exec_calls: 50,
        shim_pods: 10,
        daemon_pods: 50,
        forward_mib: 256,
        forward_rounds: 5,
        kube_pods: 20,
        kube_rounds: 3,
        churn_pods: 50,
        churn_parallel: 8,
        churn_rounds: 3,
        seccomp_default: false,
        settle: vec![pulls::Settle::Reclaimed, pulls::Settle::None],
        pull_images: PULL_IMAGES.iter().map(|s| s.to_string()).collect(),
        sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => a.runs = value.parse()?,
            "--big-mib" => a.big_mib = value.parse()?,
            "--layers" => a.layers = value.parse()?,
            "--iterations" => a.iterations = value.parse()?,
            "--warmups" => a.warmups = value.parse()?,
            "--exec-calls" => a.exec_calls = value.parse()?,
            "--shim-pods" => a.shim_pods = value.parse()?,
            "--daemon-pods" => a.daemon_pods = value.parse()?,
            "--forward-mib" => a.forward_mib = value.parse()?,
            "--kube-pods" => a.kube_pods = value.parse()?,
            "--kube-rounds" => a.kube_rounds = value.parse()?,
            "--forward-rounds" => a.forward_rounds = value.parse()?,
            "--churn-pods" => a.churn_pods = value.parse()?,
            "--churn-parallel" => a.churn_parallel = value.parse()?,
            "--churn-rounds" => a.churn_rounds = value.parse()?,
            "--seccomp" => {
                a.seccomp_default = match value.as_str() {
                    "runtime-default" => true,
                    "unconfined" => false,
                    other => bail!("--seccomp {other}: use runtime-default or unconfined"),
                }
            }
            "--settle" => {
                a.settle = match value.as_str() {
                    "reclaimed" => vec![pulls::Settle::Reclaimed],
                    "none" => vec![pulls::Settle::None],
                    "both" => vec![pulls::Settle::Reclaimed, pulls::Settle::None],
                    other => bail!("--settle {other}: use reclaimed, none or both"),
                }
            }
            "--pull-images" => {
                a.pull_images = value.split(',').map(str::to_owned).collect();
                if let Some(bad) = a
                    .pull_images
                    .iter()
                    .find(|s| !PULL_IMAGES.contains(&s.as_str()))
                {
                    bail!("unknown image {bad}; images are {}", PULL_IMAGES.join(","));
                }
            }
            "--sections" => {
                a.sections = value.split(',').map(str::to_owned).collect();
                if let Some(bad) = a.sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!("unknown section {bad}; sections are {}", SECTIONS.join(","));
                }
            }
            other => bail!(
                "unknown flag {other}; use --runs, --big-mib, --layers, --iterations, --warmups, --exec-calls, --shim-pods, --daemon-pods, --forward-mib, --forward-rounds, --kube-pods, --kube-rounds, --churn-pods, --churn-parallel, --churn-rounds, --seccomp, --settle, --pull-images, --sections"
            ),
        }
    }
    if a.iterations == 0
        || a.exec_calls == 0
        || a.shim_pods == 0
        || a.forward_mib == 0
        || a.forward_rounds == 0
        || a.churn_pods == 0
        || a.churn_parallel == 0
        || a.churn_rounds == 0
    {
        bail!(
            "--iterations, --exec-calls, --shim-pods, --forward-mib, --forward-rounds and the --churn-* counts must be at least 1"
        );
    }
    a.daemon_pods = a.daemon_pods.max(a.shim_pods);
    Ok(a)
}

/// containerd's pause image: one busybox `sleep` as PID 1 (the real pause is one small static
/// process too; containerd stops sandboxes with SIGKILL, so no signal handler is needed).
fn bench_pause_image() -> Result<Image> {
    Ok(Image::new()
        .layer(busybox_layer(Compression::Gzip)?)
        .env(PATH_ENV)
        .entrypoint(&["sleep", "1000000000"])
        .label("io.kubernetes.cri.pause", "true"))
}

fn kib(k: f64) -> String {
    format!("{k:.0} KiB")
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let want = |s: &str| a.sections.iter().any(|x| x == s);
    let netns_before = netns();
    let reg = Registry::start().await?;
    let small = reg
        .client()
        .push_image(
            "bench/busybox",
            "v1",
            &busybox_image()?,
            ManifestFormat::Oci,
        )
        .await?;
    let pause = reg
        .client()
        .push_image(
            "bench/pause",
            "v1",
            &bench_pause_image()?,
            ManifestFormat::Oci,
        )
        .await?;

    let mut corral = TestDaemon::start_with(DaemonOptions {
        log_level: Some("warn".into()),
        ..Default::default()
    })
    .await?;
    let hosts = corral.hosts_dir();
    let host_toml = format!(
        "server = \"http://{0}\"\n[host.\"http://{0}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        reg.addr()
    );
    corral.write_hosts(&reg.addr(), &host_toml)?;
    // The same network config as containerd's, on corral's own bridge and subnet.
    std::fs::create_dir_all(corral.cni_conf_dir())?;
    let corral_conflist = corral.cni_conf_dir().join("10-corral-bench.conflist");
    let conflist_body = serde_json::to_vec_pretty(&containerd::conflist(
        &corral.net().bridge,
        &corral.net().subnet,
        &corral.root().join("cni/networks"),
    ))?;
    std::fs::write(&corral_conflist, &conflist_body)?;
    let containerd = Containerd::start(&hosts, &pause.reference).await?;
    let mut ours = ImageServiceClient::new(corral.channel().await?);
    let mut theirs = ImageServiceClient::new(corral_cri_api::connect(containerd.socket()).await?);
    println!(
        "# corrald: {}",
        corral_tests::daemon::corrald_bin().display()
    );
    if let Some(line) = layout::report(&corral_tests::daemon::corrald_bin()) {
        println!("{line}");
    }
    println!(
        "# containerd: {}",
        String::from_utf8_lossy(
            &std::process::Command::new("containerd")
                .arg("--version")
                .output()?
                .stdout
        )
        .trim()
    );

    // Each image's layers' size and how its cold pulls went (each after the previous copy's
    // files were deleted), by the --pull-images name.
    let mut cold: std::collections::HashMap<&str, (u64, pulls::Compared)> = Default::default();
    if want("pulls") {
        eprintln!(
            "building images (busybox, and ~{} MiB uncompressed over {} layers)...",
            a.big_mib, a.layers
        );
        let pull_wanted = |s: &str| a.pull_images.iter().any(|x| x == s);
        // (name, label, reference, layers' size)
        let mut images = Vec::new();
        if pull_wanted("busybox") {
            let size = small.image.layers.iter().map(|l| l.size).sum::<u64>();
            images.push((
                "busybox",
                "busybox (1 layer)".to_owned(),
                small.reference.clone(),
                size,
            ));
        }
        for (name, compression) in [("big", Compression::Gzip), ("big-zstd", Compression::Zstd)] {
            if !pull_wanted(name) {
                continue;
            }
            let img = big_image_with(a.big_mib << 20, a.layers, compression)?;
            let size: u64 = img
                .build(ManifestFormat::Oci)?
                .layers
                .iter()
                .map(|l| l.size)
                .sum();
            let pushed = reg
                .client()
                .push_image(&format!("bench/{name}"), "v1", &img, ManifestFormat::Oci)
                .await?;
            images.push((
                name,
                format!(
                    "{name} ({} layers, {:.1} MB {compression:?}, {} MiB of files)",
                    pushed.image.layers.len(),
                    size as f64 / 1e6,
                    a.big_mib
                ),
                pushed.reference,
                size,
            ));
        }
        if pull_wanted("debian") {
            eprintln!("building the Debian-like image (fetched once into the fixture cache)...");
            let deb_img = debian_image(Compression::Gzip)?;
            let built = deb_img.build(ManifestFormat::Oci)?;
            let deb_size: u64 = built.layers.iter().map(|l| l.size).sum();
            let deb = reg
                .client()
                .push_image("bench/debian", "v1", &deb_img, ManifestFormat::Oci)
                .await?;
            images.push((
                "debian",
                format!(
                    "debian ({} layers, {:.1} MB gzip)",
                    deb.image.layers.len(),
                    deb_size as f64 / 1e6
                ),
                deb.reference.clone(),
                deb_size,
            ));
        }
        println!(
            "\n# Cold pull + unpack from a loopback registry, {} runs each, alternating order",
            a.runs
        );
        let containerd_snapshots = containerd
            .dir()
            .join("root/io.containerd.snapshotter.v1.overlayfs/snapshots");
        for &settle in &a.settle {
            println!(
                "\n## {}",
                match settle {
                    pulls::Settle::Reclaimed =>
                        "each pull after the previous copy's files are deleted",
                    pulls::Settle::None => "back to back: RemoveImage, then the next pull at once",
                }
            );
            for (name, label, image, size) in &images {
                let mut c = pulls::Side {
                    client: &mut ours,
                    pid: corral.pid().unwrap_or(0),
                    reclaim_dir: corral.root().join("snapshots/.staging"),
                };
                let mut d = pulls::Side {
                    client: &mut theirs,
                    pid: containerd.child.id(),
                    reclaim_dir: containerd_snapshots.clone(),
                };
                let got = pulls::compare(&mut c, &mut d, label, image, a.runs, settle).await?;
                if settle == pulls::Settle::Reclaimed {
                    cold.insert(name, (*size, got));
                }
            }
        }
        let (c, d) = (
            procs::mem(corral.pid().unwrap_or(0)),
            procs::mem(containerd.child.id()),
        );
        println!(
            "Daemon memory after the pulls: corral RSS {} KiB (peak {} KiB), containerd RSS {} KiB (peak {} KiB), peak ratio {:.2}",
            c.rss,
            c.hwm,
            d.rss,
            d.hwm,
            c.hwm as f64 / d.hwm.max(1) as f64
        );
    }

    // Pods: busybox pulled on both, the pause image on containerd (not timed).
    pulls::pull(&mut ours, &small.reference).await?;
    pulls::pull(&mut theirs, &small.reference).await?;
    pulls::pull(&mut theirs, &pause.reference).await?;
    let shim_bin = corral_tests::daemon::corrald_bin().with_file_name("corral-shim");
    let mut c = Target::new(
        "corral",
        corral.channel().await?,
        &small.reference,
        String::new(),
        corral.pid().unwrap_or(0),
        Kind::Corral {
            shim_bin: shim_bin.clone(),
            state: corral.state(),
        },
    )?;
    let mut d = Target::new(
        "containerd",
        corral_cri_api::connect(containerd.socket()).await?,
        &small.reference,
        Containerd::cgroup_parent(),
        containerd.child.id(),
        Kind::Containerd {
            socket: containerd.socket(),
        },
    )?;
    c.seccomp_default = a.seccomp_default;
    d.seccomp_default = a.seccomp_default;

    let mut failures = Vec::new();
    let mut start_ratio = None;
    let mut create_start_ratio = None;
    let mut builtin_pod_container = None;
    let mut move_floor = None;
    let mut cni_stop_ratio = None;
    let mut cni_stop = None;
    let mut cni_alone = None;
    let mut churn_ratio = None;
    let mut exec_ratio = None;
    let mut shim_kib = None;
    let mut shim_private_kib = None;
    // corrald's RSS in KiB: idle after the workload, and with the most pods.
    let mut daemon_kib = None;
    if want("pods") {
        println!(
            "\n# A process put into a cgroup (what each runtime does once per container), nothing else running; {} moves",
            a.iterations
        );
        match cgroup_floor::measure(a.iterations) {
            Ok(f) => move_floor = Some(f),
            Err(e) => failures.push(report("cgroup move", e)),
        }
        for (host_net, builtin) in [(true, false), (false, false), (false, true)] {
            if host_net {
                println!(
                    "\n# Pod + container from scratch, HOST network (namespace_options.network = NODE: neither daemon runs CNI)"
                );
            } else if !builtin {
                println!(
                    "\n# Pod + container from scratch, POD network: both run the same CNI config (bridge + host-local + portmap; containerd adds its loopback plugin, Corral brings lo up itself)"
                );
            } else {
                // No config: Corral's in-process built-in network.
                std::fs::remove_file(&corral_conflist)?;
                println!(
                    "\n# Pod + container from scratch, POD network: Corral's BUILT-IN network (no CNI config: corrald over netlink) against containerd's CNI config as above"
                );
            }
            println!(
                "# busybox pulled; container `sleep 3600`; {} iterations after {} warm-ups, alternating order; ms",
                a.iterations, a.warmups
            );
            match pods::lifecycle(&mut c, &mut d, host_net, a.warmups, a.iterations).await {
                Ok(r) => {
                    if host_net {
                        start_ratio = Some(r.start);
                        create_start_ratio = Some(r.create_start);
                    } else if builtin {
                        builtin_pod_container = Some(r.pod_container);
                    } else {
                        cni_stop_ratio = Some(r.stop);
                        cni_stop = Some(r.stop_medians);
                    }
                }
                Err(e) => failures.push(report("pod lifecycle", e)),
            }
            reset(&mut c, &mut d).await;
            if builtin {
                std::fs::write(&corral_conflist, &conflist_body)?;
            }
            if !host_net && !builtin {
                println!(
                    "\n# The same CNI config's plugins alone, from this process on fresh network namespaces (no runtime), {} ADD + DEL pairs after 1 warm-up",
                    a.iterations
                );
                match cni_floor::measure(a.iterations, a.churn_pods).await {
                    Ok(f) => cni_alone = Some(f),
                    Err(e) => failures.push(report("CNI alone", e)),
                }
            }
        }
    }
    if want("churn") {
        for builtin in [false, true] {
            println!(
                "\n# Churn: {} pods (pod + `sleep` container) up, {} calls at a time, then all stopped and removed the same way; {} rounds after 1 warm-up, alternating; POD network: {}",
                a.churn_pods,
                a.churn_parallel,
                a.churn_rounds,
                if builtin {
                    "Corral's BUILT-IN network against containerd's CNI config"
                } else {
                    "both run the same CNI config"
                }
            );
            if builtin {
                std::fs::remove_file(&corral_conflist)?;
            }
            match churn::compare(
                &mut c,
                &mut d,
                false,
                a.churn_pods,
                a.churn_parallel,
                a.churn_rounds,
            )
            .await
            {
                Ok((r, theirs)) if !builtin => churn_ratio = Some((r, theirs)),
                Ok(_) => {}
                Err(e) => failures.push(report("churn", e)),
            }
            reset(&mut c, &mut d).await;
            if builtin {
                std::fs::write(&corral_conflist, &conflist_body)?;
            }
        }
    }
    if want("kube") {
        println!(
            "\n# `apply` of {} pods at once to all Running (pod manager, pod network), against containerd given the kubelet's RunPodSandbox + CreateContainer + StartContainer for the same pods, all at once; {} rounds after 1 warm-up, alternating",
            a.kube_pods, a.kube_rounds
        );
        let mut kube_client = corral_cri_api::corral::kube_service_client::KubeServiceClient::new(
            corral.channel().await?,
        );
        if let Err(e) = kube::burst(
            &mut kube_client,
            &small.reference,
            &mut d,
            a.kube_pods,
            a.kube_rounds,
        )
        .await
        {
            failures.push(report("kube burst", e));
        }
        reset(&mut c, &mut d).await;
    }
    if want("exec") {
        println!(
            "\n# ExecSync `true` (timeout 5 s) on a running container (host-network pod), {} calls after 2 warm-ups, alternating; ms",
            a.exec_calls
        );
        match pods::exec(&mut c, &mut d, a.exec_calls).await {
            Ok(r) => exec_ratio = Some(r),
            Err(e) => failures.push(report("ExecSync", e)),
        }
        reset(&mut c, &mut d).await;
    }
    let mut exec_session_ratio = None;
    let mut forward_ratio = None;
    if want("streaming") {
        println!(
            "\n# Exec session (SPDY/3.1, same client): Exec RPC + upgrade + streams + `true` + exit status, host-network pod, {} sessions after 2 warm-ups, alternating; ms",
            a.exec_calls
        );
        match streams::exec(&mut c, &mut d, a.exec_calls).await {
            Ok(r) => exec_session_ratio = Some(r),
            Err(e) => failures.push(report("exec sessions", e)),
        }
        reset(&mut c, &mut d).await;
        println!(
            "\n# Port-forward (SPDY/3.1, same client): HTTP GET of {} MiB from busybox httpd in a pod (own netns), a session of its own each (set-up not timed), {} rounds after 1 warm-up, alternating; ms",
            a.forward_mib, a.forward_rounds
        );
        match streams::port_forward(&mut c, &mut d, a.forward_rounds, a.forward_mib).await {
            Ok(r) => forward_ratio = Some(r),
            Err(e) => failures.push(report("port-forward", e)),
        }
        reset(&mut c, &mut d).await;
    }
    if want("memory") {
        println!(
            "\n# Memory: per-pod processes and daemons (host-network pods, one `sleep` container each)"
        );
        println!(
            "# corral per pod: corral-shim processes; containerd per pod: containerd-shim-runc-v2 + pause (busybox `sleep`, one process)"
        );
        let mut results = Vec::new();
        for t in [&mut c, &mut d] {
            match pods::density(t, a.shim_pods, a.daemon_pods).await {
                Ok(r) => results.push(Some(r)),
                Err(e) => {
                    failures.push(report("memory", e));
                    results.push(None);
                }
            }
        }
        reset(&mut c, &mut d).await;
        if let [Some((ci, c10, c50)), Some((di, d10, d50))] = results.as_slice() {
            for (cm, dm) in [(c10, d10), (c50, d50)] {
                let (c_rss, c_pss) = cm.per_pod(cm.shim);
                let (ds_rss, ds_pss) = dm.per_pod(dm.shim);
                let (dp_rss, dp_pss) = dm.per_pod(dm.pause);
                println!(
                    "  {} pods: corral {} shim processes; containerd {} shims + {} pause processes",
                    cm.pods, cm.shims, dm.shims, dm.pauses
                );
                println!(
                    "    per pod RSS: corral {:>9}   containerd {:>9} (shim {} + pause {})   ratio {:.3}",
                    kib(c_rss),
                    kib(ds_rss + dp_rss),
                    kib(ds_rss),
                    kib(dp_rss),
                    c_rss / (ds_rss + dp_rss).max(1.0)
                );
                println!(
                    "    per pod PSS: corral {:>9}   containerd {:>9} (shim {} + pause {})   ratio {:.3}",
                    kib(c_pss),
                    kib(ds_pss + dp_pss),
                    kib(ds_pss),
                    kib(dp_pss),
                    c_pss / (ds_pss + dp_pss).max(1.0)
                );
                let c_private = cm.private_per_pod(cm.shim);
                let d_private = dm.private_per_pod(dm.shim) + dm.private_per_pod(dm.pause);
                println!(
                    "    per pod private: corral {:>9}   containerd {:>9}   ratio {:.3}",
                    kib(c_private),
                    kib(d_private),
                    c_private / d_private.max(1.0)
                );
                if cm.pods == a.daemon_pods {
                    shim_private_kib = Some(c_private);
                }
                if cm.pods == a.shim_pods {
                    shim_kib = Some(c_rss);
                }
            }
            daemon_kib = Some((ci.rss, c50.pods, c50.daemon.rss));
            println!("  daemon RSS (PSS; RSS of anonymous memory + of mapped files):");
            for (n, cm, dm) in [(0, ci, di), (c50.pods, &c50.daemon, &d50.daemon)] {
                println!(
                    "    {n:>3} pods: corrald {:>6} KiB ({:>6}; {} + {})   containerd {:>6} KiB ({:>6}; {} + {})   RSS ratio {:.3}",
                    cm.rss,
                    cm.pss,
                    cm.anon,
                    cm.file,
                    dm.rss,
                    dm.pss,
                    dm.anon,
                    dm.file,
                    cm.rss as f64 / dm.rss.max(1) as f64
                );
            }
        }
    }

    // Clean-up: every pod through CRI, then check what the runtimes left, then stop both.
    let mut leftovers = Vec::new();
    for t in [&mut c, &mut d] {
        match t.remove_all().await {
            Ok(0) => {}
            Ok(n) => leftovers.push(format!("{}: {n} pods were still listed", t.name)),
            Err(e) => leftovers.push(format!("{:#}", e)),
        }
    }
    let shims = procs::corral_shims(&shim_bin, &corral.state());
    if !shims.is_empty() {
        leftovers.push(format!(
            "corral-shim processes after removing every pod: {shims:?}"
        ));
    }
    let shims = procs::containerd_shims(&containerd.socket());
    if !shims.is_empty() {
        leftovers.push(format!(
            "containerd-shim-runc-v2 processes after removing every pod: {shims:?}"
        ));
    }
    let corral_cgroups = cgroup_children(corral.cgroup_root());
    if !corral_cgroups.is_empty() {
        leftovers.push(format!("corral cgroups left: {corral_cgroups:?}"));
    }
    let (corral_dir, containerd_dir) = (corral.dir().to_path_buf(), containerd.dir().to_path_buf());
    for dir in [&corral_dir, &containerd_dir] {
        let m = corral_tests::cleanup::mounts_under(dir);
        if !m.is_empty() {
            leftovers.push(format!("mounts left under {}: {m:?}", dir.display()));
        }
    }
    drop(containerd);
    corral.stop()?;
    drop(corral);
    let containerd_cg = cgroup_children(&Containerd::cgroup_parent());
    if !containerd_cg.is_empty() {
        leftovers.push(format!("containerd cgroups left: {containerd_cg:?}"));
    }
    let new_netns: Vec<_> = netns()
        .into_iter()
        .filter(|n| !netns_before.contains(n))
        .collect();
    if !new_netns.is_empty() {
        leftovers.push(format!("network namespaces left: {new_netns:?}"));
    }
    for dir in [&corral_dir, &containerd_dir] {
        if dir.exists() {
            leftovers.push(format!("{} still exists", dir.display()));
        }
    }

    println!("\n# Targets");
    match cold.get("big") {
        Some((size, p)) => {
            let mb = *size as f64 / 1e6;
            let rate = mb / p.ours.as_secs_f64().max(1e-9);
            println!(
                "  cold pull of the generated gzip image at least 600 MB/s ({mb:.1} MB of layers): {rate:.0} MB/s: {}",
                verdict(rate >= 600.0)
            );
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            let busy = p.our_cpu.as_secs_f64() / cores as f64;
            println!(
                "    where corrald's CPU per pull, {:.0} ms over {cores} cores, allows at most {:.0} MB/s with every core its own (the registry serving the blob shares them)",
                stats::ms(p.our_cpu),
                mb / busy.max(1e-9)
            );
        }
        None => println!("  cold pull of the generated gzip image at least 600 MB/s: not measured"),
    }
    match (cold.get("big"), cold.get("big-zstd")) {
        (Some((_, gzip)), Some((_, zstd))) => println!(
            "  the zstd image pulled at least as fast as the gzip one: {:.1} ms against {:.1} ms: {}",
            stats::ms(zstd.ours),
            stats::ms(gzip.ours),
            verdict(zstd.ours <= gzip.ours)
        ),
        _ => println!("  the zstd image pulled at least as fast as the gzip one: not measured"),
    }
    match cold.get("debian") {
        Some((_, p)) => println!(
            "  cold pull of the Debian-like image at most 0.7 of containerd's: ratio {:.3}: {}",
            p.ratio,
            verdict(p.ratio <= 0.7)
        ),
        None => println!(
            "  cold pull of the Debian-like image at most 0.7 of containerd's: not measured"
        ),
    }
    let line = |name: &str, r: Option<f64>| match r {
        Some(r) => println!(
            "  {name} at most 1/5 of containerd's time: ratio {r:.3}: {}",
            verdict(r <= 0.2)
        ),
        None => println!("  {name} at most 1/5 of containerd's time: not measured"),
    };
    line("StartContainer (host network)", start_ratio);
    line("ExecSync", exec_ratio);
    let bound = |name: &str, r: Option<f64>, at_most: f64| match r {
        Some(r) => println!(
            "  {name} at most {at_most} of containerd's: ratio {r:.3}: {}",
            verdict(r <= at_most)
        ),
        None => println!("  {name} at most {at_most} of containerd's: not measured"),
    };
    bound(
        "CreateContainer + StartContainer (host network)",
        create_start_ratio,
        0.25,
    );
    // The one cgroup move each side makes in these two calls, when it waits for a grace period.
    let wait = move_floor
        .as_ref()
        .map(|f| f.quiet.saturating_sub(f.warm))
        .filter(|w| stats::ms(*w) >= 1.0);
    if let Some(wait) = wait {
        println!(
            "    a move into a cgroup after a quiet spell waits about {:.2} ms here (favordynmods off): runc's in StartContainer waits it; Corral's pod moved its spare intermediate when it started, and CreateContainer waits for what is left of that",
            stats::ms(wait)
        );
    }
    match builtin_pod_container {
        Some(t) => {
            println!(
                "  pod + container from scratch on the built-in network at most 15 ms: {:.2} ms: {}",
                stats::ms(t),
                verdict(stats::ms(t) <= 15.0)
            );
            if let Some(wait) = wait {
                println!(
                    "    with what is left of the spare's move, begun when the pod started (a whole one: {:.2} ms)",
                    stats::ms(wait)
                );
            }
        }
        None => println!("  pod + container from scratch on the built-in network: not measured"),
    }
    bound("StopPodSandbox (same CNI config)", cni_stop_ratio, 0.2);
    if let (Some((ours, theirs)), Some(del)) = (cni_stop, cni_alone.as_ref().map(|f| f.del)) {
        println!(
            "    where CNI DEL alone takes {:.2} ms, {:.3} of containerd's StopPodSandbox ({:.2} ms); Corral's is DEL + {:.2} ms",
            stats::ms(del),
            del.as_secs_f64() / theirs.as_secs_f64().max(1e-9),
            stats::ms(theirs),
            stats::ms(ours.saturating_sub(del))
        );
    }
    bound("churn (same CNI config)", churn_ratio.map(|(r, _)| r), 0.15);
    if let (Some((_, theirs)), Some(floor)) = (churn_ratio, cni_alone.as_ref().map(|f| f.churn)) {
        println!(
            "    where the plugins' CPU alone, {:.0} ms for the pods on this machine's cores, is {:.3} of containerd's up + down ({:.0} ms)",
            stats::ms(floor),
            floor.as_secs_f64() / theirs.as_secs_f64().max(1e-9),
            stats::ms(theirs)
        );
    }
    for (name, r) in [
        ("exec session set-up", exec_session_ratio),
        ("port-forward download time", forward_ratio),
    ] {
        match r {
            Some(r) => println!("  {name}: ratio corral/containerd {r:.3}"),
            None => println!("  {name}: not measured"),
        }
    }
    // RSS counts the pages every shim shares (its program, the C library) once per shim: the
    // bench's first target, replaced by private memory, which is what one more pod costs.
    match shim_kib {
        Some(k) => println!(
            "  corral-shim RSS per pod, shared pages counted for each (no target): {k:.0} KiB"
        ),
        None => println!("  corral-shim RSS per pod: not measured"),
    }
    match shim_private_kib {
        Some(k) => println!(
            "  corral-shim at most 0.35 MiB private memory per pod (at {} pods): {k:.0} KiB: {}",
            a.daemon_pods,
            verdict(k <= 0.35 * 1024.0)
        ),
        None => println!("  corral-shim at most 0.35 MiB private memory per pod: not measured"),
    }
    match daemon_kib {
        Some((idle, pods, busy)) => {
            println!(
                "  corrald at most 15 MiB RSS idle after the workload: {idle} KiB: {}",
                verdict(idle <= 15 * 1024)
            );
            println!(
                "  corrald at most 25 MiB RSS with {pods} pods: {busy} KiB: {}",
                verdict(busy <= 25 * 1024)
            );
        }
        None => println!("  corrald's memory targets: not measured"),
    }
    println!("\n# Clean-up");
    if leftovers.is_empty() {
        println!(
            "  all pods removed through CRI; no shims, mounts, cgroups or network namespaces left"
        );
    } else {
        for l in &leftovers {
            println!("  LEFT: {l}");
        }
    }
    for f in &failures {
        println!("FAILED: {f}");
    }
    if !failures.is_empty() || !leftovers.is_empty() {
        bail!("{} failures, {} leftovers", failures.len(), leftovers.len());
    }
    Ok(())
}

/// Prints a failure where it happened and returns it for the summary.
fn report(section: &str, e: anyhow::Error) -> String {
    let msg = format!("{section}: {e:#}");
    println!("  FAILED {msg}");
    msg
}

/// Removes whatever pods a failed section left, so the next one starts from none.
async fn reset(c: &mut Target, d: &mut Target) {
    for t in [c, d] {
        if let Err(e) = t.remove_all().await {
            println!("  FAILED removing {}'s pods: {e:#}", t.name);
        }
    }
}

/// Sub-cgroups of `root` (cgroupfs path) in any hierarchy, and `root` itself if it exists.
fn cgroup_children(root: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for ctrl in procs::cgroup_controllers() {
        let dir = ctrl.join(root.trim_start_matches('/'));
        if let Ok(rd) = std::fs::read_dir(&dir) {
            out.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
        }
    }
    out
}

/// Named network namespaces (`ip netns`, where containerd pins its pods').
fn netns() -> Vec<String> {
    std::fs::read_dir(Path::new("/var/run/netns"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
