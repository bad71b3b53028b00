//! `describe pod NAME`: kubectl's layout (describePod), aligned by [`super::tabwriter`], with the
//! pod's events from KubeService.Events. Times print as RFC 1123 with offset, in UTC.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::Args;
use corral_cri_api::corral;
use corral_kube::k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, Pod, Probe, Volume,
};
use corral_kube::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use corral_kube::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use corral_kube::k8s_openapi::jiff::{SignedDuration, Timestamp};
use corral_kube::table::human_duration;

use super::kind::Kind;
use super::tabwriter::align;
use super::{KubeError, decode};
use crate::client::{Cri, Deadline};

/// `describe`: show a pod in detail, with its events.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// pods (pod, po), or pod/NAME.
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// Go's `time.RFC1123Z`, in UTC.
fn rfc1123z(t: &Time) -> String {
    t.0.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn multiline_map(out: &mut String, title: &str, map: Option<&BTreeMap<String, String>>, sep: &str) {
    let _ = write!(out, "{title}:\t");
    match map {
        Some(m) if !m.is_empty() => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push('\t');
                }
                let _ = writeln!(out, "{k}{sep}{v}");
            }
        }
        _ => out.push_str("<none>\n"),
    }
}

fn annotations(out: &mut String, map: Option<&BTreeMap<String, String>>) {
    let skip = "kubectl.kubernetes.io/last-applied-configuration";
    let kept: BTreeMap<String, String> = map
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != skip)
        .map(|(k, v)| (k.clone(), v.trim_end_matches('\n').to_string()))
        .collect();
    multiline_map(out, "Annotations", Some(&kept), ": ");
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// kubectl's DescribeProbe.
pub fn probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    );
    if let Some(e) = &p.exec {
        return format!(
            "exec [{}] {attrs}",
            e.command.clone().unwrap_or_default().join(" ")
        );
    }
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let host = h.host.clone().unwrap_or_default();
        let path = h.path.clone().unwrap_or_default();
        return format!(
            "http-get {scheme}://{host}:{}{path} {attrs}",
            int_or_string(&h.port)
        );
    }
    if let Some(t) = &p.tcp_socket {
        return format!(
            "tcp-socket {}:{} {attrs}",
            t.host.clone().unwrap_or_default(),
            int_or_string(&t.port)
        );
    }
    if let Some(g) = &p.grpc {
        return format!(
            "grpc <pod>:{} {} {attrs}",
            g.port,
            g.service.clone().unwrap_or_default()
        );
    }
    format!("unknown {attrs}")
}

fn state(out: &mut String, title: &str, s: &ContainerState) {
    if let Some(r) = &s.running {
        let _ = writeln!(out, "    {title}:\tRunning");
        if let Some(t) = &r.started_at {
            let _ = writeln!(out, "      Started:\t{}", rfc1123z(t));
        }
    } else if let Some(t) = &s.terminated {
        let _ = writeln!(out, "    {title}:\tTerminated");
        if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "      Reason:\t{r}");
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "      Message:\t{m}");
        }
        let _ = writeln!(out, "      Exit Code:\t{}", t.exit_code);
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            let _ = writeln!(out, "      Signal:\t{sig}");
        }
        let time = |t: &Option<Time>| t.as_ref().map(rfc1123z).unwrap_or_default();
        let _ = writeln!(out, "      Started:\t{}", time(&t.started_at));
        let _ = writeln!(out, "      Finished:\t{}", time(&t.finished_at));
    } else {
        let _ = writeln!(out, "    {title}:\tWaiting");
        if let Some(r) = s
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty())
        {
            let _ = writeln!(out, "      Reason:\t{r}");
        }
    }
}

