//! `publish`, read as its stages: resolve (inputs, the facts the
//! registry and the forge give: what the SHA tag and `latest` name) →
//! bases (`depends-on` checked against the Dockerfile) → plan (`plan.rs`:
//! reuse, release again or build; the tags; what is signed and mirrored) →
//! its execution: build (wait for the bases and pin their digests;
//! BuildKit, export, layers reused and analysed) → sizes (the layers
//! weighed: `max-image-size` and the rest) → gate (one scan) → SBOM → push (blobs,
//! then the SHA tag) → tag (the others, registry-side) → sign → mirror →
//! finish (outputs, summary).
//!
//! The image is pushed by this binary, not the engine: blobs first (skipping
//! what the registry has), the manifest only after all of them, then every
//! further tag as the same manifest bytes, so all tags name one digest and
//! the later tags cost one small request each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use anyhow::bail;

use crate::actions::event::Event;
use crate::actions::outputs::Outputs;
use crate::cli::{BuilderArg, PublishArgs, ScanArgs, ScannerArg, Tagging};
use crate::commands::Session;
use crate::engine::BuildSecrets;
use crate::gate::{Gate, Request, Subject, location};
use crate::mirror::release::mirror_release;
use crate::mirror::summary::{Mirrored, mirror_results, mirrors};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::auth::Credentials;
use crate::registry::{Manifest, Registry};
use crate::report::publish::{Published, summary};
use crate::supply::cosign::Predicate;
use crate::tags::TagSet;

mod bases;
mod bounds;
mod build;
mod growth;
mod inputs;
mod latest;
mod layers;
pub mod merge;
mod plan;
mod platforms;
mod push;
mod resolve;
mod same_index;
mod sizes;
mod supply;
mod unchanged;

use bases::{bases, pin_bases};
use build::build_images;
use latest::github_token;
use layers::Pushed;
use plan::{Asked, Build, Found, Origin, PublishPlan, Push};
use platforms::{Exported, platforms_built, release_manifest};
use push::{push_image, tag, write_sha_tag};
use resolve::{Publication, resolve};
use supply::{Attestations, Sbom, Scope, Supply, provenance, sbom, sign, supply_inputs};
use unchanged::{SameBuild, release_again, same_build};

/// The engine's export in the work directory: converted for the push and
/// handed to the scanner as it is.
const SAVED: &str = "image.tar";

pub async fn run(args: &PublishArgs, session: &Session) -> anyhow::Result<()> {
    let started = Instant::now();
    let publication = Publication::of(args);
    if let Some(why) = release_not_out(publication.tagging, session)? {
        return nothing_to_publish(session, &why);
    }
    let (mut target, found, checkout) = resolve(args, &publication, session).await?;
    let supply = supply_inputs(
        session,
        &args.supply.signing,
        sbom_asked(args),
        args.supply.provenance,
    )
    .await?;
    let bases = bases(args, session, &target)?;
    let asked = asked(args, &target, &supply);
    let found = Found { bases, ..found };
    let plan = decide(&asked, session, &target, found, checkout).await?;
    let mut report = target.image.report(&plan.tags);
    report.notes.extend(plan.notes.iter().cloned());
    let made = obtain(
        args,
        session,
        &mut target,
        &supply,
        plan.origin,
        plan.push,
        &mut report,
    );
    let release = match made.await? {
        Made::Release(release) => release,
        Made::Withheld(blocking) => {
            return withhold(args, session, &target, report, &blocking, started);
        }
        Made::TooLarge(error) => return too_large(session, &target, report, error, started),
    };
    let tagging = Instant::now();
    tag(&target.image, &plan.more_tags, &release.manifest).await?;
    stage_timed("further tags", tagging);
    sign(
        &target.image,
        plan.signing,
        &supply,
        (&release.manifest, Scope::WithPlatformImages),
        Attestations {
            sbom: release.sbom.as_ref(),
            provenance: release.provenance.as_ref(),
        },
        &mut report,
    )
    .await?;
    let mirrored = mirror(args, session, &target.image, plan.mirror, &plan.tags).await?;
    report.digest = release.manifest.digest.clone();
    report.pushed = args.push;
    report.seconds = started.elapsed().as_secs_f64();
    let platforms = platforms_built(&target, &report);
    let by_digest = plan.push == Push::ByDigest;
    finish(
        session,
        &target.image,
        &report,
        by_digest,
        &platforms,
        &mirrored,
        &release,
    )
}

