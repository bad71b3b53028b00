//! One layer: reused when its snapshot exists, else downloaded and unpacked in one pass (the
//! network chunks forwarded over a bounded channel to a blocking thread that writes the blob
//! and feeds the unpacker), under the minimum transfer rate, both digests checked.

use super::*;

impl Pull<'_> {
    /// Makes sure the snapshot for one layer exists, fetching and unpacking it when needed.
    pub(super) async fn ensure_layer(
        &self,
        layer: &LayerRecord,
        chain_id: &Digest,
        parent: Option<&Digest>,
        lease: &Arc<Lease>,
        stop: &AtomicBool,
    ) -> Result<()> {
        let mgr = self.mgr;
        // One flight per blob: a second pull of the same layer waits, then finds it done.
        let flight = mgr.flight(layer.digest.as_str());
        let _guard = flight.lock().await;
        if mgr.snapshots.exists(chain_id) {
            return Ok(());
        }
        let _slot = mgr
            .layer_slots
            .acquire()
            .await
            .map_err(|_| ImageError::Internal("layer slots closed".into()))?;
        if stop.load(Ordering::Acquire) {
            // Another layer failed the pull (its error is the one reported): start no download.
            return Ok(());
        }
        let staged = mgr.snapshots.stage()?;
        let target = staged.fs_dir();
        let limits = mgr.cfg.unpack_limits.clone();
        let compression =
            Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);

        let (staged, stats) = if mgr.content.contains(&layer.digest) {
            let path = mgr.content.path(&layer.digest);
            let held = Arc::clone(lease);
            let task = tokio::task::spawn_blocking(move || {
                let _lease = held;
                // The staging guard lives in this thread: dropped only once it stops writing.
                let staged = staged;
                let file = std::fs::File::open(&path)
                    .map_err(|e| unpack::UnpackError::from_io("open blob", e))?;
                unpack::unpack_layer(
                    std::io::BufReader::with_capacity(1 << 20, file),
                    compression,
                    &target,
                    &limits,
                )
                .map(|stats| (staged, stats))
            });
            let (staged, stats) = task
                .await
                .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))?
                .map_err(|source| self.unpack_error(layer, source))?;
            if stats.diff_id != layer.diff_id.as_str() {
                return Err(self.diff_id_mismatch(layer, &stats.diff_id));
            }
            (staged, stats)
        } else {
            // Checks the diff ID itself, before the blob is committed.
            self.download_and_unpack(layer, compression, staged, limits, lease)
                .await?
        };
        let meta = SnapshotMeta {
            version: META_VERSION,
            chain_id: chain_id.clone(),
            diff_id: layer.diff_id.clone(),
            parent: parent.cloned(),
            disk_bytes: stats.disk_bytes,
            inodes: stats.inodes,
            created: now(),
        };
        let mgr2 = Arc::clone(mgr);
        let held = Arc::clone(lease);
        tokio::task::spawn_blocking(move || {
            let _lease = held;
            mgr2.snapshots.commit(staged, &meta)
        })
        .await
        .map_err(|e| ImageError::Internal(format!("commit task: {e}")))?
    }

    pub(super) async fn download_and_unpack(
        &self,
        layer: &LayerRecord,
        compression: Compression,
        staged: Staged,
        limits: unpack::UnpackLimits,
        lease: &Arc<Lease>,
    ) -> Result<(Staged, unpack::UnpackStats)> {
        let mut resp = None;
        let mut last = None;
        let mut endpoint = String::new();
        for s in self.sources.iter().filter(|s| s.endpoint.pull) {
            match self
                .mgr
                .registry
                .blob(&self.target(s), layer.digest.as_str(), layer.size)
                .await
            {
                Ok(r) => {
                    resp = Some(r);
                    endpoint.clone_from(&s.endpoint.url);
                    break;
                }
                Err(e) => last = Some(self.fetch_error(s, "layer", layer.digest.as_str(), e)),
            }
        }
        let resp = resp.ok_or_else(|| last.unwrap_or_else(|| self.no_pull_endpoint()))?;

        let writer =
            self.mgr
                .content
                .writer(&self.image, layer.digest.clone(), Some(layer.size))?;
        // A few chunks of read-ahead per layer: hyper hands out chunks of up to ~400 KiB, so a
        // deeper queue costs memory (times the layers in flight) and buys no speed.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let finished = Arc::new(AtomicBool::new(false));
        let reader = ChannelReader {
            rx,
            current: Bytes::new(),
            finished: Arc::clone(&finished),
            writer: Some(writer),
        };
        let expected_diff_id = layer.diff_id.clone();
        let lease = Arc::clone(lease);
        let task = tokio::task::spawn_blocking(move || -> std::result::Result<_, LayerFailure> {
            // Held until this thread is done, so a cancelled pull's sweep runs after it, and the
            // staging directory is removed only once nothing writes into it any more.
            let _lease = lease;
            let staged = staged;
            let target = staged.fs_dir();
            let mut reader = reader;
            let stats = unpack::unpack_layer(&mut reader, compression, &target, &limits)
                .map_err(LayerFailure::Unpack)?;
            // Trailing bytes after the compressed stream still count for the blob digest.
            std::io::copy(&mut reader, &mut std::io::sink())
                .map_err(|e| LayerFailure::Unpack(unpack::UnpackError::from_io("read layer", e)))?;
            let writer = reader.writer.take().ok_or(LayerFailure::Internal)?;
            // Both digests are checked before the blob becomes visible.
            if stats.diff_id != expected_diff_id.as_str() {
                return Err(LayerFailure::DiffId(stats.diff_id));
            }
            writer.commit().map_err(LayerFailure::Blob)?;
            Ok((staged, stats))
        });

        let failed = self.forward_body(resp, layer, &endpoint, &tx).await;
        if failed.is_none() {
            finished.store(true, Ordering::Release);
        }
        // Only now: the reader takes a closed channel without `finished` for a cut download.
        drop(tx);
        let outcome = task
            .await
            .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))?;
        if let Some(e) = failed {
            return Err(e);
        }
        match outcome {
            Ok(stats) => Ok(stats),
            Err(LayerFailure::Unpack(source)) => Err(self.unpack_error(layer, source)),
            Err(LayerFailure::Blob(e)) => Err(e),
            Err(LayerFailure::DiffId(got)) => Err(self.diff_id_mismatch(layer, &got)),
            Err(LayerFailure::Internal) => Err(ImageError::Internal("layer writer lost".into())),
        }
    }

    /// Forwards a layer's body to the unpacker, holding the registry to the minimum rate.
    /// `None` when the body ended, or when the unpacker stopped (its own error tells why).
    /// A cut or too slow transfer is the registry's failure (UNAVAILABLE, worth a retry); more
    /// bytes than the manifest names is bad content.
    pub(super) async fn forward_body(
        &self,
        resp: reqwest::Response,
        layer: &LayerRecord,
        endpoint: &str,
        tx: &tokio::sync::mpsc::Sender<Bytes>,
    ) -> Option<ImageError> {
        let registry = |detail: String| ImageError::Registry {
            image: self.image.clone(),
            endpoint: endpoint.to_owned(),
            detail,
        };
        let mut stream = resp.bytes_stream();
        let mut rate = RateWindow::new(self.mgr.cfg.min_rate);
        let mut received = 0u64;
        loop {
            let next = match rate.deadline() {
                Some(deadline) => match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        return Some(registry(format!(
                            "layer {}: {}, after {received} bytes",
                            layer.digest,
                            rate.shortfall()
                        )));
                    }
                },
                None => stream.next().await,
            };
            match next {
                // A body that ends cleanly (no Content-Length, or a chunked one) short of the
                // descriptor's size is the wrong blob, not a cut transfer.
                None if received < layer.size => {
                    return Some(self.verification(
                        "layer",
                        &layer.digest,
                        format!(
                            "the registry ended the body after {received} bytes, the manifest names {}",
                            layer.size
                        ),
                    ));
                }
                None => return None,
                Some(Ok(chunk)) => {
                    rate.record(chunk.len() as u64);
                    received += chunk.len() as u64;
                    if received > layer.size {
                        return Some(self.verification(
                            "layer",
                            &layer.digest,
                            format!(
                                "registry sent more than the {} bytes the manifest names",
                                layer.size
                            ),
                        ));
                    }
                    if tx.send(chunk).await.is_err() {
                        return None;
                    }
                }
                Some(Err(e)) => {
                    return Some(registry(format!(
                        "layer {}: download interrupted after {received} bytes: {}",
                        layer.digest,
                        crate::registry::error_chain(&e)
                    )));
                }
            }
        }
    }
}

