//! ImageService through the socket: pull, list, status, remove, formats, restarts.

use crate::common;

use anyhow::Result;
use common::*;
use corral_cri_api::v1::{
    ImageFilter, ImageFsInfoRequest, ImageStatusRequest, ListImagesRequest, StreamImagesRequest,
};
use corral_tests::daemon::TestDaemon;
use corral_tests::fixtures::{
    self, Compression, Layer, ManifestFormat, Platform, busybox_image, layered_image,
    multi_platform_images,
};
use corral_tests::registry::Registry;
use tonic::Code;

#[tokio::test]
async fn pull_list_status_remove_round_trip() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let pushed = reg
        .client()
        .push_image(
            "tools/busybox",
            "1.0",
            &busybox_image()?.user("1000:1000"),
            ManifestFormat::Oci,
        )
        .await?;

    let image_ref = pull(&mut c, &pushed.reference).await?;
    assert_eq!(image_ref, pushed.config_digest);

    let images = list(&mut c).await?;
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.id, pushed.config_digest);
    assert_eq!(
        img.repo_tags,
        vec![format!("{}/tools/busybox:1.0", reg.addr())]
    );
    assert_eq!(
        img.repo_digests,
        vec![format!(
            "{}/tools/busybox@{}",
            reg.addr(),
            pushed.manifest_digest
        )]
    );
    assert_eq!(img.uid.as_ref().map(|u| u.value), Some(1000));
    let layer_bytes: u64 = pushed.image.layers.iter().map(|l| l.size).sum();
    assert_eq!(
        img.size,
        layer_bytes + pushed.image.config.len() as u64 + pushed.image.manifest.len() as u64
    );

    // By ID, bare hex, a short prefix, tag and digest.
    let hex = pushed.config_digest.trim_start_matches("sha256:");
    for name in [
        pushed.config_digest.clone(),
        hex.to_owned(),
        hex[..12].to_owned(),
        pushed.reference.clone(),
        pushed.digest_reference.clone(),
    ] {
        let found = status(&mut c, &name).await?;
        assert_eq!(
            found.map(|i| i.id),
            Some(pushed.config_digest.clone()),
            "lookup by {name}"
        );
    }
    assert_eq!(
        status(&mut c, &format!("{}/tools/busybox:2.0", reg.addr())).await?,
        None
    );

    // Verbose status carries the image config and the top chain ID.
    let verbose = c
        .image_status(ImageStatusRequest {
            image: spec(&pushed.reference),
            verbose: true,
        })
        .await?
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&verbose.info["info"])?;
    assert_eq!(info["imageSpec"]["config"]["User"], "1000:1000");
    assert_eq!(info["manifestDigest"], pushed.manifest_digest);
    assert!(
        info["chainID"]
            .as_str()
            .is_some_and(|s| s.starts_with("sha256:"))
    );

    // The filter of ListImages and the batches of StreamImages agree with the plain list.
    let filtered = c
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec(&pushed.reference),
            }),
        })
        .await?
        .into_inner()
        .images;
    assert_eq!(filtered, images);
    let mut stream = c
        .stream_images(StreamImagesRequest::default())
        .await?
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(batch) = stream.message().await? {
        streamed.extend(batch.images);
    }
    assert_eq!(streamed, images);

    let fs = c.image_fs_info(ImageFsInfoRequest {}).await?.into_inner();
    let usage = &fs.image_filesystems[0];
    assert!(
        usage
            .used_bytes
            .as_ref()
            .is_some_and(|u| u.value > 1_000_000),
        "{usage:?}"
    );
    assert!(
        usage.inodes_used.as_ref().is_some_and(|u| u.value > 10),
        "{usage:?}"
    );
    assert_eq!(
        usage.fs_id.as_ref().map(|f| f.mountpoint.clone()),
        Some(d.root().display().to_string())
    );

    remove(&mut c, &pushed.config_digest).await?;
    assert_empty(&d, &mut c).await?;
    // Removing what is not there succeeds.
    remove(&mut c, &pushed.config_digest).await?;
    remove(&mut c, &pushed.reference).await?;
    Ok(())
}

