//! Attestations past the first publish: an envelope altered in the
//! registry fails cosign and `verify` alike, and a later `publish` of the
//! same digest replaces its own type's attestation and leaves the others.

use registry_action::supply::cosign::{self, Layer, Predicate};
use serde_json::Value;

use crate::publish::scoped;
use crate::supply::{image_repo, layers, open, put_only, signed, signed_release, verify};
use crate::support::run::Action;

const SPDX: &str = "https://spdx.dev/Document";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";

#[tokio::test]
async fn a_tampered_attestation_fails_cosign_and_verify() {
    let target = open();
    let ns = "sc-tamper";
    let repo = image_repo();
    let cosign = target.cosign();
    let (_, digest, image) = signed_release(&repo, ns, target, &cosign).await;
    cosign
        .verify_attestation(&cosign.pub_path(), "cyclonedx", &image)
        .unwrap();

    // The SBOM loses a package (as one hiding a vulnerable library would),
    // the envelope keeps its signature.
    let layer = &layers(target, ns, &digest, "att").await[0];
    let envelope = target
        .client()
        .blob(&scoped(&format!("{ns}/app")), &layer.digest, layer.size)
        .await
        .unwrap();
    let (statement, signatures) = cosign::open_envelope(&envelope).unwrap();
    let mut statement: Value = serde_json::from_slice(&statement).unwrap();
    let components = statement["predicate"]["components"].as_array_mut().unwrap();
    let before = components.len();
    components.retain(|c| c["name"] != "libcrypto3");
    assert_eq!(components.len(), before - 1);
    let tampered = cosign::envelope(&serde_json::to_vec(&statement).unwrap(), &signatures[0]);
    let layer = Layer::attestation(&tampered, Predicate::CycloneDx.uri());
    put_only(target, ns, &digest, "att", layer, &tampered).await;

    assert!(
        cosign
            .verify_attestation(&cosign.pub_path(), "cyclonedx", &image)
            .is_err(),
        "cosign takes a tampered attestation"
    );
    verify(
        &repo,
        target,
        &image,
        &cosign.public_pem(),
        Some("cyclonedx"),
    )
    .assert_failed(
        "its signature doesn't verify with the public key (signed by another key, or altered)",
    );
    // Only the attestation was touched: the signature still holds.
    cosign.verify(&cosign.pub_path(), &image).unwrap();
    verify(&repo, target, &image, &cosign.public_pem(), None).assert_ok();
}

/// A publish whose `rebuild` of the same commit makes the same digest:
/// without BuildKit's inline cache and with the `created` label fixed
/// (either alone is not enough, tried here), nothing in the image depends
/// on when it was built.
fn reproducible(action: Action) -> Action {
    action.input("cache", "false").input(
        "labels",
        "org.opencontainers.image.created=2026-01-01T00:00:00Z",
    )
}

#[tokio::test]
async fn a_rebuild_replaces_its_own_attestation_type_and_keeps_the_others() {
    let target = open();
    let ns = "sc-replace";
    let repo = image_repo();
    let cosign = target.cosign();
    let key = cosign.private_pem();
    let first = reproducible(signed(&repo, ns, target, &key, "spdx"))
        .run_async()
        .await;
    first.assert_ok();
    let digest = first.outputs["digest"].clone();

    let mut attested = Vec::new();
    for _ in 0..2 {
        let again = reproducible(signed(&repo, ns, target, &key, "cyclonedx"))
            .input("rebuild", "true")
            .run_async()
            .await;
        again.assert_ok();
        assert_eq!(again.outputs["digest"], digest, "the same image again");
        let att = layers(target, ns, &digest, "att").await;
        let types: Vec<&str> = att.iter().filter_map(Layer::predicate_type).collect();
        assert_eq!(
            types,
            [SPDX, CYCLONEDX, "https://slsa.dev/provenance/v1"],
            "one of each type"
        );
        attested.push(att[1].digest.clone());
    }
    assert_ne!(
        attested[0], attested[1],
        "the second rebuild's SBOM (a new serial number) replaced the first's"
    );
    assert_eq!(
        layers(target, ns, &digest, "sig").await.len(),
        1,
        "signing the same digest again adds nothing"
    );

    let image = target.image(ns, &digest);
    for (kind, ours, uri) in [
        ("cyclonedx", "cyclonedx", CYCLONEDX),
        ("spdxjson", "spdx", SPDX),
    ] {
        let statements = cosign
            .verify_attestation(&cosign.pub_path(), kind, &image)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(statements.len(), 1, "{kind}");
        assert_eq!(statements[0]["predicateType"], uri);
        verify(&repo, target, &image, &cosign.public_pem(), Some(ours)).assert_ok();
    }
}