pub(super) enum LayerFailure {
    Unpack(unpack::UnpackError),
    DiffId(String),
    Blob(ImageError),
    Internal,
}

/// Reads the chunks the async side forwards, writing each to the content store on the way.
pub(super) struct ChannelReader {
    pub(super) rx: tokio::sync::mpsc::Receiver<Bytes>,
    pub(super) current: Bytes,
    pub(super) finished: Arc<AtomicBool>,
    pub(super) writer: Option<crate::content::BlobWriter>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    if let Some(w) = self.writer.as_mut() {
                        w.write(&chunk).map_err(std::io::Error::other)?;
                    }
                    self.current = chunk;
                }
                None if self.finished.load(Ordering::Acquire) => return Ok(0),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "download aborted before the layer was complete",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The media type of a manifest: the registry's Content-Type when specific, else the JSON's own.
/// The minimum transfer rate, measured in windows: each window must bring the rate times its
/// length, or the transfer is too slow.
pub(super) struct RateWindow {
    pub(super) rate: crate::MinRate,
    pub(super) need: u64,
    pub(super) start: tokio::time::Instant,
    pub(super) got: u64,
}

impl RateWindow {
    pub(super) fn new(rate: crate::MinRate) -> RateWindow {
        RateWindow {
            rate,
            need: rate
                .bytes_per_sec
                .saturating_mul(rate.window.as_secs().max(1)),
            start: tokio::time::Instant::now(),
            got: 0,
        }
    }

    /// When the current window ends; `None` when the check is off (a rate of 0).
    pub(super) fn deadline(&self) -> Option<tokio::time::Instant> {
        (self.need > 0).then(|| self.start + self.rate.window)
    }

    pub(super) fn record(&mut self, bytes: u64) {
        self.got += bytes;
        if self.got >= self.need {
            (self.start, self.got) = (tokio::time::Instant::now(), 0);
        }
    }

    pub(super) fn shortfall(&self) -> String {
        format!(
            "the registry sent {} bytes in {:?}, under the minimum rate of {} bytes/s (images.min_pull_rate_bytes_per_sec)",
            self.got, self.rate.window, self.rate.bytes_per_sec
        )
    }
}
