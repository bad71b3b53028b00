//! The built-in network's bridge on the host: made when missing, up, holding each subnet's
//! gateway address. What was checked is remembered by the bridge's index, so a bridge
//! removed and made again (by someone else, or by us after that) is set up again.

use std::collections::HashSet;
use std::sync::Mutex;

use rtnetlink::{Handle, LinkBridge};

use super::Subnet;
use super::netlink::{add_address, errno, link_index};

/// Bridges (by index) known to carry their gateway addresses.
#[derive(Default)]
pub struct Bridges {
    ready: Mutex<HashSet<(u32, String)>>,
}

impl Bridges {
    /// The index of bridge `name`, made and given the gateways of `subnets` if needed.
    pub async fn ensure(
        &self,
        handle: &Handle,
        name: &str,
        subnets: &[Subnet],
    ) -> Result<u32, String> {
        let index = match link_index(handle, name).await? {
            Some(i) => i,
            None => {
                match handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute()
                    .await
                {
                    Ok(()) => {}
                    // Made by a concurrent ADD.
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => return Err(format!("bridge {name}: {e}")),
                }
                link_index(handle, name)
                    .await?
                    .ok_or_else(|| format!("bridge {name} vanished after it was made"))?
            }
        };
        let key = (
            index,
            subnets.iter().map(|s| format!("{s} ")).collect::<String>(),
        );
        if crate::sync::lock(&self.ready).contains(&key) {
            return Ok(index);
        }
        // Up (a bridge we did not make may be down), then the gateways.
        handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| format!("bridge {name} up: {e}"))?;
        for s in subnets {
            add_address(handle, index, s.gateway(), s.prefix()).await?;
        }
        enable_forwarding(subnets)?;
        crate::sync::lock(&self.ready).insert(key);
        Ok(index)
    }
}

/// Pods reach beyond the bridge only if the host forwards (as the bridge plugin's
/// `isGateway` does).
fn enable_forwarding(subnets: &[Subnet]) -> Result<(), String> {
    for s in subnets {
        let path = if s.is_ipv6() {
            "/proc/sys/net/ipv6/conf/all/forwarding"
        } else {
            "/proc/sys/net/ipv4/ip_forward"
        };
        if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
            continue;
        }
        std::fs::write(path, "1").map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
