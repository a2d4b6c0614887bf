//! The binary as a runner runs it: only INPUT_*/GITHUB_*/RUNNER_* set; the
//! output file and summary read back; bad input fails cleanly.

use serde_json::json;

use crate::plan_git::push_event;
use crate::support::git::Repo;
use crate::support::run::Action;

fn repo_with_images() -> (Repo, String, String) {
    let repo = Repo::new();
    repo.image("alpha", "scratch").image("beta", "scratch");
    let before = repo.commit("initial");
    repo.write("ops/docker/beta/x", "1");
    let after = repo.commit("beta");
    (repo, before, after)
}

#[test]
fn outputs_are_heredocs_with_fresh_delimiters() {
    let (repo, before, after) = repo_with_images();
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .event(
            "push",
            &push_event("refs/heads/main", &before, &after, false),
        )
        .run();
    ran.assert_ok();
    let delimiters: Vec<&str> = ran
        .outputs_raw
        .lines()
        .filter_map(|l| l.split_once("<<").map(|(_, d)| d))
        .collect();
    assert_eq!(
        delimiters.len(),
        ran.outputs.len(),
        "every output is a heredoc:\n{}",
        ran.outputs_raw
    );
    let mut unique = delimiters.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        delimiters.len(),
        "a fresh delimiter per output"
    );
    assert!(delimiters.iter().all(|d| d.starts_with("ghadelimiter_")));
    assert_eq!(
        ran.outputs.keys().collect::<Vec<_>>(),
        [
            "changed",
            "count",
            "images",
            "matrix",
            "matrix-tier-0",
            "matrix-tier-1",
            "matrix-tier-2",
            "matrix-tier-3",
            "matrix-tier-4",
            "matrix-tier-5",
            "matrix-tier-6",
            "matrix-tier-7",
            "prerelease",
            "sha"
        ]
    );
}

#[test]
fn off_a_runner_outputs_are_one_json_object_on_stdout() {
    let (repo, before, after) = repo_with_images();
    let ran = Action::local(repo.path())
        .arg("plan")
        .arg("--namespace=demo")
        .arg("--base")
        .arg(&before)
        .arg("--head")
        .arg(&after)
        .run();
    ran.assert_ok();
    let outputs: serde_json::Value =
        serde_json::from_str(&ran.stdout).expect("stdout is one JSON object");
    assert_eq!(outputs["matrix"][0]["image"], "demo/beta");
    assert_eq!(outputs["images"], json!(["beta"]));
    assert_eq!(outputs["count"], "1");
    assert!(
        ran.stderr.contains("### registry-action plan"),
        "the summary goes to stderr:\n{}",
        ran.stderr
    );
}

#[test]
fn forgejo_layout_and_token_from_env() {
    let (repo, before, after) = repo_with_images();
    let ran = Action::github(repo.path())
        .env("GITEA_ACTIONS", "true")
        .env("FORGEJO_ACTIONS", "true")
        .env("GITHUB_API_URL", "http://127.0.0.1:9/api/v1")
        .env("GITHUB_TOKEN", "forgejo-token-value-123")
        .input("command", "plan")
        .event(
            "push",
            &push_event("refs/heads/main", &before, &after, false),
        )
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["beta"]);
    assert!(ran.stdout.contains("::add-mask::forgejo-token-value-123"));
}

#[test]
fn the_token_is_masked_first_and_never_written() {
    let (repo, before, after) = repo_with_images();
    let token = "ghs_SECRETsecretSECRET0123456789";
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("github-token", token)
        .event(
            "push",
            &push_event("refs/heads/main", &before, &after, false),
        )
        .run();
    ran.assert_ok();
    assert!(
        ran.stdout.starts_with(&format!("::add-mask::{token}\n")),
        "{}",
        ran.stdout
    );
    ran.assert_secret_masked_only(token);
}

