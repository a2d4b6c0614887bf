//! `publish` builds with BuildKit on the real engine: the Dockerfile
//! features the legacy builder refuses, the build log, a failed step's
//! annotation, and the builder choice.

use std::collections::BTreeMap;
use std::io::Read as _;

use serde_json::Value;

use crate::publish::{publish, scoped};
use crate::support::git::Repo;
use crate::support::services::services;

/// Debian's static busybox (package `busybox-static`): the only program
/// the test images run.
const BUSYBOX: &str = "/bin/busybox";

/// Copies busybox into the repository, or fails saying how to get it.
pub fn add_busybox(repo: &Repo, to: &str) {
    let meta = std::fs::metadata(BUSYBOX).unwrap_or_else(|e| {
        panic!("{BUSYBOX} is missing ({e}): install Debian's busybox-static (apt-get install -y busybox-static)")
    });
    assert!(meta.len() > 0, "{BUSYBOX} is empty");
    let target = repo.join(to);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(BUSYBOX, target).unwrap();
}

/// Every file of a pushed image, layers applied in order, with its mode.
pub async fn image_files(repository: &str, tag: &str) -> BTreeMap<String, (u32, Vec<u8>)> {
    let s = services();
    let client = reqwest::Client::new();
    let base = format!("{}/v2/{}", s.open_url(), scoped(repository));
    let manifest: Value = client
        .get(format!("{base}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut files = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let blob = client
            .get(format!("{base}/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.insert(path, (mode, data));
        }
    }
    files
}

pub async fn config_of(repository: &str, tag: &str) -> Value {
    let s = services();
    let client = reqwest::Client::new();
    let base = format!("{}/v2/{}", s.open_url(), scoped(repository));
    let manifest: Value = client
        .get(format!("{base}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let digest = manifest["config"]["digest"].as_str().unwrap();
    client
        .get(format!("{base}/blobs/{digest}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn text(files: &BTreeMap<String, (u32, Vec<u8>)>, path: &str) -> String {
    let (_, data) = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} is not in the image: {:?}", files.keys()));
    String::from_utf8_lossy(data).into_owned()
}

/// A cross-build as real monorepos write it: the build stage runs on the
/// runner's platform and learns the target from BuildKit's automatic
/// arguments; a cache mount keeps its contents between builds.
const CROSS: &str = r#"FROM --platform=$BUILDPLATFORM scratch AS build
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG BUILDPLATFORM
ARG BUILDOS
ARG BUILDARCH
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo \"$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM|$BUILDOS|$BUILDARCH\" > /platforms"]
COPY stamp /stamp
RUN --mount=type=cache,target=/cache ["/bin/busybox", "sh", "-c", "/bin/busybox cat /stamp >> /cache/runs && /bin/busybox cp /cache/runs /runs"]

FROM scratch
COPY --from=build /platforms /platforms
COPY --from=build /runs /runs
COPY --chmod=0751 tool.sh /bin/tool
"#;

#[tokio::test]
async fn buildkit_builds_cross_platform_dockerfiles_with_cache_mounts_and_chmod() {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", CROSS)
        .write("ops/docker/app/stamp", "one\n")
        .write("ops/docker/app/tool.sh", "#!/bin/sh\necho tool\n");
    add_busybox(&repo, "ops/docker/app/busybox");
    let first = repo.commit("cross");
    let ran = publish(&repo, "t-bk-cross", "refs/heads/main", &first)
        .input("platforms", "linux/arm64")
        .input("network", "none")
        .run_async()
        .await;
    ran.assert_ok();

    let files = image_files("t-bk-cross/app", &first).await;
    assert_eq!(
        text(&files, "platforms"),
        "linux/arm64|linux|arm64||linux/amd64|linux|amd64\n"
    );
    assert_eq!(text(&files, "runs"), "one\n");
    assert_eq!(files["bin/tool"].0 & 0o7777, 0o751);
    let config = config_of("t-bk-cross/app", &first).await;
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");

    // The build log names each step once and marks what came from the cache.
    assert!(
        ran.stdout.contains("#7 [build 4/4] RUN --mount=type=cache"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("DONE"), "{}", ran.stdout);

    // A new stamp re-runs the last step; its cache mount still holds the first run.
    repo.write("ops/docker/app/stamp", "two\n");
    let second = repo.commit("stamp");
    let ran = publish(&repo, "t-bk-cross", "refs/heads/main", &second)
        .input("platforms", "linux/arm64")
        .input("network", "none")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(
        text(&image_files("t-bk-cross/app", &second).await, "runs"),
        "one\ntwo\n"
    );
    assert!(ran.stdout.contains("CACHED"), "{}", ran.stdout);
    assert!(
        ran.summary.contains("steps from the cache"),
        "{}",
        ran.summary
    );
}

#[tokio::test]
async fn a_failed_step_is_annotated_on_its_dockerfile_line() {
    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\n\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo about to fail; exit 3\"]\n",
    );
    add_busybox(&repo, "ops/docker/app/busybox");
    let sha = repo.commit("failing");
    let ran = publish(&repo, "t-bk-fail", "refs/heads/main", &sha)
        .input("network", "none")
        .run_async()
        .await;
    ran.assert_failed("exit code: 3");
    assert!(
        ran.stdout
            .contains("::error file=ops/docker/app/Dockerfile,line=4,title=build step failed::"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("about to fail"), "{}", ran.stdout);
    assert!(
        crate::publish::tags(&services().registry_open, "t-bk-fail/app", None)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn buildkit_takes_only_its_networks_and_legacy_stays_available() {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY a /a\n")
        .write("ops/docker/app/a", "a\n");
    let sha = repo.commit("plain");
    publish(&repo, "t-bk-net", "refs/heads/main", &sha)
        .input("network", "mynet")
        .run_async()
        .await
        .assert_failed("`network`: \"mynet\" is not a network BuildKit can use");
    publish(&repo, "t-bk-net", "refs/heads/main", &sha)
        .input("builder", "sideways")
        .run_async()
        .await
        .assert_failed("sideways");

    let ran = publish(&repo, "t-bk-net", "refs/heads/main", &sha)
        .input("builder", "legacy")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(ran.stdout.contains(": COPY a /a\n ---> "), "{}", ran.stdout);
    assert_eq!(text(&image_files("t-bk-net/app", &sha).await, "a"), "a\n");
}
