//! What a repository holds: every tag, the manifest it names and the blobs
//! behind it, read once for `cleanup` and `usage`.
//!
//! Reading is bounded-concurrent: one GET per tag (the manifest bytes give
//! the digest and the references in one request), one per child of an
//! index, one per distinct image config (for its creation time).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use tokio::sync::Semaphore;

use crate::limits;
use crate::oci::Descriptor;
use crate::registry::contents::{self, Contents};
use crate::registry::{Registry, RegistryError, referrers};
use crate::retention::TagInfo;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    pub tags: Vec<TagInfo>,
    /// Every manifest a tag reaches (tagged, or a child of a tagged index),
    /// by digest.
    pub manifests: BTreeMap<String, Stored>,
    /// The manifests no tag names, where a vendor API lists them (GitHub's
    /// Packages API); `None` where only tags can be listed.
    pub untagged: Option<Vec<String>>,
    /// Subjects of signature tags (`.sig`, `.att`, referrers indexes) that
    /// the registry proved gone (lower-case digests): those tags are
    /// orphans. Empty until [`Inventory::find_gone`].
    pub gone: BTreeSet<String>,
}

/// Signature tags checked at most per repository for a subject that is
/// gone: a bounded number of requests.
const MAX_ORPHAN_CHECKS: usize = 1000;

impl Inventory {
    /// Fills [`Inventory::gone`]: the subjects of signature tags that no
    /// tag reaches and whose digest the registry answers 404 for.
    pub async fn find_gone(
        &mut self,
        registry: &Registry,
        repository: &str,
        concurrency: usize,
    ) -> Result<(), RegistryError> {
        let present: BTreeSet<String> = self
            .manifests
            .keys()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        let unreached: BTreeSet<String> = self
            .tags
            .iter()
            .filter_map(|t| crate::supply::cosign::attached_to(&t.tag))
            .map(|d| d.to_ascii_lowercase())
            .filter(|d| !present.contains(d))
            .take(MAX_ORPHAN_CHECKS)
            .collect();
        let checks = unreached.into_iter().map(|subject| async move {
            let found = registry.manifest_digest(repository, &subject).await?;
            Ok::<_, RegistryError>(found.is_none().then_some(subject))
        });
        let gone: Vec<Option<String>> = stream::iter(checks)
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        self.gone = gone.into_iter().flatten().collect();
        Ok(())
    }

    /// The signature tags whose subject is gone.
    pub fn orphans(&self) -> impl Iterator<Item = &TagInfo> {
        self.tags.iter().filter(|t| {
            crate::supply::cosign::attached_to(&t.tag)
                .is_some_and(|d| self.gone.contains(&d.to_ascii_lowercase()))
        })
    }
}

/// The referrers the registry's referrers API (OCI 1.1) lists for each of
/// `subjects`, by subject: only those whose manifest names that subject.
/// `None` when the registry has no such API (the fallback tag
/// `sha256-<hex>` is a tag like any other). The subjects come from an
/// inventory, bounded by its budget; the referrers of each by
/// [`referrers::MAX_REFERRERS`], a longer list an error.
pub async fn api_referrers(
    registry: &Registry,
    repository: &str,
    subjects: &BTreeSet<String>,
    concurrency: usize,
) -> Result<Option<BTreeMap<String, Vec<String>>>, RegistryError> {
    let Some(listed) = referrers::listed(registry, repository, subjects, concurrency).await? else {
        return Ok(None);
    };
    let confirmed = listed.into_iter().map(|(subject, listed)| async move {
        let named = confirmed(registry, repository, &subject, listed).await?;
        Ok::<_, RegistryError>((subject, named))
    });
    let found = stream::iter(confirmed)
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(Some(found))
}

/// The manifests of `listed` that name `subject` (read back: a referrers
/// answer itself is not trusted).
async fn confirmed(
    registry: &Registry,
    repository: &str,
    subject: &str,
    listed: Vec<Descriptor>,
) -> Result<Vec<String>, RegistryError> {
    let mut referrers = Vec::new();
    for descriptor in listed {
        let digest = descriptor.digest.as_str();
        let Some((digest, stored)) = fetch(registry, repository, digest).await? else {
            continue;
        };
        if stored
            .subject
            .is_some_and(|s| s.eq_ignore_ascii_case(subject))
        {
            referrers.push(digest);
        }
    }
    Ok(referrers)
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    /// The manifest's own size.
    pub size: u64,
    /// Config and layers of an image; empty for an index.
    pub blobs: Vec<Descriptor>,
    /// Child manifests of an index.
    pub children: Vec<String>,
    pub created: Option<i64>,
    /// What a referrer (OCI 1.1 `subject`) is about.
    pub subject: Option<String>,
}

