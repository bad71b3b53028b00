//! Pull behaviour against registries: authentication, TLS, concurrency, deadlines,
//! interruptions.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use corral_cri_api::v1::{AuthConfig, PullImageRequest};
use corral_tests::daemon::{DaemonOptions, TestDaemon};
use corral_tests::fixtures::{
    BuiltImage, Compression, Layer, ManifestFormat, big_image, busybox_image,
};
use corral_tests::registry::{CannedResponse, FakeRegistry, Registry, RegistryOptions};
use tonic::Code;

#[tokio::test]
async fn basic_auth_from_the_request_or_the_credentials_file() -> Result<()> {
    let reg = Registry::start_with(RegistryOptions::new().user("alice", "s3cret:pw")).await?;
    let pushed = reg
        .client()
        .push_image("private/app", "v1", &busybox_image()?, ManifestFormat::Oci)
        .await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;

    assert_status(
        pull(&mut c, &pushed.reference).await,
        Code::Unauthenticated,
        &["private/app"],
    );
    let wrong = AuthConfig {
        username: "alice".into(),
        password: "nope".into(),
        ..Default::default()
    };
    assert_status(
        pull_auth(&mut c, &pushed.reference, Some(wrong)).await,
        Code::Unauthenticated,
        &[],
    );

    let by_fields = AuthConfig {
        username: "alice".into(),
        password: "s3cret:pw".into(),
        ..Default::default()
    };
    assert_eq!(
        pull_auth(&mut c, &pushed.reference, Some(by_fields)).await?,
        pushed.config_digest
    );
    remove(&mut c, &pushed.reference).await?;

    use base64::Engine as _;
    let by_auth = AuthConfig {
        auth: base64::engine::general_purpose::STANDARD.encode("alice:s3cret:pw"),
        ..Default::default()
    };
    assert_eq!(
        pull_auth(&mut c, &pushed.reference, Some(by_auth)).await?,
        pushed.config_digest
    );
    remove(&mut c, &pushed.reference).await?;
    drop(c);
    drop(d);

    // Static credentials from a Docker-style file.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("auth.json");
    let entry = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:pw");
    std::fs::write(
        &file,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{entry}"}}}}}}"#,
            reg.addr()
        ),
    )?;
    let d = TestDaemon::start_with(DaemonOptions {
        extra_config: format!("credentials_file = {:?}", file),
        ..Default::default()
    })
    .await?;
    let mut c = d.images().await?;
    assert_eq!(pull(&mut c, &pushed.reference).await?, pushed.config_digest);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_fetch_each_blob_once() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let shared = Layer::new()
        .file("shared/data", vec![7u8; 512 << 10])
        .build(Compression::Gzip)?;
    let a = busybox_image()?
        .layer(shared.clone())
        .label("img", "a")
        .build(ManifestFormat::Oci)?;
    let b = busybox_image()?
        .layer(shared.clone())
        .label("img", "b")
        .build(ManifestFormat::Docker)?;
    serve_image(&fake, "app/a", "v1", &a);
    serve_image(&fake, "app/b", "v1", &b);
    // Both repositories hold the same layer blobs (as registries do with cross-repo mounts).
    let d = TestDaemon::start().await?;

    let mut jobs = Vec::new();
    for i in 0..6 {
        let name = format!(
            "{}/app/{}:v1",
            fake.addr(),
            if i % 2 == 0 { "a" } else { "b" }
        );
        let mut c = d.images().await?;
        jobs.push(tokio::spawn(async move { pull(&mut c, &name).await }));
    }
    let mut ids = Vec::new();
    for j in jobs {
        ids.push(j.await??);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids, {
        let mut v = vec![a.config_digest.clone(), b.config_digest.clone()];
        v.sort();
        v
    });
    let requests = fake.requests();
    for layer in &a.layers {
        let fetched = requests
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{}", layer.digest)))
            .count();
        assert_eq!(
            fetched, 1,
            "layer {} fetched {fetched} times: {requests:#?}",
            layer.digest
        );
    }
    assert_eq!(d.snapshots().len(), 2);
    assert!(
        d.wait_no_temporaries(Duration::from_secs(5))
            .await
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn a_one_millisecond_deadline_leaves_nothing() -> Result<()> {
    let reg = Registry::start().await?;
    let pushed = reg
        .client()
        .push_image("big", "v1", &big_image(24 << 20, 3)?, ManifestFormat::Oci)
        .await?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let mut req = tonic::Request::new(PullImageRequest {
        image: spec(&pushed.reference),
        ..Default::default()
    });
    req.set_timeout(Duration::from_millis(1));
    // tonic's client enforces the deadline itself and reports CANCELLED "Timeout expired"
    // (a Go client reports DEADLINE_EXCEEDED); either way the call fails on the deadline.
    // The server's own DEADLINE_EXCEEDED is checked with a longer deadline below.
    let err = c
        .pull_image(req)
        .await
        .expect_err("1 ms is too short to pull");
    assert!(
        err.code() == Code::DeadlineExceeded
            || (err.code() == Code::Cancelled && err.message() == "Timeout expired"),
        "{err:?}"
    );
    // A layer may have completed before the deadline: it is kept for the retry, whole.
    assert_only_completed_layers_kept(&d, &mut c, &layer_digests(&pushed.image)).await?;
    // Nothing half-made stands in the way of a normal pull afterwards.
    assert_eq!(pull(&mut c, &pushed.reference).await?, pushed.config_digest);
    Ok(())
}

/// Serves `slow:v1`: busybox plus a 4 MiB layer whose download stops half-way, forever.
fn serve_stalling_image(fake: &FakeRegistry) -> Result<BuiltImage> {
    let big = Layer::new()
        .file(
            "blob",
            (0..4u32 << 20)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect::<Vec<u8>>(),
        )
        .build(Compression::Gzip)?;
    let img = busybox_image()?.layer(big).build(ManifestFormat::Oci)?;
    serve_image(fake, "slow", "v1", &img);
    let last = img.layers.last().expect("layer");
    fake.route(
        &format!("/v2/slow/blobs/{}", last.digest),
        CannedResponse::new(200, last.data.clone()).stall_after(last.data.len() / 2),
    );
    Ok(img)
}

/// The layers of a stalling image that can complete: all but the stalled last one.
fn completable(img: &BuiltImage) -> Vec<&str> {
    let mut all = layer_digests(img);
    all.pop();
    all
}

#[tokio::test]
async fn a_stalled_download_is_cut_by_the_deadline_and_cleaned_up() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let img = serve_stalling_image(&fake)?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let mut req = tonic::Request::new(PullImageRequest {
        image: spec(&format!("{}/slow:v1", fake.addr())),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(2));
    assert_status(c.pull_image(req).await, Code::DeadlineExceeded, &["slow"]);
    assert_only_completed_layers_kept(&d, &mut c, &completable(&img)).await?;
    Ok(())
}

#[tokio::test]
async fn mirrors_fall_through_to_the_next_endpoint() -> Result<()> {
    let reg = Registry::start().await?;
    let pushed = reg
        .client()
        .push_image("team/app", "v2", &busybox_image()?, ManifestFormat::Oci)
        .await?;
    let d = TestDaemon::start().await?;
    // A dead mirror first, then a working one (reached by another name, with an extra header).
    let alt = reg.addr().replace("127.0.0.1", "localhost");
    d.write_hosts(
        "example.invalid",
        &format!(
            "server = \"https://example.invalid\"\n\
             [host.\"http://127.0.0.1:1\"]\n  capabilities = [\"pull\", \"resolve\"]\n\
             [host.\"http://{alt}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  [host.\"http://{alt}\".header]\n    x-corral-test = \"1\"\n",
        ),
    )?;
    let mut c = d.images().await?;
    assert_eq!(
        pull(&mut c, "example.invalid/team/app:v2").await?,
        pushed.config_digest
    );
    let img = status(&mut c, "example.invalid/team/app:v2")
        .await?
        .expect("pulled");
    assert_eq!(
        img.repo_tags,
        vec!["example.invalid/team/app:v2".to_owned()]
    );

    // A mirror with only "pull" cannot resolve a tag; the upstream cannot be reached.
    d.write_hosts(
        "pullonly.invalid",
        &format!("server = \"http://127.0.0.1:1\"\n[host.\"http://{alt}\"]\n  capabilities = [\"pull\"]\n"),
    )?;
    assert_status(
        pull(&mut c, "pullonly.invalid/team/app:v2").await,
        Code::Unavailable,
        &["127.0.0.1:1"],
    );
    // By digest, the pull-only mirror serves it.
    let by_digest = format!("pullonly.invalid/team/app@{}", pushed.manifest_digest);
    assert_eq!(pull(&mut c, &by_digest).await?, pushed.config_digest);
    Ok(())
}

#[tokio::test]
async fn tls_registry_trusted_through_hosts_ca_or_skip_verify() -> Result<()> {
    let reg = Registry::start_with(RegistryOptions::new().tls()).await?;
    let pushed = reg
        .client()
        .push_image("secure/app", "v1", &busybox_image()?, ManifestFormat::Oci)
        .await?;
    let ca = reg.ca_path().expect("a TLS registry has a CA");
    let server = format!("server = \"{}\"\n", reg.url());
    assert!(server.contains("https://"), "{server}");
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;

    // HTTPS without the CA: the certificate is not trusted (rustls: "invalid peer
    // certificate: UnknownIssuer"), and the error names the endpoint.
    d.write_hosts(&reg.addr(), &server)?;
    assert_status(
        pull(&mut c, &pushed.reference).await,
        Code::Unavailable,
        &[&reg.addr(), "certificate"],
    );
    assert_empty(&d, &mut c).await?;

    // The registry's CA from `ca`.
    d.write_hosts(
        &reg.addr(),
        &format!("{server}ca = {:?}\n", ca.display().to_string()),
    )?;
    assert_eq!(pull(&mut c, &pushed.reference).await?, pushed.config_digest);
    assert_empty_after_remove(&d, &mut c, &pushed.reference).await?;

    // No CA, but verification off.
    d.write_hosts(&reg.addr(), &format!("{server}skip_verify = true\n"))?;
    assert_eq!(pull(&mut c, &pushed.reference).await?, pushed.config_digest);
    assert_empty_after_remove(&d, &mut c, &pushed.reference).await
}

#[tokio::test]
async fn bearer_token_challenge_flows() -> Result<()> {
    use corral_tests::registry::BearerGate;
    let fake = FakeRegistry::start().await?;
    let img = busybox_image()?.build(ManifestFormat::Oci)?;
    serve_image(&fake, "private/app", "v1", &img);
    fake.require_bearer(BearerGate {
        token: "t0k3n".into(),
        basic: Some(("bob".into(), "hunter2".into())),
        refresh_token: Some("refresh-123".into()),
    });
    let image = format!("{}/private/app:v1", fake.addr());
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;

    // Anonymous: the token endpoint refuses, and the error says so.
    assert_status(
        pull(&mut c, &image).await,
        Code::Unauthenticated,
        &["token request"],
    );

    // Basic credentials exchanged for a token at the realm.
    let basic = AuthConfig {
        username: "bob".into(),
        password: "hunter2".into(),
        ..Default::default()
    };
    assert_eq!(
        pull_auth(&mut c, &image, Some(basic)).await?,
        img.config_digest
    );
    remove(&mut c, &image).await?;
    // The token obtained with bob's credentials does not serve an anonymous caller.
    assert_status(
        pull(&mut c, &image).await,
        Code::Unauthenticated,
        &["token request"],
    );

    // An identity token: the OAuth2 refresh-token POST.
    let identity = AuthConfig {
        identity_token: "refresh-123".into(),
        ..Default::default()
    };
    assert_eq!(
        pull_auth(&mut c, &image, Some(identity)).await?,
        img.config_digest
    );
    assert!(
        fake.requests().iter().any(|r| r == "POST /token"),
        "{:#?}",
        fake.requests()
    );
    remove(&mut c, &image).await?;

    // A registry token is sent as the bearer token directly.
    let registry_token = AuthConfig {
        registry_token: "t0k3n".into(),
        ..Default::default()
    };
    assert_eq!(
        pull_auth(&mut c, &image, Some(registry_token)).await?,
        img.config_digest
    );
    assert_empty_after_remove(&d, &mut c, &image).await
}

async fn assert_empty_after_remove(d: &TestDaemon, c: &mut Images, image: &str) -> Result<()> {
    remove(c, image).await?;
    assert_empty(d, c).await
}

#[tokio::test]
async fn a_daemon_killed_mid_pull_leaves_nothing_after_restart() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    serve_stalling_image(&fake)?;
    let mut d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let image = format!("{}/slow:v1", fake.addr());
    let pulling = tokio::spawn(async move { pull(&mut c, &image).await });
    // Wait until the busybox layer is committed and the stalled one is half-way.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while (d.snapshots().is_empty() || d.temporaries().is_empty())
        && std::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !d.snapshots().is_empty() && !d.temporaries().is_empty(),
        "pull never got half-way"
    );
    d.kill()?;
    assert!(
        pulling.await?.is_err(),
        "the pull cannot succeed when the daemon dies"
    );

    d.start_again().await?;
    let mut c = d.images().await?;
    assert_empty(&d, &mut c).await
}

