//! The build stage: each platform built, exported and converted; the
//! builder asked for, the fallback, and what a failed build tells the user.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use crate::actions::workflow::{Annotation, Level};
use crate::build_key;
use crate::cli::BuilderArg;
use crate::commands::Session;
use crate::engine::{
    BuildSpec, Builder, Built, Capabilities, Engine, EngineError, Source, no_control_api,
    refused_session,
};
use crate::oci::{Digest, child_for};
use crate::plan::dockerfile;
use crate::platform::Platform;
use crate::report::publish::Published;

use super::inputs::engine_credentials;
use super::layers::{ExportUses, export, pushed_by_buildkit, reusable_layers};
use super::platforms::Exported;
use super::sizes;
use super::unchanged::{base_digests, key_of};
use super::{SAVED, Target, stage_timed};

/// Builds each platform's image in `work`: pushed by BuildKit, all at once,
/// or exported and converted one after the other; the build log is shown
/// as untrusted text.
pub(super) async fn build_images(
    session: &Session,
    target: &Target,
    work: &Path,
    scanned: bool,
    report: &mut Published,
) -> anyhow::Result<Vec<Exported>> {
    let engine = Engine::connect().await?;
    let capabilities = engine.capabilities().await?;
    let mut push_to = buildkit_push_target(target, scanned, capabilities);
    if target.registry_cache && push_to.is_none() {
        note_no_registry_cache(report, no_solve_because(target, scanned, capabilities));
    }
    if let Some(repository) = push_to.as_deref() {
        match solve_all(session, target, work, &engine, repository, report).await {
            Ok(images) => return Ok(finished(images, report)),
            Err(Unsolved::NoControlApi(e)) => {
                tracing::debug!("no BuildKit control API ({e}); building through /build");
                if target.registry_cache {
                    note_no_registry_cache(
                        report,
                        "the engine offers no BuildKit control API (`POST /grpc`)",
                    );
                }
            }
            // Built from the cache into the engine, exported and uploaded
            // by us (uploads that start over, errors naming the blob).
            Err(Unsolved::PushFailed) => {
                report.notes.push(PUSH_REFUSED.into());
                push_to = None;
            }
            Err(Unsolved::Failed(e)) => return Err(e),
        }
    }
    let asked: Vec<Option<&Platform>> = match target.platforms.as_slice() {
        [] => vec![None],
        some => some.iter().map(Some).collect(),
    };
    let several = asked.len() > 1;
    let dirs = asked
        .iter()
        .map(|platform| match platform {
            Some(p) if several => work.join(p.slug()),
            _ => work.to_owned(),
        })
        .collect::<Vec<_>>();
    for dir in &dirs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("couldn't create {}", dir.display()))?;
    }
    let at_once = push_to.is_some() && several;
    let mut logs: Vec<KeptLog> = asked.iter().map(|_| KeptLog::default()).collect();
    let builds = asked
        .iter()
        .zip(&dirs)
        .zip(&mut logs)
        .map(|((platform, dir), log)| Building {
            engine: &engine,
            platform: *platform,
            dir,
            scanned,
            output: Output {
                push_to: push_to.as_deref(),
                kept: at_once.then_some(log),
            },
        });
    let images = if at_once {
        // Nothing is exported: BuildKit builds and pushes every platform
        // at once. Each keeps its own log and notes, shown in platform
        // order once all are done.
        let built = futures_util::future::join_all(builds.map(|building| async move {
            let mut own = Published::default();
            let image = build_platform(session, target, building, &mut own).await;
            (image, own)
        }))
        .await;
        let mut images = Vec::with_capacity(built.len());
        for ((image, own), (platform, log)) in built.into_iter().zip(asked.iter().zip(logs)) {
            let title = format!(
                "build {}:{} ({})",
                target.image.reference.name(),
                target.image.sha,
                platform.map(ToString::to_string).unwrap_or_default()
            );
            let shown = session.workflow.verbatim(&title);
            for line in &log.lines {
                shown.line(line);
            }
            drop(shown);
            report.notes.extend(own.notes);
            report.bases.extend(own.bases);
            report.uploaded += own.uploaded;
            images.push(image?);
        }
        images
    } else {
        let mut images = Vec::with_capacity(asked.len());
        for building in builds {
            images.push(build_platform(session, target, building, report).await?);
        }
        images
    };
    Ok(finished(images, report))
}

