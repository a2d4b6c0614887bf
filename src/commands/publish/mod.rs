//! `publish`, read as its stages: resolve (inputs, tags, what the registry
//! has) → bases (wait for `depends-on`, pin their digests) → build
//! (BuildKit, export, layers reused; or none when the commit, or an
//! image of the same build inputs, is already pushed) → gate (one scan)
//! → SBOM → push (blobs, then the SHA tag) → tag (the others,
//! registry-side) → sign → mirror → finish (outputs, summary).
//!
//! The image is pushed by this binary, not the engine: blobs first (skipping
//! what the registry has), the manifest only after all of them, then every
//! further tag as the same manifest bytes, so all tags name one digest and
//! the later tags cost one small request each.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use bollard::auth::DockerCredentials;
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::actions::boundary::Access;
use crate::actions::event::Event;
use crate::actions::outputs::Outputs;
use crate::actions::workflow::{Annotation, Level};
use crate::build_key;
use crate::cli::{BuilderArg, LatestArg, PublishArgs, ScannerArg};
use crate::commands::Session;
use crate::engine::{
    BUILDKIT_NETWORKS, Blob, BuildSecrets, BuildSpec, Builder, Built, Engine, EngineError,
    KnownLayers, OciImage, Source, known_layers, oci_image, oci_image_streamed, refused_session,
};
use crate::metadata::{self, Provenance};
use crate::mirror::release::mirror_release;
use crate::mirror::summary::{Mirrored, mirror_results, mirrors};
use crate::oci::MANIFEST_MEDIA_TYPE;
use crate::plan::dockerfile;
use crate::plan::git::GitSource;
use crate::plan::github::GitHubSource;
use crate::plan::strategy::short;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::auth::Credentials;
use crate::registry::mount::Upload;
use crate::registry::{Manifest, Registry};
use crate::release::{FORMS, ReleaseTag, is_prerelease};
use crate::report::publish::{Published, summary};
use crate::scan::gate::{Gate, Request, Subject, location};
use crate::tags::{self, Facts, Latest, TagSet};

mod bases;
mod build;
mod inputs;
mod latest;
mod layers;
pub mod merge;
mod platforms;
mod supply;
mod unchanged;

use bases::*;
use build::*;
use inputs::*;
use latest::*;
use layers::*;
use platforms::*;
use supply::*;
use unchanged::*;

/// The engine's export in the work directory: converted for the push and
/// handed to the scanner as it is.
const SAVED: &str = "image.tar";

pub async fn run(args: &PublishArgs, session: &Session) -> anyhow::Result<()> {
    let started = Instant::now();
    if let Some(why) = release_not_out(args, session)? {
        return nothing_to_publish(session, &why);
    }
    let mut target = resolve(args, session).await?;
    let supply = supply_inputs(args, session).await?;
    let bases = bases(args, session, &target)?;
    let mut report = target.report();
    let existing = target.existing.clone().filter(|_| !args.rebuild);
    // A base this run rebuilds gets a new digest, so an image waiting for
    // one is never the same build as before; several platforms or a push
    // by digest always build.
    let earlier = match existing {
        None if bases.is_empty() && target.platforms.len() <= 1 && !target.push_by_digest => {
            same_build(args, session, &target).await?
        }
        _ => None,
    };
    let (manifest, gate, sbom) = match (existing, earlier) {
        (Some(found), _) => (reuse(found, &target, &mut report), None, None),
        (None, Some(earlier)) => (
            release_again(&target, earlier, &mut report).await?,
            None,
            None,
        ),
        (None, None) => {
            let work = session.work_dir()?;
            pin_bases(args, session, &mut target, &bases, work.path(), &mut report).await?;
            let scanned = args.scan.scanner != ScannerArg::None;
            let images = build(session, &target, work.path(), scanned, &mut report).await?;
            let gate = gate(args, session, &target, &images).await?;
            if let Some(blocking) = gate.as_ref().filter(|g| g.blocks()) {
                return withhold(args, session, &target, report, blocking, started);
            }
            let release = release_manifest(&images)?;
            let digest = &release.digest;
            let sbom = sbom(
                session,
                &target,
                &supply,
                gate.as_ref(),
                digest,
                work.path(),
                &mut report,
            )
            .await?;
            push(args, &target, &images, &release, &mut report).await?;
            (release, gate, sbom)
        }
    };
    tag(args, &target, &manifest).await?;
    sign(
        args,
        &target,
        &supply,
        &manifest.digest,
        sbom.as_ref(),
        &mut report,
    )
    .await?;
    let mirrored = mirror(args, session, &target).await?;
    report.digest = manifest.digest.clone();
    report.pushed = args.push;
    report.seconds = started.elapsed().as_secs_f64();
    finish(
        args,
        session,
        &target,
        &report,
        &mirrored,
        gate.as_ref(),
        sbom.as_ref(),
    )
}