fn container(out: &mut String, c: &Container, status: Option<&ContainerStatus>) {
    let _ = writeln!(out, "  {}:", c.name);
    if let Some(s) = status {
        let _ = writeln!(
            out,
            "    Container ID:\t{}",
            s.container_id.clone().unwrap_or_default()
        );
    }
    let _ = writeln!(out, "    Image:\t{}", c.image.clone().unwrap_or_default());
    if let Some(s) = status {
        let _ = writeln!(out, "    Image ID:\t{}", s.image_id);
    }
    let ports = c.ports.clone().unwrap_or_default();
    let proto = |p: &Option<String>| p.clone().unwrap_or_else(|| "TCP".into());
    let list: Vec<String> = ports
        .iter()
        .map(|p| format!("{}/{}", p.container_port, proto(&p.protocol)))
        .collect();
    let hosts: Vec<String> = ports
        .iter()
        .map(|p| format!("{}/{}", p.host_port.unwrap_or(0), proto(&p.protocol)))
        .collect();
    let (pl, hl) = if list.len() > 1 {
        ("Ports", "Host Ports")
    } else {
        ("Port", "Host Port")
    };
    let _ = writeln!(out, "    {pl}:\t{}", or_none(&list.join(", ")));
    let _ = writeln!(out, "    {hl}:\t{}", or_none(&hosts.join(", ")));
    for (title, words) in [("Command", &c.command), ("Args", &c.args)] {
        if let Some(words) = words.as_ref().filter(|w| !w.is_empty()) {
            let _ = writeln!(out, "    {title}:");
            for line in words.iter().flat_map(|w| w.split('\n')) {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    if let Some(s) = status {
        state(out, "State", &s.state.clone().unwrap_or_default());
        if let Some(last) = s.last_state.as_ref().filter(|l| l.terminated.is_some()) {
            state(out, "Last State", last);
        }
    }
    if let Some(s) = status {
        let _ = writeln!(
            out,
            "    Ready:\t{}",
            if s.ready { "True" } else { "False" }
        );
        let _ = writeln!(out, "    Restart Count:\t{}", s.restart_count);
    }
    if let Some(r) = &c.resources {
        for (title, q) in [("Limits", &r.limits), ("Requests", &r.requests)] {
            if let Some(q) = q.as_ref().filter(|q| !q.is_empty()) {
                let _ = writeln!(out, "    {title}:");
                for (k, v) in q {
                    let _ = writeln!(out, "      {k}:\t{}", v.0);
                }
            }
        }
    }
    for (title, p) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(p) = p {
            let _ = writeln!(out, "    {title}:\t{}", probe(p));
        }
    }
    if let Some(from) = c.env_from.as_ref().filter(|f| !f.is_empty()) {
        out.push_str("    Environment Variables from:\n");
        for f in from {
            let prefix = f
                .prefix
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(|p| format!(" with prefix '{p}'"))
                .unwrap_or_default();
            if let Some(cm) = &f.config_map_ref {
                let _ = writeln!(
                    out,
                    "      {}\tConfigMap{prefix}\tOptional: {}",
                    cm.name,
                    cm.optional.unwrap_or(false)
                );
            } else if let Some(s) = &f.secret_ref {
                let _ = writeln!(
                    out,
                    "      {}\tSecret{prefix}\tOptional: {}",
                    s.name,
                    s.optional.unwrap_or(false)
                );
            }
        }
    }
    let env = c.env.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "    Environment:{}",
        if env.is_empty() { "\t<none>" } else { "" }
    );
    for e in &env {
        match &e.value_from {
            None => {
                for (i, line) in e.value.clone().unwrap_or_default().split('\n').enumerate() {
                    if i == 0 {
                        let _ = writeln!(out, "      {}:\t{line}", e.name);
                    } else {
                        let _ = writeln!(out, "      \t{line}");
                    }
                }
            }
            Some(v) => {
                if let Some(f) = &v.field_ref {
                    let api = f.api_version.clone().unwrap_or_else(|| "v1".into());
                    let _ = writeln!(out, "      {}:\t ({api}:{})", e.name, f.field_path);
                } else if let Some(r) = &v.resource_field_ref {
                    let _ = writeln!(out, "      {}:\t ({})", e.name, r.resource);
                } else if let Some(s) = &v.secret_key_ref {
                    let _ = writeln!(
                        out,
                        "      {}:\t<set to the key '{}' in secret '{}'>\tOptional: {}",
                        e.name,
                        s.key,
                        s.name,
                        s.optional.unwrap_or(false)
                    );
                } else if let Some(c) = &v.config_map_key_ref {
                    let _ = writeln!(
                        out,
                        "      {}:\t<set to the key '{}' of config map '{}'>\tOptional: {}",
                        e.name,
                        c.key,
                        c.name,
                        c.optional.unwrap_or(false)
                    );
                }
            }
        }
    }
    let mut mounts = c.volume_mounts.clone().unwrap_or_default();
    mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
    let _ = writeln!(
        out,
        "    Mounts:{}",
        if mounts.is_empty() { "\t<none>" } else { "" }
    );
    for m in &mounts {
        let mut flags = vec![if m.read_only.unwrap_or(false) {
            "ro".to_string()
        } else {
            "rw".to_string()
        }];
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            flags.push(format!("path={sub:?}"));
        }
        let _ = writeln!(
            out,
            "      {} from {} ({})",
            m.mount_path,
            m.name,
            flags.join(",")
        );
    }
}

