//! `publish` with `depends-on`: images published at once, each waiting for
//! its bases of this commit, against the real engine and registry, with
//! the run's jobs API replayed.

use std::io::{BufRead as _, BufReader};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::buildkit::{assert_nothing_pushed, layer_digests, manifest_of};
use crate::plan_git::push_event;
use crate::publish::{Refused, assert_not_pushed, control, digest_of, publish, unique};
use crate::support::git::Repo;
use crate::support::replay::Replay;
use crate::support::run::{Action, Ran};
use crate::support::services::services;

/// `base` FROM scratch, and `app` FROM the monorepo's `base` (no tag).
fn monorepo(ns: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "ops/docker/base/Dockerfile",
        "FROM scratch\nCOPY base.txt /base.txt\n",
    )
    .write("ops/docker/base/base.txt", &nonce())
    .write(
        "ops/docker/app/Dockerfile",
        &format!(
            "FROM {}/{}/base\nCOPY app.txt /app.txt\n",
            services().registry_open,
            unique(ns)
        ),
    )
    .write("ops/docker/app/app.txt", "app\n");
    repo.commit("base and app");
    repo
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `app` waiting for `base`, as a matrix entry passes it, on a branch
/// push: `latest` doesn't move, so only the SHA tag names the new base.
fn app(repo: &Repo, ns: &str, sha: &str) -> Action {
    publish(repo, ns, BRANCH, sha).input("depends-on", "[\n  \"base\"\n]")
}

fn base(repo: &Repo, ns: &str, git_ref: &str, sha: &str) -> Action {
    publish(repo, ns, git_ref, sha).input("path", "ops/docker/base")
}

const MAIN: &str = "refs/heads/main";
const BRANCH: &str = "refs/heads/feature";

/// The layer digests of `repository:tag` in the open registry.
async fn layers(repository: &str, tag: &str) -> Vec<String> {
    layer_digests(&manifest_of(repository, tag).await)
}

/// `action` asking the replayed jobs API of run `run`.
fn asking(action: Action, replay: &Replay, run: u64) -> Action {
    action
        .env("GITHUB_API_URL", &replay.uri())
        .env("GITHUB_RUN_ID", &run.to_string())
        .input("github-token", "ghs_jobs")
}

/// Runs `waiting` (an `app`), publishes `base` of `sha` once its log has a
/// line containing `needle`, and returns how `waiting` ended.
async fn base_arrives_after(waiting: Action, needle: &str, repo: Repo, ns: &str, sha: &str) -> Ran {
    let (needle, ns, sha) = (needle.to_owned(), ns.to_owned(), sha.to_owned());
    tokio::task::spawn_blocking(move || {
        let finish = start_until(waiting, needle);
        base(&repo, &ns, BRANCH, &sha).run().assert_ok();
        finish()
    })
    .await
    .unwrap()
}

/// The requests for run `run`'s jobs the replay saw.
async fn jobs_asked(replay: &Replay, run: u64) -> usize {
    let route = format!("/repos/acme/monorepo/actions/runs/{run}/jobs?");
    replay
        .requests()
        .await
        .iter()
        .filter(|r| r.starts_with(&route))
        .count()
}

