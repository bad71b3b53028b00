//! Checkpoint and restore through the socket. CheckpointContainer: bad requests name the
//! field; a container that is not running, a CRIU that fails `criu check` and a pod on the
//! built-in runtime (which cannot checkpoint) are FAILED_PRECONDITION, and no archive or work
//! directory is left. CreateContainer from a checkpoint archive (an absolute path as the
//! image): a missing, corrupt or hostile archive, or one whose image is absent, is refused
//! naming the path and what is wrong. End to end on the runc handler: a counting process goes
//! on from its count in a new pod.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common;

use anyhow::{Context as _, Result, bail};
use common::assert_status;
use common::pod::{PodEnv, env, env_with, host_network};
use corral_cri_api::v1::{
    CheckpointContainerRequest, ContainerConfig, ImageSpec, ImageStatusRequest, Mount,
    RunPodSandboxRequest, StartContainerRequest,
};
use corral_tests::daemon::DaemonOptions;
use tonic::Code;

/// The CRIU corrald runs by default (its `runtime.criu_path` rule).
fn default_criu() -> PathBuf {
    let installed = Path::new("/usr/local/lib/corral/criu");
    if installed.is_file() {
        installed.to_path_buf()
    } else {
        PathBuf::from("criu")
    }
}

/// What `criu check` says here: `None` when it passes, else the reason.
fn criu_problem() -> Option<String> {
    match std::process::Command::new(default_criu())
        .arg("check")
        .output()
    {
        Err(_) => Some("not installed".into()),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            (!out.status.success() || text.lines().any(|l| l.starts_with("Error"))).then_some(text)
        }
    }
}

/// The daemon's checkpoint work directories left behind.
fn work_dirs_left(e: &PodEnv) -> Vec<PathBuf> {
    std::fs::read_dir(e.d.root().join("checkpoints"))
        .map(|rd| rd.flatten().map(|d| d.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_checks_its_request_and_says_why_it_cannot_run() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod_with(host_network(e.pod_config("ckpt"))).await?;
    let running = e.start(&pod, "ckpt", "sleeper", &["sleep", "1000"]).await?;
    let created = e
        .create(&pod, "ckpt", e.ctr_config("idle", &["true"]))
        .await?;
    let archive = e.logs.path().join("checkpoint.tar");
    let req = |id: &str, location: &str, timeout: i64| CheckpointContainerRequest {
        container_id: id.into(),
        location: location.into(),
        timeout,
    };
    let loc = archive.display().to_string();
    assert_status(
        e.rt.checkpoint_container(req("", &loc, 0)).await,
        Code::InvalidArgument,
        &["container_id"],
    );
    assert_status(
        e.rt.checkpoint_container(req(&running, "", 0)).await,
        Code::InvalidArgument,
        &["location"],
    );
    assert_status(
        e.rt.checkpoint_container(req(&running, "relative.tar", 0))
            .await,
        Code::InvalidArgument,
        &["relative.tar", "absolute"],
    );
    assert_status(
        e.rt.checkpoint_container(req(&running, "/nonexistent-dir/c.tar", 0))
            .await,
        Code::InvalidArgument,
        &["/nonexistent-dir", "does not exist"],
    );
    assert_status(
        e.rt.checkpoint_container(req(&running, &loc, -1)).await,
        Code::InvalidArgument,
        &["timeout"],
    );
    assert_status(
        e.rt.checkpoint_container(req("nope", &loc, 0)).await,
        Code::NotFound,
        &["nope"],
    );
    assert_status(
        e.rt.checkpoint_container(req(&created, &loc, 0)).await,
        Code::FailedPrecondition,
        &["not running"],
    );
    let answer = e.rt.checkpoint_container(req(&running, &loc, 0)).await;
    if let Err(s) = &answer {
        eprintln!(
            "CheckpointContainer of a running container: {:?}: {}",
            s.code(),
            s.message()
        );
    }
    match criu_problem() {
        Some(_) => assert_status(answer, Code::FailedPrecondition, &["CRIU", "criu"]),
        // The pod runs on the built-in runtime, whose shim cannot checkpoint.
        None => assert_status(answer, Code::FailedPrecondition, &["built-in runtime"]),
    }
    assert!(!archive.exists(), "no archive written");
    assert_eq!(work_dirs_left(&e), Vec::<PathBuf>::new());
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// An archive holding `entries` (name, contents; a name ending in `/` is a directory).
fn archive_with(dir: &Path, name: &str, entries: &[(&str, &[u8])]) -> Result<PathBuf> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        let kind = if path.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        h.set_entry_type(kind);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data)?;
    }
    let path = dir.join(name);
    std::fs::write(&path, b.into_inner()?)?;
    Ok(path)
}

