//! A container's cgroup, through libcgroups, on v1, hybrid and v2 hosts (cgroupfs layout).
//!
//! Creating and updating go through libcgroups (which detects the host's setup). Inspecting
//! and removing scan every mounted hierarchy themselves (`/proc/self/mountinfo`), so a cgroup
//! left in a hierarchy libcgroups does not manage (e.g. a hybrid host's unified one) is removed
//! too.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcgroups::common::{
    AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::Error;

mod layout;
#[cfg(test)]
mod tests;

pub(crate) use layout::{Hierarchy, hierarchies};
pub use layout::{Layout, layout};

fn cg_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cgroup {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn manager(cgroups_path: &Path) -> Result<AnyCgroupManager, Error> {
    if !cgroups_path.is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "linux.cgroupsPath {} must be absolute (cgroupfs layout)",
            cgroups_path.display()
        )));
    }
    create_cgroup_manager(CgroupConfig {
        cgroup_path: cgroups_path.to_owned(),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .map_err(|e| cg_err(cgroups_path, e))
}

fn controller_opt(resources: &LinuxResources) -> ControllerOpt<'_> {
    ControllerOpt {
        resources,
        disable_oom_killer: resources
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false),
        oom_score_adj: None,
        freezer_state: None,
    }
}

/// Creates the cgroup, moves `pid` into it and applies `resources`. On error the cgroup is
/// removed again (the caller kills `pid`).
pub(crate) fn create(
    cgroups_path: &Path,
    resources: &LinuxResources,
    pid: Pid,
) -> Result<(), Error> {
    let result = set_up(cgroups_path, resources, pid, true);
    if result.is_err() {
        let _ = remove_dirs(cgroups_path);
    }
    result
}

/// Applies `resources` to a container's cgroup that [`rename_spare`] made from a spare, whose
/// intermediate `pid` is already in it (and, when the request has hugepage limits or
/// `unified` keys for a hybrid host's cgroup2 hierarchy, moves it there too).
pub(crate) fn apply_adopted(
    cgroups_path: &Path,
    resources: &LinuxResources,
    pid: Pid,
) -> Result<(), Error> {
    set_up(cgroups_path, resources, pid, false)
}

/// `resources` applied to the cgroup of `pid`, which libcgroups first moves in when `add`; what
/// only a hybrid host's cgroup2 hierarchy takes goes there, `pid` with it.
fn set_up(
    cgroups_path: &Path,
    resources: &LinuxResources,
    pid: Pid,
    add: bool,
) -> Result<(), Error> {
    let all = hierarchies()?;
    let (managed, hugetlb) = split_unified(&all, resources)?;
    let m = manager(cgroups_path)?;
    if add {
        m.add_task(pid)
            .map_err(|e| cg_err(cgroups_path, format!("add task: {e}")))?;
    }
    m.apply(&controller_opt(&managed))
        .map_err(|e| cg_err(cgroups_path, format!("apply resources: {e}")))?;
    apply_unified(cgroups_path, &hugetlb, Some(pid))
}

/// Where libcgroups looks for the host's cgroups, and finds a cgroup v2 host when a cgroup2
/// file system is mounted there.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup2 mount of a cgroup v2 host; `None` on a v1 or hybrid host. One `statfs`, not the
/// mount table: it is asked on every create and exec.
fn v2_root() -> Option<&'static Path> {
    let fs = nix::sys::statfs::statfs(CGROUP_ROOT).ok()?;
    (fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC).then(|| Path::new(CGROUP_ROOT))
}

/// On a cgroup v2 host (libcgroups manages the cgroup as v2): creates the cgroup with
/// `resources` applied and no process in it, and returns its directory opened, for a child
/// cloned straight into it ([`crate::sys::fork_maybe_into`]). `None` on a v1 or hybrid host,
/// and when any step fails (a controller that cannot be enabled in an ancestor, as in some
/// nested set-ups, which libcgroups tolerates): nothing is left then, and [`create`] moves the
/// child in after the fork as before, reporting what is wrong.
pub(crate) fn prepare_v2(cgroups_path: &Path, resources: &LinuxResources) -> Option<OwnedFd> {
    // First the cheap question: a libcgroups manager reads the mount table, and on v1 and
    // hybrid hosts `create` makes its own.
    let root = v2_root()?;
    let m = manager(cgroups_path).ok()?;
    if !matches!(m, AnyCgroupManager::V2(_)) {
        return None;
    }
    let result = (|| {
        // As libcgroups does when it adds a task: every available controller enabled in the
        // root and each ancestor, none in the cgroup itself (it holds the process).
        let available = unified_controllers(root);
        let names: Vec<&str> = available.iter().map(String::as_str).collect();
        let dir = enable_down(root, cgroups_path, &names)?;
        m.apply(&controller_opt(resources))
            .map_err(|e| cg_err(cgroups_path, format!("apply resources: {e}")))?;
        open_dir(&dir)
    })();
    match result {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::debug!(cgroup = %cgroups_path.display(), error = %e, "cgroup not made before the fork; the process will be moved in");
            let _ = remove_dirs(cgroups_path);
            None
        }
    }
}