/// A pull onto a full disk fails with RESOURCE_EXHAUSTED naming the cause, leaves nothing, and
/// the daemon goes on.
#[tokio::test]
async fn a_pull_onto_a_full_disk_is_resource_exhausted_and_leaves_nothing() -> Result<()> {
    let reg = Registry::start().await?;
    let pushed = reg
        .client()
        .push_image("big", "v1", &big_image(96 << 20, 3)?, ManifestFormat::Oci)
        .await?;
    let d = TestDaemon::start_with(DaemonOptions {
        root_tmpfs_mib: Some(24),
        ..Default::default()
    })
    .await?;
    let mut c = d.images().await?;
    let err = c
        .pull_image(PullImageRequest {
            image: spec(&pushed.reference),
            ..Default::default()
        })
        .await
        .expect_err("the layers do not fit in 24 MiB");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("No space left on device"),
        "the cause is named: {}",
        err.message()
    );
    assert_empty(&d, &mut c).await?;
    // The daemon still answers, and a small image still fits once the space is back.
    let small = reg
        .client()
        .push_image("small", "v1", &busybox_image()?, ManifestFormat::Oci)
        .await?;
    pull(&mut c, &small.reference).await?;
    Ok(())
}

/// A registry that stops sending in the middle of a layer fails the pull once a window brings
/// less than the minimum rate, with no deadline set, and leaves nothing.
#[tokio::test]
async fn a_download_under_the_minimum_rate_fails_instead_of_hanging() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let img = serve_stalling_image(&fake)?;
    let d = TestDaemon::start_with(DaemonOptions {
        // The harness puts extra lines in its `[images]` table.
        extra_config: "min_pull_rate_bytes_per_sec = 1024\npull_rate_window_secs = 2\n".into(),
        ..Default::default()
    })
    .await?;
    let mut c = d.images().await?;
    let began = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        c.pull_image(PullImageRequest {
            image: spec(&format!("{}/slow:v1", fake.addr())),
            ..Default::default()
        }),
    )
    .await?;
    assert_status(result, Code::Unavailable, &["minimum rate", "slow"]);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "cut after one 2 s window, not {:?}",
        began.elapsed()
    );
    assert_only_completed_layers_kept(&d, &mut c, &completable(&img)).await?;
    Ok(())
}

