//! `linux.resources` (but the device rules) and `process.oomScoreAdj` from the CRI resources.

use std::collections::HashMap;

use corral_cri_api::v1::LinuxContainerResources;
use oci_spec::runtime::{LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources};

use super::{SpecError, check_no_nul};

/// Maps the CRI resources (0 and "" mean unset) and returns `oom_score_adj` separately.
pub(super) fn resources(r: &LinuxContainerResources) -> Result<(LinuxResources, i32), SpecError> {
    let non_negative = |field: &str, v: i64| {
        if v < 0 {
            Err(SpecError::invalid(format!(
                "resources.{field}: {v} is negative"
            )))
        } else {
            Ok(v)
        }
    };
    let mut cpu = LinuxCpu::default();
    let mut cpu_set = false;
    if non_negative("cpu_period", r.cpu_period)? > 0 {
        cpu.set_period(Some(r.cpu_period as u64));
        cpu_set = true;
    }
    if r.cpu_quota != 0 {
        cpu.set_quota(Some(r.cpu_quota));
        cpu_set = true;
    }
    if non_negative("cpu_shares", r.cpu_shares)? > 0 {
        cpu.set_shares(Some(r.cpu_shares as u64));
        cpu_set = true;
    }
    for (field, v, online) in [
        (
            "cpuset_cpus",
            &r.cpuset_cpus,
            "/sys/devices/system/cpu/online",
        ),
        (
            "cpuset_mems",
            &r.cpuset_mems,
            "/sys/devices/system/node/online",
        ),
    ] {
        if v.is_empty() {
            continue;
        }
        let wanted = parse_id_list(v).ok_or_else(|| {
            SpecError::invalid(format!(
                "resources.{field}: {v:?} is not a list like \"0-2,4\""
            ))
        })?;
        // Asking for a CPU or node the host does not have would fail only when the cgroup is
        // written; say so now, naming them.
        if let Some(have) = std::fs::read_to_string(online)
            .ok()
            .and_then(|t| parse_id_list(t.trim()))
        {
            let missing: Vec<String> = wanted
                .iter()
                .filter(|id| !have.contains(id))
                .map(u32::to_string)
                .collect();
            if !missing.is_empty() {
                return Err(SpecError::invalid(format!(
                    "resources.{field}: {v:?} names {} that this host does not have online ({})",
                    missing.join(","),
                    have_list(&have)
                )));
            }
        }
        if field == "cpuset_cpus" {
            cpu.set_cpus(Some(v.clone()));
        } else {
            cpu.set_mems(Some(v.clone()));
        }
        cpu_set = true;
    }

    let mut memory = LinuxMemory::default();
    let mut memory_set = false;
    if non_negative("memory_limit_in_bytes", r.memory_limit_in_bytes)? > 0 {
        memory.set_limit(Some(r.memory_limit_in_bytes));
        memory_set = true;
    }
    if r.memory_swap_limit_in_bytes != 0 {
        if r.memory_swap_limit_in_bytes < -1 {
            return Err(SpecError::invalid(format!(
                "resources.memory_swap_limit_in_bytes: {} is invalid",
                r.memory_swap_limit_in_bytes
            )));
        }
        memory.set_swap(Some(r.memory_swap_limit_in_bytes));
        memory_set = true;
    }

    let mut hugepages = Vec::new();
    for (i, h) in r.hugepage_limits.iter().enumerate() {
        let field = format!("resources.hugepage_limits[{i}]");
        let digits = h.page_size.trim_end_matches(['K', 'M', 'G', 'T', 'P', 'B']);
        let unit = &h.page_size[digits.len()..];
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || !["KB", "MB", "GB", "TB", "PB"].contains(&unit)
        {
            return Err(SpecError::invalid(format!(
                "{field}.page_size: {:?} is not like \"2MB\"",
                h.page_size
            )));
        }
        let limit = i64::try_from(h.limit)
            .map_err(|_| SpecError::invalid(format!("{field}.limit: {} is too large", h.limit)))?;
        let mut l = LinuxHugepageLimit::default();
        l.set_page_size(h.page_size.clone());
        l.set_limit(limit);
        hugepages.push(l);
    }

    let mut unified = HashMap::new();
    for (k, v) in &r.unified {
        let key_ok = !k.is_empty()
            && k.contains('.')
            && !k.starts_with('.')
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if !key_ok {
            return Err(SpecError::invalid(format!(
                "resources.unified: {k:?} is not a cgroup v2 file name"
            )));
        }
        check_no_nul(&format!("resources.unified[{k:?}]"), v)?;
        if let Some(why) = corral_runtime::cgroups::unified_key_problem(k) {
            return Err(SpecError::invalid(format!(
                "resources.unified[{k:?}]: {why}"
            )));
        }
        unified.insert(k.clone(), v.clone());
    }

    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(SpecError::invalid(format!(
            "resources.oom_score_adj: {} is outside -1000..=1000",
            r.oom_score_adj
        )));
    }

    let mut out = LinuxResources::default();
    out.set_cpu(cpu_set.then_some(cpu));
    out.set_memory(memory_set.then_some(memory));
    out.set_hugepage_limits((!hugepages.is_empty()).then_some(hugepages));
    out.set_unified((!unified.is_empty()).then_some(unified));
    Ok((out, r.oom_score_adj as i32))
}

