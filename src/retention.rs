//! Tag retention (pure): which manifests `cleanup` deletes.
//!
//! Every push adds an immutable commit-SHA tag, so an image's tag list only
//! grows. Retention keeps the newest `keep` SHA tags of an image and deletes
//! the manifests that only older ones name. It errs towards keeping: a tag
//! that cannot be shown to be old and unused stays, with the reason, for the
//! summary.
//!
//! Registries delete by manifest digest, and that removes every tag on the
//! digest, so the plan is made of digests, not tags: a digest goes only when
//! every tag on it may go, and never while a kept multi-arch index lists it.
//! Deleting an index deletes its untagged children after it (they were
//! pushed for that index: `push-by-digest`, a multi-platform publish),
//! unless a kept index lists them too; a tagged child is judged by its own
//! tags, so a kept tag on a child is unaffected. A run interrupted between
//! an index and its untagged children leaves those to the registry's
//! garbage collection: no tag reaches them any more.
//!
//! Docker Hub's API deletes tags instead (`Rules::tags_only`): there each
//! tag is judged alone, since removing it leaves its manifest to the others.
//!
//! The plan depends on the listing's content, not its order (a paginated
//! listing comes back in any order), and re-planning on what is left after
//! applying all or part of it deletes nothing the first plan kept.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use glob::Pattern;

use crate::names::is_commit_sha;

/// One tag the registry listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub tag: String,
    /// The manifest digest the tag names (`sha256:…`).
    pub digest: String,
    /// Unix seconds: Docker Hub's `tag_last_pushed` or the image config's
    /// `created`; `None` when neither is known.
    pub pushed: Option<i64>,
    /// For a multi-arch index: the digests of its child manifests.
    pub children: Vec<String>,
}

/// What may be pruned. Patterns arrive compiled, so a bad one is an input
/// error before any listing is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Candidates kept per image, newest first.
    pub keep: usize,
    /// Tags that may be pruned; empty means full commit SHAs (exactly 40
    /// lower-case hex characters, the immutable tag `publish` pushes).
    pub prunable: Vec<Pattern>,
    /// Tags never deleted, on top of `latest` and semantic versions.
    pub protect: Vec<Pattern>,
    /// Only candidates pushed before this unix time are pruned.
    pub older_than: Option<i64>,
    /// A `pushed` later than this is a clock error, not a push time.
    pub now: i64,
    /// The registry deletes tags, not manifests (Docker Hub's API): a tag
    /// goes alone, so sharing a manifest or an index keeps nothing.
    pub tags_only: bool,
    /// Subjects of signature, attestation and referrer tags that the
    /// registry proved gone (lower-case digests): those tags are orphans.
    pub gone: BTreeSet<String>,
    /// `orphans: delete`: orphans go; otherwise they stay, reported.
    pub delete_orphans: bool,
}

impl Rules {
    pub const DEFAULT_KEEP: usize = 50;

    /// The defaults: keep the newest 50 commit-SHA tags, protect nothing
    /// beyond `latest` and semantic versions, no age limit.
    pub fn new(now: i64) -> Self {
        Self {
            keep: Self::DEFAULT_KEEP,
            prunable: Vec::new(),
            protect: Vec::new(),
            older_than: None,
            now,
            tags_only: false,
            gone: BTreeSet::new(),
            delete_orphans: false,
        }
    }
}

/// Why a tag stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Among the newest `keep` candidates.
    Newest,
    /// `latest`, a semantic version or a `protect` pattern; the string says
    /// which.
    Protected(String),
    /// Not matched by `prunable`: cleanup only touches tags it was told to.
    NotPrunable,
    /// Pushed at or after `older_than`.
    TooRecent,
    /// No trustworthy push time: we cannot prove it is old.
    UnknownAge,
    /// Prunable, but deleting its manifest would delete this kept tag too.
    SharesDigest { with: String },
    /// Its manifest is a child of a kept multi-arch index; deleting it would
    /// break that index.
    ChildOfKept { index_tag: String },
    /// A cosign signature or attestation (`sha256-<hex>.sig`/`.att`) of a
    /// kept manifest: it goes only with the manifest it is about.
    Attached { to: String },
    /// A signature, attestation or referrers index whose subject `to` is
    /// gone from the registry (left by an earlier tool): kept unless
    /// `orphans: delete`.
    Orphan { to: String },
}

/// One manifest to delete, and every tag that goes with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deletion {
    pub digest: String,
    /// Sorted by name.
    pub tags: Vec<String>,
    /// The deleted indexes that list it (lower-case digests): kept
    /// whenever one of them is, since deleting it would break that index.
    pub of: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// One per manifest digest: an index before the children it deletes too
    /// (an interrupted run never leaves an index with missing children), then
    /// oldest first, then by digest.
    pub delete: Vec<Deletion>,
    /// Every tag that stays, sorted by name.
    pub kept: Vec<(String, Kept)>,
}

impl Plan {
    /// Every tag the plan deletes, in deletion order.
    pub fn deleted_tags(&self) -> impl Iterator<Item = &str> {
        self.delete
            .iter()
            .flat_map(|d| d.tags.iter().map(String::as_str))
    }
}

/// `1.2.3`, `1.2`, `1`, with an optional `v` and prerelease: the tags a
/// release gets, which nobody expects a cleanup to remove.
pub fn is_version_tag(tag: &str) -> bool {
    let bare = tag.strip_prefix('v').unwrap_or(tag);
    let (core, pre) = match bare.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (bare, None),
    };
    // Pad `1` and `1.2` so semver checks the numbers (no leading zeros, no
    // overflow: a 40-digit commit SHA is not a major version).
    let padding = match core.split('.').count() {
        1 => ".0.0",
        2 => ".0",
        3 => "",
        _ => return false,
    };
    let full = match pre {
        Some(pre) => format!("{core}{padding}-{pre}"),
        None => format!("{core}{padding}"),
    };
    semver::Version::parse(&full).is_ok()
}

/// A tag's standing before digests are considered.
enum Standing {
    Kept(Kept),
    Candidate(i64),
}

fn standing(info: &TagInfo, rules: &Rules) -> Standing {
    let tag = info.tag.as_str();
    if tag == "latest" {
        return Standing::Kept(Kept::Protected("`latest`".into()));
    }
    if let Some(to) = crate::supply::cosign::attached_to(tag) {
        return Standing::Kept(Kept::Attached { to });
    }
    if is_version_tag(tag) {
        return Standing::Kept(Kept::Protected("semantic version".into()));
    }
    if let Some(pattern) = rules.protect.iter().find(|p| p.matches(tag)) {
        return Standing::Kept(Kept::Protected(format!("protect pattern `{pattern}`")));
    }
    let prunable = if rules.prunable.is_empty() {
        is_commit_sha(tag)
    } else {
        rules.prunable.iter().any(|p| p.matches(tag))
    };
    if !prunable {
        return Standing::Kept(Kept::NotPrunable);
    }
    match info.pushed {
        // At or before the epoch is a placeholder (reproducible builds, ko,
        // Nix and Go's zero time), after `now` a skewed clock: ranking by
        // either would keep the wrong tags.
        Some(pushed) if pushed > 0 && pushed <= rules.now => Standing::Candidate(pushed),
        _ => Standing::Kept(Kept::UnknownAge),
    }
}

