//! `cleanup` through GitHub's Packages API (GHCR): the versions listed by
//! the API, their manifests read through the registry, the tags planned by
//! retention, every version judged, re-checked, then deleted by id.

use std::collections::BTreeSet;

use anyhow::{Context as _, bail};

use crate::cli::{CleanupArgs, PackagesMode};
use crate::commands::Session;
use crate::inventory::Inventory;
use crate::packages::plan::{self as versions, Fate, Judged};
use crate::packages::{Listing, Owner, PackagesApi, Version, not_found};
use crate::registry::Registry;
use crate::report::cleanup::Cleaned;
use crate::retention::{self, Rules};

const GHCR: &str = "ghcr.io";

/// The Packages API client when `packages-api` (and `registry`) call for
/// it; input errors before any request.
pub fn api(args: &CleanupArgs, session: &Session) -> anyhow::Result<Option<PackagesApi>> {
    let registry = args.repositories.registry.as_str();
    if !uses_api(args.packages_api, registry, args.dry_run)? {
        return Ok(None);
    }
    let token = args.repositories.login.password.as_deref().with_context(|| {
        format!("`password`: GitHub's Packages API (`packages-api`, on {registry}) needs a token; set `username: ${{{{ github.actor }}}}` and `password: ${{{{ secrets.GITHUB_TOKEN }}}}`, with `permissions: packages: write`")
    })?;
    let url = args
        .github_api_url
        .as_deref()
        .unwrap_or(&session.ctx.api_url);
    Ok(Some(PackagesApi::new(
        url,
        token,
        args.repositories.timeout.request_timeout,
    )?))
}

/// Whether `mode` on `registry` deletes through the Packages API.
fn uses_api(mode: PackagesMode, registry: &str, dry_run: bool) -> anyhow::Result<bool> {
    match mode {
        PackagesMode::Auto => Ok(registry == GHCR),
        PackagesMode::Github if crate::reference::is_docker_hub(registry) => bail!(
            "`packages-api`: `github` is for GitHub's container registries, and `registry` is Docker Hub, cleaned through its own API (`hub-api`); leave `packages-api` at `auto`"
        ),
        PackagesMode::Github => Ok(true),
        PackagesMode::Oci if registry == GHCR && !dry_run => bail!(
            "`packages-api`: `oci` deletes through the registry API, and ghcr.io has no manifest DELETE; leave `packages-api` at `auto` to delete through GitHub's Packages API"
        ),
        PackagesMode::Oci => Ok(false),
    }
}

/// One repository (`owner/package`): list, plan, re-check, delete.
pub async fn clean(
    api: &PackagesApi,
    registry: &Registry,
    repository: &str,
    rules: &Rules,
    args: &CleanupArgs,
    concurrency: usize,
) -> anyhow::Result<Cleaned> {
    let (owner, name) = repository.split_once('/').with_context(|| {
        format!("{repository:?} is not `owner/package`; GitHub packages have both")
    })?;
    let Some(first) = api.versions(owner, name).await? else {
        // Never pushed: nothing to clean. Pushed, yet unseen: the token.
        if registry.tags(repository).await?.is_empty() {
            return Ok(empty(repository));
        }
        bail!(not_found(owner, name));
    };
    let known: BTreeSet<String> = first.versions.iter().map(|v| v.digest.clone()).collect();
    let untagged: Vec<String> = first
        .versions
        .iter()
        .filter(|v| v.tags.is_empty())
        .map(|v| v.digest.clone())
        .collect();
    let mut inventory = Inventory::read_digests(
        registry,
        repository,
        concurrency,
        tagged(&first.versions),
        &untagged,
    )
    .await?;
    date_from_versions(&mut inventory, &first.versions);
    let planned = retention::plan(&inventory.tags, rules);

    // Read again just before deleting: a tag pushed or moved onto a doomed
    // version saves it, and a version pushed meanwhile stays with all it
    // reaches.
    let doomed: BTreeSet<&str> = planned.deleted_tags().collect();
    let now = api.versions(owner, name).await?.unwrap_or(Listing {
        owner: first.owner,
        versions: Vec::new(),
    });
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

/// Each tag with the digest its version is.
fn tagged(versions: &[Version]) -> Vec<(String, String)> {
    versions
        .iter()
        .flat_map(|v| v.tags.iter().map(|t| (t.clone(), v.digest.clone())))
        .collect()
}

/// A tag whose image dates nothing (no config `created`, or the epoch of a
/// reproducible build) gets its version's `created_at`: when GitHub first
/// stored that manifest.
fn date_from_versions(inventory: &mut Inventory, listed: &[Version]) {
    for tag in inventory.tags.iter_mut().filter(|t| t.pushed.is_none()) {
        tag.pushed = listed
            .iter()
            .find(|v| v.digest == tag.digest)
            .and_then(|v| v.created);
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn which_registries_go_through_the_packages_api() {
        use PackagesMode::{Auto, Github, Oci};
        assert!(uses_api(Auto, "ghcr.io", false).unwrap());
        assert!(!uses_api(Auto, "registry.example:5000", false).unwrap());
        assert!(uses_api(Github, "containers.github.example", false).unwrap());
        assert!(!uses_api(Oci, "ghcr.io", true).unwrap());
        assert!(!uses_api(Oci, "registry.example", false).unwrap());
        let hub = uses_api(Github, "docker.io", false)
            .unwrap_err()
            .to_string();
        assert!(
            hub.starts_with("`packages-api`: ") && hub.contains("`hub-api`"),
            "{hub}"
        );
        let oci = uses_api(Oci, "ghcr.io", false).unwrap_err().to_string();
        assert!(
            oci.contains("no manifest DELETE") && oci.contains("`auto`"),
            "{oci}"
        );
    }
}