/// Parses a kernel id list (`0-3,5`): ranges must be ascending, at most 64 Ki ids in all.
pub(super) fn parse_id_list(s: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut out = std::collections::BTreeSet::new();
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let num = |x: &str| {
            (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
                .then(|| x.parse::<u32>().ok())
                .flatten()
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi || hi - lo >= 65536 || out.len() > 65536 {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

fn have_list(have: &std::collections::BTreeSet<u32>) -> String {
    let v: Vec<String> = have.iter().map(u32::to_string).collect();
    v.join(",")
}

/// A pod's cgroup limits from `LinuxPodSandboxConfig.resources` (the sum of its containers'
/// resources, as the kubelet computes it) plus `overhead`: memory and CPU quota limit the pod
/// only when its containers have limits (an overhead alone limits nothing), shares add up,
/// cpuset, hugepages and unified keys come from `resources`. `None` when nothing is set.
pub fn pod_resources(
    total: Option<&LinuxContainerResources>,
    overhead: Option<&LinuxContainerResources>,
) -> Result<Option<LinuxResources>, SpecError> {
    let empty = LinuxContainerResources::default();
    let r = total.unwrap_or(&empty);
    let o = overhead.unwrap_or(&empty);
    let prefixed = |what: &str, e: SpecError| match e {
        SpecError::InvalidArgument(m) => SpecError::InvalidArgument(format!("linux.{what}: {m}")),
        other => other,
    };
    // Validate both the way container resources are.
    resources(r).map_err(|e| prefixed("resources", e))?;
    resources(o).map_err(|e| prefixed("overhead", e))?;
    let mut sum = r.clone();
    sum.oom_score_adj = 0;
    if r.memory_limit_in_bytes > 0 {
        sum.memory_limit_in_bytes = r
            .memory_limit_in_bytes
            .saturating_add(o.memory_limit_in_bytes.max(0));
    }
    sum.memory_swap_limit_in_bytes = 0;
    sum.cpu_shares = r.cpu_shares.saturating_add(o.cpu_shares);
    if r.cpu_quota > 0 {
        // The overhead's quota, scaled to the pod's period.
        let period = if r.cpu_period > 0 {
            r.cpu_period
        } else {
            100_000
        };
        let o_period = if o.cpu_period > 0 {
            o.cpu_period
        } else {
            100_000
        };
        let extra = o.cpu_quota.max(0).saturating_mul(period) / o_period;
        sum.cpu_quota = r.cpu_quota.saturating_add(extra);
        sum.cpu_period = period;
    }
    let (out, _) = resources(&sum).map_err(|e| prefixed("resources", e))?;
    let nothing = out.cpu().is_none()
        && out.memory().is_none()
        && out.hugepage_limits().is_none()
        && out.unified().is_none();
    Ok((!nothing).then_some(out))
}