/// A registry that answers 503 a few times (restarting, overloaded) is asked again with
/// back-off, for the manifest and for blobs, and the pull succeeds.
#[tokio::test]
async fn transient_registry_errors_are_retried_with_back_off() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let img = busybox_image()?.build(ManifestFormat::Oci)?;
    serve_image(&fake, "flaky", "v1", &img);
    let layer = img.layers.last().expect("a layer");
    fake.route(
        "/v2/flaky/manifests/v1",
        CannedResponse::new(200, img.manifest.clone())
            .header("Content-Type", img.manifest_media_type())
            .header(
                "Docker-Content-Digest",
                &corral_tests::fixtures::sha256_digest(&img.manifest),
            )
            .fail_first(2),
    );
    fake.route(
        &format!("/v2/flaky/blobs/{}", layer.digest),
        CannedResponse::new(200, layer.data.clone()).fail_first(2),
    );
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let got = pull(&mut c, &format!("{}/flaky:v1", fake.addr())).await?;
    assert_eq!(got, img.config_digest);
    let asked = |path: &str| fake.requests().iter().filter(|r| r.contains(path)).count();
    assert!(
        asked("/v2/flaky/manifests/v1") >= 3,
        "{:?}",
        fake.requests()
    );
    assert_eq!(asked(&format!("/v2/flaky/blobs/{}", layer.digest)), 3);
    Ok(())
}

