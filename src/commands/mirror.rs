//! `mirror`: copy tags from one repository to another — across registries,
//! or between repositories of one registry (then blobs are mounted).

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::actions::inputs::split_list;
use crate::actions::outputs::Outputs;
use crate::cli::{CopyArgs, FromArgs, MirrorArgs, PublishArgs, ToArgs};
use crate::commands::Session;
use crate::mirror::select::is_pattern;
use crate::mirror::summary::{Mirrored, summary};
use crate::mirror::{self, Options, Report, Store};
use crate::names::{TAG_RULE, is_tag};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::registry::auth::Login;

/// `publish` has no `concurrency` input of its own: the `mirror` default.
const RELEASE_MIRROR_CONCURRENCY: usize = 8;

pub async fn run(args: &MirrorArgs, session: &Session) -> anyhow::Result<()> {
    let timeout = args.copy.timeout.request_timeout;
    let (source, from) = open_from(&args.from, timeout)?;
    let (target, to) = open_to(&args.to, timeout)?;
    let tags = wanted(&args.copy, from.tag())?;
    let (from, to) = (
        Store::Registry {
            registry: &source,
            repository: from.repository(),
        },
        Store::Registry {
            registry: &target,
            repository: to.repository(),
        },
    );
    if from.describe() == to.describe() {
        bail!(
            "`from` and `to` both name {}; mirror to another repository or registry",
            from.describe()
        );
    }
    let report = copy(&from, &to, &tags, &args.copy).await?;
    session.finish(
        &outputs(&report)?,
        &summary("mirror", &from.describe(), &to.describe(), &report),
    )
}

/// The `from` registry, and the repository (with the tag it may name).
pub(crate) fn open_from(
    args: &FromArgs,
    timeout: Duration,
) -> anyhow::Result<(Registry, Reference)> {
    let reference = repository("from", &args.from)?;
    let login = args.login.credentials()?;
    let registry = Registry::new(reference.registry(), login)?
        .with_login(&Login::SOURCE)
        .with_timeout(timeout)?;
    Ok((registry, reference))
}

/// The `to` registry and repository; tags come from the source.
pub(crate) fn open_to(args: &ToArgs, timeout: Duration) -> anyhow::Result<(Registry, Reference)> {
    let reference = repository("to", &args.to)?;
    if reference.tag().is_some() {
        bail!(
            "`to`: {:?} names a tag; give the repository only — the tags are the source's",
            args.to
        );
    }
    let registry =
        Registry::new(reference.registry(), args.login.credentials()?)?.with_timeout(timeout)?;
    Ok((registry, reference))
}

fn repository(input: &str, value: &str) -> anyhow::Result<Reference> {
    let reference = Reference::parse_exact(value.trim()).with_context(|| {
        format!("`{input}`: {value:?} is not a repository like registry.example/namespace/name")
    })?;
    if reference.digest().is_some() {
        bail!("`{input}`: {value:?} names a digest; name the repository and select with `tags`");
    }
    Ok(reference)
}

/// `tags` as given, else the tag the `from` reference names, else none (all).
pub(crate) fn wanted(args: &CopyArgs, named: Option<&str>) -> anyhow::Result<Vec<String>> {
    let given: Vec<String> = args.tags.iter().flat_map(|t| split_list(t)).collect();
    if let Some(bad) = given.iter().find(|t| !is_pattern(t) && !is_tag(t)) {
        bail!("`tags`: {bad:?} is neither a tag nor a glob pattern; {TAG_RULE}");
    }
    match (given.is_empty(), named) {
        (false, Some(tag)) => {
            bail!("`from` names the tag `{tag}` and `tags` names more; use one of them")
        }
        (true, Some(tag)) => Ok(vec![tag.to_owned()]),
        _ => Ok(given),
    }
}

/// Selects the tags and copies them.
pub(crate) async fn copy(
    from: &Store<'_>,
    to: &Store<'_>,
    wanted: &[String],
    args: &CopyArgs,
) -> anyhow::Result<Report> {
    let tags = mirror::tags_to_copy(from, wanted).await?;
    let options = Options {
        concurrency: usize::from(args.concurrency),
        dry_run: args.dry_run,
    };
    let report = mirror::copy(from, to, &tags, &options)
        .await
        .with_context(|| {
            format!(
                "copying {} to {} stopped; what was written is whole, and a re-run copies only what is missing",
                from.describe(),
                to.describe()
            )
        })?;
    Ok(report)
}

pub(crate) fn outputs(report: &Report) -> anyhow::Result<Outputs> {
    let mut outputs = Outputs::new();
    let copied: serde_json::Map<String, serde_json::Value> = report
        .tags
        .iter()
        .map(|t| (t.tag.clone(), t.digest.clone().into()))
        .collect();
    outputs.set_json("copied", &copied)?;
    outputs.set("blobs-sent", report.blobs_sent.to_string());
    outputs.set("bytes-sent", report.bytes_sent.to_string());
    outputs.set("blobs-mounted", report.blobs_mounted.to_string());
    outputs.set("blobs-present", report.blobs_present.to_string());
    Ok(outputs)
}

/// `publish`'s `mirror-to`: the release's tags copied from the registry it
/// was pushed to onto each target in turn. A target that fails is
/// recorded, not raised: the caller decides what it means for the job.
pub(crate) async fn release_mirrors(
    args: &PublishArgs,
    primary: &Registry,
    repository: &str,
    tags: &[String],
) -> anyhow::Result<Vec<Mirrored>> {
    let login = args.mirror_login.credentials()?;
    let mut targets = Vec::new();
    for given in args.mirror_to.iter().flat_map(|t| split_list(t)) {
        let name = if given.contains('/') {
            given
        } else {
            format!("{given}/{repository}")
        };
        let reference = self::repository("mirror-to", &name)?;
        targets.push((
            name,
            Registry::new(reference.registry(), login.clone())?
                .with_login(&Login::MIRROR)
                .with_timeout(primary.timeout())?,
            reference,
        ));
    }
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let from = Store::Registry {
        registry: primary,
        repository,
    };
    let options = Options {
        concurrency: RELEASE_MIRROR_CONCURRENCY,
        dry_run: false,
    };
    // With the signatures and attestations of the release's digest. The
    // release is pushed by now: a failure here is every mirror's, recorded.
    let tags = match mirror::tags_to_copy(&from, tags).await {
        Ok(tags) => tags,
        Err(e) => {
            let failed = |(target, _, _): &(String, Registry, Reference)| Mirrored {
                target: target.clone(),
                result: Err(e.to_string()),
            };
            return Ok(targets.iter().map(failed).collect());
        }
    };
    let mut mirrored = Vec::new();
    for (target, registry, reference) in &targets {
        let to = Store::Registry {
            registry,
            repository: reference.repository(),
        };
        let result = mirror::copy(&from, &to, &tags, &options)
            .await
            .map_err(|e| e.to_string());
        mirrored.push(Mirrored {
            target: target.clone(),
            result,
        });
    }
    Ok(mirrored)
}

/// The `mirrors` output: target → `ok` or `failed`.
pub(crate) fn mirror_results(mirrored: &[Mirrored]) -> serde_json::Map<String, serde_json::Value> {
    mirrored
        .iter()
        .map(|m| {
            let result = if m.result.is_ok() { "ok" } else { "failed" };
            (m.target.clone(), result.into())
        })
        .collect()
}
