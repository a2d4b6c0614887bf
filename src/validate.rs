//! Reading back what `cleanup` kept: every kept tag's manifest tree (an
//! index, its children, the attestation manifests among them, each image's
//! config and layers) through the registry API, so a deletion that broke a
//! kept image is reported by the tag it broke, not found at the next pull.
//!
//! Manifests are fetched (their digests checked); blobs are asked for by
//! `HEAD`, each distinct one once. A layer with `urls` (a foreign layer)
//! is not one the registry holds, so it is not asked for.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use crate::registry::contents::Contents;
use crate::registry::{Registry, RegistryError};

/// How deep an index may nest indexes; deeper is not followed.
const MAX_DEPTH: usize = 4;

/// A kept tag whose tree lacks a piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub tag: String,
    /// What is missing, in words (`manifest sha256:… listed by sha256:…`).
    pub missing: String,
}

/// A tag's tree as read: what is missing already, and the blobs to ask for
/// (digest, what it is).
struct Tree {
    tag: String,
    missing: Vec<String>,
    blobs: Vec<(String, String)>,
}

/// Every piece of `tags`' trees that the registry no longer has, by tag.
pub async fn kept_trees(
    registry: &Registry,
    repository: &str,
    tags: &[String],
    concurrency: usize,
) -> Result<Vec<Broken>, RegistryError> {
    let concurrency = concurrency.max(1);
    let trees: Vec<Tree> = stream::iter(tags)
        .map(|tag| read_tree(registry, repository, tag))
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let blobs: BTreeSet<String> = trees
        .iter()
        .flat_map(|t| t.blobs.iter().map(|(d, _)| d.clone()))
        .collect();
    let present: BTreeMap<String, bool> = stream::iter(blobs)
        .map(|digest| async move {
            let here = registry.has_blob(repository, &digest).await?;
            Ok::<_, RegistryError>((digest, here))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let mut broken: Vec<Broken> = trees
        .into_iter()
        .flat_map(|tree| {
            let absent = tree
                .blobs
                .iter()
                .filter(|(d, _)| present.get(d.as_str()) == Some(&false))
                .map(|(d, what)| format!("blob {d} ({what})"));
            let missing: Vec<String> = tree.missing.into_iter().chain(absent).collect();
            let tag = tree.tag;
            missing.into_iter().map(move |missing| Broken {
                tag: tag.clone(),
                missing,
            })
        })
        .collect();
    broken.sort_by(|a, b| (&a.tag, &a.missing).cmp(&(&b.tag, &b.missing)));
    Ok(broken)
}

/// The manifests under `tag`, read level by level.
async fn read_tree(
    registry: &Registry,
    repository: &str,
    tag: &str,
) -> Result<Tree, RegistryError> {
    let mut tree = Tree {
        tag: tag.to_owned(),
        missing: Vec::new(),
        blobs: Vec::new(),
    };
    let Some(top) = registry.manifest(repository, tag).await? else {
        tree.missing.push("the tag's own manifest".to_owned());
        return Ok(tree);
    };
    let mut level = vec![(top, String::from("the tag"))];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for (manifest, _) in level {
            match manifest.contents()? {
                Contents::Image { config, layers } => {
                    tree.blobs.push((
                        config.digest.to_string(),
                        format!("config of {}", manifest.digest),
                    ));
                    tree.blobs.extend(
                        layers
                            .into_iter()
                            .filter(|l| l.urls.as_ref().is_none_or(Vec::is_empty))
                            .map(|l| {
                                (
                                    l.digest.to_string(),
                                    format!("layer of {}", manifest.digest),
                                )
                            }),
                    );
                }
                Contents::Index { manifests, .. } => {
                    for child in manifests {
                        let digest = child.digest.to_string();
                        match registry.manifest(repository, &digest).await? {
                            Some(found) => next.push((found, manifest.digest.clone())),
                            None => tree
                                .missing
                                .push(format!("manifest {digest} listed by {}", manifest.digest)),
                        }
                    }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(tree)
}
