//! Helpers shared by the integration test files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use corral_cri_api::v1::image_service_client::ImageServiceClient;
use corral_cri_api::v1::{
    AuthConfig, Image, ImageSpec, ImageStatusRequest, ListImagesRequest, PullImageRequest,
    RemoveImageRequest,
};
use corral_tests::daemon::TestDaemon;
use tonic::transport::Channel;

pub type Images = ImageServiceClient<Channel>;

pub fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    })
}

pub async fn pull(c: &mut Images, image: &str) -> Result<String, tonic::Status> {
    pull_auth(c, image, None).await
}

pub async fn pull_auth(
    c: &mut Images,
    image: &str,
    auth: Option<AuthConfig>,
) -> Result<String, tonic::Status> {
    let resp = c
        .pull_image(PullImageRequest {
            image: spec(image),
            auth,
            sandbox_config: None,
        })
        .await?;
    Ok(resp.into_inner().image_ref)
}

pub async fn list(c: &mut Images) -> Result<Vec<Image>> {
    Ok(c.list_images(ListImagesRequest::default())
        .await?
        .into_inner()
        .images)
}

pub async fn status(c: &mut Images, image: &str) -> Result<Option<Image>> {
    Ok(c.image_status(ImageStatusRequest {
        image: spec(image),
        verbose: false,
    })
    .await?
    .into_inner()
    .image)
}

pub async fn remove(c: &mut Images, image: &str) -> Result<(), tonic::Status> {
    c.remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    Ok(())
}

/// The chain IDs the daemon recorded for an image (from its record file).
pub fn chain_ids(d: &TestDaemon, image_id: &str) -> Result<Vec<String>> {
    let hex = image_id.trim_start_matches("sha256:");
    let path = d.root().join("images").join(format!("{hex}.json"));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| path.display().to_string())?)?;
    Ok(rec["chain_ids"]
        .as_array()
        .context("chain_ids")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect())
}

/// A read-only overlay of an image's snapshots; unmounted on drop.
pub struct View {
    pub dir: tempfile::TempDir,
}

impl View {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Mounts the merged root filesystem of a pulled image, the way a container will see it.
pub fn mount_image(d: &TestDaemon, image_id: &str) -> Result<View> {
    let dirs: Vec<PathBuf> = chain_ids(d, image_id)?
        .iter()
        .map(|c| {
            d.root()
                .join("snapshots")
                .join(c.trim_start_matches("sha256:"))
                .join("fs")
        })
        .collect();
    let view = View {
        dir: tempfile::Builder::new().prefix("corral-view-").tempdir()?,
    };
    use nix::mount::{MsFlags, mount};
    if dirs.len() == 1 {
        mount(
            Some(&dirs[0]),
            view.path(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
    } else {
        let lower: Vec<String> = dirs.iter().rev().map(|p| p.display().to_string()).collect();
        let opts = format!("lowerdir={}", lower.join(":"));
        mount(
            Some("overlay"),
            view.path(),
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(opts.as_str()),
        )
        .with_context(|| format!("mount overlay {opts}"))?;
    }
    Ok(view)
}

/// Asserts a gRPC error has this code and its message contains every fragment.
pub fn assert_status(
    r: Result<impl std::fmt::Debug, tonic::Status>,
    code: tonic::Code,
    fragments: &[&str],
) {
    match r {
        Ok(v) => panic!("expected {code:?}, got success: {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "wrong code; message: {}", s.message());
            for f in fragments {
                assert!(
                    s.message().contains(f),
                    "message {:?} lacks {f:?}",
                    s.message()
                );
            }
        }
    }
}

/// Asserts the daemon holds no image and no leftovers: records, blobs, snapshots, temporaries.
/// After a failed pull that may have completed some layers, see
/// [`assert_only_completed_layers_kept`].
pub async fn assert_empty(d: &TestDaemon, c: &mut Images) -> Result<()> {
    assert!(list(c).await?.is_empty(), "images listed");
    assert_eq!(
        d.wait_no_temporaries(std::time::Duration::from_secs(10))
            .await,
        Vec::<PathBuf>::new()
    );
    // A failed or cancelled pull sweeps what it committed once its last worker ends.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (!d.blobs().is_empty() || !d.snapshots().is_empty()) && std::time::Instant::now() < until
    {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(d.blobs(), Vec::<String>::new(), "blobs left");
    assert_eq!(d.snapshots(), Vec::<String>::new(), "snapshots left");
    Ok(())
}

/// After a failed or cancelled pull: no image, no temporaries, and nothing partial. The layers
/// the pull had completed may stay (kept for a retry until `failed_pull_retention_secs`), so
/// every blob left must be one of `kept` (layer digests) with bytes that match its digest, and
/// there is at most one snapshot per such layer. Returns the blobs left.
pub async fn assert_only_completed_layers_kept(
    d: &TestDaemon,
    c: &mut Images,
    kept: &[&str],
) -> Result<Vec<String>> {
    assert!(list(c).await?.is_empty(), "images listed");
    assert_eq!(
        d.wait_no_temporaries(std::time::Duration::from_secs(10))
            .await,
        Vec::<PathBuf>::new()
    );
    let blobs = d.blobs();
    for b in &blobs {
        assert!(
            kept.iter().any(|k| k.trim_start_matches("sha256:") == b),
            "blob {b} left, not one of the completed layers {kept:?}"
        );
        let path = d.root().join("content/blobs/sha256").join(b);
        let got = corral_tests::fixtures::sha256_digest(&std::fs::read(&path)?);
        assert_eq!(got, format!("sha256:{b}"), "blob {b} left unverified");
    }
    let snapshots = d.snapshots();
    assert!(
        snapshots.len() <= kept.len(),
        "{} snapshots left for {} completed layers",
        snapshots.len(),
        kept.len()
    );
    Ok(blobs)
}

/// The layer digests of a built image.
pub fn layer_digests(img: &corral_tests::fixtures::BuiltImage) -> Vec<&str> {
    img.layers.iter().map(|l| l.digest.as_str()).collect()
}

/// Serves a built image from a fake registry under `name:tag`.
pub fn serve_image(
    fake: &corral_tests::registry::FakeRegistry,
    name: &str,
    tag: &str,
    img: &corral_tests::fixtures::BuiltImage,
) {
    fake.serve_manifest(name, tag, img.manifest_media_type(), &img.manifest);
    fake.serve_blob(name, &img.config_digest, &img.config);
    for l in &img.layers {
        fake.serve_blob(name, &l.digest, &l.data);
    }
}

/// A path under /tmp unique to this test process, for "nothing was written outside" checks.
pub fn sentinel(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "/tmp/corral-sentinel-{}-{name}",
        std::process::id()
    ))
}
pub mod kube;
pub mod pod;
