//! `cleanup` through GitHub's Packages API (GHCR): the versions listed by
//! the API, their manifests read through the registry, the tags planned by
//! retention, every version judged, re-checked, then deleted by id.

use std::collections::BTreeSet;

use anyhow::Context as _;

use crate::cli::CleanupArgs;
use crate::inventory::Inventory;
use crate::packages::plan::{self as versions, Fate, Judged};
use crate::packages::{self, Listing, Owner, Package, PackagesApi, Version, tagged};
use crate::registry::Registry;
use crate::report::cleanup::Cleaned;
use crate::retention::{self, Rules};

/// One repository (`owner/package`): list, plan, re-check, delete.
pub async fn clean(
    api: &PackagesApi,
    registry: &Registry,
    repository: &str,
    rules: &Rules,
    args: &CleanupArgs,
    concurrency: usize,
) -> anyhow::Result<Cleaned> {
    let Some(Package {
        listing: first,
        mut inventory,
    }) = packages::read(api, registry, repository, concurrency).await?
    else {
        return Ok(empty(repository));
    };
    let (owner, name) = packages::owner_and_name(repository)?;
    let known: BTreeSet<String> = first.versions.iter().map(|v| v.digest.clone()).collect();
    let planned = retention::plan(&inventory.tags, rules);

    // Read again just before deleting: a tag pushed or moved onto a doomed
    // version saves it, and a version pushed meanwhile stays with all it
    // reaches.
    let doomed: BTreeSet<&str> = planned.deleted_tags().collect();
    let now = Listing {
        owner: first.owner,
        versions: api
            .versions_of(first.owner, owner, name)
            .await?
            .unwrap_or_default(),
    };
    let listed_now: Vec<(String, String)> = tagged(&now.versions)
        .into_iter()
        .filter(|(tag, _)| !doomed.contains(tag.as_str()))
        .collect();
    let plan = retention::recheck(planned, &listed_now);
    let new: Vec<String> = now
        .versions
        .iter()
        .filter(|v| !known.contains(&v.digest))
        .map(|v| v.digest.clone())
        .collect();
    if !new.is_empty() {
        let pushed =
            Inventory::read_digests(registry, repository, concurrency, Vec::new(), &new).await?;
        inventory.manifests.extend(pushed.manifests);
    }
    let judged = versions::judge(
        &now.versions,
        &plan,
        &inventory.manifests,
        &known,
        args.untagged,
    );
    let plan = versions::reconcile(plan, &judged);
    if !args.dry_run {
        delete(api, now.owner, owner, name, repository, &judged).await?;
    }
    let digests: BTreeSet<&str> = plan.delete.iter().map(|d| d.digest.as_str()).collect();
    Ok(Cleaned {
        freed: inventory.freed_bytes(&digests),
        pushed: inventory
            .tags
            .iter()
            .map(|t| (t.tag.clone(), t.pushed))
            .collect(),
        repository: repository.to_owned(),
        plan,
        versions: judged,
        broken: None,
    })
}

/// Deletes the going versions in order, one at a time: GitHub asks for
/// mutating requests to be made serially, and an index then always goes
/// before what it lists. A failure says how far it got.
async fn delete(
    api: &PackagesApi,
    kind: Owner,
    owner: &str,
    name: &str,
    repository: &str,
    judged: &[Judged],
) -> anyhow::Result<()> {
    let going: Vec<&Version> = judged
        .iter()
        .filter(|j| matches!(j.fate, Fate::Goes(_)))
        .map(|j| &j.version)
        .collect();
    for (done, version) in going.iter().enumerate() {
        let outcome = api.delete(kind, owner, name, version).await.with_context(|| {
            format!(
                "deleting from {repository} stopped with {done} of {} versions done; run again to finish (nothing kept is deleted)",
                going.len()
            )
        })?;
        tracing::info!(
            "{repository}@{} (version {}): {outcome:?}",
            version.digest,
            version.id
        );
    }
    Ok(())
}

fn empty(repository: &str) -> Cleaned {
    Cleaned {
        repository: repository.to_owned(),
        plan: retention::Plan::default(),
        freed: 0,
        pushed: Default::default(),
        versions: Vec::new(),
        broken: None,
    }
}
