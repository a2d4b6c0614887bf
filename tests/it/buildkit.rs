//! `publish` builds with BuildKit on the real engine: the Dockerfile
//! features the legacy builder refuses, the build log, a failed step's
//! annotation, and the builder choice.

use std::collections::BTreeMap;
use std::io::Read as _;

use serde_json::Value;

use crate::publish::{publish, scoped};
use crate::support::engine_proxy::EngineProxy;
use crate::support::git::Repo;
use crate::support::proxy::{Fault, Proxy};
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

/// The image manifest `repository:tag` of the open registry.
pub async fn manifest_of(repository: &str, tag: &str) -> Value {
    let url = format!("{}/manifests/{tag}", repository_url(repository));
    reqwest::Client::new()
        .get(url)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn blob_of(repository: &str, digest: &str) -> Vec<u8> {
    let url = format!("{}/blobs/{digest}", repository_url(repository));
    reqwest::get(url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

fn repository_url(repository: &str) -> String {
    format!("{}/v2/{}", services().open_url(), scoped(repository))
}

pub fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut plain)?;
    Ok(plain)
}

/// Every file of a pushed image, layers applied in order, with its mode.
pub async fn image_files(repository: &str, tag: &str) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut files = BTreeMap::new();
    for digest in layer_digests(&manifest_of(repository, tag).await) {
        let layer = gunzip(&blob_of(repository, &digest).await).unwrap();
        let mut archive = tar::Archive::new(&layer[..]);
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
    let manifest = manifest_of(repository, tag).await;
    let digest = manifest["config"]["digest"].as_str().unwrap();
    serde_json::from_slice(&blob_of(repository, digest).await).unwrap()
}

/// Every blob of a pushed image, config and layers, layers gunzipped.
async fn image_blobs(repository: &str, tag: &str) -> Vec<Vec<u8>> {
    let manifest = manifest_of(repository, tag).await;
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let mut blobs = Vec::new();
    for digest in std::iter::once(config).chain(layer_digests(&manifest)) {
        let bytes = blob_of(repository, &digest).await;
        blobs.push(gunzip(&bytes).unwrap_or(bytes));
    }
    blobs
}

pub async fn assert_nothing_pushed(repository: &str) {
    let tags = crate::publish::tags(&services().registry_open, repository, None).await;
    assert!(tags.is_empty(), "{repository} has tags {tags:?}");
}

pub fn text(files: &BTreeMap<String, (u32, Vec<u8>)>, path: &str) -> String {
    let (_, data) = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} is not in the image: {:?}", files.keys()));
    String::from_utf8_lossy(data).into_owned()
}