/// The v1 controllers libcgroups' manager puts a container in (named hierarchies, such as
/// `name=systemd`, it leaves alone).
const V1_CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Makes `cgroups_path` in every v1 hierarchy libcgroups would put a container in, with no
/// process in it and no limits: a spare cgroup ([`crate::container::Spare`]). `cpuset`'s
/// `cpus` and `mems`, empty in a new v1 cgroup, are copied down from the nearest ancestor that
/// has them, as libcgroups does. Returns each hierarchy's mount point and directory; empty on
/// a cgroup v2 host.
pub(crate) fn make_spare(cgroups_path: &Path) -> Result<Vec<(PathBuf, PathBuf)>, Error> {
    let mut made = Vec::new();
    for h in hierarchies()? {
        if h.v2 || !V1_CONTROLLERS.iter().any(|c| h.has_controller(c)) {
            continue;
        }
        let dir = h.dir(cgroups_path);
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        if h.has_controller("cpuset") {
            let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
            let mut at = h.mount_point.clone();
            for part in rel.components() {
                let parent = at.clone();
                at.push(part);
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let mine = std::fs::read_to_string(at.join(file)).unwrap_or_default();
                    if mine.trim().is_empty() {
                        let theirs = std::fs::read_to_string(parent.join(file))
                            .map_err(Error::io(parent.join(file)))?;
                        std::fs::write(at.join(file), theirs.trim())
                            .map_err(Error::io(at.join(file)))?;
                    }
                }
            }
        }
        made.push((h.mount_point, dir));
    }
    Ok(made)
}

/// Renames each of a spare's directories (from [`make_spare`]) to `cgroups_path` in the same
/// hierarchy: a v1 cgroup renamed within its parent keeps its processes, so they are in the
/// new cgroup without a move. On failure the ones renamed are renamed back.
pub(crate) fn rename_spare(dirs: &[(PathBuf, PathBuf)], cgroups_path: &Path) -> Result<(), Error> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    for (i, (mount, dir)) in dirs.iter().enumerate() {
        let to = mount.join(rel);
        if let Err(e) = std::fs::rename(dir, &to) {
            for (mount, dir) in &dirs[..i] {
                let _ = std::fs::rename(mount.join(rel), dir);
            }
            return Err(Error::io(&to)(e));
        }
    }
    Ok(())
}

/// On a cgroup v2 host, the existing cgroup's directory opened for
/// [`crate::sys::fork_maybe_into`]; `None` elsewhere, or when it cannot be opened ([`join`]
/// then says why).
pub(crate) fn open_v2(cgroups_path: &Path) -> Option<OwnedFd> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    open_dir(&v2_root()?.join(rel)).ok()
}

/// A cgroup directory as `CLONE_INTO_CGROUP` takes it (`O_PATH`).
fn open_dir(dir: &Path) -> Result<OwnedFd, Error> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(Error::io(dir))
}

/// What of a request goes to a hybrid host's unified hierarchy, written by Corral, because
/// libcgroups' v1 manager cannot apply it (it needs a v1 hugetlb hierarchy, and it ignores
/// `unified`).
#[derive(Default)]
struct UnifiedExtras {
    /// The cgroup2 mount point, when something is to be written there.
    mount: Option<PathBuf>,
    hugepages: Vec<oci_spec::runtime::LinuxHugepageLimit>,
    /// `unified` keys (file name, value).
    files: Vec<(String, String)>,
    /// Hugepage limits were asked for but no hierarchy has hugetlb.
    hugetlb_missing: bool,
}

