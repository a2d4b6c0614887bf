//! What a verifier checks (cosign's `verify` and `verify-attestation` with
//! `--key`): a signature over the exact bytes, a payload naming the image's
//! digest, an attestation whose statement is about that digest. Pure.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};

use super::cosign::{self, Layer, Predicate, SimpleSigning};

/// Why one signature or attestation layer doesn't count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("it carries no signature")]
    Unsigned,
    #[error("its signature doesn't verify with the public key (signed by another key, or altered)")]
    WrongKey,
    #[error("it names digest {named}, not the image's {expected}")]
    DigestMismatch { named: String, expected: String },
    /// What is wrong, said in full (`it is not …`, `its payload …`).
    #[error("{0}")]
    Malformed(String),
    #[error("its predicate type is {found}, not {wanted}")]
    OtherPredicate { found: String, wanted: String },
}

/// Whether `der` is a signature of `message` by `key`.
pub fn verifies(key: &VerifyingKey, message: &[u8], der: &[u8]) -> bool {
    Signature::from_der(der).is_ok_and(|sig| key.verify(message, &sig).is_ok())
}

/// A `.sig` layer with its payload blob: signed by `key`, about `digest`.
pub fn signature(
    key: &VerifyingKey,
    layer: &Layer,
    payload: &[u8],
    digest: &str,
) -> Result<(), Rejected> {
    let der = layer.signature_der().ok_or(Rejected::Unsigned)?;
    if !verifies(key, payload, &der) {
        return Err(Rejected::WrongKey);
    }
    let claims: SimpleSigning = serde_json::from_slice(payload)
        .map_err(|_| Rejected::Malformed("it is not a simple-signing payload".into()))?;
    if claims.critical.kind != cosign::SIGNATURE_TYPE {
        return Err(Rejected::Malformed(format!(
            "it is not a container image signature (type {:?})",
            claims.critical.kind
        )));
    }
    let named = claims.critical.image.docker_manifest_digest;
    if named != digest {
        return Err(Rejected::DigestMismatch {
            named,
            expected: digest.to_owned(),
        });
    }
    Ok(())
}

/// What a verified attestation told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// Components (CycloneDX) or packages (SPDX) the SBOM lists.
    pub components: usize,
    /// CycloneDX's `specVersion` or SPDX's `spdxVersion`.
    pub spec_version: Option<String>,
}

/// An `.att` layer's envelope: signed by `key`, a statement of `predicate`
/// about `digest`.
pub fn attestation(
    key: &VerifyingKey,
    layer: &Layer,
    envelope: &[u8],
    digest: &str,
    predicate: Predicate,
) -> Result<Attested, Rejected> {
    if let Some(found) = layer.predicate_type().filter(|t| *t != predicate.uri()) {
        return Err(Rejected::OtherPredicate {
            found: found.to_owned(),
            wanted: predicate.uri().to_owned(),
        });
    }
    let (statement, signatures) = cosign::open_envelope(envelope).map_err(Rejected::Malformed)?;
    if signatures.is_empty() {
        return Err(Rejected::Unsigned);
    }
    let message = cosign::envelope_message(&statement);
    if !signatures.iter().any(|der| verifies(key, &message, der)) {
        return Err(Rejected::WrongKey);
    }
    let statement: cosign::Statement = serde_json::from_slice(&statement)
        .map_err(|_| Rejected::Malformed("it is not an in-toto statement".into()))?;
    if statement.predicate_type != predicate.uri() {
        return Err(Rejected::OtherPredicate {
            found: statement.predicate_type,
            wanted: predicate.uri().to_owned(),
        });
    }
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    let about = statement
        .subject
        .iter()
        .any(|s| s.digest.get(algorithm).is_some_and(|h| h == hex));
    if !about {
        let named = statement
            .subject
            .iter()
            .filter_map(|s| s.digest.get(algorithm))
            .map(|h| format!("{algorithm}:{h}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Rejected::DigestMismatch {
            named,
            expected: digest.to_owned(),
        });
    }
    Ok(Attested {
        components: super::sbom::components(predicate, &statement.predicate),
        spec_version: super::sbom::spec_version(predicate, &statement.predicate),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn key(n: u8) -> SigningKey {
        SigningKey::from_slice(&[n; 32]).unwrap()
    }

    fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
        let sig: Signature = key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }

    fn signed_layer(key: &SigningKey, digest: &str) -> (Layer, Vec<u8>) {
        let payload = cosign::payload("r/ns/app", digest);
        (Layer::signature(&payload, &sign(key, &payload)), payload)
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_and_digest() {
        let (layer, payload) = signed_layer(&key(1), DIGEST);
        let public = key(1).verifying_key().to_owned();
        assert_eq!(signature(&public, &layer, &payload, DIGEST), Ok(()));
        assert_eq!(
            signature(key(2).verifying_key(), &layer, &payload, DIGEST),
            Err(Rejected::WrongKey)
        );
        assert_eq!(
            signature(&public, &layer, &payload, OTHER),
            Err(Rejected::DigestMismatch {
                named: DIGEST.into(),
                expected: OTHER.into()
            })
        );
        let mut tampered = payload.clone();
        tampered[10] ^= 1;
        assert_eq!(
            signature(&public, &layer, &tampered, DIGEST),
            Err(Rejected::WrongKey)
        );
        let mut bare = layer.clone();
        bare.annotations.clear();
        assert_eq!(
            signature(&public, &bare, &payload, DIGEST),
            Err(Rejected::Unsigned)
        );
    }

    fn attestation_for(key: &SigningKey, digest: &str, predicate: Predicate) -> (Layer, Vec<u8>) {
        let sbom =
            serde_json::json!({"specVersion": "1.6", "components": [{"name": "a"}, {"name": "b"}]});
        let statement = cosign::statement("r/ns/app", digest, predicate, sbom);
        let envelope = cosign::envelope(
            &statement,
            &sign(key, &cosign::envelope_message(&statement)),
        );
        (Layer::attestation(&envelope, predicate), envelope)
    }

    #[test]
    fn an_attestation_verifies_its_envelope_subject_and_type() {
        let public = key(1).verifying_key().to_owned();
        let (layer, envelope) = attestation_for(&key(1), DIGEST, Predicate::CycloneDx);
        assert_eq!(
            attestation(&public, &layer, &envelope, DIGEST, Predicate::CycloneDx),
            Ok(Attested {
                components: 2,
                spec_version: Some("1.6".into())
            })
        );
        assert_eq!(
            attestation(
                key(2).verifying_key(),
                &layer,
                &envelope,
                DIGEST,
                Predicate::CycloneDx
            ),
            Err(Rejected::WrongKey)
        );
        assert!(matches!(
            attestation(&public, &layer, &envelope, OTHER, Predicate::CycloneDx),
            Err(Rejected::DigestMismatch { .. })
        ));
        assert!(matches!(
            attestation(&public, &layer, &envelope, DIGEST, Predicate::Spdx),
            Err(Rejected::OtherPredicate { .. })
        ));
    }
}
