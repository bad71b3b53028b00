//! Resources as the kubelet converts them: pod-level resources and overhead on the sandbox,
//! a container's CPU, memory and huge page limits.

use super::*;

pub(super) type Amounts = BTreeMap<String, i128>;

pub(super) fn amounts(m: BTreeMap<String, Quantity>) -> Amounts {
    m.into_iter().map(|(k, q)| (k, q.nanos())).collect()
}

pub(super) fn add_into(to: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        *to.entry(k.clone()).or_default() += v;
    }
}

pub(super) fn max_into(to: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        let e = to.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

/// `PodRequests`/`PodLimits` without overhead: the containers' sum, raised to what the init
/// phase needs (each init container plus the sidecars started before it).
pub(super) fn pod_amounts(
    spec: &PodSpec,
    of: fn(&Container) -> BTreeMap<String, Quantity>,
) -> Amounts {
    let mut total = Amounts::new();
    for c in &spec.containers {
        add_into(&mut total, &amounts(of(c)));
    }
    let mut sidecars = Amounts::new();
    let mut init_peak = Amounts::new();
    for c in spec.init_containers.iter().flatten() {
        let own = amounts(of(c));
        let mut during = sidecars.clone();
        add_into(&mut during, &own);
        if c.restart_policy.as_deref() == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
        }
        max_into(&mut init_peak, &during);
    }
    max_into(&mut total, &init_peak);
    total
}

pub(super) const NANO: i128 = 1_000_000_000;

pub(super) fn milli(a: &Amounts, k: &str) -> Option<i64> {
    a.get(k)
        .map(|n| i64::try_from((n + NANO / 1000 - 1).div_euclid(NANO / 1000)).unwrap_or(i64::MAX))
}

pub(super) fn units(a: &Amounts, k: &str) -> i64 {
    a.get(k).map_or(0, |n| {
        i64::try_from((n + NANO - 1).div_euclid(NANO)).unwrap_or(i64::MAX)
    })
}

/// `calculateLinuxResources`: shares from the cpu request (or the limit when there is no
/// request), CFS quota from the cpu limit, the memory limit.
pub(super) fn linux_resources(
    cpu_request: Option<i64>,
    cpu_limit: i64,
    memory_limit: i64,
) -> LinuxContainerResources {
    let shares_from = match cpu_request {
        None if cpu_limit != 0 => cpu_limit,
        r => r.unwrap_or(0),
    };
    LinuxContainerResources {
        cpu_period: quantity::QUOTA_PERIOD,
        cpu_quota: quantity::milli_cpu_to_quota(cpu_limit, quantity::QUOTA_PERIOD),
        cpu_shares: i64::try_from(quantity::milli_cpu_to_shares(shares_from)).unwrap_or(2),
        memory_limit_in_bytes: memory_limit,
        ..Default::default()
    }
}

/// The sandbox's `resources` (`calculateSandboxResources`).
pub(super) fn pod_resources(pod: &Pod) -> LinuxContainerResources {
    let Some(spec) = pod.spec.as_ref() else {
        return LinuxContainerResources::default();
    };
    let req = pod_amounts(spec, quantity::requests);
    let lim = pod_amounts(spec, quantity::limits);
    linux_resources(
        milli(&req, "cpu"),
        milli(&lim, "cpu").unwrap_or(0),
        units(&lim, "memory"),
    )
}

/// The sandbox's `overhead`: `spec.overhead` as requests equal to limits; empty without one.
pub(super) fn overhead_resources(spec: &PodSpec) -> LinuxContainerResources {
    let Some(o) = spec.overhead.as_ref() else {
        return LinuxContainerResources::default();
    };
    let parsed: BTreeMap<String, Quantity> = o
        .iter()
        .filter_map(|(k, v)| Quantity::from_k8s(v).ok().map(|q| (k.clone(), q)))
        .collect();
    let a = amounts(parsed);
    let cpu = milli(&a, "cpu").unwrap_or(0);
    linux_resources(Some(cpu), cpu, units(&a, "memory"))
}
pub(super) fn container_resources(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs<'_>,
) -> LinuxContainerResources {
    let r = quantity::linux_resources(pod, c, inputs.memory_capacity);
    LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        hugepage_limits: hugepage_limits(c, inputs.hugepage_sizes),
        ..Default::default()
    }
}

/// `GetHugepageLimitsFromResources`: every host page size, limited to what the container's
/// `hugepages-<size>` limit says, else 0.
pub(super) fn hugepage_limits(c: &Container, sizes: &[String]) -> Vec<HugepageLimit> {
    let wanted: HashMap<String, u64> = quantity::limits(c)
        .into_iter()
        .filter_map(|(name, q)| {
            let size = Quantity::parse(name.strip_prefix("hugepages-")?).ok()?;
            let unit = page_size_name(size.value())?;
            Some((unit, u64::try_from(q.value()).unwrap_or(0)))
        })
        .collect();
    sizes
        .iter()
        .map(|s| HugepageLimit {
            page_size: s.clone(),
            limit: wanted.get(s).copied().unwrap_or(0),
        })
        .collect()
}

/// `HugePageUnitSizeFromByteSize`: 2097152 → `2MB`.
pub(super) fn page_size_name(mut size: i64) -> Option<String> {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    if size <= 0 {
        return None;
    }
    let mut i = 0;
    while size % 1024 == 0 && i < UNITS.len() - 1 {
        size /= 1024;
        i += 1;
    }
    (size <= 1023 || i == UNITS.len() - 1).then(|| format!("{size}{}", UNITS[i]))
}
