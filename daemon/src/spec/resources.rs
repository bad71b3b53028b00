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
    for (field, v) in [
        ("cpuset_cpus", &r.cpuset_cpus),
        ("cpuset_mems", &r.cpuset_mems),
    ] {
        if v.is_empty() {
            continue;
        }
        if !v
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
        {
            return Err(SpecError::invalid(format!(
                "resources.{field}: {v:?} is not a CPU/node list"
            )));
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