/// The controllers a cgroup2 hierarchy mounted at `mount` has.
fn unified_controllers(mount: &Path) -> Vec<String> {
    std::fs::read_to_string(mount.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Why the `unified` key `key` could not take effect on this host, if it could not: on a v1 or
/// hybrid host its controller must be in the cgroup2 hierarchy.
pub fn unified_key_problem(key: &str) -> Option<String> {
    let all = hierarchies().ok()?;
    if !all.iter().any(|h| !h.v2) {
        return None;
    }
    let controller = key.split('.').next().unwrap_or("");
    let controllers = all
        .iter()
        .find(|h| h.v2)
        .map(|h| unified_controllers(&h.mount_point))
        .unwrap_or_default();
    (!controllers.iter().any(|c| c == controller)).then(|| {
        format!("no cgroup v2 hierarchy on this host has the {controller} controller (its cgroups are v1)")
    })
}

/// Splits `resources` into what libcgroups applies and what goes to the unified hierarchy. On a
/// v1 or hybrid host a `unified` key whose controller no cgroup2 hierarchy has is refused: it
/// could not take effect.
fn split_unified(
    all: &[Hierarchy],
    resources: &LinuxResources,
) -> Result<(LinuxResources, UnifiedExtras), Error> {
    let v1 = all.iter().any(|h| !h.v2);
    if !v1 {
        return Ok((resources.clone(), UnifiedExtras::default()));
    }
    let unified = all.iter().find(|h| h.v2);
    let controllers = unified
        .map(|h| unified_controllers(&h.mount_point))
        .unwrap_or_default();
    let mut rest = resources.clone();
    let mut extras = UnifiedExtras::default();
    let limits = resources.hugepage_limits().clone().unwrap_or_default();
    if !limits.is_empty() && !all.iter().any(|h| !h.v2 && h.has_controller("hugetlb")) {
        rest.set_hugepage_limits(None);
        if controllers.iter().any(|c| c == "hugetlb") {
            extras.hugepages = limits;
        } else {
            extras.hugetlb_missing = true;
        }
    }
    if let Some(map) = resources.unified().as_ref().filter(|m| !m.is_empty()) {
        rest.set_unified(None);
        for (key, value) in map {
            let controller = key.split('.').next().unwrap_or("");
            if !controllers.iter().any(|c| c == controller) {
                return Err(Error::InvalidSpec(format!(
                    "linux.resources.unified[{key:?}]: no cgroup v2 hierarchy on this host has \
                     the {controller} controller"
                )));
            }
            extras.files.push((key.clone(), value.clone()));
        }
    }
    if !extras.hugepages.is_empty() || !extras.files.is_empty() {
        extras.mount = unified.map(|h| h.mount_point.clone());
    }
    Ok((rest, extras))
}

/// Applies what [`split_unified`] took out: in the unified hierarchy the needed controllers are
/// enabled in every ancestor's `cgroup.subtree_control`, the cgroup is created and written, and
/// `pid` joins it.
fn apply_unified(
    cgroups_path: &Path,
    extras: &UnifiedExtras,
    pid: Option<Pid>,
) -> Result<(), Error> {
    if extras.hugetlb_missing {
        tracing::warn!(
            cgroup = %cgroups_path.display(),
            "no cgroup hierarchy has the hugetlb controller; hugepage limits not applied"
        );
    }
    let Some(mount) = &extras.mount else {
        return Ok(());
    };
    let mut wanted: Vec<&str> = extras
        .files
        .iter()
        .filter_map(|(k, _)| k.split('.').next())
        .collect();
    if !extras.hugepages.is_empty() {
        wanted.push("hugetlb");
    }
    let dir = enable_down(mount, cgroups_path, &wanted)?;
    for l in &extras.hugepages {
        let file = dir.join(format!("hugetlb.{}.max", l.page_size()));
        std::fs::write(&file, l.limit().to_string()).map_err(Error::io(&file))?;
    }
    for (key, value) in &extras.files {
        let file = dir.join(key);
        std::fs::write(&file, value).map_err(Error::io(&file))?;
    }
    if let Some(pid) = pid {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.as_raw().to_string()).map_err(Error::io(&procs))?;
    }
    Ok(())
}

/// Creates `cgroups_path` under the cgroup2 `mount`, enabling `controllers` (those available)
/// in the `cgroup.subtree_control` of the root and every ancestor on the way; returns its
/// directory.
fn enable_down(mount: &Path, cgroups_path: &Path, controllers: &[&str]) -> Result<PathBuf, Error> {
    let mut dir = mount.to_path_buf();
    for part in cgroups_path
        .strip_prefix("/")
        .unwrap_or(cgroups_path)
        .components()
    {
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let control = dir.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&control).unwrap_or_default();
        for c in controllers {
            let has = |text: &str| text.split_whitespace().any(|x| x == *c);
            if has(&available) && !has(&enabled) {
                std::fs::write(&control, format!("+{c}")).map_err(Error::io(&control))?;
            }
        }
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&dir)(e)),
        }
    }
    Ok(dir)
}

