//! The scan gate's check run, against a local server answering with the
//! real check-run payloads: one create and a PATCH per further batch of 50
//! annotations, and a fork's 403 read as "not permitted here", not a crash.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::fixture_json;
use crate::support::hostile::{Hostile, Misbehaviour};
use crate::support::replay::{REPO, Replay};
use crate::support::run::{Action, Ran};

/// The fixture's `head_sha`, and the merge commit a pull request's
/// GITHUB_SHA names (never the check run's commit).
const HEAD: &str = "ce587453ced02b1526dfb4cb910479d431683101";
const MERGE: &str = "9999999999999999999999999999999999999999";
const TOKEN: &str = "checks-token-0123456789";
/// Two stages; the final `FROM` is line 5, where annotations go.
const DOCKERFILE: &str =
    "# app\nFROM alpine:3.19 AS build\nRUN true\n\nFROM scratch\nCOPY --from=build / /\n";
const SEVERITIES: [&str; 4] = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];

/// A checkout with `ops/docker/app/Dockerfile` and `report.json`: the real
/// alpine-39 Trivy report with its vulnerabilities repeated to `count`
/// findings, each with its own id, severities cycling through `severities`.
fn workspace(count: usize, severities: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("ops/docker/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), DOCKERFILE).unwrap();
    let mut report = fixture_json("trivy/alpine-39.json");
    let real = report["Results"][0]["Vulnerabilities"]
        .as_array()
        .unwrap()
        .clone();
    let many: Vec<Value> = (0..count)
        .map(|i| {
            let mut v = real[i % real.len()].clone();
            v["VulnerabilityID"] = json!(format!("CVE-2099-{i:05}"));
            v["Severity"] = json!(severities[i % severities.len()]);
            v
        })
        .collect();
    report["Results"][0]["Vulnerabilities"] = Value::Array(many);
    std::fs::write(
        dir.path().join("report.json"),
        serde_json::to_vec(&report).unwrap(),
    )
    .unwrap();
    dir
}

fn scan(replay: &Replay, ws: &tempfile::TempDir) -> Action {
    Action::github(ws.path())
        .env("GITHUB_API_URL", &replay.uri())
        .env("GITHUB_SHA", HEAD)
        .input("command", "scan")
        .input("report", "report.json")
        .input("image", "acme/app")
        .input("path", "ops/docker/app")
        .input("github-token", TOKEN)
}

/// `POST` answers with the real created check run (id 4), `PATCH` with the
/// same run.
async fn check_runs_answer(replay: &Replay) {
    let created =
        fixture_json("github-api/check-run-create.completed.rest-api-description-example.json");
    Mock::given(method("POST"))
        .and(path(format!("/repos/{REPO}/check-runs")))
        .respond_with(ResponseTemplate::new(201).set_body_json(created.clone()))
        .mount(&replay.server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/repos/{REPO}/check-runs/4")))
        .respond_with(ResponseTemplate::new(200).set_body_json(created))
        .mount(&replay.server)
        .await;
}

async fn check_runs_refuse(replay: &Replay) {
    Mock::given(method("POST"))
        .and(path(format!("/repos/{REPO}/check-runs")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run",
        })))
        .mount(&replay.server)
        .await;
}

