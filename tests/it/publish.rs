//! `publish` against the real engine and the three real registries.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::buildkit::{layer_digests, manifest_of};
use crate::plan_git::push_event;
use crate::support::engine_proxy::EngineProxy;
use crate::support::git::Repo;
use crate::support::proxy::{Fault, Proxy};
use crate::support::run::{Action, Ran};
use crate::support::services::{Services, services};

/// A multi-stage image: the final stage copies from a named stage.
const DOCKERFILE: &str = "FROM scratch AS files\nCOPY rootfs/ /\n\nFROM scratch\nCOPY --from=files /etc/app.conf /etc/app.conf\n";

fn monorepo() -> Repo {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", DOCKERFILE)
        .write("ops/docker/app/rootfs/etc/app.conf", "v=1\n");
    repo.commit("app");
    repo
}

/// The runner's environment for a push of `sha` on `git_ref` to the open
/// registry, namespace `ns`.
pub fn publish(repo: &Repo, ns: &str, git_ref: &str, sha: &str) -> Action {
    let s = services();
    Action::github(repo.path())
        .env("DOCKER_HOST", &s.docker_host)
        .env("GITHUB_SHA", sha)
        .env("GITHUB_REF", git_ref)
        .event(
            "push",
            &push_event(
                git_ref,
                "0000000000000000000000000000000000000000",
                sha,
                false,
            ),
        )
        .input("command", "publish")
        .input("path", "ops/docker/app")
        .input("registry", &s.registry_open)
        .input("namespace", &unique(ns))
        // The scan gate has its own tests (scan.rs); these are about publishing.
        .input("scanner", "none")
}

/// Namespaces are unique to this test run, so that a registry still
/// holding an earlier run's images can't make or break a test.
pub fn unique(ns: &str) -> String {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    format!("{ns}-{run}")
}

/// `t-x/app` → this run's repository.
pub fn scoped(repository: &str) -> String {
    let (ns, rest) = repository.split_once('/').unwrap();
    format!("{}/{rest}", unique(ns))
}

/// GET on a registry, returning status, `Docker-Content-Digest` and body.
async fn get(
    registry: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, Option<String>, Value) {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("http://{registry}{path}")).header(
        "accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    );
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, digest, body)
}

