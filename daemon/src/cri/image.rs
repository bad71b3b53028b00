//! `runtime.v1.ImageService`: validates requests, calls the image manager, shapes answers.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use corral_cri_api::v1::image_service_server::ImageService;
use corral_cri_api::v1::{
    FilesystemIdentifier, FilesystemUsage, Image, ImageFsInfoRequest, ImageFsInfoResponse,
    ImageSpec, ImageStatusRequest, ImageStatusResponse, Int64Value, ListImagesRequest,
    ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse, StreamImagesRequest, StreamImagesResponse, UInt64Value,
};
use corral_images::{Credentials, ImageManager, ImageRecord};
use tonic::{Request, Response, Status};

use crate::deadline;
use crate::pods::Pods;
use crate::status::image_status;

pub struct ImageApi {
    images: Arc<ImageManager>,
    pods: Arc<Pods>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ImageApi {
    pub fn new(
        images: Arc<ImageManager>,
        pods: Arc<Pods>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> ImageApi {
        ImageApi {
            images,
            pods,
            metrics,
        }
    }

    fn list(&self, filter: Option<&ImageSpec>) -> Vec<Image> {
        match filter.map(|s| s.image.as_str()).filter(|s| !s.is_empty()) {
            Some(spec) => self.images.resolve(spec).iter().map(to_cri).collect(),
            None => self.images.list().iter().map(to_cri).collect(),
        }
    }
}

/// The CRI view of an image record.
pub fn to_cri(r: &ImageRecord) -> Image {
    let (uid, username) = user_of(&r.config.user);
    Image {
        id: r.id.to_string(),
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
        uid: uid.map(|value| Int64Value { value }),
        username,
        spec: Some(ImageSpec {
            image: r.id.to_string(),
            ..Default::default()
        }),
        pinned: r.pinned,
    }
}

/// Splits an image config `User` (`name`, `uid`, `uid:gid`, `name:group`) into the uid when
/// numeric, else the user name, the way kubelet reads it, through the one parser of `User`
/// (`corral_images::user`). A value that parser refuses (`-1`, `4294967296`, `00`) is reported
/// whole as a user name, never as a uid: the kubelet then refuses it under `runAsNonRoot`
/// ("non-numeric user"), and the spec builder refuses it at CreateContainer in any case.
fn user_of(user: &str) -> (Option<i64>, String) {
    use corral_images::user::{Id, ImageUser, parse_user};
    match parse_user(user) {
        Ok(ImageUser {
            user: Some(Id::Num(uid)),
            ..
        }) => (Some(i64::from(uid)), String::new()),
        Ok(ImageUser {
            user: Some(Id::Name(name)),
            ..
        }) => (None, name.to_owned()),
        Ok(ImageUser { user: None, .. }) => (None, String::new()),
        Err(_) => (None, user.to_owned()),
    }
}

fn spec_of<'a>(spec: &'a Option<ImageSpec>, field: &str) -> Result<&'a str, Status> {
    match spec.as_ref().map(|s| s.image.trim()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Status::invalid_argument(format!(
            "{field} is empty: name an image by reference or ID"
        ))),
    }
}

