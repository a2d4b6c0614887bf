//! cosign 3's Sigstore bundles: an image signed and attested by the real
//! cosign 3.1 (bundles stored as referrers; on these registries, which have
//! no referrers API, in the index under the fallback tag `sha256-<hex>`)
//! is verified by `verify`, which says where it found what, and refuses
//! another key; cosign 3.1 verifies what `publish` signs, in either of
//! its `signature-format`s, and cosign 2.5 the legacy half of `both`.

use crate::publish::publish;
use crate::supply::{
    Target, assert_row, image_repo, key_cell, open, signed, signed_release, token, verify,
};
use crate::support::run::Ran;

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
    let ours = key_cell(&cosign.pub_path(), "inline PEM");
    for (what, predicate) in [
        ("signature", "https://sigstore.dev/cosign/sign/v1"),
        ("attestation", "https://cyclonedx.org/bom"),
    ] {
        assert_row(
            summary,
            &format!("| {what} | Sigstore bundle v0.3 | referrers tag {fallback} (sha256:"),
            &format!(") | {ours} | `{predicate}` | ✅ verified with the key |"),
        );
    }
    assert!(!summary.contains("cosign legacy"), "{summary}");

    // Another key verifies neither.
    let other = target.cosign();
    let refused = verify(&repo, target, &image, &other.public_pem(), None);
    refused.assert_failed("no signature of");
    refused.assert_failed("doesn't verify with the public key");
    refused.assert_failed(&format!("referrers tag {fallback}"));

    // Signed by that key too, each signature row names its key: the one
    // that verified it, or the one the other bundle says signed it.
    other.sign3("sign", &[&image]).unwrap();
    let both = verify(&repo, target, &image, &cosign.public_pem(), None);
    both.assert_ok();
    assert!(
        both.summary
            .contains("✅ 1 of 2 signatures verified with the key"),
        "{}",
        both.summary
    );
    let signature =
        format!("| signature | Sigstore bundle v0.3 | referrers tag {fallback} (sha256:");
    let predicate = "`https://sigstore.dev/cosign/sign/v1`";
    assert_row(
        &both.summary,
        &signature,
        &format!(") | {ours} | {predicate} | ✅ verified with the key |"),
    );
    let theirs = format!(
        "`{}`",
        &crate::supply::openssl_key_id(&other.pub_path())[..19]
    );
    assert_row(
        &both.summary,
        &signature,
        &format!(
            ") | {theirs} (the bundle's hint) | {predicate} | ❌ its signature doesn't verify with the public key (signed by another key, or altered) |"
        ),
    );
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

/// A signed, attested publish in `format`.
pub(crate) async fn publish_in(
    format: &str,
    target: Target<'_>,
    ns: &str,
    repo: &crate::support::git::Repo,
    cosign: &crate::support::cosign::Cosign,
) -> Ran {
    let ran = signed(repo, ns, target, &cosign.private_pem(), "cyclonedx")
        .input("signature-format", format)
        .run_async()
        .await;
    ran.assert_ok();
    ran
}

async fn bundle_publish_verifies_with_cosign3(target: Target<'_>, ns: &str) {
    let repo = image_repo();
    let cosign = target.cosign();
    let ran = publish_in("bundle", target, ns, &repo, &cosign).await;
    let digest = ran.outputs["digest"].clone();
    let image = target.image(ns, &digest);
    let fallback = digest.replacen(':', "-", 1);
    assert!(
        ran.summary.contains(&format!(
            "signed {digest} in a Sigstore bundle: referrers tag {fallback}"
        )),
        "{}",
        ran.summary
    );
    // No legacy tag: only the fallback index beside the image's own tags.
    let repository = crate::publish::scoped(&format!("{ns}/app"));
    let listed = target.client().tags(&repository).await.unwrap();
    assert!(listed.contains(&fallback), "{listed:?}");
    assert!(
        !listed
            .iter()
            .any(|t| t.ends_with(".sig") || t.ends_with(".att")),
        "{listed:?}"
    );

    cosign.verify3("verify", &[&image]).unwrap();
    cosign
        .verify3("verify-attestation", &["--type", "cyclonedx", &image])
        .unwrap();
    assert!(
        cosign.verify(&cosign.pub_path(), &image).is_err(),
        "cosign 2.5 reads no bundle"
    );
    // The summary's table says what cosign 2.5 and 3.1 just did.
    for row in [
        "| cosign 2.x (2.5.0, tested) | ❌ | reads `.sig` tags only |",
        "| cosign 3.x (3.1.1, tested) | ✅ |",
    ] {
        assert!(ran.summary.contains(row), "{row} in {}", ran.summary);
    }
    let ours = verify(
        &repo,
        target,
        &image,
        &cosign.public_pem(),
        Some("cyclonedx"),
    );
    ours.assert_ok();
    assert!(
        ours.summary.contains("✅ 1 of 1 signatures verified"),
        "{}",
        ours.summary
    );

    // Again on the same digest: the signature stays one, the attestation
    // is replaced, not added.
    let again = publish_in("bundle", target, ns, &repo, &cosign).await;
    assert_eq!(again.outputs["digest"], digest);
    assert!(
        again
            .summary
            .contains("already has a signature bundle by this key"),
        "{}",
        again.summary
    );
    let ours = verify(
        &repo,
        target,
        &image,
        &cosign.public_pem(),
        Some("cyclonedx"),
    );
    ours.assert_ok();
    let rows = ours.summary.matches("| Sigstore bundle v0.3 |").count();
    assert_eq!(rows, 2, "one signature, one attestation: {}", ours.summary);
}

