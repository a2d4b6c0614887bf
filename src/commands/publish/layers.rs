//! Layers the registry already holds (reused, mounted) and the upload of
//! the rest.

use super::*;

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
    // `target.latest` is read for the first platform; another one's layers
    // are those of its own child of `latest`.
    let latest = match platform {
        Some(p) if target.platforms.first() != Some(p) && target.latest.is_some() => {
            pushed(&target.registry, &target.repository, "latest", Some(p)).await?
        }
        _ => target.latest.clone(),
    };
    if let Some(latest) = &latest {
        sources.push(latest.layers(&target.repository));
    }
    for (repository, tag) in base_images(target) {
        if let Some(base) = pushed(&target.registry, &repository, &tag, platform).await? {
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
        let here = if layer.repository == target.repository {
            target
                .registry
                .has_blob(&target.repository, &layer.digest)
                .await?
        } else {
            let from = Some(layer.repository.as_str());
            let upload = target
                .registry
                .start_upload(&target.repository, &layer.digest, from)
                .await?;
            upload == Upload::Mounted
        };
        if here {
            layer.repository = target.repository.clone();
            held.insert(diff_id, layer);
        }
    }
    Ok(held)
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
        .filter(|base| base.registry() == target.reference.registry())
        .map(|base| {
            // A digest: a pin, or a base of this commit (`depends-on`).
            let tag = base.digest().or(base.tag()).unwrap_or("latest").to_owned();
            (base.repository().to_owned(), tag)
        })
        .collect()
}

/// An image as the registry holds it: its manifest and config.
#[derive(Clone)]
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
    let Some(mut manifest) = registry.manifest(repository, tag).await? else {
        return Ok(None);
    };
    if config_digest(&manifest.bytes).is_none() {
        let Some(child) = child_manifest(registry, repository, &manifest, platform).await? else {
            return Ok(None);
        };
        manifest = child;
    }
    let Some(config) = config_digest(&manifest.bytes) else {
        return Ok(None);
    };
    let config = registry.blob(repository, &config).await?;
    Ok(Some(Pushed { manifest, config }))
}

/// The config digest an image manifest names.
pub(super) fn config_digest(manifest: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ImageManifest {
        config: Option<Descriptor>,
    }
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    serde_json::from_slice::<ImageManifest>(manifest)
        .ok()?
        .config
        .map(|c| c.digest)
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
    // A reused layer was proven to be in this repository before export.
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
