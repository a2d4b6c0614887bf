//! The copy itself: plan every tag's tree, move the missing blobs, then
//! write the manifests bottom-up.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use crate::oci::Descriptor;
use crate::registry::contents::Contents;
use crate::registry::{Manifest, RegistryError, retry};
use crate::supply::bundle::{fallback_subject, fallback_tag};
use crate::supply::cosign::attached_to;

use super::referrers::{self, Listing};
use super::store::{Moved, Store};
use super::{MirrorError, Selection};

/// Manifests one tag may nest (an index's children, their children…).
const MAX_MANIFESTS: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Requests in flight at once (blobs, manifests, tags).
    pub concurrency: usize,
    /// Read and compare only; write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Copied,
    /// The target's tag already names the same digest.
    UpToDate,
    /// Would be copied, on a dry run.
    WouldCopy,
    /// A fallback index whose referrers were copied and which the target
    /// lists by its referrers API: the tag itself isn't written.
    Indexed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Copied => "copied",
            State::UpToDate => "up to date",
            State::WouldCopy => "would copy",
            State::Indexed => "referrers copied; the target's referrers API lists them",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCopy {
    pub tag: String,
    pub digest: String,
    pub state: State,
}

/// A referrer the source's referrers API listed, and how it was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerCopy {
    pub subject: String,
    pub digest: String,
    pub state: State,
    /// How the target lists it: by its referrers API, or in the fallback
    /// index (`sha256-<hex>`).
    pub listed: Listed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    ReferrersApi,
    FallbackTag(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub tags: Vec<TagCopy>,
    /// The referrers the source's referrers API listed for the tags'
    /// digests (those under a fallback tag are among `tags`).
    pub referrers: Vec<ReferrerCopy>,
    /// Blobs streamed to the target, and their bytes (on a dry run: the
    /// ones that would be).
    pub blobs_sent: usize,
    pub bytes_sent: u64,
    /// Blobs the target registry linked from the source repository.
    pub blobs_mounted: usize,
    /// Blobs the target had already.
    pub blobs_present: usize,
    pub dry_run: bool,
}

/// One tag, read from the source; or a referrer, put by its digest.
struct Planned {
    /// The tag, or the referrer's digest.
    tag: String,
    top: Manifest,
    /// Every manifest below `top`, children before their parents.
    children: Vec<Manifest>,
    blobs: Vec<Descriptor>,
    up_to_date: bool,
}

/// Copies the selected tags from `source` to `target` (see the module
/// docs), each from the manifest read when it was selected if it was, with
/// the referrers the source's referrers API lists for their digests.
pub async fn copy(
    source: &Store<'_>,
    target: &Store<'_>,
    selection: &Selection,
    options: &Options,
) -> Result<Report, MirrorError> {
    let width = options.concurrency.max(1);
    let planned: Vec<Planned> = stream::iter(&selection.tags)
        .map(|tag| plan(source, target, tag, selection.read(tag)))
        .buffered(width)
        .try_collect()
        .await?;
    let listings = listings(source, &planned, width).await?;
    let referrers: Vec<(usize, Planned)> = stream::iter(
        listings
            .iter()
            .enumerate()
            .flat_map(|(n, listing)| listing.referrers.iter().map(move |r| (n, listing, r))),
    )
    .map(|(n, listing, referrer)| async move {
        plan_referrer(source, target, listing, referrer)
            .await
            .map(|p| (n, p))
    })
    .buffered(width)
    .try_collect()
    .await?;

    let blobs: BTreeMap<&str, &Descriptor> = planned
        .iter()
        .chain(referrers.iter().map(|(_, p)| p))
        .filter(|p| !p.up_to_date)
        .flat_map(|p| &p.blobs)
        .map(|b| (b.digest.as_str(), b))
        .collect();
    let moved: Vec<Moved> = stream::iter(blobs.into_values())
        .map(|blob| transfer(source, target, blob, options.dry_run))
        .buffer_unordered(width)
        .try_collect()
        .await?;

    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let mut indexed_tags = HashSet::new();
    if !options.dry_run {
        let copying: Vec<&Planned> = planned.iter().filter(|p| !p.up_to_date).collect();
        let below = copying
            .iter()
            .copied()
            .chain(referrers.iter().map(|(_, p)| p).filter(|p| !p.up_to_date));
        let indexed = put_children(target, below, width).await?;
        // Referrers themselves go by subject, below; a fallback tag whose
        // referrers the target's API took in hand isn't written.
        let (listed_only, tops): (Vec<&Planned>, Vec<&Planned>) =
            copying.into_iter().partition(|p| lists_only(p, &indexed));
        indexed_tags.extend(listed_only.iter().map(|p| p.tag.clone()));
        stream::iter(tops)
            .map(|p| target.put_manifest(&p.tag, &p.top))
            .buffer_unordered(width)
            .try_collect::<Vec<bool>>()
            .await?;
    }
    report.referrers = put_referrers(target, &listings, &referrers, options).await?;
    if !options.dry_run {
        target.finish()?;
    }

    for m in moved {
        match m {
            Moved::Present => report.blobs_present += 1,
            Moved::Mounted => report.blobs_mounted += 1,
            Moved::Sent(bytes) | Moved::Missing(bytes) => {
                report.blobs_sent += 1;
                report.bytes_sent += bytes;
            }
        }
    }
    report.tags = planned
        .into_iter()
        .map(|p| TagCopy {
            state: match (p.up_to_date, options.dry_run) {
                _ if indexed_tags.contains(&p.tag) => State::Indexed,
                (true, _) => State::UpToDate,
                (false, true) => State::WouldCopy,
                (false, false) => State::Copied,
            },
            tag: p.tag,
            digest: p.top.digest,
        })
        .collect();
    Ok(report)
}