/// A connection reset in the middle of a layer is the registry's failure (UNAVAILABLE, worth a
/// retry), not bad content; it leaves nothing, and the same pull succeeds once the registry
/// does.
#[tokio::test]
async fn a_connection_reset_mid_layer_is_unavailable_and_a_retry_succeeds() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let img = busybox_image()?.build(ManifestFormat::Oci)?;
    serve_image(&fake, "reset", "v1", &img);
    let layer = img.layers.last().expect("a layer");
    let path = format!("/v2/reset/blobs/{}", layer.digest);
    fake.route(
        &path,
        CannedResponse::new(200, layer.data.clone()).reset_after(layer.data.len() / 2),
    );
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let image = format!("{}/reset:v1", fake.addr());
    assert_status(
        pull(&mut c, &image).await,
        Code::Unavailable,
        &["download interrupted", "reset"],
    );
    assert_empty(&d, &mut c).await?;
    fake.route(&path, CannedResponse::new(200, layer.data.clone()));
    assert_eq!(pull(&mut c, &image).await?, img.config_digest);
    Ok(())
}

/// A blob whose `Content-Length` is not the descriptor's size (shorter or longer than the body,
/// or a body of another size), or whose body ends early without one, is DATA_LOSS naming the
/// image and the digest, at once (no hang, no byte past the descriptor's size accepted), and
/// leaves nothing.
#[tokio::test]
async fn a_blob_length_other_than_the_descriptor_is_data_loss_and_leaves_nothing() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let img = busybox_image()?.build(ManifestFormat::Oci)?;
    let layer = img.layers.last().expect("a layer");
    let size = layer.data.len();
    let mut longer_body = layer.data.clone();
    longer_body.extend_from_slice(&[0u8; 4096]);
    let short = (size - 100).to_string();
    let long = (size + 100).to_string();
    let cases = [
        (
            "shorter",
            CannedResponse::new(200, layer.data.clone()).header("Content-Length", &short),
            vec!["Content-Length", short.as_str()],
        ),
        (
            "longer",
            CannedResponse::new(200, layer.data.clone()).header("Content-Length", &long),
            vec!["Content-Length", long.as_str()],
        ),
        (
            "othersize",
            CannedResponse::new(200, longer_body),
            vec!["Content-Length"],
        ),
        (
            "unannounced",
            CannedResponse::new(200, layer.data[..size - 100].to_vec()).without_length(),
            vec!["ended the body after", "the manifest names"],
        ),
    ];
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    for (name, resp, fragments) in cases {
        serve_image(&fake, name, "v1", &img);
        let path = format!("/v2/{name}/blobs/{}", layer.digest);
        fake.route(&path, resp);
        let pulled = tokio::time::timeout(
            Duration::from_secs(30),
            pull(&mut c, &format!("{}/{name}:v1", fake.addr())),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: the pull hangs"));
        let mut want = vec![name, layer.digest.as_str()];
        want.extend(fragments);
        assert_status(pulled, Code::DataLoss, &want);
        assert_eq!(fake.gets(&path), 1, "{name}: {:#?}", fake.requests());
        assert_empty(&d, &mut c).await?;
    }

    // The image config is held to its descriptor's size the same way.
    serve_image(&fake, "config", "v1", &img);
    let config_path = format!("/v2/config/blobs/{}", img.config_digest);
    fake.route(
        &config_path,
        CannedResponse::new(200, img.config.clone())
            .header("Content-Length", &(img.config.len() + 1).to_string()),
    );
    assert_status(
        pull(&mut c, &format!("{}/config:v1", fake.addr())).await,
        Code::DataLoss,
        &["config", &img.config_digest, "Content-Length"],
    );
    assert_empty(&d, &mut c).await
}