/// Starts `action`, returns once its log has a line containing `needle`,
/// and hands back a function that waits for the rest of the run.
fn start_until(action: Action, needle: String) -> impl FnOnce() -> Ran {
    let mut child = action
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (seen, said) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.contains(&needle) {
                let _ = seen.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    // Ends early (and the test fails below) when the run ends without the line.
    let _ = said.recv();
    move || {
        let out = child.wait_with_output().unwrap();
        let stderr = reader.join().unwrap().into_bytes();
        action.finish(Output { stderr, ..out })
    }
}

#[tokio::test]
async fn an_image_started_before_its_base_waits_and_builds_on_this_commits_base() {
    let ns = "t-wait";
    let repo = monorepo(ns);
    let first = repo.head();
    base(&repo, ns, MAIN, &first).run_async().await.assert_ok();
    repo.write("ops/docker/base/base.txt", &nonce());
    let sha = repo.commit("a new base");
    let replay = Replay::start().await;
    replay
        .run_jobs(
            7,
            &[
                ("plan", "completed", Some("success")),
                ("publish ops/docker/base", "in_progress", None),
                ("publish ops/docker/app", "in_progress", None),
            ],
        )
        .await;
    let waiting = asking(app(&repo, ns, &sha), &replay, 7);
    let ran = base_arrives_after(
        waiting,
        "waiting up to 30m for this commit's `base`",
        repo,
        ns,
        &sha,
    )
    .await;
    ran.assert_ok();
    let sha = ran.outputs["sha-tag"]
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let new_base = layers(&format!("{ns}/base"), &sha).await;
    let app = layers(&format!("{ns}/app"), &sha).await;
    assert_eq!(app[..1], new_base[..], "{ran}");
    // `latest` still names the base of the first commit.
    assert_eq!(
        layers(&format!("{ns}/base"), "latest").await,
        layers(&format!("{ns}/base"), &first).await
    );
    assert_ne!(layers(&format!("{ns}/base"), &first).await, new_base);
    let digest = digest_of(services(), &format!("{ns}/base"), &sha)
        .await
        .unwrap();
    assert!(
        ran.summary
            .contains(&format!("/{}/base@{digest}`", unique(ns))),
        "{}",
        ran.summary
    );
    assert!(
        replay.requests().await.contains(
            &"/repos/acme/monorepo/actions/runs/7/jobs?filter=latest&per_page=100&page=1"
                .to_owned()
        ),
        "{:?}",
        replay.requests().await
    );
    // Progress is one line a minute, not one per look.
    assert_eq!(ran.stderr.matches("waiting up to").count(), 1, "{ran}");
    assert!(!ran.stderr.contains("still waiting"), "{ran}");
    let naming_base = format!("/base:{sha}");
    assert_eq!(ran.stderr.matches(&naming_base).count(), 1, "{ran}");
}

#[tokio::test]
async fn a_failed_base_job_stops_the_wait_naming_the_base() {
    let ns = "t-wait-fail";
    let repo = monorepo(ns);
    let sha = repo.head();
    let replay = Replay::start().await;
    replay
        .run_jobs(
            8,
            &[
                (
                    "publish (ops/docker/base, base, base, acme/base, ops/docker/base/Dockerfile, ops/docker/base, changed `ops/docker/base/base.txt`, Array, 0, false)",
                    "completed",
                    Some("failure"),
                ),
                (
                    "publish (ops/docker/app, app, app, acme/app, ops/docker/app/Dockerfile, ops/docker/app, base image `base` is rebuilt, Array, 1, false)",
                    "in_progress",
                    None,
                ),
            ],
        )
        .await;
    let ran = app(&repo, ns, &sha)
        .env("GITHUB_API_URL", &replay.uri())
        .env("GITHUB_RUN_ID", "8")
        .input("github-token", "ghs_jobs")
        .run_async()
        .await;
    ran.assert_failed("`depends-on`: the job of `base` (\"publish (ops/docker/base,");
    assert!(ran.stdout.contains("ended `failure`"), "{ran}");
    assert_nothing_pushed(&format!("{ns}/app")).await;
}

#[tokio::test]
async fn a_jobs_api_that_refuses_leaves_the_registry_to_decide() {
    let ns = "t-wait-refused";
    let repo = monorepo(ns);
    let sha = repo.head();
    let replay = Replay::start().await;
    replay
        .fail(
            "/repos/acme/monorepo/actions/runs/9/jobs",
            403,
            "Resource not accessible by integration",
        )
        .await;
    let waiting = asking(app(&repo, ns, &sha), &replay, 9);
    let ran = base_arrives_after(waiting, "the jobs API couldn't be asked", repo, ns, &sha).await;
    ran.assert_ok();
    assert!(
        ran.stderr
            .contains("the GitHub API answered 403 (\"Resource not accessible by integration\")"),
        "{ran}"
    );
    assert!(ran.stderr.contains("the registry alone decides"), "{ran}");
    assert_eq!(jobs_asked(&replay, 9).await, 1);
}

#[tokio::test]
async fn a_forgejo_run_never_asks_the_jobs_api() {
    let ns = "t-wait-forgejo";
    let repo = monorepo(ns);
    let sha = repo.head();
    let replay = Replay::start().await;
    // Were it asked, this would stop the wait at once.
    replay
        .run_jobs(
            10,
            &[("publish ops/docker/base", "completed", Some("failure"))],
        )
        .await;
    let ran = asking(app(&repo, ns, &sha), &replay, 10)
        .env("GITEA_ACTIONS", "true")
        .env("FORGEJO_ACTIONS", "true")
        .input("wait-timeout", "2s")
        .run_async()
        .await;
    ran.assert_failed("`depends-on`: waited 2s (`wait-timeout`)");
    assert!(
        ran.stdout
            .contains("Forgejo Actions has no jobs API for this"),
        "{ran}"
    );
    assert_eq!(replay.requests().await, Vec::<String>::new());
}

/// A multi-platform base: its per-platform jobs push by digest and succeed,
/// then a `merge` job pushes the SHA tag.
const SUCCEEDED_BASE: (&str, &str, Option<&str>) =
    ("publish ops/docker/base", "completed", Some("success"));
const NOT_YET: &str = "isn't in the registry yet (a `merge` job may still push it)";

#[tokio::test]
async fn a_base_job_that_succeeded_without_the_image_is_waited_for() {
    let ns = "t-wait-merge";
    let repo = monorepo(ns);
    let sha = repo.head();
    let replay = Replay::start().await;
    replay.run_jobs(11, &[SUCCEEDED_BASE]).await;
    let waiting = asking(app(&repo, ns, &sha), &replay, 11);
    let ran = base_arrives_after(waiting, NOT_YET, repo, ns, &sha).await;
    ran.assert_ok();
    assert_eq!(ran.stderr.matches(NOT_YET).count(), 1, "{ran}");
    assert!(
        ran.stderr
            .contains("the job of `base` (\"publish ops/docker/base\") succeeded"),
        "{ran}"
    );
}

/// Still no image a listing after the job succeeded: the wait stops then,
/// not at `wait-timeout`.
#[tokio::test]
async fn a_base_job_that_succeeded_without_the_image_stops_the_wait_a_minute_later() {
    let ns = "t-wait-merge-never";
    let repo = monorepo(ns);
    let sha = repo.head();
    let replay = Replay::start().await;
    replay.run_jobs(12, &[SUCCEEDED_BASE]).await;
    let ran = asking(app(&repo, ns, &sha), &replay, 12)
        .input("wait-timeout", "10m")
        .run_async()
        .await;
    ran.assert_failed(&format!(
        "`depends-on`: the job of `base` (\"publish ops/docker/base\") succeeded without pushing {}/{}/base:{sha}",
        services().registry_open,
        unique(ns)
    ));
    ran.assert_failed("is not built FROM an older `base`");
    assert!(!ran.stdout.contains("(`wait-timeout`)"), "{ran}");
    assert_eq!(ran.stderr.matches(NOT_YET).count(), 1, "{ran}");
    assert_eq!(
        jobs_asked(&replay, 12).await,
        2,
        "a listing, and one a minute later"
    );
}

#[tokio::test]
async fn a_hung_jobs_api_does_not_hold_up_the_wait() {
    let ns = "t-wait-hung";
    let repo = monorepo(ns);
    let sha = repo.head();
    let replay = Replay::start().await;
    replay
        .run_jobs_after(
            13,
            &[("publish ops/docker/base", "in_progress", None)],
            Duration::from_secs(60),
        )
        .await;
    // Past the jobs API's short timeout, short of a stall of a minute and more.
    let waiting = asking(app(&repo, ns, &sha), &replay, 13).input("wait-timeout", "40s");
    let ran = base_arrives_after(waiting, "waiting up to 40s", repo, ns, &sha).await;
    ran.assert_ok();
    assert!(
        ran.stderr
            .contains("the jobs API couldn't be asked this time (the GitHub API timed out"),
        "{ran}"
    );
    assert_eq!(jobs_asked(&replay, 13).await, 1);
}

#[tokio::test]
async fn a_base_that_never_arrives_times_out_naming_it() {
    let ns = "t-wait-timeout";
    let repo = monorepo(ns);
    let sha = repo.head();
    let ran = app(&repo, ns, &sha)
        .input("wait-timeout", "2s")
        .run_async()
        .await;
    ran.assert_failed(&format!(
        "`depends-on`: waited 2s (`wait-timeout`), and this commit's `base` ({}/{}/base:{sha}) never arrived in the registry",
        services().registry_open,
        unique(ns)
    ));
    assert!(
        ran.stdout.contains("the jobs API couldn't be asked"),
        "{ran}"
    );
    assert_nothing_pushed(&format!("{ns}/app")).await;
}

#[tokio::test]
async fn an_unchanged_base_is_not_waited_for() {
    let ns = "t-wait-unchanged";
    let repo = monorepo(ns);
    let first = repo.head();
    base(&repo, ns, MAIN, &first).run_async().await.assert_ok();
    repo.write("ops/docker/app/app.txt", "app 2\n");
    let sha = repo.commit("app only");
    let plan = Action::github(repo.path())
        .input("command", "plan")
        .input("source", "git")
        .input("registry", &services().registry_open)
        .input("namespace", &unique(ns))
        .event("push", &push_event("refs/heads/main", &first, &sha, false))
        .run_async()
        .await;
    plan.assert_ok();
    let entry = &plan.matrix()[0];
    assert_eq!(entry["name"], "app");
    let depends_on = serde_json::to_string_pretty(&entry["depends-on"]).unwrap();
    // A wait for `base` of this commit, which is never pushed, would fail at once.
    let ran = app(&repo, ns, &sha)
        .input("depends-on", &depends_on)
        .input("wait-timeout", "0s")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(!ran.stderr.contains("waiting up to"), "{ran}");
    let app = layers(&format!("{ns}/app"), &sha).await;
    assert_eq!(app[..1], layers(&format!("{ns}/base"), &first).await[..]);
}

#[tokio::test]
async fn a_build_that_pushes_nothing_waits_for_nothing() {
    let ns = "t-wait-nopush";
    let repo = monorepo(ns);
    let first = repo.head();
    base(&repo, ns, MAIN, &first).run_async().await.assert_ok();
    repo.write("ops/docker/base/base.txt", &nonce());
    let sha = repo.commit("a new base, in a pull request");
    let ran = app(&repo, ns, &sha)
        .input("push", "false")
        .input("wait-timeout", "0s")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.summary
            .contains("`push: false`: `depends-on` is not waited for"),
        "{}",
        ran.summary
    );
    let control = control(&repo, &format!("{ns}-control/app"), Refused::AfterBuilding).await;
    assert_not_pushed(&control, &format!("{ns}/app")).await;
}

