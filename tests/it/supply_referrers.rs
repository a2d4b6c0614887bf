//! Referrers on a registry with the OCI 1.1 referrers API (none runs here:
//! `support::referrers_registry` puts it in front of a real
//! docker-registry): cosign 3.1 signs and attests there with no fallback
//! tag; `mirror` lists the referrers through the API and pushes them so the
//! target's API lists them, `backup` keeps them in the layout under the
//! fallback tag, `restore` pushes them back and writes no fallback tag
//! where the API is, and a target without the API gets the fallback index.
//! Digests unchanged; cosign 3.1 and our `verify` verify every copy.

use std::collections::BTreeSet;

use crate::publish::{publish, scoped};
use crate::supply::{Target, image_repo, open, verify};
use crate::support::cosign::Cosign;
use crate::support::git::Repo;
use crate::support::referrers_registry::ReferrersRegistry;
use crate::support::run::{Action, Ran};

/// The referrer digests `target`'s referrers API lists for `digest`.
async fn api_lists(target: Target<'_>, ns: &str, digest: &str) -> BTreeSet<String> {
    let index = target
        .client()
        .referrers(&scoped(&format!("{ns}/app")), digest)
        .await
        .unwrap()
        .expect("the registry has the referrers API");
    listed_of(&index)
}

fn listed_of(index: &[u8]) -> BTreeSet<String> {
    let index: serde_json::Value = serde_json::from_slice(index).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect()
}

async fn tags_of(target: Target<'_>, ns: &str) -> Vec<String> {
    target
        .client()
        .tags(&scoped(&format!("{ns}/app")))
        .await
        .unwrap()
}

fn copy(repo: &Repo, command: &str, from: &str, to: &str, archive: &str) -> Ran {
    let mut action = Action::github(repo.path())
        .input("command", command)
        .input("tags", "latest");
    if !from.is_empty() {
        action = action.input("from", from);
    }
    if !to.is_empty() {
        action = action.input("to", to);
    }
    if !archive.is_empty() {
        action = action.input("archive", archive);
    }
    let ran = action.run();
    ran.assert_ok();
    ran
}

fn repository(target: Target<'_>, ns: &str) -> String {
    format!("{}/{}", target.address, scoped(&format!("{ns}/app")))
}

/// cosign 3.1 and our `verify` both find the signature and the SBOM
/// attestation of `digest` in `ns` on `target`.
fn verifies(repo: &Repo, cosign: &Cosign, target: Target<'_>, ns: &str, digest: &str) -> Ran {
    let image = target.image(ns, digest);
    cosign
        .verify3("verify", &[&image])
        .unwrap_or_else(|e| panic!("cosign 3 on {image}: {e}"));
    cosign
        .verify3("verify-attestation", &["--type", "cyclonedx", &image])
        .unwrap_or_else(|e| panic!("cosign 3 on {image}: {e}"));
    let ours = verify(
        repo,
        target,
        &image,
        &cosign.public_pem(),
        Some("cyclonedx"),
    );
    ours.assert_ok();
    ours
}

fn assert_referrer_rows(ran: &Ran, digest: &str, referrers: &BTreeSet<String>, rest: &str) {
    for referrer in referrers {
        let row = format!("| `{referrer}` | `{digest}` | {rest} |");
        assert!(ran.summary.contains(&row), "{row} in {}", ran.summary);
    }
}