/// A cross-build as real monorepos write it: the build stage runs on the
/// runner's platform and learns the target from BuildKit's automatic
/// arguments; a cache mount keeps its contents between builds. `nonce`
/// keeps an engine warm from earlier test runs from answering from its
/// cache (the cache mount's id included).
fn cross_dockerfile(nonce: &str) -> String {
    format!(
        r#"FROM --platform=$BUILDPLATFORM scratch AS build
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG BUILDPLATFORM
ARG BUILDOS
ARG BUILDARCH
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo {nonce} >/nonce; echo \"$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM|$BUILDOS|$BUILDARCH\" > /platforms"]
COPY stamp /stamp
RUN --mount=type=cache,id={nonce},target=/cache ["/bin/busybox", "sh", "-c", "/bin/busybox cat /stamp >> /cache/runs && /bin/busybox cp /cache/runs /runs"]

FROM scratch
COPY --from=build /platforms /platforms
COPY --from=build /runs /runs
COPY --chmod=0751 tool.sh /bin/tool
"#
    )
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[tokio::test]
async fn buildkit_builds_cross_platform_dockerfiles_with_cache_mounts_and_chmod() {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", &cross_dockerfile(&nonce()))
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
    let announced: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.contains(" [build 4/4] RUN --mount=type=cache"))
        .collect();
    assert_eq!(announced.len(), 1, "{}", ran.stdout);
    let number = announced[0].split(' ').next().unwrap();
    assert!(
        ran.stdout.contains(&format!("{number} DONE ")),
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
        &format!("FROM scratch\nCOPY busybox /bin/busybox\n\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo about to fail {}; exit 3\"]\n", nonce()),
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
    assert_nothing_pushed("t-bk-fail/app").await;
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
    let ran = publish(&repo, "t-bk-net", "refs/heads/main", &sha)
        .input("builder", "legacy")
        .input("secrets", "npm_token=legacy-can-not-mount-this")
        .run_async()
        .await;
    ran.assert_failed("`secrets` (npm_token) are for `RUN --mount=type=secret`, which the legacy builder can't do");
    ran.assert_secret_masked_only("legacy-can-not-mount-this");
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

#[tokio::test]
async fn a_secret_reaches_run_and_nothing_else() {
    let secret = format!("s3cr3t-{}", uuid::Uuid::new_v4().simple());
    let repo = Repo::new();
    // Secrets are not part of BuildKit's cache key: the nonce makes the RUN run.
    let uses_secret = |command: &str| {
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN --mount=type=secret,id=npm_token,required=true [\"/bin/busybox\", \"sh\", \"-c\", \"{command} # {}\"]\n",
            nonce()
        )
    };
    repo.write(
        "ops/docker/app/Dockerfile",
        &uses_secret(
            "/bin/busybox sha256sum /run/secrets/npm_token | /bin/busybox cut -d' ' -f1 > /digest",
        ),
    );
    add_busybox(&repo, "ops/docker/app/busybox");
    let sha = repo.commit("secret");
    let ran = publish(&repo, "t-bk-secret", "refs/heads/main", &sha)
        .input("network", "none")
        .input(
            "secrets",
            &format!("other=unused-value-123\nnpm_token={secret}\n"),
        )
        .run_async()
        .await;
    ran.assert_ok();
    ran.assert_secret_masked_only(&secret);

    let files = image_files("t-bk-secret/app", &sha).await;
    let hash = <sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes());
    let want: String = hash.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n";
    assert_eq!(text(&files, "digest"), want);
    assert!(!files.contains_key("run/secrets/npm_token"));
    for blob in image_blobs("t-bk-secret/app", &sha).await {
        assert!(
            !blob.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in a pushed blob"
        );
    }

    // A secret the Dockerfile needs and the input lacks fails naming its id.
    repo.write("ops/docker/app/Dockerfile", &uses_secret("true"));
    let sha = repo.commit("needs the secret");
    let ran = publish(&repo, "t-bk-secret2", "refs/heads/main", &sha)
        .input("network", "none")
        .run_async()
        .await;
    ran.assert_failed("npm_token");

    // A malformed line is named by its number, never echoed.
    let ran = publish(&repo, "t-bk-secret3", "refs/heads/main", &sha)
        .input("secrets", "pasted-without-an-id")
        .run_async()
        .await;
    ran.assert_failed("`secrets`: line 1 is not id=value");
    assert!(
        !ran.stdout
            .replace("::add-mask::pasted-without-an-id", "")
            .contains("pasted-without-an-id"),
        "{ran}"
    );
}

#[tokio::test]
async fn a_syntax_line_whose_frontend_cannot_be_fetched_is_named() {
    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        "# syntax=docker/dockerfile:1.7\nFROM scratch\nCOPY a /a\n",
    )
    .write("ops/docker/app/a", "a\n");
    let sha = repo.commit("syntax");
    let ran = publish(&repo, "t-bk-syntax", "refs/heads/main", &sha)
        .run_async()
        .await;
    ran.assert_failed("`# syntax=docker/dockerfile:1.7` (ops/docker/app/Dockerfile line 1)");
}

/// A second engine with an empty data root, as a fresh runner has;
/// stopped (and its state removed) when dropped.
struct FreshEngine {
    state: std::path::PathBuf,
    docker_host: String,
}

impl FreshEngine {
    fn start() -> Self {
        let state = std::path::PathBuf::from(format!("/tmp/ra-fresh-{}", &nonce()[..8]));
        let out =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services"))
                .args(["engine-start", services().engine.name()])
                .env("REGISTRY_ACTION_SERVICES", &state)
                .output()
                .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "scripts/services engine-start failed (run the tests as root, with Debian's docker.io): {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docker_host = stdout
            .lines()
            .find_map(|l| l.strip_prefix("DOCKER_HOST="))
            .unwrap()
            .to_owned();
        FreshEngine { state, docker_host }
    }
}