fn finished(images: Vec<Exported>, report: &mut Published) -> Vec<Exported> {
    report.built = true;
    report.size = images.iter().map(|e| e.size()).sum();
    report.platforms = images.iter().map(|e| e.platform.to_string()).collect();
    images
}

/// Why the one-solve path built nothing to publish.
enum Unsolved {
    /// The engine has no control API (nothing ran): `/build` may serve.
    NoControlApi(EngineError),
    /// Built, but the registry refused or cut BuildKit's push.
    PushFailed,
    Failed(anyhow::Error),
}

const PUSH_REFUSED: &str = "the engine's BuildKit couldn't push the image (see the build log): exported and uploaded by publish instead";

/// Every platform in one solve of BuildKit's control API: the context
/// synced once, the platforms built side by side, a layer they share
/// pushed once, by digest. Then each platform's image is read back from
/// the registry and checked as a `/build` push is.
async fn solve_all(
    session: &Session,
    target: &Target,
    work: &Path,
    engine: &Engine,
    repository: &str,
    report: &mut Published,
) -> Result<Vec<Exported>, Unsolved> {
    let joined = target
        .platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let local = format!("{}:{}", target.image.reference.name(), target.image.sha);
    let mut spec = build_spec(
        target,
        (!joined.is_empty()).then(|| joined.clone()),
        &local,
        Builder::BuildKit,
        Some(repository.to_owned()),
    );
    spec.registry_cache = target
        .registry_cache
        .then(|| format!("{repository}:{CACHE_TAG}"));
    let title = match target.platforms.len() {
        0 | 1 => format!("build {local}"),
        _ => format!("build {local} ({})", joined.replace(',', ", ")),
    };
    // An earlier run's cache tag must not pass for this one's.
    let cache_before = match target.registry_cache {
        true => Some(cache_tag(target).await),
        false => None,
    };
    let started = Instant::now();
    let log = session.workflow.verbatim(&title);
    let mut on_line = |line: &str| log.line(line);
    let (built, bases) = tokio::join!(engine.solve(spec, &mut on_line), base_digests(target));
    drop(log);
    stage_timed("build and push (one solve)", started);
    let built = match built {
        Ok(built) => built,
        Err(e) if no_control_api(&e) => return Err(Unsolved::NoControlApi(e)),
        Err(e) if push_failed(&e) => return Err(Unsolved::PushFailed),
        Err(e) => {
            let platform = target
                .platforms
                .first()
                .filter(|_| target.platforms.len() == 1);
            return Err(Unsolved::Failed(explain_failure(
                session, target, platform, e,
            )));
        }
    };
    if let Some(before) = cache_before {
        let after = cache_tag(target).await;
        report
            .notes
            .push(registry_cache_note(repository, &before, &after));
    }
    read_back(target, work, &built, bases, report)
        .await
        .map_err(Unsolved::Failed)
}

/// Each platform's image of a solve, as the registry holds it.
async fn read_back(
    target: &Target,
    work: &Path,
    built: &Built,
    bases: Option<BTreeMap<String, String>>,
    report: &mut Published,
) -> anyhow::Result<Vec<Exported>> {
    let digest = built.buildkit_pushed.as_deref().context(
        "the engine's BuildKit built the image but named nothing it pushed (no containerimage.digest)",
    )?;
    let several = target.platforms.len() > 1;
    let for_all = if several {
        let shown: Vec<String> = target.platforms.iter().map(ToString::to_string).collect();
        format!(" ({})", shown.join(", "))
    } else {
        String::new()
    };
    if built.cached + built.executed > 0 {
        report.notes.push(format!(
            "BuildKit{for_all}: {} steps from the cache, {} run",
            built.cached, built.executed
        ));
    }
    if let Some(bases) = &bases {
        report.bases.extend(bases.clone());
    }
    if !several {
        let platform = target.platforms.first();
        let annotations = annotations(target, platform, built, Builder::BuildKit, bases.as_ref());
        let image = take_pushed(target, platform, work, digest, &annotations, report).await?;
        return Ok(vec![image]);
    }
    let (registry, repository) = (&target.image.registry, &target.image.repository);
    let index = registry.manifest(repository, digest).await?.with_context(|| {
        format!("the engine's BuildKit pushed {repository}@{digest}, but the registry doesn't have it")
    })?;
    let mut images = Vec::with_capacity(target.platforms.len());
    for platform in &target.platforms {
        // Only its digest: `take_pushed` reads the child, checked by it.
        let child = child_for(&index.bytes, platform).with_context(|| {
            format!("the index the engine's BuildKit pushed ({repository}@{digest}) has no {platform} image")
        })?;
        let dir = work.join(platform.slug());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("couldn't create {}", dir.display()))?;
        let annotations = annotations(
            target,
            Some(platform),
            built,
            Builder::BuildKit,
            bases.as_ref(),
        );
        let image = take_pushed(
            target,
            Some(platform),
            &dir,
            child.as_str(),
            &annotations,
            report,
        )
        .await?;
        images.push(image);
    }
    Ok(images)
}