/// A release event that puts no release out (a draft, or `edited`,
/// `deleted`, `unpublished`: a plain `on: release` delivers those too)
/// publishes nothing, as `plan` selects nothing for it; `release-tag` or
/// `version` name a release of their own.
fn release_not_out(args: &PublishArgs, session: &Session) -> anyhow::Result<Option<String>> {
    if args.tagging.release.release_tag.is_some() || args.tagging.version.is_some() {
        return Ok(None);
    }
    Ok(match session.event()? {
        Some(Event::Release(release)) => release.builds_nothing(),
        _ => None,
    })
}

fn nothing_to_publish(session: &Session, why: &str) -> anyhow::Result<()> {
    session
        .workflow
        .notice(&format!("{why}: nothing is published"));
    let mut outputs = Outputs::new();
    outputs.set("pushed", "false");
    session.finish(&outputs, &crate::report::publish::nothing(why))
}

/// Everything decided before building: where the image comes from, where it
/// goes, under which tags, and whether the commit is already published.
struct Target {
    dir: PathBuf,
    dockerfile: PathBuf,
    /// The Dockerfile relative to the workspace, for annotations.
    dockerfile_rel: String,
    /// Its text, read once: bases to reuse layers from, failed steps' lines.
    dockerfile_text: String,
    reference: Reference,
    repository: String,
    credentials: Option<Credentials>,
    registry: Registry,
    build_args: HashMap<String, String>,
    labels: HashMap<String, String>,
    /// The build stage to stop at (`target`).
    stage: Option<String>,
    /// `platforms`, in the order given; empty: the engine's own.
    platforms: Vec<Platform>,
    /// `push-by-digest`: pushed untagged, for `merge`.
    push_by_digest: bool,
    network: Option<String>,
    builder: BuilderArg,
    /// Values for `RUN --mount=type=secret`.
    secrets: BuildSecrets,
    /// Write BuildKit's inline cache into the image.
    inline_cache: bool,
    cache_from: Vec<String>,
    sha: String,
    set: TagSet,
    /// The manifest the SHA tag names already, if any.
    existing: Option<Manifest>,
    /// The image `latest` names now (read once: its revision guards
    /// `latest`, its layers are reused).
    latest: Option<Pushed>,
    /// Whether this run pushes at all.
    push: bool,
}

impl Target {
    fn report(&self) -> Published {
        Published {
            image: self.reference.familiar(),
            tags: self.set.tags.clone(),
            notes: self.set.withheld.clone(),
            ..Published::default()
        }
    }

    fn token<'a>(&self, args: &'a PublishArgs, session: &'a Session) -> Option<&'a str> {
        args.tagging
            .github_token
            .as_deref()
            .or(session.env_token.as_deref())
    }
}

