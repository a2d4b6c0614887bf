//! `publish`: login → build → export → push the SHA tag → add the other tags
//! registry-side.
//!
//! The image is pushed by this binary, not the engine: blobs first (skipping
//! what the registry has), the manifest only after all of them, then every
//! further tag as the same manifest bytes, so all tags name one digest and
//! the later tags cost one small request each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bollard::auth::DockerCredentials;
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::actions::event::Event;
use crate::actions::outputs::Outputs;
use crate::actions::workflow::{Annotation, Level};
use crate::cli::{BuilderArg, LatestArg, PublishArgs};
use crate::commands::Session;
use crate::commands::mirror::{mirror_results, release_mirrors};
use crate::commands::scan::{self, Gate, Subject};
use crate::engine::build::{BUILDKIT_NETWORKS, refused_session};
use crate::engine::buildkit::BuildSecrets;
use crate::engine::docker::{BuildSpec, Builder, Built, Engine, EngineError};
use crate::engine::export::{
    Blob, KnownLayers, MANIFEST_MEDIA_TYPE, OciImage, Source, known_layers, oci_image,
};
use crate::metadata::{self, Provenance};
use crate::mirror::summary::{Mirrored, mirrors};
use crate::plan::dockerfile;
use crate::plan::git::GitSource;
use crate::plan::github::GitHubSource;
use crate::reference::Reference;
use crate::registry::auth::Credentials;
use crate::registry::mount::Upload;
use crate::registry::{Manifest, Registry};
use crate::report::publish::{Published, summary};
use crate::tags::{self, Facts, Latest, TagSet};

/// How BuildKit names the step that fetches a `# syntax=` frontend image.
const FRONTEND_STEP: &str = "resolve image config for";
/// Blob uploads in flight at once (docker push's default is 5).
const PARALLEL_UPLOADS: usize = 4;
const REVISION_LABEL: &str = "org.opencontainers.image.revision";
/// The engine's export in the work directory: converted for the push and
/// handed to the scanner as it is.
const SAVED: &str = "image.tar";

pub async fn run(args: &PublishArgs, session: &Session) -> anyhow::Result<()> {
    let started = Instant::now();
    let target = resolve(args, session).await?;
    let mut report = target.report();
    let (manifest, gate) = match target.existing.clone().filter(|_| !args.rebuild) {
        Some(found) => (reuse(found, &target, &mut report), None),
        None => {
            let work = session.work_dir()?;
            let image = build(session, &target, work.path(), &mut report).await?;
            let gate = gate(args, session, &target, work.path()).await?;
            if let Some(blocking) = gate.as_ref().filter(|g| g.blocks()) {
                return withhold(args, session, &target, report, blocking, started);
            }
            let manifest = push(args, &target, &image, &mut report).await?;
            (manifest, gate)
        }
    };
    tag(args, &target, &manifest).await?;
    let mirrored = mirror(args, session, &target).await?;
    report.digest = manifest.digest.clone();
    report.pushed = args.push;
    report.seconds = started.elapsed().as_secs_f64();
    finish(args, session, &target, &report, &mirrored, gate.as_ref())
}

/// Everything decided before building: where the image comes from, where it
/// goes, under which tags, and whether the commit is already published.
struct Target {
    dir: PathBuf,
    dockerfile: PathBuf,
    /// The Dockerfile relative to the workspace, for annotations.
    dockerfile_rel: String,
    reference: Reference,
    repository: String,
    credentials: Option<Credentials>,
    registry: Registry,
    build_args: HashMap<String, String>,
    labels: HashMap<String, String>,
    /// The build stage to stop at (`target`).
    stage: Option<String>,
    platform: Option<String>,
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
        args.github_token
            .as_deref()
            .or(session.env_token.as_deref())
    }
}

