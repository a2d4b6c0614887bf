//! A new commit of an unchanged image directory is released without a
//! build: the image of the same build inputs gets this commit's labels and
//! SHA tag, its layers untouched. Anything that changes the build — a file,
//! a build argument, a base image's digest — builds again.

use serde_json::Value;

use crate::buildkit::{config_of, manifest_of};
use crate::publish::{digest_of, publish, scoped};
use crate::support::git::{Repo, noisy_app};
use crate::support::proxy::{Fault, Proxy};
use crate::support::services::services;

fn app_repo() -> Repo {
    noisy_app("FROM scratch\nARG FLAVOUR=plain\nCOPY noise /noise\nLABEL flavour=$FLAVOUR\n")
}

fn build_key(manifest: &Value) -> &str {
    manifest["annotations"]["io.github.webgrip.registry-action.build-key"]
        .as_str()
        .unwrap_or_else(|| panic!("no build key: {manifest}"))
}

#[tokio::test]
async fn a_commit_that_changes_nothing_in_the_directory_is_released_without_a_build() {
    let s = services();
    let repo = app_repo();
    let first = repo.head();
    publish(&repo, "t-same", "refs/heads/main", &first)
        .run_async()
        .await
        .assert_ok();
    repo.write("README.md", "docs\n");
    let second = repo.commit("docs only");

    let counted = Proxy::start(&s.registry_open, Fault::DieAfter(u64::MAX));
    let ran = publish(&repo, "t-same", "refs/heads/main", &second)
        .input("registry", &counted.address)
        .run_async()
        .await;
    ran.assert_ok();
    assert!(!ran.stdout.contains("::group::build"), "no build:\n{ran}");
    assert!(
        ran.summary.contains(&format!(
            "nothing changed since `{}` (same build key)",
            &first[..7]
        )),
        "{}",
        ran.summary
    );
    assert!(
        counted.sent() < 64 << 10,
        "the 1 MiB layer was not sent again: {} bytes",
        counted.sent()
    );
    let (before, after) = (
        manifest_of("t-same/app", &first).await,
        manifest_of("t-same/app", &second).await,
    );
    assert_eq!(after["layers"], before["layers"]);
    assert_eq!(build_key(&after), build_key(&before));
    assert_ne!(after["config"]["digest"], before["config"]["digest"]);
    let labels = &config_of("t-same/app", &second).await["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], second.as_str());
    assert_eq!(
        labels["flavour"], "plain",
        "the Dockerfile's own labels stay"
    );
    assert_eq!(
        digest_of(s, "t-same/app", &second).await.as_deref(),
        Some(ran.outputs["digest"].as_str())
    );
}

#[tokio::test]
async fn a_changed_build_argument_or_rebuild_builds_again() {
    let repo = app_repo();
    let first = repo.head();
    publish(&repo, "t-same-arg", "refs/heads/main", &first)
        .run_async()
        .await
        .assert_ok();
    repo.write("README.md", "docs\n");
    let second = repo.commit("docs only");
    let ran = publish(&repo, "t-same-arg", "refs/heads/main", &second)
        .input("build-args", "FLAVOUR=spicy")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(ran.stdout.contains("::group::build"), "built:\n{ran}");
    let labels = &config_of("t-same-arg/app", &second).await["config"]["Labels"];
    assert_eq!(labels["flavour"], "spicy");
    assert_ne!(
        build_key(&manifest_of("t-same-arg/app", &second).await),
        build_key(&manifest_of("t-same-arg/app", &first).await)
    );

    repo.write("README.md", "more docs\n");
    let third = repo.commit("more docs");
    let ran = publish(&repo, "t-same-arg", "refs/heads/main", &third)
        .input("build-args", "FLAVOUR=spicy")
        .input("rebuild", "true")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(ran.stdout.contains("::group::build"), "built:\n{ran}");
}

#[tokio::test]
async fn a_base_that_moved_builds_its_dependents_again() {
    let s = services();
    let repo = Repo::new();
    let base = scoped("t-same-base/base");
    repo.write("ops/docker/base/Dockerfile", "FROM scratch\nCOPY v /v\n")
        .write("ops/docker/base/v", "1\n")
        .write(
            "ops/docker/app/Dockerfile",
            &format!("FROM {}/{base}:latest\nCOPY app /app\n", s.registry_open),
        )
        .write("ops/docker/app/app", "app\n");
    let first = repo.commit("base and app");
    for path in ["ops/docker/base", "ops/docker/app"] {
        publish(&repo, "t-same-base", "refs/heads/main", &first)
            .input("path", path)
            .run_async()
            .await
            .assert_ok();
    }
    let key = build_key(&manifest_of("t-same-base/app", &first).await).to_owned();

    repo.write("ops/docker/base/v", "2\n");
    let second = repo.commit("base changes");
    publish(&repo, "t-same-base", "refs/heads/main", &second)
        .input("path", "ops/docker/base")
        .run_async()
        .await
        .assert_ok();
    let ran = publish(&repo, "t-same-base", "refs/heads/main", &second)
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains("::group::build"),
        "built on the new base:\n{ran}"
    );
    let app = manifest_of("t-same-base/app", &second).await;
    assert_ne!(build_key(&app), key);
    let new_base = manifest_of("t-same-base/base", &second).await;
    assert_eq!(app["layers"][0], new_base["layers"][0]);
}
