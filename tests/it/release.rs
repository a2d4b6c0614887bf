//! The release flow as real monorepos run it: `release` events (GitHub's
//! and Forgejo's payloads), `release-tag` on a dispatch, Forgejo's empty
//! owner, prereleases — `plan` and `publish` run as the runner runs them.

use serde_json::{Value, json};

use crate::publish::{digest_of, set, tags, unique};
use crate::support::fixture_json;
use crate::support::git::{Repo, noisy_app};
use crate::support::proxy::{Fault, Proxy};
use crate::support::run::{Action, Ran};
use crate::support::services::services;

/// A real release payload, renamed to `tag`.
fn release_event(fixture: &str, tag: &str) -> Value {
    let mut event = fixture_json(&format!("github-events/{fixture}"));
    event["release"]["tag_name"] = json!(tag);
    event
}

/// Three images; `app` builds on `base`.
fn monorepo() -> Repo {
    let repo = Repo::new();
    repo.image("base", "scratch")
        .image("app", "acme/base:latest")
        .image("tool", "scratch");
    repo.commit("initial");
    repo
}

fn plan(repo: &Repo, event: &str, payload: &Value) -> Action {
    Action::github(repo.path())
        .input("command", "plan")
        .input("source", "git")
        .event(event, payload)
}

fn entries_field(ran: &Ran, field: &str) -> Vec<Value> {
    ran.matrix().iter().map(|e| e[field].clone()).collect()
}

#[test]
fn a_release_event_selects_its_image_with_the_version_and_the_flag() {
    let repo = monorepo();
    let ran = plan(
        &repo,
        "release",
        &release_event("release-published.json", "tool-v1.4.0"),
    )
    .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["tool"]);
    assert_eq!(entries_field(&ran, "version"), [json!("1.4.0")]);
    assert_eq!(entries_field(&ran, "prerelease"), [json!(false)]);
    assert_eq!(ran.outputs["version"], "1.4.0");
    assert_eq!(ran.outputs["prerelease"], "false");

    let ran = plan(
        &repo,
        "release",
        &release_event("release-prereleased.json", "tool-v1.5.0"),
    )
    .run();
    ran.assert_ok();
    assert_eq!(entries_field(&ran, "prerelease"), [json!(true)]);
    assert_eq!(ran.outputs["prerelease"], "true");
    assert!(
        ran.summary
            .contains("version `1.5.0`, a prerelease: only its exact version tag"),
        "{}",
        ran.summary
    );
}

#[test]
fn a_forgejo_release_of_v_semver_selects_every_image() {
    let repo = monorepo();
    let ran = plan(
        &repo,
        "release",
        &release_event("gitea-release-published.json", "v2.0.0"),
    )
    .env("FORGEJO_ACTIONS", "true")
    .env("GITEA_ACTIONS", "true")
    .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
    assert_eq!(entries_field(&ran, "version"), vec![json!("2.0.0"); 3]);
    assert_eq!(entries_field(&ran, "prerelease"), vec![json!(false); 3]);
}

#[test]
fn the_real_release_payloads_release_every_image_at_their_version() {
    let repo = monorepo();
    for (fixture, version, prerelease) in [
        ("release-published.json", "0.0.1", false),
        ("release-released.json", "0.0.1", false),
        ("release-created.json", "0.0.1", false),
        ("release-prereleased.json", "0.0.1", true),
        ("release-published-v-tag.json", "1.0.0", false),
        ("gitea-release-published.json", "0.0.5", false),
    ] {
        let ran = plan(
            &repo,
            "release",
            &fixture_json(&format!("github-events/{fixture}")),
        )
        .run();
        ran.assert_ok();
        assert_eq!(ran.selected(), ["base", "tool", "app"], "{fixture}");
        assert_eq!(
            entries_field(&ran, "version"),
            vec![json!(version); 3],
            "{fixture}"
        );
        assert_eq!(
            entries_field(&ran, "prerelease"),
            vec![json!(prerelease); 3],
            "{fixture}"
        );
    }
}