/// Where the engine's BuildKit may push the image itself, by digest, from
/// its own store: the engine can, BuildKit is asked for, nothing reads the
/// export (no scan) and the run pushes with no SHA tag to guard. Nothing
/// pushed so is tagged until the checks after the build have passed.
fn buildkit_push_target(target: &Target, scanned: bool, engine: Capabilities) -> Option<String> {
    let fits = engine.buildkit_pushes()
        && requested_builder(target.builder) == Builder::BuildKit
        && !scanned
        && target.push
        && target.image.existing.is_none();
    fits.then(|| {
        format!(
            "{}/{}",
            target.image.reference.registry(),
            target.image.repository
        )
    })
}

/// Why a build can't go through one solve of BuildKit's control API
/// (where `buildkit_push_target` gives none).
fn no_solve_because(target: &Target, scanned: bool, engine: Capabilities) -> &'static str {
    if !engine.buildkit_pushes() {
        "the engine keeps images in the classic store, where BuildKit can't push or export a registry cache; the containerd image store can"
    } else if requested_builder(target.builder) != Builder::BuildKit {
        "`builder: legacy` has no BuildKit cache"
    } else if scanned {
        "a scanned image is exported from the engine before it is pushed, a build that exports no registry cache; `scanner: none` lets BuildKit push it"
    } else if !target.push {
        "nothing is pushed (`push: false`)"
    } else {
        "the commit's tag is already there, so the image is exported and checked against it"
    }
}

/// What the registry's cache tag names, read with one HEAD.
#[derive(Debug, PartialEq, Eq)]
enum CacheTag {
    Absent,
    At(String),
    /// The registry didn't answer.
    Unread,
}

async fn cache_tag(target: &Target) -> CacheTag {
    let image = &target.image;
    match image
        .registry
        .manifest_digest(&image.repository, CACHE_TAG)
        .await
    {
        Ok(Some(digest)) => CacheTag::At(digest),
        Ok(None) => CacheTag::Absent,
        Err(e) => {
            tracing::debug!("the cache tag couldn't be read: {e}");
            CacheTag::Unread
        }
    }
}

/// BuildKit is told to ignore a registry refusing its cache export (the
/// image is what matters), so the note says "exported" only when the cache
/// tag names another manifest after the solve than before it.
fn registry_cache_note(repository: &str, before: &CacheTag, after: &CacheTag) -> String {
    let tag = format!("{repository}:{CACHE_TAG}");
    const ALL_THE_SAME: &str = "the image is published all the same";
    match (before, after) {
        (CacheTag::Unread, _) | (_, CacheTag::Unread) => format!(
            "BuildKit's cache export to {tag} is unconfirmed: the registry didn't answer for the tag {} the build; {ALL_THE_SAME}",
            match before {
                CacheTag::Unread => "before",
                _ => "after",
            }
        ),
        (_, CacheTag::Absent) => format!(
            "BuildKit's cache was not exported: the registry holds no {tag} after the build (see the build log); {ALL_THE_SAME}"
        ),
        (CacheTag::At(was), CacheTag::At(is)) if was == is => format!(
            "BuildKit's cache push did not land: {tag} still names the cache of an earlier build (see the build log); {ALL_THE_SAME}"
        ),
        (_, CacheTag::At(_)) => format!(
            "BuildKit's whole cache (`mode=max`, every stage) exported to {tag} and imported from it"
        ),
    }
}

fn note_no_registry_cache(report: &mut Published, why: &str) {
    report.notes.push(format!(
        "registry cache (`cache-to: registry`) not used: {why}; the inline cache was"
    ));
}

/// The tag of the image's repository BuildKit's whole cache goes to.
const CACHE_TAG: &str = "buildcache";

