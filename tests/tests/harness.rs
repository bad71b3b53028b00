//! Tests of the harness itself: the loopback registry and pushing fixtures to it.

use std::time::Duration;

use anyhow::{Context as _, Result};
use corral_tests::fixtures::{
    self, Compression, Layer, ManifestFormat, Platform, busybox_image, media_types,
    multi_platform_images, sha256_digest,
};
use corral_tests::registry::{CannedResponse, FakeRegistry, Registry, RegistryOptions};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn registry_starts_and_stops() -> Result<()> {
    let registry = Registry::start().await?;
    assert!(registry.addr().starts_with("127.0.0.1:"));
    assert_eq!(registry.client().ping().await?, StatusCode::OK);
    assert_eq!(
        registry.image_ref("a/b", "v1"),
        format!("{}/a/b:v1", registry.addr())
    );
    let pid = registry.pid();
    let dir = registry.storage_dir();
    drop(registry);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "registry not reaped"
    );
    assert!(!dir.exists(), "temp dir not removed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_registries_in_parallel() -> Result<()> {
    let starts = (0..6).map(|_| Registry::start());
    let registries = futures_join_all(starts).await?;
    let mut ports: Vec<_> = registries.iter().map(Registry::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6);
    Ok(())
}

/// `join_all` without a futures dependency: spawn each start on the runtime.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Result<Vec<Registry>>
where
    F: std::future::Future<Output = Result<Registry>> + Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

async fn check_pushed_image(
    registry: &Registry,
    name: &str,
    tag: &str,
    format: ManifestFormat,
) -> Result<()> {
    let client = registry.client();
    let image = busybox_image()?.cmd(&["echo", "hello"]);
    let pushed = client.push_image(name, tag, &image, format).await?;
    assert_eq!(
        pushed.reference,
        format!("{}/{name}:{tag}", registry.addr())
    );
    assert_eq!(
        pushed.digest_reference,
        format!("{}/{name}@{}", registry.addr(), pushed.manifest_digest)
    );

    for reference in [tag, pushed.manifest_digest.as_str()] {
        let got = client.get_manifest(name, reference).await?;
        assert_eq!(got.media_type, format.manifest_media_type());
        assert_eq!(got.digest.as_deref(), Some(pushed.manifest_digest.as_str()));
        assert_eq!(got.computed_digest(), pushed.manifest_digest);
        assert_eq!(got.body, pushed.image.manifest);
    }
    let manifest = client.get_manifest(name, tag).await?.json()?;
    let config_digest = manifest["config"]["digest"].as_str().context("config")?;
    assert_eq!(config_digest, pushed.config_digest);
    let config = client.get_blob(name, config_digest).await?;
    assert_eq!(sha256_digest(&config), pushed.config_digest);
    let config: serde_json::Value = serde_json::from_slice(&config)?;
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["echo", "hello"])
    );
    for layer in manifest["layers"].as_array().context("layers")? {
        let digest = layer["digest"].as_str().context("digest")?;
        let blob = client.get_blob(name, digest).await?;
        assert_eq!(sha256_digest(&blob), digest);
        assert_eq!(layer["size"], blob.len());
    }
    Ok(())
}