async fn resolve(args: &PublishArgs, session: &Session) -> anyhow::Result<Target> {
    let boundary = session.boundary()?;
    let dir = boundary.resolve("path", &args.location.path, Access::Checkout)?;
    if !dir.is_dir() {
        bail!(
            "`path`: {:?} is not a directory in the workspace {}; pass an image directory such as a matrix entry's `path`",
            args.location.path,
            boundary.workspace().display()
        );
    }
    // The default Dockerfile is resolved too: it may be a symlink.
    let default_dockerfile = format!("{}/Dockerfile", args.location.path);
    let given_dockerfile = args.dockerfile.as_deref().unwrap_or(&default_dockerfile);
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
    // The scan's files are used after the build: refused before it.
    if let Some(sarif) = &args.scan.sarif {
        boundary.resolve("sarif", sarif, Access::Exchange)?;
    }
    if let Some(ignore) = &args.scan.ignore_file {
        boundary.resolve("ignore-file", ignore, Access::Checkout)?;
    }
    let basename = args
        .location
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&args.location.path)
        .to_owned();
    let reference = image_reference(args, session, &basename)?;
    let repository = reference.repository().to_owned();
    let credentials = args.location.login.credentials()?;
    let build_args = metadata::pairs("build-args", &args.build_args).map_err(anyhow::Error::msg)?;
    let extra_labels = metadata::pairs("labels", &args.labels).map_err(anyhow::Error::msg)?;
    let platforms = requested_platforms(args)?;
    check_network(args.builder, args.network.as_deref())?;
    let secrets = build_secrets(&args.secrets)?;
    check_secrets(args.builder, &secrets)?;
    let event = session.event()?;
    let release = release_facts(args, session, event.as_ref(), &basename)?;
    let sha = commit_sha(
        args,
        session,
        event.as_ref(),
        release_commit(args, session).await?,
    )?;
    let version = release.version.clone();
    let registry = Registry::new(reference.registry(), credentials.clone())?
        .with_timeout(args.location.timeout.request_timeout)?;
    let (existing, latest) = if args.push {
        registry.check_access(&repository).await?;
        let existing = match args.push_by_digest {
            false => registry.manifest(&repository, &sha).await?,
            // Pushed by digest, the image has no tag of its own: once
            // merged, it is the SHA tag's child for its platform.
            true => merged_child(&registry, &repository, &sha, platforms.first()).await?,
        };
        let latest = pushed(&registry, &repository, "latest", platforms.first()).await?;
        (existing, latest)
    } else {
        (None, None)
    };
    let published_versions = if args.push && version.is_some() {
        released_versions(&registry, &repository).await?
    } else {
        Vec::new()
    };
    let mut set = tag_set(
        args,
        session,
        &sha,
        &release,
        event.as_ref(),
        latest.as_ref(),
        &published_versions,
    )
    .await?;
    if args.push_by_digest {
        untagged(&mut set);
    }
    let cache_from = cache_sources(args, &reference, &set);
    let labels = labels(session, &sha, version.as_ref(), &basename, extra_labels);
    Ok(Target {
        dir,
        dockerfile,
        dockerfile_rel,
        dockerfile_text,
        reference,
        repository,
        credentials,
        registry,
        build_args,
        labels,
        stage: args.target.clone(),
        platforms,
        push_by_digest: args.push_by_digest,
        network: args.network.clone(),
        builder: args.builder,
        secrets,
        inline_cache: args.cache,
        cache_from,
        sha,
        set,
        existing,
        latest,
        push: args.push,
    })
}

/// The SHA tag exists already: nothing is built, the other tags are pointed
/// at it.
fn reuse(found: Manifest, target: &Target, report: &mut Published) -> Manifest {
    report.notes.push(format!(
        "`{}` already exists: build skipped (set `rebuild: true` to build anyway)",
        target.set.sha
    ));
    found
}

/// Builds, exports and converts each platform's image in `work` (one
/// after the other: a monorepo sibling `FROM` resolves per platform); the
/// build log is shown as untrusted text.
async fn build(
    session: &Session,
    target: &Target,
    work: &Path,
    scanned: bool,
    report: &mut Published,
) -> anyhow::Result<Vec<Exported>> {
    let engine = Engine::connect().await?;
    let asked: Vec<Option<&Platform>> = match target.platforms.as_slice() {
        [] => vec![None],
        some => some.iter().map(Some).collect(),
    };
    let several = asked.len() > 1;
    let mut images = Vec::with_capacity(asked.len());
    for platform in asked {
        let dir = match platform {
            Some(p) if several => work.join(p.slug()),
            _ => work.to_owned(),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("couldn't create {}", dir.display()))?;
        images
            .push(build_platform(session, &engine, target, platform, &dir, scanned, report).await?);
    }
    report.built = true;
    report.size = images.iter().map(|e| e.size()).sum();
    report.platforms = images.iter().map(|e| e.platform.to_string()).collect();
    Ok(images)
}