async fn resolve(args: &PublishArgs, session: &Session) -> anyhow::Result<Target> {
    let ctx = &session.ctx;
    let dir = ctx.workspace.join(&args.path);
    let dockerfile = match &args.dockerfile {
        Some(f) => ctx.workspace.join(f),
        None => dir.join("Dockerfile"),
    };
    if !dir.is_dir() {
        bail!(
            "`path`: {:?} is not a directory in the workspace {}; pass an image directory such as a matrix entry's `path`",
            args.path,
            ctx.workspace.display()
        );
    }
    if !dockerfile.is_file() {
        bail!(
            "no Dockerfile at {}; add one or set `dockerfile`",
            dockerfile.display()
        );
    }
    let dockerfile_rel = dockerfile
        .strip_prefix(&ctx.workspace)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| dockerfile.display().to_string());
    let basename = args
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&args.path)
        .to_owned();
    let reference = image_reference(args, session, &basename)?;
    let repository = reference.repository().to_owned();
    let credentials = super::credentials(&args.username, &args.password)?;
    let build_args = metadata::pairs("build-args", &args.build_args).map_err(anyhow::Error::msg)?;
    let extra_labels = metadata::pairs("labels", &args.labels).map_err(anyhow::Error::msg)?;
    let platform = single_platform(args.platforms.as_deref())?;
    check_network(args.builder, args.network.as_deref())?;
    let event = session.event()?;
    let sha = commit_sha(args, session, event.as_ref())?;
    let version = release_version(args, session, &basename)?;
    let registry = Registry::new(reference.registry(), credentials.clone())?;
    if args.push {
        registry.check_access(&repository).await?;
    }
    let existing = if args.push {
        registry
            .manifest(&repository, &sha.to_ascii_lowercase())
            .await?
    } else {
        None
    };
    let set = tag_set(
        args,
        session,
        &registry,
        &repository,
        &sha,
        version.as_ref(),
        event.as_ref(),
    )
    .await?;
    let cache_from = cache_sources(args, &reference, &set);
    let labels = labels(session, &sha, version.as_ref(), &basename, extra_labels);
    Ok(Target {
        dir,
        dockerfile,
        dockerfile_rel,
        reference,
        repository,
        credentials,
        registry,
        build_args,
        labels,
        stage: args.target.clone(),
        platform,
        network: args.network.clone(),
        builder: args.builder,
        secrets: build_secrets(&args.secrets)?,
        inline_cache: args.cache,
        cache_from,
        sha,
        set,
        existing,
        push: args.push,
    })
}

fn release_version(
    args: &PublishArgs,
    session: &Session,
    basename: &str,
) -> anyhow::Result<Option<semver::Version>> {
    Ok(match &args.version {
        Some(v) => Some(
            semver::Version::parse(v.trim_start_matches('v')).with_context(|| {
                format!("`version`: {v:?} is not a semantic version (like 1.2.3 or 1.2.3-rc.1)")
            })?,
        ),
        None => session
            .ctx
            .git_ref
            .as_deref()
            .and_then(|r| metadata::version_from_ref(r, basename)),
    })
}

/// The tags this run gives the image, `latest` held back when it would move
/// backwards.
async fn tag_set(
    args: &PublishArgs,
    session: &Session,
    registry: &Registry,
    repository: &str,
    sha: &str,
    version: Option<&semver::Version>,
    event: Option<&Event>,
) -> anyhow::Result<TagSet> {
    let extra_tags: Vec<String> = args
        .tags
        .iter()
        .flat_map(|t| crate::actions::inputs::split_list(t))
        .collect();
    let published_versions = if args.push && version.is_some() {
        released_versions(registry, repository).await?
    } else {
        Vec::new()
    };
    let mut set = tags::tags(&Facts {
        sha,
        git_ref: session.ctx.git_ref.as_deref(),
        default_branch: default_branch(event),
        pull_request: matches!(event, Some(Event::PullRequest(_))),
        version,
        latest: match args.latest {
            LatestArg::Auto => Latest::Auto,
            LatestArg::True => Latest::Always,
            LatestArg::False => Latest::Never,
        },
        extra: &extra_tags,
        published: &published_versions,
    })?;
    if set.latest && args.push {
        let token = args
            .github_token
            .as_deref()
            .or(session.env_token.as_deref());
        guard_latest(registry, repository, sha, session, token, &mut set).await?;
    }
    Ok(set)
}

