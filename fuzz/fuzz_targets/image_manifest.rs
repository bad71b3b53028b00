//! Image index, manifest and config JSON as a pull reads them (images/src/pull.rs): the same
//! `oci-spec` types through `serde_json`, then what the pull checks on them: every digest through
//! `Digest::parse`, layer media types through `Compression::from_media_type`, platform fields of
//! index entries, diff IDs and the chain IDs computed from them, and the config fields an image
//! record keeps. The same bytes are tried as all three documents.
#![no_main]

use corral_images::Digest;
use corral_images::digest::chain_ids;
use corral_images::unpack::Compression;
use libfuzzer_sys::fuzz_target;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = serde_json::from_slice::<ImageIndex>(data) {
        for m in index.manifests() {
            let _ = Digest::parse(m.digest().as_ref());
            if let Some(p) = m.platform() {
                let _ = (
                    p.os().to_string(),
                    p.architecture().to_string(),
                    p.variant(),
                );
            }
        }
    }
    if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(data) {
        let _ = Digest::parse(manifest.config().digest().as_ref());
        for layer in manifest.layers() {
            let _ = Compression::from_media_type(&layer.media_type().to_string());
            let _ = Digest::parse(layer.digest().as_ref());
        }
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfiguration>(data) {
        let diff_ids: Vec<Digest> = config
            .rootfs()
            .diff_ids()
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .collect();
        assert_eq!(chain_ids(&diff_ids).len(), diff_ids.len());
        let _ = (config.os().to_string(), config.architecture().to_string());
        if let Some(c) = config.config() {
            let _ = (c.user(), c.env(), c.entrypoint(), c.cmd(), c.working_dir());
            let _ = (c.labels(), c.stop_signal(), c.volumes(), c.exposed_ports());
        }
    }
});