/// One platform's build, and where its result goes.
struct Building<'a> {
    engine: &'a Engine,
    /// `None`: the engine's own platform.
    platform: Option<&'a Platform>,
    dir: &'a Path,
    scanned: bool,
    output: Output<'a>,
}

/// Where a build's image and log go.
pub(super) struct Output<'a> {
    /// BuildKit pushes the image here itself (`buildkit_push_target`).
    pub(super) push_to: Option<&'a str>,
    /// The log kept here, shown once the build is done: builds running at
    /// once must not interleave their verbatim sections.
    pub(super) kept: Option<&'a mut KeptLog>,
}

impl Output<'_> {
    /// The same, for one build.
    fn reborrow(&mut self) -> Output<'_> {
        Output {
            push_to: self.push_to,
            kept: self.kept.as_deref_mut(),
        }
    }

    /// For a build again after the first failed for `why`: into the
    /// engine, the kept log going on after the first attempt's.
    fn again_unpushed(&mut self, why: &str) -> Output<'_> {
        if let Some(kept) = self.kept.as_deref_mut() {
            kept.again(why);
        }
        Output {
            push_to: None,
            kept: self.kept.as_deref_mut(),
        }
    }
}

/// One build's log kept to be shown later: every attempt's lines, each at
/// most `KEPT_LINES`, a retry's after a line saying why, so the failure
/// that caused it stays in view.
#[derive(Debug, Default)]
pub(super) struct KeptLog {
    lines: Vec<String>,
    /// Lines of the attempt under way.
    this_attempt: usize,
}

/// Lines of one attempt's log kept to be shown later.
const KEPT_LINES: usize = 10_000;

impl KeptLog {
    fn line(&mut self, line: &str) {
        if self.this_attempt < KEPT_LINES {
            self.lines.push(line.to_owned());
        } else if self.this_attempt == KEPT_LINES {
            self.lines.push(format!(
                "… the rest of the log is left out (over {KEPT_LINES} lines)"
            ));
        }
        self.this_attempt = self.this_attempt.saturating_add(1);
    }

    fn again(&mut self, why: &str) {
        self.lines.push(format!("=== built again: {why} ==="));
        self.this_attempt = 0;
    }
}

/// One platform's image, pushed by BuildKit or exported to `dir` and
/// converted, its config checked to be of that platform.
async fn build_platform(
    session: &Session,
    target: &Target,
    building: Building<'_>,
    report: &mut Published,
) -> anyhow::Result<Exported> {
    let Building {
        engine,
        platform,
        dir,
        scanned,
        output,
    } = building;
    // One of several: its local tag and notes name it.
    let one_of = platform.filter(|_| target.platforms.len() > 1);
    let local = format!(
        "{}:{}{}",
        target.image.reference.name(),
        target.image.sha,
        one_of.map(|p| format!("-{}", p.slug())).unwrap_or_default()
    );
    let for_platform = one_of.map(|p| format!(" ({p})")).unwrap_or_default();
    let started = Instant::now();
    let (built, bases) = tokio::join!(
        build_with_fallback(session, engine, target, platform, &local, output, report),
        base_digests(target)
    );
    let (built, builder) = built?;
    stage_timed(&format!("build{for_platform}"), started);
    if built.cached + built.executed > 0 {
        report.notes.push(format!(
            "BuildKit{for_platform}: {} steps from the cache, {} run",
            built.cached, built.executed
        ));
    }
    if let Some(bases) = &bases {
        report.bases.extend(bases.clone());
    }
    let mut annotations = annotations(target, platform, &built, builder, bases.as_ref());
    if let Some(digest) = &built.buildkit_pushed {
        return take_pushed(target, platform, dir, digest, &annotations, report).await;
    }
    let known = reusable_layers(target, platform, &engine.diff_ids(&local).await?).await?;
    // Uploaded before the platform check below only where the engine can't
    // have built another platform: its own, or one BuildKit was asked for.
    let uses = ExportUses {
        scanned,
        upload_early: !scanned && (platform.is_none() || builder == Builder::BuildKit),
    };
    let started = Instant::now();
    let image = export(engine, target, &local, known, dir, uses, report).await;
    stage_timed(
        &format!("export, convert, early upload{for_platform}"),
        started,
    );
    engine.untag(&local).await;
    let (image, analysed) = image?;
    annotations.extend(sizes::annotation(&analysed));
    let image = image.annotated(&annotations);
    let reused = image
        .layers
        .iter()
        .filter(|l| matches!(l.source, Source::Registry { .. }))
        .count();
    note_reused(report, reused, image.layers.len(), &for_platform);
    Exported::new(image, platform, dir.join(SAVED)).map(|exported| exported.with(analysed))
}

