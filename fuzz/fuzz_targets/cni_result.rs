//! What CNI plugins print: a result (0.4 or 1.0) from which the pod's addresses are read
//! (cni/src/result.rs), and, through the same JSON reader, a network configuration list
//! (cni/src/config.rs).
#![no_main]

use std::path::Path;

use corral_cni::config::NetworkList;
use corral_cni::result::pod_ips;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let ips = pod_ips(&value, "eth0");
        // The primary address is IPv4 when there is one.
        if ips.iter().any(std::net::IpAddr::is_ipv4) {
            assert!(ips[0].is_ipv4());
        }
    }
    let _ = NetworkList::parse(data, Path::new("fuzz.conflist"));
});