/// `secrets`: `id=value` lines. A malformed line is named by its number,
/// never echoed: it may be the secret itself.
fn build_secrets(lines: &[String]) -> anyhow::Result<BuildSecrets> {
    let mut secrets = BuildSecrets::new();
    let lines = lines
        .iter()
        .flat_map(|v| crate::actions::inputs::split_list(v));
    for (number, line) in lines.enumerate() {
        match line.split_once('=') {
            Some((id, value)) if !id.trim().is_empty() => secrets.insert(id.trim(), value),
            _ => bail!(
                "`secrets`: line {} is not id=value; write one `id=value` per line, the id as `RUN --mount=type=secret,id=<id>` names it",
                number + 1
            ),
        }
    }
    Ok(secrets)
}

/// BuildKit's `RUN` takes only these networks through the engine's API; the
/// legacy builder also takes a network's name.
fn check_network(builder: BuilderArg, network: Option<&str>) -> anyhow::Result<()> {
    match network {
        Some(name) if builder != BuilderArg::Legacy && !BUILDKIT_NETWORKS.contains(&name) => bail!(
            "`network`: {name:?} is not a network BuildKit can use; give `default`, `host` or `none` (or set `builder: legacy` to use a named network)"
        ),
        _ => Ok(()),
    }
}

/// The images whose inline cache the build may reuse: `cache-from` as
/// given, else the tags this release moves (they name the previous build
/// of this image), always with `latest`.
fn cache_sources(args: &PublishArgs, reference: &Reference, set: &TagSet) -> Vec<String> {
    if !args.cache {
        return Vec::new();
    }
    let given: Vec<String> = args
        .cache_from
        .iter()
        .flat_map(|t| crate::actions::inputs::split_list(t))
        .collect();
    if !given.is_empty() {
        return given;
    }
    let name = reference.familiar();
    let mut moving: Vec<String> = std::iter::once("latest")
        .chain(
            set.tags
                .iter()
                .map(String::as_str)
                .filter(|t| *t != set.sha && *t != "latest"),
        )
        .map(|tag| format!("{name}:{tag}"))
        .collect();
    moving.dedup();
    moving
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

/// Builds, exports and converts to an OCI image in `work`; the build log is
/// shown as untrusted text.
async fn build(
    session: &Session,
    target: &Target,
    work: &Path,
    report: &mut Published,
) -> anyhow::Result<OciImage> {
    let engine = Engine::connect().await?;
    let local = format!("{}:{}", target.reference.name(), target.set.sha);
    let built = build_with_fallback(session, &engine, target, &local, report).await?;
    report.built = true;
    if built.cached + built.executed > 0 {
        report.notes.push(format!(
            "BuildKit: {} steps from the cache, {} run",
            built.cached, built.executed
        ));
    }
    let known = reusable_layers(target, &engine.diff_ids(&local).await?).await?;
    let saved: PathBuf = work.join(SAVED);
    engine.save(&local, &saved).await?;
    engine.untag(&local).await;
    let out = work.to_owned();
    let image = tokio::task::spawn_blocking(move || oci_image(&saved, &out, &known))
        .await
        .context("the export task failed")??;
    report.size = image.layers.iter().map(|l| l.size).sum::<u64>() + image.config.size;
    let reused = image
        .layers
        .iter()
        .filter(|l| matches!(l.source, Source::Registry { .. }))
        .count();
    if reused > 0 {
        report.notes.push(format!(
            "{reused} of {} layers already in the registry: reused, not exported or compressed again",
            image.layers.len()
        ));
    }
    Ok(image)
}

/// The layers of this build that the registry already holds in this
/// repository, so they are neither compressed nor sent again: those of the
/// image's `latest`, and those of the monorepo images it is built `FROM`
/// (mounted into this repository first). A layer the registry can't prove
/// it holds here is left out, and so exported as usual.
async fn reusable_layers(target: &Target, diff_ids: &[String]) -> anyhow::Result<KnownLayers> {
    let mut candidates = KnownLayers::new();
    for (repository, tag) in reuse_sources(target) {
        for (diff_id, layer) in layers_of(&target.registry, &repository, &tag).await? {
            if diff_ids.contains(&diff_id) {
                candidates.entry(diff_id).or_insert(layer);
            }
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

/// Where earlier layers of this image may be: its own `latest`, then each
/// `FROM` image on the same registry. Only when pushing: a build that pushes
/// nothing must not change the registry by mounting.
fn reuse_sources(target: &Target) -> Vec<(String, String)> {
    if !target.push {
        return Vec::new();
    }
    let content = std::fs::read_to_string(&target.dockerfile).unwrap_or_default();
    let args = target
        .build_args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let stages = dockerfile::stages(&content, &args);
    let bases = dockerfile::external_bases(&stages)
        .into_iter()
        .filter_map(|stage| Reference::parse(&stage.base).ok())
        .filter(|base| base.registry() == target.reference.registry() && base.digest().is_none())
        .map(|base| {
            let tag = base.tag().unwrap_or("latest").to_owned();
            (base.repository().to_owned(), tag)
        });
    std::iter::once((target.repository.clone(), "latest".to_owned()))
        .chain(bases)
        .collect()
}

/// The layers of `repository:tag` by diff ID; none when it is absent or not
/// a single-platform image.
async fn layers_of(
    registry: &Registry,
    repository: &str,
    tag: &str,
) -> anyhow::Result<KnownLayers> {
    let Some(manifest) = registry.manifest(repository, tag).await? else {
        return Ok(KnownLayers::new());
    };
    let Some(config) = config_digest(&manifest.bytes) else {
        return Ok(KnownLayers::new());
    };
    let config = registry.blob(repository, &config).await?;
    Ok(known_layers(repository, &manifest.bytes, &config))
}

/// The config digest an image manifest names.
fn config_digest(manifest: &[u8]) -> Option<String> {
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

/// Builds with the builder asked for; under `auto`, an engine that refuses a
/// BuildKit session gets the legacy builder instead, and the summary says so.
async fn build_with_fallback(
    session: &Session,
    engine: &Engine,
    target: &Target,
    local: &str,
    report: &mut Published,
) -> anyhow::Result<Built> {
    let first = match target.builder {
        BuilderArg::Legacy => Builder::Legacy,
        BuilderArg::Auto | BuilderArg::Buildkit => Builder::BuildKit,
    };
    match build_once(session, engine, target, local, first).await {
        Err(e) if target.builder == BuilderArg::Auto && refused_session(&e) => {
            report.notes.push(format!(
                "the engine refused a BuildKit session ({e}); built with the legacy builder (no inline cache, no `RUN --mount`)"
            ));
            Ok(build_once(session, engine, target, local, Builder::Legacy).await?)
        }
        Err(e) => Err(explain_failure(session, target, e)),
        Ok(built) => Ok(built),
    }
}

async fn build_once(
    session: &Session,
    engine: &Engine,
    target: &Target,
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
        platform: target.platform.clone(),
        network: target.network.clone(),
        credentials: engine_credentials(target.reference.registry(), target.credentials.as_ref()),
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
fn explain_failure(session: &Session, target: &Target, error: EngineError) -> anyhow::Error {
    let EngineError::BuildFailed {
        step: Some(step),
        message,
        tail,
        ..
    } = &error
    else {
        return error.into();
    };
    let content = std::fs::read_to_string(&target.dockerfile).unwrap_or_default();
    let annotation = Annotation::new(Level::Error, format!("`{step}` failed: {message}\n{tail}"))
        .with_title("build step failed")
        .with_file(&target.dockerfile_rel);
    if let Some((line, image)) = dockerfile::syntax_directive(&content)
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
    let annotation = match dockerfile::step_line(&content, step) {
        Some(line) => annotation.with_line(u32::try_from(line).unwrap_or(1)),
        None => annotation,
    };
    session.workflow.annotate(&annotation);
    error.into()
}

/// One scan of the export, graded; `None` with `scanner: none`.
async fn gate(
    args: &PublishArgs,
    session: &Session,
    target: &Target,
    work: &Path,
) -> anyhow::Result<Option<Gate>> {
    let at = scan::location(session, &target.dockerfile_rel);
    let archive = work.join(SAVED);
    scan::gate(
        session,
        &args.scan,
        &target.reference.familiar(),
        Subject::Archive(&archive),
        at.as_ref(),
        target.token(args, session),
        Some(&target.sha),
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

/// Blobs, then the manifest under the SHA tag; an immutable SHA tag is
/// never replaced by a different digest.
async fn push(
    args: &PublishArgs,
    target: &Target,
    image: &OciImage,
    report: &mut Published,
) -> anyhow::Result<Manifest> {
    let manifest = Manifest {
        bytes: image.manifest.clone(),
        media_type: MANIFEST_MEDIA_TYPE.into(),
        digest: image.manifest_digest.clone(),
    };
    if let Some(existing) = target
        .existing
        .as_ref()
        .filter(|e| e.digest != manifest.digest)
    {
        bail!(
            "`{}:{}` already exists with digest {} and this rebuild made {}; an immutable SHA tag is never replaced — delete the tag in the registry first if you mean to replace it",
            target.reference.familiar(),
            target.set.sha,
            existing.digest,
            manifest.digest
        );
    }
    if args.push {
        report.uploaded = push_blobs(&target.registry, &target.repository, image).await?;
        target
            .registry
            .put_manifest(&target.repository, &target.set.sha, &manifest)
            .await?;
    }
    Ok(manifest)
}

/// Every further tag, registry-side: the same manifest bytes again.
async fn tag(args: &PublishArgs, target: &Target, manifest: &Manifest) -> anyhow::Result<()> {
    if !args.push {
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
    if !args.push {
        return Ok(Vec::new());
    }
    let mirrored =
        release_mirrors(args, &target.registry, &target.repository, &target.set.tags).await?;
    let failed: Vec<&Mirrored> = mirrored.iter().filter(|m| m.result.is_err()).collect();
    if args.mirror_required && !failed.is_empty() {
        bail!(
            "{} is released, but mirroring it to {} failed and `mirror-required` is set; see the log, then re-run (only what is missing is copied)",
            target.reference.familiar(),
            failed
                .iter()
                .map(|m| m.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for m in &failed {
        if let Err(e) = &m.result {
            session.workflow.warning(&format!(
                "mirroring to {} failed: {e}; the release stands (set `mirror-required: true` to fail the job instead)",
                m.target
            ));
        }
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
) -> anyhow::Result<()> {
    let name = target.reference.familiar();
    let mut outputs = Outputs::new();
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
    outputs.set("sha-tag", format!("{name}:{}", target.set.sha));
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

fn image_reference(
    args: &PublishArgs,
    session: &Session,
    basename: &str,
) -> anyhow::Result<Reference> {
    let name = match &args.image {
        Some(image) if has_registry(image) => image.clone(),
        Some(image) => format!("{}/{image}", args.registry),
        None => format!(
            "{}/{}/{basename}",
            args.registry,
            session.namespace(args.namespace.as_deref())?
        ),
    };
    let reference = Reference::parse(&name)
        .with_context(|| format!("`image`: {name:?} is not a valid image name"))?;
    if reference.tag().is_some() || reference.digest().is_some() {
        bail!(
            "`image`: {name:?} names a tag or digest; give the name only — tags come from the commit, `latest`, versions and `tags`"
        );
    }
    Ok(reference)
}

fn has_registry(image: &str) -> bool {
    image
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

fn single_platform(platforms: Option<&str>) -> anyhow::Result<Option<String>> {
    let list: Vec<String> = platforms
        .map(crate::actions::inputs::split_list)
        .unwrap_or_default()
        .iter()
        .flat_map(|l| l.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    match list.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => bail!(
            "`platforms`: {many:?} asks for a multi-platform image, which the engine's builder can't make in one build; publish one platform per job (e.g. `linux/amd64`)"
        ),
    }
}

/// The commit built: the input, the pull request's head (never the merge
/// commit GITHUB_SHA names), else GITHUB_SHA.
fn commit_sha(
    args: &PublishArgs,
    session: &Session,
    event: Option<&Event>,
) -> anyhow::Result<String> {
    args.sha
        .clone()
        .or_else(|| match event {
            Some(Event::PullRequest(pr)) => Some(pr.head_sha.clone()),
            _ => None,
        })
        .or_else(|| session.ctx.sha.clone())
        .context("no commit to tag: set `sha` (or GITHUB_SHA)")
}

fn default_branch(event: Option<&Event>) -> Option<&str> {
    match event {
        Some(Event::Push(push)) => push.default_branch.as_deref(),
        Some(Event::PullRequest(pr)) => pr.default_branch.as_deref(),
        _ => None,
    }
}

async fn released_versions(
    registry: &Registry,
    repository: &str,
) -> anyhow::Result<Vec<semver::Version>> {
    Ok(registry
        .tags(repository)
        .await?
        .iter()
        .filter_map(|t| semver::Version::parse(t).ok())
        .collect())
}

/// `latest` never moves backwards: when the image it names now was built
/// from a commit that descends from this one, it stays.
async fn guard_latest(
    registry: &Registry,
    repository: &str,
    sha: &str,
    session: &Session,
    token: Option<&str>,
    set: &mut TagSet,
) -> anyhow::Result<()> {
    let Some(current) = registry.manifest(repository, "latest").await? else {
        return Ok(());
    };
    let Some(revision) = revision_of(registry, repository, &current).await? else {
        return Ok(());
    };
    if revision.eq_ignore_ascii_case(sha) {
        return Ok(());
    }
    let short = &revision[..revision.len().min(7)];
    match ancestry(session, token, sha, &revision).await? {
        Some((true, source)) => {
            set.latest = false;
            set.tags.retain(|t| t != "latest");
            set.withheld.push(format!(
                "`latest` stays on `{short}`, built from a newer commit (per {source})"
            ));
        }
        Some((false, _)) => {}
        None => set.withheld.push(format!(
            "`latest` was built from `{short}`, which neither the clone nor the GitHub API knows; moved it"
        )),
    }
    Ok(())
}

/// Whether `sha` is an ancestor of `revision`: from the local clone when
/// it has both commits, else from the compare API (a depth-1 checkout has
/// neither), with the source that answered.
async fn ancestry(
    session: &Session,
    token: Option<&str>,
    sha: &str,
    revision: &str,
) -> anyhow::Result<Option<(bool, &'static str)>> {
    if let Some(git) = GitSource::open(&session.ctx.workspace).await? {
        if let Some(answer) = git.is_ancestor(sha, revision).await? {
            return Ok(Some((answer, "git")));
        }
    }
    let Some(repository) = &session.ctx.repository else {
        return Ok(None);
    };
    let api = GitHubSource::new(&session.ctx.api_url, token, repository)?;
    Ok(api.is_ancestor(sha, revision).await?.map(|a| (a, "github")))
}

async fn revision_of(
    registry: &Registry,
    repository: &str,
    manifest: &Manifest,
) -> anyhow::Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Config {
        config: Option<ConfigBody>,
    }
    #[derive(serde::Deserialize)]
    struct ConfigBody {
        #[serde(rename = "Labels")]
        labels: Option<HashMap<String, String>>,
    }
    let Some(config) = config_digest(&manifest.bytes) else {
        return Ok(None);
    };
    let bytes = registry.blob(repository, &config).await?;
    Ok(serde_json::from_slice::<Config>(&bytes)
        .ok()
        .and_then(|c| c.config?.labels?.remove(REVISION_LABEL)))
}

fn labels(
    session: &Session,
    sha: &str,
    version: Option<&semver::Version>,
    title: &str,
    extra: HashMap<String, String>,
) -> HashMap<String, String> {
    let ctx = &session.ctx;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut labels = metadata::oci_labels(&Provenance {
        source: ctx
            .repository
            .as_ref()
            .map(|r| format!("{}/{r}", ctx.server_url.trim_end_matches('/'))),
        revision: sha,
        created: crate::time::rfc3339(now as i64),
        version: version.map(ToString::to_string),
        title,
    });
    labels.extend(extra);
    labels
}

/// The login handed to the engine with the build request (never written to
/// a file), so `FROM` lines can pull private images of the same registry.
fn engine_credentials(
    registry: &str,
    credentials: Option<&Credentials>,
) -> HashMap<String, DockerCredentials> {
    let Some(c) = credentials else {
        return HashMap::new();
    };
    // The engine keys Docker Hub logins by its legacy index address.
    let server = match registry {
        "docker.io" => "https://index.docker.io/v1/".to_owned(),
        other => other.to_owned(),
    };
    HashMap::from([(
        server.clone(),
        DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(server),
            ..Default::default()
        },
    )])
}

/// Uploads what the registry lacks, config and layers, a few at a time as
/// `docker push` does; returns bytes sent.
async fn push_blobs(
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
async fn push_blob(registry: &Registry, repository: &str, blob: &Blob) -> anyhow::Result<u64> {
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