/// The build-key annotation of `built`'s image of `platform`, built by
/// `builder`.
fn annotations(
    target: &Target,
    platform: Option<&Platform>,
    built: &Built,
    builder: Builder,
    bases: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    key_of(target, platform, &built.context, builder, bases)
        .map(|key| (build_key::ANNOTATION.to_owned(), key))
        .into_iter()
        .collect()
}

/// The image BuildKit pushed as `digest`, read back and checked (digest,
/// platform), annotated; what was sent counted in `report`.
async fn take_pushed(
    target: &Target,
    platform: Option<&Platform>,
    dir: &Path,
    digest: &str,
    annotations: &BTreeMap<String, String>,
    report: &mut Published,
) -> anyhow::Result<Exported> {
    let for_platform = platform
        .filter(|_| target.platforms.len() > 1)
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let (image, diff_ids) = pushed_by_buildkit(target, digest, dir).await?;
    // What the registry held before (`latest`'s, the bases'): BuildKit
    // found those there and sent only the rest.
    let known = reusable_layers(target, platform, &diff_ids).await?;
    let held = |digest: &Digest| known.values().any(|k| &k.digest == digest);
    let reused = image.layers.iter().filter(|l| held(&l.digest)).count();
    let sent: u64 = image
        .layers
        .iter()
        .filter(|l| !held(&l.digest))
        .map(|l| l.size)
        .sum();
    report.uploaded += sent + image.config.size;
    report.notes.push(format!(
        "layers{for_platform} pushed by the engine's BuildKit from its store, as it compressed them"
    ));
    note_reused(report, reused, image.layers.len(), &for_platform);
    let analysed =
        sizes::analyse_pushed(&target.image.registry, &target.image.repository, &image).await;
    let mut annotations = annotations.clone();
    annotations.extend(sizes::annotation(&analysed));
    Exported::new(image.annotated(&annotations), platform, dir.join(SAVED))
        .map(|exported| exported.with(analysed))
}

fn note_reused(report: &mut Published, reused: usize, layers: usize, for_platform: &str) {
    if reused > 0 {
        report.notes.push(format!(
            "{reused} of {layers} layers{for_platform} already in the registry: reused, not exported or compressed again"
        ));
    }
}

/// How BuildKit names the step that fetches a `# syntax=` frontend image.
pub(super) const FRONTEND_STEP: &str = "resolve image config for";
/// Builds with the builder asked for; under `auto`, an engine that refuses a
/// BuildKit session gets the legacy builder instead, and the summary says so.
pub(super) async fn build_with_fallback(
    session: &Session,
    engine: &Engine,
    target: &Target,
    platform: Option<&Platform>,
    local: &str,
    mut output: Output<'_>,
    report: &mut Published,
) -> anyhow::Result<(Built, Builder)> {
    let first = requested_builder(target.builder);
    match build_once(
        session,
        engine,
        target,
        platform,
        local,
        first,
        output.reborrow(),
    )
    .await
    {
        // The layers are built; the registry refused or cut BuildKit's
        // push, which retries nothing. Built again from the cache into the
        // engine, the image is exported and uploaded by us (uploads that
        // start over, errors naming the blob).
        Err(e) if output.push_to.is_some() && push_failed(&e) => {
            report.notes.push(PUSH_REFUSED.into());
            let output = output.again_unpushed(PUSH_REFUSED);
            let built = build_once(session, engine, target, platform, local, first, output)
                .await
                .map_err(|e| explain_failure(session, target, platform, e))?;
            Ok((built, first))
        }
        // Secrets need BuildKit: without it the refusal is the error; so
        // are several platforms, which the legacy builder mixes up.
        Err(e)
            if target.builder == BuilderArg::Auto
                && target.secrets.is_empty()
                && target.platforms.len() <= 1
                && refused_session(&e) =>
        {
            let note = format!(
                "the engine refused a BuildKit session ({e}); built with the legacy builder (no inline cache, no `RUN --mount`)"
            );
            let output = output.again_unpushed(&note);
            report.notes.push(note);
            let built = build_once(
                session,
                engine,
                target,
                platform,
                local,
                Builder::Legacy,
                output,
            )
            .await?;
            Ok((built, Builder::Legacy))
        }
        Err(e) => Err(explain_failure(session, target, platform, e)),
        Ok(built) => Ok((built, first)),
    }
}

