//! The resolve stage: the inputs checked, and what the registry and the
//! forge say of this image before anything is decided: the manifest its
//! SHA tag names, the image `latest` names, the versions out, whether
//! `latest`'s commit is newer than this one.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context as _, bail};

use crate::actions::boundary::Access;
use crate::cli::{CacheToArg, ImageLocation, PublishArgs, ScannerArg, Signing, Tagging};
use crate::commands::Session;
use crate::metadata;
use crate::platform::Platform;
use crate::registry::Registry;

use super::inputs::{
    build_secrets, check_network, check_secrets, commit_sha, image_reference, labels,
    release_commit, release_facts,
};
use super::latest::{ancestry, github_token, raw_tags, released_versions, revision_label};
use super::layers::pushed_under;
use super::plan::{Found, LatestNow, latest_to_compare};
use super::platforms::{merged_child, requested_platforms};
use super::unchanged;
use super::{Image, Target};

/// What `publish` and `merge` share, as plain values rather than clap's:
/// the image and its registry, the commit and the tags it gets, who signs,
/// and how it is pushed. `merge` builds nothing, so has nothing more.
pub(super) struct Publication<'a> {
    pub location: &'a ImageLocation,
    pub tagging: &'a Tagging,
    pub signing: &'a Signing,
    pub push: bool,
    /// `push-by-digest`.
    pub by_digest: bool,
}

impl<'a> Publication<'a> {
    pub(super) fn of(args: &'a PublishArgs) -> Self {
        Publication {
            location: &args.location,
            tagging: &args.tagging,
            signing: &args.supply.signing,
            push: args.push,
            by_digest: args.push_by_digest,
        }
    }
}

/// The image directory and its Dockerfile in the checkout.
pub(super) struct Checkout {
    pub dir: PathBuf,
    pub dockerfile: PathBuf,
    /// The Dockerfile relative to the workspace, for annotations.
    pub dockerfile_rel: String,
    /// Its text, read once: bases to reuse layers from, failed steps' lines.
    pub dockerfile_text: String,
}

/// `path` and `dockerfile` (default `<path>/Dockerfile`), both in the
/// workspace.
pub(super) fn checkout(
    location: &ImageLocation,
    dockerfile: Option<&str>,
    session: &Session,
) -> anyhow::Result<Checkout> {
    let boundary = session.boundary()?;
    let dir = boundary.resolve("path", &location.path, Access::Checkout)?;
    if !dir.is_dir() {
        bail!(
            "`path`: {:?} is not a directory in the workspace {}; pass an image directory such as a matrix entry's `path`",
            location.path,
            boundary.workspace().display()
        );
    }
    // The default Dockerfile is resolved too: it may be a symlink.
    let default_dockerfile = format!("{}/Dockerfile", location.path);
    let given_dockerfile = dockerfile.unwrap_or(&default_dockerfile);
    let dockerfile = boundary.resolve("dockerfile", given_dockerfile, Access::Checkout)?;
    if !dockerfile.is_file() {
        bail!("`dockerfile`: no Dockerfile at {given_dockerfile:?}; add one or set `dockerfile`");
    }
    // Never quoted in an error: read only to find bases and failed lines.
    let dockerfile_text = std::fs::read_to_string(&dockerfile)
        .with_context(|| format!("`dockerfile`: couldn't read {given_dockerfile:?}"))?;
    let dockerfile_rel = boundary
        .relative(&dockerfile)
        .unwrap_or_else(|| given_dockerfile.to_owned());
    Ok(Checkout {
        dir,
        dockerfile,
        dockerfile_rel,
        dockerfile_text,
    })
}

/// The image directory's name: the image's default name, and the prefix
/// of its own releases.
pub(super) fn basename(location: &ImageLocation) -> &str {
    location.path.rsplit('/').next().unwrap_or(&location.path)
}

