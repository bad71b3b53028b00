//! `linux.seccomp` compiled with seccompiler (pure Rust), one BPF filter per action group.
//!
//! The kernel runs every installed filter and keeps the result with the highest precedence
//! (kill > trap > errno > trace > log > allow). So: one filter returns the default action for
//! every syscall no rule names (and allow for the named ones), and one filter per other action
//! returns that action for its rules (allow otherwise). Syscall names this architecture does
//! not know are skipped, like libseccomp does.

use std::collections::{BTreeMap, HashMap};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use seccompiler::{BpfProgram, TargetArch};
use serde_json::{Value, json};

use crate::Error;
use crate::report::{ChildResult, Step};
use crate::sys;

/// Compiled filters, in installation order.
pub(crate) struct SeccompPlan {
    programs: Vec<BpfProgram>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidSpec(format!("linux.seccomp: {}", msg.into()))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<Value, Error> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => json!("allow"),
        LinuxSeccompAction::ScmpActErrno => json!({"errno": errno.unwrap_or(libc::EPERM as u32)}),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            json!("kill_thread")
        }
        LinuxSeccompAction::ScmpActKillProcess => json!("kill_process"),
        LinuxSeccompAction::ScmpActTrap => json!("trap"),
        LinuxSeccompAction::ScmpActTrace => json!({"trace": errno.unwrap_or(0)}),
        LinuxSeccompAction::ScmpActLog => json!("log"),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(invalid("SCMP_ACT_NOTIFY is not supported"));
        }
    })
}

fn arch() -> Result<TargetArch, Error> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        "riscv64" => Ok(TargetArch::riscv64),
        other => Err(invalid(format!("unsupported architecture {other}"))),
    }
}

fn known(name: &str, arch: TargetArch, cache: &mut HashMap<String, bool>) -> bool {
    *cache.entry(name.to_owned()).or_insert_with(|| {
        let probe = json!({"p": {"mismatch_action": "allow", "match_action": "log",
                                 "filter": [{"syscall": name}]}});
        seccompiler::compile_from_json(probe.to_string().as_bytes(), arch).is_ok()
    })
}

/// Validates and compiles `linux.seccomp`.
pub(crate) fn build(s: &LinuxSeccomp) -> Result<SeccompPlan, Error> {
    if s.listener_path().is_some() {
        return Err(invalid("listenerPath (seccomp notify) is not supported"));
    }
    if s.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        tracing::debug!(flags = ?s.flags(), "seccomp filter flags ignored");
    }
    let arch = arch()?;
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut cache = HashMap::new();
    // Rules by action (keyed by the action's JSON text, which identifies it).
    let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for sc in s.syscalls().as_deref().unwrap_or_default() {
        let act = action(sc.action(), sc.errno_ret())?;
        if act == default {
            continue;
        }
        let mut conds = Vec::new();
        for arg in sc.args().as_deref().unwrap_or_default() {
            if arg.index() > 5 {
                return Err(invalid(format!("argument index {}", arg.index())));
            }
            let (op, val) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (json!("ne"), arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (json!("lt"), arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (json!("le"), arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (json!("eq"), arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (json!("ge"), arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (json!("gt"), arg.value()),
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    json!({"masked_eq": arg.value()}),
                    arg.value_two().unwrap_or(0),
                ),
            };
            conds.push(json!({"index": arg.index(), "type": "qword", "op": op, "val": val}));
        }
        let entry = groups
            .entry(act.to_string())
            .or_insert_with(|| (act.clone(), Vec::new()));
        for name in sc.names() {
            if !known(name, arch, &mut cache) {
                tracing::debug!(syscall = name, "unknown syscall in seccomp profile skipped");
                continue;
            }
            let mut rule = json!({"syscall": name});
            if !conds.is_empty() {
                rule["args"] = Value::Array(conds.clone());
            }
            entry.1.push(rule);
        }
    }
    let mut filters = serde_json::Map::new();
    let mut order = Vec::new();
    if default != json!("allow") {
        let all: Vec<Value> = groups
            .values()
            .flat_map(|(_, r)| r.iter().cloned())
            .collect();
        filters.insert(
            "default".into(),
            json!({"mismatch_action": default, "match_action": "allow", "filter": all}),
        );
        order.push("default".to_owned());
    }
    for (i, (act, rules)) in groups.values().enumerate() {
        if *act == json!("allow") || rules.is_empty() {
            continue;
        }
        let name = format!("action{i}");
        filters.insert(
            name.clone(),
            json!({"mismatch_action": "allow", "match_action": act, "filter": rules}),
        );
        order.push(name);
    }
    let mut compiled =
        seccompiler::compile_from_json(Value::Object(filters).to_string().as_bytes(), arch)
            .map_err(|e| invalid(e.to_string()))?;
    let programs = order.iter().filter_map(|n| compiled.remove(n)).collect();
    Ok(SeccompPlan { programs })
}

impl SeccompPlan {
    /// Child: installs the filters (without setting `no_new_privs`: the caller either set it
    /// or still has `CAP_SYS_ADMIN`).
    pub fn install(&self) -> ChildResult {
        for p in &self.programs {
            sys::seccomp_install(p).step("install seccomp filter")?;
        }
        Ok(())
    }
}