#[test]
fn drafts_other_actions_and_tags_that_are_not_releases_select_nothing_and_succeed() {
    let repo = monorepo();
    // No real payload has `draft: true` or an `edited` / `deleted` action
    // (fixtures README): derived from the real payloads, one field changed.
    let mut draft = release_event("release-created.json", "tool-v1.0.0");
    draft["release"]["draft"] = json!(true);
    let mut edited = release_event("release-published.json", "tool-v1.0.0");
    edited["action"] = json!("edited");
    let mut deleted = release_event("release-published.json", "tool-v1.0.0");
    deleted["action"] = json!("deleted");
    for (payload, why) in [
        (draft, "release `tool-v1.0.0` is a draft"),
        (
            edited,
            "release `tool-v1.0.0` was edited: only published, released, prereleased, created releases are built",
        ),
        (deleted, "release `tool-v1.0.0` was deleted"),
        (
            fixture_json("github-events/gitea-release-published-tag-example.json"),
            "tag `example` is not a release tag",
        ),
    ] {
        let ran = plan(&repo, "release", &payload).run();
        ran.assert_ok();
        assert_eq!(ran.outputs["matrix"], "[]");
        assert_eq!(ran.outputs["changed"], "false");
        assert!(ran.summary.contains(why), "{why}\n{}", ran.summary);
    }
}

#[test]
fn runs_that_are_not_releases_carry_prerelease_false_unless_told() {
    let repo = monorepo();
    let ran = plan(
        &repo,
        "workflow_dispatch",
        &fixture_json("github-events/workflow_dispatch.json"),
    )
    .run();
    ran.assert_ok();
    assert_eq!(entries_field(&ran, "prerelease"), vec![json!(false); 3]);
    assert!(ran.matrix().iter().all(|e| e.get("version").is_none()));
    assert_eq!(ran.outputs["prerelease"], "false");

    let ran = plan(
        &repo,
        "workflow_dispatch",
        &fixture_json("github-events/workflow_dispatch.json"),
    )
    .input("prerelease", "true")
    .run();
    ran.assert_ok();
    assert_eq!(
        entries_field(&ran, "prerelease"),
        vec![json!(true); 3],
        "`prerelease: true` holds `latest` back on any run, as publish's input does"
    );
    assert_eq!(ran.outputs["prerelease"], "true");
}

/// Forgejo's dispatch: `GITHUB_REPOSITORY_OWNER` empty, the release named
/// by an input, the branch's tip in GITHUB_SHA.
fn forgejo_dispatch(repo: &Repo, command: &str) -> Action {
    Action::github(repo.path())
        .env("FORGEJO_ACTIONS", "true")
        .env("GITEA_ACTIONS", "true")
        .env("GITHUB_REPOSITORY_OWNER", "")
        .env("GITHUB_REPOSITORY", "Forge/infra")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_SHA", &repo.head())
        .event(
            "workflow_dispatch",
            &fixture_json("github-events/workflow_dispatch.json"),
        )
        .input("command", command)
}

#[test]
fn a_dispatch_with_release_tag_plans_the_tagged_commit_under_the_repository_owner() {
    let repo = monorepo();
    let tagged = repo.head();
    repo.git(&["tag", "tool-v1.0.0"]);
    repo.write("ops/docker/tool/later", "x");
    let tip = repo.commit("later");
    let ran = forgejo_dispatch(&repo, "plan")
        .input("release-tag", "tool-v1.0.0")
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["tool"]);
    assert_eq!(ran.outputs["sha"], tagged, "the tag's commit, not {tip}");
    assert_eq!(ran.matrix()[0]["image"], "forge/tool");
    assert_eq!(ran.matrix()[0]["version"], "1.0.0");

    let ran = forgejo_dispatch(&repo, "plan")
        .input("release-tag", "v3.0.0-beta.1")
        .run();
    ran.assert_ok();
    assert_eq!(entries_field(&ran, "prerelease"), vec![json!(true); 3]);
    let ran = forgejo_dispatch(&repo, "plan")
        .input("release-tag", "v3.0.0-beta.1")
        .input("prerelease", "false")
        .run();
    assert_eq!(entries_field(&ran, "prerelease"), vec![json!(false); 3]);

    let ran = forgejo_dispatch(&repo, "plan")
        .input("release-tag", "v9.9.9")
        .run();
    ran.assert_ok();
    assert_eq!(ran.outputs["sha"], tip);
    assert!(
        ran.summary
            .contains("tag `v9.9.9` is not in the clone, so `sha` is `GITHUB_SHA`"),
        "{}",
        ran.summary
    );

    forgejo_dispatch(&repo, "plan")
        .input("release-tag", "db-v1.0.0")
        .run()
        .assert_failed("`release-tag`: \"db-v1.0.0\" is not a release of these images");
}

