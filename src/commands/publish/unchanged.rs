//! A new commit of an unchanged image directory. Every pushed image carries
//! its build key (`build_key`), an index of several platforms the key of
//! its children's; when the key of the build this run would make is that
//! of an image (or index) already in the repository, it is released again
//! under this commit — each config with this commit's labels, the layers
//! as they are — and nothing is built, exported or uploaded but the
//! configs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use crate::build_key::{self, ANNOTATION, Inputs};
use crate::commands::Session;
use crate::engine::{
    Blob, Builder, ContextPlan, IdentityTask, Source, image_manifest, manifest_annotation,
    pushed_layers, relabelled_config,
};
use crate::oci::{CONFIG_MEDIA_TYPE, Descriptor, Digest, MANIFEST_MEDIA_TYPE};
use crate::plan::dockerfile;
use crate::plan::git::GitSource;
use crate::plan::strategy::short;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{Manifest, Registry};
use crate::report::publish::Published;

use super::Target;
use super::build::requested_builder;
use super::layers::{Pushed, pushed};
use super::platforms::index_manifest;
use super::push::write_sha_tag;
use super::same_index::{Verdict, children_of};
use super::sizes;

/// What this run would build again, already pushed: one image, or the
/// index of several platforms' images.
#[derive(Debug, Clone)]
pub(super) struct Earlier {
    /// The tag it was found under, for the summary.
    pub(super) tag: String,
    /// The image's build key, or the index's.
    pub(super) key: String,
    /// The image; for several platforms each platform's, in the index's
    /// order.
    pub(super) images: Vec<Reusable>,
}

/// One image an earlier release is made of.
#[derive(Debug, Clone)]
pub(super) struct Reusable {
    /// As the index lists it; `None` for an image released on its own.
    pub(super) platform: Option<Platform>,
    pub(super) image: Pushed,
    pub(super) key: String,
}

/// What looking for the same build found: the release to make again, and
/// why any image of the same key could not stand in (for the summary).
#[derive(Debug, Default)]
pub(super) struct SameBuild {
    pub(super) earlier: Option<Earlier>,
    pub(super) passed_over: Vec<String>,
}

/// What looking for the same build needs of the checkout, learnt from
/// [`start`](Self::start) on, while the registry is asked; dropped unused,
/// both stop.
pub(super) struct Checkout {
    context: IdentityTask,
    last_change: LastChange,
}

impl Checkout {
    pub(super) fn start(workspace: &Path, dir: &Path, dockerfile: &Path) -> Self {
        Checkout {
            context: context_identity(dir, dockerfile),
            last_change: LastChange::start(workspace, dir, dockerfile),
        }
    }
}

/// The identity of the context the engine would receive, learnt on a
/// blocking thread; dropped unwaited, it stops reading the context.
fn context_identity(dir: &Path, dockerfile: &Path) -> IdentityTask {
    let (dir, dockerfile) = (dir.to_owned(), dockerfile.to_owned());
    IdentityTask::spawn(move |stop| {
        ContextPlan::new(&dir, Some(&dockerfile))?.identity_unless(stop)
    })
}

/// The image this run would build again, if one is pushed: asked only
/// when the plan may release it again (`plan::looks_for_same_build`).
/// `checkout`: what it needs of the checkout, if already being learnt.
pub(super) async fn same_build(
    session: &Session,
    target: &Target,
    checkout: Option<Checkout>,
) -> anyhow::Result<SameBuild> {
    // The context is read while the registry and git are asked.
    let Checkout {
        context,
        last_change,
    } = checkout.unwrap_or_else(|| {
        Checkout::start(&session.ctx.workspace, &target.dir, &target.dockerfile)
    });
    if target.platforms.len() > 1 {
        return same_index(target, context, last_change).await;
    }
    let candidates = candidates(target, last_change).await?;
    if candidates.is_empty() {
        return Ok(SameBuild::default());
    }
    let (context, bases) = tokio::join!(context.wait(), base_digests(target));
    let builder = requested_builder(target.builder);
    let platform = target.platforms.first();
    let Some(key) = key_of(target, platform, &context?, builder, bases.as_ref()) else {
        return Ok(SameBuild::default());
    };
    Ok(SameBuild {
        earlier: candidates.into_iter().find(|earlier| earlier.key == key),
        passed_over: Vec::new(),
    })
}

