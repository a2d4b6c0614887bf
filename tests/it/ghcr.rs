//! `cleanup` through GitHub's Packages API, as on ghcr.io: a local server
//! answers as the API does (`support/packages.rs`) in front of the real
//! docker-registry, which holds the images: multi-arch indexes with
//! buildx attestation manifests, cosign `.sig` tags, an OCI referrer and
//! the referrers fallback index, an old SHA tag on `latest`'s image, an
//! untagged leftover. Deleting a version deletes its manifest from the
//! registry, so `validate` reads back what really is left.

use std::collections::BTreeSet;
use std::time::Duration;

use registry_action::registry::{Manifest, Registry, sha256_digest};
use serde_json::{Value, json};

use crate::support::images::{Seeder, put_image, upload};
use crate::support::packages::{Fault, PackagesApi, TOKEN};
use crate::support::run::{Action, Ran};
use crate::support::services::services;

const T0: i64 = 1_700_000_000;
const HOUR: i64 = 3600;
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha(n: u32) -> String {
    sha256_digest(format!("commit {n}").as_bytes())[7..47].to_owned()
}

fn unique() -> String {
    format!(
        "ghcr-{}/app",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// `sha256-<hex>` of `digest`, with `suffix` when given.
fn attached(digest: &str, suffix: &str) -> String {
    let stem = digest.replacen(':', "-", 1);
    if suffix.is_empty() {
        stem
    } else {
        format!("{stem}.{suffix}")
    }
}

/// Pushes `body` under `reference` (a tag, or its own digest).
async fn put(registry: &Registry, repository: &str, body: &Value, tags: &[&str]) -> Manifest {
    let bytes = serde_json::to_vec(body).unwrap();
    let manifest = Manifest {
        digest: sha256_digest(&bytes),
        media_type: body["mediaType"].as_str().unwrap().to_owned(),
        bytes,
    };
    let digest = manifest.digest.clone();
    for reference in tags.iter().copied().chain([digest.as_str()]) {
        registry
            .put_manifest(repository, reference, &manifest)
            .await
            .unwrap();
    }
    manifest
}

fn descriptor(m: &Manifest) -> Value {
    json!({"mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len()})
}

/// The package under test, and what a correct cleanup with `keep: 1`
/// leaves of it.
struct Package {
    registry: Registry,
    repository: String,
    /// Every manifest, by what it is.
    all: BTreeSet<String>,
    kept: BTreeSet<String>,
    untagged_leftover: String,
    /// The `sha256-<hex>` tag of the kept index's referrers.
    fallback: String,
    all_tags: BTreeSet<String>,
    deleted_tags: BTreeSet<String>,
    /// Children of the deleted index (that must be gone) and of the kept
    /// one (that must stay).
    deleted_children: Vec<String>,
    kept_children: Vec<String>,
}

struct Pusher<'a> {
    seeder: Seeder<'a>,
    api: &'a PackagesApi,
    package: &'a mut Package,
}

impl Pusher<'_> {
    async fn add(&mut self, manifest: &Manifest, created: i64, kept: bool) -> String {
        self.api.add(&manifest.digest, created).await;
        self.package.all.insert(manifest.digest.clone());
        if kept {
            self.package.kept.insert(manifest.digest.clone());
        }
        manifest.digest.clone()
    }

    /// Image `n` made at `created`, under `tags` (or by digest alone).
    async fn image(&mut self, n: u32, created: i64, tags: &[&str], kept: bool) -> Manifest {
        let seeded = self.seeder.image(n, created, tags).await;
        let manifest = seeded.manifest;
        self.seeder
            .registry
            .put_manifest(&self.seeder.repository, &manifest.digest, &manifest)
            .await
            .unwrap();
        self.add(&manifest, created, kept).await;
        manifest
    }

    /// What buildx pushes beside an image: an in-toto statement about it.
    async fn attestation(&mut self, subject: &Manifest, created: i64, kept: bool) -> Manifest {
        let registry = self.seeder.registry;
        let repository = self.seeder.repository.clone();
        let statement = json!({"_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": "_", "digest": {"sha256": &subject.digest[7..]}}],
            "predicate": {}});
        let layer = upload(
            registry,
            &repository,
            serde_json::to_vec(&statement).unwrap(),
        )
        .await;
        let config = serde_json::to_vec(&json!({"architecture": "unknown", "os": "unknown",
            "rootfs": {"type": "layers", "diff_ids": []}}))
        .unwrap();
        let manifest = put_image(registry, &repository, config, &[layer], &[]).await;
        registry
            .put_manifest(&repository, &manifest.digest, &manifest)
            .await
            .unwrap();
        self.add(&manifest, created, kept).await;
        manifest
    }

    /// A buildx multi-arch index: two platforms, an attestation each.
    async fn multi_arch(&mut self, n: u32, created: i64, tags: &[&str], kept: bool) -> Manifest {
        let amd64 = self.image(n, created, &[], kept).await;
        let arm64 = self.image(n + 1, created, &[], kept).await;
        let mut manifests = Vec::new();
        let mut children = Vec::new();
        for (image, arch) in [(&amd64, "amd64"), (&arm64, "arm64")] {
            let mut d = descriptor(image);
            d["platform"] = json!({"os": "linux", "architecture": arch});
            manifests.push(d);
            children.push(image.digest.clone());
        }
        for image in [&amd64, &arm64] {
            let attestation = self.attestation(image, created, kept).await;
            let mut d = descriptor(&attestation);
            d["platform"] = json!({"os": "unknown", "architecture": "unknown"});
            d["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest",
                                      "vnd.docker.reference.digest": image.digest});
            manifests.push(d);
            children.push(attestation.digest.clone());
        }
        let body = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        let index = put(self.seeder.registry, &self.seeder.repository, &body, tags).await;
        self.add(&index, created, kept).await;
        if kept {
            self.package.kept_children.extend(children);
        } else {
            self.package.deleted_children.extend(children);
        }
        index
    }

    /// A cosign-style signature under `sha256-<hex>.sig`.
    async fn signature(&mut self, n: u32, subject: &Manifest, kept: bool) -> String {
        let tag = attached(&subject.digest, "sig");
        self.image(n, T0, &[&tag], kept).await;
        tag
    }

    /// An OCI 1.1 referrer of `subject` (a `subject` field, no tag).
    async fn referrer(&mut self, subject: &Manifest, note: &str, kept: bool) -> Manifest {
        let registry = self.seeder.registry;
        let repository = self.seeder.repository.clone();
        let (empty, size) = upload(registry, &repository, b"{}".to_vec()).await;
        let blob = upload(registry, &repository, subject.digest.clone().into_bytes()).await;
        let body = json!({"schemaVersion": 2, "mediaType": IMAGE,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": size},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                        "digest": blob.0, "size": blob.1}],
            "subject": descriptor(subject),
            "annotations": {"org.example.note": note}});
        let manifest = put(registry, &repository, &body, &[]).await;
        self.add(&manifest, T0, kept).await;
        manifest
    }
}