impl Drop for FreshEngine {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services"))
                .arg("engine-stop")
                .env("REGISTRY_ACTION_SERVICES", &self.state)
                .output();
    }
}

#[tokio::test]
async fn a_fresh_runner_reuses_the_inline_cache_of_latest() {
    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        &format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {} > /ran\"]\nCOPY conf /conf\n",
            nonce()
        ),
    )
    .write("ops/docker/app/conf", "x=1\n");
    add_busybox(&repo, "ops/docker/app/busybox");
    let first = repo.commit("app");
    publish(&repo, "t-bk-fresh", "refs/heads/main", &first)
        .input("network", "none")
        .run_async()
        .await
        .assert_ok();
    let config = config_of("t-bk-fresh/app", &first).await;
    assert!(
        config.get("moby.buildkit.cache.v0").is_some(),
        "the pushed config carries the inline cache record: {config}"
    );

    // A new commit that leaves the image directory alone, on a new runner.
    repo.write("README.md", "docs\n");
    let second = repo.commit("docs");
    let fresh = FreshEngine::start();
    // `rebuild`: the build inputs are unchanged, so without it nothing
    // would be built at all (tests/it/unchanged.rs).
    let ran = publish(&repo, "t-bk-fresh", "refs/heads/main", &second)
        .env("DOCKER_HOST", &fresh.docker_host)
        .input("network", "none")
        .input("rebuild", "true")
        .run_async()
        .await;
    ran.assert_ok();
    let steps: Vec<&str> = ran.stdout.lines().filter(|l| l.contains(" [")).collect();
    assert!(steps.iter().any(|l| l.contains("] RUN ")), "{}", ran.stdout);
    for step in steps.iter().filter(|l| !l.contains("[internal]")) {
        let number = step.split(' ').next().unwrap();
        assert!(
            ran.stdout.contains(&format!("{number} CACHED")),
            "{step} ran again on the fresh engine\n{}",
            ran.stdout
        );
    }
    assert!(
        ran.summary.contains("3 steps from the cache, 0 run"),
        "{}",
        ran.summary
    );
    assert!(
        ran.summary
            .contains("3 of 3 layers already in the registry: reused"),
        "{}",
        ran.summary
    );
    assert_eq!(
        layer_digests(&manifest_of("t-bk-fresh/app", &second).await),
        layer_digests(&manifest_of("t-bk-fresh/app", &first).await),
        "the same layers, not rebuilt"
    );
}