#[tokio::test]
async fn docker_manifest_list_picks_the_host_platform() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    for format in [ManifestFormat::Docker, ManifestFormat::Oci] {
        let name = format!("multi/{format:?}").to_lowercase();
        let pushed = reg
            .client()
            .push_index(&name, "v1", &multi_platform_images()?, format)
            .await?;
        let host = pushed
            .image_for(&Platform::host())
            .expect("host image in index");
        let id = pull(&mut c, &pushed.reference).await?;
        assert_eq!(id, host.config_digest, "{format:?}: wrong platform chosen");
        let img = status(&mut c, &pushed.reference).await?.expect("pulled");
        let wanted = format!("{}/{name}@{}", reg.addr(), pushed.index_digest);
        assert!(
            img.repo_digests.contains(&wanted),
            "{:?} lacks {wanted}",
            img.repo_digests
        );
        // The index digest finds the image too.
        assert!(status(&mut c, &pushed.digest_reference).await?.is_some());
        let view = mount_image(&d, &id)?;
        assert_eq!(
            std::fs::read_to_string(view.path().join("platform"))?,
            format!("{}\n", Platform::host().to_slash_string())
        );
    }
    Ok(())
}

#[tokio::test]
async fn whiteouts_and_replacements_apply_across_layers() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let pushed = reg
        .client()
        .push_image("layered", "v1", &layered_image()?, ManifestFormat::Docker)
        .await?;
    let id = pull(&mut c, &pushed.reference).await?;
    let view = mount_image(&d, &id)?;
    fixtures::check_rootfs(view.path(), fixtures::LAYERED_EXPECTED)?;
    Ok(())
}

#[tokio::test]
async fn zstd_plain_and_gzip_layers_unpack_alike() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    for (i, comp) in [Compression::Zstd, Compression::None, Compression::Gzip]
        .into_iter()
        .enumerate()
    {
        let layer = Layer::new()
            .dir("etc")
            .file_with(
                "etc/app.conf",
                format!("compression {i}\n"),
                0o640,
                1000,
                2000,
            )
            .file_with("usr/bin/tool", "#!/bin/sh\n", 0o4755, 0, 0)
            .symlink("usr/bin/alias", "tool")
            .hardlink("usr/bin/tool2", "usr/bin/tool")
            .build(comp)?;
        let image = busybox_image()?.layer(layer);
        let pushed = reg
            .client()
            .push_image(&format!("comp{i}"), "v1", &image, ManifestFormat::Oci)
            .await?;
        let id = pull(&mut c, &pushed.reference).await?;
        let view = mount_image(&d, &id)?;
        use std::os::unix::fs::MetadataExt;
        let conf = std::fs::metadata(view.path().join("etc/app.conf"))?;
        assert_eq!(
            (conf.mode() & 0o7777, conf.uid(), conf.gid()),
            (0o640, 1000, 2000),
            "{comp:?}"
        );
        let tool = std::fs::metadata(view.path().join("usr/bin/tool"))?;
        assert_eq!(tool.mode() & 0o7777, 0o4755, "{comp:?}: setuid bit lost");
        assert_eq!(
            std::fs::read_link(view.path().join("usr/bin/alias"))?,
            std::path::Path::new("tool")
        );
        assert_eq!(
            std::fs::metadata(view.path().join("usr/bin/tool2"))?.ino(),
            tool.ino(),
            "{comp:?}: hard link"
        );
        assert_eq!(
            std::fs::read_to_string(view.path().join("etc/app.conf"))?,
            format!("compression {i}\n")
        );
    }
    // The busybox base layer is shared: one snapshot for it, not three.
    let base = chain_ids(
        &d,
        &status(&mut c, &format!("{}/comp0:v1", reg.addr()))
            .await?
            .expect("comp0")
            .id,
    )?[0]
        .clone();
    for i in 1..3 {
        let id = status(&mut c, &format!("{}/comp{i}:v1", reg.addr()))
            .await?
            .expect("pulled")
            .id;
        assert_eq!(chain_ids(&d, &id)?[0], base);
    }
    assert_eq!(d.snapshots().len(), 4);
    Ok(())
}