fn from_archive(e: &PodEnv, name: &str, archive: &Path) -> ContainerConfig {
    let mut c = e.ctr_config(name, &["true"]);
    c.image = Some(ImageSpec {
        image: archive.display().to_string(),
        ..Default::default()
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_checkpoint_archive_is_refused_naming_the_problem() -> Result<()> {
    let mut e = env().await?;
    let pod = e
        .run_pod_with(host_network(e.pod_config("restore")))
        .await?;
    let dir = tempfile::tempdir()?;
    let image_id = busybox_id(&e).await?;
    let spec = br#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sleep","1"],"cwd":"/"},
        "mounts":[{"destination":"/data","type":"bind","source":"/srv/data","options":["rbind"]}]}"#;
    let config_of =
        |image: &str| format!(r#"{{"id":"x","name":"old","rootfsImageRef":"{image}"}}"#);
    let absent = config_of(&format!("sha256:{}", "0".repeat(64)));
    let present = config_of(&image_id);

    let garbage = dir.path().join("garbage.tar");
    std::fs::write(
        &garbage,
        b"definitely not a tar archive, only some text to read....",
    )?;
    let no_config = archive_with(dir.path(), "noconfig.tar", &[("spec.dump", spec)])?;
    let escaping = archive_with(dir.path(), "escape.tar", &[("../../escape", b"x")])?;
    let no_image = archive_with(
        dir.path(),
        "noimage.tar",
        &[
            ("checkpoint/", b""),
            ("config.dump", absent.as_bytes()),
            ("spec.dump", spec),
        ],
    )?;
    let needs_mount = archive_with(
        dir.path(),
        "mount.tar",
        &[
            ("checkpoint/", b""),
            ("config.dump", present.as_bytes()),
            ("spec.dump", spec),
        ],
    )?;
    let missing = dir.path().join("missing.tar");
    let cases: [(&Path, Code, Vec<String>); 6] = [
        (
            &missing,
            Code::NotFound,
            vec!["missing.tar".into(), "not found".into()],
        ),
        (
            &garbage,
            Code::InvalidArgument,
            vec!["garbage.tar".into(), "not a tar archive".into()],
        ),
        (
            &no_config,
            Code::InvalidArgument,
            vec!["noconfig.tar".into(), "config.dump is missing".into()],
        ),
        (
            &escaping,
            Code::InvalidArgument,
            vec!["escape.tar".into(), "leaves the archive".into()],
        ),
        (
            &no_image,
            Code::NotFound,
            vec![
                "noimage.tar".into(),
                "sha256:0000".into(),
                "pull it first".into(),
            ],
        ),
        (
            &needs_mount,
            Code::InvalidArgument,
            vec!["mount.tar".into(), "/data".into()],
        ),
    ];
    for (i, (archive, code, fragments)) in cases.iter().enumerate() {
        let config = from_archive(&e, &format!("r{i}"), archive);
        let fragments: Vec<&str> = fragments.iter().map(String::as_str).collect();
        assert_status(e.create(&pod, "restore", config).await, *code, &fragments);
        assert_eq!(
            work_dirs_left(&e),
            Vec::<PathBuf>::new(),
            "{}",
            archive.display()
        );
    }
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    // With the bind mount named again, the same archive gets past the checks; the built-in
    // runtime then refuses to restore or the empty image directory fails at Start, but a
    // container record exists and says where it came from.
    let mut config = from_archive(&e, "withmount", &needs_mount);
    config.mounts.push(Mount {
        container_path: "/data".into(),
        host_path: dir.path().display().to_string(),
        ..Default::default()
    });
    if let Ok(id) = e.create(&pod, "restore", config).await {
        let s = e.status(&id).await?;
        assert_eq!(
            s.annotations.get("io.corral.checkpoint.restored-from"),
            Some(&needs_mount.display().to_string())
        );
        assert_eq!(s.image.map(|i| i.image), Some(image_id.clone()));
    }
    assert_eq!(work_dirs_left(&e), Vec::<PathBuf>::new());
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// The busybox image's ID, as `config.dump`'s `rootfsImageRef` names it.
async fn busybox_id(e: &PodEnv) -> Result<String> {
    let mut images = e.d.images().await?;
    Ok(images
        .image_status(ImageStatusRequest {
            image: common::spec(&e.image),
            verbose: false,
        })
        .await?
        .into_inner()
        .image
        .context("busybox is pulled")?
        .id)
}

/// A daemon with the runc runtime handler and this host's CRIU.
async fn runc_env() -> Result<PodEnv> {
    env_with(DaemonOptions {
        runtime_config: format!(
            "criu_path = {:?}\n[runtime.handlers.runc]\npath = \"/usr/sbin/runc\"\n",
            default_criu()
        ),
        ..Default::default()
    })
    .await
}

/// A host-network pod on runc.
async fn runc_pod(e: &mut PodEnv, name: &str) -> Result<String> {
    Ok(e.rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(host_network(e.pod_config(name))),
            runtime_handler: "runc".into(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_fills_the_writable_layer_and_keeps_criu_s_images() -> Result<()> {
    let mut e = runc_env().await?;
    let pod = runc_pod(&mut e, "fill").await?;
    let dir = tempfile::tempdir()?;
    let image_id = busybox_id(&e).await?;
    let diff = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o1777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        b.append_data(&mut h, "tmp", std::io::empty())?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(2);
        b.append_data(&mut h, "tmp/count", &b"41"[..])?;
        b.into_inner()?
    };
    let config = format!(r#"{{"id":"x","name":"old","rootfsImageRef":"{image_id}"}}"#);
    let spec = br#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sleep","1000"],"cwd":"/"}}"#;
    let archive = archive_with(
        dir.path(),
        "fill.tar",
        &[
            ("checkpoint/", b""),
            ("checkpoint/inventory.img", b"criu"),
            ("config.dump", config.as_bytes()),
            ("spec.dump", spec),
            ("rootfs-diff.tar", &diff),
            ("deleted.files", br#"["/bin/ls"]"#),
        ],
    )?;
    // The built-in runtime does not restore: refused before anything is made.
    let builtin = e
        .run_pod_with(host_network(e.pod_config("builtin")))
        .await?;
    let refused = e
        .create(&builtin, "builtin", from_archive(&e, "filled", &archive))
        .await
        .expect_err("the built-in runtime cannot restore");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("OCI runtime handler"),
        "{refused:?}"
    );
    e.remove_pod(&builtin).await?;
    let id = e
        .create(&pod, "fill", from_archive(&e, "filled", &archive))
        .await
        .with_context(|| format!("CreateContainer from {}", archive.display()))?;
    let record = e.d.root().join("containers").join(&id);
    let upper = record.join("upper");
    assert_eq!(std::fs::read(upper.join("tmp/count"))?, b"41");
    let tmp = std::fs::metadata(upper.join("tmp"))?;
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&tmp.permissions()) & 0o7777,
        0o1777
    );
    let ls = std::fs::symlink_metadata(upper.join("bin/ls"))?;
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&ls.file_type()),
        "a whiteout"
    );
    assert_eq!(
        std::fs::read(record.join("checkpoint/inventory.img"))?,
        b"criu"
    );
    let s = e.status(&id).await?;
    assert_eq!(
        s.annotations.get("io.corral.checkpoint.restored-from"),
        Some(&archive.display().to_string())
    );
    assert_eq!(s.image.map(|i| i.image), Some(image_id.clone()));
    assert_eq!(work_dirs_left(&e), Vec::<PathBuf>::new());
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_image_is_restored_like_an_archive() -> Result<()> {
    use corral_tests::fixtures::{Compression, Image, Layer, ManifestFormat};
    let mut e = runc_env().await?;
    let pod = runc_pod(&mut e, "ckimg").await?;
    let image_id = busybox_id(&e).await?;
    let config = format!(r#"{{"id":"x","name":"old","rootfsImageRef":"{image_id}"}}"#);
    let spec = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sleep","1000"],"cwd":"/"}}"#;
    let contents = |extra: Layer| -> Result<_> {
        extra
            .dir("checkpoint")
            .file("checkpoint/inventory.img", "criu")
            .file("config.dump", config.as_str())
            .file("spec.dump", spec)
            .build(Compression::Gzip)
    };
    // CRI-O's annotation (buildah config --annotation), and one with a symlink in checkpoint/.
    let good = Image::new()
        .layer(contents(Layer::new())?)
        .annotation("io.kubernetes.cri-o.annotations.checkpoint.name", "counter")
        .build(ManifestFormat::Oci)?;
    let evil = Image::new()
        .layer(contents(
            Layer::new().symlink("checkpoint/pages-1.img", "/etc/shadow"),
        )?)
        .annotation("org.criu.checkpoint.container.name", "counter")
        .build(ManifestFormat::Oci)?;
    common::serve_image(&e._fake, "library/ckpt", "good", &good);
    common::serve_image(&e._fake, "library/ckpt", "evil", &evil);
    let mut images = e.d.images().await?;
    let registry = e._fake.addr().to_string();
    let name = |tag: &str| format!("{registry}/library/ckpt:{tag}");
    for tag in ["good", "evil"] {
        common::pull(&mut images, &name(tag)).await?;
    }
    let from_image = |ctr: &str, tag: &str| {
        let mut c = e.ctr_config(ctr, &["true"]);
        c.image = common::spec(&name(tag));
        c
    };
    let (evil_config, good_config) = (from_image("evil", "evil"), from_image("good", "good"));
    assert_status(
        e.create(&pod, "ckimg", evil_config).await,
        Code::InvalidArgument,
        &["ckpt:evil", "checkpoint/pages-1.img", "symlink"],
    );
    match e.create(&pod, "ckimg", good_config).await {
        Ok(id) => {
            let record = e.d.root().join("containers").join(&id);
            assert_eq!(
                std::fs::read(record.join("checkpoint/inventory.img"))?,
                b"criu"
            );
            let s = e.status(&id).await?;
            assert_eq!(
                s.annotations.get("io.corral.checkpoint.restored-from"),
                Some(&name("good"))
            );
            assert_eq!(s.image.map(|i| i.image), Some(image_id.clone()));
        }
        Err(s) if s.code() == Code::FailedPrecondition => {
            eprintln!("restore refused at Create: {}", s.message())
        }
        Err(s) => bail!("CreateContainer from checkpoint image: {s:?}"),
    }
    assert_eq!(work_dirs_left(&e), Vec::<PathBuf>::new());
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// Reads the last whole number the container logged.
fn last_count(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    common::pod::parse_log(&text)
        .iter()
        .rev()
        .find_map(|(_, _, line)| line.trim().parse().ok())
}

async fn wait_count_above(log: &Path, floor: u64, within: Duration) -> Result<u64> {
    let until = Instant::now() + within;
    loop {
        if let Some(n) = last_count(log).filter(|&n| n > floor) {
            return Ok(n);
        }
        if Instant::now() > until {
            bail!(
                "{}: no count above {floor} within {within:?} (last: {:?})",
                log.display(),
                last_count(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole path on the runc runtime handler with this host's CRIU: checkpoint a running
/// counter into an archive, remove its pod, restore it into a new pod, and see it count on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counting_process_continues_from_its_count_in_a_new_pod() -> Result<()> {
    if let Some(why) = criu_problem() {
        bail!("CRIU does not work here (scripts/install-deps.sh criu): {why}");
    }
    let mut e = env_with(DaemonOptions {
        runtime_config: format!(
            "criu_path = {:?}\n[runtime.handlers.runc]\npath = \"/usr/sbin/runc\"\n",
            default_criu()
        ),
        ..Default::default()
    })
    .await?;
    let run_pod = |e: &mut PodEnv, name: &str| {
        let config = host_network(e.pod_config(name));
        let mut rt = e.rt.clone();
        async move {
            Ok::<_, anyhow::Error>(
                rt.run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: "runc".into(),
                })
                .await?
                .into_inner()
                .pod_sandbox_id,
            )
        }
    };
    // The count lives in the shell's memory; the log shows it.
    let script = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done";
    let pod = run_pod(&mut e, "counter").await?;
    let counter = e
        .start(&pod, "counter", "count", &["sh", "-c", script])
        .await?;
    let log = e.log_file("count");
    let before = wait_count_above(&log, 20, Duration::from_secs(30)).await?;
    let archive = e.logs.path().join("counter.tar");
    e.rt.checkpoint_container(CheckpointContainerRequest {
        container_id: counter.clone(),
        location: archive.display().to_string(),
        timeout: 60,
    })
    .await?;
    let meta = std::fs::symlink_metadata(&archive)?;
    assert!(meta.is_file());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    // The checkpointed container keeps running (the CRI's default) and counting.
    let after = last_count(&log).unwrap_or(0);
    assert_eq!(
        e.status(&counter).await?.state,
        corral_cri_api::v1::ContainerState::ContainerRunning as i32
    );
    wait_count_above(&log, after + 5, Duration::from_secs(30)).await?;
    e.remove_pod(&pod).await?;

    let pod = run_pod(&mut e, "restored").await?;
    let mut config = from_archive(&e, "count2", &archive);
    config.log_path = "count2.log".into();
    let restored = e.create(&pod, "restored", config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: restored.clone(),
    })
    .await?;
    let log2 = e.log_file("count2");
    let first = {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log2).unwrap_or_default();
            if let Some(n) = common::pod::parse_log(&text)
                .iter()
                .find_map(|(_, _, l)| l.trim().parse::<u64>().ok())
            {
                break n;
            }
            if Instant::now() > until {
                bail!("the restored container logged no count");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // The dump happened after the count reached `before`; a process that started over would
    // count from 1.
    assert!(
        first > before,
        "the restored process started over: first count {first}, {before} before the checkpoint"
    );
    wait_count_above(&log2, first + 5, Duration::from_secs(30)).await?;
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
