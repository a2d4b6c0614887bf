//! `publish` inputs turned into what the build and the push need.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use bollard::auth::DockerCredentials;

use crate::actions::event::Event;
use crate::cli::{BuilderArg, ImageLocation, Tagging};
use crate::commands::Session;
use crate::engine::{BUILDKIT_NETWORKS, BuildSecrets};
use crate::metadata::{self, Provenance};
use crate::plan::git::GitSource;
use crate::plan::strategy::short;
use crate::reference::Reference;
use crate::registry::auth::Credentials;
use crate::release::{FORMS, ReleaseTag, is_prerelease};

/// The release this run publishes, if any.
pub(super) struct ReleaseFacts {
    pub version: Option<semver::Version>,
    pub prerelease: bool,
}

/// The version from `version`, else from the release tag (`release-tag`,
/// else the release event's, else the tag pushed); prerelease from the
/// `prerelease` input, else the release event's flag and the version.
pub(super) fn release_facts(
    tagging: &Tagging,
    session: &Session,
    event: Option<&Event>,
    basename: &str,
) -> anyhow::Result<ReleaseFacts> {
    let (tag, flag) = match (&tagging.release.release_tag, event) {
        (Some(tag), _) => {
            let parsed = ReleaseTag::parse(tag, &[basename]).with_context(|| {
                format!("`release-tag`: {tag:?} is not a release of `{basename}`: releases are tagged {FORMS}")
            })?;
            (Some(parsed), event.and_then(|e| e.release_flag(tag)))
        }
        (None, Some(Event::Release(release))) => (
            ReleaseTag::parse(&release.tag, &[basename]),
            Some(release.prerelease),
        ),
        (None, _) => (
            session
                .ctx
                .git_ref
                .as_deref()
                .and_then(|r| ReleaseTag::from_ref(r, basename)),
            None,
        ),
    };
    let version = match &tagging.version {
        Some(v) => Some(
            semver::Version::parse(v.trim_start_matches('v')).with_context(|| {
                format!("`version`: {v:?} is not a semantic version (like 1.2.3 or 1.2.3-rc.1)")
            })?,
        ),
        None => tag.map(|t| t.version),
    };
    let forced = tagging.release.prerelease.forced();
    Ok(ReleaseFacts {
        prerelease: match &version {
            Some(version) => is_prerelease(forced, flag, version),
            None => forced == Some(true),
        },
        version,
    })
}

/// With `release-tag`, the commit built is the tag's, and the checkout must
/// be that commit: a dispatch checks out its branch unless told otherwise.
pub(super) async fn release_commit(
    tagging: &Tagging,
    session: &Session,
) -> anyhow::Result<Option<String>> {
    let (Some(tag), None) = (&tagging.release.release_tag, &tagging.sha) else {
        return Ok(None);
    };
    let Some(git) = GitSource::open(&session.ctx.workspace).await? else {
        return Ok(None);
    };
    let Some(commit) = git.tag_commit(tag).await? else {
        bail!(
            "`release-tag`: tag {tag:?} is not in the checked-out clone; check it out (`actions/checkout` with `ref: {tag}`) so the release is built from the tagged commit"
        );
    };
    let head = git.commit("HEAD").await?.unwrap_or_default();
    if head != commit {
        bail!(
            "`release-tag`: {tag:?} is commit {}, but the workspace has {} checked out; check the tag out (`actions/checkout` with `ref: {tag}`) so the release is built from it",
            short(&commit),
            short(&head)
        );
    }
    Ok(Some(commit))
}

/// `secrets`: `id=value` lines. A malformed line is named by its number,
/// never echoed: it may be the secret itself.
pub(super) fn build_secrets(lines: &[String]) -> anyhow::Result<BuildSecrets> {
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

/// Only BuildKit mounts secrets; the legacy builder would drop them unsaid.
pub(super) fn check_secrets(builder: BuilderArg, secrets: &BuildSecrets) -> anyhow::Result<()> {
    if builder == BuilderArg::Legacy && !secrets.is_empty() {
        bail!(
            "`secrets` ({}) are for `RUN --mount=type=secret`, which the legacy builder can't do; set `builder: auto` or `buildkit`",
            secrets.ids().join(", ")
        );
    }
    Ok(())
}

/// BuildKit's `RUN` takes only these networks through the engine's API; the
/// legacy builder also takes a network's name.
pub(super) fn check_network(builder: BuilderArg, network: Option<&str>) -> anyhow::Result<()> {
    match network {
        Some(name) if builder != BuilderArg::Legacy && !BUILDKIT_NETWORKS.contains(&name) => bail!(
            "`network`: {name:?} is not a network BuildKit can use; give `default`, `host` or `none` (or set `builder: legacy` to use a named network)"
        ),
        _ => Ok(()),
    }
}

pub(super) fn image_reference(
    location: &ImageLocation,
    session: &Session,
    basename: &str,
) -> anyhow::Result<Reference> {
    let name = match &location.image {
        Some(image) if has_registry(image) => image.clone(),
        Some(image) => format!("{}/{image}", location.registry),
        None => format!(
            "{}/{}/{basename}",
            location.registry,
            session.namespace(location.namespace.as_deref())?
        ),
    };
    // `image` and `namespace` were checked as given (cli); a directory's
    // name is lower-cased here.
    Reference::parse(&name).with_context(|| format!("`image`: {name:?} is not a valid image name"))
}

fn has_registry(image: &str) -> bool {
    image
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

/// The commit built: the input, the release tag's commit, the pull
/// request's head (never the merge commit GITHUB_SHA names), else
/// GITHUB_SHA; lower-cased, and checked before it names anything.
pub(super) fn commit_sha(
    tagging: &Tagging,
    session: &Session,
    event: Option<&Event>,
    release_commit: Option<String>,
) -> anyhow::Result<String> {
    let sha = tagging
        .sha
        .clone()
        .or(release_commit)
        .or_else(|| match event {
            Some(Event::PullRequest(pr)) => Some(pr.head_sha.clone()),
            _ => None,
        })
        .or_else(|| session.ctx.sha.clone())
        .context("no commit to tag: set `sha` (or GITHUB_SHA)")?;
    let lower = sha.to_ascii_lowercase();
    if !crate::names::is_commit_sha(&lower) {
        return Err(crate::tags::TagError::Sha(sha).into());
    }
    Ok(lower)
}

pub(super) fn default_branch(event: Option<&Event>) -> Option<&str> {
    match event {
        Some(Event::Push(push)) => push.default_branch.as_deref(),
        Some(Event::PullRequest(pr)) => pr.default_branch.as_deref(),
        _ => None,
    }
}

pub(super) fn labels(
    session: &Session,
    sha: &str,
    version: Option<&semver::Version>,
    title: &str,
    extra: HashMap<String, String>,
) -> HashMap<String, String> {
    let ctx = &session.ctx;
    let now = crate::time::now();
    let mut labels = metadata::oci_labels(&Provenance {
        source: ctx
            .repository
            .as_ref()
            .map(|r| format!("{}/{r}", ctx.server_url.trim_end_matches('/'))),
        revision: sha,
        created: crate::time::rfc3339(now),
        version: version.map(ToString::to_string),
        title,
    });
    labels.extend(extra);
    labels
}

/// The login handed to the engine with the build request (never written to
/// a file), so `FROM` lines can pull private images of the same registry.
pub(super) fn engine_credentials(
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