fn containers(
    out: &mut String,
    title: &str,
    list: &[Container],
    statuses: Option<&Vec<ContainerStatus>>,
) {
    let _ = writeln!(out, "{title}:");
    for c in list {
        let s = statuses.and_then(|s| s.iter().find(|s| s.name == c.name));
        container(out, c, s);
    }
}

fn volumes(out: &mut String, list: Option<&Vec<Volume>>) {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        out.push_str("Volumes:\t<none>\n");
        return;
    };
    out.push_str("Volumes:\n");
    for v in list {
        let _ = writeln!(out, "  {}:", v.name);
        if let Some(h) = &v.host_path {
            let _ = writeln!(
                out,
                "    Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}",
                h.path,
                h.type_.clone().unwrap_or_default()
            );
        } else if let Some(e) = &v.empty_dir {
            let size = e
                .size_limit
                .as_ref()
                .map(|q| q.0.clone())
                .filter(|q| !q.is_empty() && q != "0")
                .unwrap_or_else(|| "<unset>".into());
            let _ = writeln!(
                out,
                "    Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}",
                e.medium.clone().unwrap_or_default()
            );
        } else if let Some(s) = &v.secret {
            let _ = writeln!(
                out,
                "    Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}",
                s.secret_name.clone().unwrap_or_default(),
                s.optional.unwrap_or(false)
            );
        } else if let Some(c) = &v.config_map {
            let _ = writeln!(
                out,
                "    Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}",
                c.name,
                c.optional.unwrap_or(false)
            );
        } else {
            out.push_str("  <unknown>\n");
        }
    }
}

fn since(t: i64, now: Timestamp) -> String {
    if t == 0 {
        return "<unknown>".into();
    }
    human_duration(SignedDuration::from_secs(now.as_second() - t))
}

/// The Events table (aligned on its own, as kubectl flushes before it).
pub fn events(list: &[corral::Event], now: Timestamp) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut sorted = list.to_vec();
    sorted.sort_by_key(|e| e.last_timestamp);
    let mut out = String::from(
        "Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n",
    );
    for e in &sorted {
        let first = since(e.first_timestamp, now);
        let age = if e.count > 1 {
            format!(
                "{} (x{} over {first})",
                since(e.last_timestamp, now),
                e.count
            )
        } else {
            first
        };
        let _ = writeln!(
            out,
            "  {}\t{}\t{age}\t{}\t{}",
            e.r#type,
            e.reason,
            e.source,
            e.message.trim()
        );
    }
    align(&out)
}