/// Every manifest below the tops, each level after the one below it;
/// the digests of those a registry took in hand as referrers.
async fn put_children<'a>(
    target: &Store<'_>,
    copying: impl Iterator<Item = &'a Planned>,
    width: usize,
) -> Result<HashSet<String>, MirrorError> {
    let mut indexed = HashSet::new();
    for level in levels(copying.flat_map(|p| &p.children))? {
        let answers: Vec<(String, bool)> = stream::iter(level)
            .map(|child| async move {
                target
                    .put_manifest(&child.digest, child)
                    .await
                    .map(|told| (child.digest.clone(), told))
            })
            .buffer_unordered(width)
            .try_collect()
            .await?;
        indexed.extend(
            answers
                .into_iter()
                .filter(|(_, told)| *told)
                .map(|(d, _)| d),
        );
    }
    Ok(indexed)
}

/// A fallback index (`sha256-<hex>`) every referrer of which the target
/// took in hand: each names the digest the tag is about as its subject,
/// and the target's referrers API lists it; the tag would only repeat it.
fn lists_only(planned: &Planned, indexed: &HashSet<String>) -> bool {
    let Some(subject) = fallback_subject(&planned.tag) else {
        return false;
    };
    let Ok(Contents::Index { manifests, .. }) = planned.top.contents() else {
        return false;
    };
    let listed_under_subject = |digest: &str| {
        indexed.contains(digest)
            && planned.children.iter().any(|c| {
                c.digest == digest
                    && referrers::subject_of(&c.bytes).as_deref() == Some(subject.as_str())
            })
    };
    !manifests.is_empty()
        && manifests
            .iter()
            .all(|m| listed_under_subject(m.digest.as_str()))
}

/// What the source's referrers API lists for each digest the tags name,
/// their indexes' children included (signatures and attestation tags
/// aside); nothing where it has no API.
async fn listings(
    source: &Store<'_>,
    planned: &[Planned],
    width: usize,
) -> Result<Vec<Listing>, MirrorError> {
    // An index's own manifests, and below them what `plan` read (nothing
    // of a tag the target has already).
    let subjects: BTreeSet<String> = planned
        .iter()
        .filter(|p| attached_to(&p.tag).is_none())
        .flat_map(|p| {
            referrers::subjects(&p.top)
                .into_iter()
                .chain(p.children.iter().map(|c| c.digest.clone()))
        })
        .collect();
    let listed = source.listed_referrers(&subjects, width).await?;
    Ok(listed
        .into_iter()
        .flatten()
        .filter(|(_, referrers)| !referrers.is_empty())
        .map(|(subject, referrers)| Listing { subject, referrers })
        .collect())
}

/// One listed referrer read like a tag, by its digest; it must name the
/// subject it is listed under.
async fn plan_referrer(
    source: &Store<'_>,
    target: &Store<'_>,
    listing: &Listing,
    referrer: &Descriptor,
) -> Result<Planned, MirrorError> {
    let planned = plan(source, target, referrer.digest.as_str(), None).await?;
    let named = referrers::subject_of(&planned.top.bytes);
    if named.as_deref() != Some(listing.subject.as_str()) {
        return Err(MirrorError::Referrers {
            store: source.describe(),
            subject: listing.subject.clone(),
            why: format!(
                "it lists {} whose subject is {}",
                referrer.digest,
                named.as_deref().unwrap_or("none")
            ),
        });
    }
    Ok(planned)
}

