//! Faults at every step: SIGKILL of corrald, or of a pod's shim, at random moments while a
//! client runs the whole life of a pod (pull, RunPodSandbox, CreateContainer, StartContainer,
//! ExecSync, StopPodSandbox, RemovePodSandbox, RemoveImage) in a loop. After each kill the state
//! must be consistent (every pod and container either exists as reported or not at all), the
//! client must be able to carry on from what it sees as a kubelet would, and once it has removed
//! everything nothing may be left: shims, mounts, network namespaces, bridge ports, IP
//! reservations, iptables rules, cgroups, records, snapshots, blobs or temporaries.
//!
//! `CORRAL_FAULT_SEED` replays a run (the seed is printed); `CORRAL_FAULT_KILLS` changes the
//! number of kills.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use common::pod::{PodEnv, env, shim_pids, shim_pids_under};
use common::{Images, pull, serve_image};
use corral_cri_api::v1::{
    ContainerFilter, ContainerState, CreateContainerRequest, ExecSyncRequest, ImageSpec,
    ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter, PodSandboxState,
    RemoveImageRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest,
};
use corral_tests::fixtures::{ManifestFormat, big_image};
use corral_tests::procs;
use corral_tests::registry::FakeRegistry;

use common::pod::Runtime;

/// The steps of one pod's life, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Pull,
    RunPod,
    Create,
    Start,
    Exec,
    StopPod,
    RemovePod,
    RemoveImage,
    Done,
}

const STEPS: [Step; 8] = [
    Step::Pull,
    Step::RunPod,
    Step::Create,
    Step::Start,
    Step::Exec,
    Step::StopPod,
    Step::RemovePod,
    Step::RemoveImage,
];