/// A blob URL that redirects to itself or back and forth fails at once, saying it loops; a
/// chain longer than 10 redirects (the cap of containerd and Docker) fails after 10 hops; a
/// chain of 10 is followed.
#[tokio::test]
async fn redirect_loops_and_chains_over_ten_hops_fail_clearly() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let img = busybox_image()?.build(ManifestFormat::Oci)?;
    let layer = img.layers.last().expect("a layer");
    let blob = |name: &str| format!("/v2/{name}/blobs/{}", layer.digest);
    let at = |name: &str| format!("{}/{name}:v1", fake.addr());
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;

    serve_image(&fake, "self", "v1", &img);
    fake.route(&blob("self"), CannedResponse::redirect(&blob("self")));
    assert_status(
        pull(&mut c, &at("self")).await,
        Code::Unavailable,
        &["self", &layer.digest, "redirect loop"],
    );
    assert_eq!(fake.gets(&blob("self")), 1, "{:#?}", fake.requests());

    serve_image(&fake, "pingpong", "v1", &img);
    fake.route(
        &blob("pingpong"),
        CannedResponse::redirect("/elsewhere/pong"),
    );
    fake.route(
        "/elsewhere/pong",
        CannedResponse::redirect(&blob("pingpong")),
    );
    assert_status(
        pull(&mut c, &at("pingpong")).await,
        Code::Unavailable,
        &["pingpong", "redirect loop"],
    );
    assert_eq!(fake.gets(&blob("pingpong")), 1);
    assert_eq!(fake.gets("/elsewhere/pong"), 1);

    // Eleven hops: the eleventh redirect is not followed.
    serve_image(&fake, "far", "v1", &img);
    fake.route(&blob("far"), CannedResponse::redirect("/far/1"));
    for i in 1..=11 {
        fake.route(
            &format!("/far/{i}"),
            CannedResponse::redirect(&format!("/far/{}", i + 1)),
        );
    }
    assert_status(
        pull(&mut c, &at("far")).await,
        Code::Unavailable,
        &["far", "stopped after 10 redirects"],
    );
    let hops: usize = (1..=12).map(|i| fake.gets(&format!("/far/{i}"))).sum();
    assert_eq!(hops, 10, "{:#?}", fake.requests());
    assert_empty(&d, &mut c).await?;

    // Ten hops, the last serving the blob: followed.
    serve_image(&fake, "near", "v1", &img);
    fake.route(&blob("near"), CannedResponse::redirect("/near/1"));
    for i in 1..10 {
        fake.route(
            &format!("/near/{i}"),
            CannedResponse::redirect(&format!("/near/{}", i + 1)),
        );
    }
    fake.route("/near/10", CannedResponse::new(200, layer.data.clone()));
    assert_eq!(pull(&mut c, &at("near")).await?, img.config_digest);
    Ok(())
}

