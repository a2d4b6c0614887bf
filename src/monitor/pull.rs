//! The pull check: an image fetched as a puller fetches it — its manifest
//! (an index resolved to linux/amd64, else its first image), config and
//! every layer, each verified against its digest on the way — into a blob
//! cache that all images share, so a layer they share travels once, as on
//! a machine that pulls them all. Timed from the first request to the
//! last byte.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use tokio::io::AsyncWriteExt as _;

use super::Pulled;
use crate::oci::{self, Descriptor, Digest};
use crate::registry::contents::Contents;
use crate::registry::{Manifest, Registry, RegistryError};

/// Index levels followed before giving up: an index of indexes is allowed,
/// a loop is not.
const MAX_INDEX_DEPTH: usize = 4;

/// Blobs by digest, under `root/sha256/<hex>`; only whole, verified blobs
/// ever carry their name.
pub struct BlobCache {
    root: PathBuf,
}

/// What a pulled image is made of, for the rescan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl BlobCache {
    pub fn create(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("sha256"))?;
        Ok(BlobCache {
            root: root.to_owned(),
        })
    }

    /// Where a blob is (or will be).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.hex())
    }

    fn has(&self, blob: &Descriptor) -> bool {
        std::fs::metadata(self.path(&blob.digest)).is_ok_and(|m| m.len() == blob.size)
    }

    /// Downloads one blob, verified as it streams; bytes that don't match
    /// the digest are never kept.
    async fn fetch(
        &self,
        registry: &Registry,
        repository: &str,
        blob: &Descriptor,
    ) -> Result<u64, RegistryError> {
        let path = self.path(&blob.digest);
        let mut chunks = registry
            .blob_stream(repository, &blob.digest, blob.size)
            .await?;
        let partial = path.with_extension("partial");
        let written = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(io(&partial))?;
            let mut written = 0;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await.map_err(io(&partial))?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(io(&partial))?;
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(io(&path))?;
            Ok(written)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        written
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |e| RegistryError::Protocol(format!("writing {} failed: {e}", path.display()))
}

/// Pulls `repository:tag` into `cache`, `concurrency` blobs at a time;
/// `None` when the tag names nothing.
pub async fn pull(
    registry: &Registry,
    cache: &BlobCache,
    repository: &str,
    tag: &str,
    concurrency: usize,
) -> Result<Option<(Pulled, Parts)>, RegistryError> {
    let started = Instant::now();
    let Some(manifest) = image_manifest(registry, repository, tag).await? else {
        return Ok(None);
    };
    let parts = match manifest.contents()? {
        Contents::Image { config, layers } => Parts { config, layers },
        Contents::Index { .. } => {
            return Err(RegistryError::Protocol(format!(
                "{repository}:{tag} nests indexes deeper than {MAX_INDEX_DEPTH} levels"
            )));
        }
    };
    // An image may list one layer twice: fetched (and counted) once.
    let mut seen = std::collections::HashSet::new();
    let blobs: Vec<&Descriptor> = std::iter::once(&parts.config)
        .chain(&parts.layers)
        .filter(|b| seen.insert(b.digest.as_str()))
        .collect();
    let missing: Vec<&Descriptor> = blobs.iter().copied().filter(|b| !cache.has(b)).collect();
    let fetched_bytes: u64 = stream::iter(missing.iter().copied())
        .map(|blob| cache.fetch(registry, repository, blob))
        .buffer_unordered(concurrency.max(1))
        .try_fold(0, |total, n| async move { Ok(total + n) })
        .await?;
    let pulled = Pulled {
        digest: manifest.digest.clone(),
        elapsed: started.elapsed(),
        blobs: blobs.len(),
        fetched: missing.len(),
        fetched_bytes,
    };
    Ok(Some((pulled, parts)))
}

/// The image manifest the tag stands for on linux/amd64.
async fn image_manifest(
    registry: &Registry,
    repository: &str,
    tag: &str,
) -> Result<Option<Manifest>, RegistryError> {
    let mut reference = tag.to_owned();
    for _ in 0..MAX_INDEX_DEPTH {
        let Some(manifest) = registry.manifest(repository, &reference).await? else {
            return Ok(None);
        };
        match choose_child(&manifest.bytes) {
            Some(child) => reference = child,
            None => return Ok(Some(manifest)),
        }
    }
    registry.manifest(repository, &reference).await
}

/// For an index: the linux/amd64 child, else the first; a child that is
/// not a descriptor is passed over. `None` for an image manifest (or
/// anything that is not an index).
fn choose_child(manifest: &[u8]) -> Option<String> {
    let children = oci::children(manifest)?;
    let amd64 = children.iter().find(|c| {
        c.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
    });
    amd64.or(children.first()).map(|c| c.digest.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_index_resolves_to_linux_amd64_else_its_first_image() {
        let [arm, amd, one, two] = ["a", "b", "c", "d"].map(|c| format!("sha256:{}", c.repeat(64)));
        let child = |digest: &str, arch: &str| serde_json::json!({"digest": digest, "size": 1, "platform": {"os": "linux", "architecture": arch}});
        let index = serde_json::json!({"manifests": [child(&arm, "arm64"), child(&amd, "amd64")]});
        let index = serde_json::to_vec(&index).unwrap();
        assert_eq!(choose_child(&index), Some(amd));
        let other = serde_json::json!({"manifests": [
            child("latest", "amd64"), {"digest": one, "size": 1}, {"digest": two, "size": 1}]});
        let other = serde_json::to_vec(&other).unwrap();
        assert_eq!(choose_child(&other), Some(one), "a tag is no child");
        let image = br#"{"config":{"digest":"sha256:c","size":1},"layers":[]}"#;
        assert_eq!(choose_child(image), None);
    }

    #[test]
    fn a_blob_lies_under_its_hex_digits() {
        let cache = BlobCache {
            root: PathBuf::from("/c"),
        };
        let hex = "a".repeat(64);
        let digest = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(
            cache.path(&digest),
            PathBuf::from(format!("/c/sha256/{hex}"))
        );
    }
}
