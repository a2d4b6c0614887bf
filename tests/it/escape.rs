//! Untrusted text on its way to the log and the summary, through the real
//! binary: file and directory names and commit messages of a real git
//! repository, an event's tag and ref, a registry's error bodies and tag
//! names, a scanner report's fields and a real build's output, each
//! carrying a line break before a command, `%0A`, the legacy `##[` and
//! `::stop-commands::`, and markdown that would end a summary early: an
//! unclosed `<!--`, a tag, a backtick, an entity, emphasis. The runner must
//! find no command the run didn't mean, and the summary renders as written
//! (its tables whole, the text shown as given).

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::buildkit::{add_busybox, assert_nothing_pushed};
use crate::publish::unique;
use crate::support::git::Repo;
use crate::support::listing::listing_registry;
use crate::support::log::assert_no_forged_commands;
use crate::support::markdown::{assert_shows, assert_summary_whole};
use crate::support::run::{Action, Ran};
use crate::support::services::services;

/// A line break before a pause of the runner's command processing, an
/// escaped line break the runner would decode in a command's data, the
/// legacy form, a carriage return before another command; then, for the
/// summary, a backtick (a code span's end), a tag, an entity, emphasis and
/// an HTML comment left open, which would hide all that follows.
const HOSTILE: &str = "x\n::stop-commands::pwn %0A::set-output name=a::pwn ##[add-mask]pwn\r::echo::on ` <b>&amp; *em* <!--";

/// [`HOSTILE`] as any escaped line shows it, whether plain or a command's data.
const ESCAPED: &str = "x%0A::stop-commands::pwn %250A::set-output name=a::pwn";

/// No forged command in the log, the summary's structure as written.
fn assert_safe(ran: &Ran) {
    assert_no_forged_commands(&ran.stdout, &ran.stderr);
    assert_summary_whole(&ran.summary);
}

/// The source did reach the log, escaped: else the test proves nothing.
fn assert_logged_escaped(ran: &Ran) {
    assert!(
        ran.stdout.contains(ESCAPED) || ran.stderr.contains(ESCAPED),
        "the hostile text never reached the log escaped\n{ran}"
    );
}

fn push_event(git_ref: &str, before: &str, after: &str) -> Value {
    json!({
        "ref": git_ref,
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": {"full_name": "acme/monorepo", "default_branch": "main", "owner": {"login": "acme"}},
    })
}

#[test]
fn file_names_and_commit_messages_reach_the_log_escaped() {
    let repo = Repo::new();
    repo.image("app", "scratch");
    let before = repo.commit(&format!("initial {HOSTILE}"));
    repo.write(&format!("ops/docker/app/{HOSTILE}"), "1\n");
    let after = repo.commit(HOSTILE);
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("source", "git")
        .event("push", &push_event("refs/heads/main", &before, &after))
        .run();
    ran.assert_ok();
    assert_eq!(
        ran.matrix()[0]["reason"],
        format!("changed `ops/docker/app/{HOSTILE}`"),
        "outputs keep the name exactly"
    );
    assert_safe(&ran);
    assert_logged_escaped(&ran);
    assert_eq!(assert_summary_whole(&ran.summary), 1, "{}", ran.summary);
    assert_shows(&ran.summary, &format!("changed `ops/docker/app/{HOSTILE}`"));
}

#[test]
fn an_image_directory_name_is_refused_in_escaped_words() {
    let repo = Repo::new();
    repo.image(HOSTILE, "scratch");
    repo.commit("hostile directory");
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("all", "true")
        .run();
    ran.assert_failed(ESCAPED);
    assert_safe(&ran);
}

#[test]
fn event_fields_and_tag_names_reach_the_log_escaped() {
    let repo = Repo::new();
    repo.image("app", "scratch");
    let head = repo.commit("app");
    let release = json!({
        "action": "published",
        "release": {"tag_name": HOSTILE, "prerelease": false, "draft": false},
        "repository": {"full_name": "acme/monorepo", "default_branch": "main"},
    });
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .event("release", &release)
        .run();
    ran.assert_ok();
    assert_safe(&ran);
    assert_shows(
        &ran.summary,
        &format!("tag `{HOSTILE}` is not a release tag"),
    );

    // A ref and a `before` no clone has: both quoted in a warning.
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("source", "git")
        .event(
            "push",
            &push_event(&format!("refs/heads/{HOSTILE}"), HOSTILE, &head),
        )
        .run();
    ran.assert_ok();
    assert_safe(&ran);
    assert_logged_escaped(&ran);

    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("release-tag", HOSTILE)
        .run();
    ran.assert_failed("release-tag");
    assert_safe(&ran);
}

