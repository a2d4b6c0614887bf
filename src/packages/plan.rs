//! Which package versions `cleanup` deletes on GHCR (pure).
//!
//! Retention plans tags exactly as on any registry ([`crate::retention`]).
//! A package also holds versions no tag names: the children of indexes
//! (platform images, buildx attestation manifests), OCI 1.1 referrers
//! (signatures, attestations with a `subject`), and leftovers. Deleting
//! one a kept image needs breaks that image, so:
//!
//! - whatever a kept version reaches is kept: its children, their
//!   children, and every referrer whose subject is kept (and what those
//!   reach in turn), whatever the plan said;
//! - the plan's deletions go (an index before its children);
//! - a referrer whose subject is not kept goes with it, and so does what
//!   a going version lists that nothing kept reaches;
//! - any other untagged version goes only with `untagged: delete`;
//! - a version the first listing didn't have (pushed while `cleanup` ran)
//!   stays, with all it reaches.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::inventory::Stored;
use crate::packages::Version;
use crate::retention::{Kept, Plan};

/// `untagged`: what becomes of versions nothing kept references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Untagged {
    Keep,
    Delete,
}

/// Why a version goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goes {
    /// Retention deletes its tags.
    Tags,
    /// Listed by this going index (digest).
    ChildOf(String),
    /// A referrer of this digest, which is not kept.
    ReferrerOf(String),
    /// Untagged, unreferenced, and `untagged: delete`.
    Untagged,
}

/// Why a version stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stays {
    /// A tag on it is kept.
    Tagged,
    /// Reached from the kept version with this tag (or digest).
    ChildOfKept(String),
    /// A referrer of this kept digest.
    ReferrerOfKept(String),
    /// Untagged, unreferenced, and `untagged: keep`.
    Untagged,
    /// Not in the first listing: pushed while cleanup ran.
    New,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Goes(Goes),
    Stays(Stays),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub version: Version,
    pub fate: Fate,
}

/// Every version of `versions` with its fate: first those that go, in
/// deletion order (the plan's, then each going version before what it
/// lists), then those that stay, by digest. `manifests` holds what the
/// registry said of each digest (children, subject); `known`, the digests
/// of the first listing.
pub fn judge(
    versions: &[Version],
    plan: &Plan,
    manifests: &BTreeMap<String, Stored>,
    known: &BTreeSet<String>,
    untagged: Untagged,
) -> Vec<Judged> {
    let doomed: BTreeSet<String> = plan
        .delete
        .iter()
        .map(|d| d.digest.to_ascii_lowercase())
        .collect();
    let listed: BTreeMap<&str, &Version> =
        versions.iter().map(|v| (v.digest.as_str(), v)).collect();
    let children = |digest: &str| -> Vec<String> {
        manifests
            .get(digest)
            .map(|s| s.children.iter().map(|c| c.to_ascii_lowercase()).collect())
            .unwrap_or_default()
    };
    let subject = |digest: &str| -> Option<String> {
        manifests
            .get(digest)
            .and_then(|s| s.subject.as_ref())
            .map(|s| s.to_ascii_lowercase())
    };

    let mut stays: BTreeMap<String, Stays> = BTreeMap::new();
    for v in versions {
        if !known.contains(&v.digest) {
            stays.insert(v.digest.clone(), Stays::New);
        } else if !v.tags.is_empty() && !doomed.contains(&v.digest) {
            stays.insert(v.digest.clone(), Stays::Tagged);
        }
    }
    keep_what_is_reached(versions, &mut stays, &children, &subject);

    let mut goes: BTreeMap<String, Goes> = BTreeMap::new();
    for v in versions.iter().filter(|v| !stays.contains_key(&v.digest)) {
        if doomed.contains(&v.digest) {
            let index = plan
                .delete
                .iter()
                .find(|d| d.digest.eq_ignore_ascii_case(&v.digest))
                .and_then(|d| d.of.first().cloned());
            let why = match index {
                Some(index) if v.tags.is_empty() => Goes::ChildOf(index),
                _ => Goes::Tags,
            };
            goes.insert(v.digest.clone(), why);
        } else if let Some(about) = subject(&v.digest) {
            goes.insert(v.digest.clone(), Goes::ReferrerOf(about));
        }
    }
    // What a going version lists goes too, unless kept.
    let mut queue: VecDeque<String> = goes.keys().cloned().collect();
    while let Some(parent) = queue.pop_front() {
        for child in children(&parent) {
            if listed.contains_key(child.as_str())
                && !stays.contains_key(&child)
                && !goes.contains_key(&child)
            {
                goes.insert(child.clone(), Goes::ChildOf(parent.clone()));
                queue.push_back(child);
            }
        }
    }
    for v in versions {
        if stays.contains_key(&v.digest) || goes.contains_key(&v.digest) {
            continue;
        }
        if untagged == Untagged::Delete {
            goes.insert(v.digest.clone(), Goes::Untagged);
        } else {
            stays.insert(v.digest.clone(), Stays::Untagged);
        }
    }

    let order = deletion_order(plan, &goes, &children);
    let mut judged: Vec<Judged> = order
        .into_iter()
        .filter_map(|digest| {
            let version = (*listed.get(digest.as_str())?).clone();
            let why = goes.get(&digest)?.clone();
            Some(Judged {
                version,
                fate: Fate::Goes(why),
            })
        })
        .collect();
    for (digest, why) in stays {
        if let Some(version) = listed.get(digest.as_str()) {
            judged.push(Judged {
                version: (*version).clone(),
                fate: Fate::Stays(why),
            });
        }
    }
    judged
}

