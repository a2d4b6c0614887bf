//! Signatures and attestations in the registry, beside the image they are
//! about: read the `.sig`/`.att` manifest of a digest, add a layer, put it
//! back. Blobs go first, the manifest last, as for any image.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::Signer;
use super::bundle::{self, Referrer};
use super::check;
use super::cosign::{self, Layer};
use crate::oci::{Descriptor, Digest};
use crate::registry::{Registry, RegistryError, referrers, sha256_digest};

/// Where a bundle was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The registry's referrers API.
    ReferrersApi,
    /// The index under the fallback tag `sha256-<hex>`.
    FallbackTag(String),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::ReferrersApi => f.write_str("referrers API"),
            Place::FallbackTag(tag) => write!(f, "referrers tag {tag}"),
        }
    }
}

/// A Sigstore bundle beside the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub place: Place,
    /// The referrer manifest's digest.
    pub manifest: String,
    pub referrer: Referrer,
    /// The bundle's bytes, verified against the layer's digest and size.
    pub bytes: Vec<u8>,
}

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

    /// The Sigstore bundles about the digest (cosign 3, `actions/attest`):
    /// from the referrers API, or the fallback tag's index where the
    /// registry has no such API. Each listed manifest is read and judged
    /// by [`bundle::bundle_layer`] (an index's own `artifactType` entries
    /// are not trusted: cosign 3 writes the config's type there);
    /// referrers that are not bundles about this digest are passed over.
    pub async fn bundles(&self) -> anyhow::Result<Vec<Found>> {
        let Some((place, listed)) = self.referrers().await? else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for descriptor in listed {
            let manifest = descriptor.digest.as_str();
            let Some(read) = self.registry.manifest(self.repository, manifest).await? else {
                continue;
            };
            let referrer = bundle::bundle_layer(&read.bytes, self.digest)
                .map_err(|e| anyhow::anyhow!("`{}@{manifest}` ({place}): {e}", self.repository))?;
            let Some(referrer) = referrer else { continue };
            let bytes = self.blob(&referrer.layer).await?;
            found.push(Found {
                place: place.clone(),
                manifest: manifest.to_owned(),
                referrer,
                bytes,
            });
        }
        Ok(found)
    }

    /// The referrer manifests listed about the digest and where; `None`
    /// when the registry has no referrers API and no fallback tag.
    async fn referrers(&self) -> anyhow::Result<Option<(Place, Vec<Descriptor>)>> {
        let subject = BTreeSet::from([self.digest.to_owned()]);
        if let Some(mut by_subject) =
            referrers::listed(self.registry, self.repository, &subject, 1).await?
        {
            let listed = by_subject.remove(self.digest).unwrap_or_default();
            return Ok(Some((Place::ReferrersApi, listed)));
        }
        let tag = bundle::fallback_tag(self.digest);
        let Some(index) = self.registry.manifest(self.repository, &tag).await? else {
            return Ok(None);
        };
        let place = Place::FallbackTag(tag);
        let listed = referrers::read(self.registry, self.repository, self.digest, &index.bytes)
            .map_err(|e| anyhow::anyhow!("the referrers of {} ({place}): {e}", self.digest))?;
        Ok(Some((place, listed)))
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

    /// Attests `predicate` (an SBOM, a provenance) of `predicate_type`
    /// about the digest, replacing attestations of the same type (as
    /// `cosign attest --replace`).
    pub async fn attest(
        &self,
        signer: &Signer,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> anyhow::Result<()> {
        let statement = cosign::statement(
            &self.docker_reference(),
            self.digest,
            predicate_type,
            predicate,
        );
        let der = signer.sign(&cosign::envelope_message(&statement)).await?;
        let envelope = cosign::envelope(&statement, &der);
        let mut layers = self.layers("att").await?.unwrap_or_default();
        layers.retain(|l| l.predicate_type() != Some(predicate_type));
        layers.push(Layer::attestation(&envelope, predicate_type));
        self.put("att", layers, envelope).await
    }

    /// Signs the digest in cosign 3's format: a bundle, as a referrer of
    /// the image. Nothing is written when a signature bundle by the same
    /// key is there already (`None`); otherwise where it went.
    pub async fn sign_bundle(&self, signer: &Signer) -> anyhow::Result<Option<Place>> {
        let present = self.bundles().await?.iter().any(|found| {
            check::bundle(signer.public_key(), &found.bytes, self.digest)
                .is_ok_and(|s| s.predicate_type == bundle::SIGNATURE_PREDICATE)
        });
        if present {
            return Ok(None);
        }
        let statement = bundle::statement(
            self.digest,
            bundle::SIGNATURE_PREDICATE,
            serde_json::json!({}),
        );
        self.put_bundle(signer, &statement, bundle::SIGNATURE_PREDICATE, &[])
            .await
            .map(Some)
    }

    /// Attests `predicate` of `predicate_type` about the digest in a
    /// bundle, replacing in the fallback index the bundles of the same type
    /// this key made.
    pub async fn attest_bundle(
        &self,
        signer: &Signer,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> anyhow::Result<Place> {
        let existing = self.bundles().await?;
        let replaced: Vec<&str> = existing
            .iter()
            .filter(|found| {
                check::bundle(signer.public_key(), &found.bytes, self.digest)
                    .is_ok_and(|s| s.predicate_type == predicate_type)
            })
            .map(|found| found.manifest.as_str())
            .collect();
        let statement = bundle::statement(self.digest, predicate_type, predicate);
        self.put_bundle(signer, &statement, predicate_type, &replaced)
            .await
    }

    /// The bundle's blobs, then its referrer manifest; where the registry
    /// has no referrers API, the fallback index lists it after that.
    async fn put_bundle(
        &self,
        signer: &Signer,
        statement: &[u8],
        predicate_type: &str,
        replaced: &[&str],
    ) -> anyhow::Result<Place> {
        let der = signer.sign(&bundle::message(statement)).await?;
        let made = bundle::make(statement, &der, &super::key::hint(signer.public_key()));
        let image = self
            .registry
            .manifest(self.repository, self.digest)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("{}@{} is not in the registry", self.repository, self.digest)
            })?;
        let subject = Descriptor::new(
            image.media_type,
            Digest::parse(self.digest).map_err(|e| anyhow::anyhow!("{e}"))?,
            image.bytes.len() as u64,
        );
        let created = crate::time::rfc3339(crate::time::now());
        let manifest = bundle::referrer(&subject, &made, predicate_type, &created);
        self.upload(bundle::EMPTY_CONFIG.to_vec()).await?;
        self.upload(made).await?;
        if self
            .registry
            .put_referrer(self.repository, &manifest)
            .await?
        {
            return Ok(Place::ReferrersApi);
        }
        let tag = bundle::fallback_tag(self.digest);
        let current = self.registry.manifest(self.repository, &tag).await?;
        let index = bundle::with_referrer(
            current.as_ref().map(|m| m.bytes.as_slice()),
            &manifest,
            predicate_type,
            replaced,
        )
        .map_err(|e| anyhow::anyhow!("`{}:{tag}`: {e}", self.repository))?;
        self.registry
            .put_manifest(self.repository, &tag, &index)
            .await?;
        Ok(Place::FallbackTag(tag))
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
