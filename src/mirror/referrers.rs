//! OCI 1.1 referrers (signature bundles, attestations, SBOMs: manifests
//! with a `subject`) carried by a copy where the source lists them through
//! its referrers API (`GET /v2/<name>/referrers/<digest>`). Where it has no
//! such API they sit under the fallback tag `sha256-<hex>`, an index that
//! is copied as a tag.
//!
//! On the target each referrer is put by its digest, bytes unchanged; a
//! registry with the referrers API says so with `OCI-Subject` in its answer
//! and lists them itself. Only a target without it (a layout, an older
//! registry) gets the fallback index, as the distribution spec has a client
//! keep it: the entries already there kept, ours added.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::oci::{Descriptor, Digest, INDEX_MEDIA_TYPE};
use crate::registry::Manifest;

/// What the source's referrers API lists for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub subject: String,
    pub referrers: Vec<Descriptor>,
}

/// The digests a tag's manifest may have referrers about: its own and,
/// for an index, each manifest it lists (`publish` signs and attests each
/// platform's image too, and a verifier may be given a platform's digest).
pub fn subjects(top: &Manifest) -> Vec<String> {
    let listed = crate::oci::children(&top.bytes).unwrap_or_default();
    std::iter::once(top.digest.clone())
        .chain(listed.into_iter().map(|d| d.digest.as_str().to_owned()))
        .collect()
}

/// The `subject` a manifest names, if any.
pub fn subject_of(manifest: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct WithSubject {
        subject: Option<Descriptor>,
    }
    serde_json::from_slice::<WithSubject>(manifest)
        .ok()?
        .subject
        .map(|s| s.digest.as_str().to_owned())
}

/// The fallback index listing `added` beside what `existing` lists (its
/// entries kept as they are, fields this code doesn't know included); each
/// entry as the referrers API would list it: media type, digest, size,
/// `artifactType` (the manifest's, else its config's media type) and
/// annotations. `None` when `existing` lists them all already.
pub fn fallback_index(
    existing: Option<&[u8]>,
    added: &[Manifest],
) -> Result<Option<Manifest>, String> {
    let mut document: Value = match existing {
        Some(bytes) => {
            serde_json::from_slice(bytes).map_err(|e| format!("it is not JSON ({e})"))?
        }
        None => json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}),
    };
    let Some(entries) = document.get_mut("manifests").and_then(Value::as_array_mut) else {
        return Err("it is not an OCI index".to_owned());
    };
    let before = entries.len();
    for manifest in added {
        let listed = entries
            .iter()
            .any(|e| e.get("digest").and_then(Value::as_str) == Some(manifest.digest.as_str()));
        if !listed {
            entries.push(entry(manifest));
        }
    }
    if existing.is_some() && entries.len() == before {
        return Ok(None);
    }
    let bytes = serde_json::to_vec(&document).unwrap_or_default();
    Ok(Some(Manifest {
        digest: Digest::of(&bytes).as_str().to_owned(),
        bytes,
        media_type: INDEX_MEDIA_TYPE.to_owned(),
    }))
}

/// A referrer's descriptor as the distribution spec has the referrers list
/// show it.
fn entry(manifest: &Manifest) -> Value {
    let read: Value = serde_json::from_slice(&manifest.bytes).unwrap_or(Value::Null);
    let artifact_type = read
        .get("artifactType")
        .or_else(|| read.pointer("/config/mediaType"))
        .and_then(Value::as_str);
    let mut entry = json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.bytes.len(),
    });
    if let Some(artifact_type) = artifact_type {
        entry["artifactType"] = artifact_type.into();
    }
    if let Some(annotations) = read.get("annotations").filter(|a| a.is_object()) {
        entry["annotations"] = annotations.clone();
    }
    entry
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cosign3");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn manifest(name: &str) -> Manifest {
        let bytes = fixture(name);
        Manifest {
            digest: Digest::of(&bytes).as_str().to_owned(),
            bytes,
            media_type: crate::oci::MANIFEST_MEDIA_TYPE.to_owned(),
        }
    }

    #[test]
    fn cosign3s_referrers_are_listed_as_the_spec_lists_them() {
        let (signature, attestation) = (
            manifest("signature-manifest.json"),
            manifest("attestation-manifest.json"),
        );
        let subject = String::from_utf8(fixture("subject-digest")).unwrap();
        assert_eq!(
            subject_of(&signature.bytes).as_deref(),
            Some(subject.trim())
        );
        let made = fallback_index(None, std::slice::from_ref(&signature))
            .unwrap()
            .unwrap();
        let listed: Value = serde_json::from_slice(&made.bytes).unwrap();
        let first = &listed["manifests"][0];
        assert_eq!(first["digest"], signature.digest.as_str());
        assert_eq!(first["size"], signature.bytes.len());
        assert_eq!(
            first["artifactType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        assert_eq!(
            first["annotations"]["dev.sigstore.bundle.predicateType"],
            "https://sigstore.dev/cosign/sign/v1"
        );
        // Into cosign 3's own fallback index (which lists both): nothing to
        // add; into ours, the attestation added and the signature kept.
        let theirs = fixture("fallback-index.json");
        assert_eq!(
            fallback_index(Some(&theirs), &[signature.clone(), attestation.clone()]).unwrap(),
            None
        );
        let both = fallback_index(Some(&made.bytes), &[signature.clone(), attestation.clone()])
            .unwrap()
            .unwrap();
        let digests: Vec<String> = crate::oci::children(&both.bytes)
            .unwrap()
            .iter()
            .map(|d| d.digest.as_str().to_owned())
            .collect();
        assert_eq!(digests, [signature.digest, attestation.digest]);
        assert!(fallback_index(Some(b"{}"), &[]).is_err());
    }

    #[test]
    fn an_index_and_each_manifest_it_lists_are_subjects() {
        let image = manifest("signature-manifest.json");
        assert_eq!(subjects(&image), std::slice::from_ref(&image.digest));
        let bytes = fixture("fallback-index.json");
        let index = Manifest {
            digest: Digest::of(&bytes).as_str().to_owned(),
            bytes,
            media_type: INDEX_MEDIA_TYPE.to_owned(),
        };
        let listed = crate::oci::children(&index.bytes).unwrap();
        assert_eq!(listed.len(), 2);
        let expected: Vec<String> = std::iter::once(index.digest.clone())
            .chain(listed.iter().map(|d| d.digest.as_str().to_owned()))
            .collect();
        assert_eq!(subjects(&index), expected);
    }
}