#[test]
fn the_owner_falls_back_to_the_event_and_its_absence_names_namespace() {
    let repo = monorepo();
    let ran = forgejo_dispatch(&repo, "plan")
        .env("GITHUB_REPOSITORY", "")
        .run();
    ran.assert_ok();
    assert_eq!(
        entries_field(&ran, "image"),
        [
            json!("octo-org/app"),
            json!("octo-org/base"),
            json!("octo-org/tool")
        ],
        "the event's owner"
    );

    let ran = forgejo_dispatch(&repo, "plan")
        .env("GITHUB_REPOSITORY", "")
        .event("workflow_dispatch", &json!({"inputs": {}}))
        .run();
    ran.assert_failed("set the `namespace` input");
}

fn app_repo() -> Repo {
    noisy_app("FROM scratch\nCOPY noise /noise\n")
}

/// `publish` of `app` as the runner runs it on `event`, to `registry`.
fn publish_on(repo: &Repo, ns: &str, registry: &str, event: &str, payload: &Value) -> Action {
    Action::github(repo.path())
        .env("DOCKER_HOST", &services().docker_host)
        .event(event, payload)
        .input("command", "publish")
        .input("path", "ops/docker/app")
        .input("registry", registry)
        .input("namespace", &unique(ns))
        .input("scanner", "none")
}

fn on_main(repo: &Repo, ns: &str) -> Action {
    let s = services();
    let sha = repo.head();
    publish_on(
        repo,
        ns,
        &s.registry_open,
        "push",
        &crate::plan_git::push_event("refs/heads/main", &sha, &sha, false),
    )
    .env("GITHUB_SHA", &sha)
    .env("GITHUB_REF", "refs/heads/main")
}

fn on_release(repo: &Repo, ns: &str, registry: &str, fixture: &str, tag: &str) -> Action {
    publish_on(repo, ns, registry, "release", &release_event(fixture, tag))
        .env("GITHUB_SHA", &repo.head())
        .env("GITHUB_REF", &format!("refs/tags/{tag}"))
}

#[tokio::test]
async fn a_release_of_a_published_commit_only_adds_tags() {
    let s = services();
    let repo = app_repo();
    let sha = repo.head();
    on_main(&repo, "t-rel-add").run_async().await.assert_ok();
    let digest = digest_of(s, "t-rel-add/app", &sha).await;

    let counted = Proxy::start(&s.registry_open, Fault::DieAfter(u64::MAX));
    let ran = on_release(
        &repo,
        "t-rel-add",
        &counted.address,
        "release-published.json",
        "app-v1.2.3",
    )
    .run_async()
    .await;
    ran.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-rel-add/app", None).await,
        set(&[&sha, "latest", "1.2.3", "1.2", "1"])
    );
    for tag in ["latest", "1.2.3", "1.2", "1"] {
        assert_eq!(digest_of(s, "t-rel-add/app", tag).await, digest, "{tag}");
    }
    assert_eq!(
        crate::publish::size_and_sent(&ran, digest.as_deref().unwrap()).1,
        "0 B",
        "no blob uploaded:\n{}",
        ran.summary
    );
    assert!(
        counted.sent() < 64 << 10,
        "only manifests and requests went up, not the 1 MiB layer: {} bytes",
        counted.sent()
    );
    assert!(
        ran.summary.contains("already exists: build skipped"),
        "{}",
        ran.summary
    );
}

