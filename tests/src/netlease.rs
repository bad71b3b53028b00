//! A pod network of its own for each test daemon: a bridge name and a /24 subnet that no other
//! test daemon on this machine holds (a lock file per index, held while the lease lives), with
//! forwarding out of the subnet dropped so test traffic never leaves the machine. On drop the
//! bridge, the rule, and every rule naming the subnet (the built-in network's masquerade
//! rules, which corrald keeps as long as the bridge) are removed.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

/// Where the per-index lock files live.
const LOCK_DIR: &str = "/tmp/corral-test-nets";
/// Leases are `10.217.<index>.0/24` on bridge `crlt<index>`.
const SUBNET_PREFIX: &str = "10.217";

/// A leased bridge and subnet.
pub struct NetLease {
    pub bridge: String,
    pub subnet: String,
    _lock: nix::fcntl::Flock<File>,
}

impl NetLease {
    pub fn acquire() -> Result<NetLease> {
        std::fs::create_dir_all(LOCK_DIR)?;
        for index in 0..=255u16 {
            let file = File::create(Path::new(LOCK_DIR).join(format!("{index}.lock")))?;
            let Ok(lock) =
                nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            else {
                continue;
            };
            let lease = NetLease {
                bridge: format!("crlt{index}"),
                subnet: format!("{SUBNET_PREFIX}.{index}.0/24"),
                _lock: lock,
            };
            // A bridge or rules left by a test process that was killed.
            lease.remove_bridge();
            lease.sweep_rules();
            lease.sweep_v6_rules();
            iptables(&lease.forward_rule("-D"));
            if !iptables(&lease.forward_rule("-I")) {
                bail!("iptables: cannot add the FORWARD rule for {}", lease.subnet);
            }
            return Ok(lease);
        }
        bail!("all 256 test networks are in use")
    }

    fn forward_rule(&self, op: &str) -> Vec<String> {
        [
            "-w",
            op,
            "FORWARD",
            "-s",
            &self.subnet,
            "!",
            "-d",
            &self.subnet,
            "-m",
            "comment",
            "--comment",
            "corral-test",
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// Removes ip6tables rules naming the IPv6 subnet tests pair with this lease
    /// (`fd17:<index>::/64`): the built-in network's masquerade rule for it.
    fn sweep_v6_rules(&self) {
        let index = self.bridge.trim_start_matches("crlt");
        // As ip6tables prints it (`fd17::` for index 0), which no other index's contains.
        let Ok(net) = format!("fd17:{index}::").parse::<std::net::Ipv6Addr>() else {
            return;
        };
        let prefix = net.to_string();
        let Ok(out) = Command::new("ip6tables-save").args(["-t", "nat"]).output() else {
            return;
        };
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if l.starts_with("-A ") && l.contains(&prefix) {
                // `-A CHAIN rule...` → `-D CHAIN rule...`; iptables-save's quoting is for a shell.
                let script = format!("*nat\n-D{}\nCOMMIT\n", &l[2..]);
                if let Ok(mut child) = Command::new("ip6tables-restore")
                    .args(["-w", "--noflush"])
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                {
                    if let Some(mut stdin) = child.stdin.take() {
                        use std::io::Write as _;
                        let _ = stdin.write_all(script.as_bytes());
                    }
                    let _ = child.wait();
                }
            }
        }
    }

    /// Removes iptables rules (nat and filter) naming an address of the subnet, and the `CNI-`
    /// chains holding such rules with every jump to them.
    fn sweep_rules(&self) {
        let prefix = self.subnet.trim_end_matches("0/24").to_owned();
        for table in ["nat", "filter"] {
            let Ok(out) = Command::new("iptables-save").args(["-t", table]).output() else {
                continue;
            };
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let rules: Vec<&str> = text.lines().filter(|l| l.starts_with("-A ")).collect();
            let chain_of = |l: &str| l.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut stale: Vec<String> = rules
                .iter()
                .filter(|l| l.contains(&prefix) && chain_of(l).starts_with("CNI-"))
                .map(|l| chain_of(l))
                .collect();
            stale.sort();
            stale.dedup();
            let mut script = format!("*{table}\n");
            for l in &rules {
                let target = l.rsplit(" -j ").next().unwrap_or("");
                let jumps_to_stale = stale.iter().any(|c| c == target.trim());
                let own = chain_of(l).starts_with("CNI-") && stale.contains(&chain_of(l));
                if !own && (jumps_to_stale || (l.contains(&prefix) && !l.contains("corral-test"))) {
                    script.push_str(&format!("-D{}\n", &l[2..]));
                }
            }
            for c in &stale {
                script.push_str(&format!("-F {c}\n-X {c}\n"));
            }
            script.push_str("COMMIT\n");
            if script.lines().count() > 2 {
                let child = Command::new("iptables-restore")
                    .args(["-w", "--noflush"])
                    .stdin(std::process::Stdio::piped())
                    .spawn();
                if let Ok(mut child) = child {
                    if let Some(mut stdin) = child.stdin.take() {
                        use std::io::Write as _;
                        let _ = stdin.write_all(script.as_bytes());
                    }
                    let _ = child.wait();
                }
            }
        }
    }

    fn remove_bridge(&self) {
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.bridge])
                .status();
        }
    }

    /// The interfaces attached to the bridge (the host ends of pod veths).
    pub fn bridge_ports(&self) -> Vec<String> {
        std::fs::read_dir(Path::new("/sys/class/net").join(&self.bridge).join("brif"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn iptables(args: &[String]) -> bool {
    Command::new("iptables")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for NetLease {
    fn drop(&mut self) {
        while iptables(&self.forward_rule("-D")) {}
        self.sweep_rules();
        self.sweep_v6_rules();
        self.remove_bridge();
    }
}