/// Creates the cgroup if it does not exist yet (with no process in it) and applies `resources`:
/// a pod's cgroup, whose containers' cgroups are created below it later.
pub fn ensure(cgroups_path: &Path, resources: &LinuxResources) -> Result<(), Error> {
    let all = hierarchies()?;
    for h in &all {
        if h.v2 {
            let wanted = ["cpu", "cpuset", "memory", "pids", "io", "hugetlb"];
            enable_down(&h.mount_point, cgroups_path, &wanted)?;
        } else if !h.options.contains("name=") {
            let dir = h.dir(cgroups_path);
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        }
    }
    let (managed, hugetlb) = split_unified(&all, resources)?;
    let m = manager(cgroups_path)?;
    m.apply(&controller_opt(&managed))
        .map_err(|e| cg_err(cgroups_path, format!("apply resources: {e}")))?;
    apply_unified(cgroups_path, &hugetlb, None)
}

/// Moves `pid` into the existing cgroup (every hierarchy libcgroups manages).
pub(crate) fn join(cgroups_path: &Path, pid: Pid) -> Result<(), Error> {
    // Written directly rather than through a libcgroups manager, whose set-up (it re-reads the
    // mount table and prepares every controller) dominated an ExecSync. libcgroups would also
    // create a missing cgroup; joining one that is gone is an error here.
    let mut joined = false;
    for h in hierarchies()? {
        let dir = h.dir(cgroups_path);
        if !dir.is_dir() {
            continue;
        }
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.as_raw().to_string()).map_err(Error::io(&procs))?;
        joined = true;
    }
    if !joined {
        return Err(cg_err(cgroups_path, "no such cgroup"));
    }
    Ok(())
}

/// Applies `resources` to the existing cgroup at `cgroups_path` (as in `linux.cgroupsPath`).
pub fn update(cgroups_path: &Path, resources: &LinuxResources) -> Result<(), Error> {
    if !exists(cgroups_path)? {
        return Err(cg_err(cgroups_path, "no such cgroup"));
    }
    let all = hierarchies()?;
    let (managed, hugetlb) = split_unified(&all, resources)?;
    let m = manager(cgroups_path)?;
    m.apply(&controller_opt(&managed))
        .map_err(|e| cg_err(cgroups_path, format!("apply resources: {e}")))?;
    apply_unified(cgroups_path, &hugetlb, None)
}

pub(crate) fn exists(cgroups_path: &Path) -> Result<bool, Error> {
    Ok(hierarchies()?.iter().any(|h| h.dir(cgroups_path).is_dir()))
}

/// How many processes of the cgroup the kernel's OOM killer killed (v1 `memory.oom_control`
/// `oom_kill`, v2 `memory.events` `oom_kill`); 0 when the memory controller is missing.
pub fn oom_kills(cgroups_path: &Path) -> Result<u64, Error> {
    let all = hierarchies()?;
    let file = if let Some(h) = all.iter().find(|h| !h.v2 && h.has_controller("memory")) {
        h.dir(cgroups_path).join("memory.oom_control")
    } else if let Some(h) = all.iter().find(|h| h.v2) {
        h.dir(cgroups_path).join("memory.events")
    } else {
        return Ok(0);
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(Error::Io {
                path: file,
                source: e,
            });
        }
    };
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// PIDs in the cgroup (all hierarchies agree on the set for our cgroups).
pub fn pids(cgroups_path: &Path) -> Result<Vec<i32>, Error> {
    let mut set = BTreeSet::new();
    for h in hierarchies()? {
        read_procs(&h.dir(cgroups_path), false, &mut set)?;
    }
    Ok(set.into_iter().collect())
}

/// Reads `cgroup.procs` of `dir` (and of its descendants when `recursive`); absent is empty.
fn read_procs(dir: &Path, recursive: bool, out: &mut BTreeSet<i32>) -> Result<(), Error> {
    let file = dir.join("cgroup.procs");
    match std::fs::read_to_string(&file) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                path: file,
                source: e,
            });
        }
    }
    if recursive {
        for sub in subdirs(dir) {
            read_procs(&sub, true, out)?;
        }
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect()
}