/// Adds to `stays` everything a staying version reaches: children, and
/// referrers of what stays; each round adds at least one version, so the
/// rounds are bounded by the versions.
fn keep_what_is_reached(
    versions: &[Version],
    stays: &mut BTreeMap<String, Stays>,
    children: &impl Fn(&str) -> Vec<String>,
    subject: &impl Fn(&str) -> Option<String>,
) {
    let root_name = |digest: &str, stays: &BTreeMap<String, Stays>| -> String {
        match stays.get(digest) {
            Some(Stays::ChildOfKept(root)) => root.clone(),
            _ => versions
                .iter()
                .find(|v| v.digest == digest)
                .and_then(|v| v.tags.first().cloned())
                .unwrap_or_else(|| digest.to_owned()),
        }
    };
    let mut queue: VecDeque<String> = stays.keys().cloned().collect();
    for _ in 0..=versions.len() {
        while let Some(parent) = queue.pop_front() {
            let root = root_name(&parent, stays);
            for child in children(&parent) {
                if !stays.contains_key(&child) {
                    stays.insert(child.clone(), Stays::ChildOfKept(root.clone()));
                    queue.push_back(child);
                }
            }
        }
        let referrers: Vec<(String, String)> = versions
            .iter()
            .filter(|v| !stays.contains_key(&v.digest))
            .filter_map(|v| {
                let about = subject(&v.digest)?;
                stays
                    .contains_key(&about)
                    .then(|| (v.digest.clone(), about))
            })
            .collect();
        if referrers.is_empty() {
            break;
        }
        for (digest, about) in referrers {
            stays.insert(digest.clone(), Stays::ReferrerOfKept(about));
            queue.push_back(digest);
        }
    }
}

/// The plan's deletions in its order, then the other going versions, each
/// after every going version that lists it.
fn deletion_order(
    plan: &Plan,
    goes: &BTreeMap<String, Goes>,
    children: &impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    for d in &plan.delete {
        let digest = d.digest.to_ascii_lowercase();
        if goes.contains_key(&digest) && placed.insert(digest.clone()) {
            order.push(digest);
        }
    }
    let mut rest: Vec<&String> = goes.keys().filter(|d| !placed.contains(*d)).collect();
    let parents: BTreeMap<String, Vec<&String>> = {
        let mut parents: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for parent in goes.keys() {
            for child in children(parent) {
                parents.entry(child).or_default().push(parent);
            }
        }
        parents
    };
    // Bounded: every round places one version at least, or gives up on
    // a cycle (content addressing rules them out; a bad answer might not).
    while !rest.is_empty() {
        let (ready, waiting): (Vec<&String>, Vec<&String>) = rest.iter().partition(|d| {
            parents.get(d.as_str()).is_none_or(|ps| {
                ps.iter()
                    .all(|p| placed.contains(*p) || !goes.contains_key(*p))
            })
        });
        let ready = if ready.is_empty() {
            waiting.clone()
        } else {
            ready
        };
        for digest in &ready {
            placed.insert((*digest).clone());
            order.push((*digest).clone());
        }
        rest = waiting
            .into_iter()
            .filter(|d| !placed.contains(*d))
            .collect();
    }
    order
}

