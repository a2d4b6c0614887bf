//! A pulled image as the archive a scanner reads: `docker save`'s form
//! (`manifest.json` naming the config and layers by member path, the
//! blobs under `blobs/sha256/`, as Docker 25 and later write it), built
//! from the pull check's blob cache without the engine.

use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

use super::pull::{BlobCache, Parts};

/// Writes `repository:tag`'s archive to `archive`.
pub fn write(
    cache: &BlobCache,
    parts: &Parts,
    repository: &str,
    tag: &str,
    archive: &Path,
) -> anyhow::Result<()> {
    let member = |digest: &str| format!("blobs/{}", digest.replace(':', "/"));
    let manifest = json!([{
        "Config": member(&parts.config.digest),
        "RepoTags": [format!("{repository}:{tag}")],
        "Layers": parts.layers.iter().map(|l| member(&l.digest)).collect::<Vec<_>>(),
    }]);
    let manifest = serde_json::to_vec(&manifest)?;
    let file = std::fs::File::create(archive)
        .with_context(|| format!("couldn't create {}", archive.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "manifest.json", manifest.as_slice())?;
    let mut added = std::collections::BTreeSet::new();
    for blob in std::iter::once(&parts.config).chain(&parts.layers) {
        if !added.insert(&blob.digest) {
            continue;
        }
        let path = cache.path(&blob.digest);
        tar.append_path_with_name(&path, member(&blob.digest))
            .with_context(|| format!("couldn't add {} to {}", path.display(), archive.display()))?;
    }
    tar.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(())
}