#[tokio::test]
async fn a_pinned_base_is_built_as_pinned_and_not_waited_for() {
    let ns = "t-wait-pin";
    let repo = monorepo(ns);
    let first = repo.head();
    base(&repo, ns, MAIN, &first)
        .input("tags", "1.0")
        .run_async()
        .await
        .assert_ok();
    repo.write(
        "ops/docker/app/Dockerfile",
        &format!(
            "FROM {}/{}/base:1.0\nCOPY app.txt /app.txt\n",
            services().registry_open,
            unique(ns)
        ),
    );
    let sha = repo.commit("app pins base 1.0");
    let ran = app(&repo, ns, &sha)
        .input("wait-timeout", "0s")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains(
            "`depends-on` names \"base\", but ops/docker/app/Dockerfile pins it to a version or digest"
        ),
        "{ran}"
    );
    let app = layers(&format!("{ns}/app"), &sha).await;
    assert_eq!(app[..1], layers(&format!("{ns}/base"), "1.0").await[..]);
}

#[tokio::test]
async fn depends_on_and_wait_timeout_refuse_what_they_cannot_use() {
    let ns = "t-wait-bad";
    let repo = monorepo(ns);
    let sha = repo.head();
    app(&repo, ns, &sha)
        .input("depends-on", "tool")
        .run_async()
        .await
        .assert_failed(
            "`depends-on`: \"tool\" is not an image ops/docker/app/Dockerfile builds FROM",
        );
    app(&repo, ns, &sha)
        .input("depends-on", "[base]")
        .run_async()
        .await
        .assert_failed("`depends-on`: \"[base]\" is not a JSON array of image names");
    app(&repo, ns, &sha)
        .input("wait-timeout", "soon")
        .run_async()
        .await
        .assert_failed(
            "input `wait-timeout`: \"soon\" is not accepted; \"soon\" is not a duration",
        );
    assert_nothing_pushed(&format!("{ns}/app")).await;
}

