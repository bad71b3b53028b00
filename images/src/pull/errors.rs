//! The errors of a pull, each naming the image and what failed.

use super::*;

impl Pull<'_> {
    pub(super) fn diff_id_mismatch(&self, layer: &LayerRecord, got: &str) -> ImageError {
        self.verification(
            "layer",
            &layer.digest,
            format!(
                "uncompressed content hashes to {got}, config says {}",
                layer.diff_id
            ),
        )
    }

    pub(super) fn unpack_error(
        &self,
        layer: &LayerRecord,
        source: unpack::UnpackError,
    ) -> ImageError {
        ImageError::Unpack {
            image: self.image.clone(),
            digest: layer.digest.to_string(),
            source,
        }
    }

    pub(super) fn verification(
        &self,
        what: &'static str,
        digest: &Digest,
        detail: String,
    ) -> ImageError {
        ImageError::Verification {
            image: self.image.clone(),
            what,
            digest: digest.to_string(),
            detail,
        }
    }

    pub(super) fn malformed(&self, what: &'static str, e: impl std::fmt::Display) -> ImageError {
        ImageError::Malformed {
            image: self.image.clone(),
            what,
            detail: e.to_string(),
        }
    }

    pub(super) fn digest_of(&self, s: &str, what: &'static str) -> Result<Digest> {
        Digest::parse(s).map_err(|detail| ImageError::Malformed {
            image: self.image.clone(),
            what,
            detail,
        })
    }

    pub(super) fn no_pull_endpoint(&self) -> ImageError {
        ImageError::Registry {
            image: self.image.clone(),
            endpoint: self.r.registry.clone(),
            detail: "no endpoint has the pull capability".into(),
        }
    }
}
