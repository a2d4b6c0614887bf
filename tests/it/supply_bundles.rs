//! cosign 3's Sigstore bundles: an image signed and attested by the real
//! cosign 3.1 (bundles stored as referrers; on these registries, which have
//! no referrers API, in the index under the fallback tag `sha256-<hex>`)
//! is verified by `verify`, which says where it found what, and refuses
//! another key; cosign 3.1 verifies what `publish` signs.

use crate::publish::publish;
use crate::supply::{Target, image_repo, open, signed_release, token, verify};

async fn cosign3s_signature_and_attestation_verify(target: Target<'_>, ns: &str) {
    let repo = image_repo();
    let cosign = target.cosign();
    let ran = target
        .with_login(publish(&repo, ns, "refs/heads/main", &repo.head()))
        .run_async()
        .await;
    ran.assert_ok();
    let digest = ran.outputs["digest"].clone();
    let image = target.image(ns, &digest);
    let fallback = digest.replacen(':', "-", 1);

    cosign.sign3("sign", &[&image]).unwrap();
    let sbom = cosign.path("sbom.json");
    std::fs::write(
        &sbom,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"name":"a","type":"library"},{"name":"b","type":"library"}]}"#,
    )
    .unwrap();
    cosign
        .sign3(
            "attest",
            &[
                "--type",
                "cyclonedx",
                "--predicate",
                sbom.to_str().unwrap(),
                &image,
            ],
        )
        .unwrap();
    cosign.verify3("verify", &[&image]).unwrap();

    let ran = verify(
        &repo,
        target,
        &image,
        &cosign.public_pem(),
        Some("cyclonedx"),
    );
    ran.assert_ok();
    assert_eq!(ran.outputs["digest"], digest);
    let summary = &ran.summary;
    assert!(
        summary.contains("✅ 1 of 1 signatures verified with the key | ✅ `https://cyclonedx.org/bom` 1.6, 2 components |"),
        "{summary}"
    );
    for what in ["signature", "attestation `https://cyclonedx.org/bom`"] {
        let row = format!("| {what} | Sigstore bundle v0.3 | referrers tag {fallback} (sha256:");
        assert!(summary.contains(&row), "{row} in {summary}");
    }
    assert!(!summary.contains("cosign legacy"), "{summary}");

    // Another key verifies neither.
    let other = target.cosign();
    let refused = verify(&repo, target, &image, &other.public_pem(), None);
    refused.assert_failed("no signature of");
    refused.assert_failed("doesn't verify with the public key");
    refused.assert_failed(&format!("referrers tag {fallback}"));
}

#[tokio::test]
async fn cosign3s_bundles_verify_on_an_open_registry() {
    cosign3s_signature_and_attestation_verify(open(), "sc3-open").await;
}

#[tokio::test]
async fn cosign3s_bundles_verify_behind_token_auth() {
    cosign3s_signature_and_attestation_verify(token(), "sc3-token").await;
}

#[tokio::test]
async fn cosign3_verifies_what_publish_signs_in_the_legacy_format() {
    let target = open();
    let repo = image_repo();
    let cosign = target.cosign();
    let (_, _, image) = signed_release(&repo, "sc3-legacy", target, &cosign).await;
    cosign.verify3("verify", &[&image]).unwrap();
    cosign
        .verify3("verify-attestation", &["--type", "cyclonedx", &image])
        .unwrap();
    let other = target.cosign();
    other
        .verify3("verify", &[&image])
        .expect_err("cosign 3 takes another key's signature");
}
