//! Netlink connections for the built-in network: one in corrald's own network namespace, and
//! one opened inside a pod's.
//!
//! A netlink socket acts in the namespace of the thread that created it, for its whole life.
//! So the pod's socket is created on a short-lived std thread that `setns`es into the pod's
//! (pinned) namespace and exits: no tokio worker ever changes namespace. The socket is then
//! driven by tokio like the host's.

use std::os::fd::AsFd as _;
use std::path::Path;

use rtnetlink::Handle;

/// A connection to the kernel's routing netlink, its driver running on tokio until the
/// handle is dropped.
pub fn connect() -> Result<Handle, String> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| format!("netlink: {e}"))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A connection whose socket lives in the network namespace pinned at `netns`.
pub async fn connect_in(netns: &Path) -> Result<Handle, String> {
    let ns = std::fs::File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    let runtime = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let what = netns.display().to_string();
    std::thread::Builder::new()
        .name("netns-socket".into())
        .spawn(move || {
            let made = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {what}: {e}"))
                .and_then(|()| {
                    // The socket registers with tokio's reactor, which needs its context.
                    let _rt = runtime.enter();
                    rtnetlink::new_connection().map_err(|e| format!("netlink in {what}: {e}"))
                });
            let _ = tx.send(made);
        })
        .map_err(|e| format!("thread for {}: {e}", netns.display()))?;
    let (conn, handle, _) = rx.await.map_err(|_| "the netns thread died".to_owned())??;
    tokio::spawn(conn);
    Ok(handle)
}

/// The errno of a netlink error, if it is one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The index of the link called `name`, `None` when there is none.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, String> {
    use futures::TryStreamExt as _;
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(format!("link {name}: {e}")),
    }
}

/// Adds `ip/prefix` to link `index`; an address already there is success.
pub async fn add_address(
    handle: &Handle,
    index: u32,
    ip: std::net::IpAddr,
    prefix: u8,
) -> Result<(), String> {
    match handle.address().add(index, ip, prefix).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(format!("address {ip}/{prefix}: {e}")),
    }
}