/// One platform's image (`None`: the engine's own platform), exported to
/// `dir` and converted, its config checked to be of that platform.
async fn build_platform(
    session: &Session,
    engine: &Engine,
    target: &Target,
    platform: Option<&Platform>,
    dir: &Path,
    scanned: bool,
    report: &mut Published,
) -> anyhow::Result<Exported> {
    // One of several: its local tag and notes name it.
    let one_of = platform.filter(|_| target.platforms.len() > 1);
    let local = format!(
        "{}:{}{}",
        target.reference.name(),
        target.set.sha,
        one_of.map(|p| format!("-{}", p.slug())).unwrap_or_default()
    );
    let for_platform = one_of.map(|p| format!(" ({p})")).unwrap_or_default();
    let (built, bases) = tokio::join!(
        build_with_fallback(session, engine, target, platform, &local, report),
        base_digests(target)
    );
    let (built, builder) = built?;
    if built.cached + built.executed > 0 {
        report.notes.push(format!(
            "BuildKit{for_platform}: {} steps from the cache, {} run",
            built.cached, built.executed
        ));
    }
    let known = reusable_layers(target, platform, &engine.diff_ids(&local).await?).await?;
    let annotations: BTreeMap<String, String> =
        key_of(target, platform, &built.context, builder, bases)
            .map(|key| (build_key::ANNOTATION.to_owned(), key))
            .into_iter()
            .collect();
    // Uploaded before the platform check below only where the engine can't
    // have built another platform: its own, or one BuildKit was asked for.
    let uses = ExportUses {
        scanned,
        upload_early: !scanned && (platform.is_none() || builder == Builder::BuildKit),
    };
    let image = export(engine, target, &local, known, dir, uses, report).await;
    engine.untag(&local).await;
    let image = image?.annotated(&annotations);
    let reused = image
        .layers
        .iter()
        .filter(|l| matches!(l.source, Source::Registry { .. }))
        .count();
    if reused > 0 {
        report.notes.push(format!(
            "{reused} of {} layers{for_platform} already in the registry: reused, not exported or compressed again",
            image.layers.len()
        ));
    }
    Exported::new(image, platform, dir.join(SAVED))
}

/// One scan of the export, graded; `None` with `scanner: none`.
async fn gate(
    args: &PublishArgs,
    session: &Session,
    target: &Target,
    images: &[Exported],
) -> anyhow::Result<Option<Gate>> {
    let at = location(&session.ctx, &target.dockerfile_rel);
    let every_package = args.supply.sbom.predicate().is_some();
    let archives: Vec<(String, PathBuf)> = images
        .iter()
        .map(|e| (e.platform.to_string(), e.archive.clone()))
        .collect();
    let subject = match archives.as_slice() {
        [(_, path)] => Subject::Archive {
            path,
            every_package,
        },
        _ => Subject::Platforms {
            archives: &archives,
            every_package,
        },
    };
    let request = Request {
        image: &target.reference.familiar(),
        subject,
        location: at.as_ref(),
        token: target.token(args, session),
        head_sha: Some(&target.sha),
    };
    crate::scan::gate::gate(
        &session.ctx,
        &session.workflow,
        &args.scan.settings(),
        request,
    )
    .await
}

/// The scan blocked the release: the summary says so, nothing is pushed.
fn withhold(
    args: &PublishArgs,
    session: &Session,
    target: &Target,
    mut report: Published,
    blocking: &Gate,
    started: Instant,
) -> anyhow::Result<()> {
    report.seconds = started.elapsed().as_secs_f64();
    report
        .notes
        .push("the scan blocked the release: nothing was pushed".into());
    let mut outputs = Outputs::new();
    outputs.set("image", target.reference.familiar());
    outputs.set("pushed", "false");
    blocking.set_outputs(&mut outputs);
    session.finish(
        &outputs,
        &format!("{}\n{}", summary(&report), blocking.summary),
    )?;
    bail!(
        "the scan of {} found what `fail-on` ({}) blocks; nothing was pushed — fix or ignore the findings (see the job summary)",
        target.reference.familiar(),
        args.scan.fail_on.0.map_or("none", |s| s.as_str())
    );
}

/// Each platform's blobs, then its manifest (by digest when an index will
/// list it), then what `release` is under the SHA tag (or by digest only,
/// with `push-by-digest`); an immutable SHA tag is never replaced by a
/// different digest.
async fn push(
    args: &PublishArgs,
    target: &Target,
    images: &[Exported],
    release: &Manifest,
    report: &mut Published,
) -> anyhow::Result<()> {
    // Pushed by digest, a rebuild replaces no tag: `existing` is only the
    // merged index's child.
    if !target.push_by_digest {
        never_replace(target, target.existing.as_ref().map(|e| &e.digest), release)?;
    }
    if !args.push {
        return Ok(());
    }
    let (registry, repository) = (&target.registry, &target.repository);
    for exported in images {
        report.uploaded += push_blobs(registry, repository, &exported.image).await?;
        let manifest = exported.manifest();
        if manifest.digest != release.digest {
            registry
                .put_manifest(repository, &manifest.digest, &manifest)
                .await?;
        }
    }
    match target.push_by_digest {
        true => {
            registry
                .put_manifest(repository, &release.digest, release)
                .await?
        }
        false => write_sha_tag(target, release).await?,
    }
    Ok(())
}