/// `cache-to: registry`: on the containerd store BuildKit pushes its whole
/// cache (every stage, `mode=max`) to the repository's `buildcache` tag,
/// and a fresh engine (an empty data root) building a changed directory
/// takes the builder stage's unchanged `RUN` from it: a step whose layer
/// the next steps build on, which the inline cache (the final image's
/// layers only) can't give. On the classic store the summary says why
/// not, and the image is published.
#[tokio::test]
async fn a_registry_cache_brings_every_stage_to_a_fresh_runner() {
    let s = services();
    let repo = Repo::new();
    let nonce = nonce();
    let run = |script: &str| format!("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"{script}\"]\n");
    repo.write(
        "ops/docker/app/Dockerfile",
        &[
            "FROM scratch AS build\nCOPY busybox /bin/busybox\n",
            &run(&format!("echo built {nonce} > /built")),
            "COPY conf /conf\n",
            &run("cat /built /conf > /out"),
            "FROM scratch\nCOPY --from=build /out /out\n",
        ]
        .concat(),
    )
    .write("ops/docker/app/conf", "x=1\n");
    add_busybox(&repo, "ops/docker/app/busybox");
    let first = repo.commit("app");
    let ran = publish(&repo, "t-bk-regcache", "refs/heads/main", &first)
        .input("network", "none")
        .input("cache-to", "registry")
        .run_async()
        .await;
    ran.assert_ok();
    let tags = crate::publish::tags(&s.registry_open, "t-bk-regcache/app", None).await;
    if !s.engine.containerd_store() {
        assert!(
            ran.summary.contains(
                "registry cache (`cache-to: registry`) not used: the engine keeps images in the classic store"
            ),
            "{}",
            ran.summary
        );
        assert!(!tags.contains("buildcache"), "{tags:?}");
        return;
    }
    assert!(tags.contains("buildcache"), "{tags:?}");
    assert!(
        ran.summary
            .contains("BuildKit's whole cache (`mode=max`, every stage) exported to"),
        "{}",
        ran.summary
    );

    repo.write("ops/docker/app/conf", "x=2\n");
    let second = repo.commit("conf");
    let fresh = FreshEngine::start();
    let ran = publish(&repo, "t-bk-regcache", "refs/heads/main", &second)
        .env("DOCKER_HOST", &fresh.docker_host)
        .input("network", "none")
        .input("cache-to", "registry")
        .run_async()
        .await;
    ran.assert_ok();
    let step = |script: &str| {
        let line = ran
            .stdout
            .lines()
            .find(|l| l.contains("] RUN ") && l.contains(script))
            .unwrap_or_else(|| panic!("no step running {script}:\n{}", ran.stdout));
        line.split(' ').next().unwrap().to_owned()
    };
    let unchanged = step("echo built");
    assert!(
        ran.stdout.contains(&format!("{unchanged} CACHED")),
        "the builder stage's unchanged RUN ran again on the fresh engine\n{}",
        ran.stdout
    );
    let changed = step("cat /built");
    assert!(
        !ran.stdout.contains(&format!("{changed} CACHED")),
        "the RUN after the changed file must run\n{}",
        ran.stdout
    );
    let files = image_files("t-bk-regcache/app", &second).await;
    assert_eq!(text(&files, "out"), format!("built {nonce}\nx=2\n"));
    assert!(
        ran.summary
            .contains("BuildKit's whole cache (`mode=max`, every stage) exported to"),
        "the second build's cache replaced the first's\n{}",
        ran.summary
    );

    // A registry that refuses the cache's manifest: the tag an earlier
    // build left is no proof of this one's export.
    let repository = &scoped("t-bk-regcache/app");
    let earlier = cache_digest(&s.registry_open, repository).await;
    let refusing = Proxy::start(
        &s.registry_open,
        Fault::Drop {
            method: "PUT",
            ending: "/manifests/buildcache",
        },
    );
    repo.write("ops/docker/app/conf", "x=3\n");
    let third = repo.commit("conf again");
    let ran = publish(&repo, "t-bk-regcache", "refs/heads/main", &third)
        .input("registry", &refusing.address)
        .input("network", "none")
        .input("cache-to", "registry")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        refusing
            .requests()
            .contains(&format!("PUT /v2/{repository}/manifests/buildcache")),
        "BuildKit never tried to push its cache: {:?}",
        refusing.requests()
    );
    assert_eq!(cache_digest(&s.registry_open, repository).await, earlier);
    assert!(
        ran.summary.contains(&format!(
            "BuildKit's cache push did not land: {}/{repository}:buildcache still names the cache of an earlier build (see the build log); the image is published all the same",
            refusing.address
        )),
        "{}",
        ran.summary
    );
    assert!(!ran.summary.contains("exported to"), "{}", ran.summary);
}

/// The digest `repository:buildcache` names.
async fn cache_digest(registry: &str, repository: &str) -> String {
    registry_action::registry::Registry::new(registry, None)
        .unwrap()
        .manifest_digest(repository, "buildcache")
        .await
        .unwrap()
        .expect("a buildcache tag")
}

