//! corralctl against a real corrald: the image commands end to end.

use anyhow::Result;
use corral_tests::daemon::TestDaemon;
use corral_tests::fixtures::{ManifestFormat, busybox_image};
use corral_tests::registry::Registry;

fn corralctl() -> std::path::PathBuf {
    corral_tests::daemon::corrald_bin().with_file_name("corralctl")
}

fn run(d: &TestDaemon, args: &[&str]) -> Result<std::process::Output> {
    Ok(std::process::Command::new(corralctl())
        .arg("-r")
        .arg(format!("unix://{}", d.socket().display()))
        .args(args)
        .output()?)
}

#[tokio::test]
async fn pull_list_inspect_remove_with_corralctl() -> Result<()> {
    let reg = Registry::start().await?;
    let pushed = reg
        .client()
        .push_image(
            "cli/busybox",
            "1.36",
            &busybox_image()?,
            ManifestFormat::Oci,
        )
        .await?;
    let d = TestDaemon::start().await?;

    let out = run(&d, &["version"])?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("RuntimeName:  corral"));

    let out = run(&d, &["pull", &pushed.reference])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Image is up to date for {}", pushed.config_digest)
    );

    let out = run(&d, &["images"])?;
    let table = String::from_utf8_lossy(&out.stdout);
    let hex = pushed.config_digest.trim_start_matches("sha256:");
    assert!(
        table.contains(&format!("{}/cli/busybox", reg.addr())),
        "{table}"
    );
    assert!(
        table.contains("1.36") && table.contains(&hex[..13]),
        "{table}"
    );

    let out = run(&d, &["images", "-q"])?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pushed.config_digest
    );

    let out = run(&d, &["inspecti", &pushed.reference])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["status"]["id"], pushed.config_digest);
    assert_eq!(v["info"]["manifestDigest"], pushed.manifest_digest);

    let out = run(&d, &["imagefsinfo"])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(
        v["status"]["imageFilesystems"][0]["usedBytes"]["value"]
            .as_str()
            .is_some_and(|s| s != "0"),
        "{v}"
    );

    let out = run(&d, &["rmi", &pushed.reference])?;
    assert!(out.status.success());
    let out = run(&d, &["inspecti", &pushed.reference])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such image"));

    // Errors carry the gRPC code and exit non-zero.
    let out = run(&d, &["pull", "Not/Valid"])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InvalidArgument"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn info_shows_config_versions_cgroups_cni_and_features() -> Result<()> {
    let d = TestDaemon::start().await?;
    let out = run(&d, &["info"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(doc["config"]["root"], d.root().display().to_string());
    assert_eq!(doc["versions"]["corrald"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["cgroups"]["driver"], "cgroupfs");
    assert_eq!(doc["cgroups"]["root"], d.cgroup_root());
    // This machine is hybrid (see CRATES.md); any answer must be one of the three.
    let mode = doc["cgroups"]["mode"].as_str().unwrap_or_default();
    assert!(["v1", "hybrid", "v2"].contains(&mode), "{doc}");
    // Whether a cgroup mount has `favordynmods`, read here on our own.
    let favor = std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(|l| l.split_once(" - ").map(|(_, post)| post))
        .filter(|post| post.starts_with("cgroup"))
        .any(|post| post.contains("favordynmods"));
    assert_eq!(doc["cgroups"]["favordynmods"], favor, "{doc}");
    assert!(
        !doc["cgroups"]["hierarchies"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{doc}"
    );
    assert_eq!(doc["cni"]["ready"], true, "{doc}");
    assert_eq!(doc["cni"]["source"], "built-in");
    assert_eq!(doc["featureFlags"]["containerEvents"], true);
    // Whether `criu check` passes for the configured CRIU.
    assert!(doc["featureFlags"]["checkpoint"].is_boolean(), "{doc}");
    assert_eq!(doc["featureFlags"]["metrics"], serde_json::Value::Null);
    Ok(())
}
