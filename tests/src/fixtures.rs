//! Fixture images built by hand and pushed to the loopback registry.
//!
//! - [`Layer`] writes a layer tar entry by entry (files, dirs, links, whiteouts, opaque
//!   markers, device nodes, raw malicious entries, a busybox userland) and
//!   [`Layer::build`] compresses it into a [`LayerBlob`] with digest and diff_id.
//! - [`Image`] adds a config; [`Image::build`] makes an OCI or Docker schema 2 manifest
//!   ([`BuiltImage`]), [`build_index`] an OCI index or Docker manifest list ([`BuiltIndex`]).
//! - [`RegistryClient::push_image`](crate::registry::RegistryClient::push_image) and
//!   [`push_index`](crate::registry::RegistryClient::push_index) push them and return every
//!   digest ([`PushedImage`], [`PushedIndex`]).
//! - Ready-made images: [`busybox_image`], [`pause_image`], [`layered_image`] (whiteouts and
//!   replacements, with [`LAYERED_EXPECTED`] and [`check_rootfs`]), [`multi_platform_images`],
//!   [`big_image`], [`debian_image`] (real Debian files in several layers, fetched once into a
//!   cache).
//!
//! Everything is deterministic: building the same fixture twice gives the same digests.

mod big;
mod compress;
mod debian;
mod image;
mod layer;
mod push;
mod rootfs;
#[cfg(test)]
mod tests;

pub use big::{big_image, big_image_with};
pub use compress::decompress;
pub use debian::{DEBIAN_CACHE, debian_cache, debian_image};
pub use image::{
    BuiltImage, BuiltIndex, CREATED, ContainerConfig, Image, ManifestFormat, Platform, build_index,
    host_arch,
};
pub use layer::{
    BUSYBOX_APPLETS, BUSYBOX_GROUP, BUSYBOX_PASSWD, Compression, HOST_BUSYBOX, Layer, LayerBlob,
    MTIME, RawEntry,
};
pub use push::{PushedImage, PushedIndex};
pub use rootfs::{Expect, LAYERED_EXPECTED, check_rootfs, layered_image};

use anyhow::Result;
use sha2::{Digest as _, Sha256};

/// The results of layer builders run on scoped threads, in their order; a builder that
/// panicked is an error.
fn joined<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>) -> Result<Vec<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("a layer builder panicked"))?
        })
        .collect()
}

/// Media types of manifests, configs and layers.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI uncompressed layer.
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI gzip layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI zstd layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker uncompressed layer.
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker zstd layer (as containerd names it; not in the Docker spec).
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
}

/// `PATH` of the fixture images.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Label naming the platform of each image of [`multi_platform_images`].
pub const PLATFORM_LABEL: &str = "org.corral.test.platform";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The busybox layer ([`Layer::busybox`]).
pub fn busybox_layer(compression: Compression) -> Result<LayerBlob> {
    Layer::new().busybox().build(compression)
}

/// Host-platform busybox: one gzip layer, `Env` [`PATH_ENV`], `Cmd ["sh"]`. Chain setters to
/// adjust it (`busybox_image()?.cmd(&["sleep", "10"])`).
pub fn busybox_image() -> Result<Image> {
    Ok(Image::new()
        .layer(busybox_layer(Compression::Gzip)?)
        .env(PATH_ENV)
        .cmd(&["sh"]))
}

/// A pause image made of busybox: `/bin/sh` as PID 1 that exits 0 on SIGTERM or SIGINT and
/// otherwise sleeps forever.
pub fn pause_image() -> Result<Image> {
    Ok(Image::new()
        .layer(busybox_layer(Compression::Gzip)?)
        .env(PATH_ENV)
        .entrypoint(&[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
        ])
        .label("io.kubernetes.cri.pause", "true"))
}

/// Images of one multi-platform index, each labelled [`PLATFORM_LABEL`] = `os/arch` and with a
/// file `/platform` holding `os/arch\n`, in this order (so that "take the first entry" picks
/// the wrong one):
/// 1. [`Platform::foreign`]: another linux architecture, only `/platform`;
/// 2. `windows` on the host architecture, only `/platform`;
/// 3. [`Platform::host`]: busybox plus `/platform`, `Cmd ["cat", "/platform"]`.
///
/// Each has its own config, so the chosen image ID tells which was picked. Push them with
/// [`RegistryClient::push_index`](crate::registry::RegistryClient::push_index).
pub fn multi_platform_images() -> Result<Vec<Image>> {
    let tagged = |image: Image, platform: Platform| -> Result<Image> {
        let name = platform.to_slash_string();
        let marker = Layer::new()
            .file("platform", format!("{name}\n"))
            .build(Compression::Gzip)?;
        Ok(image
            .platform(platform)
            .layer(marker)
            .label(PLATFORM_LABEL, &name))
    };
    let host = tagged(busybox_image()?, Platform::host())?.cmd(&["cat", "/platform"]);
    Ok(vec![
        tagged(Image::new().env(PATH_ENV), Platform::foreign())?,
        tagged(
            Image::new().env(PATH_ENV),
            Platform::new("windows", host_arch()),
        )?,
        host,
    ])
}