/// The tags of `repository`: none when the registry doesn't know it (404
/// NAME_UNKNOWN); any other answer fails the test, so a refused login or a
/// broken registry never reads as "nothing pushed".
pub async fn tags(
    registry: &str,
    repository: &str,
    auth: Option<(&str, &str)>,
) -> BTreeSet<String> {
    let repository = scoped(repository);
    let (status, _, body) = get(registry, &format!("/v2/{repository}/tags/list"), auth).await;
    let listed = match (status, &body["tags"]) {
        (200, Value::Array(tags)) => tags,
        (200, Value::Null) => return BTreeSet::new(),
        (404, _) if body["errors"][0]["code"] == "NAME_UNKNOWN" => return BTreeSet::new(),
        _ => panic!("the tags of {repository} on {registry}: {status} {body}"),
    };
    listed
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// Whether `repository` of the open registry holds blob `digest`: HEAD
/// answers 200 or 404, anything else fails the test.
pub async fn has_blob(repository: &str, digest: &str) -> bool {
    let s = services();
    let url = format!(
        "http://{}/v2/{}/blobs/{digest}",
        s.registry_open,
        scoped(repository)
    );
    let status = reqwest::Client::new()
        .head(&url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    match status {
        200 => true,
        404 => false,
        _ => panic!("HEAD {url}: {status}"),
    }
}

/// When the run that pushed nothing stopped.
pub enum Refused {
    /// Before the image was built (bad inputs): the control is the image
    /// it would have built.
    BeforeBuilding,
    /// After building it (`push: false`, a scan): the control's build must
    /// come from that build's cache, so its layers are the same bytes.
    AfterBuilding,
}

/// The image a run refused to push, pushed instead by publishing the same
/// commit to a second repository of the open registry: its repository and
/// every blob, config and layers.
pub struct Control {
    repository: String,
    blobs: Vec<String>,
}

/// `repo`'s image published to `repository` (`ns/app`), the control for
/// [`assert_not_pushed`]. The config carries its build's time (the
/// `created` label), so it matches the refused run's only within a second;
/// the layers match whenever the build is the same.
pub async fn control(repo: &Repo, repository: &str, refused: Refused) -> Control {
    let (ns, _) = repository.split_once('/').unwrap();
    let ran = publish(repo, ns, "refs/heads/main", &repo.head())
        .run_async()
        .await;
    ran.assert_ok();
    if let Refused::AfterBuilding = refused {
        assert_built_from_the_cache(&ran);
    }
    let manifest = manifest_of(repository, &ran.outputs["digest"]).await;
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let blobs: Vec<String> = std::iter::once(config)
        .chain(layer_digests(&manifest))
        .collect();
    assert!(blobs.len() > 1, "a config and layers: {manifest}");
    Control {
        repository: repository.to_owned(),
        blobs,
    }
}

/// Every step of `ran`'s build but its `FROM`s (the image is looked up
/// again) came from BuildKit's cache.
fn assert_built_from_the_cache(ran: &Ran) {
    let steps: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with('#') && l.contains(" [") && !l.contains("[internal]"))
        .filter(|l| !l.contains("] FROM "))
        .collect();
    assert!(!steps.is_empty(), "no build steps in the log:\n{ran}");
    for step in steps {
        let number = step.split(' ').next().unwrap();
        assert!(
            ran.stdout.contains(&format!("\n{number} CACHED")),
            "the control ran `{step}` again, so its blobs may not be the refused run's:\n{ran}"
        );
    }
}

/// Proves that nothing of `control`'s image is in `repository` of the open
/// registry: no tag, and none of its blobs (HEAD answers 404), while the
/// same check finds each of them in the control's repository.
pub async fn assert_not_pushed(control: &Control, repository: &str) {
    let left = tags(&services().registry_open, repository, None).await;
    assert!(left.is_empty(), "{repository} has tags {left:?}");
    for blob in &control.blobs {
        assert!(
            has_blob(&control.repository, blob).await,
            "{blob} is missing from the control {}",
            control.repository
        );
        assert!(
            !has_blob(repository, blob).await,
            "{blob} was pushed to {repository}"
        );
    }
}

pub async fn digest_of(s: &Services, repository: &str, tag: &str) -> Option<String> {
    let repository = scoped(repository);
    get(
        &s.registry_open,
        &format!("/v2/{repository}/manifests/{tag}"),
        None,
    )
    .await
    .1
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn dual_tags_name_one_digest_with_the_revision_label() {
    let s = services();
    let repo = monorepo();
    let sha = repo.head();
    let ran = publish(&repo, "t-dual", "refs/heads/main", &sha)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-dual/app", None).await,
        set(&[&sha, "latest"])
    );
    let digest = ran.outputs["digest"].clone();
    assert!(digest.starts_with("sha256:"), "{ran}");
    assert_eq!(
        digest_of(s, "t-dual/app", &sha).await.as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        digest_of(s, "t-dual/app", "latest").await.as_deref(),
        Some(digest.as_str())
    );

    let (_, _, manifest) = get(
        &s.registry_open,
        &format!("/v2/{}/manifests/{sha}", scoped("t-dual/app")),
        None,
    )
    .await;
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "one COPY in the final stage"
    );
    let config = manifest["config"]["digest"].as_str().unwrap();
    let (_, _, config) = get(
        &s.registry_open,
        &format!("/v2/{}/blobs/{config}", scoped("t-dual/app")),
        None,
    )
    .await;
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], json!(sha));
    assert_eq!(labels["org.opencontainers.image.title"], "app");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/acme/monorepo"
    );

    let image = format!("{}/{}", s.registry_open, scoped("t-dual/app"));
    assert_eq!(ran.outputs["image"], image);
    assert_eq!(ran.outputs["sha-tag"], format!("{image}:{sha}"));
    assert_eq!(
        ran.outputs["tags"],
        format!("{image}:{sha}\n{image}:latest")
    );
    assert_eq!(ran.outputs["pushed"], "true");
    assert!(ran.summary.contains(&digest), "{}", ran.summary);
    // Layers go up as soon as they are compressed, the config after: each
    // byte counted once, every blob of this new image sent.
    let (size, sent) = size_and_sent(&ran, &digest);
    assert_eq!(sent, size, "{}", ran.summary);
    assert_ne!(sent, "0 B", "{}", ran.summary);
}