/// The tags on one manifest.
struct Group<'a> {
    /// As the listing first spelled it, for the delete request.
    digest: &'a str,
    /// Indices into the sorted entries, so by tag name.
    members: Vec<usize>,
    children: BTreeSet<String>,
}

pub fn plan(tags: &[TagInfo], rules: &Rules) -> Plan {
    // Sorted so that nothing below depends on the listing's order.
    let mut entries: Vec<&TagInfo> = tags.iter().collect();
    entries.sort_by(|a, b| a.tag.cmp(&b.tag).then_with(|| a.digest.cmp(&b.digest)));
    entries.dedup_by(|a, b| a.tag == b.tag && a.digest == b.digest);

    // `None`: the tag itself may go.
    let mut verdict: Vec<Option<Kept>> = Vec::with_capacity(entries.len());
    let mut candidates: Vec<(usize, i64)> = Vec::new();
    for (i, info) in entries.iter().enumerate() {
        match standing(info, rules) {
            Standing::Kept(kept) => verdict.push(Some(kept)),
            Standing::Candidate(pushed) => {
                verdict.push(None);
                candidates.push((i, pushed));
            }
        }
    }
    // Newest first; on a tie the smaller tag name (entries are sorted by it)
    // counts as newer. Tags of unknown age are kept above and don't use up
    // `keep`: they could be the newest of all.
    candidates.sort_by_key(|&(i, pushed)| (Reverse(pushed), i));
    for (rank, &(i, pushed)) in candidates.iter().enumerate() {
        verdict[i] = if rank < rules.keep {
            Some(Kept::Newest)
        } else if rules.older_than.is_some_and(|limit| pushed >= limit) {
            Some(Kept::TooRecent)
        } else {
            None
        };
    }

    // Digests are hex, which registries spell in lower case; compare them so
    // that a listing mixing cases never splits one manifest in two.
    let group_key = |info: &TagInfo| {
        if rules.tags_only {
            format!("{}\n{}", info.digest.to_ascii_lowercase(), info.tag)
        } else {
            info.digest.to_ascii_lowercase()
        }
    };
    let mut groups: BTreeMap<String, Group<'_>> = BTreeMap::new();
    for (i, info) in entries.iter().enumerate() {
        groups
            .entry(group_key(info))
            .or_insert_with(|| Group {
                digest: &info.digest,
                members: Vec::new(),
                children: BTreeSet::new(),
            })
            .members
            .push(i);
    }
    // From the whole listing: a duplicate entry may be the one with children.
    for info in tags.iter().filter(|_| !rules.tags_only) {
        if let Some(group) = groups.get_mut(&info.digest.to_ascii_lowercase()) {
            group
                .children
                .extend(info.children.iter().map(|c| c.to_ascii_lowercase()));
        }
    }

    // Deleting a manifest deletes every tag on it: one kept tag keeps them all.
    for group in groups.values() {
        let Some(&holder) = group.members.iter().find(|&&i| verdict[i].is_some()) else {
            continue;
        };
        let with = entries[holder].tag.clone();
        for &i in &group.members {
            if verdict[i].is_none() {
                verdict[i] = Some(Kept::SharesDigest { with: with.clone() });
            }
        }
    }
    // Every group is now wholly kept or wholly deletable.
    let is_kept = |verdict: &[Option<Kept>], group: &Group<'_>| {
        group.members.iter().any(|&i| verdict[i].is_some())
    };

    // A kept index keeps its children, and a kept child index its own.
    let mut queue: VecDeque<&str> = groups
        .iter()
        .filter(|(_, group)| is_kept(&verdict, group))
        .map(|(key, _)| key.as_str())
        .collect();
    while let Some(key) = queue.pop_front() {
        let Some(index) = groups.get(key) else {
            continue;
        };
        let Some(&first) = index.members.first() else {
            continue;
        };
        let index_tag = &entries[first].tag;
        for child in &index.children {
            let Some(group) = groups.get(child) else {
                continue;
            };
            if is_kept(&verdict, group) {
                continue;
            }
            for &i in &group.members {
                verdict[i] = Some(Kept::ChildOfKept {
                    index_tag: index_tag.clone(),
                });
            }
            queue.push_back(child);
        }
    }

    follow_subjects(&groups, &mut verdict, &entries, is_kept, rules);
    for kept in verdict.iter_mut().flatten() {
        if let Kept::Attached { to } = kept {
            if rules.gone.contains(to.as_str()) {
                *kept = Kept::Orphan { to: to.clone() };
            }
        }
    }

    let deleted: Vec<(&str, &Group<'_>)> = groups
        .iter()
        .filter(|(_, group)| !is_kept(&verdict, group))
        .map(|(key, group)| (key.as_str(), group))
        .collect();
    // How many deleted indexes sit above each deleted manifest. Bounded
    // rounds: content addressing rules out cycles, a bad listing might not.
    let mut depth: BTreeMap<&str, usize> = deleted.iter().map(|&(key, _)| (key, 0)).collect();
    for _ in 0..deleted.len() {
        let mut changed = false;
        for &(key, group) in &deleted {
            let below = depth.get(key).map_or(1, |d| d + 1);
            for child in &group.children {
                if let Some(d) = depth.get_mut(child.as_str()) {
                    if *d < below {
                        *d = below;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let listed_by = listed_by(&deleted);
    let mut delete: Vec<(usize, i64, &str, Deletion)> = deleted
        .iter()
        .map(|&(key, group)| {
            let deletion = Deletion {
                digest: group.digest.to_owned(),
                tags: group
                    .members
                    .iter()
                    .map(|&i| entries[i].tag.clone())
                    .collect(),
                of: listed_by.get(key).cloned().unwrap_or_default(),
            };
            let at = depth.get(key).copied().unwrap_or(0);
            (at, newest(group, &entries), key, deletion)
        })
        .collect();
    delete.extend(untagged_children(
        &groups, &deleted, &listed_by, &depth, &entries, &verdict, is_kept,
    ));
    delete.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));

    Plan {
        delete: delete.into_iter().map(|(_, _, _, d)| d).collect(),
        kept: entries
            .iter()
            .zip(verdict)
            .filter_map(|(info, kept)| Some((info.tag.clone(), kept?)))
            .collect(),
    }
}

/// For each manifest a deleted index lists, those indexes (lower-case
/// digests).
fn listed_by<'d>(deleted: &[(&str, &'d Group<'_>)]) -> BTreeMap<&'d str, Vec<String>> {
    let mut listed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (_, group) in deleted {
        for child in &group.children {
            listed
                .entry(child.as_str())
                .or_default()
                .push(group.digest.to_ascii_lowercase());
        }
    }
    listed
}

/// The newest push time of a group's tags (0 when none is known).
fn newest(group: &Group<'_>, entries: &[&TagInfo]) -> i64 {
    group
        .members
        .iter()
        .filter_map(|&i| entries[i].pushed)
        .max()
        .unwrap_or(0)
}

/// The untagged children of deleted indexes (pushed for that index alone:
/// by `push-by-digest` jobs, or by a one-job multi-platform publish), each
/// after its index; a child a kept index lists stays, and a tagged child
/// is judged by its own tags above.
fn untagged_children<'g>(
    groups: &'g BTreeMap<String, Group<'_>>,
    deleted: &[(&str, &Group<'_>)],
    listed_by: &BTreeMap<&str, Vec<String>>,
    depth: &BTreeMap<&str, usize>,
    entries: &[&TagInfo],
    verdict: &[Option<Kept>],
    is_kept: impl Fn(&[Option<Kept>], &Group<'_>) -> bool,
) -> Vec<(usize, i64, &'g str, Deletion)> {
    let held: BTreeSet<&str> = groups
        .values()
        .filter(|group| is_kept(verdict, group))
        .flat_map(|group| group.children.iter().map(String::as_str))
        .collect();
    // Depth below the deepest deleted index listing it, and that index's
    // push time (the child's own is unknown: no tag dates it).
    let mut below: BTreeMap<&'g str, (usize, i64)> = BTreeMap::new();
    for &(key, _) in deleted {
        let Some(group) = groups.get(key) else {
            continue;
        };
        let index_depth = depth.get(key).copied().unwrap_or(0);
        let pushed = newest(group, entries);
        for child in &group.children {
            if groups.contains_key(child) || held.contains(child.as_str()) {
                continue;
            }
            let at = below.entry(child.as_str()).or_default();
            at.0 = at.0.max(index_depth + 1);
            at.1 = at.1.max(pushed);
        }
    }
    below
        .into_iter()
        .map(|(child, (at, pushed))| {
            let deletion = Deletion {
                digest: child.to_owned(),
                tags: Vec::new(),
                of: listed_by.get(child).cloned().unwrap_or_default(),
            };
            (at, pushed, child, deletion)
        })
        .collect()
}

/// Signatures and attestations go with the manifest they are about: a
/// manifest holding only such tags is deleted when every one of their
/// subjects is (and kept otherwise, whatever `keep` says); with
/// `orphans: delete`, also when their subjects are gone already.
fn follow_subjects(
    groups: &BTreeMap<String, Group<'_>>,
    verdict: &mut [Option<Kept>],
    entries: &[&TagInfo],
    is_kept: impl Fn(&[Option<Kept>], &Group<'_>) -> bool,
    rules: &Rules,
) {
    let held: BTreeSet<&str> = groups
        .values()
        .filter(|group| is_kept(verdict, group))
        .flat_map(|group| group.children.iter().map(String::as_str))
        .collect();
    let deleted: Vec<&Group<'_>> = groups
        .values()
        .filter(|group| !is_kept(verdict, group))
        .collect();
    let mut doomed: BTreeSet<String> = deleted
        .iter()
        .flat_map(|group| group.members.iter().map(|&i| entries[i].digest.as_str()))
        .map(str::to_ascii_lowercase)
        .collect();
    // A deleted index's untagged platform images go with it (see
    // `untagged_children`), and so do their signatures.
    doomed.extend(
        deleted
            .iter()
            .flat_map(|group| &group.children)
            .filter(|child| !groups.contains_key(*child) && !held.contains(child.as_str()))
            .cloned(),
    );
    if rules.delete_orphans {
        doomed.extend(rules.gone.iter().cloned());
    }
    for group in groups.values() {
        let follows = group
            .members
            .iter()
            .all(|&i| matches!(&verdict[i], Some(Kept::Attached { to }) if doomed.contains(to)));
        if follows {
            for &i in &group.members {
                verdict[i] = None;
            }
        }
    }
}

/// Re-judges `plan` against tags read again just before deleting: a
/// deletion whose digest another tag now names (pushed or moved there while
/// the listing was read, e.g. `latest` rolled back) is dropped, and its tags
/// are kept as sharing that tag's manifest; so is every child of an index
/// kept that way, tagged or not, their signatures and attestations, and the
/// referrers a kept fallback index lists.
pub fn recheck(mut plan: Plan, listed_now: &[(String, String)]) -> Plan {
    // Looked up in lower case, as `plan` spells them; a plan built
    // elsewhere (the type is public) is brought to that spelling here, once.
    for deletion in &mut plan.delete {
        deletion
            .of
            .iter_mut()
            .for_each(|index| index.make_ascii_lowercase());
    }
    let mut dropped = Vec::new();
    // Rescued digests (lower-case), each with the tag that keeps it.
    let mut rescued: BTreeMap<String, String> = BTreeMap::new();
    plan.delete.retain(|deletion| {
        let claimed = listed_now.iter().find(|(tag, digest)| {
            digest.eq_ignore_ascii_case(&deletion.digest) && !deletion.tags.contains(tag)
        });
        let (keeper, why) = match claimed {
            Some((with, _)) => (with.clone(), Kept::SharesDigest { with: with.clone() }),
            // Indexes come before their children: a kept index keeps them.
            None => match deletion.of.iter().find_map(|index| rescued.get(index)) {
                Some(index_tag) => (
                    index_tag.clone(),
                    Kept::ChildOfKept {
                        index_tag: index_tag.clone(),
                    },
                ),
                None => return true,
            },
        };
        dropped.extend(deletion.tags.iter().map(|t| (t.clone(), why.clone())));
        rescued.insert(deletion.digest.to_ascii_lowercase(), keeper);
        false
    });
    // A rescued image keeps its signatures and attestations too.
    plan.delete.retain(|deletion| {
        let subjects: Vec<Option<String>> = deletion
            .tags
            .iter()
            .map(|t| crate::supply::cosign::attached_to(t))
            .collect();
        // An untagged child has no tags to follow anything with. A subject
        // is a digest, so lower-case (`names::is_digest`).
        let follows = !subjects.is_empty()
            && subjects
                .iter()
                .all(|to| to.as_ref().is_some_and(|to| rescued.contains_key(to)));
        if follows {
            dropped.extend(
                deletion
                    .tags
                    .iter()
                    .zip(subjects)
                    .filter_map(|(t, to)| Some((t.clone(), Kept::Attached { to: to? }))),
            );
        }
        if follows {
            let keeper = deletion.tags.first().cloned().unwrap_or_default();
            rescued.insert(deletion.digest.to_ascii_lowercase(), keeper);
        }
        !follows
    });
    // A rescued fallback index (`sha256-<hex>`) keeps the referrers it lists.
    plan.delete.retain(|deletion| {
        !(deletion.tags.is_empty() && deletion.of.iter().any(|of| rescued.contains_key(of)))
    });
    plan.kept.extend(dropped);
    plan.kept.sort_by(|a, b| a.0.cmp(&b.0));
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    type KeptTags = Vec<(String, Kept)>;

    /// A distinct full commit SHA.
    fn sha(n: u32) -> String {
        format!("{n:040x}")
    }

    fn digest(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    /// Pushed `age` days before `NOW`.
    fn tag(name: &str, digest: &str, age: i64) -> TagInfo {
        TagInfo {
            tag: name.into(),
            digest: digest.into(),
            pushed: Some(NOW - age * DAY),
            children: Vec::new(),
        }
    }

    fn index(name: &str, digest: &str, age: i64, children: &[String]) -> TagInfo {
        TagInfo {
            children: children.to_vec(),
            ..tag(name, digest, age)
        }
    }

    fn rules(keep: usize) -> Rules {
        Rules {
            keep,
            ..Rules::new(NOW)
        }
    }

    fn patterns(globs: &[&str]) -> Vec<Pattern> {
        globs.iter().map(|g| Pattern::new(g).unwrap()).collect()
    }

    fn deletion(digest: &str, tags: &[&str]) -> Deletion {
        Deletion {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            of: Vec::new(),
        }
    }

    fn kept(tag: &str, kept: Kept) -> (String, Kept) {
        (tag.into(), kept)
    }

    fn shares(with: &str) -> Kept {
        Kept::SharesDigest { with: with.into() }
    }

    /// `sha256-<hex>.<suffix>` of `digest(n)`.
    fn attached(n: u32, suffix: &str) -> String {
        crate::supply::cosign::tag(&digest(n), suffix)
    }

    #[test]
    fn signatures_and_attestations_go_with_their_image_and_never_count_as_sha_tags() {
        let listing = vec![
            tag(&sha(1), &digest(1), 30),
            tag(&attached(1, "sig"), &digest(11), 30),
            tag(&attached(1, "att"), &digest(12), 30),
            tag(&sha(2), &digest(2), 20),
            tag(&attached(2, "sig"), &digest(21), 20),
            tag(&sha(3), &digest(3), 10),
        ];
        let expected_delete = vec![
            deletion(&digest(1), &[&sha(1)]),
            deletion(&digest(11), &[&attached(1, "sig")]),
            deletion(&digest(12), &[&attached(1, "att")]),
        ];
        let planned = plan(&listing, &rules(2));
        let mut deleted = planned.delete.clone();
        deleted.sort();
        assert_eq!(deleted, expected_delete);
        assert!(
            planned
                .kept
                .contains(&kept(&attached(2, "sig"), Kept::Attached { to: digest(2) }))
        );

        // Even a pattern that matches them doesn't make them count.
        let everything = Rules {
            prunable: vec![Pattern::new("*").unwrap()],
            ..rules(2)
        };
        let mut deleted = plan(&listing, &everything).delete;
        deleted.sort();
        assert_eq!(deleted, expected_delete);
    }

    fn protected(why: &str) -> Kept {
        Kept::Protected(why.into())
    }

    /// What the registry lists once `deletions` are done.
    fn apply(listing: &[TagInfo], deletions: &[Deletion]) -> Vec<TagInfo> {
        let gone: BTreeSet<&str> = deletions.iter().map(|d| d.digest.as_str()).collect();
        listing
            .iter()
            .filter(|t| !gone.contains(t.digest.as_str()))
            .cloned()
            .collect()
    }

    fn tag_names(listing: &[TagInfo]) -> BTreeSet<String> {
        listing.iter().map(|t| t.tag.clone()).collect()
    }

    #[test]
    fn latest_and_semantic_versions_are_always_protected() {
        let listing: Vec<TagInfo> = [
            "latest",
            "1.2.3",
            "1.2",
            "1",
            "v1.2.3",
            "v2",
            "2.0.0-rc.1",
            "v3.1-beta.2",
            "old-build",
        ]
        .iter()
        .enumerate()
        .map(|(n, name)| tag(name, &digest(n as u32), 400))
        .collect();
        // Everything is prunable and nothing is kept by age: only the
        // protection stands between these tags and deletion.
        let rules = Rules {
            keep: 0,
            prunable: patterns(&["*"]),
            ..Rules::new(NOW)
        };
        let plan = plan(&listing, &rules);
        assert_eq!(plan.delete, [deletion(&digest(8), &["old-build"])]);
        let version = protected("semantic version");
        assert_eq!(
            plan.kept,
            [
                kept("1", version.clone()),
                kept("1.2", version.clone()),
                kept("1.2.3", version.clone()),
                kept("2.0.0-rc.1", version.clone()),
                kept("latest", protected("`latest`")),
                kept("v1.2.3", version.clone()),
                kept("v2", version.clone()),
                kept("v3.1-beta.2", version),
            ]
        );
    }

    #[test]
    fn version_tags_are_recognised() {
        let cases = [
            ("1.2.3", true),
            ("1.2", true),
            ("1", true),
            ("0", true),
            ("v1.2.3", true),
            ("v1", true),
            ("1.2.3-rc.1", true),
            ("2.0.0-beta.1", true),
            ("1-alpha", true),
            ("v", false),
            ("1.2.3.4", false),
            ("01.2.3", false),
            ("1.02", false),
            ("1.x", false),
            ("1.2.3-", false),
            ("version1", false),
            ("latest", false),
            ("V1.2.3", false),
            // All-digit SHAs are rare but possible: not a major version.
            ("1234567890123456789012345678901234567890", false),
            ("0123456789abcdef0123456789abcdef01234567", false),
        ];
        for (tag, expected) in cases {
            assert_eq!(is_version_tag(tag), expected, "{tag}");
        }
    }

    #[test]
    fn protect_patterns_are_never_deleted() {
        let listing = [
            tag("release-2024", &digest(1), 900),
            tag(&sha(2), &digest(2), 900),
            tag(&sha(3), &digest(3), 800),
        ];
        let rules = Rules {
            keep: 0,
            prunable: patterns(&["*"]),
            protect: patterns(&["release-*", "00000000000000000000000000000000000000*2"]),
            ..Rules::new(NOW)
        };
        let plan = plan(&listing, &rules);
        assert_eq!(plan.delete, [deletion(&digest(3), &[&sha(3)])]);
        assert_eq!(
            plan.kept,
            [
                kept(
                    &sha(2),
                    protected("protect pattern `00000000000000000000000000000000000000*2`")
                ),
                kept("release-2024", protected("protect pattern `release-*`")),
            ]
        );
    }

    #[test]
    fn only_prunable_tags_are_candidates() {
        let short = sha(3)[..39].to_string();
        let upper = "0123456789ABCDEF0123456789ABCDEF01234567";
        let long = format!("{}0", sha(5));
        let listing = [
            tag("main", &digest(1), 500),
            tag("pr-7", &digest(2), 500),
            tag(&short, &digest(3), 500),
            tag(upper, &digest(4), 500),
            tag(&long, &digest(5), 500),
            tag(&sha(6), &digest(6), 500),
        ];
        // (prunable, deleted, not prunable)
        let cases: [(&[&str], Deletion, Vec<&str>); 2] = [
            (
                &[],
                deletion(&digest(6), &[&sha(6)]),
                vec![&short, &long, upper, "main", "pr-7"],
            ),
            (
                &["pr-*"],
                deletion(&digest(2), &["pr-7"]),
                vec![&short, &long, &listing[5].tag, upper, "main"],
            ),
        ];
        for (prunable, deleted, not_prunable) in cases {
            let rules = Rules {
                keep: 0,
                prunable: patterns(prunable),
                ..Rules::new(NOW)
            };
            let plan = plan(&listing, &rules);
            assert_eq!(plan.delete, [deleted], "{prunable:?}");
            let expected: KeptTags = not_prunable
                .iter()
                .map(|t| kept(t, Kept::NotPrunable))
                .collect();
            assert_eq!(plan.kept, expected, "{prunable:?}");
        }
    }

    #[test]
    fn the_newest_keep_candidates_are_kept() {
        // Ages 10, 20, …, 50 days: sha(1) is the newest.
        let listing: Vec<TagInfo> = (1..=5)
            .map(|n| tag(&sha(n), &digest(n), i64::from(n) * 10))
            .collect();
        // (keep, kept as newest, deleted oldest first)
        let cases: [(usize, &[u32], &[u32]); 4] = [
            (0, &[], &[5, 4, 3, 2, 1]),
            (2, &[1, 2], &[5, 4, 3]),
            (5, &[1, 2, 3, 4, 5], &[]),
            (50, &[1, 2, 3, 4, 5], &[]),
        ];
        for (keep, newest, deleted) in cases {
            let plan = plan(&listing, &rules(keep));
            let expected: Vec<Deletion> = deleted
                .iter()
                .map(|&n| deletion(&digest(n), &[&sha(n)]))
                .collect();
            assert_eq!(plan.delete, expected, "keep {keep}");
            let expected: KeptTags = newest
                .iter()
                .map(|&n| kept(&sha(n), Kept::Newest))
                .collect();
            assert_eq!(plan.kept, expected, "keep {keep}");
        }
    }

    #[test]
    fn ties_are_broken_by_tag_name() {
        let listing: Vec<TagInfo> = (1..=3).map(|n| tag(&sha(n), &digest(n), 30)).collect();
        let mut reversed = listing.clone();
        reversed.reverse();
        for listing in [listing, reversed] {
            let plan = plan(&listing, &rules(1));
            assert_eq!(plan.kept, [kept(&sha(1), Kept::Newest)]);
            assert_eq!(
                plan.delete,
                [
                    deletion(&digest(2), &[&sha(2)]),
                    deletion(&digest(3), &[&sha(3)])
                ]
            );
        }
    }

    #[test]
    fn a_candidate_of_unknown_age_is_kept() {
        let unknown = [
            None,
            // `SOURCE_DATE_EPOCH=0`, Nix, ko: the epoch is a placeholder.
            Some(0),
            // Go's zero time, 0001-01-01.
            Some(-62_135_596_800),
            // From a skewed clock.
            Some(NOW + 60),
        ];
        let mut listing: Vec<TagInfo> = unknown
            .iter()
            .enumerate()
            .map(|(n, &pushed)| TagInfo {
                pushed,
                ..tag(&sha(n as u32), &digest(n as u32), 0)
            })
            .collect();
        listing.push(tag(&sha(10), &digest(10), 100));
        listing.push(tag(&sha(11), &digest(11), 200));
        let plan = plan(&listing, &rules(1));
        // The unknown ones don't use up `keep`: sha(10) is still the newest.
        assert_eq!(plan.delete, [deletion(&digest(11), &[&sha(11)])]);
        assert_eq!(
            plan.kept,
            [
                kept(&sha(0), Kept::UnknownAge),
                kept(&sha(1), Kept::UnknownAge),
                kept(&sha(2), Kept::UnknownAge),
                kept(&sha(3), Kept::UnknownAge),
                kept(&sha(10), Kept::Newest),
            ]
        );
    }

    #[test]
    fn older_than_keeps_candidates_pushed_at_or_after_it() {
        let limit = NOW - 30 * DAY;
        let listing = [
            tag(&sha(1), &digest(1), 29),
            tag(&sha(2), &digest(2), 30),
            tag(&sha(3), &digest(3), 31),
        ];
        // (keep, kept, deleted)
        let cases: [(usize, KeptTags, Vec<Deletion>); 2] = [
            (
                0,
                vec![
                    kept(&sha(1), Kept::TooRecent),
                    kept(&sha(2), Kept::TooRecent),
                ],
                vec![deletion(&digest(3), &[&sha(3)])],
            ),
            (
                1,
                vec![kept(&sha(1), Kept::Newest), kept(&sha(2), Kept::TooRecent)],
                vec![deletion(&digest(3), &[&sha(3)])],
            ),
        ];
        for (keep, expected_kept, expected_delete) in cases {
            let rules = Rules {
                older_than: Some(limit),
                ..rules(keep)
            };
            let plan = plan(&listing, &rules);
            assert_eq!(plan.kept, expected_kept, "keep {keep}");
            assert_eq!(plan.delete, expected_delete, "keep {keep}");
        }
    }

    #[test]
    fn a_digest_is_deleted_only_when_all_its_tags_are_deletable() {
        let shared = digest(0xabc);
        let upper = shared.to_ascii_uppercase().replace("SHA256", "sha256");
        // (case, listing, deleted, kept) with keep 1
        let cases: [(&str, Vec<TagInfo>, Vec<Deletion>, KeptTags); 5] = [
            (
                "a rebuild put the newest and an old SHA on one manifest",
                vec![
                    tag(&sha(1), &shared, 1),
                    tag(&sha(2), &digest(2), 2),
                    tag(&sha(3), &shared, 3),
                ],
                vec![deletion(&digest(2), &[&sha(2)])],
                vec![kept(&sha(1), Kept::Newest), kept(&sha(3), shares(&sha(1)))],
            ),
            (
                "two old SHAs on one manifest go together",
                vec![
                    tag(&sha(1), &digest(1), 1),
                    tag(&sha(2), &shared, 2),
                    tag(&sha(3), &shared, 3),
                ],
                vec![deletion(&shared, &[&sha(2), &sha(3)])],
                vec![kept(&sha(1), Kept::Newest)],
            ),
            (
                "`latest` on an old build",
                vec![
                    tag(&sha(1), &digest(1), 1),
                    tag(&sha(2), &shared, 200),
                    tag("latest", &shared, 200),
                ],
                vec![],
                vec![
                    kept(&sha(1), Kept::Newest),
                    kept(&sha(2), shares("latest")),
                    kept("latest", protected("`latest`")),
                ],
            ),
            (
                "a branch tag on an old build",
                vec![
                    tag(&sha(1), &digest(1), 1),
                    tag(&sha(2), &shared, 200),
                    tag(&sha(3), &shared, 300),
                    tag("main", &shared, 200),
                ],
                vec![],
                vec![
                    kept(&sha(1), Kept::Newest),
                    kept(&sha(2), shares("main")),
                    kept(&sha(3), shares("main")),
                    kept("main", Kept::NotPrunable),
                ],
            ),
            (
                "one manifest spelled in two cases",
                vec![
                    tag(&sha(1), &digest(1), 1),
                    tag(&sha(2), &upper, 200),
                    tag("1.0.0", &shared, 200),
                ],
                vec![],
                vec![
                    kept(&sha(1), Kept::Newest),
                    kept(&sha(2), shares("1.0.0")),
                    kept("1.0.0", protected("semantic version")),
                ],
            ),
        ];
        for (case, listing, deleted, expected_kept) in cases {
            let plan = plan(&listing, &rules(1));
            assert_eq!(plan.delete, deleted, "{case}");
            assert_eq!(plan.kept, expected_kept, "{case}");
        }
    }

    #[test]
    fn children_of_a_kept_index_are_never_deleted() {
        let listing = [
            // The current multi-arch release and its per-platform SHA tags.
            index(&sha(9), &digest(9), 1, &[digest(20), digest(21)]),
            tag("latest", &digest(9), 1),
            tag(&sha(20), &digest(20), 300),
            // An old release whose child is itself an index (nested).
            index("1.0.0", &digest(30), 400, &[digest(31)]),
            index(&sha(31), &digest(31), 400, &[digest(32)]),
            tag(&sha(32), &digest(32), 400),
            // Not a child of anything kept.
            tag(&sha(40), &digest(40), 500),
        ];
        let plan = plan(&listing, &rules(1));
        assert_eq!(plan.delete, [deletion(&digest(40), &[&sha(40)])]);
        assert_eq!(
            plan.kept,
            [
                kept(&sha(9), Kept::Newest),
                kept(&sha(20), Kept::ChildOfKept { index_tag: sha(9) }),
                kept(
                    &sha(31),
                    Kept::ChildOfKept {
                        index_tag: "1.0.0".into()
                    }
                ),
                kept(&sha(32), Kept::ChildOfKept { index_tag: sha(31) }),
                kept("1.0.0", protected("semantic version")),
                kept("latest", protected("`latest`")),
            ]
        );
    }

    #[test]
    fn deleting_an_index_deletes_its_untagged_children_and_leaves_tagged_ones_to_their_tags() {
        let listing = [
            index(
                &sha(1),
                &digest(1),
                100,
                &[digest(10), digest(11), digest(12)],
            ),
            // A kept tag on a child: deleting the index does not touch it.
            tag("1.0.0", &digest(10), 100),
            // An old tag on a child: deleted on its own merit, after the
            // index although it is older.
            tag(&sha(11), &digest(11), 300),
            // digest(12) is untagged: it was pushed for the index alone
            // and goes right after it.
            tag(&sha(2), &digest(2), 200),
        ];
        let plan = plan(&listing, &rules(0));
        assert_eq!(
            plan.delete,
            [
                deletion(&digest(2), &[&sha(2)]),
                deletion(&digest(1), &[&sha(1)]),
                Deletion {
                    of: vec![digest(1)],
                    ..deletion(&digest(11), &[&sha(11)])
                },
                Deletion {
                    of: vec![digest(1)],
                    ..deletion(&digest(12), &[])
                },
            ]
        );
        let rechecked = recheck(plan.clone(), &[(sha(2), digest(2))]);
        assert_eq!(rechecked.delete, plan.delete, "nothing moved: all stay");
        assert_eq!(plan.kept, [kept("1.0.0", protected("semantic version"))]);
        // `latest` moved to the index meanwhile: the index stays, and so
        // do its children, tagged or not, which it still lists.
        let rescued = recheck(plan.clone(), &[("latest".into(), digest(1))]);
        assert_eq!(rescued.delete, [deletion(&digest(2), &[&sha(2)])]);
        assert!(
            rescued.kept.contains(&kept(
                &sha(11),
                Kept::ChildOfKept {
                    index_tag: "latest".into()
                }
            )),
            "{:?}",
            rescued.kept
        );
        assert!(rescued.kept.contains(&kept(&sha(1), shares("latest"))));
    }

    /// Every rule at once, for the convergence tests.
    fn mixed_listing() -> Vec<TagInfo> {
        let mut listing: Vec<TagInfo> = (1..=10)
            .map(|n| tag(&sha(n), &digest(n), i64::from(n) * 10))
            .collect();
        listing.extend([
            tag("latest", &digest(1), 10),
            // A rebuild: one manifest for the newest and an old commit.
            tag(&sha(50), &digest(2), 500),
            // An old multi-arch build with a tagged and an untagged child.
            index(&sha(60), &digest(60), 600, &[digest(61), digest(62)]),
            tag(&sha(61), &digest(61), 700),
            // A kept release whose child has an old SHA tag.
            index("1.0.0", &digest(70), 800, &[digest(71)]),
            tag(&sha(71), &digest(71), 800),
            TagInfo {
                pushed: None,
                ..tag(&sha(80), &digest(80), 0)
            },
            tag("main", &digest(90), 900),
            tag(&sha(91), &digest(91), 2),
        ]);
        listing
    }

    #[test]
    fn replanning_after_applying_the_plan_deletes_nothing() {
        let listing = mixed_listing();
        let rules = rules(3);
        let first = plan(&listing, &rules);
        assert_eq!(
            first.delete,
            [
                // The index before its child, then oldest first.
                deletion(&digest(60), &[&sha(60)]),
                deletion(&digest(10), &[&sha(10)]),
                deletion(&digest(9), &[&sha(9)]),
                deletion(&digest(8), &[&sha(8)]),
                deletion(&digest(7), &[&sha(7)]),
                deletion(&digest(6), &[&sha(6)]),
                deletion(&digest(5), &[&sha(5)]),
                deletion(&digest(4), &[&sha(4)]),
                deletion(&digest(3), &[&sha(3)]),
                Deletion {
                    of: vec![digest(60)],
                    ..deletion(&digest(61), &[&sha(61)])
                },
                Deletion {
                    of: vec![digest(60)],
                    ..deletion(&digest(62), &[])
                },
            ]
        );
        let left = apply(&listing, &first.delete);
        let again = plan(&left, &rules);
        assert_eq!(again.delete, []);
        assert_eq!(again.kept, first.kept);
    }

    #[test]
    fn a_partial_application_converges_to_the_same_end_state() {
        let listing = mixed_listing();
        let rules = rules(3);
        let first = plan(&listing, &rules);
        let end = tag_names(&apply(&listing, &first.delete));
        let n = first.delete.len();
        // Prefixes (an interrupted run), suffixes and every other deletion
        // (deletions that failed and will be retried).
        let mut subsets: Vec<Vec<Deletion>> = (0..=n)
            .flat_map(|k| [first.delete[..k].to_vec(), first.delete[k..].to_vec()])
            .collect();
        subsets.push(first.delete.iter().step_by(2).cloned().collect());
        for done in subsets {
            let partial = apply(&listing, &done);
            let rest = plan(&partial, &rules);
            // The same deletions, less those done; the order may differ (a
            // child whose index is gone is no longer held back). An
            // untagged child whose index is gone is out of sight; a child
            // whose tag went first is planned again as untagged, which the
            // registry answers as already gone. A child no longer names an
            // index that is gone.
            let what = |d: &Deletion| (d.digest.clone(), d.tags.clone());
            let orphaned = |d: &Deletion| {
                d.tags.is_empty()
                    && listing.iter().any(|i| {
                        i.children.contains(&d.digest) && done.iter().any(|x| x.digest == i.digest)
                    })
            };
            let remaining: BTreeSet<_> = first
                .delete
                .iter()
                .filter(|d| !done.contains(d) && !orphaned(d))
                .map(what)
                .collect();
            let again: BTreeSet<_> = rest
                .delete
                .iter()
                .filter(|d| !(d.tags.is_empty() && done.iter().any(|x| x.digest == d.digest)))
                .map(what)
                .collect();
            assert_eq!(again, remaining);
            assert_eq!(tag_names(&apply(&partial, &rest.delete)), end);
            assert_eq!(rest.kept, first.kept);
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_listing_order() {
        let listing = mixed_listing();
        let expected = plan(&listing, &rules(3));
        let mut reversed = listing.clone();
        reversed.reverse();
        let mut rotated = listing.clone();
        rotated.rotate_left(7);
        // A paginated listing can repeat an entry when a push moves tags.
        let mut repeated = listing.clone();
        repeated.extend(listing[10..14].iter().cloned());
        for other in [reversed, rotated, repeated] {
            assert_eq!(plan(&other, &rules(3)), expected);
        }
    }

    #[test]
    fn an_empty_listing_plans_nothing() {
        assert_eq!(plan(&[], &Rules::new(NOW)), Plan::default());
    }

    #[test]
    fn a_hundred_and_twenty_sha_tags_keep_the_newest_fifty() {
        // One build an hour; listed in a scrambled order (37 is coprime to
        // 120, so this visits every build once).
        let listing_order = (0..120u32).map(|i| (i * 37) % 120);
        let mut listing: Vec<TagInfo> = listing_order
            .map(|n| TagInfo {
                pushed: Some(NOW - 200 * DAY + i64::from(n) * 3_600),
                ..tag(&sha(n), &digest(n), 0)
            })
            .collect();
        // `latest` on the newest build, the 1.0.0 release on an old one.
        listing.push(TagInfo {
            pushed: Some(NOW - 200 * DAY + 119 * 3_600),
            ..tag("latest", &digest(119), 0)
        });
        for version in ["1.0.0", "1.0", "1"] {
            listing.push(TagInfo {
                pushed: Some(NOW - 200 * DAY + 20 * 3_600 + 60),
                ..tag(version, &digest(20), 0)
            });
        }

        // Independently: the digests of all but the newest 50 SHA tags,
        // minus those another tag names.
        let mut shas: Vec<&TagInfo> = listing.iter().filter(|t| t.tag.len() == 40).collect();
        shas.sort_by_key(|t| Reverse(t.pushed));
        let old: BTreeSet<&str> = shas[50..].iter().map(|t| t.digest.as_str()).collect();
        let named: BTreeSet<&str> = listing
            .iter()
            .filter(|t| t.tag.len() != 40)
            .map(|t| t.digest.as_str())
            .collect();
        let expected: BTreeSet<&str> = old.difference(&named).copied().collect();
        assert_eq!(expected.len(), 69);

        let plan = plan(&listing, &Rules::new(NOW));
        let deleted: BTreeSet<&str> = plan.delete.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(deleted, expected);
        assert_eq!(plan.delete.len(), 69);
        assert_eq!(plan.delete[0], deletion(&digest(0), &[&sha(0)]));
        assert_eq!(plan.delete[68], deletion(&digest(69), &[&sha(69)]));
        assert_eq!(plan.deleted_tags().count(), 69);

        assert_eq!(plan.kept.len(), 55);
        let reason = |tag: &str| {
            plan.kept
                .iter()
                .find(|(t, _)| t == tag)
                .map(|(_, k)| k.clone())
        };
        assert_eq!(reason(&sha(20)), Some(shares("1")));
        assert_eq!(reason("latest"), Some(protected("`latest`")));
        assert_eq!(reason("1.0"), Some(protected("semantic version")));
        assert_eq!(reason(&sha(119)), Some(Kept::Newest));
        assert_eq!(reason(&sha(70)), Some(Kept::Newest));
        assert_eq!(reason(&sha(69)), None);
        let newest = plan.kept.iter().filter(|(_, k)| *k == Kept::Newest).count();
        assert_eq!(newest, 50);

        let again = plan_again(&listing, &plan);
        assert_eq!(again.delete, []);
    }

    fn plan_again(listing: &[TagInfo], first: &Plan) -> Plan {
        plan(&apply(listing, &first.delete), &Rules::new(NOW))
    }

    #[test]
    fn a_tag_moved_onto_a_doomed_digest_saves_it() {
        let listing = vec![
            tag(&sha(1), &digest(1), 30),
            tag(&sha(2), &digest(2), 20),
            tag(&sha(3), &digest(3), 10),
        ];
        let first = plan(&listing, &rules(1));
        assert_eq!(
            first.delete,
            vec![
                deletion(&digest(1), &[&sha(1)]),
                deletion(&digest(2), &[&sha(2)])
            ]
        );
        // While we read, someone rolled `latest` back to the oldest image.
        let now = vec![
            (
                "latest".to_string(),
                digest(1).to_uppercase().replace("SHA256", "sha256"),
            ),
            (sha(3), digest(3)),
            // The doomed tags themselves don't save their own digest.
            (sha(2), digest(2)),
        ];
        let checked = recheck(first, &now);
        assert_eq!(checked.delete, vec![deletion(&digest(2), &[&sha(2)])]);
        assert!(checked.kept.contains(&kept(&sha(1), shares("latest"))));
        assert!(checked.kept.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn an_image_rescued_by_the_recheck_keeps_its_signatures() {
        let signature = Deletion {
            digest: digest(7),
            tags: vec![attached(1, "att"), attached(1, "sig")],
            of: Vec::new(),
        };
        let other = Deletion {
            digest: digest(8),
            tags: vec![attached(2, "sig")],
            of: Vec::new(),
        };
        let first = Plan {
            delete: vec![
                signature.clone(),
                other.clone(),
                deletion(&digest(1), &[&sha(1)]),
                deletion(&digest(2), &[&sha(2)]),
            ],
            kept: Vec::new(),
        };
        let now = vec![("latest".to_string(), digest(1))];
        let checked = recheck(first, &now);
        assert_eq!(
            checked.delete,
            vec![other, deletion(&digest(2), &[&sha(2)])],
            "image 2 and its signature still go"
        );
        for tag in &signature.tags {
            assert!(
                checked
                    .kept
                    .contains(&kept(tag, Kept::Attached { to: digest(1) })),
                "{tag}: {:?}",
                checked.kept
            );
        }
    }

    #[test]
    fn a_rescued_index_spelled_in_upper_case_keeps_its_child_and_signature() {
        // Hex letters, spelled in upper case by the registry.
        let (index_n, child_n) = (0xabc1, 0xabc2);
        let upper = |n| digest(n).to_uppercase().replace("SHA256", "sha256");
        let listing = vec![
            index(&sha(1), &upper(index_n), 30, &[upper(child_n)]),
            tag(&attached(index_n, "sig"), &digest(11), 30),
            tag(&sha(3), &digest(3), 10),
        ];
        let first = plan(&listing, &rules(1));
        let mut planned = first.delete.clone();
        planned.sort();
        let child = Deletion {
            digest: digest(child_n),
            tags: Vec::new(),
            of: vec![digest(index_n)],
        };
        assert_eq!(
            planned,
            vec![
                deletion(&digest(11), &[&attached(index_n, "sig")]),
                deletion(&upper(index_n), &[&sha(1)]),
                child.clone(),
            ]
        );
        // `latest` rolled back onto the index while the listing was read.
        let now = vec![("latest".to_string(), upper(index_n)), (sha(3), digest(3))];
        let rescued = |plan: Plan| {
            let checked = recheck(plan, &now);
            assert_eq!(checked.delete, Vec::new(), "{:?}", checked.delete);
            assert!(checked.kept.contains(&kept(&sha(1), shares("latest"))));
            assert!(checked.kept.contains(&kept(
                &attached(index_n, "sig"),
                Kept::Attached {
                    to: digest(index_n)
                }
            )));
        };
        rescued(first.clone());
        // A plan built elsewhere (the type is public) may spell `of` as
        // the listing did.
        let mut spelled = first;
        for deletion in &mut spelled.delete {
            if deletion.digest == child.digest {
                deletion.of = vec![upper(index_n)];
            }
        }
        rescued(spelled);
    }

    #[test]
    fn where_tags_go_alone_sharing_keeps_nothing() {
        let child = digest(9);
        let listing = vec![
            tag(&sha(1), &digest(1), 30),
            tag("latest", &digest(1), 30),
            index(&sha(2), &digest(2), 20, std::slice::from_ref(&child)),
            tag(&sha(3), &child, 25),
            tag(&sha(4), &digest(4), 1),
        ];
        let hub = Rules {
            tags_only: true,
            ..rules(1)
        };
        let planned = plan(&listing, &hub);
        let mut gone: Vec<&str> = planned.deleted_tags().collect();
        gone.sort();
        assert_eq!(gone, [sha(1), sha(2), sha(3)]);
        assert!(planned.delete.iter().all(|d| d.tags.len() == 1));
        assert!(
            planned
                .kept
                .contains(&kept("latest", protected("`latest`")))
        );
        // The same listing on an OCI registry keeps what shares or is a child.
        let oci: Vec<String> = plan(&listing, &rules(1))
            .deleted_tags()
            .map(str::to_owned)
            .collect();
        assert!(!oci.contains(&sha(1)) && oci.contains(&sha(2)), "{oci:?}");
    }

    #[test]
    fn an_orphans_signatures_are_reported_and_go_only_when_asked() {
        let image = digest(1);
        let gone = digest(2);
        let referrers = |d: &str| d.replacen(':', "-", 1);
        let tags = vec![
            tag("latest", &image, 1),
            tag(&crate::supply::cosign::tag(&image, "sig"), &digest(10), 1),
            tag(&crate::supply::cosign::tag(&gone, "sig"), &digest(11), 9),
            tag(&crate::supply::cosign::tag(&gone, "att"), &digest(12), 9),
            tag(&referrers(&gone), &digest(13), 9),
        ];
        let asked = |delete_orphans| Rules {
            gone: BTreeSet::from([gone.clone()]),
            delete_orphans,
            ..rules(5)
        };
        let kept = plan(&tags, &asked(false));
        assert!(kept.delete.is_empty(), "{kept:?}");
        let orphans: Vec<&str> = kept
            .kept
            .iter()
            .filter(|(_, k)| matches!(k, Kept::Orphan { to } if *to == gone))
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(orphans.len(), 3, "{kept:?}");
        let deleted = plan(&tags, &asked(true));
        let digests: Vec<&str> = deleted.delete.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests.len(), 3, "{deleted:?}");
        for d in [digest(11), digest(12), digest(13)] {
            assert!(digests.contains(&d.as_str()), "{d} in {digests:?}");
        }
        assert!(
            deleted
                .kept
                .iter()
                .any(|(t, k)| t.ends_with(".sig") && *k == Kept::Attached { to: image.clone() }),
            "the live image's signature stays: {deleted:?}"
        );
    }

    #[test]
    fn the_signatures_of_a_deleted_indexs_platform_images_go_with_them() {
        let (old, new) = (digest(1), digest(2));
        let (amd64, arm64, shared) = (digest(3), digest(4), digest(5));
        let fallback = |d: &str| d.replacen(':', "-", 1);
        let tags = vec![
            index(&sha(1), &old, 30, &[amd64.clone(), shared.clone()]),
            index(&sha(2), &new, 1, &[arm64.clone(), shared.clone()]),
            tag(&crate::supply::cosign::tag(&amd64, "att"), &digest(10), 30),
            index(&fallback(&amd64), &digest(11), 30, &[digest(12)]),
            tag(&crate::supply::cosign::tag(&arm64, "att"), &digest(13), 1),
            tag(&crate::supply::cosign::tag(&shared, "sig"), &digest(14), 30),
        ];
        let planned = plan(&tags, &rules(1));
        let mut deleted: Vec<&str> = planned.delete.iter().map(|d| d.digest.as_str()).collect();
        deleted.sort_unstable();
        assert_eq!(
            deleted,
            [&old, &amd64, &digest(10), &digest(11), &digest(12)].map(String::as_str),
            "{planned:?}"
        );
        for (tag, to) in [
            (crate::supply::cosign::tag(&arm64, "att"), arm64),
            (crate::supply::cosign::tag(&shared, "sig"), shared),
        ] {
            assert!(
                planned.kept.contains(&kept(&tag, Kept::Attached { to })),
                "{tag}: {planned:?}"
            );
        }
        // The recheck saving the old index saves its platform images' too.
        let checked = recheck(planned, &[("latest".to_owned(), old.clone())]);
        assert!(checked.delete.is_empty(), "{checked:?}");
    }
}