/// The package: `latest` and the old `sha(0)` on image O (signed, and a
/// referrer of it no index lists); the
/// multi-arch index A (`sha(1)`, doomed) and B (`sha(2)`, the newest: kept,
/// with a referrer listed by its `sha256-<hex>` fallback index); image D
/// (`sha(3)`, doomed, signed, with a referrer its fallback index lists
/// and one no index lists);
/// a leftover U.
async fn seed(api: &PackagesApi, registry: Registry, repository: &str) -> Package {
    let mut package = Package {
        registry: Registry::new(registry.name(), None).unwrap(),
        repository: repository.to_owned(),
        all: BTreeSet::new(),
        kept: BTreeSet::new(),
        untagged_leftover: String::new(),
        fallback: String::new(),
        all_tags: BTreeSet::new(),
        deleted_tags: BTreeSet::new(),
        deleted_children: Vec::new(),
        kept_children: Vec::new(),
    };
    let mut p = Pusher {
        seeder: Seeder::new(&registry, repository).await,
        api,
        package: &mut package,
    };
    let o = p.image(0, T0, &["latest", &sha(0)], true).await;
    let sig_o = p.signature(100, &o, true).await;
    // A referrer of O that no index lists: kept for its subject alone.
    p.referrer(&o, "unlisted", true).await;
    let _a = p.multi_arch(10, T0 + HOUR, &[&sha(1)], false).await;
    let d = p.image(20, T0 + 2 * HOUR, &[&sha(3)], false).await;
    let sig_d = p.signature(101, &d, false).await;
    // D's referrer, as cosign 3 stores a bundle where there is no
    // referrers API: listed by the `sha256-<hex>` fallback index.
    let referrer_d = p.referrer(&d, "listed", false).await;
    let fallback_d = attached(&d.digest, "");
    let body =
        json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [descriptor(&referrer_d)]});
    let listing_d = put(&registry, repository, &body, &[&fallback_d]).await;
    p.add(&listing_d, T0, false).await;
    // And one no index lists: it goes for its subject alone.
    p.referrer(&d, "unlisted", false).await;
    let b = p.multi_arch(30, T0 + 3 * HOUR, &[&sha(2)], true).await;
    let referrer = p.referrer(&b, "listed", true).await;
    let fallback = attached(&b.digest, "");
    let body =
        json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [descriptor(&referrer)]});
    let listing = put(&registry, repository, &body, &[&fallback]).await;
    p.add(&listing, T0, true).await;
    let leftover = p.image(40, T0, &[], true).await;
    drop(p);
    package.untagged_leftover = leftover.digest;
    package.fallback = fallback.clone();
    package.all_tags = [
        "latest".into(),
        sha(0),
        sig_o,
        sha(1),
        sha(3),
        sig_d.clone(),
        sha(2),
        fallback,
    ]
    .into_iter()
    .collect();
    package.deleted_tags = [sha(1), sha(3), sig_d, fallback_d].into_iter().collect();
    package
}