/// On the containerd store the engine's BuildKit pushes the layers itself,
/// by digest, and the image is never exported; on the classic stores it is
/// exported and converted. Either way the SHA tag names the digest the
/// outputs give, its manifest carries the build key, and nothing else is
/// tagged.
#[tokio::test]
async fn the_containerd_store_pushes_from_buildkit_the_classic_store_exports() {
    let s = services();
    let repo = monorepo();
    let sha = repo.head();
    let engine = EngineProxy::start(&s.docker_socket);
    let ran = publish(&repo, "t-bkpush", "refs/heads/main", &sha)
        .env("DOCKER_HOST", &engine.docker_host())
        .run_async()
        .await;
    ran.assert_ok();
    let digest = ran.outputs["digest"].clone();
    assert_eq!(
        digest_of(s, "t-bkpush/app", &sha).await.as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        tags(&s.registry_open, "t-bkpush/app", None).await,
        set(&[&sha, "latest"])
    );
    let repository = "t-bkpush/app";
    let manifest = manifest_of(repository, &sha).await;
    assert!(
        manifest["annotations"][registry_action::build_key::ANNOTATION].is_string(),
        "{manifest}"
    );
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert!(has_blob(repository, config).await, "{manifest}");
    for layer in layer_digests(&manifest) {
        assert!(has_blob(repository, &layer).await, "{layer}");
    }
    let requests = engine.requests();
    let exported = requests.iter().any(|r| r.starts_with("GET /images/"));
    let containerd = s.engine.containerd_store();
    assert_eq!(exported, !containerd, "{requests:?}");
    assert_eq!(
        ran.summary.contains("pushed by the engine's BuildKit"),
        containerd,
        "{}",
        ran.summary
    );
    let (size, sent) = size_and_sent(&ran, &digest);
    assert_eq!(sent, size, "{}", ran.summary);
}

/// The summary's size and bytes-sent cells of the image row for `digest`.
pub fn size_and_sent<'a>(ran: &'a Ran, digest: &str) -> (&'a str, &'a str) {
    let row: Vec<&str> = ran
        .summary
        .lines()
        .find(|line| line.contains(digest))
        .unwrap_or_else(|| panic!("no row for {digest}:\n{}", ran.summary))
        .split('|')
        .map(str::trim)
        .collect();
    (row[4], row[5])
}

#[tokio::test]
async fn release_tags_get_semver_tags_and_prereleases_only_their_version() {
    let s = services();
    let repo = monorepo();
    let v1 = repo.head();
    publish(&repo, "t-semver", "refs/tags/app-v1.2.3", &v1)
        .run_async()
        .await
        .assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-semver/app", None).await,
        set(&[&v1, "1.2.3", "1.2", "1", "latest"])
    );
    let released = digest_of(s, "t-semver/app", "1.2.3").await;

    repo.write("ops/docker/app/rootfs/etc/app.conf", "v=2\n");
    let rc = repo.commit("rc");
    let ran = publish(&repo, "t-semver", "refs/tags/app-v1.3.0-rc.1", &rc)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-semver/app", None).await,
        set(&[&v1, &rc, "1.2.3", "1.2", "1", "latest", "1.3.0-rc.1"])
    );
    assert_eq!(
        digest_of(s, "t-semver/app", "latest").await,
        released,
        "a prerelease never moves latest"
    );
    assert_eq!(digest_of(s, "t-semver/app", "1").await, released);
    assert!(ran.summary.contains("is a prerelease"), "{}", ran.summary);
}

#[tokio::test]
async fn latest_never_moves_backwards() {
    let s = services();
    let repo = monorepo();
    let older = repo.head();
    repo.write("ops/docker/app/rootfs/etc/app.conf", "v=2\n");
    let newer = repo.commit("newer");
    publish(&repo, "t-order", "refs/heads/main", &newer)
        .run_async()
        .await
        .assert_ok();
    let latest = digest_of(s, "t-order/app", "latest").await;
    assert!(
        latest.is_some(),
        "the newer commit's publish moves `latest`"
    );
    assert_eq!(latest, digest_of(s, "t-order/app", &newer).await);

    // The older commit's job finishes last, as in a race between two merges.
    let ran = publish(&repo, "t-order", "refs/heads/main", &older)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(digest_of(s, "t-order/app", "latest").await, latest);
    let pushed = digest_of(s, "t-order/app", &older).await;
    assert!(pushed.is_some(), "the older commit is published, {ran}");
    assert_ne!(pushed, latest);
    assert!(ran.summary.contains("`latest` stays on"), "{}", ran.summary);
    assert_eq!(ran.outputs["tags"].lines().count(), 1, "{ran}");
}

