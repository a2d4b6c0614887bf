//! The scan gate with a real Trivy binary, offline, on images built
//! `FROM scratch` that carry an Alpine package database; and the `scan`
//! command on the real reports in tests/fixtures.

use serde_json::Value;

use crate::publish::{self, Refused, assert_not_pushed, publish, tags};
use crate::support::fixture;
use crate::support::git::Repo;
use crate::support::run::Action;
use crate::support::services::services;
use crate::support::trivy::{alpine_rootfs, trivy};

const DOCKERFILE: &str = "# the scanned image\nFROM scratch\nCOPY rootfs/ /\n";

fn image_with(packages: &[(&str, &str)]) -> Repo {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", DOCKERFILE);
    alpine_rootfs(&repo, "ops/docker/app", packages);
    repo.commit("app");
    repo
}

fn scanned(repo: &Repo, ns: &str) -> Action {
    trivy().around(publish(repo, ns, "refs/heads/main", &repo.head()).input("scanner", "trivy"))
}

#[tokio::test]
async fn a_critical_finding_blocks_the_release_and_pushes_nothing() {
    let repo = image_with(&[("busybox", "1.36.1-r15"), ("libcrypto3", "3.1.4-r0")]);
    let ran = scanned(&repo, "s-critical")
        .input("sarif", "trivy.sarif")
        .run_async()
        .await;
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stdout.contains("nothing was pushed"), "{ran}");
    assert_blocked(&ran, &repo, "s-critical/app", "s-critical-control/app").await;
    assert!(
        ran.stdout.contains(
            "::error file=ops/docker/app/Dockerfile,line=2,title=critical TEST-2026-0001 in "
        ),
        "the finding is annotated on the final FROM line\n{ran}"
    );
    assert!(
        ran.stdout
            .contains("::warning file=ops/docker/app/Dockerfile,line=2,title=high TEST-2026-0002"),
        "{ran}"
    );
    assert!(
        ran.summary.contains("**fail — not pushed**"),
        "{}",
        ran.summary
    );
    assert!(
        ran.summary
            .contains("| critical | TEST-2026-0001 | `busybox` | 1.36.1-r15 → 1.36.1-r16 |"),
        "{}",
        ran.summary
    );

    let sarif: Value =
        serde_json::from_slice(&std::fs::read(repo.join("trivy.sarif")).unwrap()).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "every severity is kept");
    assert!(
        results.iter().all(|r| r["level"] == "error"),
        "critical and high map to error"
    );
}

#[tokio::test]
async fn a_high_finding_warns_and_releases() {
    let repo = image_with(&[("libcrypto3", "3.1.4-r0"), ("zlib", "1.3.1-r0")]);
    let ran = scanned(&repo, "s-high").run_async().await;
    ran.assert_ok();
    assert_eq!(ran.outputs["scan-result"], "warn");
    assert_eq!(
        (ran.outputs["high"].as_str(), ran.outputs["medium"].as_str()),
        ("1", "1")
    );
    assert_eq!(
        tags(&services().registry_open, "s-high/app", None)
            .await
            .len(),
        2,
        "SHA and latest pushed"
    );
    assert!(
        ran.stdout
            .contains("::warning file=ops/docker/app/Dockerfile,line=2,title=high TEST-2026-0002"),
        "{ran}"
    );
    assert!(
        ran.stdout
            .contains("::notice file=ops/docker/app/Dockerfile,line=2,title=medium TEST-2026-0003"),
        "{ran}"
    );
    assert!(
        ran.summary.contains("**warn — released**"),
        "{}",
        ran.summary
    );
}

#[tokio::test]
async fn a_clean_image_passes_and_ignore_unfixed_drops_what_has_no_fix() {
    let repo = image_with(&[("libcrypto3", "3.1.4-r0")]);
    let ran = scanned(&repo, "s-unfixed")
        .input("ignore-unfixed", "true")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["scan-result"], "pass");
    assert_eq!(ran.outputs["high"], "0");
}

#[tokio::test]
async fn an_ignore_entry_hides_a_finding_until_it_expires() {
    let repo = image_with(&[("busybox", "1.36.1-r15")]);
    repo.write(
        ".trivyignore.yaml",
        "vulnerabilities:\n  - id: TEST-2026-0001\n    statement: patched in our build\n    expired_at: 2999-01-01\n",
    );
    repo.commit("ignore, for now");
    let ran = scanned(&repo, "s-ignore")
        .input("ignore-file", ".trivyignore.yaml")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["scan-result"], "pass");
    assert!(
        ran.summary.contains("| 0 | 0 | 0 | 0 | 0 | 1 |"),
        "one ignored\n{}",
        ran.summary
    );

    repo.write(
        ".trivyignore.yaml",
        "vulnerabilities:\n  - id: TEST-2026-0001\n    statement: patched in our build\n    expired_at: 2024-01-01\n",
    );
    repo.commit("the ignore entry expired");
    let ran = scanned(&repo, "s-ignore")
        .input("ignore-file", ".trivyignore.yaml")
        .run_async()
        .await;
    assert_eq!(ran.code, 1, "an expired entry no longer ignores\n{ran}");
    assert_eq!(ran.outputs["scan-result"], "fail");
    assert!(
        ran.summary.contains("TEST-2026-0001") && ran.summary.contains("2024-01-01"),
        "{}",
        ran.summary
    );
    assert!(
        ran.stdout
            .contains("::warning file=ops/docker/app/Dockerfile,line=2,title=expired ignore entry"),
        "{ran}"
    );
}