type ImageStream =
    Pin<Box<dyn futures::Stream<Item = Result<StreamImagesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ImageService for ImageApi {
    async fn list_images(
        &self,
        req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let req = req.into_inner();
        let images = self.list(req.filter.as_ref().and_then(|f| f.image.as_ref()));
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn stream_images(
        &self,
        req: Request<StreamImagesRequest>,
    ) -> Result<Response<ImageStream>, Status> {
        let req = req.into_inner();
        let images = self.list(req.filter.as_ref().and_then(|f| f.image.as_ref()));
        Ok(Response::new(super::batch::stream(images, |images| {
            StreamImagesResponse { images }
        })))
    }

    async fn image_status(
        &self,
        req: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let req = req.into_inner();
        let spec = spec_of(&req.image, "image.image")?;
        let Some(rec) = self.images.resolve(spec) else {
            // CRI: an absent image is a response without an image, not an error.
            return Ok(Response::new(ImageStatusResponse::default()));
        };
        let mut info = HashMap::new();
        if req.verbose {
            let config: serde_json::Value = self
                .images
                .config_json(&rec)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            let detail = serde_json::json!({
                "chainID": rec.chain_ids.last().map(|c| c.to_string()),
                "manifestDigest": rec.manifest_digest.to_string(),
                "manifestMediaType": rec.manifest_media_type,
                "indexDigest": rec.index_digest.as_ref().map(|d| d.to_string()),
                "layers": rec.layers,
                "snapshotter": "overlayfs",
                "pulledAt": rec.pulled_at,
                "imageSpec": config,
            });
            info.insert("info".to_owned(), detail.to_string());
        }
        Ok(Response::new(ImageStatusResponse {
            image: Some(to_cri(&rec)),
            info,
        }))
    }

    async fn pull_image(
        &self,
        req: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let deadline = deadline::from_metadata(req.metadata());
        let req = req.into_inner();
        let name = spec_of(&req.image, "image.image")?.to_owned();
        let credentials = match &req.auth {
            None => None,
            Some(a) => Some(
                Credentials::from_parts(
                    &a.username,
                    &a.password,
                    &a.auth,
                    &a.identity_token,
                    &a.registry_token,
                )
                .map_err(|e| Status::invalid_argument(format!("auth: {e}")))?,
            ),
        };
        let images = Arc::clone(&self.images);
        let started = std::time::Instant::now();
        let rec = deadline::within(deadline, &format!("pull {name}"), async {
            images.pull(&name, credentials).await.map_err(image_status)
        })
        .await;
        // A pull's buffers are freed by now; give the memory back instead of keeping it.
        drop(tokio::task::spawn_blocking(crate::alloc::trim));
        let seconds = started.elapsed().as_secs_f64();
        self.metrics
            .pull(rec.as_ref().map(|r| r.size).map_err(|_| ()), seconds);
        let rec = rec
            .inspect_err(|e| tracing::warn!(image = %name, code = ?e.code(), error = %e.message(), "pull failed"))?;
        tracing::info!(image = %name, id = %rec.id, elapsed_ms = started.elapsed().as_millis() as u64, "pulled");
        Ok(Response::new(PullImageResponse {
            image_ref: rec.id.to_string(),
        }))
    }

    async fn remove_image(
        &self,
        req: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let req = req.into_inner();
        let spec = spec_of(&req.image, "image.image")?;
        if let Some(rec) = self.images.resolve(spec)
            && rec.pinned
        {
            return Err(Status::failed_precondition(format!(
                "image {spec} ({}) is pinned in the daemon configuration",
                rec.id
            )));
        }
        // Containers run on the image's snapshots: removing it would pull their rootfs away
        // (CRI-O refuses the same way; kubelet's image GC only removes unused images).
        if let Some(rec) = self.images.resolve(spec) {
            let id = rec.id.to_string();
            let containers = self.pods.containers();
            if let Some(ctr) = containers.iter().find(|c| c.meta.image_id == id) {
                return Err(Status::failed_precondition(format!(
                    "image {spec} ({id}) is in use by container {}",
                    ctr.meta.id
                )));
            }
            if let Some(ctr) = containers
                .iter()
                .find(|c| c.meta.image_volumes.contains(&id))
            {
                return Err(Status::failed_precondition(format!(
                    "image {spec} ({id}) is mounted as an image volume by container {} (pod {})",
                    ctr.meta.id, ctr.meta.sandbox_id
                )));
            }
        }
        let removed = self.images.remove(spec).await.map_err(image_status)?;
        tracing::info!(image = %spec, removed, "remove image");
        Ok(Response::new(RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _req: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        let images = Arc::clone(&self.images);
        let usage = tokio::task::spawn_blocking(move || images.usage())
            .await
            .map_err(|e| Status::internal(format!("usage task: {e}")))?
            .map_err(image_status)?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let fs = FilesystemUsage {
            timestamp,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: usage.mountpoint.to_string_lossy().into_owned(),
            }),
            used_bytes: Some(UInt64Value {
                value: usage.used_bytes,
            }),
            inodes_used: Some(UInt64Value {
                value: usage.inodes_used,
            }),
        };
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![fs],
            container_filesystems: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_split_like_kubelet() {
        assert_eq!(user_of(""), (None, String::new()));
        assert_eq!(user_of("1000"), (Some(1000), String::new()));
        assert_eq!(user_of("1000:50"), (Some(1000), String::new()));
        assert_eq!(user_of("nobody:nogroup"), (None, "nobody".to_owned()));
        // Never a uid (the old i64 parse made `4294967296` and `-1` non-root numbers).
        for bad in [
            "4294967296",
            "-1",
            "4294967296:4294967296",
            "+0",
            "00",
            " 0",
        ] {
            assert_eq!(user_of(bad), (None, bad.to_owned()), "{bad:?}");
        }
    }
}