#[tokio::test]
async fn a_bundle_publish_verifies_with_cosign3_on_an_open_registry() {
    bundle_publish_verifies_with_cosign3(open(), "sc3b-open").await;
}

#[tokio::test]
async fn a_bundle_publish_verifies_with_cosign3_behind_token_auth() {
    bundle_publish_verifies_with_cosign3(token(), "sc3b-token").await;
}

#[tokio::test]
async fn both_formats_verify_with_cosign_2_and_3() {
    let target = open();
    let repo = image_repo();
    let cosign = target.cosign();
    let ran = publish_in("both", target, "sc3-both", &repo, &cosign).await;
    let image = target.image("sc3-both", &ran.outputs["digest"]);
    cosign.verify(&cosign.pub_path(), &image).unwrap();
    cosign
        .verify_attestation(&cosign.pub_path(), "cyclonedx", &image)
        .unwrap();
    cosign.verify3("verify", &[&image]).unwrap();
    cosign
        .verify3("verify-attestation", &["--type", "cyclonedx", &image])
        .unwrap();
    let ours = verify(
        &repo,
        target,
        &image,
        &cosign.public_pem(),
        Some("cyclonedx"),
    );
    ours.assert_ok();
    assert!(
        ours.summary.contains("✅ 2 of 2 signatures verified"),
        "{}",
        ours.summary
    );
    for row in [
        "| cosign 2.x (2.5.0, tested) | ✅ |",
        "| cosign 3.x (3.1.1, tested) | ✅ |",
    ] {
        assert!(ran.summary.contains(row), "{row} in {}", ran.summary);
    }
}

#[tokio::test]
async fn bundles_travel_with_mirror_backup_and_restore_and_go_with_cleanup() {
    let ns = "sc3-carry";
    let repo = image_repo();
    let cosign = crate::supply::basic().cosign();
    let first = publish_in("bundle", open(), ns, &repo, &cosign).await;
    let digest = first.outputs["digest"].clone();

    // Copies of `latest` alone carry its referrers: the fallback index and
    // the bundle manifests it lists.
    for (command, to, archive) in [
        ("mirror", "sc3-carry-mirror", ""),
        ("backup", "", "backup"),
        ("restore", "sc3-carry-restore", "backup"),
    ] {
        crate::supply::copy_command(&repo, command, ns, to, archive)
            .run_async()
            .await
            .assert_ok();
    }
    for copy in ["sc3-carry-mirror", "sc3-carry-restore"] {
        let image = crate::supply::basic().image(copy, &digest);
        cosign
            .verify3("verify", &[&image])
            .unwrap_or_else(|e| panic!("{copy}: {e}"));
        cosign
            .verify3("verify-attestation", &["--type", "cyclonedx", &image])
            .unwrap_or_else(|e| panic!("{copy}: {e}"));
    }

    // A second commit; cleanup keeps one SHA tag: the first image's
    // referrers go with it, the second's stay and verify.
    repo.write("ops/docker/app/rootfs/etc/app.conf", "v=2\n");
    repo.commit("second");
    let second = publish_in("bundle", open(), ns, &repo, &cosign).await;
    let newer = second.outputs["digest"].clone();
    let repository = crate::publish::scoped(&format!("{ns}/app"));
    let client = open().client();
    let referrers = |index: registry_action::registry::Manifest| -> Vec<String> {
        registry_action::oci::children(&index.bytes)
            .unwrap()
            .into_iter()
            .map(|c| c.digest.as_str().to_owned())
            .collect()
    };
    let fallback = |d: &str| d.replacen(':', "-", 1);
    let older_referrers = referrers(
        client
            .manifest(&repository, &fallback(&digest))
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        older_referrers.len(),
        3,
        "a signature, the SBOM and the provenance"
    );
    let (namespace, _) = repository.split_once('/').unwrap();
    let cleaned = crate::support::run::Action::github(repo.path())
        .input("command", "cleanup")
        .input(
            "registry",
            &crate::support::services::services().registry_open,
        )
        .input("namespace", namespace)
        .input("images", "app")
        .input("keep", "1")
        .run_async()
        .await;
    cleaned.assert_ok();
    let left = client.tags(&repository).await.unwrap();
    assert!(
        !left.contains(&fallback(&digest)),
        "the deleted image's referrers index went with it: {left:?}\n{cleaned}"
    );
    assert!(
        left.contains(&fallback(&newer)),
        "the kept image kept its referrers: {left:?}\n{cleaned}"
    );
    for referrer in &older_referrers {
        assert!(
            client
                .manifest(&repository, referrer)
                .await
                .unwrap()
                .is_none(),
            "the deleted image's referrer {referrer} is no orphan\n{cleaned}"
        );
    }
    let kept = open().image(ns, &newer);
    cosign.verify3("verify", &[&kept]).unwrap();
    cosign
        .verify3("verify-attestation", &["--type", "cyclonedx", &kept])
        .unwrap();
}