fn cleanup(api: &PackagesApi, repository: &str) -> Action {
    let workspace = tempfile::tempdir().unwrap().keep();
    let (namespace, name) = repository.split_once('/').unwrap();
    Action::github(&workspace)
        .input("command", "cleanup")
        .input("registry", &services().registry_open)
        .input("packages-api", "github")
        .input("github-api-url", &api.url)
        .input("namespace", namespace)
        .input("images", name)
        .input("keep", "1")
        .input("username", "acme-bot")
        .input("password", TOKEN)
}

async fn tags(registry: &Registry, repository: &str) -> BTreeSet<String> {
    registry
        .tags(repository)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn deleted_tags(ran: &Ran, output: &str) -> BTreeSet<String> {
    let list: Value = serde_json::from_str(&ran.outputs[output]).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["tag"].as_str().unwrap().to_owned())
        .collect()
}

async fn present(package: &Package, digest: &str) -> bool {
    package
        .registry
        .manifest(&package.repository, digest)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread")]
async fn what_kept_images_need_stays_what_deleted_ones_had_goes_and_the_rest_is_read_back() {
    let s = services();
    let repository = unique();
    let api = PackagesApi::start(&s.registry_open, &repository, true, Fault::None).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let package = seed(&api, registry, &repository).await;
    assert_eq!(package.all.len(), 21);

    // A dry run lists every version with why it goes or stays.
    let dry = cleanup(&api, &repository)
        .input("dry-run", "true")
        .run_async()
        .await;
    dry.assert_ok();
    assert_eq!(api.deletes(), 0, "{dry}");
    assert_eq!(api.live().await, package.all);
    assert_eq!(deleted_tags(&dry, "planned"), package.deleted_tags, "{dry}");
    assert!(
        dry.summary
            .contains("21 package versions: 10 would delete, 11 kept"),
        "{dry}"
    );
    for line in [
        "would delete with the index sha256:".to_owned(),
        ", which it is about".to_owned(),
        "kept: untagged (`untagged: keep`)".to_owned(),
        format!("kept: part of the kept `{}`", sha(2)),
        "kept: about the kept sha256:".to_owned(),
        // The referrer of B, listed by B's referrers fallback index.
        format!("kept: part of the kept `{}`", package.fallback),
        "kept: a kept tag names it".to_owned(),
    ] {
        assert!(dry.summary.contains(&line), "{line}\n{dry}");
    }
    // The listing was read page by page (21 versions, 5 a page), twice:
    // to plan, and to re-check.
    let pages: Vec<String> = api
        .requests()
        .await
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("&page="))
        .collect();
    assert_eq!(pages.len(), 2 * 4, "{pages:?}");

    let ran = cleanup(&api, &repository).run_async().await;
    ran.assert_ok();
    assert_eq!(api.live().await, package.kept, "{ran}");
    let expected_tags: BTreeSet<String> = package
        .all_tags
        .difference(&package.deleted_tags)
        .cloned()
        .collect();
    assert_eq!(tags(&package.registry, &repository).await, expected_tags);
    assert_eq!(deleted_tags(&ran, "deleted"), package.deleted_tags);
    for child in &package.deleted_children {
        assert!(!present(&package, child).await, "{child} still there");
    }
    for child in &package.kept_children {
        assert!(present(&package, child).await, "{child} gone\n{ran}");
    }
    assert!(
        ran.summary
            .contains("Read back: every kept tag's manifests and blobs are there."),
        "{ran}"
    );
    assert!(
        ran.summary.contains(&format!(
            "- kept, same manifest as kept `latest` (deleting it would delete both) (1): `{}`",
            sha(0)
        )),
        "{ran}"
    );
    ran.assert_secret_masked_only(TOKEN);

    // `untagged: delete` takes the leftover, and nothing else.
    let again = cleanup(&api, &repository)
        .input("untagged", "delete")
        .run_async()
        .await;
    again.assert_ok();
    let mut left = package.kept.clone();
    left.remove(&package.untagged_leftover);
    assert_eq!(api.live().await, left, "{again}");
    assert_eq!(deleted_tags(&again, "deleted"), BTreeSet::new());
    assert_eq!(tags(&package.registry, &repository).await, expected_tags);
    assert!(
        again.summary.contains("Read back: every kept tag"),
        "{again}"
    );
}

