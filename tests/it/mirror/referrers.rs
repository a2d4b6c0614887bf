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

/// Puts `count` referrers of `subject`, each a distinct artifact naming it.
async fn put_referrers(registry: &Registry, repository: &str, subject: &Manifest, count: usize) {
    let (empty, size) = upload(registry, repository, b"{}".to_vec()).await;
    stream::iter(0..count)
        .map(|n| {
            let bytes = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.note",
                "config": {"mediaType": EMPTY, "digest": empty, "size": size},
                "layers": [{"mediaType": EMPTY, "digest": empty, "size": size}],
                "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                            "size": subject.bytes.len()},
                "annotations": {"n": n.to_string()},
            }))
            .unwrap();
            let manifest = Manifest {
                digest: sha256_digest(&bytes),
                bytes,
                media_type: OCI_MANIFEST.into(),
            };
            async move { registry.put_referrer(repository, &manifest).await }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<bool>>()
        .await
        .unwrap();
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
