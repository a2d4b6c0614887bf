//! The workspace is a boundary: committed symlinks and path inputs that
//! lead out of it are refused, naming the input, with nothing built,
//! pushed, read or written, and no file's content in the log.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::buildkit::assert_nothing_pushed;
use crate::publish::unique;
use crate::support::git::Repo;
use crate::support::run::{Action, Ran};
use crate::support::secret::assert_absent;
use crate::support::services::services;

/// A folder beside the workspace holding an image directory whose secret a
/// build would copy in.
fn outside() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        "FROM scratch\nCOPY secret /secret\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("app/secret"), "outside-secret-0451\n").unwrap();
    dir
}

/// Exit 1, the input named and the path said to be outside, no outputs,
/// and none of `leaks` in the log.
fn assert_refused(ran: &Ran, input: &str, leaks: &[&str]) {
    ran.assert_failed(&format!("`{input}`: "));
    assert!(ran.stdout.contains("outside the workspace"), "{ran}");
    // A line too short to tell from other words isn't looked for.
    for leak in leaks.iter().filter(|l| l.len() >= 8) {
        assert_absent(&ran.stdout, leak, "stdout");
        assert_absent(&ran.stderr, leak, "stderr");
    }
}

fn publish(repo: &Repo, ns: &str, path: &str) -> Action {
    let s = services();
    Action::github(repo.path())
        .env("DOCKER_HOST", &s.docker_host)
        .input("command", "publish")
        .input("path", path)
        .input("registry", &s.registry_open)
        .input("namespace", &unique(ns))
        .input("sha", &repo.head())
        .input("scanner", "none")
}

/// The first line of a file outside, as an error would have quoted it.
fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_image_directory_linked_out_of_the_workspace_is_neither_built_nor_pushed() {
    let elsewhere = outside();
    let repo = Repo::new();
    repo.image("app", "scratch");
    std::fs::create_dir_all(repo.join("ops/docker")).unwrap();
    symlink(elsewhere.path().join("app"), repo.join("ops/docker/evil")).unwrap();
    repo.commit("a link out");
    let ran = publish(&repo, "t-bnd-dir", "ops/docker/evil")
        .run_async()
        .await;
    assert_refused(&ran, "path", &["outside-secret-0451"]);
    assert!(
        !ran.stdout.contains("::group::build"),
        "nothing built\n{ran}"
    );
    assert_nothing_pushed("t-bnd-dir/evil").await;

    // The scan's files are checked before the build, not after it.
    for (input, given) in [("sarif", "../scan.sarif"), ("ignore-file", "/etc/passwd")] {
        let ran = publish(&repo, "t-bnd-dir", "ops/docker/app")
            .input(input, given)
            .run_async()
            .await;
        assert_refused(&ran, input, &[]);
        assert!(
            !ran.stdout.contains("::group::build"),
            "nothing built\n{ran}"
        );
    }
    assert_nothing_pushed("t-bnd-dir/app").await;
}

#[tokio::test]
async fn a_dockerfile_out_of_the_workspace_is_refused_and_never_quoted() {
    let repo = Repo::new();
    repo.image("app", "scratch");
    std::fs::create_dir_all(repo.join("ops/docker/host")).unwrap();
    symlink("/etc/hostname", repo.join("ops/docker/host/Dockerfile")).unwrap();
    repo.commit("a Dockerfile linked out");
    let hostname = first_line("/etc/hostname");
    let ran = publish(&repo, "t-bnd-df", "ops/docker/host")
        .run_async()
        .await;
    assert_refused(&ran, "dockerfile", &[&hostname]);
    assert_nothing_pushed("t-bnd-df/host").await;

    let passwd = first_line("/etc/passwd");
    for given in ["/etc/passwd", "../../../../../../../../etc/passwd"] {
        let ran = publish(&repo, "t-bnd-df", "ops/docker/app")
            .input("dockerfile", given)
            .run_async()
            .await;
        assert_refused(&ran, "dockerfile", &[&passwd, "root:x:0:0"]);
    }
    assert_nothing_pushed("t-bnd-df/app").await;

    // `plan` refuses the image whose Dockerfile leads out, not lists it.
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("all", "true")
        .run();
    assert_refused(&ran, "context-root", &[&hostname]);
    assert!(ran.stdout.contains("ops/docker/host/Dockerfile"), "{ran}");
}

#[test]
fn a_context_root_linked_out_lists_nothing_outside() {
    let elsewhere = outside();
    let repo = Repo::new();
    repo.image("app", "scratch");
    symlink(elsewhere.path(), repo.join("images")).unwrap();
    // A link that stays inside is followed.
    symlink("ops/docker", repo.join("inside")).unwrap();
    repo.commit("links");
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("context-root", "images")
        .input("all", "true")
        .run();
    assert_refused(&ran, "context-root", &[]);
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("context-root", "inside")
        .input("all", "true")
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["app"]);
}

