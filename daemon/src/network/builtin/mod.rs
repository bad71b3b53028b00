//! The built-in network, done in corrald over netlink instead of by CNI plugins: a bridge,
//! a veth pair per pod made straight into the pod's pinned network namespace, addresses and
//! default routes, IP reservations in host-local's on-disk layout, one masquerade rule per
//! subnet, DNAT rules only for pods with host ports, and the bandwidth plugin only for pods
//! with bandwidth annotations.
//!
//! ADD is all-or-nothing (a failure undoes what was done); DEL tolerates anything ADD never
//! made, so it serves a crash at any point of ADD. DEL never deletes the veth: the pair goes
//! with the pod's namespace, when its pin is removed right after DEL; DEL takes the host end
//! down so the released address stops being answered at once.

mod bandwidth;
mod bridge;
mod ipam;
mod iptables;
mod masq;
mod netlink;
mod ports;
mod subnet;
mod veth;

use std::net::IpAddr;
use std::path::PathBuf;

use corral_cni::{Attachment, Plugins};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use subnet::Subnet;

use super::{NetworkError, NetworkRecord};

/// What the built-in network is, as recorded with each attachment (its `network`), so DEL
/// works on what ADD used even if the configuration changed in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    /// The network's name: the reservation directory's name under `data_dir`.
    pub name: String,
    pub bridge: String,
    /// One per address family, checked CIDRs.
    pub subnets: Vec<String>,
    /// host-local's data directory (reservations live in `<data_dir>/<name>`).
    pub data_dir: PathBuf,
}

impl Params {
    fn parse(value: &Value) -> Result<Params, NetworkError> {
        serde_json::from_value(value.clone())
            .map_err(|e| NetworkError::Builtin(format!("recorded built-in network: {e}")))
    }

    fn subnets(&self) -> Result<Vec<Subnet>, NetworkError> {
        self.subnets
            .iter()
            .map(|s| s.parse().map_err(NetworkError::Builtin))
            .collect()
    }
}

/// The built-in network's process-wide state: what was already checked once.
pub struct Builtin {
    bridges: bridge::Bridges,
    masq: masq::Masquerade,
    ports: ports::HostPorts,
}

impl Builtin {
    pub fn new() -> Builtin {
        Builtin {
            bridges: Default::default(),
            masq: Default::default(),
            ports: Default::default(),
        }
    }

