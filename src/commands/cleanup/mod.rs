//! `cleanup`: list → plan retention → re-check → delete, per repository,
//! then read back what was kept (`validate`).

use std::collections::BTreeSet;

use anyhow::{Context as _, bail};
use glob::Pattern;

use crate::actions::inputs::split_list;
use crate::actions::outputs::Outputs;
use crate::actions::workflow::{Annotation, Level};
use crate::cli::{CleanupArgs, Orphans};
use crate::commands::{PackagesUse, Session, open_store, packages_api, repository_names};
use crate::report::cleanup::{Cleaned, summary};
use crate::repositories::Store;
use crate::retention::{self, Rules};
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
    let inventory = super::inventory(store, None, repository, concurrency).await?;
    let rules = Rules {
        gone: inventory.gone.clone(),
        ..rules.clone()
    };
    let first = retention::plan(&inventory.tags, &rules);
    // Read again just before deleting: a tag pushed or moved onto a
    // doomed manifest meanwhile saves it.
    let doomed: BTreeSet<&str> = first.deleted_tags().collect();
    let listed_now = store.relist(repository, &doomed, concurrency).await?;
    let plan = retention::recheck(first, &listed_now);
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