#[tokio::test]
async fn push_busybox_oci_and_docker() -> Result<()> {
    let registry = Registry::start().await?;
    check_pushed_image(&registry, "busybox", "oci", ManifestFormat::Oci).await?;
    check_pushed_image(
        &registry,
        "library/busybox",
        "docker",
        ManifestFormat::Docker,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn push_indexes() -> Result<()> {
    let registry = Registry::start().await?;
    let client = registry.client();
    let images = multi_platform_images()?;
    for (tag, format) in [
        ("oci", ManifestFormat::Oci),
        ("docker", ManifestFormat::Docker),
    ] {
        let pushed = client.push_index("multi", tag, &images, format).await?;
        let got = client.get_manifest("multi", tag).await?;
        assert_eq!(got.media_type, format.index_media_type());
        assert_eq!(got.digest.as_deref(), Some(pushed.index_digest.as_str()));
        assert_eq!(got.computed_digest(), pushed.index_digest);
        let host = pushed.image_for(&Platform::host()).context("host image")?;
        let foreign = pushed.image_for(&Platform::foreign()).context("foreign")?;
        assert_ne!(host.config_digest, foreign.config_digest);
        for image in &pushed.images {
            let m = client.get_manifest("multi", &image.manifest_digest).await?;
            assert_eq!(m.computed_digest(), image.manifest_digest);
            assert_eq!(m.media_type, format.manifest_media_type());
        }
    }
    Ok(())
}

#[tokio::test]
async fn zstd_and_uncompressed_layers_push() -> Result<()> {
    let registry = Registry::start().await?;
    let image = busybox_image()?
        .layer(Layer::new().file("z", "zstd").build(Compression::Zstd)?)
        .layer(Layer::new().file("t", "tar").build(Compression::None)?);
    let pushed = registry
        .client()
        .push_image("mixed", "v1", &image, ManifestFormat::Oci)
        .await?;
    let manifest = registry
        .client()
        .get_manifest("mixed", "v1")
        .await?
        .json()?;
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        media_types::OCI_LAYER_ZSTD
    );
    assert_eq!(manifest["layers"][2]["mediaType"], media_types::OCI_LAYER);
    assert_eq!(pushed.image.layers.len(), 3);
    Ok(())
}

#[tokio::test]
async fn auth_registry() -> Result<()> {
    let registry = Registry::start_with(
        RegistryOptions::new()
            .user("alice", "s3cret")
            .user("bob", "pw"),
    )
    .await?;
    assert_eq!(registry.credentials(), Some(("alice", "s3cret")));
    let authed = registry.client();
    let anonymous = authed.clone().anonymous();
    let wrong = authed.clone().with_basic_auth("alice", "nope");
    let bob = authed.clone().with_basic_auth("bob", "pw");
    assert_eq!(anonymous.ping().await?, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.ping().await?, StatusCode::UNAUTHORIZED);
    assert_eq!(authed.ping().await?, StatusCode::OK);
    assert_eq!(bob.ping().await?, StatusCode::OK);

    let resp = anonymous.request(Method::GET, "/v2/")?.send().await?;
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .context("no challenge")?
        .to_str()?;
    assert!(challenge.starts_with("Basic realm="), "{challenge}");

    let image = busybox_image()?;
    assert!(
        anonymous
            .push_image("private", "v1", &image, ManifestFormat::Oci)
            .await
            .is_err()
    );
    let pushed = authed
        .push_image("private", "v1", &image, ManifestFormat::Oci)
        .await?;
    assert!(anonymous.get_manifest("private", "v1").await.is_err());
    let got = bob.get_manifest("private", "v1").await?;
    assert_eq!(got.computed_digest(), pushed.manifest_digest);
    Ok(())
}

#[tokio::test]
async fn tampering_helpers() -> Result<()> {
    let registry = Registry::start().await?;
    let client = registry.client();
    let pushed = client
        .push_image("tamper", "v1", &busybox_image()?, ManifestFormat::Oci)
        .await?;

    // The registry verifies uploads...
    let bogus = sha256_digest(b"something else");
    assert!(
        client
            .push_blob_as("tamper", &bogus, b"data".to_vec())
            .await
            .is_err()
    );
    // ...but serves a corrupted blob under its old digest.
    let layer = &pushed.image.layers[0].digest;
    registry.corrupt_blob(layer, b"evil")?;
    assert_eq!(client.get_blob("tamper", layer).await?, b"evil");

    // A planted blob whose content does not match its digest can back a manifest.
    let claimed = sha256_digest(b"honest layer");
    registry.plant_blob("planted", &claimed, b"dishonest")?;
    let mut image = busybox_image()?;
    image.layers[0] =
        fixtures::LayerBlob::from_raw(b"honest layer".to_vec(), Compression::None, &claimed);
    let built = image.build(ManifestFormat::Oci)?;
    client.push_blob_raw("planted", &built.config).await?;
    client
        .push_manifest_raw(
            "planted",
            "v1",
            built.manifest_media_type(),
            &built.manifest,
        )
        .await?;
    assert_eq!(client.get_blob("planted", &claimed).await?, b"dishonest");

    // Manifests the registry refuses.
    let malformed = client
        .push_manifest_raw(
            "tamper",
            "bad",
            media_types::OCI_MANIFEST,
            b"{\"schemaVersion\":2,",
        )
        .await;
    assert!(malformed.is_err());
    let huge = huge_manifest();
    assert!(
        client
            .push_manifest_raw("tamper", "huge", media_types::OCI_MANIFEST, &huge)
            .await
            .is_err()
    );
    Ok(())
}

/// A valid JSON document of 9 MiB, larger than any sane manifest limit.
fn huge_manifest() -> Vec<u8> {
    let mut huge = b"{\"schemaVersion\":2,\"pad\":\"".to_vec();
    huge.resize(9 << 20, b'a');
    huge.extend_from_slice(b"\"}");
    huge
}

#[tokio::test]
async fn fake_registry_serves_anything() -> Result<()> {
    let fake = FakeRegistry::start().await?;
    let client = corral_tests::registry::RegistryClient::new(&fake.addr())?;
    assert_eq!(client.ping().await?, StatusCode::OK);

    let huge = huge_manifest();
    fake.serve_manifest("x", "huge", media_types::OCI_MANIFEST, &huge);
    fake.serve_manifest("x", "bad", media_types::OCI_MANIFEST, b"{not json");
    let got = client.get_manifest("x", "huge").await?;
    assert_eq!(got.body.len(), huge.len());
    assert_eq!(got.digest, Some(sha256_digest(&huge)));
    let got = client
        .get_manifest("x", &sha256_digest(b"{not json"))
        .await?;
    assert_eq!(got.body, b"{not json");

    fake.serve_blob("x", &sha256_digest(b"claimed"), b"actual");
    assert_eq!(
        client.get_blob("x", &sha256_digest(b"claimed")).await?,
        b"actual"
    );

    fake.route(
        "/v2/x/blobs/sha256:stall",
        CannedResponse::new(200, vec![0u8; 1000]).stall_after(10),
    );
    let stalled = client
        .request(Method::GET, "/v2/x/blobs/sha256:stall")?
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    let body = match stalled {
        Ok(resp) => resp.bytes().await.map(|b| b.len()),
        Err(e) => Err(e),
    };
    assert!(body.is_err(), "stalled body completed: {body:?}");

    assert!(client.get_manifest("x", "missing").await.is_err());
    let requests = fake.requests();
    assert!(
        requests.contains(&"GET /v2/x/manifests/huge".to_owned()),
        "{requests:?}"
    );
    Ok(())
}

/// About 100 MB of gzip layers, as the pull benchmark uses. Slow in debug builds: run with
/// `cargo test -p corral-tests --test harness -- --ignored`.
#[tokio::test]
#[ignore]
async fn push_big_image() -> Result<()> {
    let start = std::time::Instant::now();
    let image = fixtures::big_image(240 << 20, 5)?;
    let built_in = start.elapsed();
    let size: u64 = image.layers.iter().map(|l| l.size).sum();
    let registry = Registry::start().await?;
    let start = std::time::Instant::now();
    registry
        .client()
        .push_image("big", "v1", &image, ManifestFormat::Oci)
        .await?;
    eprintln!(
        "big image: {} layers, {size} bytes compressed, built in {built_in:?}, pushed in {:?}",
        image.layers.len(),
        start.elapsed()
    );
    assert!((80_000_000..130_000_000).contains(&size), "{size}");
    Ok(())
}