/// Four SHA images an hour apart (`keep: 1` deletes three), each signed.
async fn seed_small(api: &PackagesApi, registry: &Registry, repository: &str) -> BTreeSet<String> {
    let seeder = Seeder::new(registry, repository).await;
    let mut tags = BTreeSet::new();
    for n in 0..4 {
        let image = seeder.image(n, T0 + i64::from(n) * HOUR, &[&sha(n)]).await;
        api.add(&image.manifest.digest, T0 + i64::from(n) * HOUR)
            .await;
        let sig = attached(&image.manifest.digest, "sig");
        let signature = seeder.image(50 + n, T0, &[&sig]).await;
        api.add(&signature.manifest.digest, T0).await;
        tags.extend([sha(n), sig]);
    }
    tags
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_packages_write_is_told_what_to_grant_and_nothing_goes() {
    let s = services();
    let repository = unique();
    // A user's package: the organization route answers 404 first.
    let api = PackagesApi::start(&s.registry_open, &repository, false, Fault::DenyDeletes).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let all = seed_small(&api, &registry, &repository).await;
    let ran = cleanup(&api, &repository).run_async().await;
    ran.assert_failed("`packages: write`");
    ran.assert_failed("Admin role");
    ran.assert_failed("\"Resource not accessible by integration\"");
    ran.assert_failed("stopped with 0 of");
    assert_eq!(tags(&registry, &repository).await, all);
    let requests = api.requests().await;
    assert!(requests[0].starts_with("GET /orgs/"), "{requests:?}");
    assert!(requests[1].starts_with("GET /users/"), "{requests:?}");
    ran.assert_secret_masked_only(TOKEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_api_elsewhere_is_refused_before_the_token_goes_to_it() {
    let s = services();
    let repository = unique();
    let mut api = PackagesApi::start(&s.registry_open, &repository, true, Fault::None).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let all = seed_small(&api, &registry, &repository).await;
    api.url = crate::support::not_loopback(&api.url);
    let ran = cleanup(&api, &repository).run_async().await;
    ran.assert_failed("`github-api-url`: http://[::ffff:7f00:1]:");
    ran.assert_failed(
        "is not a GitHub API root (plain http sends the login in the clear: use https; http is for a loopback host only, 127.0.0.0/8, ::1 or localhost); give the API root",
    );
    assert_eq!(api.requests().await, Vec::<String>::new());
    assert_eq!(tags(&registry, &repository).await, all);
    ran.assert_secret_masked_only(TOKEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_rate_limit_is_waited_out_when_github_says_how_long() {
    let s = services();
    let repository = unique();
    let api = PackagesApi::start(&s.registry_open, &repository, true, Fault::RateLimited).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    seed_small(&api, &registry, &repository).await;
    let started = std::time::Instant::now();
    let ran = cleanup(&api, &repository)
        .input("dry-run", "true")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(started.elapsed() >= Duration::from_secs(1), "{ran}");
    assert_eq!(deleted_tags(&ran, "planned").len(), 6, "{ran}");
    let requests = api.requests().await;
    assert_eq!(requests[0], requests[1], "{requests:?}");
    assert_eq!(requests[1], requests[2], "{requests:?}");
    assert!(ran.stderr.contains("asking again in"), "{ran}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_spent_for_long_ends_the_run_at_once_saying_to_run_again() {
    let s = services();
    let repository = unique();
    let api = PackagesApi::start(&s.registry_open, &repository, true, Fault::SpentForLong).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let all = seed_small(&api, &registry, &repository).await;
    let started = std::time::Instant::now();
    let ran = cleanup(&api, &repository).run_async().await;
    ran.assert_failed("rate limit is spent");
    ran.assert_failed("run again after it resets");
    assert!(started.elapsed() < Duration::from_secs(20), "{ran}");
    assert_eq!(api.requests().await.len(), 1, "not asked again");
    assert_eq!(tags(&registry, &repository).await, all);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_resumed_finishes_the_job_and_keeps_what_it_kept() {
    let s = services();
    let repository = unique();
    let api = PackagesApi::start(&s.registry_open, &repository, true, Fault::None).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let all = seed_small(&api, &registry, &repository).await;
    let kept: BTreeSet<String> = [sha(3), attached_tag(&registry, &repository, &sha(3)).await]
        .into_iter()
        .collect();
    api.hold_deletes_from(2);
    let mut child = cleanup(&api, &repository)
        .command()
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if api.deletes() > 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(api.deletes() > 2, "the run never reached its third delete");
    child.kill().unwrap();
    child.wait().unwrap();
    let midway = tags(&registry, &repository).await;
    assert!(kept.is_subset(&midway), "{midway:?}");
    assert!(
        midway.len() < all.len() && midway.len() > kept.len(),
        "{midway:?}"
    );

    api.release_deletes();
    let rerun = cleanup(&api, &repository).run_async().await;
    rerun.assert_ok();
    assert_eq!(tags(&registry, &repository).await, kept, "{rerun}");
    let gone: BTreeSet<String> = all.difference(&midway).cloned().collect();
    let rest: BTreeSet<String> = midway.difference(&kept).cloned().collect();
    assert!(!gone.is_empty());
    assert_eq!(deleted_tags(&rerun, "deleted"), rest, "{rerun}");
    assert!(
        rerun.summary.contains("Read back: every kept tag"),
        "{rerun}"
    );
}

/// The `.sig` tag of the image `tag` names.
async fn attached_tag(registry: &Registry, repository: &str, tag: &str) -> String {
    let digest = registry
        .manifest_digest(repository, tag)
        .await
        .unwrap()
        .unwrap();
    attached(&digest, "sig")
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_names_the_kept_tag_a_missing_child_broke() {
    let s = services();
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let repository = unique();
    let seeder = Seeder::new(&registry, &repository).await;
    let amd64 = seeder.image(0, T0, &["amd64"]).await.manifest;
    let arm64 = seeder.image(1, T0, &["arm64"]).await.manifest;
    let body = json!({"schemaVersion": 2, "mediaType": INDEX,
        "manifests": [descriptor(&amd64), descriptor(&arm64)]});
    put(&registry, &repository, &body, &["1.0.0"]).await;
    for n in 2..4 {
        seeder.image(n, T0 + i64::from(n) * HOUR, &[&sha(n)]).await;
    }
    // The arm64 image goes behind the release's back.
    registry
        .delete_manifest(&repository, &arm64.digest)
        .await
        .unwrap();
    let (namespace, name) = repository.split_once('/').unwrap();
    let workspace = tempfile::tempdir().unwrap().keep();
    let ran = Action::github(&workspace)
        .input("command", "cleanup")
        .input("registry", &s.registry_open)
        .input("namespace", namespace)
        .input("images", name)
        .input("keep", "1")
        .run_async()
        .await;
    assert_eq!(ran.code, 1, "{ran}");
    let error = format!(
        "{repository}:1.0.0 lacks manifest {} listed by",
        arm64.digest
    );
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with("::error") && l.contains(&error)),
        "{error}\n{ran}"
    );
    assert!(ran.stdout.contains("`validate`: 1 pieces"), "{ran}");
    assert!(
        ran.summary.contains("**Read back: 1 pieces missing.**"),
        "{ran}"
    );
    // The cleanup itself went through: the old SHA tag is gone.
    assert!(!tags(&registry, &repository).await.contains(&sha(2)));
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_counts_tagged_and_untagged_versions_and_what_the_untagged_hold() {
    let s = services();
    let repository = unique();
    let api = PackagesApi::start(&s.registry_open, &repository, true, Fault::None).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    seed_small(&api, &registry, &repository).await;
    let seeder = Seeder::new(&registry, &repository).await;
    // Made at a time of its own: its config is no other image's.
    let leftover = seeder.image(90, T0 + 99 * HOUR, &[]).await;
    registry
        .put_manifest(&repository, &leftover.manifest.digest, &leftover.manifest)
        .await
        .unwrap();
    api.add(&leftover.manifest.digest, T0).await;
    let (namespace, name) = repository.split_once('/').unwrap();
    let workspace = tempfile::tempdir().unwrap().keep();
    let ran = Action::github(&workspace)
        .input("command", "usage")
        .input("registry", &s.registry_open)
        .input("packages-api", "github")
        .input("github-api-url", &api.url)
        .input("namespace", namespace)
        .input("images", name)
        .input("username", "acme-bot")
        .input("password", TOKEN)
        .run_async()
        .await;
    ran.assert_ok();
    let report: Value = serde_json::from_str(&ran.outputs["report"]).unwrap();
    let measured = &report["repositories"][0];
    // Four images' tags; their four `.sig` tags are counted apart.
    assert_eq!(measured["tags"], 4, "{ran}");
    assert_eq!(measured["signatures"], 4, "{ran}");
    assert_eq!(
        measured["versions"],
        json!({"tagged": 8, "untagged": 1, "untagged-bytes": leftover.own_bytes}),
        "{ran}"
    );
    assert!(
        ran.summary
            .contains("9 package versions, 8 tagged and 1 untagged"),
        "{ran}"
    );
    // Without a token the registry API alone is read, as before.
    let plain = Action::github(&tempfile::tempdir().unwrap().keep())
        .input("command", "usage")
        .input("registry", &s.registry_open)
        .input("packages-api", "github")
        .input("github-api-url", &api.url)
        .input("namespace", namespace)
        .input("images", name)
        .run_async()
        .await;
    plain.assert_ok();
    let report: Value = serde_json::from_str(&plain.outputs["report"]).unwrap();
    assert_eq!(
        report["repositories"][0]["versions"],
        Value::Null,
        "{plain}"
    );
    assert_eq!(report["repositories"][0]["tags"], 4, "{plain}");
}

#[tokio::test]
async fn monitor_counts_tagged_and_untagged_versions_as_usage_does() {
    let s = services();
    let repository = unique();
    let api = PackagesApi::start(&s.registry_open, &repository, true, Fault::None).await;
    let registry = Registry::new(&s.registry_open, None).unwrap();
    seed_small(&api, &registry, &repository).await;
    let seeder = Seeder::new(&registry, &repository).await;
    let leftover = seeder.image(91, T0 + 98 * HOUR, &[]).await;
    registry
        .put_manifest(&repository, &leftover.manifest.digest, &leftover.manifest)
        .await
        .unwrap();
    api.add(&leftover.manifest.digest, T0).await;
    let (namespace, name) = repository.split_once('/').unwrap();
    let workspace = tempfile::tempdir().unwrap().keep();
    let ran = Action::github(&workspace)
        .input("command", "monitor")
        .input("report-file", "monitor.json")
        .input("registry", &s.registry_open)
        .input("packages-api", "github")
        .input("github-api-url", &api.url)
        .input("namespace", namespace)
        .input("images", name)
        .input("username", "acme-bot")
        .input("password", TOKEN)
        .input("scanner", "none")
        .input("tag", &sha(3))
        .run_async()
        .await;
    ran.assert_ok();
    let file = std::fs::read_to_string(workspace.join("monitor.json")).unwrap();
    let report: Value = serde_json::from_str(&file).unwrap();
    let measured = &report["repositories"][0];
    // Four images' tags; their four `.sig` tags are counted apart.
    assert_eq!(measured["tags"], 4, "{ran}");
    assert_eq!(measured["signatures"], 4, "{ran}");
    assert_eq!(
        measured["versions"],
        json!({"tagged": 8, "untagged": 1, "untagged-bytes": leftover.own_bytes}),
        "{ran}"
    );
    assert_eq!(report["status"], "ok", "{ran}");
}
