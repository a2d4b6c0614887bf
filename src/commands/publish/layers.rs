//! Layers the registry already holds (reused, mounted) and the upload of
//! the rest.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use tokio::sync::{Semaphore, watch};

use crate::engine::{
    Blob, BlobEvent, Engine, KnownLayers, OciImage, Source, known_layers,
    oci_image_streamed_tapped, oci_image_tapped, pushed_layers,
};
use crate::oci::Digest;
use crate::platform::Platform;
use crate::registry::contents::Contents;
use crate::registry::mount::Upload;
use crate::registry::stream::SealedBlob;
use crate::registry::{Manifest, Registry};
use crate::report::publish::Published;

use super::platforms::child_manifest;
use super::sizes::{self, Analysed};
use super::{SAVED, Target};

/// Blob uploads in flight at once (docker push's default is 5).
pub(super) const PARALLEL_UPLOADS: usize = 4;
/// The layers of this build that the registry already holds in this
/// repository, so they are neither compressed nor sent again: those of the
/// image's `latest`, and those of the monorepo images it is built `FROM`
/// (mounted into this repository first). A layer the registry can't prove
/// it holds here is left out, and so exported as usual.
pub(super) async fn reusable_layers(
    target: &Target,
    platform: Option<&Platform>,
    diff_ids: &[String],
) -> anyhow::Result<KnownLayers> {
    let mut sources: Vec<KnownLayers> = Vec::new();
    let latest = match platform {
        Some(p) if target.image.latest.is_some() => latest_image(target, p).await?,
        _ => target.image.latest.clone(),
    };
    if let Some(latest) = &latest {
        sources.push(latest.layers(&target.image.repository));
    }
    for (repository, tag) in base_images(target) {
        if let Some(base) = pushed(&target.image.registry, &repository, &tag, platform).await? {
            sources.push(base.layers(&repository));
        }
    }
    let mut candidates = KnownLayers::new();
    for (diff_id, layer) in sources.into_iter().flatten() {
        if diff_ids.contains(&diff_id) {
            candidates.entry(diff_id).or_insert(layer);
        }
    }
    let mut held = KnownLayers::new();
    for (diff_id, mut layer) in candidates {
        let here = if layer.repository == target.image.repository {
            target
                .image
                .registry
                .has_blob(&target.image.repository, &layer.digest)
                .await?
        } else {
            let from = Some(layer.repository.as_str());
            let upload = target
                .image
                .registry
                .start_upload(&target.image.repository, &layer.digest, from)
                .await?;
            upload == Upload::Mounted
        };
        if here {
            layer.repository = target.image.repository.clone();
            held.insert(diff_id, layer);
        }
    }
    Ok(held)
}

/// `latest`'s image for `platform`, in a run that pushes: the first
/// platform's as resolved; another's, its own child of the index `latest`
/// named then, read the first time it is asked for and kept.
pub(super) async fn latest_image(
    target: &Target,
    platform: &Platform,
) -> anyhow::Result<Option<Pushed>> {
    let image = &target.image;
    let Some(named) = image.latest_tag.as_ref() else {
        return Ok(None);
    };
    if target.platforms.first() == Some(platform) {
        return Ok(image.latest.clone());
    }
    if let Some((_, kept)) = image.latest_kept()?.iter().find(|(p, _)| p == platform) {
        return Ok(kept.clone());
    }
    let read = image_of(&image.registry, &image.repository, named, Some(platform)).await?;
    image.latest_kept()?.push((platform.clone(), read.clone()));
    Ok(read)
}

/// The `FROM` images on this registry, whose layers may be mounted. Only
/// when pushing: a build that pushes nothing must not change the registry.
pub(super) fn base_images(target: &Target) -> Vec<(String, String)> {
    if !target.push {
        return Vec::new();
    }
    target
        .froms()
        .into_iter()
        .map(|(_, base)| base)
        .filter(|base| base.registry() == target.image.reference.registry())
        .map(|base| {
            // A digest: a pin, or a base of this commit (`depends-on`).
            let tag = base.digest().or(base.tag()).unwrap_or("latest").to_owned();
            (base.repository().to_owned(), tag)
        })
        .collect()
}

/// An image as the registry holds it: its manifest and config.
#[derive(Debug, Clone)]
pub(super) struct Pushed {
    pub(super) manifest: Manifest,
    pub(super) config: Vec<u8>,
}

impl Pushed {
    /// Its layers by diff ID, as held in `repository`.
    pub(super) fn layers(&self, repository: &str) -> KnownLayers {
        known_layers(repository, &self.manifest.bytes, &self.config)
    }
}

/// `repository:tag` with its config; for a multi-platform image, its
/// child for `platform` (default: the runner's); none when it is absent
/// or the index has no such child.
pub(super) async fn pushed(
    registry: &Registry,
    repository: &str,
    tag: &str,
    platform: Option<&Platform>,
) -> anyhow::Result<Option<Pushed>> {
    Ok(pushed_under(registry, repository, tag, platform).await?.1)
}

