//! `merge` signs the index it writes from the platform jobs' digests, as
//! `publish` signs its image: the index digest (never a tag), cosign's
//! format, nothing added on a re-run, a bad key refused before anything is
//! written.

use registry_action::supply::cosign;

use crate::multiplatform::{merge, per_platform_repo, push_each};
use crate::publish::{set, tags};
use crate::supply::{PASSWORD, layers, open, secret_lines, unmasked, verify};
use crate::support::secret::assert_absent;

#[tokio::test]
async fn merge_signs_the_index_it_writes_and_cosign_verifies_it() {
    let target = open();
    let ns = "sc-merge";
    let (repo, sha) = per_platform_repo();
    let cosign = target.cosign();
    let key = cosign.private_pem();
    let signed_merge = |digests: &[&str], key: &str| {
        merge(&repo, ns, "refs/heads/main", &sha, digests)
            .input("sign-key", key)
            .input("sign-key-password", PASSWORD)
    };

    let pushed = push_each(
        &repo,
        ns,
        "refs/heads/main",
        &sha,
        &["linux/amd64", "linux/arm64"],
    )
    .await;
    let digests: Vec<&str> = pushed.iter().map(String::as_str).collect();

    signed_merge(&digests, "not-a-key-5e1f")
        .run_async()
        .await
        .assert_failed("`sign-key` can't be used: it is not PEM");
    assert!(
        tags(target.address, &format!("{ns}/app"), None)
            .await
            .is_empty(),
        "no index without a usable key"
    );

    let ran = signed_merge(&digests, &key).run_async().await;
    ran.assert_ok();
    ran.assert_secret_masked_only(PASSWORD);
    let told = unmasked(&format!("{ran}"));
    for line in secret_lines(&key) {
        assert!(ran.stdout.contains(&format!("::add-mask::{line}")), "{ran}");
        assert_absent(&told, &line, "the run");
    }
    let index = ran.outputs["digest"].clone();
    assert!(
        ran.summary.contains(&format!("signed {index}")),
        "{}",
        ran.summary
    );
    assert_eq!(
        tags(target.address, &format!("{ns}/app"), None).await,
        set(&[&sha, "latest", &cosign::tag(&index, "sig")]),
        "the index is signed, by digest; the children are not"
    );

    let image = target.image(ns, &index);
    let payloads = cosign.verify(&cosign.pub_path(), &image).unwrap();
    assert_eq!(payloads.len(), 1);
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        index
    );
    let latest = format!("{}:latest", image.split_once('@').unwrap().0);
    cosign
        .verify(&cosign.pub_path(), &latest)
        .expect("cosign resolves `latest` to the signed index");
    verify(&repo, target, &latest, &cosign.public_pem(), None).assert_ok();

    let again = signed_merge(&[digests[1], digests[0]], &key)
        .run_async()
        .await;
    again.assert_ok();
    assert!(
        again.summary.contains("already signed with this key"),
        "{}",
        again.summary
    );
    assert_eq!(
        layers(target, ns, &index, "sig").await.len(),
        1,
        "idempotent"
    );
}