/// Puts each subject's referrers by digest; where the target has no
/// referrers API (no `OCI-Subject` answer, or a 404 from it when nothing
/// needed putting), lists them in its fallback index.
async fn put_referrers(
    target: &Store<'_>,
    listings: &[Listing],
    planned: &[(usize, Planned)],
    options: &Options,
) -> Result<Vec<ReferrerCopy>, MirrorError> {
    let mut copied = Vec::new();
    for (n, listing) in listings.iter().enumerate() {
        let mine: Vec<&Planned> = planned
            .iter()
            .filter(|(of, _)| *of == n)
            .map(|(_, p)| p)
            .collect();
        let mut answers = Vec::new();
        if !options.dry_run {
            let put = mine.iter().filter(|p| !p.up_to_date);
            for p in put {
                answers.push(target.put_manifest(&p.top.digest, &p.top).await?);
            }
        }
        let has_api = match answers.is_empty() {
            false => answers.iter().all(|told| *told),
            true => target.referrers(&listing.subject).await?.is_some(),
        };
        let tag = fallback_tag(&listing.subject);
        if !has_api && !options.dry_run {
            let existing = target.manifest(&tag).await?;
            let tops: Vec<Manifest> = mine.iter().map(|p| p.top.clone()).collect();
            let index = referrers::fallback_index(existing.as_ref().map(|m| &m.bytes[..]), &tops)
                .map_err(|why| MirrorError::Referrers {
                store: target.describe(),
                subject: listing.subject.clone(),
                why: format!("its fallback index `{tag}`: {why}"),
            })?;
            if let Some(index) = index {
                target.put_manifest(&tag, &index).await?;
            }
        }
        copied.extend(mine.iter().map(|p| ReferrerCopy {
            subject: listing.subject.clone(),
            digest: p.top.digest.clone(),
            state: match (p.up_to_date, options.dry_run) {
                (true, _) => State::UpToDate,
                (false, true) => State::WouldCopy,
                (false, false) => State::Copied,
            },
            listed: match has_api {
                true => Listed::ReferrersApi,
                false => Listed::FallbackTag(tag.clone()),
            },
        }));
    }
    Ok(copied)
}

/// Every distinct manifest of `children` (each listed after its own
/// children, as [`plan`] orders them), grouped by height: images first, then
/// the indexes over them, and so on. Each is written once, and only after
/// everything it lists: two tags sharing an index must not write its
/// children at the same time, or the registry may judge the index while a
/// child's link is half-written and refuse it as naming an unknown manifest.
fn levels<'a>(
    children: impl IntoIterator<Item = &'a Manifest>,
) -> Result<Vec<Vec<&'a Manifest>>, MirrorError> {
    let mut height: BTreeMap<&str, usize> = BTreeMap::new();
    let mut levels: Vec<Vec<&Manifest>> = Vec::new();
    for child in children {
        if height.contains_key(child.digest.as_str()) {
            continue;
        }
        let level = match child.contents()? {
            Contents::Image { .. } => 0,
            Contents::Index { manifests, .. } => {
                let below = manifests
                    .iter()
                    .filter_map(|m| height.get(m.digest.as_str()));
                1 + below.max().copied().unwrap_or(0)
            }
        };
        height.insert(&child.digest, level);
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(child);
    }
    Ok(levels)
}

/// Reads a tag's manifest tree from the source (its top from `read`, when
/// that was read already), unless the target's tag already names the same
/// digest.
async fn plan(
    source: &Store<'_>,
    target: &Store<'_>,
    tag: &str,
    read: Option<&Manifest>,
) -> Result<Planned, MirrorError> {
    let top = match read {
        Some(top) => top.clone(),
        None => source
            .manifest(tag)
            .await?
            .ok_or_else(|| MirrorError::NoSuchTag {
                store: source.describe(),
                tag: tag.to_owned(),
            })?,
    };
    let mut planned = Planned {
        tag: tag.to_owned(),
        up_to_date: target.manifest_digest(tag).await?.as_deref() == Some(top.digest.as_str()),
        top,
        children: Vec::new(),
        blobs: Vec::new(),
    };
    if planned.up_to_date {
        return Ok(planned);
    }
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([planned.top.clone()]);
    let mut found = Vec::new();
    while let Some(manifest) = queue.pop_front() {
        match manifest.contents()? {
            Contents::Image { config, layers } => {
                planned.blobs.push(config);
                planned.blobs.extend(layers);
            }
            Contents::Index { manifests, .. } => {
                for child in &manifests {
                    if !seen.insert(child.digest.clone()) {
                        continue;
                    }
                    if seen.len() > MAX_MANIFESTS {
                        return Err(MirrorError::TooDeep {
                            store: source.describe(),
                            tag: tag.to_owned(),
                            limit: MAX_MANIFESTS,
                        });
                    }
                    let fetched = child_manifest(source, tag, &manifest, child).await?;
                    queue.push_back(fetched.clone());
                    found.push(fetched);
                }
            }
        }
    }
    // Breadth-first puts parents before children; the writes go the other way.
    found.reverse();
    planned.children = found;
    Ok(planned)
}