/// How long a stage took, at debug level: where a publish's time goes.
fn stage_timed(stage: &str, started: Instant) {
    tracing::debug!("stage {stage}: {:.3} s", started.elapsed().as_secs_f64());
}

/// A release event that puts no release out (a draft, or `edited`,
/// `deleted`, `unpublished`: a plain `on: release` delivers those too)
/// publishes nothing, as `plan` selects nothing for it; `release-tag` or
/// `version` name a release of their own.
fn release_not_out(tagging: &Tagging, session: &Session) -> anyhow::Result<Option<String>> {
    if tagging.release.release_tag.is_some() || tagging.version.is_some() {
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

/// The SBOM asked for, with the scan it is converted from.
fn sbom_asked(args: &PublishArgs) -> Option<(Predicate, &ScanArgs)> {
    args.supply
        .sbom
        .predicate()
        .map(|predicate| (predicate, &args.scan))
}

/// The inputs the plan weighs.
fn asked(args: &PublishArgs, target: &Target, supply: &Supply) -> Asked {
    Asked {
        push: args.push,
        by_digest: args.push_by_digest,
        rebuild: args.rebuild,
        scanned: args.scan.scanner != ScannerArg::None,
        platforms: target.platforms.len(),
        signs: supply.signs(),
        sbom: supply.sbom_asked(),
        cache: args.cache,
        cache_from: args
            .cache_from
            .iter()
            .flat_map(|t| crate::actions::inputs::split_list(t))
            .collect(),
        image: target.image.reference.familiar(),
    }
}

/// The last fact the plan needs, looked for only when it can matter: an
/// image (or index) of the same build key already pushed. Then the plan.
/// `checkout`: what that needs of the checkout, if being learnt already;
/// dropped unused, it stops.
async fn decide(
    asked: &Asked,
    session: &Session,
    target: &Target,
    found: Found,
    checkout: Option<unchanged::Checkout>,
) -> anyhow::Result<PublishPlan> {
    let looking = Instant::now();
    let same = match plan::looks_for_same_build(asked, &found) {
        true => same_build(session, target, checkout).await?,
        false => SameBuild::default(),
    };
    stage_timed("looking for the same build", looking);
    Ok(PublishPlan::new(
        asked,
        Found {
            earlier: same.earlier,
            passed_over: same.passed_over,
            ..found
        },
    ))
}

/// Where the image goes, its commit, and what the registry holds of it:
/// what `publish` and `merge` both resolve.
struct Image {
    reference: Reference,
    repository: String,
    credentials: Option<Credentials>,
    registry: Registry,
    /// The commit built, lower case; also its SHA tag.
    sha: String,
    /// The manifest the SHA tag names already, if any.
    existing: Option<Manifest>,
    /// The manifest `latest` names now: an image, or the index of several
    /// platforms' (read once, when pushing: looked at again for the same
    /// build).
    latest_tag: Option<Manifest>,
    /// The image `latest` names now, the first platform's of an index
    /// (read once: its revision guards `latest`, its layers are reused).
    latest: Option<Pushed>,
    /// The other platforms' images of `latest_tag`, each read once
    /// (`layers::latest_image`).
    latest_others: Mutex<LatestOthers>,
}

/// `latest`'s images by platform, as read.
type LatestOthers = Vec<(Platform, Option<Pushed>)>;

/// Everything `publish` builds from, beside the image it goes to.
struct Target {
    image: Image,
    dir: PathBuf,
    dockerfile: PathBuf,
    /// The Dockerfile relative to the workspace, for annotations.
    dockerfile_rel: String,
    /// Its text, read once: bases to reuse layers from, failed steps' lines.
    dockerfile_text: String,
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
    /// Export BuildKit's whole cache to the repository's `buildcache` tag
    /// and import it (`cache-to: registry`), where the engine can.
    registry_cache: bool,
    /// The images whose inline cache the build may reuse: the plan's, set
    /// when it builds.
    cache_from: Vec<String>,
    /// Whether this run pushes at all.
    push: bool,
}

impl Image {
    fn latest_kept(&self) -> anyhow::Result<MutexGuard<'_, LatestOthers>> {
        self.latest_others
            .lock()
            .map_err(|_| anyhow::anyhow!("a read of `latest` failed midway"))
    }

    fn report(&self, tags: &TagSet) -> Published {
        Published {
            image: self.reference.familiar(),
            tags: tags.tags.clone(),
            notes: tags.withheld.clone(),
            ..Published::default()
        }
    }
}

/// What the tags will name, and what the build's scan made of it.
struct Release {
    manifest: Manifest,
    gate: Option<Gate>,
    sbom: Option<Sbom>,
    /// The build's SLSA provenance, when asked for.
    provenance: Option<serde_json::Value>,
}

impl Release {
    /// An image this run didn't build: no scan, no SBOM.
    fn of(manifest: Manifest) -> Self {
        Release {
            manifest,
            gate: None,
            sbom: None,
            provenance: None,
        }
    }
}

/// The SHA tag exists already: nothing is built, the other tags are pointed
/// at it.
fn reuse(found: Manifest, target: &Target, report: &mut Published) -> Release {
    report.notes.push(format!(
        "`{}` already exists: build skipped (set `rebuild: true` to build anyway)",
        target.image.sha
    ));
    Release::of(found)
}

/// What the plan's origin gives: the image under the SHA tag (reused,
/// released again, or built and pushed), or a scan that withholds it.
async fn obtain(
    args: &PublishArgs,
    session: &Session,
    target: &mut Target,
    supply: &Supply,
    origin: Origin,
    push: Push,
    report: &mut Published,
) -> anyhow::Result<Made> {
    Ok(match origin {
        Origin::Reuse(found) => Made::Release(reuse(found, target, report)),
        Origin::ReleaseAgain(earlier) => {
            Made::Release(Release::of(release_again(target, earlier, report).await?))
        }
        Origin::Build(build) => make(args, session, target, &build, supply, push, report).await?,
    })
}

/// What the build stage made: the release, or a scan or size bound that
/// withholds it.
enum Made {
    Release(Release),
    Withheld(Gate),
    TooLarge(anyhow::Error),
}

/// The build and what follows it before the tags: wait for the bases and
/// pin them, build every platform, scan, the SBOM, the push.
async fn make(
    args: &PublishArgs,
    session: &Session,
    target: &mut Target,
    build: &Build,
    supply: &Supply,
    push: Push,
    report: &mut Published,
) -> anyhow::Result<Made> {
    let started = crate::time::now();
    let work = session.work_dir()?;
    pin_bases(args, session, target, &build.bases, work.path(), report).await?;
    let scanned = args.scan.scanner != ScannerArg::None;
    target.cache_from = build.cache_from.clone();
    let images = build_images(session, target, work.path(), scanned, report).await?;
    if let Some(error) = sizes::weigh(session, target, &args.size, &images, report).await? {
        return Ok(Made::TooLarge(error));
    }
    let gating = Instant::now();
    let gate = match gate(args, session, target, &images).await? {
        Some(blocking) if blocking.blocks() => return Ok(Made::Withheld(blocking)),
        gate => gate,
    };
    let manifest = release_manifest(&images)?;
    let sbom = sbom(
        session,
        target,
        supply,
        gate.as_ref(),
        &manifest.digest,
        work.path(),
        report,
    )
    .await?;
    stage_timed("gate, SBOM", gating);
    let pushing = Instant::now();
    push_image(target, push, &images, &manifest, report).await?;
    stage_timed("push (blobs left, manifest, SHA tag)", pushing);
    let provenance = supply
        .provenance()
        .then(|| provenance(session, supply, target, report, started, crate::time::now()));
    Ok(Made::Release(Release {
        manifest,
        gate,
        sbom,
        provenance,
    }))
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
        image: &target.image.reference.familiar(),
        subject,
        location: at.as_ref(),
        token: github_token(&args.tagging, session),
        head_sha: Some(&target.image.sha),
    };
    crate::gate::gate(
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
    outputs.set("image", target.image.reference.familiar());
    outputs.set("pushed", "false");
    sizes::set_outputs(&mut outputs, &report.layers);
    blocking.set_outputs(&mut outputs);
    session.finish(
        &outputs,
        &format!("{}\n{}", summary(&report), blocking.summary),
    )?;
    bail!(
        "the scan of {} found what `fail-on` ({}) blocks; nothing was pushed — fix or ignore the findings (see the job summary)",
        target.image.reference.familiar(),
        args.scan.fail_on.0.map_or("none", |s| s.as_str())
    );
}

/// A size bound withheld the release (`size-policy: fail`): the summary
/// and outputs say so, nothing is tagged.
fn too_large(
    session: &Session,
    target: &Target,
    mut report: Published,
    error: anyhow::Error,
    started: Instant,
) -> anyhow::Result<()> {
    report.seconds = started.elapsed().as_secs_f64();
    report.notes.push(
        "the image's size bounds blocked the release (`size-policy: fail`): nothing was tagged"
            .into(),
    );
    let mut outputs = Outputs::new();
    outputs.set("image", target.image.reference.familiar());
    outputs.set("pushed", "false");
    sizes::set_outputs(&mut outputs, &report.layers);
    session.finish(&outputs, &summary(&report))?;
    Err(error)
}

/// Copies the release to `mirror-to`; a failed mirror is a warning unless
/// `mirror-required`.
async fn mirror(
    args: &PublishArgs,
    session: &Session,
    image: &Image,
    planned: bool,
    tags: &TagSet,
) -> anyhow::Result<Vec<Mirrored>> {
    if !planned {
        return Ok(Vec::new());
    }
    let mirrored = mirror_release(
        &args.mirror_to,
        args.mirror_login.credentials()?,
        &image.registry,
        &image.repository,
        &tags.tags,
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
            image.reference.familiar(),
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
    session: &Session,
    image: &Image,
    report: &Published,
    by_digest: bool,
    platforms: &[String],
    mirrored: &[Mirrored],
    release: &Release,
) -> anyhow::Result<()> {
    let name = image.reference.familiar();
    let mut outputs = Outputs::new();
    if let Some(sbom) = &release.sbom {
        outputs.set("sbom-path", sbom.path().to_owned());
    }
    outputs.set("image", name.clone());
    outputs.set("digest", report.digest.clone());
    outputs.set(
        "tags",
        report
            .tags
            .iter()
            .map(|t| format!("{name}:{t}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    if !by_digest {
        outputs.set("sha-tag", format!("{name}:{}", image.sha));
    }
    outputs.set("platform", platforms.join(","));
    outputs.set("pushed", report.pushed.to_string());
    sizes::set_outputs(&mut outputs, &report.layers);
    let mut markdown = summary(report);
    if !mirrored.is_empty() {
        outputs.set_json("mirrors", &mirror_results(mirrored))?;
        markdown.push('\n');
        markdown.push_str(&mirrors(mirrored));
    }
    if let Some(gate) = &release.gate {
        gate.set_outputs(&mut outputs);
        markdown.push('\n');
        markdown.push_str(&gate.summary);
    }
    session.finish(&outputs, &markdown)
}