/// [`pushed`], with the manifest `tag` names itself (for several
/// platforms, their index), for a caller that needs both.
pub(super) async fn pushed_under(
    registry: &Registry,
    repository: &str,
    tag: &str,
    platform: Option<&Platform>,
) -> anyhow::Result<(Option<Manifest>, Option<Pushed>)> {
    let Some(named) = registry.manifest(repository, tag).await? else {
        return Ok((None, None));
    };
    let image = image_of(registry, repository, &named, platform).await?;
    Ok((Some(named), image))
}

/// The image `named` is, or its child for `platform` when it is an index;
/// none when it is neither an image nor an index with such a child.
async fn image_of(
    registry: &Registry,
    repository: &str,
    named: &Manifest,
    platform: Option<&Platform>,
) -> anyhow::Result<Option<Pushed>> {
    let manifest = match named.contents() {
        Ok(Contents::Image { .. }) => named.clone(),
        Ok(Contents::Index { .. }) => {
            match child_manifest(registry, repository, named, platform).await? {
                Some(child) => child,
                None => return Ok(None),
            }
        }
        // Not an image this tool could have pushed: nothing to reuse.
        Err(_) => return Ok(None),
    };
    // The child of an index is read again: it may not be an image either.
    let Ok(Contents::Image { config, .. }) = manifest.contents() else {
        return Ok(None);
    };
    let config = registry
        .blob(repository, &config.digest, config.size)
        .await?;
    Ok(Some(Pushed { manifest, config }))
}

/// The image the engine's BuildKit pushed to the target repository by
/// digest (`digest`, as the engine reported it): its manifest and config
/// read back, each checked against its digest, the config kept in `dir`
/// for the platform check. Its layers are in the repository already; their
/// diff IDs come with it.
pub(super) async fn pushed_by_buildkit(
    target: &Target,
    digest: &str,
    dir: &Path,
) -> anyhow::Result<(OciImage, Vec<String>)> {
    let (registry, repository) = (&target.image.registry, &target.image.repository);
    let digest = Digest::parse(digest).map_err(|e| {
        anyhow::anyhow!("the engine's BuildKit pushed the image but named it oddly: {e}")
    })?;
    let manifest = registry
        .manifest(repository, digest.as_str())
        .await?
        .with_context(|| {
            format!("the engine's BuildKit pushed {repository}@{digest}, but the registry doesn't have it")
        })?;
    let (Ok(Contents::Image { config, .. }), Some(layers)) = (
        manifest.contents(),
        pushed_layers(&manifest.bytes, repository),
    ) else {
        bail!("the engine's BuildKit pushed {repository}@{digest}, which is not an image manifest");
    };
    let bytes = registry
        .blob(repository, config.digest.as_str(), config.size)
        .await?;
    let path = dir.join("config.json");
    std::fs::write(&path, &bytes).with_context(|| format!("couldn't write {}", path.display()))?;
    let diff_ids = known_layers(repository, &manifest.bytes, &bytes)
        .into_keys()
        .collect();
    let image = OciImage {
        image_id: config.digest.as_str().to_owned(),
        config: Blob {
            digest: config.digest,
            size: config.size,
            media_type: config.media_type,
            source: Source::File(path),
        },
        uncompressed_size: 0,
        layers,
        manifest: manifest.bytes,
        manifest_digest: manifest.digest,
    };
    Ok((image, diff_ids))
}

/// Who else reads the export, and when.
pub(super) struct ExportUses {
    /// The scanner reads the export's archive.
    pub(super) scanned: bool,
    /// Layers may be uploaded before the image is complete: nothing that
    /// could still refuse it (a scan, a platform check) comes after.
    pub(super) upload_early: bool,
}

/// The engine's export of `local` as an OCI image, its layers analysed
/// as they pass (see `sizes`).
///
/// With no layer reused, one pass over the export as it arrives, kept on
/// disk only for the scanner; and, when `uses` allows it and the run pushes
/// with no SHA tag to guard, each layer is uploaded the moment it is
/// compressed, its bytes added to `report.uploaded`. Otherwise the export
/// is saved, then converted in two passes that skip the reused layers.
pub(super) async fn export(
    engine: &Engine,
    target: &Target,
    local: &str,
    known: KnownLayers,
    work: &Path,
    uses: ExportUses,
    report: &mut Published,
) -> anyhow::Result<(OciImage, Analysed)> {
    let saved = work.join(SAVED);
    let out = work.to_owned();
    let mut tap = sizes::tap();
    if !known.is_empty() {
        engine.save(local, &saved).await?;
        let (image, tap) = tokio::task::spawn_blocking(move || {
            let image = oci_image_tapped(&saved, &out, &known, tap.as_mut().map(|t| t as _));
            (image, tap)
        })
        .await
        .context("the export task failed")?;
        let image = image?;
        let analysed = sizes::finish_tap(tap, &image);
        return Ok((image, analysed));
    }
    let early = uses.upload_early && target.push && target.image.existing.is_none();
    let scanned = uses.scanned;
    let (written, events) = tokio::sync::mpsc::unbounded_channel::<Written>();
    let converting = engine.save_streamed(local, move |export| {
        let written = |event: BlobEvent| {
            if early {
                // Gone only when the uploads have failed; that error is reported.
                if let Some(event) = Written::of(event) {
                    let _ = written.send(event);
                }
            }
        };
        let tapped = tap.as_mut().map(|t| t as _);
        let image = oci_image_streamed_tapped(export, &saved, scanned, &out, written, tapped);
        (image, tap)
    });
    let uploading = upload_as_written(&target.image.registry, &target.image.repository, events);
    let (converted, uploaded) = tokio::join!(converting, uploading);
    let (image, tap) = converted?;
    let mut image = image?;
    let (sent, stored) = uploaded?;
    report.uploaded += sent;
    // The push stage needn't ask the registry about these again.
    for layer in image
        .layers
        .iter_mut()
        .filter(|l| stored.contains(&l.digest))
    {
        if let Source::File(path) = &layer.source {
            layer.source = Source::Sent(path.clone());
        }
    }
    let analysed = sizes::finish_tap(tap, &image);
    Ok((image, analysed))
}

