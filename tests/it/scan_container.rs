//! The scan gate with the scanner run as a container through the real
//! engine. Nothing can be pulled here, so the scanner image is built
//! locally: `FROM scratch` with the real (static) Trivy binary of
//! scripts/tools, reading the offline test database from the mounted cache.

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, ListContainersOptions};
use futures_util::StreamExt as _;

use crate::publish::{Refused, assert_not_pushed, control, publish};
use crate::support::git::Repo;
use crate::support::run::Action;
use crate::support::services::services;
use crate::support::trivy::{alpine_rootfs, trivy};

/// The local scanner image; only these tests make or use it.
const SCANNER_IMAGE: &str = "registry-action-test/trivy:0.59.1";

/// The same, as an image of its own (another ID), so that each test can
/// count its own containers.
const FAILING_IMAGE: &str = "registry-action-test/trivy:0.59.1-no-db";

async fn engine() -> Docker {
    Docker::connect_with_unix(&services().docker_host, 120, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// Builds `tag`: [`SCANNER_IMAGE`], [`FAILING_IMAGE`] or another test's
/// own (the engine's cache makes a rebuild quick).
pub async fn scanner_image(tag: &'static str) -> &'static str {
    let dockerfile = format!(
        "FROM scratch\nCOPY trivy /usr/local/bin/trivy\nLABEL registry-action-test={tag}\nENTRYPOINT [\"/usr/local/bin/trivy\"]\n"
    );
    let binary = trivy().dir.join("trivy");
    let context = tokio::task::spawn_blocking(move || scanner_context(&dockerfile, &binary))
        .await
        .unwrap();
    let options = BuildImageOptions {
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let docker = engine().await;
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = build.next().await {
        let info = item.unwrap_or_else(|e| panic!("building {tag}: {e}"));
        if let Some(detail) = info.error_detail {
            panic!("building {tag}: {detail:?}");
        }
    }
    docker.inspect_image(tag).await.unwrap();
    tag
}

/// The build context: the Dockerfile and the binary, as a tar.
fn scanner_context(dockerfile: &str, binary: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    tar.append_path_with_name(binary, "trivy").unwrap();
    tar.into_inner().unwrap()
}

/// The test process's PATH without any directory that holds a `trivy`.
fn path_without_trivy() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<_> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("trivy").exists() && *dir != trivy().dir)
        .collect();
    std::env::join_paths(kept).unwrap().into_string().unwrap()
}

fn image_with(packages: &[(&str, &str)]) -> Repo {
    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        "# the scanned image\nFROM scratch\nCOPY rootfs/ /\n",
    );
    alpine_rootfs(&repo, "ops/docker/app", packages);
    repo.commit("app");
    repo
}

/// `publish` of `repo` scanned by Trivy, offline on the test database.
fn scanned(repo: &Repo, ns: &str, scanner_image: &str) -> Action {
    trivy().around(
        publish(repo, ns, "refs/heads/main", &repo.head())
            .input("scanner", "trivy")
            .input("scanner-image", scanner_image),
    )
}

/// Containers of `image` on the engine, running or not.
async fn containers_of(image: &str) -> usize {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "ancestor".to_owned(),
            vec![image.to_owned()],
        )])),
        ..Default::default()
    };
    engine()
        .await
        .list_containers(Some(options))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_scanner_container_blocks_a_critical_finding_without_the_binary_on_path() {
    let image = scanner_image(SCANNER_IMAGE).await;
    let repo = image_with(&[("busybox", "1.36.1-r15"), ("libcrypto3", "3.1.4-r0")]);
    let ran = scanned(&repo, "sc-critical", image)
        // Only the container can scan: no `trivy` anywhere on our PATH.
        .env("PATH", &path_without_trivy())
        .run_async()
        .await;
    crate::scan::assert_blocked(&ran, &repo, "sc-critical/app", "sc-critical-control/app").await;
    assert!(
        ran.stdout.contains(
            "::error file=ops/docker/app/Dockerfile,line=2,title=critical TEST-2026-0001 in "
        ),
        "{ran}"
    );
    assert_eq!(
        containers_of(image).await,
        0,
        "the scanner container is removed"
    );
}

#[tokio::test]
async fn a_scanner_image_the_engine_lacks_fails_naming_it() {
    let _ = services();
    let missing = "registry-action-test/absent-scanner:0.0.0";
    let repo = image_with(&[("busybox", "1.36.1-r15")]);
    // The binary is on PATH: an explicit `scanner-image` runs the container anyway.
    let ran = scanned(&repo, "sc-missing", missing).run_async().await;
    ran.assert_failed(&format!(
        "the scanner image {missing} is not on the Docker Engine and couldn't be pulled"
    ));
    assert!(
        ran.stdout.contains(&format!("`docker pull {missing}`"))
            || ran.stderr.contains(&format!("`docker pull {missing}`")),
        "the error says how to fix it\n{ran}"
    );
    let control = control(&repo, "sc-missing-control/app", Refused::AfterBuilding).await;
    assert_not_pushed(&control, "sc-missing/app").await;
}

#[tokio::test]
async fn a_failing_scanner_container_fails_the_step_with_its_stderr() {
    let image = scanner_image(FAILING_IMAGE).await;
    let repo = image_with(&[("busybox", "1.36.1-r15")]);
    let empty_cache = tempfile::tempdir().unwrap();
    let ran = scanned(&repo, "sc-no-db", image)
        .env("PATH", &path_without_trivy())
        // No database, and told not to download one: Trivy exits 1.
        .env("TRIVY_CACHE_DIR", &empty_cache.path().display().to_string())
        .run_async()
        .await;
    ran.assert_failed("Trivy failed on the image (exit code 1)");
    ran.assert_failed("--skip-update cannot be specified on the first run");
    let control = control(&repo, "sc-no-db-control/app", Refused::AfterBuilding).await;
    assert_not_pushed(&control, "sc-no-db/app").await;
    assert_eq!(
        containers_of(image).await,
        0,
        "the failed container is removed too"
    );
}

#[tokio::test]
async fn the_scanner_container_converts_its_report_to_the_sbom_too() {
    let image = scanner_image("registry-action-test/trivy:0.59.1-sbom").await;
    let repo = image_with(&[("libcrypto3", "3.1.4-r0"), ("zlib", "1.3.1-r0")]);
    let ran = scanned(&repo, "sc-sbom-container", image)
        .input("sbom", "cyclonedx")
        .env("PATH", &path_without_trivy())
        .run_async()
        .await;
    ran.assert_ok();
    let sbom: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path().join(&ran.outputs["sbom-path"])).unwrap(),
    )
    .unwrap();
    assert_eq!(sbom["specVersion"], "1.6");
    assert_eq!(sbom["components"].as_array().unwrap().len(), 3);
    assert_eq!(containers_of(image).await, 0, "both containers are removed");
}
