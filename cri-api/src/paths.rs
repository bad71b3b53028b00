//! The masked and read-only paths a container gets unless it is privileged: containerd's
//! defaults, which a runtime applies when a `ContainerConfig` names none, and the lists a
//! kubelet sends for `procMount: Default` (moby's: the same paths). Kept here, beside the
//! messages that carry them, so Corral's runtime side and its pod manager share one copy.

/// containerd's default masked paths.
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// containerd's default read-only paths.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
