//! A pod subnet of the built-in network: its gateway (the first address, on the bridge) and
//! the addresses pods may get (the rest, apart from IPv4's broadcast address).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits zero).
    base: u128,
    prefix: u8,
    v6: bool,
}

impl Subnet {
    fn bits(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    fn addr(&self, n: u128) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(n))
        } else {
            IpAddr::V4(Ipv4Addr::from(n as u32))
        }
    }

    fn host_count(&self) -> u128 {
        let host_bits = u32::from(self.bits() - self.prefix);
        1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// The bridge's address, the pods' default gateway: the first address of the subnet.
    pub fn gateway(&self) -> IpAddr {
        self.addr(self.base + 1)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let n = match (ip, self.v6) {
            (IpAddr::V4(a), false) => u128::from(u32::from(a)),
            (IpAddr::V6(a), true) => u128::from(a),
            _ => return false,
        };
        n >= self.base && n - self.base < self.host_count()
    }

    /// The pod addresses in host-local's order: the one after `last` first, wrapping round,
    /// each once. The network address, the gateway and IPv4's broadcast are never given.
    pub fn hosts_after(&self, last: Option<IpAddr>) -> impl Iterator<Item = IpAddr> + '_ {
        let count = self.host_count();
        // Offsets 2 ..= end.
        let end = if self.v6 { count - 1 } else { count - 2 };
        let usable = end.saturating_sub(1);
        let start = last
            .filter(|ip| self.contains(*ip))
            .map(|ip| offset(ip) - self.base)
            .filter(|o| (2..=end).contains(o))
            .map_or(2, |o| if o == end { 2 } else { o + 1 });
        (0..usable).map(move |i| {
            let o = 2 + (start - 2 + i) % usable;
            self.addr(self.base + o)
        })
    }
}

fn offset(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl FromStr for Subnet {
    type Err = String;

    /// A checked CIDR (`corral_cni::config::check_subnet`); host bits are cleared.
    fn from_str(s: &str) -> Result<Subnet, String> {
        let s = corral_cni::config::check_subnet(s)?;
        let (addr, prefix) = s.split_once('/').unwrap_or((&s, "0"));
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?}: bad address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| format!("{s:?}: bad prefix"))?;
        let v6 = addr.is_ipv6();
        let bits = if v6 { 128 } else { 32 };
        let mask = if prefix == 0 {
            0
        } else {
            (u128::MAX << (128 - u32::from(prefix))) >> (128 - bits)
        };
        Ok(Subnet {
            base: offset(addr) & mask,
            prefix,
            v6,
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(self.base), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(s: &Subnet, last: Option<&str>) -> Vec<String> {
        s.hosts_after(last.map(|l| l.parse().unwrap()))
            .map(|ip| ip.to_string())
            .collect()
    }

    #[test]
    fn gateway_hosts_and_wrapping() {
        let s: Subnet = "10.1.2.9/29".parse().unwrap();
        assert_eq!(s.to_string(), "10.1.2.8/29");
        assert_eq!(s.gateway().to_string(), "10.1.2.9");
        let all = [
            "10.1.2.10",
            "10.1.2.11",
            "10.1.2.12",
            "10.1.2.13",
            "10.1.2.14",
        ];
        assert_eq!(ips(&s, None), all);
        assert_eq!(
            ips(&s, Some("10.1.2.12")),
            [
                "10.1.2.13",
                "10.1.2.14",
                "10.1.2.10",
                "10.1.2.11",
                "10.1.2.12"
            ]
        );
        assert_eq!(ips(&s, Some("10.1.2.14")), all);
        assert_eq!(ips(&s, Some("10.9.9.9")), all);
        assert!(s.contains("10.1.2.15".parse().unwrap()));
        assert!(!s.contains("10.1.2.16".parse().unwrap()));
        let v6: Subnet = "fd00::/64".parse().unwrap();
        assert_eq!(v6.gateway().to_string(), "fd00::1");
        assert_eq!(v6.hosts_after(None).next().unwrap().to_string(), "fd00::2");
        assert!(!v6.contains("10.1.2.10".parse().unwrap()));
    }
}
