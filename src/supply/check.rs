//! What a verifier checks (cosign's `verify` and `verify-attestation` with
//! `--key`): a signature over the exact bytes, a payload naming the image's
//! digest, an attestation whose statement is about that digest; in both of
//! cosign's formats (the legacy `.sig`/`.att` layers and Sigstore bundles).
//! Pure.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};

use super::bundle;
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
    pub predicate_type: String,
    /// Components (CycloneDX) or packages (SPDX) an SBOM lists; 0 for
    /// other predicates.
    pub components: usize,
    /// CycloneDX's `specVersion` or SPDX's `spdxVersion`.
    pub spec_version: Option<String>,
}

/// An `.att` layer's envelope: signed by `key`, a statement of
/// `predicate_type` about `digest`.
pub fn attestation(
    key: &VerifyingKey,
    layer: &Layer,
    envelope: &[u8],
    digest: &str,
    predicate_type: &str,
) -> Result<Attested, Rejected> {
    if let Some(found) = layer.predicate_type().filter(|t| *t != predicate_type) {
        return Err(Rejected::OtherPredicate {
            found: found.to_owned(),
            wanted: predicate_type.to_owned(),
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
    let statement = statement_about(&statement, digest)?;
    bundle_attested(&statement, predicate_type)
}

/// A Sigstore bundle (cosign 3's format) checked as `cosign verify --key`
/// checks it: its envelope signed by `key`, its statement about `digest`.
/// Returns the statement, whose predicate type tells a signature
/// ([`bundle::SIGNATURE_PREDICATE`]) from an attestation.
pub fn bundle(
    key: &VerifyingKey,
    bytes: &[u8],
    digest: &str,
) -> Result<cosign::Statement, Rejected> {
    let opened = bundle::open(bytes).map_err(Rejected::Malformed)?;
    if opened.signatures.is_empty() {
        return Err(Rejected::Unsigned);
    }
    let message = cosign::pae(&opened.payload_type, &opened.statement);
    if !opened
        .signatures
        .iter()
        .any(|der| verifies(key, &message, der))
    {
        return Err(Rejected::WrongKey);
    }
    statement_about(&opened.statement, digest)
}

/// What a verified statement attests, when it is of `predicate_type`.
pub fn bundle_attested(
    statement: &cosign::Statement,
    predicate_type: &str,
) -> Result<Attested, Rejected> {
    if statement.predicate_type != predicate_type {
        return Err(Rejected::OtherPredicate {
            found: statement.predicate_type.clone(),
            wanted: predicate_type.to_owned(),
        });
    }
    let sbom = Predicate::from_uri(predicate_type);
    Ok(Attested {
        predicate_type: predicate_type.to_owned(),
        components: sbom.map_or(0, |p| super::sbom::components(p, &statement.predicate)),
        spec_version: sbom.and_then(|p| super::sbom::spec_version(p, &statement.predicate)),
    })
}

/// The in-toto statement in `bytes`, if one of its subjects is `digest`.
fn statement_about(bytes: &[u8], digest: &str) -> Result<cosign::Statement, Rejected> {
    let statement: cosign::Statement = serde_json::from_slice(bytes)
        .map_err(|_| Rejected::Malformed("it is not an in-toto statement".into()))?;
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
    Ok(statement)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine as _;
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
        let statement = cosign::statement("r/ns/app", digest, predicate.uri(), sbom);
        let envelope = cosign::envelope(
            &statement,
            &sign(key, &cosign::envelope_message(&statement)),
        );
        (Layer::attestation(&envelope, predicate.uri()), envelope)
    }

    #[test]
    fn an_attestation_verifies_its_envelope_subject_and_type() {
        let public = key(1).verifying_key().to_owned();
        let (layer, envelope) = attestation_for(&key(1), DIGEST, Predicate::CycloneDx);
        assert_eq!(
            attestation(
                &public,
                &layer,
                &envelope,
                DIGEST,
                Predicate::CycloneDx.uri()
            ),
            Ok(Attested {
                predicate_type: Predicate::CycloneDx.uri().into(),
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
                Predicate::CycloneDx.uri()
            ),
            Err(Rejected::WrongKey)
        );
        assert!(matches!(
            attestation(
                &public,
                &layer,
                &envelope,
                OTHER,
                Predicate::CycloneDx.uri()
            ),
            Err(Rejected::DigestMismatch { .. })
        ));
        assert!(matches!(
            attestation(&public, &layer, &envelope, DIGEST, Predicate::Spdx.uri()),
            Err(Rejected::OtherPredicate { .. })
        ));
    }

    fn cosign3(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cosign3");
        std::fs::read(format!("{dir}/{name}")).unwrap()
    }

    #[test]
    fn cosign3s_bundles_verify_with_its_key_about_its_digest_only() {
        let public =
            crate::supply::key::verifying_key(&String::from_utf8(cosign3("cosign.pub")).unwrap())
                .unwrap();
        let digest = String::from_utf8(cosign3("subject-digest")).unwrap();
        let digest = digest.trim();
        let signed = bundle(&public, &cosign3("signature-bundle.json"), digest).unwrap();
        assert_eq!(signed.predicate_type, bundle::SIGNATURE_PREDICATE);
        let attested = bundle(&public, &cosign3("attestation-bundle.json"), digest).unwrap();
        assert_eq!(
            bundle_attested(&attested, Predicate::CycloneDx.uri()),
            Ok(Attested {
                predicate_type: Predicate::CycloneDx.uri().into(),
                components: 1,
                spec_version: Some("1.6".into())
            })
        );
        assert!(matches!(
            bundle_attested(&attested, Predicate::Spdx.uri()),
            Err(Rejected::OtherPredicate { .. })
        ));
        assert_eq!(
            bundle(
                key(2).verifying_key(),
                &cosign3("signature-bundle.json"),
                digest
            )
            .unwrap_err(),
            Rejected::WrongKey
        );
        assert!(matches!(
            bundle(&public, &cosign3("signature-bundle.json"), OTHER),
            Err(Rejected::DigestMismatch { .. })
        ));
        // One byte of the statement changed, its base64 re-encoded.
        let mut tampered: serde_json::Value =
            serde_json::from_slice(&cosign3("signature-bundle.json")).unwrap();
        let payload = tampered["dsseEnvelope"]["payload"].as_str().unwrap();
        let mut statement = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap();
        statement[5] ^= 1;
        tampered["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
            .encode(&statement)
            .into();
        assert_eq!(
            bundle(&public, &serde_json::to_vec(&tampered).unwrap(), digest).unwrap_err(),
            Rejected::WrongKey
        );
    }
}