/// Method, path and JSON body of every request, in order.
async fn sent(replay: &Replay) -> Vec<(String, String, Value)> {
    replay
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_owned(),
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn routes(requests: &[(String, String, Value)]) -> Vec<(&str, &str)> {
    requests
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect()
}

fn refused_notice(ran: &Ran) {
    assert!(
        ran.stdout
            .contains("::notice::check-run annotations need `permissions: checks: write`")
            && ran
                .stdout
                .contains("403 (\"Resource not accessible by integration\")"),
        "{ran}"
    );
}

#[tokio::test]
async fn a_hundred_and_twenty_findings_are_one_create_and_two_patches() {
    let replay = Replay::start().await;
    check_runs_answer(&replay).await;
    let ws = workspace(120, &SEVERITIES);
    let ran = scan(&replay, &ws).run_async().await;
    assert_eq!(ran.code, 1, "30 criticals block\n{ran}");
    assert_eq!(ran.outputs["scan-result"], "fail");
    assert_eq!(ran.outputs["critical"], "30");
    assert!(
        ran.stdout
            .contains("::error file=ops/docker/app/Dockerfile,line=5,title=critical CVE-2099-"),
        "the workflow-command annotations still come\n{ran}"
    );
    assert!(
        ran.stdout.starts_with(&format!("::add-mask::{TOKEN}\n")),
        "{ran}"
    );

    let requests = sent(&replay).await;
    let run = format!("/repos/{REPO}/check-runs");
    let update = format!("{run}/4");
    assert_eq!(
        routes(&requests),
        [
            ("POST", run.as_str()),
            ("PATCH", update.as_str()),
            ("PATCH", update.as_str())
        ]
    );
    assert_eq!(
        replay.authorizations().await,
        vec![format!("Bearer {TOKEN}"); 3]
    );

    let create = &requests[0].2;
    assert_eq!(create["name"], "scan acme/app");
    assert_eq!(create["head_sha"], HEAD);
    assert_eq!(create["status"], "completed");
    assert_eq!(create["conclusion"], "failure");
    assert_eq!(
        create["output"]["title"],
        "Trivy: fail — 30 critical, 30 high, 30 medium, 30 low, 0 unknown"
    );

    let mut annotations = Vec::new();
    for (_, _, body) in &requests {
        let output = &body["output"];
        assert_eq!(
            output["title"], create["output"]["title"],
            "every PATCH has the title"
        );
        let summary = output["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("#### Trivy scan of `acme/app`: **fail — not pushed**")
                && summary.len() <= 65_535,
            "{summary}"
        );
        annotations.push(output["annotations"].as_array().unwrap().clone());
    }
    let sizes: Vec<usize> = annotations.iter().map(Vec::len).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let all: Vec<&Value> = annotations.iter().flatten().collect();
    let ids: BTreeSet<&str> = all
        .iter()
        .map(|a| a["title"].as_str().unwrap().split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(ids.len(), 120, "each finding once");
    for a in &all {
        assert_eq!(a["path"], "ops/docker/app/Dockerfile");
        assert_eq!(
            (a["start_line"].as_u64(), a["end_line"].as_u64()),
            (Some(5), Some(5))
        );
        assert!(
            a["raw_details"].as_str().unwrap().starts_with("package: "),
            "{a}"
        );
    }
    let level = |l: &str| all.iter().filter(|a| a["annotation_level"] == l).count();
    assert_eq!(
        (level("failure"), level("warning"), level("notice")),
        (30, 30, 60),
        "critical fails, high warns, the rest are notices"
    );
    assert_eq!(
        all[0]["title"], "critical CVE-2099-00000 in libcrypto1.1 1.1.1b-r1",
        "most severe first, as in the summary"
    );
}

#[tokio::test]
async fn the_pull_request_head_is_the_check_runs_commit() {
    let replay = Replay::start().await;
    check_runs_answer(&replay).await;
    let ws = workspace(3, &["MEDIUM"]);
    let mut event = fixture_json("github-events/pull_request-opened.json");
    event["pull_request"]["head"]["sha"] = json!(HEAD);
    let ran = scan(&replay, &ws)
        .env("GITHUB_SHA", MERGE)
        .event("pull_request", &event)
        .run_async()
        .await;
    ran.assert_ok();
    let requests = sent(&replay).await;
    assert_eq!(requests.len(), 1, "three annotations fit in the create");
    let create = &requests[0].2;
    assert_eq!(create["head_sha"], HEAD, "not the merge commit");
    assert_eq!(create["conclusion"], "success");
    assert_eq!(create["output"]["annotations"].as_array().unwrap().len(), 3);

    // `sha` wins over the event.
    let replay = Replay::start().await;
    check_runs_answer(&replay).await;
    scan(&replay, &ws)
        .input("sha", MERGE)
        .event("pull_request", &event)
        .run_async()
        .await
        .assert_ok();
    assert_eq!(sent(&replay).await[0].2["head_sha"], MERGE);
}

#[tokio::test]
async fn a_forks_403_is_a_notice_and_the_policy_decides_the_exit() {
    // Warn: released, exit 0, outputs written.
    let replay = Replay::start().await;
    check_runs_refuse(&replay).await;
    let ws = workspace(120, &["HIGH", "LOW"]);
    let ran = scan(&replay, &ws).run_async().await;
    ran.assert_ok();
    assert_eq!(ran.outputs["scan-result"], "warn");
    refused_notice(&ran);
    let requests = sent(&replay).await;
    assert_eq!(
        routes(&requests),
        [("POST", format!("/repos/{REPO}/check-runs").as_str())],
        "nothing more after the refusal"
    );
    assert_eq!(requests[0].2["conclusion"], "neutral");

    // Fail: exit 1 for the findings, not for the check run.
    let replay = Replay::start().await;
    check_runs_refuse(&replay).await;
    let ws = workspace(120, &SEVERITIES);
    let ran = scan(&replay, &ws).run_async().await;
    assert_eq!(ran.code, 1, "{ran}");
    assert_eq!(ran.outputs["scan-result"], "fail");
    assert!(
        ran.stdout.contains("the scan found what `fail-on` blocks"),
        "{ran}"
    );
    refused_notice(&ran);
}

#[tokio::test]
async fn check_run_true_makes_a_refusal_an_error() {
    let replay = Replay::start().await;
    check_runs_refuse(&replay).await;
    let ws = workspace(10, &["LOW"]);
    let ran = scan(&replay, &ws)
        .input("check-run", "true")
        .run_async()
        .await;
    ran.assert_failed("`check-run: true` but GitHub refused the check run");
    assert!(ran.stdout.contains("checks: write"), "{ran}");

    // …and the missing token too.
    let ran = Action::github(ws.path())
        .input("command", "scan")
        .input("report", "report.json")
        .input("check-run", "true")
        .run_async()
        .await;
    ran.assert_failed("`check-run: true` needs a token");
}

#[tokio::test]
async fn no_check_run_when_off_github_without_a_token_or_turned_off() {
    let replay = Replay::start().await;
    check_runs_answer(&replay).await;
    let ws = workspace(10, &["LOW"]);
    scan(&replay, &ws)
        .input("check-run", "false")
        .run_async()
        .await
        .assert_ok();
    scan(&replay, &ws)
        .env("GITEA_ACTIONS", "true")
        .env("FORGEJO_ACTIONS", "true")
        .run_async()
        .await
        .assert_ok();
    Action::github(ws.path())
        .env("GITHUB_API_URL", &replay.uri())
        .env("GITHUB_SHA", HEAD)
        .input("command", "scan")
        .input("report", "report.json")
        .run_async()
        .await
        .assert_ok();
    assert!(sent(&replay).await.is_empty());
}

#[tokio::test]
async fn a_server_error_only_warns_in_auto() {
    let replay = Replay::start().await;
    // The catch-all answers 501: not a refusal, an outage.
    let ws = workspace(10, &["LOW"]);
    let ran = scan(&replay, &ws).run_async().await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains("::warning::the check run `scan acme/app` was skipped: the GitHub API failed on POST /repos/acme/monorepo/check-runs: 501"),
        "{ran}"
    );
    assert_eq!(sent(&replay).await.len(), 1, "no retry of a POST");
}

/// A check run answered a byte a second passes the client's per-read
/// timeout; the request is bounded in all (30 s), and in `auto` that is a
/// warning, not a hang.
#[tokio::test]
async fn an_api_answering_a_byte_a_second_is_given_up_on_within_the_request_bound() {
    let server = Hostile::start(Misbehaviour::TrickledAnswers);
    let replay = Replay::start().await;
    let ws = workspace(10, &["LOW"]);
    let started = std::time::Instant::now();
    let ran = scan(&replay, &ws)
        .env("GITHUB_API_URL", &format!("http://{}", server.address))
        .run_async()
        .await;
    let took = started.elapsed();
    ran.assert_ok();
    assert!(
        ran.stdout.contains(&format!(
            "::warning::the check run `scan acme/app` was skipped: the GitHub API didn't answer POST /repos/{REPO}/check-runs in full within 30s; it may be down"
        )),
        "{ran}"
    );
    assert!(
        took < Duration::from_secs(30 + 10),
        "scan ran {took:?}, past its bound\n{ran}"
    );
}
