//! `plan` through the GitHub API, against a local server replaying the real
//! payloads: no local history, the 300-file compare cap, pull-request file
//! pages, forced pushes and API errors.

use std::time::Duration;

use serde_json::json;

use crate::plan_git::push_event;
use crate::support::hostile::{Hostile, Misbehaviour};
use crate::support::replay::Replay;
use crate::support::run::{Action, Ran};
use crate::support::{fixture_json, not_loopback};

const BEFORE: &str = "a10867b14bb761a232cd80139fbd4c0d33264240";
const AFTER: &str = "199eddf46df50de8d02e99bf1c5fdb4101338224";

/// A checkout with image directories but no git history (as with an
/// archive download or a sparse checkout without `.git`).
fn workspace(images: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in images {
        let path = dir.path().join(format!("ops/docker/{name}"));
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    dir
}

async fn plan_push(
    replay: &Replay,
    ws: &tempfile::TempDir,
    before: &str,
    after: &str,
    forced: bool,
) -> Ran {
    Action::github(ws.path())
        .env("GITHUB_API_URL", &replay.uri())
        .input("command", "plan")
        .input("github-token", "test-token-0123456789")
        .event(
            "push",
            &push_event("refs/heads/feature", before, after, forced),
        )
        .run_async()
        .await
}

fn paths(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{prefix}/file-{i:04}"))
        .collect()
}

#[tokio::test]
async fn one_compare_request_when_the_api_can_answer() {
    let replay = Replay::start().await;
    let ws = workspace(&["alpha", "beta", "gamma"]);
    replay
        .compare(
            BEFORE,
            AFTER,
            &["ops/docker/beta/Dockerfile".into(), "docs/x.md".into()],
            &[AFTER],
        )
        .await;
    let ran = plan_push(&replay, &ws, BEFORE, AFTER, false).await;
    ran.assert_ok();
    assert_eq!(ran.selected(), ["beta"]);
    assert_eq!(
        replay.requests().await,
        [format!("/repos/acme/monorepo/compare/{BEFORE}...{AFTER}")]
    );
    assert_eq!(
        replay.authorizations().await,
        ["Bearer test-token-0123456789"]
    );
    assert!(
        ran.summary.contains("with **github**: 2 changed files"),
        "{}",
        ran.summary
    );
}

#[tokio::test]
async fn a_compare_cut_at_300_files_is_completed_commit_by_commit() {
    let replay = Replay::start().await;
    let ws = workspace(&["alpha", "beta", "gamma", "delta"]);
    let c1 = "1111111111111111111111111111111111111111";
    let c2 = "2222222222222222222222222222222222222222";
    // The compare shows only alpha's 300 files; the commits hold the rest.
    replay
        .compare(BEFORE, AFTER, &paths("ops/docker/alpha", 300), &[c1, c2])
        .await;
    replay
        .commit(
            c1,
            &[paths("ops/docker/alpha", 300), paths("ops/docker/beta", 20)],
        )
        .await;
    replay.commit(c2, &[paths("ops/docker/delta", 5)]).await;
    let ran = plan_push(&replay, &ws, BEFORE, AFTER, false).await;
    ran.assert_ok();
    assert_eq!(ran.selected(), ["alpha", "beta", "delta"]);
    assert_eq!(
        replay.requests().await.len(),
        4,
        "compare + 2 pages of c1 + c2"
    );
}

/// A commit SHA from the compare answer goes into a route: one that isn't
/// a SHA is refused, never asked for.
#[tokio::test]
async fn a_compare_listing_a_commit_that_is_not_a_sha_is_refused_unasked() {
    let replay = Replay::start().await;
    let ws = workspace(&["alpha"]);
    let lie = "../../../../repos/acme/other/commits/x";
    replay
        .compare(BEFORE, AFTER, &paths("ops/docker/alpha", 300), &[lie])
        .await;
    let ran = plan_push(&replay, &ws, BEFORE, AFTER, false).await;
    ran.assert_failed("which is not a commit SHA");
    assert_eq!(replay.requests().await.len(), 1, "the compare alone");
}

#[tokio::test]
async fn a_cut_compare_with_too_many_commits_selects_everything() {
    let replay = Replay::start().await;
    let ws = workspace(&["alpha", "beta", "gamma"]);
    let commits: Vec<String> = (0..101).map(|i| format!("{i:040x}")).collect();
    let commits: Vec<&str> = commits.iter().map(String::as_str).collect();
    replay
        .compare(BEFORE, AFTER, &paths("ops/docker/alpha", 300), &commits)
        .await;
    let ran = plan_push(&replay, &ws, BEFORE, AFTER, false).await;
    ran.assert_ok();
    assert_eq!(
        ran.selected(),
        ["alpha", "beta", "gamma"],
        "never fewer images than changed"
    );
    assert!(
        ran.stdout.contains("::warning::github can't list"),
        "{}",
        ran.stdout
    );
    assert_eq!(replay.requests().await.len(), 1);
}

#[tokio::test]
async fn pull_request_files_are_read_page_by_page() {
    let replay = Replay::start().await;
    let ws = workspace(&[
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "omega",
    ]);
    // The real two-page listing, its files moved into image directories.
    let place = |name: &str| match name {
        "asda2" => "ops/docker/alpha/asda2",
        "remove_me" => "ops/docker/beta/remove_me",
        "tp" => "ops/docker/gamma/tp",
        "abhinav" => "ops/docker/delta/abhinav",
        "upsert" => "ops/docker/epsilon/upsert",
        "late_file.go" => "ops/docker/zeta/late_file.go",
        other => panic!("unexpected fixture file {other}"),
    };
    let relocate = |fixture: &str| {
        let mut page = fixture_json(fixture);
        for entry in page.as_array_mut().unwrap() {
            for key in ["filename", "previous_filename"] {
                if let Some(name) = entry[key].as_str().map(str::to_owned) {
                    entry[key] = json!(place(&name));
                }
            }
        }
        page
    };
    replay
        .pull_request_files(
            2,
            &[
                relocate("github-api/pulls-list-files.page1.go-scm.json"),
                relocate("github-api/pulls-list-files.page2.go-scm.json"),
            ],
        )
        .await;
    let mut event = fixture_json("github-events/pull_request-synchronize.json");
    event["pull_request"]["number"] = json!(2);
    let ran = Action::github(ws.path())
        .env("GITHUB_API_URL", &replay.uri())
        .input("command", "plan")
        .event("pull_request", &event)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(
        ran.selected(),
        ["alpha", "beta", "delta", "epsilon", "gamma", "zeta"]
    );
    assert_eq!(
        ran.outputs["sha"],
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    );
    assert_eq!(
        replay.requests().await,
        [
            "/repos/acme/monorepo/pulls/2/files?per_page=100&page=1",
            "/repos/acme/monorepo/pulls/2/files?per_page=100&page=2"
        ]
    );
}

#[tokio::test]
async fn a_forced_push_asks_both_directions_and_falls_back_when_the_old_tip_is_gone() {
    let replay = Replay::start().await;
    let ws = workspace(&["alpha", "beta", "gamma"]);
    replay
        .compare(BEFORE, AFTER, &["ops/docker/alpha/new".into()], &[AFTER])
        .await;
    replay
        .compare(AFTER, BEFORE, &["ops/docker/beta/old".into()], &[BEFORE])
        .await;
    let ran = plan_push(&replay, &ws, BEFORE, AFTER, true).await;
    ran.assert_ok();
    assert_eq!(ran.selected(), ["alpha", "beta"]);

    let replay = Replay::start().await;
    replay
        .fail(
            &format!("/repos/acme/monorepo/compare/{BEFORE}...{AFTER}"),
            404,
            "Not Found",
        )
        .await;
    replay
        .compare("main", AFTER, &["ops/docker/gamma/x".into()], &[AFTER])
        .await;
    let ran = plan_push(&replay, &ws, BEFORE, AFTER, true).await;
    ran.assert_ok();
    assert_eq!(ran.selected(), ["gamma"]);
    assert!(ran.summary.contains("main...199eddf"), "{}", ran.summary);
}

#[tokio::test]
async fn api_errors_fail_with_the_status_and_the_fix() {
    let route = format!("/repos/acme/monorepo/compare/{BEFORE}...{AFTER}");
    for (status, message, needle) in [
        (401, "Bad credentials", "github-token"),
        (
            404,
            "Not Found",
            "check that the repository and commits exist",
        ),
        (500, "Server Error", "re-run the job later"),
        (403, "API rate limit exceeded", "rate limit"),
    ] {
        let replay = Replay::start().await;
        replay.fail(&route, status, message).await;
        let ws = workspace(&["alpha"]);
        let ran = plan_push(&replay, &ws, BEFORE, AFTER, false).await;
        ran.assert_failed(needle);
        assert!(ran.stdout.contains(&status.to_string()), "{ran}");
        assert_eq!(
            ran.stdout.matches("test-token-0123456789").count(),
            1,
            "only in ::add-mask::\n{ran}"
        );
        assert!(!ran.stderr.contains("test-token-0123456789"), "{ran}");
        if status == 500 {
            assert_eq!(
                replay.requests().await.len(),
                3,
                "two retries, then give up"
            );
        }
    }
}

#[tokio::test]
async fn a_plain_http_api_elsewhere_is_refused_before_the_token_goes_to_it() {
    let replay = Replay::start().await;
    replay
        .compare(BEFORE, AFTER, &["ops/docker/alpha/x".into()], &[AFTER])
        .await;
    let ws = workspace(&["alpha"]);
    let ran = Action::github(ws.path())
        .env("GITHUB_API_URL", &not_loopback(&replay.uri()))
        .input("command", "plan")
        .input("github-token", "test-token-0123456789")
        .event(
            "push",
            &push_event("refs/heads/feature", BEFORE, AFTER, false),
        )
        .run_async()
        .await;
    ran.assert_failed("GITHUB_API_URL http://[::ffff:7f00:1]:");
    ran.assert_failed(
        "is not a GitHub API root (plain http sends the login in the clear: use https; http is for a loopback host only, 127.0.0.0/8, ::1 or localhost); set GITHUB_API_URL to the API root",
    );
    assert_eq!(replay.requests().await, Vec::<String>::new());
    ran.assert_secret_masked_only("test-token-0123456789");
}

#[tokio::test]
async fn auto_uses_the_api_when_the_clone_is_shallow() {
    let replay = Replay::start().await;
    let repo = crate::support::git::Repo::new();
    repo.image("alpha", "scratch").image("beta", "scratch");
    let head = repo.commit("only commit, as in a depth-1 checkout");
    replay
        .compare(BEFORE, &head, &["ops/docker/alpha/x".into()], &[&head])
        .await;
    let ran = Action::github(repo.path())
        .env("GITHUB_API_URL", &replay.uri())
        .input("command", "plan")
        .event("push", &push_event("refs/heads/main", BEFORE, &head, false))
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.selected(), ["alpha"]);
    assert!(ran.stdout.contains("git can't list"), "{}", ran.stdout);
}

/// An API that answers a byte a second passes every per-read timeout; each
/// request is bounded in all (30 s), so `plan` fails then, naming it.
#[tokio::test]
async fn an_api_answering_a_byte_a_second_fails_the_plan_within_its_request_bound() {
    let server = Hostile::start(Misbehaviour::TrickledAnswers);
    let ws = workspace(&["alpha"]);
    let started = std::time::Instant::now();
    let ran = Action::github(ws.path())
        .env("GITHUB_API_URL", &format!("http://{}", server.address))
        .input("command", "plan")
        .input("github-token", "test-token-0123456789")
        .event(
            "push",
            &push_event("refs/heads/feature", BEFORE, AFTER, false),
        )
        .run_async()
        .await;
    let took = started.elapsed();
    ran.assert_failed(&format!(
        "the GitHub API didn't answer /repos/acme/monorepo/compare/{BEFORE}...{AFTER} in full within 30s; it may be down"
    ));
    assert!(
        took < Duration::from_secs(30 + 10),
        "plan ran {took:?}, past its bound\n{ran}"
    );
}
