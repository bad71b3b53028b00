//! A registry's `hosts.toml` (containerd's format) as images/src/hosts.rs parses it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/corral/certs.d/registry.example/hosts.toml");
    if let Ok(endpoints) = corral_images::hosts::parse(path, text, "registry.example:5000") {
        // The upstream always comes last.
        assert!(endpoints.last().is_some_and(|e| !e.is_mirror));
        for e in &endpoints {
            let _ = (e.api_base(), e.authority());
        }
    }
});