#[tokio::test]
async fn referrers_travel_by_the_referrers_api_and_by_the_fallback_tag_where_it_lacks() {
    let registry = ReferrersRegistry::start();
    let api = Target {
        address: &registry.address,
        login: None,
    };
    let repo = image_repo();
    let cosign = api.cosign();
    let ran = api
        .with_login(publish(&repo, "rf", "refs/heads/main", &repo.head()))
        .run_async()
        .await;
    ran.assert_ok();
    let digest = ran.outputs["digest"].clone();
    let image = api.image("rf", &digest);
    let fallback = digest.replacen(':', "-", 1);
    cosign.sign3("sign", &[&image]).unwrap();
    let sbom = cosign.path("sbom.json");
    std::fs::write(
        &sbom,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"name":"a","type":"library"}]}"#,
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
    // cosign 3 took the API's answer: no fallback tag.
    let referrers = api_lists(api, "rf", &digest).await;
    assert_eq!(referrers.len(), 2, "a signature and an attestation");
    assert!(!tags_of(api, "rf").await.contains(&fallback));
    let ours = verifies(&repo, &cosign, api, "rf", &digest);
    assert!(
        ours.summary
            .contains("| signature | Sigstore bundle v0.3 | referrers API (sha256:"),
        "{}",
        ours.summary
    );

    // API to API: listed by the target's API, no fallback tag written.
    let source = repository(api, "rf");
    let mirrored = copy(&repo, "mirror", &source, &repository(api, "rf-api"), "");
    assert_referrer_rows(&mirrored, &digest, &referrers, "copied | its referrers API");
    assert_eq!(api_lists(api, "rf-api", &digest).await, referrers);
    assert!(!tags_of(api, "rf-api").await.contains(&fallback));
    verifies(&repo, &cosign, api, "rf-api", &digest);
    let again = copy(&repo, "mirror", &source, &repository(api, "rf-api"), "");
    assert_referrer_rows(
        &again,
        &digest,
        &referrers,
        "up to date | its referrers API",
    );

    // API to a registry without it: the fallback index lists them.
    let plain = open();
    let mirrored = copy(&repo, "mirror", &source, &repository(plain, "rf-plain"), "");
    let tag_cell = format!("the fallback tag `{fallback}`");
    assert_referrer_rows(
        &mirrored,
        &digest,
        &referrers,
        &format!("copied | {tag_cell}"),
    );
    let index = plain
        .client()
        .manifest(&scoped("rf-plain/app"), &fallback)
        .await
        .unwrap()
        .expect("a fallback index");
    assert_eq!(listed_of(&index.bytes), referrers);
    verifies(&repo, &cosign, plain, "rf-plain", &digest);

    // Backed up to a layout (no API: the fallback tag), restored where the
    // API is: pushed as referrers, the tag not written.
    let backup = copy(&repo, "backup", &source, "", "rf.tar");
    assert_referrer_rows(
        &backup,
        &digest,
        &referrers,
        &format!("copied | {tag_cell}"),
    );
    let restored = copy(&repo, "restore", "", &repository(api, "rf-back"), "rf.tar");
    let row = format!(
        "| `{fallback}` | `{}` | referrers copied; the target's referrers API lists them |",
        index.digest
    );
    assert!(
        restored.summary.contains(&row),
        "{row} in {}",
        restored.summary
    );
    let copied: serde_json::Value = serde_json::from_str(&restored.outputs["copied"]).unwrap();
    assert_eq!(
        copied,
        serde_json::json!({"latest": digest}),
        "no fallback tag"
    );
    assert_eq!(api_lists(api, "rf-back", &digest).await, referrers);
    assert!(!tags_of(api, "rf-back").await.contains(&fallback));
    verifies(&repo, &cosign, api, "rf-back", &digest);
}

/// The platform images of the index `digest` in `ns` on `target`.
async fn platform_images(target: Target<'_>, ns: &str, digest: &str) -> Vec<String> {
    let index = target
        .client()
        .manifest(&scoped(&format!("{ns}/app")), digest)
        .await
        .unwrap()
        .expect("the index");
    registry_action::oci::children(&index.bytes)
        .unwrap()
        .into_iter()
        .map(|c| c.digest.as_str().to_owned())
        .collect()
}

/// cosign 3.1 verifies the provenance `publish` attested for the platform
/// image `digest` in `ns` on `target`.
fn child_provenance_verifies(cosign: &Cosign, target: Target<'_>, ns: &str, digest: &str) {
    let image = target.image(ns, digest);
    cosign
        .verify3("verify-attestation", &["--type", "slsaprovenance1", &image])
        .unwrap_or_else(|e| panic!("cosign 3 on the copy's platform image {image}: {e}"));
}

#[tokio::test]
async fn the_referrers_and_signature_tags_of_an_indexs_platform_images_travel_with_it() {
    let registry = ReferrersRegistry::start();
    let api = Target {
        address: &registry.address,
        login: None,
    };
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY a /a\n");
    repo.write("ops/docker/app/a", "app");
    repo.commit("app");
    let cosign = api.cosign();
    let ran = api
        .with_login(publish(&repo, "rfp", "refs/heads/main", &repo.head()))
        .input("platforms", "linux/amd64,linux/arm64")
        .input("sign-key", &cosign.private_pem())
        .input("sign-key-password", crate::supply::PASSWORD)
        .input("signature-format", "both")
        .run_async()
        .await;
    ran.assert_ok();
    let index = ran.outputs["digest"].clone();
    let children = platform_images(api, "rfp", &index).await;
    assert_eq!(children.len(), 2, "{children:?}");
    let source = repository(api, "rfp");
    let mut referrers = Vec::new();
    for child in &children {
        let listed = api_lists(api, "rfp", child).await;
        assert!(!listed.is_empty(), "publish attested {child} as a referrer");
        referrers.push(listed);
    }

    // API to API: each platform image's referrers listed by the target's
    // API, its legacy `.sig`/`.att` tags copied though `tags` names only
    // `latest`.
    let mirrored = copy(&repo, "mirror", &source, &repository(api, "rfp-api"), "");
    let tags = tags_of(api, "rfp-api").await;
    for (child, listed) in children.iter().zip(&referrers) {
        assert_referrer_rows(&mirrored, child, listed, "copied | its referrers API");
        assert_eq!(&api_lists(api, "rfp-api", child).await, listed);
        for suffix in [".sig", ".att"] {
            let tag = format!("{}{suffix}", child.replacen(':', "-", 1));
            assert!(tags.contains(&tag), "{tag} in {tags:?}");
        }
        child_provenance_verifies(&cosign, api, "rfp-api", child);
        cosign
            .verify_attestation(
                &cosign.pub_path(),
                "slsaprovenance1",
                &api.image("rfp-api", child),
            )
            .unwrap_or_else(|e| panic!("cosign 2.5 on the copy's {child}: {e}"));
    }

    // API to a registry without it: each platform image's fallback index;
    // then from there (fallback tags, no API) on to another: the fallback
    // indexes travel as tags, digest-exact.
    let plain = open();
    let mirrored = copy(
        &repo,
        "mirror",
        &source,
        &repository(plain, "rfp-plain"),
        "",
    );
    let mut fallbacks = Vec::new();
    for (child, listed) in children.iter().zip(&referrers) {
        let fallback = child.replacen(':', "-", 1);
        assert_referrer_rows(
            &mirrored,
            child,
            listed,
            &format!("copied | the fallback tag `{fallback}`"),
        );
        let index = plain
            .client()
            .manifest(&scoped("rfp-plain/app"), &fallback)
            .await
            .unwrap()
            .expect("a fallback index for the platform image");
        assert_eq!(&listed_of(&index.bytes), listed);
        fallbacks.push((fallback, index.digest));
        child_provenance_verifies(&cosign, plain, "rfp-plain", child);
    }
    let onward = copy(
        &repo,
        "mirror",
        &repository(plain, "rfp-plain"),
        &repository(plain, "rfp-onward"),
        "",
    );
    let copied: serde_json::Value = serde_json::from_str(&onward.outputs["copied"]).unwrap();
    for ((fallback, digest), child) in fallbacks.iter().zip(&children) {
        assert_eq!(copied[fallback], digest.as_str(), "{copied}");
        child_provenance_verifies(&cosign, plain, "rfp-onward", child);
    }
}

