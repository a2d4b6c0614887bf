//! `plan`: event → changed files → images → matrix.

use anyhow::{Context as _, bail};

use crate::actions::outputs::Outputs;
use crate::cli::{PlanArgs, SourceKind};
use crate::commands::Session;
use crate::plan::discover::discover;
use crate::plan::filter::{Globs, PathFilter};
use crate::plan::git::GitSource;
use crate::plan::github::GitHubSource;
use crate::plan::image::{Destination, Image};
use crate::plan::matrix;
use crate::plan::outcome::{Compared, Outcome};
use crate::plan::select::{Rules, Trigger, select};
use crate::plan::source::{ChangeSource, SourceError};
use crate::plan::strategy::{self, Intent, Overrides, Range};
use crate::release::{FORMS, ReleaseTag};
use crate::report;

pub async fn run(args: &PlanArgs, session: &Session) -> anyhow::Result<()> {
    let ctx = &session.ctx;
    let rules = Rules {
        filter: PathFilter::new(
            Globs::new("include", &PlanArgs::globs(&args.include))?,
            Globs::new("exclude", &PlanArgs::globs(&args.exclude))?,
        ),
        rebuild_all_on: Globs::new("rebuild-all-on", &PlanArgs::globs(&args.rebuild_all_on))?,
        // The commit is known once the event is read; set before selecting.
        sha: None,
    };
    let event = session.event()?;
    let destination = Destination {
        registry: args.registry.clone(),
        namespace: session.namespace(args.namespace.as_deref())?,
    };
    let build_args: std::collections::BTreeMap<String, String> =
        crate::metadata::pairs("build-args", &args.build_args)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .collect();
    let images = discover(&session.boundary()?, &args.dirs.context_root, args.dirs.max_depth.into())?
        .into_iter()
        .map(|found| {
            Image::new(&args.dirs.context_root, &found.name, &found.dockerfile, &destination, &build_args)
                .with_context(|| format!("image directory `{}/{}` can't be pushed under that name; rename the directory to lower-case letters, digits, `.`, `_` or `-`", args.dirs.context_root, found.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    let overrides = Overrides {
        release: release_tag(args, &names)?,
        prerelease: args.release.prerelease.forced(),
        base: args.base.clone(),
        head: args.head.clone(),
    };
    let intent = if args.all {
        Intent::All("`all` is set".into())
    } else {
        strategy::intent(event.as_ref(), &overrides, &names)
    };
    let mut notes = Vec::new();
    let mut sha = args.head.clone().or_else(|| ctx.sha.clone());
    let mut release = None;
    let (trigger, compared) = match intent {
        Intent::All(reason) => (
            Trigger::All {
                reason: reason.clone(),
            },
            Compared::All(reason),
        ),
        Intent::Nothing(reason) => (
            Trigger::Nothing {
                reason: reason.clone(),
            },
            Compared::Nothing(reason),
        ),
        Intent::Release { tag, prerelease } => {
            if args.head.is_none() && overrides.release.is_some() {
                match session.tag_commit(&tag.tag).await? {
                    Some(commit) => sha = Some(commit),
                    None => notes.push(format!(
                        "tag `{}` is not in the clone, so `sha` is `GITHUB_SHA`; check the tag out (`actions/checkout` with `ref: {}`)",
                        tag.tag, tag.tag
                    )),
                }
            }
            let reason = format!("release tag `{}`", tag.tag);
            let trigger = match tag.image.clone() {
                Some(image) => Trigger::Release { image, reason },
                None => Trigger::All { reason },
            };
            let compared = Compared::Release {
                tag: tag.tag.clone(),
                version: tag.version.to_string(),
                prerelease,
            };
            release = Some((tag.version, prerelease));
            (trigger, compared)
        }
        Intent::Compare(ranges) => {
            if let Some(range) = ranges.first() {
                sha = Some(range.head().to_owned());
            }
            changes(&ranges, args, session, &mut notes).await?
        }
    };
    for note in &notes {
        session.workflow.warning(note);
    }
    let rules = Rules {
        sha: sha.clone(),
        ..rules
    };
    let selected = select(&images, &trigger, &rules)?;
    // `prerelease: true` holds `latest` back on any run, release or not.
    let matrix_release = matrix::Release {
        version: release.as_ref().map(|(version, _)| version),
        prerelease: release
            .as_ref()
            .map_or(overrides.prerelease == Some(true), |(_, p)| *p),
    };
    let outcome = Outcome {
        event: ctx.event_name.clone(),
        compared,
        entries: matrix::entries(&images, &selected, &matrix_release),
        images_found: images.len(),
        notes,
        sha,
    };
    for entry in &outcome.entries {
        tracing::info!(image = %entry.image, tier = entry.tier, "selected: {}", entry.reason);
    }
    let mut outputs = Outputs::new();
    outputs.set_json("matrix", &outcome.entries)?;
    for (tier, entries) in matrix::tiers(&outcome.entries).iter().enumerate() {
        outputs.set_json(&format!("matrix-tier-{tier}"), entries)?;
    }
    let basenames: Vec<&str> = outcome
        .entries
        .iter()
        .map(|e| e.basename.as_str())
        .collect();
    outputs.set_json("images", &basenames)?;
    outputs.set("changed", (!outcome.entries.is_empty()).to_string());
    outputs.set("count", outcome.entries.len().to_string());
    if let Some(sha) = &outcome.sha {
        outputs.set("sha", sha.clone());
    }
    if let Some(version) = matrix_release.version {
        outputs.set("version", version.to_string());
    }
    outputs.set("prerelease", matrix_release.prerelease.to_string());
    session.finish(&outputs, &report::plan::summary(&outcome))
}

/// `release-tag`, parsed against the image directories found.
fn release_tag(args: &PlanArgs, names: &[&str]) -> anyhow::Result<Option<ReleaseTag>> {
    let Some(tag) = &args.release.release_tag else {
        return Ok(None);
    };
    match ReleaseTag::parse(tag, names) {
        Some(release) => Ok(Some(release)),
        None => bail!(
            "`release-tag`: {tag:?} is not a release of these images: releases are tagged {FORMS}, where <image> is a directory under `{}` ({})",
            args.dirs.context_root,
            names.join(", ")
        ),
    }
}

/// Tries each range with each source, most precise first; when none can
/// answer, every image is selected, because a plan must never build fewer
/// images than changed.
async fn changes(
    ranges: &[Range],
    args: &PlanArgs,
    session: &Session,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Trigger, Compared)> {
    let ctx = &session.ctx;
    let git = match args.source {
        SourceKind::Github => None,
        _ => GitSource::open(&ctx.workspace).await?,
    };
    if args.source == SourceKind::Git && git.is_none() {
        bail!(
            "`source: git` but the workspace {} is not a git work tree; check the repository out first (actions/checkout) or use `source: auto`",
            ctx.workspace.display()
        );
    }
    let api_repository = match (args.source, &ctx.repository) {
        (SourceKind::Git, _) => None,
        (_, Some(repository)) => Some(repository.as_str()),
        (SourceKind::Github, None) => {
            bail!(
                "`source: github` needs the repository: GITHUB_REPOSITORY is not set (`owner/name`)"
            )
        }
        (SourceKind::Auto, None) => None,
    };
    // The API client (TLS roots and all) is set up only once local git
    // couldn't answer: most plans never need it.
    let mut api = None;
    for range in ranges {
        if let Some(found) = attempt(git.as_ref(), range, notes).await? {
            return Ok(found);
        }
        let Some(repository) = api_repository else {
            continue;
        };
        if api.is_none() {
            let token = args
                .github_token
                .as_deref()
                .or(session.env_token.as_deref());
            api = Some(GitHubSource::new(&ctx.api_url, token, repository)?);
        }
        if let Some(found) = attempt(api.as_ref(), range, notes).await? {
            return Ok(found);
        }
    }
    let reason = "the changes couldn't be listed completely, so every image is rebuilt".to_owned();
    Ok((
        Trigger::All {
            reason: reason.clone(),
        },
        Compared::All(reason),
    ))
}

async fn attempt<S: ChangeSource>(
    source: Option<&S>,
    range: &Range,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<(Trigger, Compared)>> {
    let Some(source) = source else {
        return Ok(None);
    };
    match source.changed_files(range).await {
        Ok(files) => Ok(Some((
            Trigger::Changes {
                files: files.clone(),
            },
            Compared::Range {
                range: range.to_string(),
                source: source.name(),
                files: files.len(),
            },
        ))),
        Err(SourceError::Unavailable(why) | SourceError::Incomplete(why)) => {
            notes.push(format!("{} can't list {range}: {why}", source.name()));
            Ok(None)
        }
        Err(SourceError::Failed(err)) => Err(err),
    }
}
