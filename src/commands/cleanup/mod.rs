//! `cleanup`: list → plan retention → re-check → delete, per repository,
//! then read back what was kept (`validate`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};
use glob::Pattern;

use crate::actions::inputs::split_list;
use crate::actions::outputs::Outputs;
use crate::actions::workflow::{Annotation, Level};
use crate::cli::{CleanupArgs, Orphans};
use crate::commands::{
    OrphanCheck, PackagesUse, Session, open_store, packages_api, repository_names,
};
use crate::inventory::{Inventory, api_referrers};
use crate::registry::Registry;
use crate::report::cleanup::{Cleaned, summary};
use crate::repositories::Store;
use crate::retention::{self, Deletion, Plan, Rules};
use crate::units::parse_duration;
use crate::validate;

mod packages;

pub async fn run(args: &CleanupArgs, session: &Session) -> anyhow::Result<()> {
    let now = crate::time::now();
    let mut rules = rules(args, now)?;
    let repositories = repository_names(&args.repositories, session)?;
    let concurrency = usize::from(args.repositories.concurrency);
    let api = packages_api(
        &args.repositories,
        PackagesUse::Cleanup {
            deleting: !args.dry_run,
        },
        session,
    )?;
    let store = open_store(&args.repositories, !args.dry_run && api.is_none()).await?;
    rules.tags_only = matches!(store, Store::Hub(_));

    let mut cleaned = Vec::new();
    for repository in repositories {
        let mut done = match (&api, &store) {
            (Some(api), Store::Oci(registry)) => {
                packages::clean(api, registry, &repository, &rules, args, concurrency).await?
            }
            _ => clean(&store, &repository, &rules, args.dry_run, concurrency).await?,
        };
        // Hub deletes tags, never manifests: nothing kept can lose a piece.
        if args.validate && !args.dry_run {
            if let Store::Oci(registry) = &store {
                let kept: Vec<String> = done.plan.kept.iter().map(|(t, _)| t.clone()).collect();
                done.broken =
                    Some(validate::kept_trees(registry, &repository, &kept, concurrency).await?);
            }
        }
        cleaned.push(done);
    }

    let mut outputs = Outputs::new();
    let deletions: Vec<serde_json::Value> = cleaned
        .iter()
        .flat_map(|c| {
            c.plan.delete.iter().flat_map(move |d| {
                d.tags.iter().map(move |tag| {
                    serde_json::json!({"repository": c.repository, "tag": tag, "digest": d.digest})
                })
            })
        })
        .collect();
    let empty: Vec<serde_json::Value> = Vec::new();
    outputs.set_json("deleted", if args.dry_run { &empty } else { &deletions })?;
    outputs.set_json("planned", &deletions)?;
    outputs.set(
        "kept",
        cleaned
            .iter()
            .map(|c| c.plan.kept.len())
            .sum::<usize>()
            .to_string(),
    );
    outputs.set(
        "freed-bytes",
        cleaned.iter().map(|c| c.freed).sum::<u64>().to_string(),
    );
    session.finish(&outputs, &summary(&cleaned, args.dry_run, now))?;
    report_broken(session, &cleaned)
}

/// One repository through the registry's own API or Docker Hub's:
/// list → plan → re-check → delete.
async fn clean(
    store: &Store,
    repository: &str,
    rules: &Rules,
    dry_run: bool,
    concurrency: usize,
) -> anyhow::Result<Cleaned> {
    // Orphans found too (Docker Hub deletes tags, never manifests: there
    // no subject can be gone).
    let inventory =
        super::inventory(store, None, repository, concurrency, OrphanCheck::Find).await?;
    let rules = Rules {
        gone: inventory.gone.clone(),
        ..rules.clone()
    };
    let first = retention::plan(&inventory.tags, &rules);
    // Read again just before deleting: a tag pushed or moved onto a
    // doomed manifest meanwhile saves it.
    let doomed: BTreeSet<&str> = first.deleted_tags().collect();
    let listed_now = store.relist(repository, &doomed, concurrency).await?;
    let mut plan = retention::recheck(first, &listed_now);
    if let Store::Oci(registry) = store {
        add_api_referrers(registry, repository, &mut plan, &inventory, concurrency).await?;
    }
    let digests: BTreeSet<&str> = plan.delete.iter().map(|d| d.digest.as_str()).collect();
    let freed = inventory.freed_bytes(&digests);
    if !dry_run {
        store
            .apply(repository, &plan, &inventory, concurrency)
            .await?;
    }
    Ok(Cleaned {
        pushed: inventory
            .tags
            .iter()
            .map(|t| (t.tag.clone(), t.pushed))
            .collect(),
        repository: repository.to_owned(),
        plan,
        freed,
        versions: Vec::new(),
        broken: None,
    })
}