/// A registry that names a tag's manifest by one digest (`Docker-Content-Digest`, what a HEAD
/// resolves to) and sends the bytes of another (the tag moved between two requests) fails
/// DATA_LOSS naming both; nothing of either version is kept.
#[tokio::test]
async fn a_manifest_digest_header_that_disagrees_with_the_body_is_data_loss() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let v1 = busybox_image()?
        .label("v", "1")
        .build(ManifestFormat::Oci)?;
    let v2 = busybox_image()?
        .label("v", "2")
        .build(ManifestFormat::Oci)?;
    serve_image(&fake, "moving", "v1", &v1);
    serve_image(&fake, "moving", "v2", &v2);
    fake.route(
        "/v2/moving/manifests/v1",
        CannedResponse::new(200, v1.manifest.clone())
            .header("Content-Type", v1.manifest_media_type())
            .header("Docker-Content-Digest", &v2.manifest_digest),
    );
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    assert_status(
        pull(&mut c, &format!("{}/moving:v1", fake.addr())).await,
        Code::DataLoss,
        &[
            "moving",
            "Docker-Content-Digest",
            &v2.manifest_digest,
            &v1.manifest_digest,
        ],
    );
    assert_empty(&d, &mut c).await
}

/// A tag that moves to another index between two requests: the pull resolves it once and
/// builds the image from that index alone (child manifest, config and layers by digest, each
/// verified), never from a mix of versions; the next pull gets the new version.
#[tokio::test]
async fn a_tag_that_moves_between_requests_yields_one_consistent_image() -> Result<()> {
    use corral_tests::fixtures::build_index;
    let fake = FakeRegistry::start().await?;
    let idx1 = build_index(&[busybox_image()?.label("v", "1")], ManifestFormat::Oci)?;
    let idx2 = build_index(&[busybox_image()?.label("v", "2")], ManifestFormat::Oci)?;
    let index_response = |idx: &corral_tests::fixtures::BuiltIndex| {
        CannedResponse::new(200, idx.bytes.clone())
            .header("Content-Type", idx.media_type())
            .header("Docker-Content-Digest", &idx.digest)
    };
    for img in idx1.images.iter().chain(&idx2.images) {
        serve_image(&fake, "moving", &img.manifest_digest, img);
    }
    let tag = "/v2/moving/manifests/stable";
    fake.route(tag, index_response(&idx1).then(index_response(&idx2)));
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let image = format!("{}/moving:stable", fake.addr());

    let (one, two) = (&idx1.images[0], &idx2.images[0]);
    assert_eq!(pull(&mut c, &image).await?, one.config_digest);
    assert_eq!(fake.gets(tag), 1, "{:#?}", fake.requests());
    let fetched_v2 = fake.gets(&format!("/v2/moving/manifests/{}", two.manifest_digest))
        + fake.gets(&format!("/v2/moving/blobs/{}", two.config_digest));
    assert_eq!(fetched_v2, 0, "{:#?}", fake.requests());
    let st = status(&mut c, &image).await?.expect("pulled");
    assert_eq!(
        st.repo_digests,
        vec![format!("{}/moving@{}", fake.addr(), idx1.digest)]
    );

    assert_eq!(pull(&mut c, &image).await?, two.config_digest);
    let st = status(&mut c, &image).await?.expect("pulled");
    assert_eq!(st.id, two.config_digest);
    Ok(())
}