/// The commit of the newest change to the image's directory or
/// Dockerfile, asked of git from [`start`](Self::start) on; dropped
/// before [`wait`](Self::wait) ends, git is stopped.
struct LastChange(tokio::task::JoinHandle<anyhow::Result<Option<String>>>);

impl LastChange {
    fn start(workspace: &Path, dir: &Path, dockerfile: &Path) -> Self {
        let workspace = workspace.to_owned();
        let paths = [dir.to_owned(), dockerfile.to_owned()];
        LastChange(tokio::spawn(async move {
            let Some(git) = GitSource::open(&workspace).await? else {
                return Ok(None);
            };
            git.last_change(&[paths[0].as_path(), paths[1].as_path()])
                .await
        }))
    }

    /// When it is not `sha`: the SHA tag to look under first.
    async fn wait(mut self, sha: &str) -> anyhow::Result<Option<String>> {
        let found = (&mut self.0)
            .await
            .context("asking git for the last change failed")??;
        Ok(found.filter(|s| *s != sha))
    }
}

impl Drop for LastChange {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Several platforms: the index of the last change, or `latest`, whose key
/// is this build's, once each child is checked (`same_index`).
async fn same_index(
    target: &Target,
    context: IdentityTask,
    last_change: LastChange,
) -> anyhow::Result<SameBuild> {
    let indexes = keyed_indexes(target, last_change).await?;
    if indexes.is_empty() {
        return Ok(SameBuild::default());
    }
    let Some(keys) = platform_keys(target, context).await? else {
        return Ok(SameBuild::default());
    };
    let key = build_key::index_key(&keys);
    let mut found = SameBuild::default();
    for (tag, index) in indexes.into_iter().filter(|(_, index)| {
        manifest_annotation(&index.bytes, ANNOTATION).as_deref() == Some(key.as_str())
    }) {
        match children_of(target, &index, &keys).await? {
            Verdict::Same(images) => {
                found.earlier = Some(Earlier { tag, key, images });
                break;
            }
            Verdict::Differs(why) => found.passed_over.push(format!(
                "`{}` has this build's key but can't be released again: {why}",
                short(&tag)
            )),
        }
    }
    Ok(found)
}

/// What the SHA tag of the last change and `latest` name, each once, when
/// it carries a build key. `latest`'s was read when resolving.
async fn keyed_indexes(
    target: &Target,
    last_change: LastChange,
) -> anyhow::Result<Vec<(String, Manifest)>> {
    let (registry, repository) = (&target.image.registry, &target.image.repository);
    let last_change = match last_change.wait(&target.image.sha).await? {
        Some(sha) => {
            let named = registry.manifest(repository, &sha).await?;
            Some((sha, named))
        }
        None => None,
    };
    let latest = target.image.latest_tag.clone();
    let named = last_change
        .into_iter()
        .chain([("latest".to_owned(), latest)]);
    let mut found: Vec<(String, Manifest)> = Vec::new();
    for (tag, named) in named {
        if let Some(index) = named.filter(|index| {
            manifest_annotation(&index.bytes, ANNOTATION).is_some()
                && !found.iter().any(|(_, seen)| seen.digest == index.digest)
        }) {
            found.push((tag, index));
        }
    }
    Ok(found)
}

/// The build key of each platform asked, in order; `None` when one is
/// unknown (a base that doesn't resolve).
async fn platform_keys(
    target: &Target,
    context: IdentityTask,
) -> anyhow::Result<Option<Vec<String>>> {
    let (context, bases) = tokio::join!(context.wait(), base_digests(target));
    let context = context?;
    let builder = requested_builder(target.builder);
    Ok(target
        .platforms
        .iter()
        .map(|p| key_of(target, Some(p), &context, builder, bases.as_ref()))
        .collect())
}

/// The image of the newest commit that changed the image's directory or
/// Dockerfile, and `latest`: those that carry a build key.
async fn candidates(target: &Target, last_change: LastChange) -> anyhow::Result<Vec<Earlier>> {
    let mut found: Vec<(String, Pushed)> = Vec::new();
    if let Some(sha) = last_change.wait(&target.image.sha).await? {
        let platform = target.platforms.first();
        if let Some(image) = pushed(
            &target.image.registry,
            &target.image.repository,
            &sha,
            platform,
        )
        .await?
        {
            found.push((sha, image));
        }
    }
    if let Some(latest) = &target.image.latest {
        found.push(("latest".into(), latest.clone()));
    }
    Ok(found
        .into_iter()
        .filter_map(|(tag, image)| {
            let key = manifest_annotation(&image.manifest.bytes, ANNOTATION)?;
            Some(Earlier {
                tag,
                key: key.clone(),
                images: vec![Reusable {
                    platform: None,
                    image,
                    key,
                }],
            })
        })
        .collect())
}

/// The build key of this target built from `context` with `builder`;
/// `None` when a base image's digest is unknown.
pub(super) fn key_of(
    target: &Target,
    platform: Option<&Platform>,
    context: &str,
    builder: Builder,
    bases: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let bases = bases?;
    let secret_ids: Vec<String> = target
        .secrets
        .ids()
        .iter()
        .map(|id| id.to_string())
        .collect();
    Some(build_key::key(&Inputs {
        context,
        stage: target.stage.as_deref(),
        build_args: &target.build_args,
        labels: &target.labels,
        platform: platform.map(ToString::to_string).as_deref(),
        network: target.network.as_deref(),
        builder: match builder {
            Builder::BuildKit => "buildkit",
            Builder::Legacy => "legacy",
        },
        inline_cache: target.inline_cache,
        secret_ids: &secret_ids,
        bases,
    }))
}

/// Every image the Dockerfile reads — its external bases, `--from`
/// images, its `# syntax=` frontend — by the digest each names now; `None`
/// when one can't be resolved or the build reads what no digest pins (a
/// remote `ADD`): then no key, and no build is skipped.
pub(super) async fn base_digests(target: &Target) -> Option<BTreeMap<String, String>> {
    let stages = target.stages();
    let others = match dockerfile::other_images(&target.dockerfile_text, &stages) {
        Ok(others) => others,
        Err(unpinned) => {
            tracing::info!("{}: {unpinned}; no build key", target.dockerfile_rel);
            return None;
        }
    };
    let written: Vec<String> = dockerfile::external_bases(&stages)
        .into_iter()
        .map(|stage| stage.base.clone())
        .chain(others)
        .chain(dockerfile::syntax_directive(&target.dockerfile_text).map(|(_, image)| image))
        .collect();
    let resolving = resolve_all(target, written);
    match tokio::time::timeout(RESOLVE_LIMIT, resolving).await {
        Ok(digests) => digests,
        Err(_) => {
            tracing::info!(
                "the base images didn't resolve within {}s: the build key is unknown",
                RESOLVE_LIMIT.as_secs()
            );
            None
        }
    }
}

/// A registry that is slow to answer must not hold up the build it runs
/// beside: past this, the build just carries no key.
const RESOLVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

async fn resolve_all(target: &Target, written: Vec<String>) -> Option<BTreeMap<String, String>> {
    let mut digests = BTreeMap::new();
    for image in written {
        match resolve(target, &image).await {
            Ok(Some(digest)) => {
                digests.insert(image, digest);
            }
            Ok(None) => {
                tracing::info!("{image} is not in its registry: the build key is unknown");
                return None;
            }
            Err(e) => {
                tracing::info!("couldn't resolve {image} ({e:#}): the build key is unknown");
                return None;
            }
        }
    }
    Some(digests)
}

/// The digest `image` names: its own, or its tag's, asked of its registry
/// (with this run's login when it is the target's registry).
async fn resolve(target: &Target, image: &str) -> anyhow::Result<Option<String>> {
    let reference = Reference::parse(image)?;
    if let Some(digest) = reference.digest() {
        return Ok(Some(digest.to_owned()));
    }
    let tag = reference.tag().unwrap_or("latest");
    let digest = if reference.registry() == target.image.reference.registry() {
        target
            .image
            .registry
            .manifest_digest(reference.repository(), tag)
            .await?
    } else {
        Registry::new(reference.registry(), None)?
            .with_timeout(target.image.registry.timeout())?
            .manifest_digest(reference.repository(), tag)
            .await?
    };
    Ok(digest)
}

/// The earlier release under this commit's SHA tag: each image's config
/// relabelled, its layers and build key as they are; for several
/// platforms, each image by digest, then the index over them.
pub(super) async fn release_again(
    target: &Target,
    earlier: Earlier,
    report: &mut Published,
) -> anyhow::Result<Manifest> {
    let relabelling = earlier
        .images
        .iter()
        .map(|reusable| relabel(target, &earlier.tag, reusable));
    let relabelled = futures_util::future::try_join_all(relabelling).await?;
    for image in &relabelled {
        report.uploaded += image.uploaded;
        report.size += image.size;
    }
    let release = match relabelled.as_slice() {
        [one] if one.platform.is_none() => one.manifest.clone(),
        several => {
            let (registry, repository) = (&target.image.registry, &target.image.repository);
            let puts = several.iter().map(|image| {
                registry.put_manifest(repository, &image.manifest.digest, &image.manifest)
            });
            futures_util::future::try_join_all(puts).await?;
            let mut listed = Vec::with_capacity(several.len());
            for image in several {
                let platform = image
                    .platform
                    .clone()
                    .context("an image of an index is listed with its platform")?;
                let manifest = &image.manifest;
                let (digest, size) = (Digest::of(&manifest.bytes), manifest.bytes.len() as u64);
                listed.push(
                    Descriptor::new(MANIFEST_MEDIA_TYPE, digest, size)
                        .for_platform(platform.clone()),
                );
                report.platforms.push(platform.to_string());
            }
            index_manifest(&listed, Some(earlier.key.clone()))
        }
    };
    write_sha_tag(&target.image, &release).await?;
    report.notes.push(format!(
        "nothing changed since `{}` (same build key): released again with this commit's labels — no build, no layer uploaded",
        short(&earlier.tag)
    ));
    Ok(release)
}

/// One image of an earlier release with this commit's labels.
struct Relabelled {
    /// With its platform in the index.
    platform: Option<Platform>,
    /// Made, not yet put.
    manifest: Manifest,
    /// Config bytes sent (none when the registry had it).
    uploaded: u64,
    /// Its layers and config.
    size: u64,
}

/// One image of `earlier` with this commit's labels: its config uploaded
/// when new, its manifest made (not yet put).
async fn relabel(
    target: &Target,
    earlier: &str,
    reusable: &Reusable,
) -> anyhow::Result<Relabelled> {
    let image = &reusable.image;
    let config = relabelled_config(&image.config, &target.labels)
        .with_context(|| format!("`{earlier}`'s image config is not valid JSON"))?;
    let layers = pushed_layers(&image.manifest.bytes, &target.image.repository)
        .with_context(|| format!("`{earlier}` is not an image manifest"))?;
    let config_blob = Blob {
        digest: Digest::of(&config),
        size: config.len() as u64,
        media_type: CONFIG_MEDIA_TYPE.into(),
        source: Source::Registry {
            repository: target.image.repository.clone(),
        },
    };
    let mut annotations = BTreeMap::from([(ANNOTATION.to_owned(), reusable.key.clone())]);
    // The same layers: their figures still hold, for the next run's growth.
    if let Some(figures) = manifest_annotation(&image.manifest.bytes, sizes::FIGURES) {
        annotations.insert(sizes::FIGURES.to_owned(), figures);
    }
    let bytes = image_manifest(&config_blob, &layers, &annotations);
    let manifest = Manifest {
        digest: crate::registry::sha256_digest(&bytes),
        bytes,
        media_type: MANIFEST_MEDIA_TYPE.into(),
    };
    let registry = &target.image.registry;
    let mut uploaded = 0;
    if !registry
        .has_blob(&target.image.repository, &config_blob.digest)
        .await?
    {
        registry
            .upload_blob(&target.image.repository, &config_blob.digest, config.into())
            .await?;
        uploaded = config_blob.size;
    }
    Ok(Relabelled {
        platform: reusable.platform.clone(),
        manifest,
        uploaded,
        size: layers.iter().map(|l| l.size).sum::<u64>() + config_blob.size,
    })
}
