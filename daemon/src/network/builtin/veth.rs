//! A pod's veth pair: the host end on the bridge, the other made directly inside the pod's
//! network namespace as `eth0` (one netlink request, so no moment exists where the pod's end
//! is on the host), then given the pod's addresses and default routes from inside.
//!
//! Nothing here is ever deleted: the pod's end lives in the namespace, and when the last
//! reference to the namespace goes (the pin, at StopPodSandbox) the kernel removes the pair.
//! DEL only takes the host end down, so a released address is not answered by a pod still
//! being torn down.

use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use futures::TryStreamExt as _;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::Subnet;
use super::netlink::{add_address, connect_in, errno, link_index};

/// The host end's name for a pod: `veth` and the start of the pod ID (IFNAMSIZ is 16).
pub fn host_name(pod_id: &str) -> String {
    let id: String = pod_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(11)
        .collect();
    format!("veth{id}")
}

/// Makes the pair, the host end `host` up on bridge `bridge`, the pod's end `ifname` (down) in
/// the namespace at `netns`.
pub async fn create(
    handle: &Handle,
    host: &str,
    bridge: u32,
    netns: &Path,
    ifname: &str,
) -> Result<(), String> {
    let ns = std::fs::File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    // Down: a veth end cannot open before the kernel has paired it (ENOTCONN), which is
    // after the peer is configured; it is brought up from inside the namespace.
    let peer = LinkUnspec::new_with_name(ifname)
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_owned())
        .controller(bridge)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| format!("veth {host}: {e}"))?;
    drop(ns);
    // Traffic a pod sends to its own service or host port comes back through its own port.
    let hairpin = format!("/sys/class/net/{host}/brport/hairpin_mode");
    std::fs::write(&hairpin, "1").map_err(|e| format!("{hairpin}: {e}"))
}

/// Inside the pod's namespace: `ifname` up with `ips` (one per subnet, in order), and a
/// default route per family through the subnet's gateway.
pub async fn configure_pod_end(
    netns: &Path,
    ifname: &str,
    subnets: &[Subnet],
    ips: &[IpAddr],
) -> Result<(), String> {
    let handle = connect_in(netns).await?;
    let index = link_index(&handle, ifname)
        .await?
        .ok_or_else(|| format!("{ifname} not found in {}", netns.display()))?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| format!("{ifname} up: {e}"))?;
    for (s, ip) in subnets.iter().zip(ips) {
        add_address(&handle, index, *ip, s.prefix()).await?;
    }
    for s in subnets {
        let route = match s.gateway() {
            IpAddr::V4(gw) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
        };
        match handle.route().add(route).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("default route via {}: {e}", s.gateway())),
        }
    }
    Ok(())
}

/// Deletes the pair by its host end, if it exists: for undoing a failed RunPodSandbox, whose
/// caller must leave nothing behind when it answers. (10-20 ms here: the kernel waits for an
/// RCU grace period; a stopped pod's pair goes with its namespace instead.)
pub async fn delete(handle: &Handle, host: &str) -> Result<(), String> {
    let Some(index) = link_index(handle, host).await? else {
        return Ok(());
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(format!("veth {host} delete: {e}")),
    }
}

/// Takes the host end down, if it exists. Its namespace's end, and so the pair, goes when
/// the namespace does.
pub async fn take_down(handle: &Handle, host: &str) -> Result<(), String> {
    let mut links = handle.link().get().match_name(host.to_owned()).execute();
    let index = match links.try_next().await {
        Ok(Some(link)) => link.header.index,
        Ok(None) => return Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => return Ok(()),
        Err(e) => return Err(format!("link {host}: {e}")),
    };
    match handle
        .link()
        .set(LinkUnspec::new_with_index(index).down().build())
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(format!("veth {host} down: {e}")),
    }
}