#[test]
fn a_missing_context_root_fails_with_the_fix_and_no_outputs() {
    let (repo, before, after) = repo_with_images();
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("context-root", "docker/images")
        .event(
            "push",
            &push_event("refs/heads/main", &before, &after, false),
        )
        .run();
    ran.assert_failed("\"docker/images\"");
    assert!(
        ran.stdout.contains("::error title=registry-action plan::"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("set `context-root`"), "{}", ran.stdout);
}

#[test]
fn bad_inputs_fail_naming_the_value() {
    let (repo, before, after) = repo_with_images();
    let event = push_event("refs/heads/main", &before, &after, false);
    for (input, value, needle) in [
        (
            "source",
            "svn",
            "::error title=registry-action%3A invalid input::input `source`: \"svn\" is not accepted; use one of: auto, git, github",
        ),
        ("exclude", "ops/[docker", "\"ops/[docker\""),
        (
            "all",
            "yes",
            "::input `all`: \"yes\" is not accepted; \"yes\" is not a boolean",
        ),
        (
            "max-depth",
            "0",
            "::input `max-depth`: \"0\" is not accepted; 0 is not in 1..=8",
        ),
    ] {
        let ran = Action::github(repo.path())
            .input("command", "plan")
            .input(input, value)
            .event("push", &event)
            .run();
        ran.assert_failed(needle);
    }
}

#[test]
fn a_missing_or_malformed_event_fails() {
    let (repo, _, _) = repo_with_images();
    let action = Action::github(repo.path()).input("command", "plan");
    let runner = action.runner_dir();
    let ran = action
        .env("GITHUB_EVENT_NAME", "push")
        .env(
            "GITHUB_EVENT_PATH",
            &runner.join("absent.json").display().to_string(),
        )
        .run();
    ran.assert_failed("absent.json");

    let action = Action::github(repo.path()).input("command", "plan");
    let bad = action.runner_dir().join("bad.json");
    std::fs::write(&bad, "{\"ref\": ").unwrap();
    let ran = action
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_EVENT_PATH", &bad.display().to_string())
        .run();
    ran.assert_failed("not valid JSON");
}

#[test]
fn an_unknown_command_fails_with_exit_1() {
    let repo = Repo::new();
    let ran = Action::github(repo.path()).input("command", "deploy").run();
    ran.assert_failed("::input `command`: \"deploy\" is not a command; use one of: plan, publish,");
}

#[test]
fn a_bad_value_names_the_input_on_a_runner_and_the_flag_on_a_laptop() {
    let repo = Repo::new();
    Action::github(repo.path())
        .input("command", "cleanup")
        .input("keep", "abc")
        .run()
        .assert_failed("::error title=registry-action%3A invalid input::input `keep`: \"abc\" is not accepted; give a whole number");
    let ran = Action::local(repo.path())
        .arg("cleanup")
        .arg("--keep")
        .arg("abc")
        .run();
    ran.assert_failed("invalid value 'abc' for '--keep <KEEP>'");
    assert!(!ran.stderr.contains("::error"), "{ran}");
}

#[test]
fn sigterm_ends_the_run_cleanly() {
    use std::process::{Command, Stdio};
    // A pull request against an API that never answers keeps the plan busy.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let repo = Repo::new();
    repo.image("alpha", "scratch");
    repo.commit("initial");
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    let mut payload = crate::support::fixture_json("github-events/pull_request-opened.json");
    payload["pull_request"]["head"]["sha"] = json!("abababababababababababababababababababab");
    std::fs::write(&event, payload.to_string()).unwrap();
    let child = Command::new(crate::support::run::BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", repo.path())
        .env("GITHUB_REPOSITORY", "acme/monorepo")
        .env("GITHUB_API_URL", &api)
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", &event)
        .env("INPUT_COMMAND", "plan")
        .env("INPUT_SOURCE", "github")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the request arrives, so the signal lands mid-run.
    let (_conn, _) = listener.accept().unwrap();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cancelled by SIGTERM"), "{stdout}");
}