/// A registry that lists `tags` for every repository and refuses every
/// other request with `body`.
async fn refusing_registry(tags: &[&str], body: Value) -> MockServer {
    let server = listing_registry(tags).await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(400).set_body_json(body))
        .with_priority(u8::MAX)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn registry_error_bodies_and_tag_names_reach_the_log_escaped() {
    let body = json!({"errors": [{"code": "DENIED", "message": HOSTILE}]});
    let server = refusing_registry(&[HOSTILE, "v1"], body).await;
    let registry = server.address().to_string();
    let workspace = tempfile::tempdir().unwrap();
    let ran = Action::github(workspace.path())
        .input("command", "usage")
        .input("registry", &registry)
        .input("images", "acme/app")
        .run_async()
        .await;
    assert_eq!(ran.code, 1, "{ran}");
    assert_safe(&ran);
    assert_logged_escaped(&ran);
}

/// A Trivy report whose every field is hostile, its link a forged row.
fn hostile_report() -> Value {
    json!({
        "SchemaVersion": 2,
        "Results": [{
            "Target": HOSTILE,
            "Vulnerabilities": [{
                "VulnerabilityID": format!("CVE-1|]{HOSTILE}"),
                "PkgName": HOSTILE,
                "InstalledVersion": format!("1\\|{HOSTILE}"),
                "FixedVersion": HOSTILE,
                "Severity": "HIGH",
                "Title": HOSTILE,
                "PrimaryURL": "https://avd.example/x\n\n| forged | row | a | b |\n",
            }],
        }],
    })
}

#[test]
fn scan_report_fields_reach_the_log_escaped_and_stay_in_their_cells() {
    let workspace = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = workspace.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("report.json", &hostile_report().to_string());
    write("ops/docker/app/Dockerfile", "FROM scratch\n");
    let ran = Action::github(workspace.path())
        .input("command", "scan")
        .input("report", "report.json")
        .input("image", "acme/app")
        .input("path", "ops/docker/app")
        .input("fail-on", "none")
        .input("sarif", "scan.sarif")
        .run();
    ran.assert_ok();
    assert_safe(&ran);
    assert_logged_escaped(&ran);
    assert_eq!(assert_summary_whole(&ran.summary), 2, "{}", ran.summary);
    for shown in [HOSTILE, &format!("1\\|{HOSTILE}")] {
        assert_shows(&ran.summary, shown);
    }
    assert!(
        !ran.summary.lines().any(|l| l.starts_with("| forged")),
        "{}",
        ran.summary
    );
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(workspace.path().join("scan.sarif")).unwrap())
            .unwrap();
    let help = sarif["runs"][0]["tool"]["driver"]["rules"][0]["help"]["markdown"]
        .as_str()
        .unwrap_or_else(|| panic!("no rule help in {sarif}"));
    assert_eq!(assert_summary_whole(help), 1, "{help}");
    assert_shows(help, HOSTILE);
}

/// A build whose step prints [`HOSTILE`], then fails.
fn hostile_build() -> (Repo, String) {
    let repo = Repo::new();
    let script = format!("printf '%s\\n' '{HOSTILE}'; exit 3");
    let script = serde_json::to_string(&script).unwrap();
    repo.write(
        "ops/docker/app/Dockerfile",
        &format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", {script}]\n"
        ),
    );
    add_busybox(&repo, "ops/docker/app/busybox");
    let sha = repo.commit(HOSTILE);
    (repo, sha)
}

fn publish(action: Action, ns: &str, sha: &str) -> Action {
    let s = services();
    action
        .env("DOCKER_HOST", &s.docker_host)
        .input("command", "publish")
        .input("path", "ops/docker/app")
        .input("registry", &s.registry_open)
        .input("namespace", &unique(ns))
        .input("sha", sha)
        .input("scanner", "none")
        .input("network", "none")
}

#[tokio::test]
async fn build_output_reaches_the_log_escaped_on_a_runner_and_off() {
    let (repo, sha) = hostile_build();
    let ran = publish(Action::github(repo.path()), "t-esc-build", &sha)
        .run_async()
        .await;
    ran.assert_failed("exit code: 3");
    assert_safe(&ran);
    // Escaped in the failed step's annotation, which quotes the output.
    assert!(
        ran.stdout
            .contains("::stop-commands::pwn %250A::set-output"),
        "{ran}"
    );
    // Raw inside the paused group: the build log reads as it was written.
    assert!(ran.stdout.contains("##[add-mask]pwn"), "{ran}");

    // Off a runner nobody pauses the runner, should it read our output
    // after all (`docker run` in a `run:` step): every line is escaped.
    let ran = publish(Action::local(repo.path()), "t-esc-build", &sha)
        .run_async()
        .await;
    assert_eq!(ran.code, 1, "{ran}");
    assert_safe(&ran);
    assert!(ran.stderr.contains("##%5Badd-mask]pwn"), "{ran}");
    assert_nothing_pushed("t-esc-build/app").await;
}