/// A workspace holding a valid Trivy report, and a folder beside it.
struct Files {
    workspace: tempfile::TempDir,
    beside: tempfile::TempDir,
}

fn files() -> Files {
    let files = Files {
        workspace: tempfile::tempdir().unwrap(),
        beside: tempfile::tempdir().unwrap(),
    };
    let report = r#"{"SchemaVersion": 2, "Results": []}"#;
    for dir in [files.workspace.path(), files.beside.path()] {
        std::fs::write(dir.join("report.json"), report).unwrap();
    }
    files
}

fn scan(workspace: &Path) -> Action {
    Action::github(workspace)
        .input("command", "scan")
        .input("image", "acme/app")
}

#[test]
fn file_inputs_out_of_the_workspace_are_refused() {
    let f = files();
    let ws = f.workspace.path();
    let beside_report = f.beside.path().join("report.json");
    let beside_report = beside_report.to_str().unwrap();
    let sarif_outside = f.beside.path().join("scan.sarif");
    let passwd = first_line("/etc/passwd");
    for (action, input) in [
        (scan(ws).input("report", beside_report), "report"),
        (scan(ws).input("archive", "/etc/passwd"), "archive"),
        (
            scan(ws)
                .input("report", "report.json")
                .input("ignore-file", "/etc/passwd"),
            "ignore-file",
        ),
        (
            scan(ws)
                .input("report", "report.json")
                .input("sarif", sarif_outside.to_str().unwrap()),
            "sarif",
        ),
        (
            scan(ws)
                .input("report", "report.json")
                .input("path", "../.."),
            "path",
        ),
        (
            Action::github(ws)
                .input("command", "verify")
                .input("image", "127.0.0.1:9/acme/app:1")
                .input("public-key", "/etc/passwd"),
            "public-key",
        ),
        (
            Action::github(ws)
                .input("command", "usage")
                .input("registry", "127.0.0.1:9")
                .input("images", "acme/app")
                .input("previous-report", beside_report),
            "previous-report",
        ),
        (
            Action::github(ws)
                .input("command", "monitor")
                .input("registry", "127.0.0.1:9")
                .input("images", "acme/app")
                .input("previous-report", "/etc/passwd"),
            "previous-report",
        ),
        // Written at the end, refused at the start: the registry (a
        // closed port) is never asked.
        (
            Action::github(ws)
                .input("command", "usage")
                .input("registry", "127.0.0.1:9")
                .input("images", "acme/app")
                .input("report-file", "../usage.json"),
            "report-file",
        ),
        (
            Action::github(ws)
                .input("command", "monitor")
                .input("registry", "127.0.0.1:9")
                .input("images", "acme/app")
                .input("report-file", "/etc/monitor.json"),
            "report-file",
        ),
        (
            Action::github(ws)
                .input("command", "restore")
                .input("archive", "/etc")
                .input("to", "127.0.0.1:9/acme/app"),
            "archive",
        ),
        (
            Action::github(ws)
                .input("command", "backup")
                .input("from", "127.0.0.1:9/acme/app")
                .input("archive", f.beside.path().join("b.tar").to_str().unwrap()),
            "archive",
        ),
    ] {
        let ran = action.run();
        assert_refused(&ran, input, &[&passwd, "root:x:0:0"]);
    }
    assert!(!sarif_outside.exists(), "a SARIF file was written outside");
    assert!(!f.beside.path().join("b.tar").exists());
}

#[test]
fn files_steps_hand_each_other_may_be_in_runner_temp_and_sources_may_not() {
    let f = files();
    let ws = f.workspace.path();
    let action = scan(ws);
    let report = action.runner_dir().join("report.json");
    std::fs::copy(ws.join("report.json"), &report).unwrap();
    let sarif = action.runner_dir().join("scan.sarif");
    let action = action
        .input("report", report.to_str().unwrap())
        .input("sarif", sarif.to_str().unwrap());
    // Run so that RUNNER_TEMP outlives the run.
    let ran = action.finish(action.command().output().unwrap());
    ran.assert_ok();
    assert!(sarif.is_file(), "{ran}");

    let action = scan(ws).input("report", "report.json");
    let ignore = action.runner_dir().join(".trivyignore");
    std::fs::write(&ignore, "CVE-2024-0001\n").unwrap();
    let ran = action.input("ignore-file", ignore.to_str().unwrap()).run();
    assert_refused(&ran, "ignore-file", &[]);
}