async fn child_manifest(
    source: &Store<'_>,
    tag: &str,
    parent: &Manifest,
    child: &Descriptor,
) -> Result<Manifest, MirrorError> {
    let fetched =
        source
            .manifest(&child.digest)
            .await?
            .ok_or_else(|| MirrorError::MissingChild {
                store: source.describe(),
                tag: tag.to_owned(),
                parent: parent.digest.clone(),
                digest: child.digest.to_string(),
            })?;
    if fetched.digest != child.digest {
        return Err(RegistryError::DigestMismatch {
            registry: source.describe(),
            what: format!("the manifest {} lists", parent.digest),
            expected: child.digest.to_string(),
            actual: fetched.digest,
        }
        .into());
    }
    Ok(fetched)
}

/// One blob, unless the target has it; a transfer cut off midway starts
/// over, a bounded number of times.
async fn transfer(
    source: &Store<'_>,
    target: &Store<'_>,
    blob: &Descriptor,
    dry_run: bool,
) -> Result<Moved, MirrorError> {
    if target.has_blob(blob).await? {
        return Ok(Moved::Present);
    }
    if dry_run {
        return Ok(Moved::Missing(blob.size));
    }
    let what = format!("copying blob {}", blob.digest);
    retry::again(
        &what,
        || target.receive(source, blob),
        MirrorError::retry_pause,
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::sha256_digest;

    use crate::oci::{INDEX_MEDIA_TYPE as INDEX, MANIFEST_MEDIA_TYPE as IMAGE};

    fn manifest(media_type: &str, json: String) -> Manifest {
        Manifest {
            digest: sha256_digest(json.as_bytes()),
            bytes: json.into_bytes(),
            media_type: media_type.to_owned(),
        }
    }

    fn image(n: u8) -> Manifest {
        let config = sha256_digest(&[n]);
        manifest(
            IMAGE,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{IMAGE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[]}}"#
            ),
        )
    }

    fn index(children: &[&Manifest]) -> Manifest {
        let listed: Vec<String> = children
            .iter()
            .map(|c| {
                format!(
                    r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
                    c.media_type,
                    c.digest,
                    c.bytes.len()
                )
            })
            .collect();
        manifest(
            INDEX,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{}]}}"#,
                listed.join(",")
            ),
        )
    }

    fn digests(levels: &[Vec<&Manifest>]) -> Vec<Vec<String>> {
        levels
            .iter()
            .map(|l| l.iter().map(|m| m.digest.clone()).collect())
            .collect()
    }

    #[test]
    fn children_two_tags_share_are_written_once_each_after_what_they_list() {
        let (amd64, arm64, attestation) = (image(1), image(2), image(3));
        let platforms = index(&[&amd64, &arm64]);
        let nested = index(&[&platforms, &attestation]);
        // Two tags of one nested index, as `plan` lists them: children
        // before their parents, the shared ones under each tag.
        let first = [&amd64, &arm64, &attestation, &platforms];
        let second = [&attestation, &amd64, &arm64, &platforms];
        let levels = levels(first.into_iter().chain(second)).unwrap();
        assert_eq!(
            digests(&levels),
            [
                vec![
                    amd64.digest.clone(),
                    arm64.digest.clone(),
                    attestation.digest.clone()
                ],
                vec![platforms.digest.clone()],
            ]
        );
        let with_top = levels_of(&[&amd64, &arm64, &platforms, &attestation, &nested]);
        assert_eq!(with_top.len(), 3, "{:?}", digests(&with_top));
        assert_eq!(with_top[2][0].digest, nested.digest);
    }

    fn levels_of<'a>(manifests: &[&'a Manifest]) -> Vec<Vec<&'a Manifest>> {
        levels(manifests.iter().copied()).unwrap()
    }
}