/// The context the build sees is the same on every path (the containerd
/// store's file sync, the tar the others get): `.dockerignore` applied
/// with its exceptions below an excluded directory, the Dockerfile and
/// `.dockerignore` there whatever it says, a symlink a link (its target
/// outside the context never read).
#[tokio::test]
async fn the_context_is_what_dockerignore_leaves_with_links_as_links() {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY . /ctx/\n")
        .write(
            "ops/docker/app/.dockerignore",
            "vendor\n!vendor/keep\nsecret.txt\nDockerfile\n",
        )
        .write("ops/docker/app/vendor/keep/k", "kept\n")
        .write("ops/docker/app/vendor/drop", "dropped\n")
        .write("ops/docker/app/secret.txt", "s3cr3t\n")
        .write("ops/docker/app/src/main.txt", "main\n");
    std::os::unix::fs::symlink("../../../../outside", repo.join("ops/docker/app/src/out")).unwrap();
    let sha = repo.commit("app");
    publish(&repo, "t-bk-ignore", "refs/heads/main", &sha)
        .run_async()
        .await
        .assert_ok();
    let mut entries = BTreeMap::new();
    for digest in layer_digests(&manifest_of("t-bk-ignore/app", &sha).await) {
        let layer = gunzip(&blob_of("t-bk-ignore/app", &digest).await).unwrap();
        let mut archive = tar::Archive::new(&layer[..]);
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            entries.insert(path.trim_end_matches('/').to_owned(), link);
        }
    }
    let files: Vec<&str> = entries
        .keys()
        .map(String::as_str)
        .filter(|p| p.starts_with("ctx/") && !entries.contains_key(&format!("{p}/x")))
        .collect();
    for kept in [
        "ctx/.dockerignore",
        "ctx/Dockerfile",
        "ctx/src/main.txt",
        "ctx/src/out",
        "ctx/vendor/keep/k",
    ] {
        assert!(files.contains(&kept), "{kept} missing: {files:?}");
    }
    for dropped in ["ctx/vendor/drop", "ctx/secret.txt"] {
        assert!(!files.contains(&dropped), "{dropped} sent: {files:?}");
    }
    assert_eq!(
        entries["ctx/src/out"].as_deref(),
        Some("../../../../outside"),
        "the link as a link"
    );
}