/// How BuildKit names the step that exports (and pushes) the image.
const EXPORT_STEP: &str = "exporting to image";

/// Whether a build failed in its export, which pushes with `push_to`.
fn push_failed(error: &EngineError) -> bool {
    matches!(error, EngineError::BuildFailed { step: Some(step), .. } if step.starts_with(EXPORT_STEP))
}

/// The builder `builder` asks for first.
pub(super) fn requested_builder(builder: BuilderArg) -> Builder {
    match builder {
        BuilderArg::Legacy => Builder::Legacy,
        BuilderArg::Auto | BuilderArg::Buildkit => Builder::BuildKit,
    }
}

/// What the engine is asked to build for `target`; `platform` may name
/// several, comma-separated, for a solve.
fn build_spec<'a>(
    target: &'a Target,
    platform: Option<String>,
    local: &'a str,
    builder: Builder,
    push_to: Option<String>,
) -> BuildSpec<'a> {
    BuildSpec {
        context: &target.dir,
        dockerfile: &target.dockerfile,
        tag: local,
        build_args: target.build_args.clone(),
        labels: target.labels.clone(),
        target: target.stage.clone(),
        platform,
        network: target.network.clone(),
        credentials: engine_credentials(
            target.image.reference.registry(),
            target.image.credentials.as_ref(),
        ),
        builder,
        secrets: target.secrets.clone(),
        inline_cache: target.inline_cache,
        cache_from: target.cache_from.clone(),
        push_to,
        registry_cache: None,
    }
}

pub(super) async fn build_once(
    session: &Session,
    engine: &Engine,
    target: &Target,
    platform: Option<&Platform>,
    local: &str,
    builder: Builder,
    output: Output<'_>,
) -> Result<Built, EngineError> {
    let spec = build_spec(
        target,
        platform.map(ToString::to_string),
        local,
        builder,
        output.push_to.map(str::to_owned),
    );
    if let Some(kept) = output.kept {
        return engine.build(spec, &mut |line| kept.line(line)).await;
    }
    let log = session.workflow.verbatim(&format!("build {local}"));
    engine.build(spec, &mut |line| log.line(line)).await
}

/// A failed BuildKit step becomes an error annotation on its Dockerfile
/// line; a frontend that a `# syntax=` line asked for and BuildKit could not
/// fetch is said in those words.
pub(super) fn explain_failure(
    session: &Session,
    target: &Target,
    platform: Option<&Platform>,
    error: EngineError,
) -> anyhow::Error {
    if let Some(explained) = no_emulation(&error, platform) {
        session.workflow.annotate(
            &Annotation::new(Level::Error, &explained)
                .with_title("no emulation for this platform")
                .with_file(&target.dockerfile_rel),
        );
        return anyhow::anyhow!(explained);
    }
    let EngineError::BuildFailed {
        step: Some(step),
        message,
        tail,
        ..
    } = &error
    else {
        return error.into();
    };
    let content = &target.dockerfile_text;
    let annotation = Annotation::new(Level::Error, format!("`{step}` failed: {message}\n{tail}"))
        .with_title("build step failed")
        .with_file(&target.dockerfile_rel);
    if let Some((line, image)) = dockerfile::syntax_directive(content)
        .filter(|(_, image)| step.starts_with(FRONTEND_STEP) && step.contains(image.as_str()))
    {
        let explained = format!(
            "the Dockerfile's `# syntax={image}` ({} line {line}) makes BuildKit fetch the frontend image {image}, which failed: {message}; let the engine reach that registry, or delete the line to build with the engine's own Dockerfile frontend",
            target.dockerfile_rel
        );
        session.workflow.annotate(
            &Annotation::new(Level::Error, &explained)
                .with_title("Dockerfile frontend unavailable")
                .with_file(&target.dockerfile_rel)
                .with_line(u32::try_from(line).unwrap_or(1)),
        );
        return anyhow::anyhow!(explained);
    }
    let annotation = match dockerfile::step_line(content, step) {
        Some(line) => annotation.with_line(u32::try_from(line).unwrap_or(1)),
        None => annotation,
    };
    session.workflow.annotate(&annotation);
    error.into()
}

