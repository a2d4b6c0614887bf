//! Several platforms, a new commit of an unchanged image directory: the
//! index of the same build key is released again — each platform's config
//! relabelled, every layer as it is, no build, no layer sent — and a
//! changed file, a moved base or a child gone from the registry builds
//! again.

use serde_json::Value;

use crate::buildkit::config_of;
use crate::multiplatform::{children, manifest};
use crate::publish::{publish, scoped};
use crate::support::engine_proxy::EngineProxy;
use crate::support::git::{Repo, noisy_app};
use crate::support::proxy::{Fault, Proxy};
use crate::support::services::services;

const KEY: &str = "io.github.webgrip.registry-action.build-key";
const BOTH: &str = "linux/amd64,linux/arm64";
const REVISION: &str = "org.opencontainers.image.revision";
const VERSION: &str = "org.opencontainers.image.version";
/// The labels a new commit changes.
const PER_COMMIT: [&str; 3] = [REVISION, "org.opencontainers.image.created", VERSION];

/// COPY only, so no platform needs emulation; each platform's image has
/// a file of its own beside the 1 MiB one they share.
fn app_repo() -> Repo {
    let repo = noisy_app(
        "FROM scratch\nARG TARGETARCH\nCOPY noise /noise\nCOPY arch-${TARGETARCH} /arch\n",
    );
    repo.write("ops/docker/app/arch-amd64", "amd64\n")
        .write("ops/docker/app/arch-arm64", "arm64\n");
    repo.commit("per-platform files");
    repo
}

fn key(manifest: &Value) -> &str {
    manifest["annotations"][KEY]
        .as_str()
        .unwrap_or_else(|| panic!("no build key: {manifest}"))
}

/// `repository:reference`, which must exist: its digest and body.
async fn read(repository: &str, reference: &str) -> (String, Value) {
    let (_, digest, body) = manifest(repository, reference).await;
    (
        digest.unwrap_or_else(|| panic!("{repository}:{reference} is missing")),
        body,
    )
}

/// Each child of `index`: its manifest and config.
async fn images(repository: &str, index: &Value) -> Vec<(Value, Value)> {
    let mut found = Vec::new();
    for (_, digest) in children(index) {
        let (_, child) = read(repository, &digest).await;
        found.push((child, config_of(repository, &digest).await));
    }
    found
}

/// `value` with `pointer`'s field set to what `other` has there.
fn with_field_of(mut value: Value, other: &Value, pointer: &str) -> Value {
    *value.pointer_mut(pointer).unwrap() = other.pointer(pointer).unwrap().clone();
    value
}