impl Inventory {
    /// Reads `repository`; a repository that doesn't exist is empty.
    pub async fn read(
        registry: &Registry,
        repository: &str,
        concurrency: usize,
    ) -> Result<Self, RegistryError> {
        let concurrency = concurrency.max(1);
        let names = registry.tags(repository).await?;
        let mut fetched = stream::iter(names)
            .map(|tag| async move {
                let stored = fetch(registry, repository, &tag).await?;
                Ok::<_, RegistryError>((tag, stored))
            })
            .buffer_unordered(concurrency);

        let mut budget = Budget::new(repository);
        let mut manifests = BTreeMap::new();
        // A tag deleted while we listed is simply not there any more.
        let mut tagged = Vec::new();
        while let Some((tag, found)) = fetched.try_next().await? {
            if let Some((digest, stored)) = found {
                budget.take(&stored)?;
                tagged.push((tag, digest.clone()));
                manifests.insert(digest, stored);
            }
        }
        Self::complete(registry, repository, concurrency, tagged, manifests, budget).await
    }

    /// Reads `repository` where another listing (GitHub's Packages API)
    /// already named each tag's digest: every digest of `tagged` and of
    /// `untagged` is read once, by digest. A digest the registry no longer
    /// has is left out of `manifests`; its tags stay, without children.
    pub async fn read_digests(
        registry: &Registry,
        repository: &str,
        concurrency: usize,
        tagged: Vec<(String, String)>,
        untagged: &[String],
    ) -> Result<Self, RegistryError> {
        let concurrency = concurrency.max(1);
        let digests: BTreeSet<String> = tagged
            .iter()
            .map(|(_, d)| d.clone())
            .chain(untagged.iter().cloned())
            .collect();
        let mut fetched = stream::iter(digests)
            .map(|digest| async move { fetch(registry, repository, &digest).await })
            .buffer_unordered(concurrency);
        let mut budget = Budget::new(repository);
        let mut manifests = BTreeMap::new();
        while let Some(found) = fetched.try_next().await? {
            if let Some((digest, stored)) = found {
                budget.take(&stored)?;
                manifests.insert(digest, stored);
            }
        }
        Self::complete(registry, repository, concurrency, tagged, manifests, budget).await
    }

    /// Reads what the manifests found list (children, configs) and dates
    /// each tag.
    async fn complete(
        registry: &Registry,
        repository: &str,
        concurrency: usize,
        tagged: Vec<(String, String)>,
        mut manifests: BTreeMap<String, Stored>,
        mut budget: Budget<'_>,
    ) -> Result<Self, RegistryError> {
        read_children(
            registry,
            repository,
            concurrency,
            &mut manifests,
            &mut budget,
        )
        .await?;
        read_created(registry, repository, concurrency, &mut manifests).await?;

        let tags = tagged
            .into_iter()
            .map(|(tag, digest)| {
                let stored = manifests.get(&digest);
                TagInfo {
                    tag,
                    pushed: stored.and_then(|s| s.created),
                    children: stored.map(|s| s.children.clone()).unwrap_or_default(),
                    digest,
                }
            })
            .collect();
        Ok(Inventory {
            tags,
            manifests,
            untagged: None,
            gone: BTreeSet::new(),
        })
    }

    /// Bytes stored for what `roots` reach, each blob and manifest counted
    /// once however many images share it.
    pub fn stored_bytes<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut seen = BTreeSet::new();
        let mut bytes = 0;
        let mut queue: Vec<&str> = roots.into_iter().collect();
        while let Some(digest) = queue.pop() {
            if !seen.insert(digest) {
                continue;
            }
            let Some(stored) = self.manifests.get(digest) else {
                continue;
            };
            bytes += stored.size;
            for blob in &stored.blobs {
                if seen.insert(blob.digest.as_str()) {
                    bytes += blob.size;
                }
            }
            queue.extend(stored.children.iter().map(String::as_str));
        }
        bytes
    }

    /// What deleting the manifests `deleted` would free once the registry
    /// collects garbage: bytes reached from every tag now, less those the
    /// remaining tags still reach.
    pub fn freed_bytes(&self, deleted: &BTreeSet<&str>) -> u64 {
        let all = self.tags.iter().map(|t| t.digest.as_str());
        let remaining = self
            .tags
            .iter()
            .map(|t| t.digest.as_str())
            .filter(|d| !deleted.contains(d));
        self.stored_bytes(all) - self.stored_bytes(remaining)
    }
}

