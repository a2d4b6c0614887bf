//! The tags of a release, and what `latest`'s guard needs to know: the
//! commit the image `latest` names was built from, and whether it
//! descends from this one. The guard itself is the plan's (`plan.rs`).

use std::collections::HashMap;

use crate::actions::event::Event;
use crate::cli::{LatestArg, Tagging};
use crate::commands::Session;
use crate::plan::git::GitSource;
use crate::plan::github::GitHubSource;
use crate::registry::Registry;
use crate::tags::{self, Facts, Latest, TagSet};

use super::inputs::{ReleaseFacts, default_branch};

const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// The tags the rules give this commit and release, before `latest`'s
/// guard.
pub(super) fn raw_tags(
    tagging: &Tagging,
    session: &Session,
    sha: &str,
    release: &ReleaseFacts,
    event: Option<&Event>,
    published_versions: &[semver::Version],
) -> anyhow::Result<TagSet> {
    let extra_tags: Vec<String> = tagging
        .tags
        .iter()
        .flat_map(|t| crate::actions::inputs::split_list(t))
        .collect();
    Ok(tags::tags(&Facts {
        sha,
        git_ref: session.ctx.git_ref.as_deref(),
        default_branch: default_branch(event),
        pull_request: matches!(event, Some(Event::PullRequest(_))),
        version: release.version.as_ref(),
        prerelease: release.prerelease,
        latest: match tagging.latest {
            LatestArg::Auto => Latest::Auto,
            LatestArg::True => Latest::Always,
            LatestArg::False => Latest::Never,
        },
        extra: &extra_tags,
        published: published_versions,
    })?)
}

/// The token for the GitHub API: `github-token`, else the environment's.
pub(super) fn github_token<'a>(tagging: &'a Tagging, session: &'a Session) -> Option<&'a str> {
    tagging
        .github_token
        .as_deref()
        .or(session.env_token.as_deref())
}

pub(super) async fn released_versions(
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

/// Whether `sha` is an ancestor of `revision`: from the local clone when
/// it has both commits, else from the compare API (a depth-1 checkout has
/// neither), with the source that answered.
pub(super) async fn ancestry(
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

/// The commit an image config says it was built from.
pub(super) fn revision_label(config: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Config {
        config: Option<ConfigBody>,
    }
    #[derive(serde::Deserialize)]
    struct ConfigBody {
        #[serde(rename = "Labels")]
        labels: Option<HashMap<String, String>>,
    }
    serde_json::from_slice::<Config>(config)
        .ok()
        .and_then(|c| c.config?.labels?.remove(REVISION_LABEL))
}
