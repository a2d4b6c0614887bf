//! Images pushed straight to a registry through the crate's client: a
//! config with a chosen creation time, one layer shared by all and one of
//! their own. Hundreds of tags in seconds, no engine needed. Also the
//! pieces for images of other shapes: real gzipped tar layers, uploads,
//! and an OCI manifest put under tags.

use std::io::Write as _;

use bytes::Bytes;
use registry_action::registry::{Manifest, Registry, sha256_digest};
use serde_json::json;

pub const BASE_LAYER: usize = 64 * 1024;

pub struct Seeder<'a> {
    pub registry: &'a Registry,
    pub repository: String,
    base: String,
}

/// What one image stores on its own: manifest, config and its own layer.
pub struct Seeded {
    pub manifest: Manifest,
    pub own_bytes: u64,
}

/// A blob as a manifest names it.
pub type Blob = (String, usize);

/// Uploads `bytes` to `repository`.
pub async fn upload(registry: &Registry, repository: &str, bytes: Vec<u8>) -> Blob {
    let blob = (sha256_digest(&bytes), bytes.len());
    registry
        .upload_blob(repository, &blob.0, Bytes::from(bytes))
        .await
        .unwrap();
    blob
}

/// Uploads `config`, then puts an OCI image manifest of it and `layers`
/// (already uploaded) under each of `tags`.
pub async fn put_image(
    registry: &Registry,
    repository: &str,
    config: Vec<u8>,
    layers: &[Blob],
    tags: &[&str],
) -> Manifest {
    let (config_digest, config_size) = upload(registry, repository, config).await;
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(digest, size)| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": digest, "size": size})
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": layers,
    }))
    .unwrap();
    let manifest = Manifest {
        digest: sha256_digest(&body),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: body,
    };
    for tag in tags {
        registry
            .put_manifest(repository, tag, &manifest)
            .await
            .unwrap();
    }
    manifest
}

/// A gzipped tar of `files` (path, content): the layer and its diff ID.
pub fn tar_gz(files: &[(&str, &[u8])]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, *content).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), sha256_digest(&raw))
}

impl<'a> Seeder<'a> {
    pub async fn new(registry: &'a Registry, repository: &str) -> Self {
        let (base, _) = upload(registry, repository, vec![7u8; BASE_LAYER]).await;
        Seeder {
            registry,
            repository: repository.to_owned(),
            base,
        }
    }

    /// Image number `n`, made at unix time `created`, under `tags`.
    pub async fn image(&self, n: u32, created: i64, tags: &[&str]) -> Seeded {
        let layer = format!("layer of image {n}")
            .repeat(10 + n as usize)
            .into_bytes();
        let config = serde_json::to_vec(&json!({
            "created": jiff::Timestamp::from_second(created).unwrap().to_string(),
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap();
        let own_bytes = (layer.len() + config.len()) as u64;
        let own = upload(self.registry, &self.repository, layer).await;
        let base = (self.base.clone(), BASE_LAYER);
        let manifest = put_image(self.registry, &self.repository, config, &[base, own], tags).await;
        Seeded {
            own_bytes: own_bytes + manifest.bytes.len() as u64,
            manifest,
        }
    }
}
