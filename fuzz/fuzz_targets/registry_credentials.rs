//! The registry credentials file (Docker's `config.json` shape) as images/src/auth.rs reads it:
//! the file is written to a temporary path and looked up for a few hosts, as a pull does.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use corral_images::CredentialsFile;
use libfuzzer_sys::fuzz_target;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corral-fuzz-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        dir.join("config.json")
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(path(), data).expect("write the credentials file");
    let file = CredentialsFile {
        path: Some(path().clone()),
    };
    for host in ["docker.io", "registry.example:5000", "127.0.0.1:5000"] {
        if let Ok(Some(creds)) = file.lookup(host) {
            let _ = (format!("{creds:?}"), creds.is_empty());
        }
    }
});
