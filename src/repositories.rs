//! The repositories `cleanup`, `usage` and `monitor` work on, and the
//! store holding them: Docker Hub through its own API (its registry API
//! can't delete tags), any other registry through the OCI distribution API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use crate::actions::inputs::split_list;
use crate::hub::{Deleted as HubDeleted, Hub, HubError, HubTag};
use crate::inventory::{Inventory, Stored};
use crate::names::check_repository;
use crate::reference::is_docker_hub;
use crate::registry::auth::Credentials;
use crate::registry::{Deleted, Registry};
use crate::retention::{Deletion, Plan};

/// `namespace/name` for every repository asked for, sorted, once each:
/// `images` exactly as given, else the names of the image directories
/// `directories` lists, lower-cased (as `plan` names their images). The
/// directories are listed only without `images`, and `namespace` is asked
/// only for a name without one.
pub fn names(
    images: &[String],
    directories: impl FnOnce() -> anyhow::Result<Vec<String>>,
    namespace: impl Fn() -> anyhow::Result<String>,
) -> anyhow::Result<Vec<String>> {
    let given: Vec<String> = images
        .iter()
        .flat_map(|v| split_list(v))
        .map(|name| name.trim_matches('/').to_owned())
        .collect();
    let from_images = !given.is_empty();
    let listed = if !from_images {
        directories()
            .context("no `images` given and the image directories couldn't be listed to name the repositories; set `images` (one `name` or `namespace/name` per line)")?
            .into_iter()
            .map(|name| name.to_ascii_lowercase())
            .collect()
    } else {
        given
    };
    let mut resolved = None;
    let mut names = BTreeSet::new();
    for name in listed {
        check_repository(&name).map_err(|e| {
            if from_images {
                anyhow::anyhow!("`images`: {e}; give `name` or `namespace/name`, without a tag")
            } else {
                anyhow::anyhow!(
                    "the image directory {name:?} under `context-root` names no repository: {e}; rename it, or set `images`"
                )
            }
        })?;
        if name.contains('/') && from_images {
            names.insert(name);
            continue;
        }
        let namespace = match &resolved {
            Some(ns) => ns,
            None => resolved.insert(namespace()?),
        };
        names.insert(format!("{namespace}/{name}"));
    }
    Ok(names.into_iter().collect())
}

pub enum Store {
    Oci(Registry),
    Hub(Hub),
}

impl Store {
    /// Connects to `registry` (through `hub_api` when it is Docker Hub)
    /// and, with credentials, logs in. `deleting` asks token issuers for
    /// the right to delete.
    pub async fn open(
        registry: &str,
        hub_api: &str,
        credentials: Option<Credentials>,
        timeout: Duration,
        deleting: bool,
    ) -> anyhow::Result<Self> {
        if is_docker_hub(registry) {
            let hub = Hub::new(hub_api)?.with_timeout(timeout);
            return Ok(Store::Hub(match credentials {
                Some(c) => hub.login(&c.username, &c.password).await?,
                None if deleting => bail!(
                    "deleting Docker Hub tags needs `username` and `password` (a personal access token with delete rights)"
                ),
                None => hub,
            }));
        }
        let registry = Registry::new(registry, credentials)?.with_timeout(timeout)?;
        Ok(Store::Oci(if deleting {
            registry.deleting()
        } else {
            registry
        }))
    }

    pub async fn inventory(
        &self,
        repository: &str,
        concurrency: usize,
    ) -> anyhow::Result<Inventory> {
        match self {
            Store::Oci(registry) => Ok(Inventory::read(registry, repository, concurrency).await?),
            Store::Hub(hub) => {
                let tags = hub_tags(hub, repository).await?;
                // Hub reports an image's compressed size, not its layers:
                // each manifest counts as one blob of that size.
                let manifests: BTreeMap<String, Stored> = tags
                    .iter()
                    .filter_map(|t| {
                        let digest = t.digest.clone()?;
                        Some((
                            digest,
                            Stored {
                                size: t.full_size,
                                children: t.children.clone(),
                                created: t.last_pushed,
                                ..Stored::default()
                            },
                        ))
                    })
                    .collect();
                Ok(Inventory {
                    tags: tags.iter().map(|t| t.to_tag_info()).collect(),
                    manifests,
                    untagged: None,
                    gone: Default::default(),
                })
            }
        }
    }

