//! Untrusted input: malicious layers and hostile registry answers. Every case ends in a clear
//! error or a neutralised result, and nothing is written outside the snapshot or left behind.

use crate::common;

use anyhow::Result;
use common::*;
use corral_tests::daemon::TestDaemon;
use corral_tests::fixtures::{
    Compression, Image, Layer, LayerBlob, ManifestFormat, RawEntry, busybox_image, media_types,
};
use corral_tests::registry::{CannedResponse, FakeRegistry, Registry};
use tonic::Code;

/// Pushes busybox plus one extra layer and pulls it.
async fn pull_with_layer(
    reg: &Registry,
    c: &mut Images,
    name: &str,
    layer: LayerBlob,
) -> Result<String, tonic::Status> {
    let image = busybox_image().expect("busybox").layer(layer);
    let pushed = reg
        .client()
        .push_image(name, "v1", &image, ManifestFormat::Oci)
        .await
        .expect("push");
    pull(c, &pushed.reference).await
}

#[tokio::test]
async fn climbing_out_with_dot_dot_is_refused() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let target = sentinel("dotdot");
    let name = format!("../../../../../../..{}", target.display());
    let layer = Layer::new()
        .raw(RawEntry::file(name.as_bytes(), "pwned"))
        .build(Compression::Gzip)?;
    let r = pull_with_layer(&reg, &mut c, "evil/dotdot", layer).await;
    assert_status(
        r,
        Code::DataLoss,
        &["evil/dotdot", "climbs above the layer root"],
    );
    assert!(!target.exists(), "{} was written", target.display());
    // The busybox layer may have completed: kept for a retry; nothing of the evil one is.
    assert_only_completed_layers_kept(&d, &mut c, &[&busybox_digest()]).await?;
    Ok(())
}

/// The digest of the busybox layer [`pull_with_layer`] puts under the layer it tests.
fn busybox_digest() -> String {
    corral_tests::fixtures::busybox_layer(Compression::Gzip)
        .expect("busybox layer")
        .digest
}

#[tokio::test]
async fn absolute_paths_land_inside_the_snapshot() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let target = sentinel("absolute");
    let layer = Layer::new()
        .raw(RawEntry::file(
            target.to_str().unwrap_or_default().as_bytes(),
            "inside",
        ))
        .build(Compression::Gzip)?;
    let id = pull_with_layer(&reg, &mut c, "evil/absolute", layer).await?;
    assert!(
        !target.exists(),
        "{} was written on the host",
        target.display()
    );
    let view = mount_image(&d, &id)?;
    let inside = view.path().join(target.strip_prefix("/")?);
    assert_eq!(std::fs::read_to_string(inside)?, "inside");
    Ok(())
}

#[tokio::test]
async fn symlinked_parents_cannot_carry_writes_out() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let host_dir = sentinel("symlink-dir");
    std::fs::create_dir_all(&host_dir)?;
    let _cleanup = scopeguard(host_dir.clone());

    // Same layer: `root -> /` then `root/<host_dir>/evil`, and `up -> ../../..` then `up/evil2`.
    let rel = host_dir.strip_prefix("/")?.display().to_string();
    let escaped = format!("corral-escaped-{}", std::process::id());
    let same = Layer::new()
        .symlink("root", "/")
        .dir(&rel)
        .file(&format!("root/{rel}/evil"), "x")
        .symlink("up", "../../..")
        .file(&format!("up/{escaped}"), "y")
        .build(Compression::Gzip)?;
    let id = pull_with_layer(&reg, &mut c, "evil/symlink", same).await?;
    assert_eq!(
        std::fs::read_dir(&host_dir)?.count(),
        0,
        "write escaped into {}",
        host_dir.display()
    );
    assert!(
        !std::path::Path::new("/").join(&escaped).exists(),
        "/{escaped} was written"
    );
    let view = mount_image(&d, &id)?;
    assert_eq!(
        std::fs::read_to_string(view.path().join(&rel).join("evil"))?,
        "x"
    );
    assert_eq!(std::fs::read_to_string(view.path().join(&escaped))?, "y");
    drop(view);

    // Across layers: layer 1 plants `x -> <host_dir>`, layer 2 writes `x/evil`.
    let plant = Layer::new()
        .symlink("x", host_dir.to_str().unwrap_or_default())
        .build(Compression::Gzip)?;
    let write = Layer::new().file("x/evil", "z").build(Compression::Gzip)?;
    let image = busybox_image()?.layer(plant).layer(write);
    let pushed = reg
        .client()
        .push_image("evil/cross", "v1", &image, ManifestFormat::Oci)
        .await?;
    let id = pull(&mut c, &pushed.reference).await?;
    assert_eq!(
        std::fs::read_dir(&host_dir)?.count(),
        0,
        "write escaped into {}",
        host_dir.display()
    );
    let view = mount_image(&d, &id)?;
    assert!(
        view.path().join("x").symlink_metadata()?.is_dir(),
        "the later directory replaces the link"
    );
    assert_eq!(std::fs::read_to_string(view.path().join("x/evil"))?, "z");
    Ok(())
}

#[tokio::test]
async fn hard_links_out_of_the_layer_are_refused() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    for (i, target) in ["/etc/passwd", "../../../../etc/passwd"]
        .into_iter()
        .enumerate()
    {
        let layer = Layer::new()
            .raw(RawEntry::hardlink("stolen", target))
            .build(Compression::Gzip)?;
        let r = pull_with_layer(&reg, &mut c, &format!("evil/hardlink{i}"), layer).await;
        assert_status(r, Code::DataLoss, &["stolen"]);
    }
    assert_only_completed_layers_kept(&d, &mut c, &[&busybox_digest()]).await?;
    Ok(())
}

