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
use crate::engine::{BuildSpec, Builder, Built, Engine, EngineError, Source, refused_session};
use crate::plan::dockerfile;
use crate::platform::Platform;
use crate::report::publish::Published;

use super::inputs::engine_credentials;
use super::layers::{ExportUses, export, reusable_layers};
use super::platforms::Exported;
use super::unchanged::{base_digests, key_of};
use super::{SAVED, Target, stage_timed};

/// Builds, exports and converts each platform's image in `work` (one
/// after the other: a monorepo sibling `FROM` resolves per platform); the
/// build log is shown as untrusted text.
pub(super) async fn build_images(
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
        target.image.reference.name(),
        target.image.sha,
        one_of.map(|p| format!("-{}", p.slug())).unwrap_or_default()
    );
    let for_platform = one_of.map(|p| format!(" ({p})")).unwrap_or_default();
    let started = Instant::now();
    let (built, bases) = tokio::join!(
        build_with_fallback(session, engine, target, platform, &local, report),
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
    let started = Instant::now();
    let image = export(engine, target, &local, known, dir, uses, report).await;
    stage_timed(
        &format!("export, convert, early upload{for_platform}"),
        started,
    );
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
    report: &mut Published,
) -> anyhow::Result<(Built, Builder)> {
    let first = requested_builder(target.builder);
    match build_once(session, engine, target, platform, local, first).await {
        // Secrets need BuildKit: without it the refusal is the error; so
        // are several platforms, which the legacy builder mixes up.
        Err(e)
            if target.builder == BuilderArg::Auto
                && target.secrets.is_empty()
                && target.platforms.len() <= 1
                && refused_session(&e) =>
        {
            report.notes.push(format!(
                "the engine refused a BuildKit session ({e}); built with the legacy builder (no inline cache, no `RUN --mount`)"
            ));
            let built =
                build_once(session, engine, target, platform, local, Builder::Legacy).await?;
            Ok((built, Builder::Legacy))
        }
        Err(e) => Err(explain_failure(session, target, platform, e)),
        Ok(built) => Ok((built, first)),
    }
}

/// The builder `builder` asks for first.
pub(super) fn requested_builder(builder: BuilderArg) -> Builder {
    match builder {
        BuilderArg::Legacy => Builder::Legacy,
        BuilderArg::Auto | BuilderArg::Buildkit => Builder::BuildKit,
    }
}

pub(super) async fn build_once(
    session: &Session,
    engine: &Engine,
    target: &Target,
    platform: Option<&Platform>,
    local: &str,
    builder: Builder,
) -> Result<Built, EngineError> {
    let spec = BuildSpec {
        context: &target.dir,
        dockerfile: &target.dockerfile,
        tag: local,
        build_args: target.build_args.clone(),
        labels: target.labels.clone(),
        target: target.stage.clone(),
        platform: platform.map(ToString::to_string),
        network: target.network.clone(),
        credentials: engine_credentials(
            target.image.reference.registry(),
            target.image.credentials.as_ref(),
        ),
        builder,
        secrets: target.secrets.clone(),
        inline_cache: target.inline_cache,
        cache_from: target.cache_from.clone(),
    };
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