    /// Attaches the record's pod; on failure, undoes what was done before returning.
    pub async fn add(
        &self,
        plugins: &Plugins,
        rec: &mut NetworkRecord,
    ) -> Result<(), NetworkError> {
        let params = Params::parse(&rec.network)?;
        match self.try_add(plugins, &params, rec).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(undo) = self.undo(plugins, rec).await {
                    tracing::warn!(pod = %rec.attachment.container_id, error = %undo, "undoing a failed built-in network ADD");
                }
                Err(e)
            }
        }
    }

    /// Reserves the record's addresses (recorded in `rec.ips`), before its namespace exists:
    /// RunPodSandbox does it while the shim starts. Nothing is reserved on failure.
    pub async fn reserve(&self, rec: &mut NetworkRecord) -> Result<(), NetworkError> {
        let params = Params::parse(&rec.network)?;
        let subnets = params.subnets()?;
        let store = ipam::Store::new(&params.data_dir, &params.name);
        let (id, ifname) = (
            rec.attachment.container_id.clone(),
            rec.attachment.ifname.clone(),
        );
        rec.ips = tokio::task::spawn_blocking(move || store.reserve(&subnets, &id, &ifname))
            .await
            .map_err(|e| NetworkError::Builtin(e.to_string()))?
            .map_err(|e| match e {
                ipam::ReserveError::Full(m) => NetworkError::Exhausted(m),
                ipam::ReserveError::Io(m) => NetworkError::Builtin(m),
            })?;
        Ok(())
    }

    /// DEL for a pod whose RunPodSandbox fails: the veth is deleted now rather than left to
    /// the namespace, so nothing of the pod is on the host when the error is answered.
    pub async fn undo(&self, plugins: &Plugins, rec: &NetworkRecord) -> Result<(), NetworkError> {
        let deleted = match netlink::connect() {
            Ok(host) => veth::delete(&host, &veth::host_name(&rec.attachment.container_id)).await,
            Err(e) => Err(e),
        };
        let done = self.del(plugins, rec).await;
        deleted.map_err(NetworkError::Builtin)?;
        done
    }

    async fn try_add(
        &self,
        plugins: &Plugins,
        params: &Params,
        rec: &mut NetworkRecord,
    ) -> Result<(), NetworkError> {
        let subnets = params.subnets()?;
        let host = netlink::connect().map_err(NetworkError::Builtin)?;
        let bridge = self
            .bridges
            .ensure(&host, &params.bridge, &subnets)
            .await
            .map_err(NetworkError::Builtin)?;
        // Known from here (or from an earlier `reserve`), so an undo releases exactly these.
        if rec.ips.is_empty() {
            self.reserve(rec).await?;
        }
        let ips = rec.ips.clone();
        let att = &rec.attachment;
        let id = att.container_id.clone();
        let host_end = veth::host_name(&id);
        veth::create(&host, &host_end, bridge, &att.netns, &att.ifname)
            .await
            .map_err(NetworkError::Builtin)?;
        veth::configure_pod_end(&att.netns, &att.ifname, &subnets, &ips)
            .await
            .map_err(NetworkError::Builtin)?;
        for s in &subnets {
            self.masq
                .ensure(&params.bridge, s)
                .await
                .map_err(NetworkError::Builtin)?;
        }
        if let Some(pm) = att.runtime_config.get("portMappings") {
            self.ports
                .add(&params.bridge, &subnets, &id, &ips, pm)
                .await
                .map_err(NetworkError::Builtin)?;
        }
        let result = result(&host_end, att, &subnets, &ips);
        if bandwidth::wanted(att) {
            bandwidth::add(plugins, &params.name, att, &result).await?;
        }
        rec.result = result;
        Ok(())
    }

    /// Detaches the record's pod: whatever of ADD happened is undone, the rest is skipped.
    /// Every step runs; the first failure is returned.
    pub async fn del(&self, plugins: &Plugins, rec: &NetworkRecord) -> Result<(), NetworkError> {
        let params = Params::parse(&rec.network)?;
        let att = &rec.attachment;
        let id = &att.container_id;
        let mut first: Option<NetworkError> = None;
        if bandwidth::wanted(att) {
            let prev = (!rec.result.is_null()).then_some(&rec.result);
            if let Err(e) = bandwidth::del(plugins, &params.name, att, prev).await {
                first.get_or_insert(e);
            }
        }
        if att.runtime_config.contains_key("portMappings") {
            let v6 = params.subnets.iter().any(|s| s.contains(':'));
            if let Err(e) = self.ports.remove(id, v6).await {
                first.get_or_insert(NetworkError::Builtin(e));
            }
        }
        let down = match netlink::connect() {
            Ok(host) => veth::take_down(&host, &veth::host_name(id)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = down {
            first.get_or_insert(NetworkError::Builtin(e));
        }
        let store = ipam::Store::new(&params.data_dir, &params.name);
        let (id, known) = (id.clone(), rec.ips.clone());
        let released = tokio::task::spawn_blocking(move || store.release(&id, &known))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        if let Err(e) = released {
            first.get_or_insert(NetworkError::Builtin(e));
        }
        first.map_or(Ok(()), Err)
    }
}

/// The attachment as a CNI 1.0 result: what `network.json` shows, and the bandwidth plugin's
/// `prevResult` (it finds the host end there).
fn result(host_end: &str, att: &Attachment, subnets: &[Subnet], ips: &[IpAddr]) -> Value {
    let addrs: Vec<Value> = subnets
        .iter()
        .zip(ips)
        .map(|(s, ip)| {
            json!({
                "address": format!("{ip}/{}", s.prefix()),
                "gateway": s.gateway().to_string(),
                "interface": 1,
            })
        })
        .collect();
    let routes: Vec<Value> = subnets
        .iter()
        .map(|s| {
            let dst = if s.is_ipv6() { "::/0" } else { "0.0.0.0/0" };
            json!({ "dst": dst, "gw": s.gateway().to_string() })
        })
        .collect();
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            { "name": host_end },
            { "name": att.ifname, "sandbox": att.netns },
        ],
        "ips": addrs,
        "routes": routes,
        "dns": {},
    })
}