/// Every input checked before the registry is asked anything, then the
/// facts the plan needs; and what looking for the same build needs of the
/// checkout, learnt meanwhile when the plan may look.
pub(super) async fn resolve(
    args: &PublishArgs,
    publication: &Publication<'_>,
    session: &Session,
) -> anyhow::Result<(Target, Found, Option<unchanged::Checkout>)> {
    let checkout = checkout(&args.location, args.dockerfile.as_deref(), session)?;
    // The scan's files are used after the build: refused before it.
    if let Some(sarif) = &args.scan.sarif {
        session.input_path("sarif", sarif, Access::Exchange)?;
    }
    if let Some(ignore) = &args.scan.ignore_file {
        session.input_path("ignore-file", ignore, Access::Checkout)?;
    }
    let basename = basename(&args.location);
    let build_args = metadata::pairs("build-args", &args.build_args).map_err(anyhow::Error::msg)?;
    let extra_labels = metadata::pairs("labels", &args.labels).map_err(anyhow::Error::msg)?;
    let platforms = requested_platforms(args)?;
    check_network(args.builder, args.network.as_deref())?;
    let secrets = build_secrets(&args.secrets)?;
    check_secrets(args.builder, &secrets)?;
    let early = learn_early(args, session, &checkout);
    let (image, found, version) = resolve_image(publication, session, platforms.first()).await?;
    let labels = labels(
        session,
        &image.sha,
        version.as_ref(),
        basename,
        extra_labels,
    );
    let target = Target {
        image,
        dir: checkout.dir,
        dockerfile: checkout.dockerfile,
        dockerfile_rel: checkout.dockerfile_rel,
        dockerfile_text: checkout.dockerfile_text,
        build_args,
        labels,
        stage: args.target.clone(),
        platforms,
        push_by_digest: args.push_by_digest,
        network: args.network.clone(),
        builder: args.builder,
        secrets,
        inline_cache: args.cache,
        registry_cache: args.cache && args.cache_to == CacheToArg::Registry,
        cache_from: Vec::new(),
        push: args.push,
    };
    Ok((target, found, early))
}

/// The context's identity and the last change, learnt from now on while
/// the registry is asked, when the inputs let the plan look for the same
/// build: the registry's answers decide (`plan::looks_for_same_build`); if
/// it doesn't look, both stop.
fn learn_early(
    args: &PublishArgs,
    session: &Session,
    checkout: &Checkout,
) -> Option<unchanged::Checkout> {
    let may_look =
        args.push && !args.rebuild && !args.push_by_digest && args.scan.scanner == ScannerArg::None;
    may_look.then(|| {
        unchanged::Checkout::start(&session.ctx.workspace, &checkout.dir, &checkout.dockerfile)
    })
}

/// The image, its commit and release, and what the registry and the forge
/// say of it (asked only when pushing); `platform`'s image (default: the
/// runner's) where a tag names an index.
pub(super) async fn resolve_image(
    publication: &Publication<'_>,
    session: &Session,
    platform: Option<&Platform>,
) -> anyhow::Result<(Image, Found, Option<semver::Version>)> {
    let location = publication.location;
    let basename = basename(location);
    let reference = image_reference(location, session, basename)?;
    let repository = reference.repository().to_owned();
    let credentials = location.login.credentials()?;
    let event = session.event()?;
    let release = release_facts(publication.tagging, session, event.as_ref(), basename)?;
    let sha = commit_sha(
        publication.tagging,
        session,
        event.as_ref(),
        release_commit(publication.tagging, session).await?,
    )?;
    let registry = Registry::new(reference.registry(), credentials.clone())?
        .with_timeout(location.timeout.request_timeout)?;
    let (existing, (latest_tag, latest)) = if publication.push {
        registry.check_access(&repository).await?;
        let existing = async {
            match publication.by_digest {
                false => Ok(registry.manifest(&repository, &sha).await?),
                // Pushed by digest, the image has no tag of its own: once
                // merged, it is the SHA tag's child for its platform.
                true => merged_child(&registry, &repository, &sha, platform).await,
            }
        };
        let latest = pushed_under(&registry, &repository, "latest", platform);
        tokio::try_join!(existing, latest)?
    } else {
        (None, (None, None))
    };
    let published_versions = if publication.push && release.version.is_some() {
        released_versions(&registry, &repository).await?
    } else {
        Vec::new()
    };
    let tags = raw_tags(
        publication.tagging,
        session,
        &sha,
        &release,
        event.as_ref(),
        &published_versions,
    )?;
    let revision = latest
        .as_ref()
        .and_then(|image| revision_label(&image.config));
    let latest_now = match latest_to_compare(publication.push, &tags, revision.as_deref()) {
        Some(revision) => {
            let token = github_token(publication.tagging, session);
            Some(LatestNow {
                revision: revision.to_owned(),
                ancestry: ancestry(session, token, &sha, revision).await?,
            })
        }
        None => None,
    };
    let found = Found {
        tags,
        latest: latest_now,
        existing: existing.clone(),
        bases: Vec::new(),
        earlier: None,
        passed_over: Vec::new(),
    };
    let image = Image {
        reference,
        repository,
        credentials,
        registry,
        sha,
        existing,
        latest_tag,
        latest,
        latest_others: Mutex::default(),
    };
    Ok((image, found, release.version))
}