/// A small deterministic generator (splitmix64): a failing run is replayed from its seed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("CORRAL_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("CORRAL_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn kills(default: usize) -> usize {
    std::env::var("CORRAL_FAULT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What the client knows: the step it is in and the ids it has been answered.
#[derive(Default)]
struct Progress {
    step: Option<Step>,
    pod: Option<String>,
    ctr: Option<String>,
}

fn lock(p: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// One round's names and the images it uses.
#[derive(Clone)]
struct Round {
    n: usize,
    busybox: String,
    extra: String,
    logs: String,
}

impl Round {
    fn pod_config(&self) -> corral_cri_api::v1::PodSandboxConfig {
        corral_cri_api::v1::PodSandboxConfig {
            metadata: Some(corral_cri_api::v1::PodSandboxMetadata {
                name: format!("fault-{}", self.n),
                namespace: "faults".into(),
                uid: format!("fault-uid-{}", self.n),
                attempt: 0,
            }),
            hostname: "fault".into(),
            log_directory: self.logs.clone(),
            labels: [("round".to_owned(), self.n.to_string())].into(),
            // Every other round shares one PID namespace: the shim then has a PID holder too.
            linux: (self.n % 2 == 1).then(|| corral_cri_api::v1::LinuxPodSandboxConfig {
                security_context: Some(corral_cri_api::v1::LinuxSandboxSecurityContext {
                    namespace_options: Some(corral_cri_api::v1::NamespaceOption {
                        pid: corral_cri_api::v1::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ctr_config(&self) -> corral_cri_api::v1::ContainerConfig {
        corral_cri_api::v1::ContainerConfig {
            metadata: Some(corral_cri_api::v1::ContainerMetadata {
                name: "worker".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.busybox.clone(),
                ..Default::default()
            }),
            command: vec!["sleep".into(), "1000".into()],
            log_path: format!("worker-{}.log", self.n),
            ..Default::default()
        }
    }
}

fn within<T>(
    what: &str,
    secs: u64,
    f: impl std::future::Future<Output = Result<T>>,
) -> impl std::future::Future<Output = Result<T>> {
    let what = what.to_owned();
    async move {
        tokio::time::timeout(Duration::from_secs(secs), f)
            .await
            .with_context(|| format!("{what} did not finish within {secs} s"))?
    }
}

/// Runs `step` the first time, without any knowledge of earlier attempts.
async fn run_step(
    rt: &mut Runtime,
    im: &mut Images,
    r: &Round,
    step: Step,
    progress: &Mutex<Progress>,
) -> Result<()> {
    let pod = lock(progress).pod.clone().unwrap_or_default();
    let ctr = lock(progress).ctr.clone().unwrap_or_default();
    match step {
        Step::Pull => {
            pull(im, &r.extra).await?;
        }
        Step::RunPod => {
            let id = rt
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(r.pod_config()),
                    runtime_handler: String::new(),
                })
                .await?
                .into_inner()
                .pod_sandbox_id;
            lock(progress).pod = Some(id);
        }
        Step::Create => {
            let id = rt
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod,
                    config: Some(r.ctr_config()),
                    sandbox_config: Some(r.pod_config()),
                })
                .await?
                .into_inner()
                .container_id;
            lock(progress).ctr = Some(id);
        }
        Step::Start => {
            rt.start_container(StartContainerRequest { container_id: ctr })
                .await?;
        }
        Step::Exec => {
            let out = rt
                .exec_sync(ExecSyncRequest {
                    container_id: ctr,
                    cmd: vec!["echo".into(), "ok".into()],
                    timeout: 10,
                })
                .await?
                .into_inner();
            ensure!(
                out.exit_code == 0 && out.stdout == b"ok\n",
                "exec gave {out:?}"
            );
        }
        Step::StopPod => {
            rt.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod,
            })
            .await?;
        }
        Step::RemovePod => {
            rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod,
            })
            .await?;
        }
        Step::RemoveImage => {
            im.remove_image(RemoveImageRequest {
                image: common::spec(&r.extra),
            })
            .await?;
        }
        Step::Done => {}
    }
    Ok(())
}

/// The client: one pod's whole life, recording where it is.
async fn workload(
    d_socket: std::path::PathBuf,
    r: Round,
    progress: Arc<Mutex<Progress>>,
) -> Result<()> {
    let ch = corral_cri_api::connect(&d_socket).await?;
    let mut rt = Runtime::new(ch.clone());
    let mut im = Images::new(ch);
    for step in STEPS {
        lock(&progress).step = Some(step);
        run_step(&mut rt, &mut im, &r, step, &progress)
            .await
            .with_context(|| format!("{step:?}"))?;
    }
    lock(&progress).step = Some(Step::Done);
    Ok(())
}

async fn pods_of(
    rt: &mut Runtime,
    round: Option<usize>,
) -> Result<Vec<corral_cri_api::v1::PodSandbox>> {
    let filter = round.map(|n| PodSandboxFilter {
        label_selector: [("round".to_owned(), n.to_string())].into(),
        ..Default::default()
    });
    Ok(rt
        .list_pod_sandbox(ListPodSandboxRequest { filter })
        .await?
        .into_inner()
        .items)
}

async fn containers_of(
    rt: &mut Runtime,
    pod: Option<&str>,
) -> Result<Vec<corral_cri_api::v1::Container>> {
    let filter = pod.map(|p| ContainerFilter {
        pod_sandbox_id: p.to_owned(),
        ..Default::default()
    });
    Ok(rt
        .list_containers(ListContainersRequest { filter })
        .await?
        .into_inner()
        .containers)
}

fn dir_names(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Right after a restart: what the daemon reports is what it has on disk and in processes.
async fn assert_consistent(e: &mut PodEnv) -> Result<()> {
    let pods = pods_of(&mut e.rt, None).await?;
    let listed: BTreeSet<String> = pods.iter().map(|p| p.id.clone()).collect();
    for base in [e.d.root().join("pods"), e.d.state().join("pods")] {
        let on_disk = dir_names(&base);
        ensure!(
            on_disk.is_subset(&listed),
            "pod records under {} that ListPodSandbox does not report: {:?}",
            base.display(),
            on_disk.difference(&listed).collect::<Vec<_>>()
        );
    }
    let shims = shim_pids(&e.d.state());
    let ready = pods
        .iter()
        .filter(|p| p.state == PodSandboxState::SandboxReady as i32)
        .count();
    ensure!(
        shims.len() >= ready,
        "{ready} pods READY but {} shims alive: {pods:?}",
        shims.len()
    );
    let ctrs = containers_of(&mut e.rt, None).await?;
    for c in &ctrs {
        ensure!(
            listed.contains(&c.pod_sandbox_id),
            "container {} of a pod that is not listed ({})",
            c.id,
            c.pod_sandbox_id
        );
    }
    let ctr_ids: BTreeSet<String> = ctrs.iter().map(|c| c.id.clone()).collect();
    for base in [
        e.d.root().join("containers"),
        e.d.state().join("containers"),
    ] {
        let on_disk = dir_names(&base);
        ensure!(
            on_disk.is_subset(&ctr_ids),
            "container records under {} that ListContainers does not report: {:?}",
            base.display(),
            on_disk.difference(&ctr_ids).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Carries a round on from `from` as a kubelet would after a crash: it looks at what exists
/// before repeating a request. Every call must succeed.
async fn resume(e: &mut PodEnv, r: &Round, from: Step, progress: &Mutex<Progress>) -> Result<()> {
    let mut im = e.d.images().await?;
    for step in STEPS.into_iter().filter(|s| *s >= from) {
        match step {
            Step::RunPod => {
                let mut found = None;
                for p in pods_of(&mut e.rt, Some(r.n)).await? {
                    if p.state == PodSandboxState::SandboxReady as i32 && found.is_none() {
                        found = Some(p.id);
                    } else {
                        // A pod that did not come up: the kubelet removes it and makes another.
                        // A CNI plugin the killed daemon started may still be finishing its
                        // ADD (ARCHITECTURE.md, "Windows left open"), and DEL can fail beside
                        // it; the kubelet retries StopPodSandbox, and so does this client.
                        let mut tries = 0;
                        loop {
                            let stopped =
                                e.rt.stop_pod_sandbox(StopPodSandboxRequest {
                                    pod_sandbox_id: p.id.clone(),
                                })
                                .await;
                            match stopped {
                                Ok(_) => break,
                                Err(err) if tries < 3 => {
                                    eprintln!("stop of a half-made pod, retried: {err}");
                                    tries += 1;
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                                Err(err) => {
                                    return Err(err).context("stop of a half-made pod");
                                }
                            }
                        }
                        e.remove_pod(&p.id)
                            .await
                            .context("remove of a half-made pod")?;
                    }
                }
                if let Some(id) = found {
                    lock(progress).pod = Some(id);
                    continue;
                }
            }
            Step::Create | Step::Start => {
                let pod = lock(progress).pod.clone().context("no pod")?;
                let ctrs = containers_of(&mut e.rt, Some(&pod)).await?;
                ensure!(ctrs.len() <= 1, "two containers for one request: {ctrs:?}");
                if let Some(c) = ctrs.first() {
                    lock(progress).ctr = Some(c.id.clone());
                    if step == Step::Create || c.state == ContainerState::ContainerRunning as i32 {
                        continue;
                    }
                    ensure!(
                        c.state == ContainerState::ContainerCreated as i32,
                        "container neither created nor running after a restart: {c:?}"
                    );
                }
            }
            // Idempotent calls; when the client never learnt the pod's id, find it.
            Step::StopPod | Step::RemovePod if lock(progress).pod.is_none() => {
                let p = pods_of(&mut e.rt, Some(r.n)).await?;
                match p.first() {
                    Some(p) => lock(progress).pod = Some(p.id.clone()),
                    None => continue,
                }
            }
            _ => {}
        }
        run_step(&mut e.rt, &mut im, r, step, progress)
            .await
            .with_context(|| format!("repeating {step:?} after the kill"))?;
    }
    Ok(())
}

/// Nothing of the round is left once the client has removed it.
async fn assert_all_gone(e: &mut PodEnv, blobs: &[String], snapshots: &[String]) -> Result<()> {
    let pods = pods_of(&mut e.rt, None).await?;
    ensure!(pods.is_empty(), "pods left: {pods:?}");
    let ctrs = containers_of(&mut e.rt, None).await?;
    ensure!(ctrs.is_empty(), "containers left: {ctrs:?}");
    // A shim that is told to shut down may take a moment to exit.
    let until = Instant::now() + Duration::from_secs(5);
    while !shim_pids(&e.d.state()).is_empty() {
        ensure!(
            Instant::now() < until,
            "shims left: {:?}",
            shim_pids(&e.d.state())
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = e.d.wait_no_temporaries(Duration::from_secs(5)).await;
    ensure!(left.is_empty(), "temporaries left: {left:?}");
    let images = common::list(&mut e.d.images().await?).await?;
    ensure!(images.len() == 1, "images left: {images:?}");
    ensure!(
        e.d.blobs() == blobs,
        "blobs: {:?}, want {blobs:?}",
        e.d.blobs()
    );
    ensure!(
        e.d.snapshots() == snapshots,
        "snapshots: {:?}, want {snapshots:?}",
        e.d.snapshots()
    );
    let clean = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.assert_clean()));
    if clean.is_err() {
        bail!("the daemon left resources behind (see the panic above)");
    }
    Ok(())
}

struct Fixture {
    e: PodEnv,
    _extra_registry: FakeRegistry,
    extra: String,
    blobs: Vec<String>,
    snapshots: Vec<String>,
}

async fn fixture() -> Result<Fixture> {
    let e = env().await?;
    // Several layers to interrupt, one shared with busybox (which must survive its removal).
    let fake = FakeRegistry::start().await?;
    serve_image(
        &fake,
        "library/extra",
        "1",
        &big_image(6 << 20, 3)?.build(ManifestFormat::Oci)?,
    );
    let extra = format!("{}/library/extra:1", fake.addr());
    Ok(Fixture {
        blobs: e.d.blobs(),
        snapshots: e.d.snapshots(),
        e,
        _extra_registry: fake,
        extra,
    })
}

impl Fixture {
    fn round(&self, n: usize) -> Round {
        Round {
            n,
            busybox: self.e.image.clone(),
            extra: self.extra.clone(),
            logs: self.e.logs.path().display().to_string(),
        }
    }

    /// [`assert_all_gone`] against the fixture's baseline, bounded in time.
    async fn all_gone(&mut self) -> Result<()> {
        within(
            "the final check",
            30,
            assert_all_gone(&mut self.e, &self.blobs, &self.snapshots),
        )
        .await
    }

    /// How long a round takes without faults (the fastest of three): kills fall within it.
    async fn window(&mut self) -> Result<Duration> {
        let mut fastest = Duration::MAX;
        for n in 0..3 {
            fastest = fastest.min(self.clean_round(1000 + n).await?);
        }
        Ok(fastest)
    }

    /// One round with no fault, timed.
    async fn clean_round(&mut self, n: usize) -> Result<Duration> {
        let started = Instant::now();
        let progress = Arc::new(Mutex::new(Progress::default()));
        within(
            "a round without faults",
            60,
            workload(self.e.d.socket(), self.round(n), progress),
        )
        .await?;
        let took = started.elapsed();
        self.all_gone().await?;
        Ok(took)
    }
}

fn report(kind: &str, hits: &BTreeMap<Step, usize>, started: Instant) {
    eprintln!(
        "{kind}: {} kills in {:.1} s, by the step the client was in: {hits:?}",
        hits.values().sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_daemon_at_any_moment_leaves_a_consistent_state() -> Result<()> {
    let mut f = fixture().await?;
    let window = f.window().await?;
    let mut rng = Rng::from_env();
    let mut hits = BTreeMap::new();
    let started = Instant::now();
    for n in 1..=kills(200) {
        let r = f.round(n);
        let progress = Arc::new(Mutex::new(Progress::default()));
        let client = tokio::spawn(workload(f.e.d.socket(), r.clone(), Arc::clone(&progress)));
        // A step picked at random, then a moment within about one step's time: every step gets
        // its share of kills however loaded the machine is.
        let target = STEPS[rng.below(STEPS.len() as u64) as usize];
        while lock(&progress).step.is_none_or(|s| s < target) && !client.is_finished() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let per_step = window.as_micros() as u64 / STEPS.len() as u64;
        let delay = Duration::from_micros(rng.below(per_step * 2));
        tokio::time::sleep(delay).await;
        f.e.d.kill()?;
        // The client's calls fail once the socket is gone; it never hangs on a dead daemon.
        let outcome = within("the client after the kill", 30, async { Ok(client.await?) }).await?;
        let step = lock(&progress).step.unwrap_or(Step::Pull);
        *hits.entry(step).or_insert(0) += 1;
        let ctx =
            || format!("round {n}: killed {delay:?} into {target:?}, in {step:?} ({outcome:?})");
        within("the restart", 30, f.e.d.start_again())
            .await
            .with_context(ctx)?;
        f.e.rt = f.e.d.runtime().await?;
        within("the consistency check", 30, assert_consistent(&mut f.e))
            .await
            .with_context(ctx)?;
        if step != Step::Done {
            within(
                "the resumed round",
                60,
                resume(&mut f.e, &r, step, &progress),
            )
            .await
            .with_context(ctx)?;
        }
        f.all_gone().await.with_context(ctx)?;
    }
    report("corrald", &hits, started);
    f.e.d.stop()?;
    Ok(())
}

/// Waits until a shim of this daemon exists, then `delay`, and kills it; `None` when the
/// client finished first.
async fn kill_a_shim(
    e: &PodEnv,
    client: &tokio::task::JoinHandle<Result<()>>,
    delay: Duration,
) -> Option<i32> {
    while shim_pids(&e.d.state()).is_empty() {
        if client.is_finished() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(delay).await;
    loop {
        if let Some(pid) = shim_pids(&e.d.state()).first() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Some(*pid);
        }
        if client.is_finished() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_shim_at_any_moment_makes_its_pod_not_ready_and_frees_it() -> Result<()> {
    let mut f = fixture().await?;
    let window = f.window().await?;
    let mut rng = Rng::from_env();
    let mut hits = BTreeMap::new();
    let started = Instant::now();
    for n in 1..=kills(200) / 4 {
        let r = f.round(n);
        let progress = Arc::new(Mutex::new(Progress::default()));
        let client = tokio::spawn(workload(f.e.d.socket(), r.clone(), Arc::clone(&progress)));
        // From the moment the shim exists until about when StopPodSandbox ends it.
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64 / 2));
        let killed = kill_a_shim(&f.e, &client, delay).await;
        let step = lock(&progress).step.unwrap_or(Step::Pull);
        let outcome = within("the client after the kill", 60, async { Ok(client.await?) }).await?;
        if killed.is_some() {
            *hits.entry(step).or_insert(0) += 1;
        }
        let ctx = || format!("round {n}: shim {killed:?} killed in {step:?} ({outcome:?})");
        // A pod whose shim is gone is NOTREADY (at once or within a moment), never READY.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let pods = pods_of(&mut f.e.rt, Some(n)).await.with_context(ctx)?;
            if pods
                .iter()
                .all(|p| p.state == PodSandboxState::SandboxNotready as i32)
            {
                break;
            }
            if Instant::now() > until {
                return Err(anyhow::anyhow!("still READY: {pods:?}")).with_context(ctx);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The kubelet stops and removes such a pod; every call succeeds and frees it all.
        for p in pods_of(&mut f.e.rt, Some(n)).await? {
            within("StopPodSandbox of a pod without shim", 30, async {
                f.e.rt
                    .stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: p.id.clone(),
                    })
                    .await?;
                Ok(())
            })
            .await
            .with_context(ctx)?;
            within(
                "RemovePodSandbox of a pod without shim",
                30,
                f.e.remove_pod(&p.id),
            )
            .await
            .with_context(ctx)?;
        }
        if common::status(&mut f.e.d.images().await?, &f.extra)
            .await?
            .is_some()
        {
            common::remove(&mut f.e.d.images().await?, &f.extra).await?;
        }
        f.all_gone().await.with_context(ctx)?;
    }
    report("shim", &hits, started);
    Ok(())
}

/// Kills whatever of a shim started for `dir` is left and releases its namespaces.
struct ShimLeftovers<'a>(&'a std::path::Path);

impl Drop for ShimLeftovers<'_> {
    fn drop(&mut self) {
        for pid in shim_pids_under(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = corral_runtime::sandbox::unpin_namespaces(&self.0.join("ns"));
    }
}

/// corrald runs `corral-shim <pod dir>`, whose first process forks the shim and relays its
/// `ready` report. When that first process is killed before the report reaches it, the daemon
/// takes the start as failed and never calls the shim: the shim must end itself, with its PID
/// holder, socket and namespace pins. Each round stops the shim as soon as it is forked, checks
/// it has not bound its socket yet (so no report was written), kills the first process and lets
/// the shim go on.
#[test]
fn a_shim_whose_first_process_dies_before_its_ready_report_ends_itself() -> Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let shim = corral_tests::daemon::corrald_bin().with_file_name("corral-shim");
    let base = tempfile::Builder::new().prefix("corral-test-").tempdir()?;
    let mut rounds = 0;
    for attempt in 0..40 {
        if rounds == 5 {
            break;
        }
        let dir = base.path().join(format!("pod{attempt}"));
        std::fs::create_dir(&dir)?;
        let _leftovers = ShimLeftovers(&dir);
        let config = corral_shim::proto::ShimConfig {
            pod_id: format!("pod{attempt}"),
            network: true,
            ipc: true,
            hostname: Some("starter".into()),
            pid: true,
            sysctls: Vec::new(),
            userns: None,
            oci_runtime: None,
            cgroup_parent: None,
        };
        std::fs::write(
            dir.join(corral_shim::proto::CONFIG_FILE),
            serde_json::to_vec(&config)?,
        )?;
        let mut first = std::process::Command::new(&shim)
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let first_pid = first.id() as i32;
        let until = Instant::now() + Duration::from_secs(5);
        let child = loop {
            let forked = shim_pids_under(&dir)
                .into_iter()
                .find(|&p| procs::ppid(p as u32) == Some(first_pid as u32));
            if let Some(pid) = forked {
                break pid;
            }
            ensure!(
                Instant::now() < until,
                "the shim's first process never forked"
            );
            std::thread::sleep(Duration::from_micros(100));
        };
        kill(Pid::from_raw(child), Signal::SIGSTOP)?;
        while procs::state(child as u32) != Some('T') {
            ensure!(Instant::now() < until, "the shim never stopped");
            std::thread::sleep(Duration::from_micros(100));
        }
        let reported = dir.join(corral_shim::proto::SOCKET_FILE).exists();
        kill(Pid::from_raw(first_pid), Signal::SIGKILL)?;
        first.wait()?;
        kill(Pid::from_raw(child), Signal::SIGCONT)?;
        // EOF once the shim has put its stdout on its log (or exited).
        let mut relayed = Vec::new();
        std::io::Read::read_to_end(&mut first.stdout.take().context("stdout")?, &mut relayed)?;
        if reported {
            // Too late: the report may have been written already. Not a round.
            continue;
        }
        ensure!(relayed.is_empty(), "the first process relayed {relayed:?}");
        let until = Instant::now() + Duration::from_secs(10);
        while !shim_pids_under(&dir).is_empty() {
            ensure!(
                Instant::now() < until,
                "attempt {attempt}: the shim stayed without anyone to serve: {:?}",
                shim_pids_under(&dir)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        let pins: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(&*dir.to_string_lossy()))
            .collect();
        ensure!(pins.is_empty(), "namespace pins left: {pins:?}");
        ensure!(
            !dir.join(corral_shim::proto::SOCKET_FILE).exists(),
            "the socket was left"
        );
        rounds += 1;
    }
    ensure!(
        rounds == 5,
        "only {rounds} of 40 attempts stopped the shim before it bound its socket"
    );
    Ok(())
}