/// SIGKILLs every process in the cgroup and removes it; an absent cgroup is fine.
pub fn kill_and_remove(cgroups_path: &Path) -> Result<(), Error> {
    let all = hierarchies()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut set = BTreeSet::new();
        for h in &all {
            read_procs(&h.dir(cgroups_path), true, &mut set)?;
        }
        if set.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(cg_err(
                cgroups_path,
                format!("processes survive SIGKILL: {set:?}"),
            ));
        }
        for pid in set {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    remove_dirs(cgroups_path)
}

/// Removes the cgroup's directory (children first) in every hierarchy.
fn remove_dirs(cgroups_path: &Path) -> Result<(), Error> {
    for h in hierarchies()? {
        let dir = h.dir(cgroups_path);
        if dir != h.mount_point {
            rmdir_tree(&dir)?;
        }
    }
    Ok(())
}

fn rmdir_tree(dir: &Path) -> Result<(), Error> {
    for sub in subdirs(dir) {
        rmdir_tree(&sub)?;
    }
    // A cgroup whose last task just died can be busy for a moment.
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(Error::Io {
                    path: dir.to_owned(),
                    source: e,
                });
            }
        }
    }
}

/// What a cgroup has used, read from whichever hierarchy has each controller (v1 first, as on
/// hybrid hosts, else the unified one). A counter the host does not provide is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of every task, in nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec`).
    pub cpu_ns: Option<u64>,
    /// Memory charged, page cache included (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_bytes: Option<u64>,
    /// Memory minus inactive file pages: what the kubelet evicts on.
    pub working_set_bytes: Option<u64>,
    /// Anonymous and swap cache memory (v1 `total_rss`, v2 `anon`).
    pub rss_bytes: Option<u64>,
    /// The memory limit, when one is set.
    pub memory_limit: Option<u64>,
    /// Minor page faults (`pgfault`).
    pub page_faults: Option<u64>,
    /// Major page faults (`pgmajfault`).
    pub major_page_faults: Option<u64>,
    /// Tasks in the cgroup (`pids.current`).
    pub pids: Option<u64>,
}

/// Reads a file of a cgroup; absent (no such controller or cgroup) is `None`.
fn read_cgroup_file(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads the usage of `cgroups_path`.
pub fn usage(cgroups_path: &Path) -> Result<Usage, Error> {
    let all = hierarchies()?;
    let v1 = |controller: &str| {
        all.iter()
            .find(|h| !h.v2 && h.has_controller(controller))
            .map(|h| h.dir(cgroups_path))
    };
    let v2 = all.iter().find(|h| h.v2).map(|h| h.dir(cgroups_path));
    let in_v2 = |file: &str| v2.as_deref().and_then(|d| read_cgroup_file(d, file));
    let number = |text: Option<String>| text.and_then(|t| t.trim().parse::<u64>().ok());

    let cpu_ns = match v1("cpuacct") {
        Some(dir) => number(read_cgroup_file(&dir, "cpuacct.usage")),
        None => in_v2("cpu.stat")
            .and_then(|t| flat_keyed(&t, "usage_usec"))
            .map(|us| us.saturating_mul(1000)),
    };
    // (usage, memory.stat, limit, the stat keys' prefix, inactive file key, rss key)
    let (memory, stat, limit, prefix, inactive_key, rss_key) = match v1("memory") {
        Some(dir) => (
            read_cgroup_file(&dir, "memory.usage_in_bytes"),
            read_cgroup_file(&dir, "memory.stat"),
            read_cgroup_file(&dir, "memory.limit_in_bytes"),
            "total_",
            "total_inactive_file",
            "total_rss",
        ),
        None => (
            in_v2("memory.current"),
            in_v2("memory.stat"),
            in_v2("memory.max"),
            "",
            "inactive_file",
            "anon",
        ),
    };
    let memory_bytes = number(memory);
    let stat_value = |key: &str| stat.as_deref().and_then(|t| flat_keyed(t, key));
    let pids = match v1("pids") {
        Some(dir) => read_cgroup_file(&dir, "pids.current"),
        None => in_v2("pids.current"),
    };
    Ok(Usage {
        cpu_ns,
        memory_bytes,
        working_set_bytes: stat.as_ref().and_then(|_| {
            memory_bytes.map(|m| m.saturating_sub(stat_value(inactive_key).unwrap_or(0)))
        }),
        rss_bytes: stat_value(rss_key),
        // v1 reports "no limit" as a huge page-aligned number, v2 as "max".
        memory_limit: number(limit).filter(|&l| l < (1 << 62)),
        page_faults: stat_value(&format!("{prefix}pgfault")),
        major_page_faults: stat_value(&format!("{prefix}pgmajfault")),
        pids: number(pids),
    })
}
