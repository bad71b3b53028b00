//! Masquerading of pod traffic leaving the subnet: one rule per subnet, installed at the
//! first pod corrald attaches (checked with `-C` first, so a restart or a second daemon on
//! the same bridge does not add it twice) and left in place, as the bridge is. Its comment
//! names the bridge (`corral-net:<bridge>`). The bridge plugin instead made a chain and two
//! rules per pod, removed at each DEL.

use std::collections::HashSet;
use std::sync::Mutex;

use super::Subnet;
use super::iptables;

/// The comment on every rule shared by the pods of a bridge.
pub fn comment(bridge: &str) -> String {
    format!("corral-net:{bridge}")
}

/// Subnets whose rule this process has seen in place.
#[derive(Default)]
pub struct Masquerade {
    done: Mutex<HashSet<String>>,
}

impl Masquerade {
    pub async fn ensure(&self, bridge: &str, subnet: &Subnet) -> Result<(), String> {
        let key = format!("{bridge} {subnet}");
        if crate::sync::lock(&self.done).contains(&key) {
            return Ok(());
        }
        let net = subnet.to_string();
        let comment = comment(bridge);
        #[rustfmt::skip]
        let rule = [
            "-s", &net, "!", "-d", &net,
            "-m", "comment", "--comment", &comment,
            "-j", "MASQUERADE",
        ];
        iptables::ensure(subnet.is_ipv6(), "nat", "POSTROUTING", &rule).await?;
        crate::sync::lock(&self.done).insert(key);
        Ok(())
    }
}