    /// How many times `repository` was pulled since it was made; `None`
    /// where the registry keeps no count (the OCI distribution API has
    /// none). A repository never pushed was never pulled.
    pub async fn pull_count(&self, repository: &str) -> anyhow::Result<Option<u64>> {
        match self {
            Store::Oci(_) => Ok(None),
            Store::Hub(hub) => {
                let (namespace, name) = split(repository)?;
                match hub.pull_count(namespace, name).await {
                    Err(HubError::NoRepository { .. }) => Ok(Some(0)),
                    other => Ok(Some(other?)),
                }
            }
        }
    }

    /// What the tags outside `skip` name right now, where a delete takes
    /// the manifest and so every tag on it.
    pub async fn relist(
        &self,
        repository: &str,
        skip: &BTreeSet<&str>,
        concurrency: usize,
    ) -> anyhow::Result<Vec<(String, String)>> {
        match self {
            Store::Oci(registry) => {
                let tags = registry.tags(repository).await?;
                let named: Vec<Option<(String, String)>> =
                    stream::iter(tags.into_iter().filter(|t| !skip.contains(t.as_str())))
                        .map(|tag| async move {
                            let digest = registry.manifest_digest(repository, &tag).await?;
                            Ok::<_, crate::registry::RegistryError>(digest.map(|d| (tag, d)))
                        })
                        .buffer_unordered(concurrency)
                        .try_collect()
                        .await?;
                Ok(named.into_iter().flatten().collect())
            }
            // Hub deletes a tag alone: another tag on its manifest is
            // unaffected, so there is nothing to re-check.
            Store::Hub(_) => Ok(Vec::new()),
        }
    }

    /// Carries out the plan's deletions, an index before its children;
    /// how many manifests (OCI) or tags (Hub) this run removed. A failure
    /// says how far it got.
    pub async fn apply(
        &self,
        repository: &str,
        plan: &Plan,
        inventory: &Inventory,
        concurrency: usize,
    ) -> anyhow::Result<usize> {
        let mut removed = 0;
        let mut finished = 0;
        let total = plan.delete.len();
        for wave in waves(&plan.delete, inventory) {
            let size = wave.len();
            let result: anyhow::Result<Vec<usize>> = stream::iter(wave)
                .map(|deletion| self.delete(repository, deletion))
                .buffer_unordered(concurrency)
                .try_collect()
                .await;
            match result {
                Ok(counts) => {
                    removed += counts.iter().sum::<usize>();
                    finished += size;
                }
                Err(err) => {
                    return Err(err.context(format!(
                        "deleting from {repository} stopped with {finished} of {total} manifests done; run again to finish (nothing kept is deleted)"
                    )));
                }
            }
        }
        Ok(removed)
    }

    async fn delete(&self, repository: &str, deletion: &Deletion) -> anyhow::Result<usize> {
        match self {
            Store::Oci(registry) => {
                let outcome = registry
                    .delete_manifest(repository, &deletion.digest)
                    .await?;
                tracing::info!("{repository}@{}: {outcome:?}", deletion.digest);
                Ok(usize::from(outcome == Deleted::Now))
            }
            Store::Hub(hub) => {
                let (namespace, name) = split(repository)?;
                let mut now = 0;
                for tag in &deletion.tags {
                    if hub.delete_tag(namespace, name, tag).await? == HubDeleted::Now {
                        now += 1;
                    }
                }
                Ok(now)
            }
        }
    }
}