/// On the containerd store the context goes by file sync under a key
/// naming its directory: the next build of that directory sends only the
/// file that changed, where `/build` (the other stores) sends the whole
/// tar again.
#[tokio::test]
async fn a_second_build_of_a_directory_sends_only_what_changed() {
    let s = services();
    let repo = Repo::new();
    let big: Vec<u8> = (0..2u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::create_dir_all(repo.join("ops/docker/app")).unwrap();
    std::fs::write(repo.join("ops/docker/app/big.bin"), &big).unwrap();
    repo.write(
        "ops/docker/app/Dockerfile",
        &format!(
            "FROM scratch\nCOPY big.bin /big.bin\nCOPY conf /conf\n# {}\n",
            nonce()
        ),
    )
    .write("ops/docker/app/conf", "x=1\n");
    let first = repo.commit("app");
    let engine = EngineProxy::start(&s.docker_socket);
    let counted = |sha: &str| {
        publish(&repo, "t-bk-resync", "refs/heads/main", sha)
            .env("DOCKER_HOST", &engine.docker_host())
            .input("network", "none")
    };
    counted(&first).run_async().await.assert_ok();
    let wait_for = |what: &str, above: u64| {
        for _ in 0..50 {
            if engine.bytes_sent_on(what) > above {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        engine.bytes_sent_on(what)
    };
    let (how, big_len) = if s.engine.containerd_store() {
        ("POST /session", big.len() as u64)
    } else {
        ("POST /build", big.len() as u64)
    };
    let before = wait_for(how, 0);
    assert!(before >= big_len, "{before} bytes on {how} the first time");

    repo.write("ops/docker/app/conf", "x=2\n");
    let second = repo.commit("conf");
    counted(&second).run_async().await.assert_ok();
    let again = wait_for(how, before) - before;
    let files = image_files("t-bk-resync/app", &second).await;
    assert_eq!(text(&files, "conf"), "x=2\n");
    assert_eq!(files["big.bin"].1, big);
    if s.engine.containerd_store() {
        assert!(
            again < big_len / 4,
            "{again} bytes over the session for a one-line change"
        );
    } else {
        assert!(again >= big_len, "{again} bytes of tar the second time");
    }
}

/// Two images whose directories hold a file of the same name, size and
/// mtime but other bytes: each image gets its own. (BuildKit re-asks a
/// synced file only when its size or mtime changed, so one directory's
/// sync must never stand in for another's.)
#[tokio::test]
async fn two_directories_never_share_a_synced_file() {
    let repo = Repo::new();
    let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for (image, content) in [("one", "AAAA\n"), ("two", "BBBB\n")] {
        repo.write(
            &format!("ops/docker/{image}/Dockerfile"),
            &format!("FROM scratch\nCOPY f /f\n# {}\n", nonce()),
        )
        .write(&format!("ops/docker/{image}/f"), content);
        std::fs::File::options()
            .write(true)
            .open(repo.join(&format!("ops/docker/{image}/f")))
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let sha = repo.commit("two images");
    for (image, content) in [("one", "AAAA\n"), ("two", "BBBB\n")] {
        publish(&repo, "t-bk-twodirs", "refs/heads/main", &sha)
            .input("path", &format!("ops/docker/{image}"))
            .run_async()
            .await
            .assert_ok();
        let files = image_files(&format!("t-bk-twodirs/{image}"), &sha).await;
        assert_eq!(text(&files, "f"), content, "{image}");
    }
}

#[tokio::test]
async fn an_image_built_from_a_sibling_mounts_the_siblings_layers() {
    let s = services();
    let repo = Repo::new();
    let scoped_base = scoped("t-bk-mount/base");
    repo.write(
        "ops/docker/base/Dockerfile",
        "FROM scratch\nCOPY base.txt /base.txt\n",
    )
    .write("ops/docker/base/base.txt", &format!("base {}\n", nonce()))
    .write(
        "ops/docker/app/Dockerfile",
        &format!(
            "FROM {}/{scoped_base}:latest\nCOPY app.txt /app.txt\n",
            s.registry_open
        ),
    )
    .write("ops/docker/app/app.txt", "app\n");
    let sha = repo.commit("base and app");
    publish(&repo, "t-bk-mount", "refs/heads/main", &sha)
        .input("path", "ops/docker/base")
        .run_async()
        .await
        .assert_ok();
    let ran = publish(&repo, "t-bk-mount", "refs/heads/main", &sha)
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.summary
            .contains("1 of 2 layers already in the registry: reused"),
        "{}",
        ran.summary
    );
    let base = layer_digests(&manifest_of("t-bk-mount/base", &sha).await);
    let app = layer_digests(&manifest_of("t-bk-mount/app", &sha).await);
    assert_eq!(app[0], base[0]);
    let files = image_files("t-bk-mount/app", &sha).await;
    assert!(text(&files, "base.txt").starts_with("base "));
    assert_eq!(text(&files, "app.txt"), "app\n");
}

#[tokio::test]
async fn a_context_that_cannot_be_read_stops_the_build_saying_why() {
    use std::os::unix::ffi::OsStrExt as _;
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY . /\n")
        .write("ops/docker/app/big", &"x".repeat(3 << 20));
    let sha = repo.commit("app");
    // Tarred after the request has started: the walk meets it midway.
    let name = std::ffi::OsStr::from_bytes(b"zz-\xff");
    std::fs::write(repo.join("ops/docker/app").join(name), "x").unwrap();
    let ran = publish(&repo, "t-bk-ctx", "refs/heads/main", &sha)
        .run_async()
        .await;
    ran.assert_failed("is not valid UTF-8; rename it or exclude it in .dockerignore");
    assert_nothing_pushed("t-bk-ctx/app").await;
}

#[tokio::test]
async fn auto_takes_the_legacy_builder_only_when_the_engine_refuses_a_session() {
    let engine = EngineProxy::refusing_sessions(&services().docker_socket);
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY a /a\n")
        .write("ops/docker/app/a", &format!("{}\n", nonce()));
    let sha = repo.commit("plain");
    let ran = publish(&repo, "t-bk-nosession", "refs/heads/main", &sha)
        .env("DOCKER_HOST", &engine.docker_host())
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.summary.contains("refused a BuildKit session")
            && ran.summary.contains("built with the legacy builder"),
        "{}",
        ran.summary
    );
    assert!(ran.stdout.contains(": COPY a /a\n ---> "), "{}", ran.stdout);
    assert!(
        image_files("t-bk-nosession/app", &sha)
            .await
            .contains_key("a")
    );

    // Asked for BuildKit by name, the refusal is the error.
    publish(&repo, "t-bk-nosession2", "refs/heads/main", &sha)
        .env("DOCKER_HOST", &engine.docker_host())
        .input("builder", "buildkit")
        .run_async()
        .await
        .assert_failed("refused a BuildKit session (POST /session answered 404");

    // Secrets need BuildKit: under `auto` too the refusal is the error.
    publish(&repo, "t-bk-nosession3", "refs/heads/main", &sha)
        .env("DOCKER_HOST", &engine.docker_host())
        .input("secrets", "token=s3cr3t-value")
        .run_async()
        .await
        .assert_failed("refused a BuildKit session (POST /session answered 404");
}
