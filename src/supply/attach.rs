//! Signatures and attestations in the registry, beside the image they are
//! about: read the `.sig`/`.att` manifest of a digest, add a layer, put it
//! back. Blobs go first, the manifest last, as for any image.

use bytes::Bytes;

use super::Signer;
use super::check;
use super::cosign::{self, Layer, Predicate};
use crate::registry::{Registry, RegistryError, sha256_digest};

/// One image in its repository.
pub struct Subject<'a> {
    pub registry: &'a Registry,
    pub repository: &'a str,
    /// The manifest digest signed (never a tag).
    pub digest: &'a str,
}

impl Subject<'_> {
    fn docker_reference(&self) -> String {
        cosign::docker_reference(self.registry.name(), self.repository)
    }

    /// The layers under `sha256-<hex>.<suffix>`; `None` when the tag
    /// doesn't exist.
    pub async fn layers(&self, suffix: &str) -> anyhow::Result<Option<Vec<Layer>>> {
        let tag = cosign::tag(self.digest, suffix);
        let Some(manifest) = self.registry.manifest(self.repository, &tag).await? else {
            return Ok(None);
        };
        cosign::layers(&manifest)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("`{}:{tag}`: {e}", self.repository))
    }

    pub async fn blob(&self, layer: &Layer) -> Result<Vec<u8>, RegistryError> {
        self.registry
            .blob(self.repository, &layer.digest, layer.size)
            .await
    }

    /// Signs the digest, appending to its signatures; nothing is written
    /// when a signature by the same key over the same payload is there.
    /// Returns whether a signature was added.
    pub async fn sign(&self, signer: &Signer) -> anyhow::Result<bool> {
        let payload = cosign::payload(&self.docker_reference(), self.digest);
        let mut layers = self.layers("sig").await?.unwrap_or_default();
        let digest = sha256_digest(&payload);
        let present = layers.iter().any(|l| {
            l.digest == digest
                && l.signature_der()
                    .is_some_and(|der| check::verifies(signer.public_key(), &payload, &der))
        });
        if present {
            return Ok(false);
        }
        let der = signer.sign(&payload).await?;
        layers.push(Layer::signature(&payload, &der));
        self.put("sig", layers, payload).await?;
        Ok(true)
    }

    /// Attests `sbom` about the digest, replacing attestations of the same
    /// predicate type (as `cosign attest --replace`).
    pub async fn attest(
        &self,
        signer: &Signer,
        predicate: Predicate,
        sbom: serde_json::Value,
    ) -> anyhow::Result<()> {
        let statement = cosign::statement(&self.docker_reference(), self.digest, predicate, sbom);
        let der = signer.sign(&cosign::envelope_message(&statement)).await?;
        let envelope = cosign::envelope(&statement, &der);
        let mut layers = self.layers("att").await?.unwrap_or_default();
        layers.retain(|l| l.predicate_type() != Some(predicate.uri()));
        layers.push(Layer::attestation(&envelope, predicate));
        self.put("att", layers, envelope).await
    }

    /// Uploads the new layer's blob and the config, then the manifest.
    async fn put(&self, suffix: &str, layers: Vec<Layer>, new_blob: Vec<u8>) -> anyhow::Result<()> {
        let built = cosign::manifest(layers);
        for blob in [new_blob, built.config] {
            self.upload(blob).await?;
        }
        let tag = cosign::tag(self.digest, suffix);
        self.registry
            .put_manifest(self.repository, &tag, &built.manifest)
            .await?;
        Ok(())
    }

    async fn upload(&self, blob: Vec<u8>) -> Result<(), RegistryError> {
        let digest = sha256_digest(&blob);
        if !self.registry.has_blob(self.repository, &digest).await? {
            self.registry
                .upload_blob(self.repository, &digest, Bytes::from(blob))
                .await?;
        }
        Ok(())
    }
}