#[tokio::test]
async fn mirror_keeps_the_upstream_name() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let pushed = reg
        .client()
        .push_image(
            "pause",
            "3.10",
            &fixtures::pause_image()?,
            ManifestFormat::Oci,
        )
        .await?;
    d.mirror("registry.k8s.io", &reg.addr())?;
    let id = pull(&mut c, "registry.k8s.io/pause:3.10").await?;
    assert_eq!(id, pushed.config_digest);
    let img = status(&mut c, "registry.k8s.io/pause:3.10")
        .await?
        .expect("pulled");
    assert_eq!(img.repo_tags, vec!["registry.k8s.io/pause:3.10".to_owned()]);
    assert_eq!(
        img.repo_digests,
        vec![format!("registry.k8s.io/pause@{}", pushed.manifest_digest)]
    );

    // Short names mean docker.io/library/...; a docker.io mirror serves them.
    reg.client()
        .push_image(
            "library/busybox",
            "latest",
            &busybox_image()?,
            ManifestFormat::Docker,
        )
        .await?;
    d.mirror("docker.io", &reg.addr())?;
    let id = pull(&mut c, "busybox").await?;
    let img = status(&mut c, "busybox")
        .await?
        .expect("short name resolves");
    assert_eq!(img.id, id);
    assert_eq!(
        img.repo_tags,
        vec!["docker.io/library/busybox:latest".to_owned()]
    );
    assert!(status(&mut c, "docker.io/library/busybox").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn retagging_moves_the_tag_and_remove_by_tag_untags() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let client = reg.client();
    let v1 = client
        .push_image(
            "app",
            "latest",
            &busybox_image()?.label("v", "1"),
            ManifestFormat::Oci,
        )
        .await?;
    pull(&mut c, &v1.reference).await?;
    let also = client
        .push_image(
            "app",
            "stable",
            &busybox_image()?.label("v", "1"),
            ManifestFormat::Oci,
        )
        .await?;
    pull(&mut c, &also.reference).await?;
    assert_eq!(
        list(&mut c).await?.len(),
        1,
        "same config, one image with two tags"
    );

    // latest now points to a new image: the old one keeps only "stable".
    let v2 = client
        .push_image(
            "app",
            "latest",
            &busybox_image()?.label("v", "2"),
            ManifestFormat::Oci,
        )
        .await?;
    pull(&mut c, &v2.reference).await?;
    let old = status(&mut c, &v1.config_digest).await?.expect("old image");
    assert_eq!(old.repo_tags, vec![format!("{}/app:stable", reg.addr())]);
    let new = status(&mut c, &v2.reference).await?.expect("new image");
    assert_eq!(new.id, v2.config_digest);

    // Removing by the last tag removes the image; its unique blobs go, shared layers stay.
    remove(&mut c, &also.reference).await?;
    assert!(status(&mut c, &v1.config_digest).await?.is_none());
    assert_eq!(list(&mut c).await?.len(), 1);
    assert!(
        !d.blobs()
            .iter()
            .any(|b| v1.config_digest.ends_with(b.as_str()))
    );
    assert_eq!(d.snapshots().len(), 1, "busybox layer still used by v2");
    remove(&mut c, &v2.reference).await?;
    assert_empty(&d, &mut c).await?;
    Ok(())
}