#[tokio::test]
async fn a_release_flagged_prerelease_gets_only_its_version_tag() {
    let s = services();
    let repo = app_repo();
    let sha = repo.head();
    on_main(&repo, "t-rel-pre").run_async().await.assert_ok();
    let latest = digest_of(s, "t-rel-pre/app", "latest").await;

    repo.write("ops/docker/app/noise", "changed\n");
    let next = repo.commit("next");
    let ran = on_release(
        &repo,
        "t-rel-pre",
        &s.registry_open,
        "release-prereleased.json",
        "app-v2.0.0",
    )
    .run_async()
    .await;
    ran.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-rel-pre/app", None).await,
        set(&[&sha, "latest", &next, "2.0.0"]),
        "no `2.0`, `2` or `latest` for a release flagged prerelease"
    );
    assert_eq!(digest_of(s, "t-rel-pre/app", "latest").await, latest);
    assert!(
        ran.summary.contains("`latest`: `2.0.0` is a prerelease"),
        "{}",
        ran.summary
    );
}

/// A hotfix of an older line released after a newer final: the floating
/// tags of the newer release stay where they are, the hotfix gets its own
/// minor line.
#[tokio::test]
async fn a_hotfix_after_a_newer_release_moves_only_its_own_minor_tag() {
    let s = services();
    let repo = app_repo();
    let newer = repo.head();
    on_release(
        &repo,
        "t-rel-hotfix",
        &s.registry_open,
        "release-published.json",
        "app-v1.2.0",
    )
    .run_async()
    .await
    .assert_ok();
    let released = digest_of(s, "t-rel-hotfix/app", "1.2.0")
        .await
        .expect("1.2.0 is published");

    repo.write("ops/docker/app/noise", "hotfix\n");
    let hotfix = repo.commit("hotfix");
    let ran = on_release(
        &repo,
        "t-rel-hotfix",
        &s.registry_open,
        "release-published.json",
        "app-v1.1.5",
    )
    .run_async()
    .await;
    ran.assert_ok();
    let fixed = digest_of(s, "t-rel-hotfix/app", &hotfix)
        .await
        .expect("the hotfix is published");
    assert_ne!(fixed, released, "the hotfix is an image of its own");
    assert_eq!(
        tags(&s.registry_open, "t-rel-hotfix/app", None).await,
        set(&[
            &newer, &hotfix, "latest", "1", "1.2", "1.2.0", "1.1", "1.1.5"
        ])
    );
    for tag in ["latest", "1", "1.2", "1.2.0", newer.as_str()] {
        assert_eq!(
            digest_of(s, "t-rel-hotfix/app", tag).await.as_deref(),
            Some(released.as_str()),
            "`{tag}` stays on 1.2.0"
        );
    }
    for tag in ["1.1", "1.1.5"] {
        assert_eq!(
            digest_of(s, "t-rel-hotfix/app", tag).await.as_deref(),
            Some(fixed.as_str()),
            "`{tag}` names the hotfix"
        );
    }
    for withheld in [
        "`1` stays on the newer `1.2.0`",
        "`latest`: the newer `1.2.0` is already released",
    ] {
        assert!(
            ran.summary.contains(withheld),
            "{withheld}\n{}",
            ran.summary
        );
    }
}

