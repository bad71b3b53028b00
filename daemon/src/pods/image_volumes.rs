//! Image volumes (KEP-4639): a CRI mount whose `image` names a pulled image gets that image's
//! root filesystem, read-only, nosuid, nodev and noexec (what the Kubernetes API promises),
//! mounted under the container's bundle (`image-volumes/<n>`) and bound into the container
//! from there. The image's layers on disk are shared with every other user of the image; the
//! container's record names the images it mounts, so RemoveImage refuses them while it exists.
//! Removal unmounts them with the rootfs (`rootfs::unmount_all_under`).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use corral_cri_api::v1::ContainerConfig;
use corral_images::{ImageManager, ImageRecord};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::{MsFlags, mount};

use super::{PodError, Result};

/// Where, under a container's bundle, its image volumes are mounted.
pub const DIR: &str = "image-volumes";

/// The images the container's mounts name, resolved: (mount index, image), in mount order.
pub fn resolve(
    images: &ImageManager,
    config: &ContainerConfig,
) -> Result<Vec<(usize, ImageRecord)>> {
    let mut out = Vec::new();
    for (i, m) in config.mounts.iter().enumerate() {
        let name = m.image.as_ref().map_or("", |s| s.image.as_str());
        if name.is_empty() {
            if !m.image_sub_path.is_empty() {
                return Err(PodError::InvalidArgument(format!(
                    "container config: mounts[{i}].image_sub_path is set without an image"
                )));
            }
            continue;
        }
        if !m.host_path.is_empty() {
            return Err(PodError::InvalidArgument(format!(
                "container config: mounts[{i}]: host_path and image are mutually exclusive"
            )));
        }
        let rec = images.resolve(name).ok_or_else(|| {
            PodError::NotFound(format!(
                "container config: mounts[{i}].image: image {name:?} is not present (pull it first)"
            ))
        })?;
        out.push((i, rec));
    }
    Ok(out)
}

/// Mounts each resolved image under `bundle/image-volumes/` and returns, per mount index, the
/// host path to bind into the container.
pub fn mount_all(
    images: &ImageManager,
    config: &ContainerConfig,
    resolved: &[(usize, ImageRecord)],
    bundle: &Path,
) -> Result<Vec<(usize, PathBuf)>> {
    let base = bundle.join(DIR);
    let mut out = Vec::new();
    for (i, rec) in resolved {
        let target = base.join(i.to_string());
        std::fs::create_dir_all(&target).map_err(|e| PodError::io(&target, e))?;
        mount_image(images, rec, &target)?;
        let sub = &config.mounts[*i].image_sub_path;
        let source = if sub.is_empty() {
            target
        } else {
            bind_sub_path(
                &target,
                sub,
                &base.join(format!("{i}.sub")),
                &rec.id.to_string(),
            )
            .map_err(|e| match e {
                PodError::InvalidArgument(m) => PodError::InvalidArgument(format!(
                    "container config: mounts[{i}].image_sub_path: {m}"
                )),
                other => other,
            })?
        };
        out.push((*i, source));
    }
    Ok(out)
}

const FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// A read-only overlay of the image's layers (a single layer, which overlayfs refuses without
/// an upper directory, is bound and made read-only instead).
fn mount_image(images: &ImageManager, rec: &ImageRecord, target: &Path) -> Result<()> {
    let lowerdirs = images.lowerdirs(rec);
    let failed = |e: nix::Error| {
        PodError::Internal(format!(
            "mounting image {} at {}: {e}",
            rec.id,
            target.display()
        ))
    };
    if lowerdirs.contains(':') {
        let data = format!("lowerdir={lowerdirs}");
        if data.len() >= 4096 {
            return Err(PodError::FailedPrecondition(format!(
                "image {} has too many layers to mount as one overlay",
                rec.id
            )));
        }
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            FLAGS,
            Some(data.as_str()),
        )
        .map_err(failed)
    } else {
        mount(
            Some(lowerdirs.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(failed)?;
        mount(
            None::<&str>,
            target,
            None::<&str>,
            FLAGS | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(failed)
    }
}

/// Resolves `sub` inside the mounted image (symlinks resolved as if the image were the root,
/// so none leads out of it) and binds what it names at `at`.
fn bind_sub_path(root: &Path, sub: &str, at: &Path, image: &str) -> Result<PathBuf> {
    if sub.contains('\0') {
        return Err(PodError::InvalidArgument(format!(
            "{sub:?} holds a NUL byte"
        )));
    }
    let root_fd = std::fs::File::open(root).map_err(|e| PodError::io(root, e))?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd =
        openat2(root_fd.as_raw_fd(), sub.trim_start_matches('/'), how).map_err(|e| match e {
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => {
                PodError::InvalidArgument(format!("{sub:?} does not exist in image {image}"))
            }
            e => PodError::Internal(format!("opening {sub:?} in image {image}: {e}")),
        })?;
    // SAFETY: openat2 returned a new descriptor that nobody else owns.
    #[allow(unsafe_code)]
    let fd = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let is_dir = fd.metadata().map_err(|e| PodError::io(at, e))?.is_dir();
    if is_dir {
        std::fs::create_dir_all(at).map_err(|e| PodError::io(at, e))?;
    } else {
        std::fs::File::create(at).map_err(|e| PodError::io(at, e))?;
    }
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(proc_path.as_str()),
        at,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| PodError::Internal(format!("binding {sub:?} of image {image}: {e}")))?;
    Ok(at.to_path_buf())
}