/// The plan as it stands once the versions are judged: a deletion whose
/// version stays (something kept reaches it) is dropped and its tags are
/// kept, saying why.
pub fn reconcile(mut plan: Plan, judged: &[Judged]) -> Plan {
    let staying: BTreeMap<&str, &Stays> = judged
        .iter()
        .filter_map(|j| match &j.fate {
            Fate::Stays(why) => Some((j.version.digest.as_str(), why)),
            Fate::Goes(_) => None,
        })
        .collect();
    let mut rescued = Vec::new();
    plan.delete.retain(|d| {
        let Some(why) = staying.get(d.digest.to_ascii_lowercase().as_str()) else {
            return true;
        };
        let kept = match why {
            Stays::ReferrerOfKept(to) => Kept::Attached { to: to.clone() },
            Stays::ChildOfKept(root) => Kept::ChildOfKept {
                index_tag: root.clone(),
            },
            // A doomed digest was in the first listing with its tags gone
            // from the plan: only what kept versions reach holds one.
            Stays::Tagged | Stays::Untagged | Stays::New => Kept::UnknownAge,
        };
        rescued.extend(d.tags.iter().map(|t| (t.clone(), kept.clone())));
        false
    });
    plan.kept.extend(rescued);
    plan.kept.sort_by(|a, b| a.0.cmp(&b.0));
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::retention::Deletion;

    fn digest(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    fn version(n: u32, tags: &[&str]) -> Version {
        Version {
            id: u64::from(n) + 1000,
            digest: digest(n),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created: Some(1_700_000_000),
        }
    }

    fn index(children: &[u32]) -> Stored {
        Stored {
            children: children.iter().map(|&c| digest(c)).collect(),
            ..Stored::default()
        }
    }

    fn referrer(of: u32) -> Stored {
        Stored {
            subject: Some(digest(of)),
            ..Stored::default()
        }
    }

    fn deletion(n: u32, tags: &[&str], of: Option<u32>) -> Deletion {
        Deletion {
            digest: digest(n),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            of: of.map(digest).into_iter().collect(),
        }
    }

    /// The package: kept index 1 (latest: image 2, attestation 3), doomed
    /// index 10 (images 11, attestation 12), a referrer 20 of 1 and 21 of
    /// 10, the referrers fallback index 30 of 1 (tagged, kept) listing
    /// referrer 31, an orphan 40, and 50 nobody listed before.
    fn package() -> (Vec<Version>, BTreeMap<String, Stored>, Plan) {
        let fallback = digest(1).replacen(':', "-", 1);
        let versions = vec![
            version(1, &["latest"]),
            version(2, &[]),
            version(3, &[]),
            version(10, &["old"]),
            version(11, &[]),
            version(12, &[]),
            version(20, &[]),
            version(21, &[]),
            version(30, &[&fallback]),
            version(31, &[]),
            version(40, &[]),
            version(50, &[]),
        ];
        let manifests = BTreeMap::from([
            (digest(1), index(&[2, 3])),
            (digest(10), index(&[11, 12])),
            (digest(20), referrer(1)),
            (digest(21), referrer(10)),
            (digest(30), index(&[31])),
            (digest(31), referrer(1)),
        ]);
        let plan = Plan {
            delete: vec![
                deletion(10, &["old"], None),
                deletion(11, &[], Some(10)),
                deletion(12, &[], Some(10)),
            ],
            kept: Vec::new(),
        };
        (versions, manifests, plan)
    }

    fn fates(judged: &[Judged]) -> Vec<(u64, Fate)> {
        judged
            .iter()
            .map(|j| (j.version.id - 1000, j.fate.clone()))
            .collect()
    }

    #[test]
    fn what_kept_images_need_stays_and_what_deleted_ones_had_goes() {
        let (versions, manifests, plan) = package();
        let known: BTreeSet<String> = versions
            .iter()
            .filter(|v| v.digest != digest(50))
            .map(|v| v.digest.clone())
            .collect();
        let cases = [
            (Untagged::Keep, Fate::Stays(Stays::Untagged)),
            (Untagged::Delete, Fate::Goes(Goes::Untagged)),
        ];
        for (untagged, orphan) in cases {
            let judged = judge(&versions, &plan, &manifests, &known, untagged);
            let mut expected = vec![
                (10, Fate::Goes(Goes::Tags)),
                (11, Fate::Goes(Goes::ChildOf(digest(10)))),
                (12, Fate::Goes(Goes::ChildOf(digest(10)))),
                (21, Fate::Goes(Goes::ReferrerOf(digest(10)))),
            ];
            if untagged == Untagged::Delete {
                expected.push((40, orphan.clone()));
            }
            expected.extend([
                (1, Fate::Stays(Stays::Tagged)),
                (2, Fate::Stays(Stays::ChildOfKept("latest".into()))),
                (3, Fate::Stays(Stays::ChildOfKept("latest".into()))),
                (20, Fate::Stays(Stays::ReferrerOfKept(digest(1)))),
                (30, Fate::Stays(Stays::Tagged)),
                (
                    31,
                    Fate::Stays(Stays::ChildOfKept(digest(1).replacen(':', "-", 1))),
                ),
            ]);
            if untagged == Untagged::Keep {
                expected.push((40, orphan));
            }
            expected.push((50, Fate::Stays(Stays::New)));
            assert_eq!(fates(&judged), expected, "{untagged:?}");
        }
    }

    #[test]
    fn a_kept_reference_wins_over_the_plan_and_the_plan_says_so() {
        let (versions, mut manifests, plan) = package();
        // The doomed index's child 11 is also a platform of the kept index.
        manifests.insert(digest(1), index(&[2, 3, 11]));
        let known = versions.iter().map(|v| v.digest.clone()).collect();
        let judged = judge(&versions, &plan, &manifests, &known, Untagged::Delete);
        let eleven = judged.iter().find(|j| j.version.id == 1011).unwrap();
        assert_eq!(
            eleven.fate,
            Fate::Stays(Stays::ChildOfKept("latest".into()))
        );
        let rec = reconcile(plan, &judged);
        let gone: Vec<&str> = rec.delete.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(gone, [digest(10), digest(12)]);
    }

    #[test]
    fn what_a_new_version_reaches_stays_and_a_going_referrer_index_takes_its_list() {
        let (mut versions, mut manifests, plan) = package();
        // 50 (new, untagged) lists the orphan 40; 60, a referrer index of
        // the doomed 10, lists 61.
        manifests.insert(digest(50), index(&[40]));
        manifests.insert(
            digest(60),
            Stored {
                subject: Some(digest(10)),
                children: vec![digest(61)],
                ..Stored::default()
            },
        );
        versions.extend([version(60, &[]), version(61, &[])]);
        let known = versions
            .iter()
            .filter(|v| v.digest != digest(50))
            .map(|v| v.digest.clone())
            .collect();
        let judged = judge(&versions, &plan, &manifests, &known, Untagged::Delete);
        let fate = |n: u64| {
            judged
                .iter()
                .find(|j| j.version.id == 1000 + n)
                .unwrap()
                .fate
                .clone()
        };
        assert_eq!(fate(40), Fate::Stays(Stays::ChildOfKept(digest(50))));
        assert_eq!(fate(60), Fate::Goes(Goes::ReferrerOf(digest(10))));
        assert_eq!(fate(61), Fate::Goes(Goes::ChildOf(digest(60))));
        let order: Vec<u64> = judged
            .iter()
            .filter(|j| matches!(j.fate, Fate::Goes(_)))
            .map(|j| j.version.id - 1000)
            .collect();
        assert!(
            order.iter().position(|&n| n == 60) < order.iter().position(|&n| n == 61),
            "{order:?}"
        );
    }

    #[test]
    fn an_empty_package_judges_nothing() {
        let judged = judge(
            &[],
            &Plan::default(),
            &BTreeMap::new(),
            &BTreeSet::new(),
            Untagged::Delete,
        );
        assert!(judged.is_empty());
    }
}
