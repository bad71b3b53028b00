//! Image volumes (KEP-4639): a CRI mount naming an image mounts that image's root filesystem
//! read-only, nosuid, nodev and noexec; `image_sub_path` picks a path inside it (symlinks
//! resolved within the image); RemoveImage refuses an image mounted this way.

use crate::common;

use anyhow::Result;
use common::pod::env;
use common::{pull, serve_image};
use corral_cri_api::v1::{
    ExecSyncRequest, ImageSpec, Mount, RemoveImageRequest, StartContainerRequest,
};
use corral_tests::fixtures::{Compression, Image, Layer, ManifestFormat};
use corral_tests::registry::FakeRegistry;

fn image_mount(path: &str, image: &str, sub: &str) -> Mount {
    Mount {
        container_path: path.into(),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        image_sub_path: sub.into(),
        readonly: true,
        ..Default::default()
    }
}

/// Serves `library/data:1` (two layers: an overlay when mounted) and `library/single:1` (one
/// layer: a bind) and returns the registry with both references.
async fn data_images() -> Result<(FakeRegistry, String, String)> {
    let fake = FakeRegistry::start().await?;
    let data = Image::new()
        .layer(
            Layer::new()
                .file("data/hello", "hello from the image\n")
                .file_with("bin/tool", "#!/bin/sh\necho ran\n", 0o755, 0, 0)
                .file("etc/marker", "the image's etc\n")
                .build(Compression::Gzip)?,
        )
        .layer(
            Layer::new()
                .file("data/second", "second layer\n")
                .symlink("escape", "/etc")
                .build(Compression::Gzip)?,
        )
        .build(ManifestFormat::Oci)?;
    serve_image(&fake, "library/data", "1", &data);
    let single = Image::new()
        .layer(
            Layer::new()
                .file("only", "one layer\n")
                .build(Compression::Gzip)?,
        )
        .build(ManifestFormat::Oci)?;
    serve_image(&fake, "library/single", "1", &single);
    let (data_ref, single_ref) = (
        format!("{}/library/data:1", fake.addr()),
        format!("{}/library/single:1", fake.addr()),
    );
    Ok((fake, data_ref, single_ref))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_volume_is_the_images_files_read_only_and_not_executable() -> Result<()> {
    let mut e = env().await?;
    let (_fake, data_ref, single_ref) = data_images().await?;
    let mut images = e.d.images().await?;
    pull(&mut images, &data_ref).await?;
    pull(&mut images, &single_ref).await?;

    let pod = e.run_pod("iv").await?;
    let mut config = e.ctr_config("reader", &["sleep", "1000"]);
    config.mounts = vec![
        image_mount("/vol", &data_ref, ""),
        image_mount("/sub", &data_ref, "data"),
        image_mount("/esc", &data_ref, "escape"),
        image_mount("/one", &single_ref, ""),
    ];
    let id = e.create(&pod, "iv", config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    let out =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "cat /vol/data/hello /vol/data/second /sub/hello /esc/marker /one/only; \
                 touch /vol/new 2>/dev/null || echo read-only; \
                 /vol/bin/tool 2>/dev/null || echo not-executable; \
                 test -e /esc/hostname || echo not-the-hosts-etc"
                    .into(),
            ],
            timeout: 10,
        })
        .await?
        .into_inner();
    let out = String::from_utf8_lossy(&out.stdout);
    for want in [
        "hello from the image",
        "second layer",
        "the image's etc",
        "one layer",
        "read-only",
        "not-executable",
        "not-the-hosts-etc",
    ] {
        assert!(out.contains(want), "{want:?} not in {out:?}");
    }
    assert_eq!(out.matches("hello from the image").count(), 2, "{out}");

    // Refused while mounted, naming the container.
    let err = images
        .remove_image(RemoveImageRequest {
            image: common::spec(&data_ref),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains(&id) && err.message().contains("image volume"),
        "{}",
        err.message()
    );

    // Bad requests name what is wrong and leave nothing.
    let mut bad = e.ctr_config("bad", &["sleep", "1000"]);
    bad.mounts = vec![image_mount("/vol", &data_ref, "no/such/dir")];
    let err = e.create(&pod, "iv", bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("does not exist in image"),
        "{}",
        err.message()
    );
    let mut bad = e.ctr_config("bad", &["sleep", "1000"]);
    bad.mounts = vec![image_mount("/vol", "example.invalid/never:pulled", "")];
    let err = e.create(&pod, "iv", bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("mounts[0].image"),
        "{}",
        err.message()
    );

    e.remove_pod(&pod).await?;
    e.assert_clean();
    common::remove(&mut images, &data_ref).await?;
    common::remove(&mut images, &single_ref).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_manager_pulls_and_mounts_image_volumes() -> Result<()> {
    let mut k = common::kube::kube_env().await?;
    let (_fake, data_ref, _) = data_images().await?;
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: iv\nspec:\n  containers:\n  - name: c\n    image: IMAGE\n    command: [sleep, \"1000\"]\n    volumeMounts:\n    - {{name: data, mountPath: /data}}\n    - {{name: data, mountPath: /hello, subPath: data}}\n  volumes:\n  - name: data\n    image: {{reference: {data_ref}, pullPolicy: IfNotPresent}}\n"
    );
    k.apply(&yaml).await?;
    k.wait_phase("iv", "Running", std::time::Duration::from_secs(30))
        .await?;
    let (code, out) = k
        .exec(
            "iv",
            "c",
            &[
                "sh",
                "-c",
                "cat /data/data/second /hello/hello; touch /data/x || echo ro",
            ],
        )
        .await?;
    assert_eq!(code, 0, "{out}");
    for want in ["second layer", "hello from the image", "ro"] {
        assert!(out.contains(want), "{want:?} not in {out:?}");
    }
    let events = k.events("iv").await?;
    assert!(
        events
            .iter()
            .any(|e| e.message.contains(&data_ref) && e.reason == "Pulled"),
        "no pull of the volume's image: {events:?}"
    );
    k.delete_all_and_assert_clean().await?;
    Ok(())
}