/// The report (when there is one) copied into the workspace, where a path
/// input must lie.
fn scan_report(report: &str) -> Action {
    scan_file(&fixture(report))
}

fn scan_file(report: &std::path::Path) -> Action {
    let dir = tempfile::tempdir().unwrap().keep();
    let name = report.file_name().unwrap().to_str().unwrap();
    if report.exists() {
        std::fs::copy(report, dir.join(name)).unwrap();
    }
    Action::github(&dir)
        .input("command", "scan")
        .input("report", name)
        .input("image", "acme/app")
}

#[test]
fn the_scan_command_grades_reports_made_elsewhere() {
    let ran = scan_report("trivy/photon-30.json").run();
    assert_eq!(ran.code, 1, "{ran}");
    assert_eq!(ran.outputs["scan-result"], "fail");
    assert_eq!(
        (
            ran.outputs["critical"].as_str(),
            ran.outputs["high"].as_str()
        ),
        ("2", "1")
    );

    let ran = scan_report("trivy/centos-7.json").run();
    ran.assert_ok();
    assert_eq!(ran.outputs["scan-result"], "pass");

    let ran = scan_report("grype/grype-chainguard-ruby-wolfi.json").run();
    ran.assert_ok();
    assert_eq!(
        (
            ran.outputs["scan-result"].as_str(),
            ran.outputs["high"].as_str()
        ),
        ("warn", "3")
    );
    assert!(
        ran.summary
            .starts_with("#### Grype scan of `acme/app`: **warn"),
        "{}",
        ran.summary
    );

    let ran = scan_report("trivy/photon-30.json")
        .input("fail-on", "none")
        .input("warn-on", "none")
        .run();
    ran.assert_ok();
    assert_eq!(ran.outputs["scan-result"], "pass");
}

#[test]
fn bad_scan_inputs_fail_with_the_value() {
    scan_report("trivy/photon-30.json")
        .input("fail-on", "severe")
        .run()
        .assert_failed("severe");
    scan_file(&fixture("trivy").join("absent.json"))
        .run()
        .assert_failed("absent.json");
    let dir = tempfile::tempdir().unwrap();
    Action::github(dir.path())
        .input("command", "scan")
        .run()
        .assert_failed("needs `image` (a reference)");
}

/// A file input larger than its limit (a report 128 MiB, an ignore file
/// 1 MiB) is refused naming the input, before it is read.
#[test]
fn file_inputs_over_their_limit_are_refused_naming_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = |name: &str, size: u64| {
        let file = std::fs::File::create(dir.path().join(name)).unwrap();
        file.set_len(size).unwrap();
    };
    sparse("huge.json", (128 << 20) + 1);
    let scan = || {
        Action::github(dir.path())
            .input("command", "scan")
            .input("image", "acme/app")
    };
    scan()
        .input("report", "huge.json")
        .run()
        .assert_failed("`report`: ");
    scan()
        .input("report", "huge.json")
        .run()
        .assert_failed("is larger than 128.0 MiB, the limit for it");
    std::fs::copy(
        fixture("trivy/centos-7.json"),
        dir.path().join("report.json"),
    )
    .unwrap();
    sparse(".trivyignore", (1 << 20) + 1);
    let ran = scan()
        .input("report", "report.json")
        .input("ignore-file", ".trivyignore")
        .run();
    ran.assert_failed("`ignore-file`: ");
    ran.assert_failed("is larger than 1.0 MiB, the limit for it");
}

/// A release of `repo`'s image to `repository` the scan blocked: one
/// critical and one high finding counted, exit 1, and nothing of the image
/// in the registry (its blobs learnt from a push to `control`).
pub async fn assert_blocked(
    ran: &crate::support::run::Ran,
    repo: &Repo,
    repository: &str,
    control: &str,
) {
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stdout.contains("nothing was pushed"), "{ran}");
    let control = publish::control(repo, control, Refused::AfterBuilding).await;
    assert_not_pushed(&control, repository).await;
    assert_eq!(ran.outputs["scan-result"], "fail", "{ran}");
    assert_eq!(
        (
            ran.outputs["critical"].as_str(),
            ran.outputs["high"].as_str()
        ),
        ("1", "1")
    );
    assert_eq!(ran.outputs["pushed"], "false");
}

#[tokio::test]
async fn the_scan_command_pulls_an_image_by_reference_and_grades_it() {
    let s = services();
    let repo = image_with(&[("busybox", "1.36.1-r15"), ("libcrypto3", "3.1.4-r0")]);
    let sha = repo.head();
    // Published without a scan; scanned afterwards by its reference.
    publish(&repo, "s-byref", "refs/heads/main", &sha)
        .run_async()
        .await
        .assert_ok();
    let reference = format!(
        "{}/{}:{sha}",
        s.registry_open,
        crate::publish::scoped("s-byref/app")
    );
    let ran = trivy()
        .around(Action::github(repo.path()))
        .env("DOCKER_HOST", &s.docker_host)
        .input("command", "scan")
        .input("image", &reference)
        .input("path", "ops/docker/app")
        .run_async()
        .await;
    assert_eq!(ran.code, 1, "{ran}");
    assert_eq!(ran.outputs["scan-result"], "fail");
    assert_eq!(ran.outputs["critical"], "1");
    assert!(
        ran.summary.contains(&format!("scan of `{reference}`")),
        "{}",
        ran.summary
    );
    assert!(
        ran.stdout
            .contains("::error file=ops/docker/app/Dockerfile,line=2,"),
        "{ran}"
    );
}
