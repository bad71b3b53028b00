//! IP reservations of the built-in network, kept on disk in host-local's layout
//! (`<data_dir>/<network>/<ip>` holding `<pod id>\r\n<ifname>`, `last_reserved_ip.<range>`, a
//! `lock` file taken with `flock`), so reservations that earlier versions made through the
//! host-local plugin stay honoured and a DEL through the plugin still finds ours.
//!
//! A reservation file appears whole: it is written under a temporary name (`.tmp-<ip>`) and
//! hard-linked to its address's name, which fails if the address is taken (the `O_EXCL` of a
//! file that already has its owner in it). A file created empty and then written, as
//! host-local does, named no owner if corrald was killed in between, and no DEL ever released
//! it (found by the fault test). A leftover temporary, and an empty reservation an older
//! version left, are removed under the lock. It survives a restart of corrald (the page cache
//! outlives the process; a machine crash takes the pods with it, and their DEL releases by pod
//! ID, so a stale file never frees another pod's address). Release is by pod ID.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::Subnet;

/// host-local's separator between the pod ID and the interface name.
const LINE_BREAK: &str = "\r\n";

/// Why a reservation failed.
#[derive(Debug, PartialEq)]
pub enum ReserveError {
    /// A subnet has no free address.
    Full(String),
    /// The directory could not be read or written.
    Io(String),
}

/// The reservation directory of one network.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path, network: &str) -> Store {
        Store {
            dir: data_dir.join(network),
        }
    }

    fn lock(&self) -> std::io::Result<nix::fcntl::Flock<File>> {
        std::fs::create_dir_all(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))
    }

    /// Reserves one address of each subnet for pod `id`, the next free one after the last
    /// reserved (host-local's round robin). Each pod's ADD runs once (a failed one releases
    /// what it took), so the directory is not scanned for an address `id` already holds:
    /// host-local does, which makes every ADD read every reservation.
    pub fn reserve(
        &self,
        subnets: &[Subnet],
        id: &str,
        ifname: &str,
    ) -> Result<Vec<IpAddr>, ReserveError> {
        let io = ReserveError::Io;
        let _lock = self.lock().map_err(|e| io(self.err("lock", e)))?;
        let owner = format!("{id}{LINE_BREAK}{ifname}");
        let mut out: Vec<IpAddr> = Vec::with_capacity(subnets.len());
        for (range, subnet) in subnets.iter().enumerate() {
            let last_file = self.dir.join(format!("last_reserved_ip.{range}"));
            let last = std::fs::read_to_string(&last_file)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .filter(|ip| subnet.contains(*ip));
            let mut found = None;
            let tmp = self.dir.join(format!(".tmp-{range}"));
            let written = std::fs::remove_file(&tmp)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .and_then(|()| {
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&tmp)?
                        .write_all(owner.as_bytes())
                });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                for ip in &out {
                    let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
                }
                return Err(io(self.err(".tmp", e)));
            }
            for ip in subnet.hosts_after(last) {
                let path = self.dir.join(ip.to_string());
                match std::fs::hard_link(&tmp, &path) {
                    Ok(()) => {
                        found = Some(ip);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // An empty reservation is an older version's interrupted write: it
                        // names no owner, so nothing else would ever free it.
                        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0)
                            && std::fs::remove_file(&path).is_ok()
                            && std::fs::hard_link(&tmp, &path).is_ok()
                        {
                            found = Some(ip);
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        for ip in &out {
                            let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
                        }
                        return Err(io(self.err(&ip.to_string(), e)));
                    }
                }
            }
            let _ = std::fs::remove_file(&tmp);
            let Some(ip) = found else {
                // Give back what this call took in the other subnets.
                for ip in &out {
                    let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
                }
                return Err(ReserveError::Full(format!(
                    "no free address left in {subnet}"
                )));
            };
            let _ = std::fs::write(&last_file, ip.to_string());
            out.push(ip);
        }
        Ok(out)
    }

    /// Every reservation whose owner is `id`.
    fn owned_by(&self, id: &str) -> Vec<(IpAddr, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let ip = e.file_name().to_str()?.parse::<IpAddr>().ok()?;
                let path = e.path();
                owns(&path, id).then_some((ip, path))
            })
            .collect()
    }

    /// Releases what pod `id` holds: the files of `known` when the caller knows its
    /// addresses, else every file naming it. Releasing nothing is success.
    pub fn release(&self, id: &str, known: &[IpAddr]) -> Result<(), String> {
        if !self.dir.exists() {
            return Ok(());
        }
        let _lock = self.lock().map_err(|e| self.err("lock", e))?;
        let files: Vec<PathBuf> = if known.is_empty() {
            self.owned_by(id).into_iter().map(|(_, p)| p).collect()
        } else {
            known
                .iter()
                .map(|ip| self.dir.join(ip.to_string()))
                .filter(|p| owns(p, id))
                .collect()
        };
        for path in files {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(())
    }

    fn err(&self, what: &str, e: std::io::Error) -> String {
        format!("IP reservations {}/{what}: {e}", self.dir.display())
    }
}

