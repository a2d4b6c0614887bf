//! Images pushed straight to a registry through the crate's client: a
//! config with a chosen creation time, one layer shared by all and one of
//! their own. Hundreds of tags in seconds, no engine needed.

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

impl<'a> Seeder<'a> {
    pub async fn new(registry: &'a Registry, repository: &str) -> Self {
        let base = vec![7u8; BASE_LAYER];
        let digest = sha256_digest(&base);
        registry
            .upload_blob(repository, &digest, Bytes::from(base))
            .await
            .unwrap();
        Seeder {
            registry,
            repository: repository.to_owned(),
            base: digest,
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
        let (layer_digest, config_digest) = (sha256_digest(&layer), sha256_digest(&config));
        let own_bytes = (layer.len() + config.len()) as u64;
        for (digest, bytes) in [
            (&layer_digest, layer.clone()),
            (&config_digest, config.clone()),
        ] {
            self.registry
                .upload_blob(&self.repository, digest, Bytes::from(bytes))
                .await
                .unwrap();
        }
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                 "digest": self.base, "size": BASE_LAYER},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                 "digest": layer_digest, "size": layer.len()},
            ],
        }))
        .unwrap();
        let manifest = Manifest {
            digest: sha256_digest(&body),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            bytes: body,
        };
        for tag in tags {
            self.registry
                .put_manifest(&self.repository, tag, &manifest)
                .await
                .unwrap();
        }
        Seeded {
            own_bytes: own_bytes + manifest.bytes.len() as u64,
            manifest,
        }
    }
}