#[tokio::test]
async fn several_platforms_of_an_unchanged_directory_are_released_again_without_a_build() {
    let s = services();
    let repo = app_repo();
    let first = repo.head();
    let ran = publish(&repo, "t-same-multi", "refs/heads/main", &first)
        .input("platforms", BOTH)
        .run_async()
        .await;
    ran.assert_ok();
    let (before_digest, before) = read("t-same-multi/app", &first).await;
    let before_images = images("t-same-multi/app", &before).await;
    repo.write("README.md", "docs\n");
    let second = repo.commit("docs only");

    let engine = EngineProxy::start(&s.docker_socket);
    let counted = Proxy::start(&s.registry_open, Fault::DieAfter(u64::MAX));
    let ran = publish(&repo, "t-same-multi", "refs/heads/main", &second)
        .env("DOCKER_HOST", &engine.docker_host())
        .input("registry", &counted.address)
        .input("platforms", BOTH)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(engine.requests(), Vec::<String>::new(), "no build:\n{ran}");
    assert!(
        ran.summary.contains(&format!(
            "nothing changed since `{}` (same build key)",
            &first[..7]
        )),
        "{}",
        ran.summary
    );
    assert_eq!(ran.outputs["platform"], BOTH);

    // This commit's SHA tag and `latest` name one new index: the old one
    // with each child's digest and size replaced, its key the same.
    let (after_digest, after) = read("t-same-multi/app", &second).await;
    assert_eq!(ran.outputs["digest"], after_digest);
    assert_eq!(read("t-same-multi/app", "latest").await.0, after_digest);
    assert_ne!(after_digest, before_digest);
    assert_eq!(key(&after), key(&before));
    let mut expected = before.clone();
    for field in ["digest", "size"] {
        for i in 0..2 {
            expected = with_field_of(expected, &after, &format!("/manifests/{i}/{field}"));
        }
    }
    assert_eq!(after, expected);

    // Each child: the old manifest with the new config; the old config
    // with this commit's labels.
    let after_images = images("t-same-multi/app", &after).await;
    let mut new_configs = Vec::new();
    for ((old, old_config), (new, new_config)) in before_images.iter().zip(&after_images) {
        assert_eq!(key(new), key(old));
        assert_eq!(*new, with_field_of(old.clone(), new, "/config"));
        assert_ne!(new["config"], old["config"]);
        let labels = &new_config["config"]["Labels"];
        assert_eq!(labels[REVISION], second.as_str());
        assert_eq!(labels[VERSION], second.as_str());
        let relabelled = PER_COMMIT.iter().fold(old_config.clone(), |config, label| {
            let pointer = format!("/config/Labels/{}", label.replace('/', "~1"));
            with_field_of(config, new_config, &pointer)
        });
        assert_eq!(*new_config, relabelled);
        new_configs.push(new["config"]["digest"].as_str().unwrap().to_owned());
    }

    // Written: the two configs, the two images by digest, the index under
    // the SHA tag and `latest`; nothing else.
    let repository = format!("/v2/{}", scoped("t-same-multi/app"));
    let writes: Vec<String> = counted
        .writes()
        .into_iter()
        .map(|w| w.replace(&repository, ""))
        .collect();
    let uploads = writes
        .iter()
        .filter(|w| w.starts_with("POST /blobs/uploads/"))
        .count();
    assert_eq!(uploads, 2, "one upload per config: {writes:?}");
    let mut manifests: Vec<&str> = writes
        .iter()
        .filter_map(|w| w.strip_prefix("PUT /manifests/"))
        .collect();
    let new_children: Vec<String> = children(&after).into_iter().map(|(_, d)| d).collect();
    // The two images are written side by side, both before the index.
    manifests[..2].sort_unstable();
    let mut images: Vec<&str> = new_children.iter().map(String::as_str).collect();
    images.sort_unstable();
    assert_eq!(
        manifests,
        [images[0], images[1], second.as_str(), "latest"],
        "{writes:?}"
    );
    assert!(
        counted.sent() < 64 << 10,
        "no 1 MiB layer sent again: {} bytes",
        counted.sent()
    );

    // Read, each once: the access check, the SHA tag (absent), `latest`
    // and its first child with its config, the last change's index (the
    // same as `latest`'s), the second child with its config, whether the
    // registry has each new config, and the SHA tag's digest again just
    // before it is written.
    let reads: Vec<String> = counted
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") || r.starts_with("HEAD "))
        .map(|r| r.replace(&repository, ""))
        .collect();
    let mut distinct = reads.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), reads.len(), "read twice: {reads:?}");
    let old_children: Vec<String> = children(&before).into_iter().map(|(_, d)| d).collect();
    let mut expected = vec![
        "GET /tags/list".to_owned(),
        format!("GET /manifests/{second}"),
        "GET /manifests/latest".to_owned(),
        format!("GET /manifests/{first}"),
        format!("HEAD /blobs/{}", new_configs[0]),
        format!("HEAD /blobs/{}", new_configs[1]),
        format!("HEAD /manifests/{second}"),
    ];
    for ((old, _), digest) in before_images.iter().zip(&old_children) {
        expected.push(format!("GET /manifests/{digest}"));
        expected.push(format!(
            "GET /blobs/{}",
            old["config"]["digest"].as_str().unwrap()
        ));
    }
    expected.sort_unstable();
    assert_eq!(distinct, expected, "{reads:?}");
    for config in new_configs {
        assert!(crate::publish::has_blob("t-same-multi/app", &config).await);
    }
}

#[tokio::test]
async fn several_platforms_build_again_when_a_file_or_a_base_changes() {
    let s = services();
    let repo = Repo::new();
    let base = scoped("t-same-multi-base/base");
    repo.write("ops/docker/base/Dockerfile", "FROM scratch\nCOPY v /v\n")
        .write("ops/docker/base/v", "1\n")
        .write(
            "ops/docker/app/Dockerfile",
            &format!("FROM {}/{base}:latest\nCOPY app /app\n", s.registry_open),
        )
        .write("ops/docker/app/app", "1\n");
    let first = repo.commit("base and app");
    let publish_both = |path: &str, sha: &str| {
        publish(&repo, "t-same-multi-base", "refs/heads/main", sha)
            .input("path", path)
            .input("platforms", BOTH)
    };
    for path in ["ops/docker/base", "ops/docker/app"] {
        publish_both(path, &first).run_async().await.assert_ok();
    }
    let (_, app) = read("t-same-multi-base/app", &first).await;

    repo.write("ops/docker/app/app", "2\n");
    let second = repo.commit("app changes");
    let ran = publish_both("ops/docker/app", &second).run_async().await;
    ran.assert_ok();
    assert!(ran.stdout.contains("::group::build"), "built:\n{ran}");
    let (_, changed) = read("t-same-multi-base/app", &second).await;
    assert_ne!(key(&changed), key(&app));

    repo.write("ops/docker/base/v", "2\n");
    let third = repo.commit("base changes");
    publish_both("ops/docker/base", &third)
        .run_async()
        .await
        .assert_ok();
    let ran = publish_both("ops/docker/app", &third).run_async().await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains("::group::build"),
        "built on the new base:\n{ran}"
    );
    let (_, rebased) = read("t-same-multi-base/app", &third).await;
    assert_ne!(key(&rebased), key(&changed));
    let (_, new_base) = read("t-same-multi-base/base", &third).await;
    for ((app, _), (base, _)) in images("t-same-multi-base/app", &rebased)
        .await
        .iter()
        .zip(&images("t-same-multi-base/base", &new_base).await)
    {
        assert_eq!(app["layers"][0], base["layers"][0], "on the new base");
    }
}

