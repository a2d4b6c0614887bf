//! Several platforms: which ones, each one's exported image, and the OCI
//! index that names them all under the release's tags.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::build_key;
use crate::cli::{BuilderArg, PublishArgs};
use crate::engine::{OciImage, Source, manifest_annotation};
use crate::oci::{Descriptor, Digest, INDEX_MEDIA_TYPE, Index, MANIFEST_MEDIA_TYPE, child_for};
use crate::platform::{self, Platform};
use crate::registry::{Manifest, Registry};
use crate::report::publish::Published;

use super::Target;

/// `platforms` as given, checked against the builder and `push-by-digest`.
pub(super) fn requested_platforms(args: &PublishArgs) -> anyhow::Result<Vec<Platform>> {
    let raw = args.platforms.as_deref().unwrap_or_default();
    let platforms = platform::list(raw).map_err(|e| anyhow::anyhow!("`platforms`: {e}"))?;
    let shown = || {
        platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if platforms.len() > 1 && args.builder == BuilderArg::Legacy {
        bail!(
            "`platforms`: {} with `builder: legacy`; the legacy builder reuses its cache across platforms and can publish one platform's image as another's — set `builder: auto` (BuildKit), or give one platform",
            shown()
        );
    }
    if platforms.len() > 1 && args.push_by_digest {
        bail!(
            "`push-by-digest` pushes one platform's image for `merge`, but `platforms` gives {}; run one job per platform (a matrix), or drop `push-by-digest` to push them all as one index",
            shown()
        );
    }
    Ok(platforms)
}

/// One platform's image, converted for the push, with the engine's export
/// the scanner reads.
pub(super) struct Exported {
    pub(super) image: OciImage,
    /// As its config declares it.
    pub(super) platform: Platform,
    pub(super) archive: PathBuf,
    /// Its layers analysed (`None`: not asked for).
    pub(super) analysed: super::sizes::Analysed,
}

impl Exported {
    /// Refuses an image whose config is not of the platform asked for: an
    /// index entry must never name the wrong architecture.
    pub(super) fn new(
        image: OciImage,
        asked: Option<&Platform>,
        archive: PathBuf,
    ) -> anyhow::Result<Self> {
        let Source::File(path) = &image.config.source else {
            bail!("the image config of the export is not on disk");
        };
        let config = std::fs::read(path)
            .with_context(|| format!("couldn't read the image config {}", path.display()))?;
        let declared = Platform::of_config(&config);
        let platform = match (declared, asked) {
            (Some(built), Some(asked)) if !built.serves(asked) => bail!(
                "the engine built a {built} image when {asked} was asked for; nothing was pushed — make sure the engine's builder is BuildKit (`builder: auto`) and re-run"
            ),
            (Some(built), _) => built,
            (None, Some(asked)) => asked.clone(),
            (None, None) => bail!(
                "the built image's config ({}) names no os/architecture, so it can't be listed by platform; set `platforms` (e.g. linux/amd64) to say which it is",
                image.config.digest
            ),
        };
        Ok(Exported {
            image,
            platform,
            archive,
            analysed: None,
        })
    }

    /// The same image with its layer analysis.
    pub(super) fn with(self, analysed: super::sizes::Analysed) -> Self {
        Exported { analysed, ..self }
    }

    pub(super) fn size(&self) -> u64 {
        self.image.layers.iter().map(|l| l.size).sum::<u64>() + self.image.config.size
    }

    pub(super) fn manifest(&self) -> Manifest {
        Manifest {
            bytes: self.image.manifest.clone(),
            media_type: MANIFEST_MEDIA_TYPE.into(),
            digest: self.image.manifest_digest.clone(),
        }
    }
}

/// What the tags will name: one platform's image manifest as it is, or an
/// OCI index over every platform's, with the key of their build keys when
/// each has one (a later commit of the same builds releases it again).
pub(super) fn release_manifest(images: &[Exported]) -> anyhow::Result<Manifest> {
    match images {
        [] => bail!("no image was built"),
        [one] => Ok(one.manifest()),
        several => {
            let entries: Vec<Descriptor> = several
                .iter()
                .map(|e| {
                    let digest = Digest::of(&e.image.manifest);
                    let size = e.image.manifest.len() as u64;
                    Descriptor::new(MANIFEST_MEDIA_TYPE, digest, size)
                        .for_platform(e.platform.clone())
                })
                .collect();
            let keys: Option<Vec<String>> = several
                .iter()
                .map(|e| manifest_annotation(&e.image.manifest, build_key::ANNOTATION))
                .collect();
            Ok(index_manifest(
                &entries,
                keys.map(|keys| build_key::index_key(&keys)),
            ))
        }
    }
}

/// The index over `entries`, as the registry will hold it, carrying
/// `key` as its build key.
pub(super) fn index_manifest(entries: &[Descriptor], key: Option<String>) -> Manifest {
    let annotations = key
        .map(|key| BTreeMap::from([(build_key::ANNOTATION.to_owned(), key)]))
        .unwrap_or_default();
    let bytes = Index::of(entries.to_vec())
        .annotated(annotations)
        .to_bytes();
    Manifest {
        digest: crate::registry::sha256_digest(&bytes),
        bytes,
        media_type: INDEX_MEDIA_TYPE.into(),
    }
}

/// The image a merged index under `tag` lists for `platform` (default: the
/// runner's); none before the merge.
pub(super) async fn merged_child(
    registry: &Registry,
    repository: &str,
    tag: &str,
    platform: Option<&Platform>,
) -> anyhow::Result<Option<Manifest>> {
    match registry.manifest(repository, tag).await? {
        Some(index) => child_manifest(registry, repository, &index, platform).await,
        None => Ok(None),
    }
}

/// The child `index` lists for `platform` (default: the runner's); none
/// when it lists no such child, or is not an index.
pub(super) async fn child_manifest(
    registry: &Registry,
    repository: &str,
    index: &Manifest,
    platform: Option<&Platform>,
) -> anyhow::Result<Option<Manifest>> {
    let wanted = platform.cloned().unwrap_or_else(platform::host);
    match child_for(&index.bytes, &wanted) {
        Some(child) => Ok(registry.manifest(repository, &child).await?),
        None => Ok(None),
    }
}

/// The `platform` output: as the built configs declare them; when nothing
/// was built (the image was there already), as asked, and for a push by
/// digest without `platforms`, the runner's (the engine builds for it).
pub(super) fn platforms_built(target: &Target, report: &Published) -> Vec<String> {
    if !report.platforms.is_empty() {
        return report.platforms.clone();
    }
    match target.platforms.as_slice() {
        [] if target.push_by_digest => vec![platform::host().to_string()],
        asked => asked.iter().map(ToString::to_string).collect(),
    }
}