/// A tag's manifest: its digest and references, `None` when the tag is gone.
async fn fetch(
    registry: &Registry,
    repository: &str,
    reference: &str,
) -> Result<Option<(String, Stored)>, RegistryError> {
    let Some(manifest) = registry.manifest(repository, reference).await? else {
        return Ok(None);
    };
    let mut stored = Stored {
        size: manifest.bytes.len() as u64,
        subject: manifest.subject(),
        ..Stored::default()
    };
    match manifest.contents()? {
        Contents::Image { config, layers } => {
            stored.blobs = std::iter::once(config).chain(layers).collect();
        }
        Contents::Index { manifests, created } => {
            stored.children = manifests.into_iter().map(|m| m.digest.into()).collect();
            stored.created = created.as_deref().and_then(crate::time::unix_seconds);
        }
    }
    Ok(Some((manifest.digest, stored)))
}

/// Reads the children of indexes, level by level (an index may list
/// indexes); bounded by the depth content addressing allows in practice.
async fn read_children(
    registry: &Registry,
    repository: &str,
    concurrency: usize,
    manifests: &mut BTreeMap<String, Stored>,
    budget: &mut Budget<'_>,
) -> Result<(), RegistryError> {
    const MAX_LEVELS: usize = 4;
    for _ in 0..MAX_LEVELS {
        let missing: BTreeSet<String> = manifests
            .values()
            .flat_map(|s| s.children.iter())
            .filter(|c| !manifests.contains_key(*c))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        let mut found = stream::iter(missing)
            .map(|digest| async move { fetch(registry, repository, &digest).await })
            .buffer_unordered(concurrency);
        while let Some(found) = found.try_next().await? {
            if let Some((digest, stored)) = found {
                budget.take(&stored)?;
                manifests.insert(digest, stored);
            }
        }
    }
    Ok(())
}

/// Descriptors kept for one repository, refused past
/// [`limits::REPOSITORY_DESCRIPTORS`]: tags, indexes and their children
/// multiply, and each descriptor is kept until the run ends.
struct Budget<'a> {
    repository: &'a str,
    kept: usize,
}

impl<'a> Budget<'a> {
    fn new(repository: &'a str) -> Self {
        Budget {
            repository,
            kept: 0,
        }
    }

    fn take(&mut self, stored: &Stored) -> Result<(), RegistryError> {
        self.kept += stored.blobs.len() + stored.children.len();
        if self.kept > limits::REPOSITORY_DESCRIPTORS {
            return Err(RegistryError::Protocol(format!(
                "{} lists more than {} descriptors (configs, layers, child manifests) in the manifests its tags reach; refusing to read further",
                self.repository,
                limits::REPOSITORY_DESCRIPTORS
            )));
        }
        Ok(())
    }
}