/// `kubectl describe pod` of `pod` with `events`.
pub fn describe_pod(pod: &Pod, evs: &[corral::Event], now: Timestamp) -> String {
    let m = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "Name:\t{}", m.name.clone().unwrap_or_default());
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        m.namespace.clone().unwrap_or_default()
    );
    let _ = writeln!(out, "Priority:\t{}", spec.priority.unwrap_or(0));
    if let Some(p) = spec
        .priority_class_name
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let _ = writeln!(out, "Priority Class Name:\t{p}");
    }
    if let Some(r) = spec.runtime_class_name.as_deref() {
        let _ = writeln!(out, "Runtime Class Name:\t{r}");
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        let _ = writeln!(out, "Service Account:\t{sa}");
    }
    match spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        None => out.push_str("Node:\t<none>\n"),
        Some(n) => {
            let _ = writeln!(
                out,
                "Node:\t{n}/{}",
                status.host_ip.clone().unwrap_or_default()
            );
        }
    }
    if let Some(t) = &status.start_time {
        let _ = writeln!(out, "Start Time:\t{}", rfc1123z(t));
    }
    multiline_map(&mut out, "Labels", m.labels.as_ref(), "=");
    annotations(&mut out, m.annotations.as_ref());
    if let Some(t) = &m.deletion_timestamp {
        let _ = writeln!(
            out,
            "Status:\tTerminating (lasts {})",
            human_duration(now.duration_since(t.0))
        );
        let _ = writeln!(
            out,
            "Termination Grace Period:\t{}s",
            m.deletion_grace_period_seconds.unwrap_or(0)
        );
    } else {
        let _ = writeln!(out, "Status:\t{}", status.phase.clone().unwrap_or_default());
    }
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "Reason:\t{r}");
    }
    if let Some(msg) = status.message.as_deref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "Message:\t{msg}");
    }
    let _ = writeln!(out, "IP:\t{}", status.pod_ip.clone().unwrap_or_default());
    match status.pod_ips.as_ref().filter(|i| !i.is_empty()) {
        None => out.push_str("IPs:\t<none>\n"),
        Some(ips) => {
            out.push_str("IPs:\n");
            for ip in ips {
                let _ = writeln!(out, "  IP:\t{}", ip.ip);
            }
        }
    }
    if let Some(init) = spec.init_containers.as_ref().filter(|i| !i.is_empty()) {
        containers(
            &mut out,
            "Init Containers",
            init,
            status.init_container_statuses.as_ref(),
        );
    }
    containers(
        &mut out,
        "Containers",
        &spec.containers,
        status.container_statuses.as_ref(),
    );
    if let Some(conds) = status.conditions.as_ref().filter(|c| !c.is_empty()) {
        out.push_str("Conditions:\n  Type\tStatus\n");
        for c in conds {
            let _ = writeln!(out, "  {} \t{} ", c.type_, c.status);
        }
    }
    volumes(&mut out, spec.volumes.as_ref());
    let qos = status
        .qos_class
        .clone()
        .unwrap_or_else(|| corral_kube::quantity::qos_class(pod).as_str().to_string());
    let _ = writeln!(out, "QoS Class:\t{qos}");
    multiline_map(&mut out, "Node-Selectors", spec.node_selector.as_ref(), "=");
    out.push_str("Tolerations:\t");
    match spec.tolerations.as_ref().filter(|t| !t.is_empty()) {
        None => out.push_str("<none>\n"),
        Some(ts) => {
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    out.push('\t');
                }
                let key = t.key.clone().unwrap_or_default();
                let value = t.value.clone().unwrap_or_default();
                let effect = t.effect.clone().unwrap_or_default();
                out.push_str(&key);
                if !value.is_empty() {
                    let _ = write!(out, "={value}");
                }
                if !effect.is_empty() {
                    let _ = write!(out, ":{effect}");
                }
                if t.operator.as_deref() == Some("Exists") && value.is_empty() {
                    out.push_str(if key.is_empty() && effect.is_empty() {
                        "op=Exists"
                    } else {
                        " op=Exists"
                    });
                }
                if let Some(s) = t.toleration_seconds {
                    let _ = write!(out, " for {s}s");
                }
                out.push('\n');
            }
        }
    }
    if evs.is_empty() {
        out.push_str("Events:\t<none>\n");
        return align(&out);
    }
    let mut text = align(&out);
    text.push_str(&events(evs, now));
    text
}

pub async fn describe(cri: &Cri, args: DescribeArgs) -> anyhow::Result<()> {
    let (kind, name) = Kind::parse_ref(&args.resource)?;
    if kind != Kind::Pod {
        return Err(KubeError::local("describe supports pods only").into());
    }
    let mut names: Vec<String> = name.into_iter().collect();
    names.extend(args.names.iter().cloned());
    if names.is_empty() {
        return Err(KubeError::local("describe needs a pod name").into());
    }
    let namespace = super::namespace_or_default(args.namespace.as_deref());
    let mut client = cri.kube().await?;
    for (i, name) in names.iter().enumerate() {
        let get = corral::GetRequest {
            kind: "Pod".into(),
            namespace: namespace.clone(),
            name: name.clone(),
            ..Default::default()
        };
        let target = Some((Kind::Pod, name.as_str()));
        let resp = cri
            .call("Get", Deadline::Call, get, |r| client.get(r))
            .await
            .map_err(|e| KubeError::from_rpc(e, target))?;
        let Some(bytes) = resp.objects.first() else {
            return Err(KubeError::not_found(Kind::Pod, name).into());
        };
        let corral_kube::Object::Pod(pod) = decode(bytes)? else {
            return Err(KubeError::local("the server sent something else than a pod").into());
        };
        let object = corral::ObjectRef {
            kind: "Pod".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let evs = cri
            .call(
                "Events",
                Deadline::Call,
                corral::EventsRequest {
                    object: Some(object),
                },
                |r| client.events(r),
            )
            .await
            .map_err(|e| KubeError::from_rpc(e, target))?;
        if i > 0 {
            println!();
            println!();
        }
        print!("{}", describe_pod(&pod, &evs.events, super::now()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
