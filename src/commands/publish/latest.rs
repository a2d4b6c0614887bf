//! The tags of a release, with `latest` and the version tags never moving
//! backwards.

use super::*;

pub(super) const REVISION_LABEL: &str = "org.opencontainers.image.revision";
/// The tags this run gives the image, `latest` held back when it would move
/// backwards.
pub(super) async fn tag_set(
    args: &PublishArgs,
    session: &Session,
    sha: &str,
    release: &ReleaseFacts,
    event: Option<&Event>,
    latest: Option<&Pushed>,
    published_versions: &[semver::Version],
) -> anyhow::Result<TagSet> {
    let extra_tags: Vec<String> = args
        .tagging
        .tags
        .iter()
        .flat_map(|t| crate::actions::inputs::split_list(t))
        .collect();
    let mut set = tags::tags(&Facts {
        sha,
        git_ref: session.ctx.git_ref.as_deref(),
        default_branch: default_branch(event),
        pull_request: matches!(event, Some(Event::PullRequest(_))),
        version: release.version.as_ref(),
        prerelease: release.prerelease,
        latest: match args.tagging.latest {
            LatestArg::Auto => Latest::Auto,
            LatestArg::True => Latest::Always,
            LatestArg::False => Latest::Never,
        },
        extra: &extra_tags,
        published: published_versions,
    })?;
    if set.latest && args.push {
        let token = args
            .tagging
            .github_token
            .as_deref()
            .or(session.env_token.as_deref());
        if let Some(revision) = latest.and_then(|image| revision_label(&image.config)) {
            guard_latest(&revision, sha, session, token, &mut set).await?;
        }
    }
    Ok(set)
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

/// `latest` never moves backwards: when the image it names now was built
/// from `revision`, a commit that descends from this one, it stays.
pub(super) async fn guard_latest(
    revision: &str,
    sha: &str,
    session: &Session,
    token: Option<&str>,
    set: &mut TagSet,
) -> anyhow::Result<()> {
    if revision.eq_ignore_ascii_case(sha) {
        return Ok(());
    }
    let short = &revision[..revision.len().min(7)];
    match ancestry(session, token, sha, revision).await? {
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