#[tokio::test]
async fn an_orphans_signatures_are_reported_then_deleted_with_orphans_delete() {
    let ns = "sc3-orphan";
    let repo = image_repo();
    let cosign = open().cosign();
    let ran = publish_in("both", open(), ns, &repo, &cosign).await;
    let digest = ran.outputs["digest"].clone();
    let repository = crate::publish::scoped(&format!("{ns}/app"));
    let client = open().client().deleting();
    let fallback = digest.replacen(':', "-", 1);
    let index = client
        .manifest(&repository, &fallback)
        .await
        .unwrap()
        .unwrap();
    let referrers: Vec<String> = registry_action::oci::children(&index.bytes)
        .unwrap()
        .into_iter()
        .map(|c| c.digest.as_str().to_owned())
        .collect();
    // Another tool deleted the image and left its signatures behind.
    client.delete_manifest(&repository, &digest).await.unwrap();
    let signatures = [
        format!("{fallback}.sig"),
        format!("{fallback}.att"),
        fallback.clone(),
    ];
    let (namespace, _) = repository.split_once('/').unwrap();
    let cleanup = |orphans: &str| {
        crate::support::run::Action::github(repo.path())
            .input("command", "cleanup")
            .input(
                "registry",
                &crate::support::services::services().registry_open,
            )
            .input("namespace", namespace)
            .input("images", "app")
            .input("orphans", orphans)
            .run()
    };

    let usage = crate::support::run::Action::github(repo.path())
        .input("command", "usage")
        .input(
            "registry",
            &crate::support::services::services().registry_open,
        )
        .input("images", &repository)
        .run();
    usage.assert_ok();
    let report: serde_json::Value = serde_json::from_str(&usage.outputs["report"]).unwrap();
    assert_eq!(
        (
            &report["repositories"][0]["signatures"],
            &report["repositories"][0]["orphans"]
        ),
        (&serde_json::json!(3), &serde_json::json!(3)),
        "{usage}"
    );
    assert!(
        usage
            .summary
            .contains("3 of its signatures, attestations and referrers indexes are orphans"),
        "{}",
        usage.summary
    );

    let reported = cleanup("keep");
    reported.assert_ok();
    assert_eq!(reported.outputs["planned"], "[]", "{reported}");
    assert!(
        reported
            .summary
            .contains(&format!("an orphan: its subject `{digest}` is gone")),
        "{}",
        reported.summary
    );
    let left = client.tags(&repository).await.unwrap();
    for tag in &signatures {
        assert!(left.contains(tag), "{tag} kept: {left:?}");
    }

    let deleted = cleanup("delete");
    deleted.assert_ok();
    let left = client.tags(&repository).await.unwrap();
    for tag in &signatures {
        assert!(!left.contains(tag), "{tag} deleted: {left:?}\n{deleted}");
    }
    for referrer in &referrers {
        assert!(
            client
                .manifest(&repository, referrer)
                .await
                .unwrap()
                .is_none(),
            "the orphan's referrer {referrer} went with its index\n{deleted}"
        );
    }
}