#[tokio::test]
async fn device_nodes_are_not_created() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let layer = Layer::new()
        .dir("dev")
        .char_device("dev/mem", 1, 1)
        .block_device("dev/sda", 8, 0)
        .file("dev/ok", "ok")
        .build(Compression::Gzip)?;
    let id = pull_with_layer(&reg, &mut c, "evil/devices", layer).await?;
    let view = mount_image(&d, &id)?;
    assert!(view.path().join("dev/mem").symlink_metadata().is_err());
    assert!(view.path().join("dev/sda").symlink_metadata().is_err());
    assert_eq!(std::fs::read_to_string(view.path().join("dev/ok"))?, "ok");
    Ok(())
}

#[tokio::test]
async fn corrupt_and_mislabelled_content_is_refused() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;

    // A layer whose stored bytes no longer match its digest.
    let layer = Layer::new()
        .file("data", "original")
        .build(Compression::Gzip)?;
    let digest = layer.digest.clone();
    let image = Image::new().layer(layer);
    let pushed = reg
        .client()
        .push_image("bad/corrupt", "v1", &image, ManifestFormat::Oci)
        .await?;
    reg.corrupt_blob(&digest, b"tampered content of another length")?;
    assert_status(
        pull(&mut c, &pushed.reference).await,
        Code::DataLoss,
        &["bad/corrupt", &digest],
    );
    assert_empty(&d, &mut c).await?;

    // A layer whose uncompressed content does not match the config's diff ID.
    let good = Layer::new().file("data", "x").build(Compression::Gzip)?;
    let lying = LayerBlob::from_raw(
        good.data.clone(),
        Compression::Gzip,
        &format!("sha256:{}", "0".repeat(64)),
    );
    let pushed = reg
        .client()
        .push_image(
            "bad/diffid",
            "v1",
            &Image::new().layer(lying),
            ManifestFormat::Oci,
        )
        .await?;
    assert_status(
        pull(&mut c, &pushed.reference).await,
        Code::DataLoss,
        &["bad/diffid", "uncompressed"],
    );
    assert_empty(&d, &mut c).await
}

#[tokio::test]
async fn hostile_registry_answers_are_refused() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let at = |name: &str| format!("{}/{name}:v1", fake.addr());

    // A manifest larger than the 4 MiB limit, announced or not.
    let huge = vec![b' '; 9 << 20];
    fake.serve_manifest("huge", "v1", media_types::OCI_MANIFEST, &huge);
    assert_status(
        pull(&mut c, &at("huge")).await,
        Code::ResourceExhausted,
        &["huge"],
    );

    // Malformed JSON.
    fake.serve_manifest(
        "garbage",
        "v1",
        media_types::OCI_MANIFEST,
        b"{\"layers\": [oops",
    );
    assert_status(
        pull(&mut c, &at("garbage")).await,
        Code::DataLoss,
        &["garbage", "manifest"],
    );

    // A manifest fetched by digest whose bytes hash to something else.
    let img = busybox_image()?.build(ManifestFormat::Oci)?;
    let wrong = format!("sha256:{}", "1".repeat(64));
    fake.route(
        &format!("/v2/liar/manifests/{wrong}"),
        CannedResponse::new(200, img.manifest.clone())
            .header("Content-Type", media_types::OCI_MANIFEST),
    );
    let by_digest = format!("{}/liar@{wrong}", fake.addr());
    assert_status(
        pull(&mut c, &by_digest).await,
        Code::DataLoss,
        &["liar", &wrong],
    );

    // A config that is not JSON (served under its true digest).
    let bad_config = b"not json".to_vec();
    let cfg_digest = corral_tests::fixtures::sha256_digest(&bad_config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": cfg_digest, "size": bad_config.len()},
        "layers": []
    });
    fake.serve_manifest(
        "badconfig",
        "v1",
        media_types::OCI_MANIFEST,
        manifest.to_string().as_bytes(),
    );
    fake.serve_blob("badconfig", &cfg_digest, &bad_config);
    assert_status(
        pull(&mut c, &at("badconfig")).await,
        Code::DataLoss,
        &["badconfig", "config"],
    );

    // Docker schema 1 is refused as unsupported.
    fake.serve_manifest(
        "schema1",
        "v1",
        "application/json",
        br#"{"schemaVersion": 1, "fsLayers": []}"#,
    );
    assert_status(
        pull(&mut c, &at("schema1")).await,
        Code::FailedPrecondition,
        &["schema1"],
    );

    // A layer body longer than its descriptor says.
    let layer = img.layers[0].clone();
    let mut body = layer.data.clone();
    body.extend_from_slice(&[0u8; 4096]);
    serve_image(&fake, "longer", "v1", &img);
    fake.serve_blob("longer", &layer.digest, &body);
    assert_status(
        pull(&mut c, &at("longer")).await,
        Code::DataLoss,
        &["longer"],
    );
    assert_empty(&d, &mut c).await
}

/// Removes a directory tree when dropped.
struct DirGuard(std::path::PathBuf);
impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn scopeguard(p: std::path::PathBuf) -> DirGuard {
    DirGuard(p)
}
