//! A layer whose PAX extended header claims gigabytes (issue 15, item 5): a few MB of gzip that
//! once had the daemon buffer the whole header. The pull is refused naming the image and layer,
//! and the daemon's peak RSS barely moves.

use crate::common;

use std::io::Write;

use anyhow::{Context as _, Result};
use common::*;
use corral_tests::daemon::TestDaemon;
use corral_tests::fixtures::{Compression, LayerBlob, ManifestFormat, busybox_image};
use corral_tests::registry::Registry;
use flate2::write::GzEncoder;
use tonic::Code;

/// The PAX header's claimed (and present) size: 2 GiB of zeros.
const PAX_BYTES: u64 = 2 << 30;

/// One 512-byte ustar header.
fn header(name: &str, typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A gzip layer: a PAX header of [`PAX_BYTES`] zeros, then a small file. Compressed while it is
/// generated, never held uncompressed.
fn pax_bomb() -> Result<LayerBlob> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&header("PaxHeaders/f", b'x', PAX_BYTES))?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = PAX_BYTES;
    while left > 0 {
        let n = left.min(zeros.len() as u64);
        gz.write_all(&zeros[..n as usize])?;
        left -= n;
    }
    gz.write_all(&header("f", b'0', 1))?;
    let mut block = [0u8; 512];
    block[0] = b'x';
    gz.write_all(&block)?;
    gz.write_all(&[0u8; 1024])?;
    let data = gz.finish()?;
    // The diff ID is never reached: the layer is refused while it is read.
    Ok(LayerBlob::from_raw(
        data,
        Compression::Gzip,
        &format!("sha256:{}", "0".repeat(64)),
    ))
}

/// The daemon's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_pax_header_is_refused_without_memory_growth() -> Result<()> {
    let reg = Registry::start().await?;
    let d = TestDaemon::start().await?;
    let pid = d.pid().context("daemon pid")?;
    let mut c = d.images().await?;
    let client = reg.client();
    // Warm up with the base image, so the measured pull adds only the hostile layer.
    let base = client
        .push_image("warm/busybox", "v1", &busybox_image()?, ManifestFormat::Oci)
        .await?;
    pull(&mut c, &base.reference).await?;
    let layer = pax_bomb()?;
    assert!(layer.size < 8 << 20, "bomb is {} bytes", layer.size);
    let digest = layer.digest.clone();
    let image = busybox_image()?.layer(layer);
    let pushed = client
        .push_image("evil/paxbomb", "v1", &image, ManifestFormat::Oci)
        .await?;

    // Reset the peak to the current RSS, then pull.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
    let before = peak_rss_kib(pid)?;
    let r = pull(&mut c, &pushed.reference).await;
    let after = peak_rss_kib(pid)?;
    assert!(
        after.saturating_sub(before) < 20 << 10,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    assert_status(
        r,
        Code::DataLoss,
        &[
            "evil/paxbomb",
            &digest,
            "tar header",
            "larger than the limit",
        ],
    );
    Ok(())
}