/// A repository never pushed holds nothing, as on an OCI registry.
async fn hub_tags(hub: &Hub, repository: &str) -> anyhow::Result<Vec<HubTag>> {
    let (namespace, name) = split(repository)?;
    match hub.tags(namespace, name).await {
        Err(HubError::NoRepository { .. }) => Ok(Vec::new()),
        other => Ok(other?),
    }
}

fn split(repository: &str) -> anyhow::Result<(&str, &str)> {
    repository.split_once('/').with_context(|| {
        format!("{repository:?} is not `namespace/name`; Docker Hub repositories have both")
    })
}

/// The deletions in plan order, cut where one is the child of an earlier
/// one in the same batch: batches run one after another, each concurrently,
/// so an index is always gone before its children.
fn waves<'a>(deletions: &'a [Deletion], inventory: &Inventory) -> Vec<Vec<&'a Deletion>> {
    let mut waves: Vec<Vec<&Deletion>> = Vec::new();
    let mut below: BTreeSet<&str> = BTreeSet::new();
    for deletion in deletions {
        if below.contains(deletion.digest.as_str()) || waves.is_empty() {
            waves.push(Vec::new());
            below.clear();
        }
        if let Some(stored) = inventory.manifests.get(&deletion.digest) {
            below.extend(stored.children.iter().map(String::as_str));
        }
        if let Some(wave) = waves.last_mut() {
            wave.push(deletion);
        }
    }
    waves
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unlisted() -> anyhow::Result<Vec<String>> {
        panic!("the directories are listed only without `images`")
    }

    #[test]
    fn images_keep_their_namespace_and_others_get_the_owners_once() {
        let asked = std::cell::Cell::new(0);
        let owner = || {
            asked.set(asked.get() + 1);
            Ok("acme".to_owned())
        };
        let images = ["web\nteam/api/\n".to_owned(), "web".to_owned()];
        assert_eq!(
            names(&images, unlisted, owner).unwrap(),
            ["acme/web", "team/api"]
        );
        assert_eq!(asked.get(), 1);
        let no_owner = || -> anyhow::Result<String> { panic!("no name lacks a namespace") };
        assert_eq!(
            names(&["team/api".to_owned()], unlisted, no_owner).unwrap(),
            ["team/api"]
        );
    }

    #[test]
    fn directories_are_lower_cased_and_a_bad_name_says_which_input() {
        let owner = || Ok("acme".to_owned());
        let listed = || Ok(vec!["Web".to_owned(), "api".to_owned()]);
        assert_eq!(names(&[], listed, owner).unwrap(), ["acme/api", "acme/web"]);
        let bad = names(&["web:1.0".to_owned()], unlisted, owner)
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("`images`: "), "{bad}");
        let bad = names(&[], || Ok(vec!["a b".to_owned()]), owner)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("under `context-root`"), "{bad}");
        let unlistable = names(&[], || anyhow::bail!("gone"), owner).unwrap_err();
        assert!(format!("{unlistable:#}").starts_with("no `images` given"));
    }

    fn deletion(digest: &str) -> Deletion {
        Deletion {
            digest: digest.into(),
            tags: vec![format!("tag-{digest}")],
            of: Vec::new(),
        }
    }

    #[test]
    fn an_index_goes_in_a_batch_before_its_children() {
        let mut inventory = Inventory::default();
        inventory.manifests.insert(
            "idx".into(),
            Stored {
                children: vec!["child".into()],
                ..Stored::default()
            },
        );
        let plan = [
            deletion("idx"),
            deletion("a"),
            deletion("child"),
            deletion("b"),
        ];
        let digests: Vec<Vec<&str>> = waves(&plan, &inventory)
            .iter()
            .map(|w| w.iter().map(|d| d.digest.as_str()).collect())
            .collect();
        assert_eq!(digests, vec![vec!["idx", "a"], vec!["child", "b"]]);
        assert!(waves(&[], &inventory).is_empty());
    }
}