/// Whether `target` still has the manifest `digest` (a HEAD by digest).
async fn has(target: Target<'_>, ns: &str, digest: &str) -> bool {
    target
        .client()
        .manifest_digest(&scoped(&format!("{ns}/app")), digest)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn cleanup_deletes_the_referrers_the_api_lists_with_their_image_and_usage_counts_them() {
    let registry = ReferrersRegistry::start();
    let api = Target {
        address: &registry.address,
        login: None,
    };
    let ns = "rf-clean";
    let repo = image_repo();
    let cosign = api.cosign();
    let publish = || crate::supply_bundles::publish_in("bundle", api, ns, &repo, &cosign);
    let older = publish().await.outputs["digest"].clone();
    repo.write("ops/docker/app/rootfs/etc/app.conf", "v=2\n");
    repo.commit("second");
    let newer = publish().await.outputs["digest"].clone();
    let older_referrers = api_lists(api, ns, &older).await;
    let newer_referrers = api_lists(api, ns, &newer).await;
    assert_eq!(
        older_referrers.len(),
        3,
        "a signature, the SBOM, the provenance"
    );
    assert_eq!(newer_referrers.len(), 3);
    let repository = scoped(&format!("{ns}/app"));
    let (namespace, _) = repository.split_once('/').unwrap();
    let action = |command: &str| {
        api.with_login(
            Action::github(repo.path())
                .input("command", command)
                .input("namespace", namespace)
                .input("images", "app"),
        )
    };

    let usage = action("usage").run_async().await;
    usage.assert_ok();
    let report: serde_json::Value = serde_json::from_str(&usage.outputs["report"]).unwrap();
    let measured = &report["repositories"][0];
    assert_eq!(measured["signatures"], 6, "{report:#}");
    assert_eq!(measured["tags"], tags_of(api, ns).await.len(), "{report:#}");

    let cleanup = |dry_run: &str| {
        action("cleanup")
            .input("keep", "1")
            .input("dry-run", dry_run)
    };
    let planned = cleanup("true").run_async().await;
    planned.assert_ok();
    // One tag, its image and the image's three referrers.
    let row = format!("| `{repository}` | 1 | 4 |");
    assert!(
        planned.summary.contains(&row),
        "{row} in {}",
        planned.summary
    );
    assert_eq!(api_lists(api, ns, &older).await, older_referrers);

    let cleaned = cleanup("false").run_async().await;
    cleaned.assert_ok();
    assert!(
        cleaned.summary.contains(&row),
        "{row} in {}",
        cleaned.summary
    );
    assert!(!has(api, ns, &older).await, "{cleaned}");
    assert!(
        api_lists(api, ns, &older).await.is_empty(),
        "the API lists no referrer of the deleted image\n{cleaned}"
    );
    for referrer in &older_referrers {
        assert!(
            !has(api, ns, referrer).await,
            "{referrer} is gone\n{cleaned}"
        );
    }
    assert_eq!(api_lists(api, ns, &newer).await, newer_referrers);
    for referrer in &newer_referrers {
        assert!(has(api, ns, referrer).await, "{referrer} stays\n{cleaned}");
    }
    let kept = api.image(ns, &newer);
    cosign.verify3("verify", &[&kept]).unwrap();
    cosign
        .verify3("verify-attestation", &["--type", "cyclonedx", &kept])
        .unwrap();
}