/// What the kernel answers when asked to run a program of another
/// architecture with no emulator registered in binfmt_misc.
const EXEC_FORMAT_ERROR: &str = "exec format error";

/// A `RUN` of a foreign platform's program without QEMU: said in those
/// words, with the two ways out.
pub(super) fn no_emulation(error: &EngineError, platform: Option<&Platform>) -> Option<String> {
    let EngineError::BuildFailed {
        step,
        message,
        tail,
        ..
    } = error
    else {
        return None;
    };
    if !message.contains(EXEC_FORMAT_ERROR) && !tail.contains(EXEC_FORMAT_ERROR) {
        return None;
    }
    let qemu = platform.map_or("aarch64", |p| qemu_name(&p.architecture));
    let platform = platform.map_or_else(|| "this platform".to_owned(), ToString::to_string);
    let step = step
        .as_deref()
        .map(|s| format!("`{s}` "))
        .unwrap_or_default();
    Some(format!(
        "{step}failed building for {platform}: exec format error — the runner can't run {platform} programs because QEMU is not registered in binfmt_misc. Add `docker/setup-qemu-action` before this step (on Debian as root: `apt-get install qemu-user-static binfmt-support && update-binfmts --enable qemu-{qemu}`), or cross-build without emulation: `FROM --platform=$BUILDPLATFORM` for the stages that compile, choosing the output with `TARGETARCH`"
    ))
}

/// QEMU's name for an architecture as images name it.
fn qemu_name(architecture: &str) -> &str {
    match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_build_keeps_the_first_attempts_log_and_says_why_it_ran_again() {
        let mut log = KeptLog::default();
        let mut output = Output {
            push_to: Some("127.0.0.1:5000/app"),
            kept: Some(&mut log),
        };
        let first = output.reborrow();
        assert_eq!(first.push_to, Some("127.0.0.1:5000/app"));
        let kept = first.kept.unwrap();
        kept.line("#9 exporting to image");
        kept.line("#9 ERROR: failed to push: 400 Bad Request");
        let again = output.again_unpushed(PUSH_REFUSED);
        assert_eq!(again.push_to, None);
        again.kept.unwrap().line("#9 exporting to image 0.1s done");
        assert_eq!(
            log.lines,
            [
                "#9 exporting to image".to_owned(),
                "#9 ERROR: failed to push: 400 Bad Request".to_owned(),
                format!("=== built again: {PUSH_REFUSED} ==="),
                "#9 exporting to image 0.1s done".to_owned(),
            ]
        );
    }

    #[test]
    fn each_attempt_keeps_its_own_lines_up_to_the_bound() {
        let mut log = KeptLog::default();
        for i in 0..KEPT_LINES + 5 {
            log.line(&format!("first {i}"));
        }
        log.again("the push failed");
        log.line("second");
        assert_eq!(log.lines.len(), KEPT_LINES + 3);
        assert_eq!(
            log.lines[KEPT_LINES - 1..],
            [
                format!("first {}", KEPT_LINES - 1),
                format!("… the rest of the log is left out (over {KEPT_LINES} lines)"),
                "=== built again: the push failed ===".to_owned(),
                "second".to_owned(),
            ]
        );
    }

    #[test]
    fn the_cache_counts_as_exported_only_when_its_tag_moved_or_appeared() {
        let at = |d: &str| CacheTag::At(format!("sha256:{}", d.repeat(64)));
        let note = |before, after| registry_cache_note("r/app", &before, &after);
        let exported = "BuildKit's whole cache (`mode=max`, every stage) exported to r/app:buildcache and imported from it";
        assert_eq!(note(CacheTag::Absent, at("a")), exported);
        assert_eq!(note(at("a"), at("b")), exported);
        assert!(
            note(at("a"), at("a")).starts_with(
                "BuildKit's cache push did not land: r/app:buildcache still names the cache of an earlier build (see the build log)"
            )
        );
        for before in [CacheTag::Absent, at("a")] {
            assert!(
                note(before, CacheTag::Absent).starts_with(
                    "BuildKit's cache was not exported: the registry holds no r/app:buildcache after the build"
                )
            );
        }
        assert!(
            note(CacheTag::Unread, at("a")).contains("didn't answer for the tag before the build")
        );
        assert!(
            note(at("a"), CacheTag::Unread).contains("didn't answer for the tag after the build")
        );
    }
}