#[tokio::test]
async fn a_rerun_skips_the_build_and_a_rebuild_never_replaces_the_sha_tag() {
    let s = services();
    let repo = monorepo();
    let sha = repo.head();
    let first = publish(&repo, "t-rerun", "refs/heads/main", &sha)
        .run_async()
        .await;
    first.assert_ok();
    let again = publish(&repo, "t-rerun", "refs/heads/main", &sha)
        .run_async()
        .await;
    again.assert_ok();
    assert_eq!(again.outputs["digest"], first.outputs["digest"]);
    assert!(
        again.summary.contains("already exists: build skipped"),
        "{}",
        again.summary
    );
    assert!(
        !again.stdout.contains("::group::build"),
        "no build on a re-run:\n{again}"
    );

    // The same commit built again from other bytes (an uncommitted change:
    // BuildKit would otherwise make the very same image within a second).
    repo.write("ops/docker/app/rootfs/etc/app.conf", "v=changed\n");
    let rebuild = publish(&repo, "t-rerun", "refs/heads/main", &sha)
        .input("rebuild", "true")
        .run_async()
        .await;
    rebuild.assert_failed("is never replaced");
    assert_eq!(
        digest_of(s, "t-rerun/app", &sha).await.as_deref(),
        Some(first.outputs["digest"].as_str())
    );
}

#[tokio::test]
async fn basic_auth_pushes_with_credentials_and_never_leaks_the_password() {
    let s = services();
    let repo = monorepo();
    let sha = repo.head();
    let ran = publish(&repo, "t-basic", "refs/heads/main", &sha)
        .input("registry", &s.registry_basic)
        .input("username", &s.basic_user)
        .input("password", &s.basic_password)
        .run_async()
        .await;
    ran.assert_ok();
    let auth = Some((s.basic_user.as_str(), s.basic_password.as_str()));
    assert_eq!(
        tags(&s.registry_basic, "t-basic/app", auth).await,
        set(&[&sha, "latest"])
    );
    ran.assert_secret_masked_only(&s.basic_password);
}

#[tokio::test]
async fn bad_credentials_fail_before_anything_is_built_or_pushed() {
    let s = services();
    let repo = monorepo();
    let engine = EngineProxy::start(&s.docker_socket);
    let builds = || {
        engine
            .requests()
            .into_iter()
            .filter(|r| r == "POST /build" || r == "POST /session")
            .count()
    };
    // The control: with the right password the same run builds, and the
    // proxy sees it.
    publish(&repo, "t-badauth-control", "refs/heads/main", &repo.head())
        .env("DOCKER_HOST", &engine.docker_host())
        .input("registry", &s.registry_basic)
        .input("username", &s.basic_user)
        .input("password", &s.basic_password)
        .run_async()
        .await
        .assert_ok();
    let built = builds();
    assert!(built > 0, "{:?}", engine.requests());

    let ran = publish(&repo, "t-badauth", "refs/heads/main", &repo.head())
        .env("DOCKER_HOST", &engine.docker_host())
        .input("registry", &s.registry_basic)
        .input("username", &s.basic_user)
        .input("password", "wrong-password-123")
        .run_async()
        .await;
    ran.assert_failed("refused the credentials");
    assert_eq!(
        builds(),
        built,
        "nothing is built with bad credentials: {:?}\n{ran}",
        engine.requests()
    );
    let auth = Some((s.basic_user.as_str(), s.basic_password.as_str()));
    assert!(
        tags(&s.registry_basic, "t-badauth/app", auth)
            .await
            .is_empty()
    );
    ran.assert_secret_masked_only("wrong-password-123");
}

#[tokio::test]
async fn the_token_flow_docker_hub_uses_works() {
    let s = services();
    let repo = monorepo();
    let sha = repo.head();
    let ran = publish(&repo, "t-token", "refs/heads/main", &sha)
        .input("registry", &s.registry_token)
        .input("username", &s.token_user)
        .input("password", &s.token_password)
        .run_async()
        .await;
    ran.assert_ok();
    assert!(ran.outputs["digest"].starts_with("sha256:"));
    ran.assert_secret_masked_only(&s.token_password);
}

#[tokio::test]
async fn a_failing_build_pushes_nothing() {
    let s = services();
    let registry = Proxy::start(&s.registry_open, Fault::None);
    // The control: the proxy sees what a build that succeeds writes.
    let working = monorepo();
    publish(
        &working,
        "t-broken-control",
        "refs/heads/main",
        &working.head(),
    )
    .input("registry", &registry.address)
    .run_async()
    .await
    .assert_ok();
    let written = writes(&registry, "t-broken-control/app");
    assert!(
        written.iter().any(|w| w.contains("/blobs/uploads/")),
        "{written:?}"
    );

    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nCOPY missing.txt /\n",
    );
    let sha = repo.commit("broken");
    let ran = publish(&repo, "t-broken", "refs/heads/main", &sha)
        .input("registry", &registry.address)
        .run_async()
        .await;
    ran.assert_failed("the build of");
    assert!(
        ran.stdout.contains("missing.txt"),
        "the engine's reason is shown\n{ran}"
    );
    assert_eq!(writes(&registry, "t-broken/app"), Vec::<String>::new());
    assert!(
        tags(&s.registry_open, "t-broken/app", None)
            .await
            .is_empty()
    );
}