/// With each manifest the plan deletes go the referrers the registry's
/// referrers API lists for it (signatures and attestations as cosign 3
/// stores them), after it.
async fn add_api_referrers(
    registry: &Registry,
    repository: &str,
    plan: &mut Plan,
    inventory: &Inventory,
    concurrency: usize,
) -> anyhow::Result<()> {
    let deleted: BTreeSet<String> = plan
        .delete
        .iter()
        .map(|d| d.digest.to_ascii_lowercase())
        .collect();
    let Some(found) = api_referrers(registry, repository, &deleted, concurrency).await? else {
        return Ok(());
    };
    for deletion in referrer_deletions(found, &deleted, inventory) {
        tracing::info!(
            "{repository}@{}: a referrer of {}, deleted with it",
            deletion.digest,
            deletion.of.join(", ")
        );
        plan.delete.push(deletion);
    }
    Ok(())
}

/// The referrers to delete, each once: one the plan deletes already, or
/// that a tag reaches (the tag decides), is left out.
fn referrer_deletions(
    found: BTreeMap<String, Vec<String>>,
    deleted: &BTreeSet<String>,
    inventory: &Inventory,
) -> Vec<Deletion> {
    let reached: BTreeSet<String> = inventory
        .manifests
        .keys()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    let mut added = BTreeSet::new();
    let mut deletions = Vec::new();
    for (subject, referrers) in found {
        for referrer in referrers {
            let key = referrer.to_ascii_lowercase();
            if deleted.contains(&key) || reached.contains(&key) || !added.insert(key) {
                continue;
            }
            deletions.push(Deletion {
                digest: referrer,
                tags: Vec::new(),
                of: vec![subject.clone()],
            });
        }
    }
    deletions
}

/// `validate`: one `::error` per missing piece, naming the tag; the run
/// fails after the summary says the rest.
fn report_broken(session: &Session, cleaned: &[Cleaned]) -> anyhow::Result<()> {
    let mut count = 0;
    for c in cleaned {
        for b in c.broken.iter().flatten() {
            count += 1;
            session.workflow.annotate(
                &Annotation::new(
                    Level::Error,
                    format!("{}:{} lacks {}", c.repository, b.tag, b.missing),
                )
                .with_title("registry-action cleanup: a kept image is incomplete"),
            );
        }
    }
    if count > 0 {
        bail!(
            "`validate`: {count} pieces of kept images are missing from the registry (listed above, by tag); restore them from a backup or push those tags again"
        );
    }
    Ok(())
}

fn rules(args: &CleanupArgs, now: i64) -> anyhow::Result<Rules> {
    Ok(Rules {
        keep: args.keep,
        prunable: patterns("tag-pattern", &args.tag_pattern)?,
        protect: patterns("protect", &args.protect)?,
        older_than: match &args.older_than {
            Some(age) => Some(now - seconds(age)?),
            None => None,
        },
        now,
        tags_only: false,
        gone: BTreeSet::new(),
        delete_orphans: args.orphans == Orphans::Delete,
    })
}

fn patterns(input: &str, values: &[String]) -> anyhow::Result<Vec<Pattern>> {
    values
        .iter()
        .flat_map(|v| split_list(v))
        .map(|glob| {
            Pattern::new(&glob).with_context(|| {
                format!("`{input}`: {glob:?} is not a glob; use `*`, `?` and `[…]`, e.g. `pr-*`")
            })
        })
        .collect()
}

/// An age such as `30d`, `2w`, `36h` or `P30D`, in seconds (a day is 24 h).
fn seconds(age: &str) -> anyhow::Result<i64> {
    let invalid =
        || format!("`older-than`: {age:?} is not an age; write e.g. `30d`, `2w` or `720h`");
    let age = parse_duration(age)
        .with_context(|| format!("{}; months and years vary in length, say days", invalid()))?;
    i64::try_from(age.as_secs()).with_context(invalid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn referrers_go_once_and_never_when_a_tag_reaches_them() {
        let d = |n: u32| format!("sha256:{n:064x}");
        let inventory = Inventory {
            manifests: BTreeMap::from([(d(9), Default::default())]),
            ..Inventory::default()
        };
        let deleted = BTreeSet::from([d(1), d(2), d(3)]);
        let found = BTreeMap::from([(d(1), vec![d(4), d(9), d(3)]), (d(2), vec![d(4), d(5)])]);
        let going: Vec<(String, Vec<String>)> = referrer_deletions(found, &deleted, &inventory)
            .into_iter()
            .map(|x| (x.digest, x.of))
            .collect();
        assert_eq!(going, [(d(4), vec![d(1)]), (d(5), vec![d(2)])]);
    }

    #[test]
    fn ages() {
        assert_eq!(seconds("30d").unwrap(), 30 * 86_400);
        assert_eq!(seconds("2w").unwrap(), 14 * 86_400);
        assert_eq!(seconds("36h").unwrap(), 36 * 3600);
        assert_eq!(seconds("P30D").unwrap(), 30 * 86_400);
        assert_eq!(seconds("1 day 12 hours").unwrap(), 36 * 3600);
        let err = seconds("a month").unwrap_err().to_string();
        assert!(err.contains("\"a month\"") && err.contains("30d"), "{err}");
        assert!(seconds("1mo").is_err());
        assert!(seconds("-3d").is_err());
    }
}