#[tokio::test]
async fn release_tag_on_a_dispatch_builds_only_the_checked_out_tag() {
    let s = services();
    let repo = app_repo();
    let tagged = repo.head();
    repo.git(&["tag", "app-v1.0.0"]);
    repo.write("ops/docker/app/noise", "later\n");
    repo.commit("later");
    let dispatch = || {
        let sha = repo.head();
        publish_on(
            &repo,
            "t-rel-tag",
            &s.registry_open,
            "workflow_dispatch",
            &fixture_json("github-events/workflow_dispatch.json"),
        )
        .env("GITHUB_SHA", &sha)
        .env("GITHUB_REF", "refs/heads/main")
        .input("release-tag", "app-v1.0.0")
    };
    dispatch()
        .run_async()
        .await
        .assert_failed("check the tag out (`actions/checkout` with `ref: app-v1.0.0`)");
    assert!(
        tags(&s.registry_open, "t-rel-tag/app", None)
            .await
            .is_empty()
    );

    repo.git(&["checkout", "-q", "app-v1.0.0"]);
    let ran = dispatch().env("GITHUB_SHA", "9999999999999999999999999999999999999999");
    let ran = ran.run_async().await;
    ran.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-rel-tag/app", None).await,
        set(&[&tagged, "1.0.0", "1.0", "1", "latest"]),
        "the tag's commit, whatever GITHUB_SHA says"
    );

    dispatch()
        .input("release-tag", "other-v1.0.0")
        .run_async()
        .await
        .assert_failed("`release-tag`: \"other-v1.0.0\" is not a release of `app`");
}

#[tokio::test]
async fn the_prerelease_input_decides_which_tags_move() {
    let s = services();
    let repo = app_repo();
    let first = repo.head();
    repo.git(&["tag", "app-v1.0.0"]);
    let dispatch = |tag: &str, prerelease: &str| {
        let sha = repo.head();
        publish_on(
            &repo,
            "t-rel-input",
            &s.registry_open,
            "workflow_dispatch",
            &fixture_json("github-events/workflow_dispatch.json"),
        )
        .env("GITHUB_SHA", &sha)
        .env("GITHUB_REF", "refs/heads/main")
        .input("release-tag", tag)
        .input("prerelease", prerelease)
    };
    dispatch("app-v1.0.0", "true").run_async().await.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-rel-input/app", None).await,
        set(&[&first, "1.0.0"]),
        "`prerelease: true` on a final version: only its exact version tag"
    );

    repo.write("ops/docker/app/noise", "rc\n");
    let rc = repo.commit("rc");
    repo.git(&["tag", "app-v2.0.0-rc.1"]);
    dispatch("app-v2.0.0-rc.1", "false")
        .run_async()
        .await
        .assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-rel-input/app", None).await,
        set(&[&first, "1.0.0", &rc, "2.0.0-rc.1", "latest"]),
        "`prerelease: false` moves `latest`, never `2.0` / `2` for a release candidate"
    );
    assert_eq!(
        digest_of(s, "t-rel-input/app", "latest").await,
        digest_of(s, "t-rel-input/app", &rc).await
    );
}

#[tokio::test]
async fn publish_on_a_release_that_is_not_out_pushes_nothing_and_succeeds() {
    let s = services();
    let repo = app_repo();
    let mut edited = release_event("release-published.json", "app-v1.0.0");
    edited["action"] = json!("edited");
    let registry = Proxy::start(&s.registry_open, Fault::None);
    let ran = publish_on(&repo, "t-rel-edit", &registry.address, "release", &edited)
        .env("GITHUB_SHA", &repo.head())
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(
        registry.requests(),
        Vec::<String>::new(),
        "nothing was asked of the registry, let alone written"
    );
    let why = "release `app-v1.0.0` was edited: only published, released, prereleased, created releases are built";
    assert!(
        ran.stdout
            .contains(&format!("::notice::{why}: nothing is published")),
        "{ran}"
    );
    assert!(ran.summary.contains(why), "{}", ran.summary);
    assert_eq!(ran.outputs["pushed"], "false");
    assert!(!ran.outputs.contains_key("digest"), "{ran}");
    assert!(
        tags(&s.registry_open, "t-rel-edit/app", None)
            .await
            .is_empty()
    );
    // `version` names a release of its own: published whatever the event.
    publish_on(&repo, "t-rel-edit", &registry.address, "release", &edited)
        .env("GITHUB_SHA", &repo.head())
        .input("version", "1.0.0")
        .run_async()
        .await
        .assert_ok();
    // The control: the same proxy sees the push that does happen.
    let requests = registry.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("PUT ") && r.contains("/manifests/1.0.0")),
        "{requests:?}"
    );
    assert!(
        tags(&s.registry_open, "t-rel-edit/app", None)
            .await
            .contains("1.0.0")
    );
}