/// Every manifest and blob reachable from `tag` in `repository`: each
/// manifest an index lists, each config and layer, and each referrer's
/// subject are there.
async fn assert_whole(client: &registry_action::registry::Registry, repository: &str, tag: &str) {
    use registry_action::registry::contents::Contents;
    let mut queue = std::collections::VecDeque::from([tag.to_owned()]);
    let mut seen = 0;
    while let Some(reference) = queue.pop_front() {
        seen += 1;
        assert!(
            seen < 64,
            "`{tag}` nests more manifests than publish writes"
        );
        let manifest = client
            .manifest(repository, &reference)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("`{tag}` names {reference}, which is gone"));
        if let Some(subject) = manifest.subject() {
            let there = client.manifest(repository, &subject).await.unwrap();
            assert!(
                there.is_some(),
                "`{tag}`: {reference} is about {subject}, which is gone"
            );
        }
        match manifest.contents().unwrap() {
            Contents::Image { config, layers } => {
                for blob in std::iter::once(config).chain(layers) {
                    let digest = blob.digest.as_str();
                    assert!(
                        client.has_blob(repository, digest).await.unwrap(),
                        "`{tag}`: {reference} lists blob {digest}, which is gone"
                    );
                }
            }
            Contents::Index { manifests, .. } => {
                queue.extend(manifests.iter().map(|m| m.digest.as_str().to_owned()));
            }
        }
    }
}

#[tokio::test]
async fn cleanup_of_platform_images_signed_both_ways_leaves_no_orphan_and_nothing_broken() {
    let ns = "sc3-clean-both";
    let target = open();
    let cosign = target.cosign();
    let repo = crate::support::git::Repo::new();
    let mut indexes = Vec::new();
    for content in ["one", "two"] {
        repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY a /a\n");
        repo.write("ops/docker/app/a", content);
        let sha = repo.commit(content);
        let ran = target
            .with_login(publish(&repo, ns, "refs/heads/main", &sha))
            .input("platforms", "linux/amd64,linux/arm64")
            .input("sign-key", &cosign.private_pem())
            .input("sign-key-password", crate::supply::PASSWORD)
            .input("signature-format", "both")
            .run_async()
            .await;
        ran.assert_ok();
        indexes.push(ran.outputs["digest"].clone());
    }
    let repository = crate::publish::scoped(&format!("{ns}/app"));
    let client = target.client();
    let platform_images = |index: registry_action::registry::Manifest| -> Vec<String> {
        registry_action::oci::children(&index.bytes)
            .unwrap()
            .into_iter()
            .map(|c| c.digest.as_str().to_owned())
            .collect()
    };
    let mut images = Vec::new();
    for index in &indexes {
        let manifest = client.manifest(&repository, index).await.unwrap().unwrap();
        images.push(platform_images(manifest));
    }
    // cosign 3.1's own bundle beside ours on an old platform image.
    cosign
        .sign3("sign", &[&target.image(ns, &images[0][0])])
        .unwrap();
    let tags = client.tags(&repository).await.unwrap();
    let fallback = |d: &str| d.replacen(':', "-", 1);
    for image in &images[0] {
        for tag in [fallback(image), format!("{}.att", fallback(image))] {
            assert!(tags.contains(&tag), "{tag} in {tags:?}");
        }
    }

    let (namespace, _) = repository.split_once('/').unwrap();
    let cleaned = crate::support::run::Action::github(repo.path())
        .input("command", "cleanup")
        .input("registry", target.address)
        .input("namespace", namespace)
        .input("images", "app")
        // The newer index is kept by `latest`, whatever the push times.
        .input("keep", "0")
        .run_async()
        .await;
    cleaned.assert_ok();

    let left = client.tags(&repository).await.unwrap();
    for tag in &left {
        if let Some(subject) = registry_action::supply::cosign::attached_to(tag) {
            let there = client.manifest(&repository, &subject).await.unwrap();
            assert!(there.is_some(), "`{tag}` is an orphan: {left:?}\n{cleaned}");
        }
        assert_whole(&client, &repository, tag).await;
    }
    for gone in std::iter::once(&indexes[0]).chain(&images[0]) {
        let hex = &gone["sha256:".len()..];
        assert!(
            !left.iter().any(|t| t.contains(hex)),
            "nothing of {gone} is left: {left:?}\n{cleaned}"
        );
        let there = client.manifest(&repository, gone).await.unwrap();
        assert!(there.is_none(), "{gone} is deleted\n{cleaned}");
    }
    for kept in std::iter::once(&indexes[1]).chain(&images[1]) {
        let image = target.image(ns, kept);
        cosign
            .verify(&cosign.pub_path(), &image)
            .unwrap_or_else(|e| panic!("cosign 2.5 on the kept {image}: {e}"));
        cosign
            .verify3("verify-attestation", &["--type", "slsaprovenance1", &image])
            .unwrap_or_else(|e| panic!("cosign 3 on the kept {image}: {e}"));
    }
}