/// The requests through `proxy` that write to `repository`: uploads,
/// manifests, deletes.
fn writes(proxy: &Proxy, repository: &str) -> Vec<String> {
    let path = format!(" /v2/{}/", scoped(repository));
    proxy
        .writes()
        .into_iter()
        .filter(|r| r.contains(&path))
        .collect()
}

#[tokio::test]
async fn push_false_builds_and_pushes_nothing() {
    let repo = monorepo();
    let ran = publish(&repo, "t-nopush", "refs/heads/main", &repo.head())
        .input("push", "false")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["pushed"], "false");
    assert!(ran.outputs["digest"].starts_with("sha256:"));
    let control = control(&repo, "t-nopush-control/app", Refused::AfterBuilding).await;
    assert_not_pushed(&control, "t-nopush/app").await;
}

#[tokio::test]
async fn bad_input_fails_with_the_value_and_the_fix() {
    let repo = monorepo();
    let sha = repo.head();
    let cases: [(&str, &str, &str); 5] = [
        (
            "path",
            "ops/docker/nope",
            "\"ops/docker/nope\" is not a directory",
        ),
        (
            "image",
            "Bad Name",
            "input `image`: \"Bad Name\" is not accepted; invalid image reference \"Bad Name\": path component \"Bad Name\"",
        ),
        (
            "platforms",
            "linux/amd64,arm64",
            "`platforms`: \"arm64\" is not a platform",
        ),
        ("build-args", "NOVALUE", "not KEY=VALUE"),
        ("tags", "-x", "invalid tag \"-x\""),
    ];
    for (input, value, needle) in cases {
        let mut action = publish(&repo, "t-bad", "refs/heads/main", &sha).input(input, value);
        if input == "image" {
            action = action.input("registry", "docker.io");
        }
        action.run_async().await.assert_failed(needle);
    }
    publish(&repo, "t-bad", "refs/heads/main", &sha)
        .input("username", "someone")
        .run_async()
        .await
        .assert_failed("`password` is empty");
    publish(&repo, "t-bad", "refs/heads/main", "abc123")
        .run_async()
        .await
        .assert_failed("not a full commit SHA");
}

#[tokio::test]
async fn an_unreachable_registry_fails_cleanly() {
    let repo = monorepo();
    let ran = publish(&repo, "t-down", "refs/heads/main", &repo.head())
        .input("registry", "127.0.0.1:9")
        .run_async()
        .await;
    ran.assert_failed("couldn't reach 127.0.0.1:9");
}

#[tokio::test]
async fn in_a_shallow_clone_the_compare_api_keeps_latest_from_moving_back() {
    let s = services();
    let repo = monorepo();
    let older = repo.head();
    repo.write("ops/docker/app/rootfs/etc/app.conf", "v=2\n");
    let newer = repo.commit("newer");
    publish(&repo, "t-shallow", "refs/heads/main", &newer)
        .run_async()
        .await
        .assert_ok();
    let latest = digest_of(s, "t-shallow/app", "latest").await;

    // The older job's checkout: its own files, no history at all.
    repo.git(&["checkout", "-q", &older]);
    std::fs::remove_dir_all(repo.join(".git")).unwrap();
    let replay = crate::support::replay::Replay::start().await;
    // The real compare payload says `ahead`: newer descends from older.
    replay.compare(&older, &newer, &[], &[&newer]).await;
    let ran = publish(&repo, "t-shallow", "refs/heads/main", &older)
        .env("GITHUB_API_URL", &replay.uri())
        .input("github-token", "api-token-0123456789")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(digest_of(s, "t-shallow/app", "latest").await, latest);
    assert!(
        ran.summary
            .contains("built from a newer commit (per github)"),
        "{}",
        ran.summary
    );
    assert_eq!(
        replay.authorizations().await,
        ["Bearer api-token-0123456789"]
    );
    ran.assert_secret_masked_only("api-token-0123456789");
}
