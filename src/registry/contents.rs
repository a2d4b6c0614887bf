//! What a manifest lists, and when its image was made (pure).

use std::collections::HashMap;

use serde::Deserialize;

use super::{Manifest, RegistryError};
use crate::limits;
use crate::oci::Descriptor;

/// A manifest's references: an image's config and layers, or an index's
/// child manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
        /// `org.opencontainers.image.created`, when the index carries it.
        created: Option<String>,
    },
}

#[derive(Deserialize)]
struct Raw {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

const CREATED: &str = "org.opencontainers.image.created";

#[derive(Deserialize)]
struct Subject {
    subject: Option<Descriptor>,
}

impl Manifest {
    /// The digest an OCI 1.1 referrer (a signature, an attestation) is
    /// about: its `subject`; `None` for any other manifest.
    pub fn subject(&self) -> Option<String> {
        let raw: Subject = serde_json::from_slice(&self.bytes).ok()?;
        raw.subject.map(|s| s.digest.to_string())
    }

    /// What the manifest references. The shape decides, not the media type:
    /// registries serve OCI and Docker forms under either. A listed digest
    /// that is not one refuses the manifest: each goes into a URL or a file
    /// name next.
    pub fn contents(&self) -> Result<Contents, RegistryError> {
        let bad = |why: String| {
            RegistryError::Protocol(format!(
                "manifest {} is not an image manifest or index: {why}",
                self.digest
            ))
        };
        let mut raw: Raw = serde_json::from_slice(&self.bytes).map_err(|e| bad(e.to_string()))?;
        let count = raw.manifests.as_ref().map_or(0, Vec::len)
            + raw.layers.len()
            + usize::from(raw.config.is_some());
        if count > limits::MANIFEST_DESCRIPTORS {
            return Err(RegistryError::Protocol(format!(
                "manifest {} lists {count} descriptors, more than the {} a manifest may list; refusing it",
                self.digest,
                limits::MANIFEST_DESCRIPTORS
            )));
        }
        match (raw.manifests, raw.config) {
            (Some(manifests), _) => Ok(Contents::Index {
                manifests,
                created: raw.annotations.remove(CREATED),
            }),
            (None, Some(config)) => Ok(Contents::Image {
                config,
                layers: raw.layers,
            }),
            (None, None) => Err(bad("neither `manifests` nor `config`".to_owned())),
        }
    }
}

#[derive(Deserialize)]
struct ImageConfig {
    created: Option<String>,
    #[serde(default)]
    config: Option<ContainerConfig>,
}

#[derive(Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// When an image was made, in unix seconds: the config's `created`, else
/// its `org.opencontainers.image.created` label. Reproducible builds pin
/// `created` to the epoch (or Go's zero time), which says nothing about
/// age, so such a time counts as unknown.
pub fn created(config: &[u8]) -> Option<i64> {
    let config: ImageConfig = serde_json::from_slice(config).ok()?;
    let label = config
        .config
        .and_then(|c| c.labels)
        .and_then(|mut labels| labels.remove(CREATED));
    [config.created, label]
        .into_iter()
        .flatten()
        .filter_map(|t| crate::time::unix_seconds(&t))
        .find(|&t| t > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Manifest {
        let bytes = crate::fixtures::fixture_bytes(&format!("oci/{name}"));
        Manifest {
            digest: super::super::sha256_digest(&bytes),
            media_type: String::new(),
            bytes,
        }
    }

    #[test]
    fn real_manifests_and_indexes() {
        let Contents::Image { config, layers } =
            fixture("docker-manifest-v2-ubuntu-17.10-amd64.json")
                .contents()
                .unwrap()
        else {
            panic!("an image manifest")
        };
        assert!(config.digest.starts_with("sha256:"));
        assert!(!layers.is_empty() && layers.iter().all(|l| l.size > 0));

        let Contents::Index { manifests, .. } = fixture("docker-manifest-list-ubuntu-17.10.json")
            .contents()
            .unwrap()
        else {
            panic!("a manifest list")
        };
        assert!(manifests.len() > 1);
        let Contents::Index { manifests, .. } = fixture("oci-image-index.image-spec-example.json")
            .contents()
            .unwrap()
        else {
            panic!("an OCI index")
        };
        assert_eq!(manifests.len(), 2);
        assert_eq!(manifests[0].size, 7143);
    }

    #[test]
    fn a_listed_digest_that_is_not_one_is_refused() {
        for listed in ["sha256:../../../x", "SHA256:AB", "v1"] {
            let bytes = serde_json::to_vec(&serde_json::json!({
                "manifests": [{"mediaType": "m", "digest": listed, "size": 1}],
            }))
            .unwrap();
            let manifest = Manifest {
                digest: super::super::sha256_digest(&bytes),
                media_type: String::new(),
                bytes,
            };
            let error = manifest.contents().unwrap_err().to_string();
            assert!(
                error.contains(&format!("{listed:?} is not a digest")),
                "{error}"
            );
        }
    }

    fn index_of(children: usize) -> Manifest {
        let child = serde_json::json!({"mediaType": "m", "digest": format!("sha256:{}", "a".repeat(64)), "size": 1});
        let bytes = serde_json::to_vec(&serde_json::json!({
            "manifests": vec![child; children],
        }))
        .unwrap();
        Manifest {
            digest: super::super::sha256_digest(&bytes),
            media_type: String::new(),
            bytes,
        }
    }

    #[test]
    fn a_manifest_listing_more_than_the_cap_is_refused() {
        let Contents::Index { manifests, .. } =
            index_of(limits::MANIFEST_DESCRIPTORS).contents().unwrap()
        else {
            panic!("an index")
        };
        assert_eq!(manifests.len(), 10_000);
        let over = index_of(limits::MANIFEST_DESCRIPTORS + 1);
        assert_eq!(
            over.contents().unwrap_err().to_string(),
            format!(
                "manifest {} lists 10001 descriptors, more than the 10000 a manifest may list; refusing it",
                over.digest
            )
        );
    }

    #[test]
    fn creation_times() {
        assert_eq!(
            created(br#"{"created":"2024-03-01T10:00:00.123456789Z"}"#),
            Some(1_709_287_200)
        );
        assert_eq!(
            created(br#"{"created":"2024-03-01T12:00:00+02:00"}"#),
            Some(1_709_287_200)
        );
        // The reproducible-build epoch falls back to the label.
        let pinned = br#"{"created":"1970-01-01T00:00:00Z","config":{"Labels":{"org.opencontainers.image.created":"2024-03-01T10:00:00Z"}}}"#;
        assert_eq!(created(pinned), Some(1_709_287_200));
        assert_eq!(created(br#"{"created":"0001-01-01T00:00:00Z"}"#), None);
        assert_eq!(created(br#"{"created":"yesterday"}"#), None);
        assert_eq!(created(b"not json"), None);
    }
}
