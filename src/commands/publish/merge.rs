//! `merge`, read as its stages: resolve (publish's: the image, the
//! commit, the tags; the signing key, read before anything is written) →
//! children (each digest in the repository, one platform each) → index →
//! tags (the SHA tag first, never replaced by another digest; then the
//! others) → sign (the index digest, as publish signs) → finish.

use std::time::Instant;

use anyhow::bail;

use crate::cli::MergeArgs;
use crate::commands::Session;
use crate::names::{DIGEST_RULE, is_digest};
use crate::oci::{Descriptor, Digest, MANIFEST_MEDIA_TYPE};
use crate::platform::Platform;
use crate::registry::contents::Contents;

use super::plan::{self, Asked};
use super::platforms::index_manifest;
use super::resolve::{Publication, checkout, resolve_image};
use super::supply::{Attestations, Scope, supply_inputs};
use super::{Image, Release, finish, release_not_out, sign, tag, write_sha_tag};

pub async fn run(args: &MergeArgs, session: &Session) -> anyhow::Result<()> {
    let started = Instant::now();
    let digests = digests(&args.digests)?;
    let publication = Publication {
        location: &args.location,
        tagging: &args.tagging,
        signing: &args.signing,
        push: true,
        by_digest: false,
    };
    if let Some(why) = release_not_out(publication.tagging, session)? {
        bail!(
            "{why}; `merge` has nothing to list for it: trigger on `release: types: [published]` (plan's matrix is empty for this event)"
        );
    }
    // The image directory and its Dockerfile must be in the checkout, as
    // for the publish jobs.
    checkout(publication.location, None, session)?;
    let (image, found, _) = resolve_image(&publication, session, None).await?;
    let supply = supply_inputs(session, publication.signing, None, Some(false)).await?;
    let asked = Asked {
        push: true,
        signs: supply.signs(),
        ..Asked::default()
    };
    let (tags, more_tags) = plan::tags(&asked, found.tags, found.latest.as_ref());
    let mut entries = Vec::with_capacity(digests.len());
    for digest in &digests {
        entries.push(child(&image, digest).await?);
    }
    // Jobs finish in any order: the index lists platforms in one order,
    // so a re-run makes the same digest.
    entries.sort_by(|a, b| a.platform.cmp(&b.platform));
    if let Some(pair) = entries.windows(2).find(|w| w[0].platform == w[1].platform) {
        bail!(
            "`digests`: {} and {} are both {}; give one image per platform",
            pair[0].digest,
            pair[1].digest,
            pair[0]
                .platform
                .as_ref()
                .map_or_else(String::new, Platform::to_string)
        );
    }
    let index = index_manifest(&entries, None);
    let mut report = image.report(&tags);
    report.platforms = entries
        .iter()
        .filter_map(|e| e.platform.as_ref().map(Platform::to_string))
        .collect();
    match &image.existing {
        Some(existing) if existing.digest == index.digest => report.notes.push(format!(
            "`{}` already names this index: nothing to write",
            image.sha
        )),
        _ => write_sha_tag(&image, &index).await?,
    }
    tag(&image, &more_tags, &index).await?;
    let signing = plan::signing(&asked, false);
    sign(
        &image,
        signing,
        &supply,
        (&index, Scope::IndexOnly),
        Attestations::default(),
        &mut report,
    )
    .await?;
    report.digest = index.digest.clone();
    report.pushed = true;
    report.seconds = started.elapsed().as_secs_f64();
    let platforms = report.platforms.clone();
    // The index is under the SHA tag: not pushed by digest.
    finish(
        session,
        &image,
        &report,
        false,
        &platforms,
        &[],
        &Release::of(index),
    )
}

/// `digests`: one `sha256:<hex>` per line (an `image@digest` reference
/// gives its digest).
fn digests(lines: &[String]) -> anyhow::Result<Vec<String>> {
    let mut digests: Vec<String> = Vec::new();
    for line in lines
        .iter()
        .flat_map(|l| crate::actions::inputs::split_list(l))
    {
        let digest = line.rsplit('@').next().unwrap_or(&line).to_owned();
        if !is_digest(&digest) {
            let lower = digest.to_ascii_lowercase();
            let fix = if is_digest(&lower) {
                format!("write {lower:?}")
            } else {
                "give the `digest` output of each `push-by-digest` job, one per line".to_owned()
            };
            bail!("`digests`: {line:?} is not a digest; {fix} ({DIGEST_RULE})");
        }
        if !digests.contains(&digest) {
            digests.push(digest);
        }
    }
    if digests.is_empty() {
        bail!(
            "`digests` is empty; give the `digest` output of each `push-by-digest` job, one per line"
        );
    }
    Ok(digests)
}

/// The index entry for `digest`: an image manifest in the repository,
/// with the platform its config declares.
async fn child(image: &Image, digest: &str) -> anyhow::Result<Descriptor> {
    let name = image.reference.familiar();
    let Some(manifest) = image.registry.manifest(&image.repository, digest).await? else {
        bail!(
            "`digests`: {digest} is not in {name}; push each platform with `push-by-digest: true` to this image first, and pass its `digest` output"
        );
    };
    let config = match manifest.contents()? {
        Contents::Image { config, .. } => config,
        Contents::Index { .. } => bail!(
            "`digests`: {name}@{digest} is a multi-platform index, not one platform's image; give the digests `push-by-digest` output, one per platform"
        ),
    };
    let bytes = image
        .registry
        .blob(&image.repository, &config.digest, config.size)
        .await?;
    let Some(platform) = Platform::of_config(&bytes) else {
        bail!(
            "`digests`: {name}@{digest} is not a container image (its config names no os/architecture); give the `digest` outputs of the `push-by-digest` publish jobs"
        );
    };
    let media_type = if manifest.media_type.is_empty() {
        MANIFEST_MEDIA_TYPE
    } else {
        &manifest.media_type
    };
    let size = manifest.bytes.len() as u64;
    let digest = Digest::parse(&manifest.digest)?;
    Ok(Descriptor::new(media_type, digest, size).for_platform(platform))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::digests;

    #[test]
    fn a_digest_given_twice_or_as_a_reference_is_merged_once() {
        let hex = "ab".repeat(32);
        let lines = vec![
            format!("sha256:{hex}\nregistry.example/acme/app@sha256:{hex}"),
            format!("sha256:{}", "cd".repeat(32)),
        ];
        assert_eq!(
            digests(&lines).unwrap(),
            vec![
                format!("sha256:{hex}"),
                format!("sha256:{}", "cd".repeat(32))
            ]
        );
    }

    #[test]
    fn what_is_not_a_digest_is_refused_naming_the_input() {
        let error = digests(&["sha256:abc".to_owned()]).unwrap_err().to_string();
        assert!(
            error.starts_with("`digests`: \"sha256:abc\" is not a digest"),
            "{error}"
        );
        let upper = format!("sha256:{}", "AB".repeat(32));
        let error = digests(&[upper]).unwrap_err().to_string();
        assert!(
            error.ends_with(&format!(
                "is not a digest; write \"sha256:{}\" (a digest is sha256: followed by 64 lower-case hex digits)",
                "ab".repeat(32)
            )),
            "{error}"
        );
        let error = digests(&[String::new()]).unwrap_err().to_string();
        assert!(error.starts_with("`digests` is empty"), "{error}");
    }
}
