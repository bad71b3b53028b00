//! `make install-files`: binaries, the systemd unit and a default config land where they
//! should, an existing config is kept, and systemd accepts the unit (`systemd-analyze verify`,
//! when installed). Installs under a temporary prefix, never into the system.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

fn install(prefix: &Path) -> Result<std::process::Output> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bins = corral_tests::daemon::corrald_bin();
    Ok(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&repo)
        .arg("install-files")
        .arg(format!("PREFIX={}", prefix.join("usr/local").display()))
        .arg(format!("SYSCONFDIR={}", prefix.join("etc").display()))
        .arg(format!(
            "BIN_DIR={}",
            bins.parent().unwrap_or(Path::new(".")).display()
        ))
        .output()?)
}

#[test]
fn make_install_files_puts_binaries_unit_and_config_in_place() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("corral-install-")
        .tempdir()?;
    let out = install(dir.path())?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bin in ["corrald", "corral-shim", "corralctl"] {
        assert!(
            dir.path().join("usr/local/bin").join(bin).is_file(),
            "{bin}"
        );
    }
    let unit_path = dir.path().join("etc/systemd/system/corrald.service");
    let unit = std::fs::read_to_string(&unit_path)?;
    for line in ["KillMode=process", "Delegate=yes", "Type=simple"] {
        assert!(unit.lines().any(|l| l == line), "{line} in\n{unit}");
    }
    let exec = format!(
        "ExecStart={}",
        dir.path().join("usr/local/bin/corrald").display()
    );
    assert!(unit.lines().any(|l| l == exec), "{exec} in\n{unit}");

    // The default config is the daemon's own defaults, and it loads.
    let config = dir.path().join("etc/corral/corrald.toml");
    let check = Command::new(corral_tests::daemon::corrald_bin())
        .arg("--config")
        .arg(&config)
        .arg("--print-config")
        .output()?;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(check.stdout, std::fs::read(&config)?);

    // A second install keeps a config the operator wrote.
    std::fs::write(&config, "root = \"/srv/corral\"\n")?;
    let out = install(dir.path())?;
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&config)?,
        "root = \"/srv/corral\"\n"
    );

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit_path)
            .output()?;
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    Ok(())
}