/// Creation times: each image's config (read once per distinct config),
/// then each index without its own as its newest child's.
async fn read_created(
    registry: &Registry,
    repository: &str,
    concurrency: usize,
    manifests: &mut BTreeMap<String, Stored>,
) -> Result<(), RegistryError> {
    let configs: BTreeMap<String, u64> = manifests
        .values()
        .filter_map(|s| s.blobs.first().map(|c| (c.digest.to_string(), c.size)))
        .collect();
    // `concurrency` configs of up to IN_MEMORY_BLOB each would be GiBs:
    // what is held at once is bounded by their declared sizes instead.
    let budget = Semaphore::new(budget_permits(limits::CONFIGS_IN_FLIGHT) as usize);
    let budget = &budget;
    let times: HashMap<String, Option<i64>> = stream::iter(configs)
        .map(|(digest, size)| async move {
            // Larger than IN_MEMORY_BLOB is refused by `blob`, unread.
            let held = size.min(limits::IN_MEMORY_BLOB);
            let _permit = budget
                .acquire_many(budget_permits(held))
                .await
                .map_err(|_| RegistryError::Protocol("the config budget closed".into()))?;
            let bytes = registry.blob(repository, &digest, size).await?;
            Ok::<_, RegistryError>((digest, contents::created(&bytes)))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    for stored in manifests.values_mut() {
        if let Some(config) = stored.blobs.first() {
            stored.created = times.get(config.digest.as_str()).copied().flatten();
        }
    }
    let index_times: Vec<(String, Option<i64>)> = manifests
        .iter()
        .filter(|(_, s)| s.created.is_none() && !s.children.is_empty())
        .map(|(digest, s)| {
            let newest = s
                .children
                .iter()
                .filter_map(|c| manifests.get(c).and_then(|m| m.created))
                .max();
            (digest.clone(), newest)
        })
        .collect();
    for (digest, created) in index_times {
        if let Some(stored) = manifests.get_mut(&digest) {
            stored.created = created;
        }
    }
    Ok(())
}

/// Permits for `bytes` of the config budget: one per KiB, rounded up, so
/// that every size fits a semaphore's count.
fn budget_permits(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Builders for tests of what reads an inventory.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::oci::Digest;

    /// An image manifest of `size` bytes over `(digest, size)` blobs.
    pub fn image(size: u64, blobs: &[(&str, u64)]) -> Stored {
        Stored {
            size,
            blobs: blobs
                .iter()
                // A blob's name stands for the digest of its name.
                .map(|&(name, size)| Descriptor::new("", Digest::of(name.as_bytes()), size))
                .collect(),
            ..Stored::default()
        }
    }

    pub fn tag(tag: &str, digest: &str) -> TagInfo {
        TagInfo {
            tag: tag.into(),
            digest: digest.into(),
            pushed: None,
            children: Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::testing::{image, tag};
    use super::*;

    #[test]
    fn a_repository_past_its_descriptor_budget_is_refused() {
        let mut budget = Budget::new("acme/app");
        let full = Stored {
            children: vec![String::new(); limits::REPOSITORY_DESCRIPTORS - 1],
            ..Stored::default()
        };
        budget.take(&full).unwrap();
        budget.take(&image(1, &[("c", 1)])).unwrap();
        let error = budget.take(&image(1, &[("c", 1)])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "acme/app lists more than 500000 descriptors (configs, layers, child manifests) in the manifests its tags reach; refusing to read further"
        );
    }

    /// Two images sharing a base layer, and an index over one of them.
    fn sample() -> Inventory {
        let mut manifests = BTreeMap::new();
        manifests.insert(
            "m1".into(),
            image(10, &[("c1", 1), ("base", 1000), ("l1", 100)]),
        );
        manifests.insert(
            "m2".into(),
            image(10, &[("c2", 2), ("base", 1000), ("l2", 200)]),
        );
        manifests.insert(
            "idx".into(),
            Stored {
                size: 5,
                children: vec!["m2".into()],
                ..Stored::default()
            },
        );
        Inventory {
            tags: vec![tag("old", "m1"), tag("new", "m2"), tag("multi", "idx")],
            manifests,
            untagged: None,
            gone: BTreeSet::new(),
        }
    }

    #[test]
    fn shared_layers_count_once() {
        let inv = sample();
        assert_eq!(inv.stored_bytes(["m1"]), 10 + 1 + 1000 + 100);
        assert_eq!(
            inv.stored_bytes(["m1", "m2", "idx"]),
            10 + 1 + 1000 + 100 + 10 + 2 + 200 + 5
        );
        // The index reaches its child's blobs.
        assert_eq!(inv.stored_bytes(["idx"]), 5 + 10 + 2 + 1000 + 200);
    }

    #[test]
    fn freed_bytes_leave_what_others_still_use() {
        let inv = sample();
        // Deleting m1 frees its own layer and config, not the shared base.
        assert_eq!(inv.freed_bytes(&BTreeSet::from(["m1"])), 10 + 1 + 100);
        // m2 is still reached through the kept index: nothing freed.
        assert_eq!(inv.freed_bytes(&BTreeSet::from(["m2"])), 0);
        assert_eq!(inv.freed_bytes(&BTreeSet::from(["idx"])), 5);
    }
}