#[tokio::test]
async fn images_survive_restart_and_kill() -> Result<()> {
    let reg = Registry::start().await?;
    let mut d = TestDaemon::start().await?;
    let pushed = reg
        .client()
        .push_image("keep", "v1", &layered_image()?, ManifestFormat::Oci)
        .await?;
    let mut c = d.images().await?;
    pull(&mut c, &pushed.reference).await?;
    let before = list(&mut c).await?;

    d.restart().await?;
    let mut c = d.images().await?;
    assert_eq!(list(&mut c).await?, before);

    d.kill()?;
    assert!(
        d.socket().exists(),
        "a killed daemon leaves its socket behind"
    );
    d.start_again().await?;
    let mut c = d.images().await?;
    assert_eq!(list(&mut c).await?, before);
    let view = mount_image(&d, &pushed.config_digest)?;
    fixtures::check_rootfs(view.path(), fixtures::LAYERED_EXPECTED)?;
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_clear_errors() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    assert_status(
        pull(&mut c, "").await,
        Code::InvalidArgument,
        &["image.image is empty"],
    );
    assert_status(
        pull(&mut c, "Bad/Name").await,
        Code::InvalidArgument,
        &["Bad/Name", "lowercase"],
    );
    assert_status(pull(&mut c, "a b").await, Code::InvalidArgument, &["a b"]);
    let missing = format!("{}/nothing/here:v9", reg.addr());
    assert_status(pull(&mut c, &missing).await, Code::NotFound, &[&missing]);
    let bad_auth = corral_cri_api::v1::AuthConfig {
        auth: "%%%".into(),
        ..Default::default()
    };
    assert_status(
        pull_auth(&mut c, &missing, Some(bad_auth)).await,
        Code::InvalidArgument,
        &["auth"],
    );
    assert_status(
        remove(&mut c, "").await,
        Code::InvalidArgument,
        &["image.image"],
    );
    let r = c
        .image_status(ImageStatusRequest {
            image: None,
            verbose: false,
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["image.image"]);
    // An unreachable registry is UNAVAILABLE and names the endpoint.
    assert_status(
        pull(&mut c, "127.0.0.1:1/x:y").await,
        Code::Unavailable,
        &["127.0.0.1:1"],
    );
    assert_empty(&d, &mut c).await?;
    Ok(())
}

#[tokio::test]
async fn pinned_images_are_reported_and_kept() -> Result<()> {
    let reg = Registry::start().await?;
    let pushed = reg
        .client()
        .push_image(
            "infra/pause",
            "3.10",
            &fixtures::pause_image()?,
            ManifestFormat::Oci,
        )
        .await?;
    let other = reg
        .client()
        .push_image("app", "v1", &busybox_image()?, ManifestFormat::Oci)
        .await?;
    let d = TestDaemon::start_with(corral_tests::daemon::DaemonOptions {
        extra_config: format!("pinned_images = [{:?}]", pushed.reference),
        ..Default::default()
    })
    .await?;
    let mut c = d.images().await?;
    pull(&mut c, &pushed.reference).await?;
    pull(&mut c, &other.reference).await?;
    let img = status(&mut c, &pushed.reference).await?.expect("pulled");
    assert!(img.pinned);
    assert!(
        !status(&mut c, &other.reference)
            .await?
            .expect("pulled")
            .pinned
    );
    assert_status(
        remove(&mut c, &pushed.config_digest).await,
        Code::FailedPrecondition,
        &["pinned"],
    );
    assert!(status(&mut c, &pushed.reference).await?.is_some());
    remove(&mut c, &other.reference).await?;
    Ok(())
}

/// An image of many small files, like a Debian root filesystem: deleting its files takes far
/// longer than RemoveImage may (crictl waits 2 s), so RemoveImage answers once the image and
/// its snapshots have left the store, and the files go in the background; a daemon killed
/// meanwhile deletes them after its restart.
#[tokio::test]
async fn remove_image_answers_before_its_files_are_deleted_and_a_restart_finishes_it() -> Result<()>
{
    let fake = corral_tests::registry::FakeRegistry::start().await?;
    let mut layer = Layer::new();
    for d in 0..100 {
        layer = layer.dir(&format!("usr/share/doc/pkg{d}"));
        for f in 0..200 {
            layer = layer.file(&format!("usr/share/doc/pkg{d}/f{f}"), format!("{d}/{f}\n"));
        }
    }
    let image = busybox_image()?
        .layer(layer.build(Compression::Gzip)?)
        .build(ManifestFormat::Oci)?;
    serve_image(&fake, "many/files", "1", &image);
    let reference = format!("{}/many/files:1", fake.addr());
    let mut d = TestDaemon::start().await?;
    for round in 0..2 {
        let mut c = d.images().await?;
        pull(&mut c, &reference).await?;
        let snapshots = d.snapshots().len();
        let started = std::time::Instant::now();
        remove(&mut c, &reference).await?;
        let took = started.elapsed();
        // The snapshots left the store at once; 20 000 files are still being deleted.
        let pending = d.temporaries();
        assert_eq!(d.snapshots(), Vec::<String>::new(), "round {round}");
        assert!(
            pending.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("removed-"))),
            "round {round}: RemoveImage took {took:?} and left nothing to delete in the background (of {snapshots} snapshots): {pending:?}"
        );
        if round == 0 {
            // The background deletion finishes.
            let left = d
                .wait_no_temporaries(std::time::Duration::from_secs(30))
                .await;
            assert!(left.is_empty(), "left: {left:?}");
        } else {
            // Killed in the middle of it: the restarted daemon finishes it.
            d.kill()?;
            d.start_again().await?;
            let left = d
                .wait_no_temporaries(std::time::Duration::from_secs(30))
                .await;
            assert!(left.is_empty(), "left after a restart: {left:?}");
        }
        assert_empty(&d, &mut d.images().await?).await?;
    }
    Ok(())
}