/// A layer blob's file as the conversion thread writes it.
enum Written {
    /// Opened here, before the file can be complete and renamed.
    Begun(PathBuf, std::fs::File),
    Sealed(PathBuf, Blob),
}

impl Written {
    /// The event as sent on; a file that can't be opened is sent whole
    /// once sealed, so its beginning isn't told.
    fn of(event: BlobEvent<'_>) -> Option<Self> {
        match event {
            BlobEvent::Begun { partial } => std::fs::File::open(partial)
                .ok()
                .map(|file| Written::Begun(partial.to_owned(), file)),
            BlobEvent::Sealed { partial, blob } => {
                Some(Written::Sealed(partial.to_owned(), blob.clone()))
            }
        }
    }
}

/// Uploads each layer blob while it is being written, as `docker push`
/// does, up to [`PARALLEL_UPLOADS`] at once; one begun while all are busy
/// is uploaded whole once sealed. Runs until the sender is gone; returns
/// bytes sent and the digests now in the repository.
async fn upload_as_written(
    registry: &Registry,
    repository: &str,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Written>,
) -> anyhow::Result<(u64, HashSet<Digest>)> {
    let slots = Semaphore::new(PARALLEL_UPLOADS);
    let mut followed: HashMap<PathBuf, watch::Sender<Option<SealedBlob>>> = HashMap::new();
    let mut uploads = FuturesUnordered::new();
    let (mut sent, mut stored) = (0, HashSet::new());
    let mut open = true;
    while open || !uploads.is_empty() {
        tokio::select! {
            event = events.recv(), if open => match event {
                None => {
                    // A blob begun and never sealed won't be: its upload ends unfinished.
                    followed.clear();
                    open = false;
                }
                Some(Written::Begun(partial, file)) => {
                    if let Ok(slot) = slots.try_acquire() {
                        let (seal, sealed) = watch::channel(None);
                        let shown = partial.display().to_string();
                        uploads.push(async move {
                            let _slot = slot;
                            let sent = registry.upload_growing(repository, file, shown, sealed).await?;
                            anyhow::Ok((sent.size, sent.digest))
                        }.boxed());
                        followed.insert(partial, seal);
                    }
                }
                Some(Written::Sealed(partial, blob)) => match followed.remove(&partial) {
                    Some(seal) => {
                        // Dropped unsent (no file to send again), the upload fails.
                        if let Source::File(path) = blob.source {
                            let (digest, size) = (blob.digest, blob.size);
                            let _ = seal.send(Some(SealedBlob { digest, size, path }));
                        }
                    }
                    None => {
                        let slots = &slots;
                        uploads.push(async move {
                            let _slot = slots.acquire().await;
                            let sent = push_blob(registry, repository, &blob).await?;
                            anyhow::Ok((sent, blob.digest))
                        }.boxed());
                    }
                },
            },
            Some(done) = uploads.next() => {
                let (more, digest) = done?;
                sent += more;
                stored.insert(digest);
            }
        }
    }
    Ok((sent, stored))
}

/// Uploads what the registry lacks, config and layers, a few at a time as
/// `docker push` does; returns bytes sent.
pub(super) async fn push_blobs(
    registry: &Registry,
    repository: &str,
    image: &OciImage,
) -> anyhow::Result<u64> {
    let uploads = image
        .layers
        .iter()
        .chain(std::iter::once(&image.config))
        .map(|blob| push_blob(registry, repository, blob));
    let sent: Vec<u64> = futures_util::stream::iter(uploads)
        .buffer_unordered(PARALLEL_UPLOADS)
        .try_collect()
        .await?;
    Ok(sent.iter().sum())
}

/// One blob, unless the registry has it; returns bytes sent.
pub(super) async fn push_blob(
    registry: &Registry,
    repository: &str,
    blob: &Blob,
) -> anyhow::Result<u64> {
    // A reused layer was proven to be in this repository before export,
    // an early one was sent there.
    let Source::File(path) = &blob.source else {
        return Ok(0);
    };
    if registry.has_blob(repository, &blob.digest).await? {
        return Ok(0);
    }
    registry
        .upload_blob_file(repository, &blob.digest, blob.size, path)
        .await?;
    Ok(blob.size)
}