/// Two runs of one commit race (a release's `created`, `published` and
/// `released`, or a re-run): the one that pushes second finds the SHA tag
/// naming another digest and tags nothing.
#[tokio::test]
async fn a_run_that_loses_the_race_for_the_sha_tag_tags_nothing() {
    let ns = "t-race";
    let repo = monorepo(ns);
    let first = repo.head();
    base(&repo, ns, MAIN, &first).run_async().await.assert_ok();
    repo.write("ops/docker/base/base.txt", &nonce());
    let sha = repo.commit("a new base");
    let waiting = app(&repo, ns, &sha);
    let (racer, ns_, sha_) = (repo, ns.to_owned(), sha.clone());
    let ran = tokio::task::spawn_blocking(move || {
        let finish = start_until(waiting, "waiting up to".to_owned());
        // The other run: `app` of this commit, built FROM `latest`'s base
        // and pushed while the first waits.
        publish(&racer, &ns_, BRANCH, &sha_).run().assert_ok();
        base(&racer, &ns_, BRANCH, &sha_).run().assert_ok();
        finish()
    })
    .await
    .unwrap();
    let winner = digest_of(services(), &format!("{ns}/app"), &sha)
        .await
        .unwrap();
    ran.assert_failed(&format!("already names {winner} and this run made"));
    ran.assert_failed("nothing of this run is tagged");
    assert_eq!(
        digest_of(services(), &format!("{ns}/app"), &sha).await,
        Some(winner)
    );
}