/// What a Debian image is made of, small enough for `make test` (`debian_image` is the bench's
/// real one): a base of many small files over many directories with a hard link, symlinks and
/// xattrs, an apt-like layer giving a binary `security.capability`, and a layer deleting a
/// directory and a file with whiteouts and refilling an opaque directory. Pulled cold twice (the
/// second time beside the first copy's freshly deleted inodes), both times whole.
#[tokio::test]
async fn a_debian_like_tree_unpacks_whole_on_every_cold_pull() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    const CAP_NET_RAW: &[u8] = &[
        0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let mut base = Layer::new()
        .dir("etc")
        .dir("usr")
        .dir("usr/bin")
        .dir("usr/share");
    base = base
        .file_xattrs(
            "etc/os-release",
            "ID=debian\n",
            0o644,
            &[("user.corral.origin", b"debootstrap")],
        )
        .file_with("usr/bin/perl", "perl", 0o755, 0, 0)
        .hardlink("usr/bin/perl5.36.0", "usr/bin/perl")
        .symlink("usr/bin/awk", "/etc/alternatives/awk")
        .dir("usr/share/doc")
        .dir("usr/share/doc/pkg")
        .file("usr/share/doc/pkg/copyright", "c")
        .dir("usr/share/zoneinfo")
        .file("usr/share/zoneinfo/Old", "old");
    for d in 0..40 {
        base = base.dir(&format!("usr/share/perl/d{d}"));
        for f in 0..25 {
            base = base.file(&format!("usr/share/perl/d{d}/M{f}.pm"), format!("{d}/{f}"));
        }
    }
    let apt = Layer::new().dir("usr").dir("usr/bin").file_xattrs(
        "usr/bin/ping",
        "ping",
        0o755,
        &[("security.capability", CAP_NET_RAW)],
    );
    let purge = Layer::new()
        .dir("usr")
        .dir("usr/share")
        .dir("usr/share/doc")
        .whiteout("usr/share/doc/pkg")
        .dir("usr/share/perl")
        .dir("usr/share/perl/d0")
        .whiteout("usr/share/perl/d0/M0.pm")
        .dir("usr/share/zoneinfo")
        .opaque("usr/share/zoneinfo")
        .file("usr/share/zoneinfo/UTC", "utc");
    let image = fixtures::Image::new()
        .layer(base.build(Compression::Gzip)?)
        .layer(apt.build(Compression::Gzip)?)
        .layer(purge.build(Compression::Gzip)?);
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let pushed = reg
        .client()
        .push_image("debian-like", "v1", &image, ManifestFormat::Oci)
        .await?;
    for round in 0..2 {
        let id = pull(&mut c, &pushed.reference).await?;
        let view = mount_image(&d, &id)?;
        let p = |rel: &str| view.path().join(rel);
        assert_eq!(
            std::fs::metadata(p("usr/bin/perl"))?.ino(),
            std::fs::metadata(p("usr/bin/perl5.36.0"))?.ino(),
            "round {round}: hard link"
        );
        assert_eq!(
            std::fs::read_link(p("usr/bin/awk"))?,
            std::path::Path::new("/etc/alternatives/awk")
        );
        assert_eq!(
            xattr::get(p("etc/os-release"), "user.corral.origin")?.as_deref(),
            Some(&b"debootstrap"[..]),
            "round {round}: user xattr"
        );
        assert_eq!(
            xattr::get(p("usr/bin/ping"), "security.capability")?.as_deref(),
            Some(CAP_NET_RAW),
            "round {round}: file capability"
        );
        assert!(!p("usr/share/doc/pkg").exists(), "round {round}: whiteout");
        assert!(!p("usr/share/perl/d0/M0.pm").exists());
        assert_eq!(
            std::fs::read_to_string(p("usr/share/perl/d0/M1.pm"))?,
            "0/1"
        );
        assert_eq!(
            std::fs::read_to_string(p("usr/share/perl/d39/M24.pm"))?,
            "39/24"
        );
        assert!(
            !p("usr/share/zoneinfo/Old").exists(),
            "round {round}: opaque"
        );
        assert_eq!(std::fs::read_to_string(p("usr/share/zoneinfo/UTC"))?, "utc");
        drop(view);
        // Layers are unpacked under top directories (ext4's `chattr +T`): the staging area,
        // and every directory a layer made, wherever lsattr can say.
        let base = chain_ids(&d, &id)?[0]
            .trim_start_matches("sha256:")
            .to_owned();
        let made = d
            .root()
            .join("snapshots")
            .join(base)
            .join("fs/usr/share/perl");
        for dir in [d.root().join("snapshots/.staging"), made] {
            if let Ok(out) = std::process::Command::new("lsattr")
                .arg("-d")
                .arg(&dir)
                .output()
                && out.status.success()
            {
                let attrs = String::from_utf8_lossy(&out.stdout);
                let flags = attrs.split_whitespace().next().unwrap_or_default();
                assert!(flags.contains('T'), "{attrs}");
            }
        }
        remove(&mut c, &pushed.reference).await?;
    }
    Ok(())
}
