//! The push stage: blobs first, each platform's manifest, then the SHA
//! tag (never moved to another digest) or the digest alone; then the
//! further tags, registry-side, as the same manifest bytes.

use anyhow::bail;

use crate::registry::Manifest;
use crate::report::publish::Published;

use super::layers::push_blobs;
use super::plan::Push;
use super::platforms::Exported;
use super::{Image, Target};

/// Each platform's blobs, then its manifest (by digest when an index will
/// list it), then what `release` is under the SHA tag (or by digest only,
/// with `push-by-digest`); an immutable SHA tag is never replaced by a
/// different digest.
pub(super) async fn push_image(
    target: &Target,
    push: Push,
    images: &[Exported],
    release: &Manifest,
    report: &mut Published,
) -> anyhow::Result<()> {
    let image = &target.image;
    // Pushed by digest, a rebuild replaces no tag: `existing` is only the
    // merged index's child.
    if push != Push::ByDigest {
        never_replace(image, image.existing.as_ref().map(|e| &e.digest), release)?;
    }
    if push == Push::Nothing {
        return Ok(());
    }
    let (registry, repository) = (&image.registry, &image.repository);
    for exported in images {
        report.uploaded += push_blobs(registry, repository, &exported.image).await?;
        let manifest = exported.manifest();
        if manifest.digest != release.digest {
            registry
                .put_manifest(repository, &manifest.digest, &manifest)
                .await?;
        }
    }
    match push {
        Push::ByDigest => {
            registry
                .put_manifest(repository, &release.digest, release)
                .await?
        }
        _ => write_sha_tag(image, release).await?,
    }
    Ok(())
}

/// The SHA tag, written unless another run of this commit (a release's
/// `created`, `published` and `released`, a re-run) tagged another digest
/// meanwhile: read again just before writing.
pub(super) async fn write_sha_tag(image: &Image, release: &Manifest) -> anyhow::Result<()> {
    let (registry, repository) = (&image.registry, &image.repository);
    let now = registry.manifest_digest(repository, &image.sha).await?;
    never_replace(image, now.as_ref(), release)?;
    registry
        .put_manifest(repository, &image.sha, release)
        .await?;
    Ok(())
}

/// The SHA tag is immutable: `found` (what it names) must be what this
/// run made, if it names anything.
fn never_replace(image: &Image, found: Option<&String>, release: &Manifest) -> anyhow::Result<()> {
    match found {
        Some(found) if *found != release.digest => bail!(
            "`{}:{}` already names {found} and this run made {}; an immutable SHA tag is never replaced, so nothing of this run is tagged — delete the tag in the registry first if you mean to replace it, and give the workflow a `concurrency` group if two runs of one commit raced",
            image.reference.familiar(),
            image.sha,
            release.digest
        ),
        _ => Ok(()),
    }
}

/// Every further tag, registry-side: the same manifest bytes again.
pub(super) async fn tag(image: &Image, tags: &[String], manifest: &Manifest) -> anyhow::Result<()> {
    for tag in tags {
        image
            .registry
            .put_manifest(&image.repository, tag, manifest)
            .await?;
    }
    Ok(())
}