/// Busybox plus two more layers, the third failing with 404, served as `name:v1`; returns the
/// image and the third layer's blob path.
fn serve_image_failing_its_third_layer(
    fake: &FakeRegistry,
    name: &str,
) -> Result<(BuiltImage, String)> {
    let img = busybox_image()?
        .layer(
            Layer::new()
                .file("a", vec![1u8; 256 << 10])
                .build(Compression::Gzip)?,
        )
        .layer(
            Layer::new()
                .file("b", vec![2u8; 256 << 10])
                .build(Compression::Gzip)?,
        )
        .label("image", name)
        .build(ManifestFormat::Oci)?;
    serve_image(fake, name, "v1", &img);
    let third = format!("/v2/{name}/blobs/{}", img.layers[2].digest);
    fake.route(
        &third,
        CannedResponse::new(404, r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#),
    );
    Ok((img, third))
}

/// A pull that fails on one layer keeps the layers it completed (verified, whole), so the retry
/// fetches only what is missing; what the pull never completed is not kept.
#[tokio::test]
async fn a_retried_pull_reuses_the_layers_a_failed_pull_completed() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let (img, third) = serve_image_failing_its_third_layer(&fake, "three")?;
    let d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    let image = format!("{}/three:v1", fake.addr());
    assert_status(
        pull(&mut c, &image).await,
        Code::NotFound,
        &["three", &img.layers[2].digest],
    );
    let kept = assert_only_completed_layers_kept(&d, &mut c, &layer_digests(&img)[..2]).await?;
    assert_eq!(kept.len(), 2, "both completed layers kept");
    assert_eq!(d.snapshots().len(), 2);

    fake.serve_blob("three", &img.layers[2].digest, &img.layers[2].data);
    assert_eq!(pull(&mut c, &image).await?, img.config_digest);
    for (i, layer) in img.layers.iter().enumerate() {
        let gets = fake.gets(&format!("/v2/three/blobs/{}", layer.digest));
        assert_eq!(
            gets,
            if i == 2 { 2 } else { 1 },
            "layer {i}: {:#?}",
            fake.requests()
        );
    }
    assert_eq!(fake.gets(&third), 2);
    let view = mount_image(&d, &img.config_digest)?;
    assert_eq!(std::fs::read(view.path().join("b"))?, vec![2u8; 256 << 10]);
    drop(view);
    remove(&mut c, &image).await?;
    assert_empty(&d, &mut c).await
}