/// Whether the reservation file at `path` names pod `id` (host-local writes `id\r\nifname`;
/// versions before 0.8 wrote the ID alone).
fn owns(path: &Path, id: &str) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|text| text.trim().split(LINE_BREAK).next().map(str::trim) == Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    #[test]
    fn reserves_round_robin_and_releases_by_id() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path(), "corral");
        let nets = [subnet("10.1.2.0/29")];
        let a = store.reserve(&nets, "a", "eth0").unwrap();
        assert_eq!(a, ["10.1.2.2".parse::<IpAddr>().unwrap()]);
        let text = std::fs::read_to_string(d.path().join("corral/10.1.2.2")).unwrap();
        assert_eq!(text, "a\r\neth0");
        let b = store.reserve(&nets, "b", "eth0").unwrap();
        assert_eq!(b, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        store.release("a", &[]).unwrap();
        // Round robin: after .3 comes .4, not the freed .2.
        let c = store.reserve(&nets, "c", "eth0").unwrap();
        assert_eq!(c, ["10.1.2.4".parse::<IpAddr>().unwrap()]);
        // Another pod's file is never released.
        store.release("x", &b).unwrap();
        assert!(d.path().join("corral/10.1.2.3").exists());
        store.release("b", &b).unwrap();
        assert!(!d.path().join("corral/10.1.2.3").exists());
        // An old host-local file with the ID alone.
        std::fs::write(d.path().join("corral/10.1.2.6"), "old").unwrap();
        store.release("old", &[]).unwrap();
        assert!(!d.path().join("corral/10.1.2.6").exists());
    }

    #[test]
    fn a_reservation_appears_whole_and_an_empty_one_is_reclaimed() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path(), "corral");
        let nets = [subnet("10.1.2.0/29")];
        // What a kill between create and write left with the old code: a file naming nobody.
        std::fs::create_dir_all(d.path().join("corral")).unwrap();
        std::fs::write(d.path().join("corral/10.1.2.2"), "").unwrap();
        // A temporary of a killed reservation.
        std::fs::write(d.path().join("corral/.tmp-0"), "dead\r\neth0").unwrap();
        let a = store.reserve(&nets, "a", "eth0").unwrap();
        assert_eq!(a, ["10.1.2.2".parse::<IpAddr>().unwrap()]);
        let text = std::fs::read_to_string(d.path().join("corral/10.1.2.2")).unwrap();
        assert_eq!(text, "a\r\neth0");
        assert!(!d.path().join("corral/.tmp-0").exists());
        store.release("a", &[]).unwrap();
        assert!(!d.path().join("corral/10.1.2.2").exists());
    }

    #[test]
    fn a_full_subnet_is_an_error_and_keeps_nothing() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path(), "n");
        let nets = [subnet("10.1.2.0/30"), subnet("10.9.0.0/30")];
        // /30: .1 is the gateway, .2 the only pod address.
        store.reserve(&nets[..1], "a", "eth0").unwrap();
        let full = ReserveError::Full("no free address left in 10.1.2.0/30".into());
        assert_eq!(store.reserve(&nets, "b", "eth0").unwrap_err(), full);
        assert_eq!(
            store.reserve(&[nets[1], nets[0]], "b", "eth0").unwrap_err(),
            full
        );
        assert!(!d.path().join("n/10.9.0.2").exists());
    }
}