#[tokio::test]
async fn an_index_whose_child_is_gone_builds_again_and_says_why() {
    let s = services();
    let repo = app_repo();
    let first = repo.head();
    publish(&repo, "t-same-multi-gone", "refs/heads/main", &first)
        .input("platforms", BOTH)
        .run_async()
        .await
        .assert_ok();
    let (_, index) = read("t-same-multi-gone/app", &first).await;
    let arm = children(&index)[1].1.clone();
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/v2/{}/manifests/{arm}",
            s.open_url(),
            scoped("t-same-multi-gone/app")
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(deleted.as_u16(), 202);
    repo.write("README.md", "docs\n");
    let second = repo.commit("docs only");

    let ran = publish(&repo, "t-same-multi-gone", "refs/heads/main", &second)
        .input("platforms", BOTH)
        .run_async()
        .await;
    ran.assert_ok();
    assert!(ran.stdout.contains("::group::build"), "built:\n{ran}");
    assert!(
        ran.summary.contains(&format!(
            "`{}` has this build's key but can't be released again: its `linux/arm64` image `{arm}` is no longer in the repository",
            &first[..7]
        )),
        "{}",
        ran.summary
    );
    let (_, rebuilt) = read("t-same-multi-gone/app", &second).await;
    assert_eq!(key(&rebuilt), key(&index), "the same build, built again");
    let arm_again = children(&rebuilt)[1].1.clone();
    assert_eq!(read("t-same-multi-gone/app", &arm_again).await.0, arm_again);
}

/// A changed file builds again; the manifests and configs the build reads
/// — `latest`, whose images' layers are reused and figures compared with,
/// each platform's, and the images BuildKit pushed — it reads once.
/// Without the cache, so that every read counted is ours, not the
/// engine's import of `latest`. (A layer both platforms share is still
/// streamed back once per platform for its analysis.)
#[tokio::test]
async fn several_platforms_built_again_read_latest_and_their_images_once() {
    let s = services();
    let repo = app_repo();
    let first = repo.head();
    publish(&repo, "t-reads-multi", "refs/heads/main", &first)
        .input("platforms", BOTH)
        .run_async()
        .await
        .assert_ok();
    let (_, latest) = read("t-reads-multi/app", "latest").await;
    let configs: Vec<String> = images("t-reads-multi/app", &latest)
        .await
        .iter()
        .map(|(image, _)| image["config"]["digest"].as_str().unwrap().to_owned())
        .collect();
    repo.write("ops/docker/app/arch-arm64", "arm64, changed\n");
    let second = repo.commit("arm64 changes");

    let counted = Proxy::start(&s.registry_open, Fault::DieAfter(u64::MAX));
    let ran = publish(&repo, "t-reads-multi", "refs/heads/main", &second)
        .input("registry", &counted.address)
        .input("platforms", BOTH)
        .input("cache", "false")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(ran.stdout.contains("::group::build"), "built:\n{ran}");
    let gets: Vec<String> = counted
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET "))
        .collect();
    let latest = gets.iter().filter(|r| r.ends_with("/manifests/latest"));
    assert_eq!(latest.count(), 1, "{gets:?}");
    let manifests: Vec<&String> = gets.iter().filter(|r| r.contains("/manifests/")).collect();
    let mut distinct = manifests.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), manifests.len(), "read twice: {gets:?}");
    for config in configs {
        let reads = gets
            .iter()
            .filter(|r| r.ends_with(&format!("/blobs/{config}")));
        assert_eq!(reads.count(), 1, "`latest`'s config {config}: {gets:?}");
    }
}
