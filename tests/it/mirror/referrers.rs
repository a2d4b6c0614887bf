//! A registry whose referrers API lists more referrers of one image than
//! a lookup reads (`support::referrers_registry` in front of a real
//! docker-registry, 257 real referrer manifests pushed): `mirror`,
//! `backup`, `usage` and `cleanup` stop, naming the repository and the
//! image's digest, with nothing written or deleted, rather than carry or
//! count some of them.

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use registry_action::registry::referrers::MAX_REFERRERS;

use super::*;
use crate::support::images::{Seeder, upload};
use crate::support::referrers_registry::ReferrersRegistry;

const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Referrer number `n` of `subject`: an artifact naming it, its config
/// and layer the empty blob (`empty`).
fn referrer(subject: &Manifest, empty: &(String, usize), n: usize) -> Manifest {
    let (digest, size) = empty;
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.note",
        "config": {"mediaType": EMPTY, "digest": digest, "size": size},
        "layers": [{"mediaType": EMPTY, "digest": digest, "size": size}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                    "size": subject.bytes.len()},
        "annotations": {"n": n.to_string()},
    }))
    .unwrap();
    Manifest {
        digest: sha256_digest(&bytes),
        bytes,
        media_type: OCI_MANIFEST.into(),
    }
}

/// Puts `count` referrers of `subject` by their digests.
async fn put_referrers(
    registry: &Registry,
    repository: &str,
    subject: &Manifest,
    count: usize,
) -> Vec<Manifest> {
    let empty = upload(registry, repository, b"{}".to_vec()).await;
    let made: Vec<Manifest> = (0..count).map(|n| referrer(subject, &empty, n)).collect();
    stream::iter(&made)
        .map(|manifest| registry.put_referrer(repository, manifest))
        .buffer_unordered(8)
        .try_collect::<Vec<bool>>()
        .await
        .unwrap();
    made
}

fn sha(n: u32) -> String {
    sha256_digest(format!("referrers commit {n}").as_bytes())[7..47].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn more_referrers_than_are_read_stop_every_command_naming_the_digest() {
    let front = ReferrersRegistry::start();
    let source = Registry::new(&front.address, None).unwrap();
    let repository = unique("many");
    let seeder = Seeder::new(&source, &repository).await;
    let (older, newer) = (sha(1), sha(2));
    let doomed = seeder.image(1, 1_700_000_000, &[&older]).await.manifest;
    seeder.image(2, 1_700_003_600, &[&newer]).await;
    put_referrers(&source, &repository, &doomed, MAX_REFERRERS + 1).await;
    let listed = source
        .referrers(&repository, &doomed.digest)
        .await
        .unwrap()
        .expect("the referrers API");
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(listed["manifests"].as_array().unwrap().len(), 257);
    let named = format!("{repository}@{}", doomed.digest);
    let too_many = format!("lists 257 referrers of `{named}`, more than the 256 read");

    let target = unique("many-copy");
    let ran = run_owned(&[
        ("command", "mirror".into()),
        ("from", format!("{}/{repository}", front.address)),
        ("to", format!("{}/{target}", services().registry_open)),
        ("tags", older.clone()),
    ])
    .await;
    ran.assert_failed(&too_many);
    assert!(
        open().manifest(&target, &older).await.unwrap().is_none(),
        "nothing copied\n{ran}"
    );

    let workspace = tempfile::tempdir().unwrap();
    let ran = run_owned_in(
        workspace.path(),
        &[
            ("command", "backup".into()),
            ("from", format!("{}/{repository}", front.address)),
            (
                "archive",
                workspace.path().join("backup").display().to_string(),
            ),
            ("tags", older.clone()),
        ],
    )
    .await;
    ran.assert_failed(&too_many);

    let (namespace, name) = repository.split_once('/').unwrap();
    let command = |command: &str| {
        let workspace = tempfile::tempdir().unwrap().keep();
        Action::github(&workspace)
            .input("command", command)
            .input("registry", &front.address)
            .input("namespace", namespace)
            .input("images", name)
    };
    command("usage").run_async().await.assert_failed(&too_many);
    let ran = command("cleanup").input("keep", "1").run_async().await;
    ran.assert_failed(&too_many);
    let mut tags = source.tags(&repository).await.unwrap();
    tags.sort();
    let mut seeded = [older, newer];
    seeded.sort();
    assert_eq!(tags, seeded, "nothing deleted\n{ran}");
    assert!(
        source
            .manifest_digest(&repository, &doomed.digest)
            .await
            .unwrap()
            .is_some()
    );
}

/// A fallback index as cosign writes one where a registry has no
/// referrers API, under `tag`, listing `referrers`.
async fn put_fallback_index(
    registry: &Registry,
    repository: &str,
    tag: &str,
    referrers: &[Manifest],
) -> Manifest {
    let listed: Vec<serde_json::Value> = referrers
        .iter()
        .map(|r| {
            json!({"mediaType": r.media_type, "digest": r.digest, "size": r.bytes.len(),
                        "artifactType": "application/vnd.example.note"})
        })
        .collect();
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed,
    }))
    .unwrap();
    put(registry, repository, tag, bytes, OCI_INDEX).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fallback_tag_is_left_to_the_targets_api_only_where_it_lists_referrers_of_its_digest() {
    let from = open();
    let source = unique("fallback-src");
    let image = push_image(&from, &source, "image", "amd64", &[random_layer(8, 100)]).await;
    let other = push_image(&from, &source, "other", "amd64", &[random_layer(9, 100)]).await;
    let referrer = put_referrers(&from, &source, &image, 1).await.remove(0);
    // The image's own fallback index, and one under the other image's
    // fallback tag that lists the image's referrer all the same.
    let (own_tag, misplaced_tag) = (
        image.digest.replacen(':', "-", 1),
        other.digest.replacen(':', "-", 1),
    );
    put_fallback_index(&from, &source, &own_tag, std::slice::from_ref(&referrer)).await;
    let misplaced = put_fallback_index(
        &from,
        &source,
        &misplaced_tag,
        std::slice::from_ref(&referrer),
    )
    .await;

    let front = ReferrersRegistry::start();
    let to = Registry::new(&front.address, None).unwrap();
    let target = unique("fallback-dst");
    let ran = run_owned(&[
        ("command", "mirror".into()),
        ("from", format!("{}/{source}", services().registry_open)),
        ("to", format!("{}/{target}", front.address)),
        ("tags", format!("{own_tag}\n{misplaced_tag}")),
    ])
    .await;
    ran.assert_ok();
    let listed = to
        .referrers(&target, &image.digest)
        .await
        .unwrap()
        .expect("the referrers API");
    assert!(
        String::from_utf8_lossy(&listed).contains(&referrer.digest),
        "the target's API lists the referrer\n{ran}"
    );
    // The image's own index would only repeat the API: not written.
    let copied = copied(&ran);
    assert!(!copied.contains_key(&own_tag), "{ran}");
    assert!(to.manifest(&target, &own_tag).await.unwrap().is_none());
    assert!(
        ran.summary
            .contains("referrers copied; the target's referrers API lists them"),
        "{ran}"
    );
    // The other tag's index is about another digest: the API doesn't list
    // the referrer there, so the tag is copied as it is.
    assert_eq!(copied[&misplaced_tag], misplaced.digest.as_str(), "{ran}");
    assert_eq!(
        to.manifest(&target, &misplaced_tag)
            .await
            .unwrap()
            .unwrap()
            .digest,
        misplaced.digest
    );
}
