//! Storage per repository (pure): tags, commit-SHA tags, bytes stored with
//! shared layers counted once, the largest images, and growth since an
//! earlier report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inventory::Inventory;
use crate::names::is_commit_sha;
use crate::supply::cosign::attached_to;

/// Images listed per repository as the largest.
const LARGEST: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub registry: String,
    /// RFC 3339.
    pub generated: String,
    pub total_bytes: u64,
    pub repositories: Vec<Repository>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Repository {
    pub repository: String,
    /// The images' tags: signatures and attestations aside (reports before
    /// 2026-12 counted them here too).
    pub tags: usize,
    pub sha_tags: usize,
    /// cosign signature and attestation tags (`sha256-<hex>.sig`/`.att`)
    /// and the referrers a referrers API lists for the images, counted
    /// apart: they are not images. Absent from older reports.
    #[serde(default)]
    pub signatures: usize,
    /// Of those, the ones whose image is gone from the registry (left by
    /// an earlier tool): `cleanup` with `orphans: delete` removes them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orphans: usize,
    pub manifests: usize,
    /// Every blob and manifest the tags reach, each counted once.
    pub bytes: u64,
    pub largest: Vec<Image>,
    /// Package versions, where GitHub's Packages API lists them (GHCR);
    /// absent elsewhere, where untagged manifests can't be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
    /// Against the previous report; absent when it didn't list the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A package's versions (one per manifest), as GHCR counts and bills them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Versions {
    /// Named by a tag (signatures and attestations included).
    pub tagged: usize,
    /// Named by none: children of indexes, referrers, leftovers.
    pub untagged: usize,
    /// Stored for the untagged versions no tag reaches, beyond `bytes`.
    pub untagged_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Image {
    pub digest: String,
    /// Sorted.
    pub tags: Vec<String>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Growth {
    pub bytes: i64,
    pub tags: i64,
    pub sha_tags: i64,
}

/// Signatures and attestations are counted apart: stored bytes include
/// them, the image counts and the largest images don't.
pub fn measure(repository: &str, inventory: &Inventory) -> Repository {
    let (attached, image_tags): (Vec<_>, Vec<_>) = inventory
        .tags
        .iter()
        .partition(|t| attached_to(&t.tag).is_some());
    let mut by_digest: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for t in image_tags {
        by_digest.entry(&t.digest).or_default().push(t.tag.clone());
    }
    let mut largest: Vec<Image> = by_digest
        .iter()
        .map(|(digest, tags)| {
            let mut tags = tags.clone();
            tags.sort();
            Image {
                digest: (*digest).to_owned(),
                bytes: inventory.stored_bytes([*digest]),
                tags,
            }
        })
        .collect();
    largest.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.digest.cmp(&b.digest)));
    largest.truncate(LARGEST);
    let tagged_roots = || inventory.tags.iter().map(|t| t.digest.as_str());
    let bytes = inventory.stored_bytes(tagged_roots());
    let versions = inventory.untagged.as_ref().map(|untagged| {
        let tagged: std::collections::BTreeSet<&str> = tagged_roots().collect();
        let all = inventory.stored_bytes(tagged_roots().chain(untagged.iter().map(String::as_str)));
        Versions {
            tagged: tagged.len(),
            untagged: untagged.len(),
            untagged_bytes: all - bytes,
        }
    });
    Repository {
        repository: repository.to_owned(),
        tags: inventory.tags.len() - attached.len(),
        sha_tags: inventory
            .tags
            .iter()
            .filter(|t| is_commit_sha(&t.tag))
            .count(),
        signatures: attached.len(),
        orphans: inventory.orphans().count(),
        manifests: by_digest.len(),
        bytes,
        largest,
        versions,
        growth: None,
    }
}

/// The report of what was measured at `now`, with growth since `previous`.
pub fn report_at(
    now: jiff::Timestamp,
    registry: &str,
    measured: Vec<Repository>,
    previous: Option<&Report>,
) -> Report {
    let report = Report {
        registry: registry.to_owned(),
        generated: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        total_bytes: measured.iter().map(|r| r.bytes).sum(),
        repositories: measured,
    };
    match previous {
        Some(previous) => compare(report, previous),
        None => report,
    }
}