/// The SHA tag, written unless another run of this commit (a release's
/// `created`, `published` and `released`, a re-run) tagged another digest
/// meanwhile: read again just before writing.
async fn write_sha_tag(target: &Target, release: &Manifest) -> anyhow::Result<()> {
    let (registry, repository) = (&target.registry, &target.repository);
    let now = registry
        .manifest_digest(repository, &target.set.sha)
        .await?;
    never_replace(target, now.as_ref(), release)?;
    registry
        .put_manifest(repository, &target.set.sha, release)
        .await?;
    Ok(())
}

/// The SHA tag is immutable: `found` (what it names) must be what this
/// run made, if it names anything.
fn never_replace(
    target: &Target,
    found: Option<&String>,
    release: &Manifest,
) -> anyhow::Result<()> {
    match found {
        Some(found) if *found != release.digest => bail!(
            "`{}:{}` already names {found} and this run made {}; an immutable SHA tag is never replaced, so nothing of this run is tagged — delete the tag in the registry first if you mean to replace it, and give the workflow a `concurrency` group if two runs of one commit raced",
            target.reference.familiar(),
            target.set.sha,
            release.digest
        ),
        _ => Ok(()),
    }
}

/// Every further tag, registry-side: the same manifest bytes again.
async fn tag(args: &PublishArgs, target: &Target, manifest: &Manifest) -> anyhow::Result<()> {
    if !args.push || target.push_by_digest {
        return Ok(());
    }
    for tag in target.set.tags.iter().filter(|t| **t != target.set.sha) {
        target
            .registry
            .put_manifest(&target.repository, tag, manifest)
            .await?;
    }
    Ok(())
}

/// Copies the release to `mirror-to`; a failed mirror is a warning unless
/// `mirror-required`.
async fn mirror(
    args: &PublishArgs,
    session: &Session,
    target: &Target,
) -> anyhow::Result<Vec<Mirrored>> {
    if !args.push || target.push_by_digest {
        return Ok(Vec::new());
    }
    let mirrored = mirror_release(
        &args.mirror_to,
        args.mirror_login.credentials()?,
        &target.registry,
        &target.repository,
        &target.set.tags,
    )
    .await?;
    let failures: Vec<String> = mirrored
        .iter()
        .filter_map(|m| {
            let err = m.result.as_ref().err()?;
            Some(format!("mirroring to {} failed: {err}", m.target))
        })
        .collect();
    if args.mirror_required && !failures.is_empty() {
        bail!(
            "{} is released, but {}; `mirror-required` is set, so the job fails: re-run it (only what is missing is copied)",
            target.reference.familiar(),
            failures.join("; ")
        );
    }
    for failure in &failures {
        session.workflow.warning(&format!(
            "{failure}; the release stands (set `mirror-required: true` to fail the job instead)"
        ));
    }
    Ok(mirrored)
}

/// Outputs and the job summary.
fn finish(
    args: &PublishArgs,
    session: &Session,
    target: &Target,
    report: &Published,
    mirrored: &[Mirrored],
    gate: Option<&Gate>,
    sbom: Option<&Sbom>,
) -> anyhow::Result<()> {
    let name = target.reference.familiar();
    let mut outputs = Outputs::new();
    if let Some(sbom) = sbom {
        outputs.set("sbom-path", sbom.path().to_owned());
    }
    outputs.set("image", name.clone());
    outputs.set("digest", report.digest.clone());
    outputs.set(
        "tags",
        target
            .set
            .tags
            .iter()
            .map(|t| format!("{name}:{t}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    if !target.push_by_digest {
        outputs.set("sha-tag", format!("{name}:{}", target.set.sha));
    }
    outputs.set("platform", platforms_built(target, report).join(","));
    outputs.set("pushed", args.push.to_string());
    let mut markdown = summary(report);
    if !mirrored.is_empty() {
        outputs.set_json("mirrors", &mirror_results(mirrored))?;
        markdown.push('\n');
        markdown.push_str(&mirrors(mirrored));
    }
    if let Some(gate) = gate {
        gate.set_outputs(&mut outputs);
        markdown.push('\n');
        markdown.push_str(&gate.summary);
    }
    session.finish(&outputs, &markdown)
}