/// Layers kept after a failed pull are not kept forever: the collection at the end of
/// `failed_pull_retention_secs` removes them, RemoveImage of another image does not (they are
/// still within their retention), and a restart does.
#[tokio::test]
async fn layers_kept_after_a_failed_pull_are_collected_when_retention_ends_or_at_restart()
-> Result<()> {
    let fake = FakeRegistry::start().await?;
    let (img, _) = serve_image_failing_its_third_layer(&fake, "three")?;
    let image = format!("{}/three:v1", fake.addr());

    let d = TestDaemon::start_with(DaemonOptions {
        extra_config: "failed_pull_retention_secs = 3\n".into(),
        ..Default::default()
    })
    .await?;
    let mut c = d.images().await?;
    let began = std::time::Instant::now();
    assert!(pull(&mut c, &image).await.is_err());
    let kept = assert_only_completed_layers_kept(&d, &mut c, &layer_digests(&img)[..2]).await?;
    assert_eq!(kept.len(), 2);
    assert_empty(&d, &mut c).await?;
    assert!(
        began.elapsed() >= Duration::from_secs(3),
        "collected before the retention ended: {:?}",
        began.elapsed()
    );
    drop(c);
    drop(d);

    let mut d = TestDaemon::start().await?;
    let mut c = d.images().await?;
    assert!(pull(&mut c, &image).await.is_err());
    let unrelated = corral_tests::fixtures::Image::new()
        .layer(Layer::new().file("other", "x").build(Compression::Gzip)?)
        .build(ManifestFormat::Oci)?;
    serve_image(&fake, "other", "v1", &unrelated);
    let other = format!("{}/other:v1", fake.addr());
    pull(&mut c, &other).await?;
    remove(&mut c, &other).await?;
    let kept = assert_only_completed_layers_kept(&d, &mut c, &layer_digests(&img)[..2]).await?;
    assert_eq!(
        kept.len(),
        2,
        "RemoveImage keeps layers still within their retention"
    );
    d.restart().await?;
    let mut c = d.images().await?;
    assert_empty(&d, &mut c).await
}