/// Fills in each repository's growth since `previous`.
pub fn compare(mut report: Report, previous: &Report) -> Report {
    for repo in &mut report.repositories {
        let Some(before) = previous
            .repositories
            .iter()
            .find(|p| p.repository == repo.repository)
        else {
            continue;
        };
        let delta = |now: u64, then: u64| now as i64 - then as i64;
        repo.growth = Some(Growth {
            bytes: delta(repo.bytes, before.bytes),
            tags: delta(repo.tags as u64, before.tags as u64),
            sha_tags: delta(repo.sha_tags as u64, before.sha_tags as u64),
        });
    }
    report
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::inventory::testing::{image, tag};

    fn inventory() -> Inventory {
        let sha = |n: u8| format!("{n:040x}");
        Inventory {
            tags: vec![
                tag(&sha(1), "m1"),
                tag(&sha(2), "m2"),
                tag("latest", "m2"),
                tag("1.0.0", "m2"),
                tag(&format!("sha256-{}.sig", "a".repeat(64)), "s2"),
            ],
            manifests: BTreeMap::from([
                ("m1".into(), image(100, &[("base", 5000), ("a", 10)])),
                ("m2".into(), image(100, &[("base", 5000), ("b", 20)])),
                ("s2".into(), image(3, &[("payload", 7)])),
            ]),
            untagged: None,
            gone: Default::default(),
        }
    }

    #[test]
    fn counts_shared_layers_once() {
        let r = measure("acme/app", &inventory());
        assert_eq!(
            (r.tags, r.sha_tags, r.signatures, r.manifests),
            (4, 2, 1, 2),
            "a signature tag is counted apart, not as a tag"
        );
        assert_eq!(r.bytes, 100 + 5000 + 10 + 100 + 20 + 3 + 7);
        assert_eq!(r.largest[0].digest, "m2");
        assert_eq!(r.largest[0].bytes, 100 + 5000 + 20);
        assert_eq!(
            r.largest[0].tags[..2],
            [
                "0000000000000000000000000000000000000002".to_string(),
                "1.0.0".into()
            ][..]
        );
        assert_eq!(r.largest.len(), 2, "a signature is not an image");
        assert_eq!(r.versions, None, "a registry lists no untagged manifests");
    }

    #[test]
    fn package_versions_count_tagged_and_untagged_and_what_only_untagged_hold() {
        let mut package = inventory();
        package
            .manifests
            .insert("u1".into(), image(50, &[("base", 5000), ("c", 30)]));
        package
            .manifests
            .insert("u2".into(), image(40, &[("a", 10)]));
        package.untagged = Some(vec!["u1".into(), "u2".into()]);
        let r = measure("acme/app", &package);
        assert_eq!(
            r.versions,
            Some(Versions {
                tagged: 3,
                untagged: 2,
                // The base and `a` are stored for tagged images already.
                untagged_bytes: 50 + 30 + 40,
            })
        );
        assert_eq!(r.bytes, measure("acme/app", &inventory()).bytes);
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(r#""versions":{"tagged":3,"untagged":2,"untagged-bytes":120}"#),
            "{text}"
        );
    }

    #[test]
    fn growth_against_an_earlier_report() {
        let now = Report {
            registry: "r".into(),
            generated: "2026-01-02T00:00:00Z".into(),
            total_bytes: 0,
            repositories: vec![
                measure("acme/app", &inventory()),
                measure("acme/new", &Inventory::default()),
            ],
        };
        let mut before = now.clone();
        before.repositories[0].bytes -= 1000;
        before.repositories[0].tags = 7;
        before.repositories.truncate(1);
        let text = serde_json::to_string(&before).unwrap();
        let before: Report = serde_json::from_str(&text).unwrap();
        let compared = compare(now, &before);
        assert_eq!(
            compared.repositories[0].growth,
            Some(Growth {
                bytes: 1000,
                tags: -3,
                sha_tags: 0
            })
        );
        assert_eq!(compared.repositories[1].growth, None);
    }
}
