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
use bytes::Bytes;

use crate::actions::event::Event;
use crate::actions::outputs::Outputs;
use crate::cli::{LatestArg, PublishArgs};
use crate::commands::Session;
use crate::commands::mirror::{mirror_results, release_mirrors};
use crate::commands::scan::{self, Subject};
use crate::engine::docker::{BuildSpec, Engine};
use crate::engine::export::{Blob, KnownLayers, OciImage, Source, oci_image};
use crate::metadata::{self, Provenance};
use crate::mirror::summary::{Mirrored, mirrors};
use crate::plan::git::GitSource;
use crate::plan::github::GitHubSource;
use crate::reference::Reference;
use crate::registry::auth::Credentials;
use crate::registry::{Manifest, Registry};
use crate::report::publish::{Published, summary};
use crate::tags::{self, Facts, Latest, TagSet};

const REVISION_LABEL: &str = "org.opencontainers.image.revision";
/// The engine's export in the work directory: converted for the push and
/// handed to the scanner as it is.
const SAVED: &str = "image.tar";

pub async fn run(args: &PublishArgs, session: &Session) -> anyhow::Result<()> {
    let ctx = &session.ctx;
    let started = Instant::now();
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
    let extra_tags: Vec<String> = args
        .tags
        .iter()
        .flat_map(|t| crate::actions::inputs::split_list(t))
        .collect();
    let platform = single_platform(args.platforms.as_deref())?;
    let event = session.event()?;
    let sha = commit_sha(args, session, event.as_ref())?;
    let version = match &args.version {
        Some(v) => Some(
            semver::Version::parse(v.trim_start_matches('v')).with_context(|| {
                format!("`version`: {v:?} is not a semantic version (like 1.2.3 or 1.2.3-rc.1)")
            })?,
        ),
        None => ctx
            .git_ref
            .as_deref()
            .and_then(|r| metadata::version_from_ref(r, &basename)),
    };

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
    let published_versions = if args.push && version.is_some() {
        released_versions(&registry, &repository).await?
    } else {
        Vec::new()
    };
    let mut set = tags::tags(&Facts {
        sha: &sha,
        git_ref: ctx.git_ref.as_deref(),
        default_branch: default_branch(event.as_ref()),
        pull_request: matches!(event, Some(Event::PullRequest(_))),
        version: version.as_ref(),
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
        guard_latest(&registry, &repository, &sha, session, token, &mut set).await?;
    }

    let mut report = Published {
        image: reference.familiar(),
        tags: set.tags.clone(),
        notes: set.withheld.clone(),
        ..Published::default()
    };
    let mut gate = None;
    let manifest = match (existing, args.rebuild) {
        (Some(found), false) => {
            report.notes.push(format!(
                "`{}` already exists: build skipped (set `rebuild: true` to build anyway)",
                set.sha
            ));
            found
        }
        (existing, _) => {
            let work = session.work_dir()?;
            let labels = labels(session, &sha, version.as_ref(), &basename, extra_labels);
            let local = format!("{}:{}", reference.name(), set.sha);
            let spec = BuildSpec {
                context: &dir,
                dockerfile: &dockerfile,
                tag: &local,
                build_args,
                labels,
                target: args.target.clone(),
                platform,
                network: args.network.clone(),
                credentials: engine_credentials(reference.registry(), credentials.as_ref()),
            };
            let image = build(session, spec, work.path()).await?;
            report.size = image.layers.iter().map(|l| l.size).sum::<u64>() + image.config.size;
            report.built = true;
            let dockerfile_rel = dockerfile
                .strip_prefix(&ctx.workspace)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| dockerfile.display().to_string());
            let at = scan::location(session, &dockerfile_rel);
            let archive = work.path().join(SAVED);
            gate = scan::gate(
                session,
                &args.scan,
                &reference.familiar(),
                Subject::Archive(&archive),
                at.as_ref(),
                args.github_token
                    .as_deref()
                    .or(session.env_token.as_deref()),
                Some(&sha),
            )
            .await?;
            if let Some(blocking) = gate.as_ref().filter(|g| g.blocks()) {
                report.seconds = started.elapsed().as_secs_f64();
                report
                    .notes
                    .push("the scan blocked the release: nothing was pushed".into());
                let mut outputs = Outputs::new();
                outputs.set("image", reference.familiar());
                outputs.set("pushed", "false");
                blocking.set_outputs(&mut outputs);
                session.finish(
                    &outputs,
                    &format!(
                        "{}
{}",
                        summary(&report),
                        blocking.summary
                    ),
                )?;
                bail!(
                    "the scan of {} found what `fail-on` ({}) blocks; nothing was pushed — fix or ignore the findings (see the job summary)",
                    reference.familiar(),
                    args.scan.fail_on.0.map_or("none", |s| s.as_str())
                );
            }
            let manifest = Manifest {
                bytes: image.manifest.clone(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: image.manifest_digest.clone(),
            };
            if let Some(existing) = existing.filter(|e| e.digest != manifest.digest) {
                bail!(
                    "`{}:{}` already exists with digest {} and this rebuild made {}; an immutable SHA tag is never replaced — delete the tag in the registry first if you mean to replace it",
                    reference.familiar(),
                    set.sha,
                    existing.digest,
                    manifest.digest
                );
            }
            if args.push {
                report.uploaded = push_blobs(&registry, &repository, &image).await?;
                registry
                    .put_manifest(&repository, &set.sha, &manifest)
                    .await?;
            }
            manifest
        }
    };
    if args.push {
        for tag in set.tags.iter().filter(|t| **t != set.sha) {
            registry.put_manifest(&repository, tag, &manifest).await?;
        }
    }
    let mirrored = if args.push {
        release_mirrors(args, &registry, &repository, &set.tags).await?
    } else {
        Vec::new()
    };
    let failed: Vec<&Mirrored> = mirrored.iter().filter(|m| m.result.is_err()).collect();
    if args.mirror_required && !failed.is_empty() {
        bail!(
            "{} is released, but mirroring it to {} failed and `mirror-required` is set; see the log, then re-run (only what is missing is copied)",
            reference.familiar(),
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
    report.digest = manifest.digest.clone();
    report.pushed = args.push;
    report.seconds = started.elapsed().as_secs_f64();

    let mut outputs = Outputs::new();
    outputs.set("image", reference.familiar());
    outputs.set("digest", manifest.digest.clone());
    outputs.set(
        "tags",
        set.tags
            .iter()
            .map(|t| format!("{}:{t}", reference.familiar()))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    outputs.set("sha-tag", format!("{}:{}", reference.familiar(), set.sha));
    outputs.set("pushed", args.push.to_string());
    let mut markdown = summary(&report);
    if !mirrored.is_empty() {
        outputs.set_json("mirrors", &mirror_results(&mirrored))?;
        markdown.push('\n');
        markdown.push_str(&mirrors(&mirrored));
    }
    if let Some(gate) = &gate {
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
    struct ImageManifest {
        config: Option<Descriptor>,
    }
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        config: Option<ConfigBody>,
    }
    #[derive(serde::Deserialize)]
    struct ConfigBody {
        #[serde(rename = "Labels")]
        labels: Option<HashMap<String, String>>,
    }
    let Ok(ImageManifest {
        config: Some(config),
    }) = serde_json::from_slice(&manifest.bytes)
    else {
        return Ok(None);
    };
    let bytes = registry.blob(repository, &config.digest).await?;
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

/// Builds, exports and converts to an OCI image in `work`; the build log
/// is shown as untrusted text.
async fn build(session: &Session, spec: BuildSpec<'_>, work: &Path) -> anyhow::Result<OciImage> {
    let engine = Engine::connect().await?;
    let local = spec.tag.to_owned();
    {
        let log = session.workflow.verbatim(&format!("build {local}"));
        engine.build(spec, &mut |line| log.line(line)).await?;
    }
    let saved: PathBuf = work.join(SAVED);
    engine.save(&local, &saved).await?;
    engine.untag(&local).await;
    let out = work.to_owned();
    let image = tokio::task::spawn_blocking(move || oci_image(&saved, &out, &KnownLayers::new()))
        .await
        .context("the export task failed")??;
    Ok(image)
}

/// Uploads what the registry lacks, config and layers; returns bytes sent.
async fn push_blobs(
    registry: &Registry,
    repository: &str,
    image: &OciImage,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
        if registry.has_blob(repository, &blob.digest).await? {
            continue;
        }
        let bytes = read(blob).await?;
        registry
            .upload_blob(repository, &blob.digest, bytes)
            .await?;
        sent += blob.size;
    }
    Ok(sent)
}

async fn read(blob: &Blob) -> anyhow::Result<Bytes> {
    let Source::File(path) = &blob.source else {
        bail!(
            "blob {} was not written here: it is to be mounted from the registry",
            blob.digest
        );
    };
    Ok(Bytes::from(tokio::fs::read(path).await.with_context(
        || format!("couldn't read {}", path.display()),
    )?))
}
