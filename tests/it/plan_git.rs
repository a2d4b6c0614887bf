//! `plan` on real git repositories: pushes, merges, renames, deletions,
//! force pushes, new branches, tags.

use serde_json::{Value, json};

use crate::support::fixture_json;
use crate::support::git::Repo;
use crate::support::run::Action;

const ZERO: &str = "0000000000000000000000000000000000000000";

/// The real push payload, pointed at this repository's commits.
pub fn push_event(git_ref: &str, before: &str, after: &str, forced: bool) -> Value {
    let mut event = fixture_json("github-events/push-normal.json");
    event["ref"] = json!(git_ref);
    event["before"] = json!(before);
    event["after"] = json!(after);
    event["forced"] = json!(forced);
    event["created"] = json!(before == ZERO);
    event["deleted"] = json!(after == ZERO);
    event["repository"]["default_branch"] = json!("main");
    event
}

/// Three images; `app` builds on `base`.
fn monorepo() -> (Repo, String) {
    let repo = Repo::new();
    repo.image("base", "scratch")
        .image("app", "acme/base:latest")
        .image("tool", "scratch")
        .write("README.md", "demo\n");
    let first = repo.commit("initial");
    (repo, first)
}

fn plan_push(
    repo: &Repo,
    git_ref: &str,
    before: &str,
    after: &str,
    forced: bool,
) -> crate::support::run::Ran {
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("source", "git")
        .event("push", &push_event(git_ref, before, after, forced))
        .run();
    ran.assert_ok();
    ran
}

#[test]
fn a_push_selects_the_changed_image_only() {
    let (repo, before) = monorepo();
    repo.write("ops/docker/tool/run.sh", "echo hi\n");
    let after = repo.commit("change tool");
    let ran = plan_push(&repo, "refs/heads/main", &before, &after, false);
    assert_eq!(ran.selected(), ["tool"]);
    let entry = &ran.matrix()[0];
    assert_eq!(entry["path"], "ops/docker/tool");
    assert_eq!(entry["image"], "acme/tool");
    assert_eq!(entry["dockerfile"], "ops/docker/tool/Dockerfile");
    assert_eq!(entry["reason"], "changed `ops/docker/tool/run.sh`");
    assert_eq!(ran.outputs["images"], r#"["tool"]"#);
    assert_eq!(ran.outputs["changed"], "true");
    assert_eq!(ran.outputs["count"], "1");
    assert_eq!(ran.outputs["sha"], after);
    assert!(
        ran.summary.contains(&format!(
            "Compared `{}..{}` for `push` with **git**: 1 changed file.",
            &before[..7],
            &after[..7]
        )),
        "{}",
        ran.summary
    );
}

#[test]
fn a_push_of_several_commits_sees_all_of_them() {
    let (repo, before) = monorepo();
    repo.write("ops/docker/tool/a", "1");
    repo.commit("one");
    repo.write("ops/docker/app/b", "2");
    repo.commit("two");
    repo.write("README.md", "3");
    let after = repo.commit("three");
    assert_eq!(
        plan_push(&repo, "refs/heads/main", &before, &after, false).selected(),
        // `base` is unchanged, so `app` waits for nothing: both tier 0.
        ["app", "tool"]
    );
}

#[test]
fn a_changed_base_rebuilds_its_dependents_in_order() {
    let (repo, before) = monorepo();
    repo.write("ops/docker/base/etc/motd", "hello\n");
    let after = repo.commit("base");
    let ran = plan_push(&repo, "refs/heads/main", &before, &after, false);
    assert_eq!(ran.selected(), ["base", "app"]);
    let matrix = ran.matrix();
    assert_eq!(
        (matrix[0]["tier"].as_u64(), matrix[1]["tier"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(matrix[1]["depends-on"], json!(["base"]));
    assert_eq!(matrix[1]["reason"], "base image `base` is rebuilt");
    let tier = |n: usize| -> Value {
        serde_json::from_str(&ran.outputs[&format!("matrix-tier-{n}")]).unwrap()
    };
    assert_eq!(tier(0), json!([matrix[0]]));
    assert_eq!(tier(1), json!([matrix[1]]));
    for n in 2..8 {
        assert_eq!(tier(n), json!([]), "matrix-tier-{n}");
    }
    assert!(!ran.outputs.contains_key("matrix-tier-8"), "{ran}");
}

#[test]
fn a_base_pinned_by_version_or_unchanged_is_not_a_dependency() {
    let (repo, before) = monorepo();
    repo.image("pinned", "acme/base:1.3.0");
    let before = {
        let _ = before;
        repo.commit("pinned")
    };
    repo.write("ops/docker/base/etc/motd", "hello\n");
    let after = repo.commit("base");
    let ran = plan_push(&repo, "refs/heads/main", &before, &after, false);
    assert_eq!(ran.selected(), ["base", "app"]);

    repo.write("ops/docker/app/x", "1\n")
        .write("ops/docker/pinned/x", "1\n");
    let next = repo.commit("app and pinned");
    let ran = plan_push(&repo, "refs/heads/main", &after, &next, false);
    assert_eq!(ran.selected(), ["app", "pinned"]);
    for entry in ran.matrix() {
        assert_eq!(
            (&entry["depends-on"], &entry["tier"]),
            (&json!([]), &json!(0)),
            "{entry}"
        );
    }
    assert_eq!(ran.outputs["matrix-tier-1"], "[]");

    repo.write("ops/docker/base/etc/motd", "again\n")
        .write("ops/docker/pinned/x", "2\n");
    let last = repo.commit("base and pinned");
    let ran = plan_push(&repo, "refs/heads/main", &next, &last, false);
    let matrix = ran.matrix();
    let pinned = matrix.iter().find(|e| e["name"] == "pinned").unwrap();
    assert_eq!(pinned["reason"], "changed `ops/docker/pinned/x`");
    assert_eq!(
        (&pinned["depends-on"], &pinned["tier"]),
        (&json!([]), &json!(0))
    );
    let tier_0: Value = serde_json::from_str(&ran.outputs["matrix-tier-0"]).unwrap();
    assert!(tier_0.as_array().unwrap().contains(pinned), "{ran}");
}

#[test]
fn a_rename_counts_at_both_paths() {
    let (repo, before) = monorepo();
    repo.write("ops/docker/tool/config.yml", "a: 1\n");
    let before = {
        let _ = before;
        repo.commit("add config")
    };
    repo.rename("ops/docker/tool/config.yml", "ops/docker/base/config.yml");
    let after = repo.commit("move config");
    assert_eq!(
        plan_push(&repo, "refs/heads/main", &before, &after, false).selected(),
        ["base", "tool", "app"]
    );
}

#[test]
fn a_deleted_image_directory_is_not_selected() {
    let (repo, before) = monorepo();
    repo.remove("ops/docker/tool");
    let after = repo.commit("drop tool");
    let ran = plan_push(&repo, "refs/heads/main", &before, &after, false);
    assert_eq!(ran.selected(), Vec::<String>::new());
    assert_eq!(ran.outputs["matrix"], "[]");
    assert_eq!(ran.outputs["changed"], "false");
    assert_eq!(ran.outputs["count"], "0");
}

#[test]
fn a_merge_brings_the_branch_changes() {
    let (repo, _) = monorepo();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("ops/docker/tool/x", "feature\n");
    repo.commit("feature work");
    repo.git(&["checkout", "-q", "main"]);
    repo.write("README.md", "main moved on\n");
    let before = repo.commit("main work");
    repo.git(&["merge", "-q", "--no-ff", "feature", "-m", "merge feature"]);
    let after = repo.head();
    assert_eq!(
        plan_push(&repo, "refs/heads/main", &before, &after, false).selected(),
        ["tool"]
    );
}

#[test]
fn a_forced_push_counts_what_the_old_tip_had_too() {
    let (repo, _) = monorepo();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("ops/docker/tool/x", "old work\n");
    let old = repo.commit("old tip");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    repo.write("ops/docker/app/y", "new work\n");
    let new = repo.commit("new tip");
    // tool changed on the old tip only: its image must be rebuilt to drop it.
    assert_eq!(
        plan_push(&repo, "refs/heads/feature", &old, &new, true).selected(),
        ["app", "tool"]
    );
}

#[test]
fn a_forced_push_with_the_old_tip_gone_compares_with_the_default_branch() {
    let (repo, _) = monorepo();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("ops/docker/app/y", "work\n");
    let new = repo.commit("new tip");
    let gone = "1234567890123456789012345678901234567890";
    let ran = plan_push(&repo, "refs/heads/feature", gone, &new, true);
    assert_eq!(ran.selected(), ["app"]);
    assert!(ran.summary.contains("main..."), "{}", ran.summary);
    assert!(
        ran.stdout.contains("::warning::git can't list 1234567"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_forced_push_on_the_default_branch_with_nothing_to_compare_selects_all() {
    let (repo, _) = monorepo();
    let gone = "1234567890123456789012345678901234567890";
    let ran = plan_push(&repo, "refs/heads/main", gone, &repo.head(), true);
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
    assert!(
        ran.summary.contains("every image is rebuilt"),
        "{}",
        ran.summary
    );
}

#[test]
fn a_new_branch_compares_with_where_it_left_the_default_branch() {
    let (repo, _) = monorepo();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("ops/docker/tool/one", "1");
    repo.commit("one");
    repo.write("ops/docker/base/two", "2");
    let after = repo.commit("two");
    repo.git(&["checkout", "-q", "main"]);
    repo.write("ops/docker/app/on-main", "main only\n");
    repo.commit("main moves");
    repo.git(&["checkout", "-q", "feature"]);
    let ran = plan_push(&repo, "refs/heads/feature", ZERO, &after, false);
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
    let app = &ran.matrix()[2];
    assert_eq!(
        app["reason"], "base image `base` is rebuilt",
        "app changed on main only, not on the branch"
    );
}

#[test]
fn the_first_push_of_the_default_branch_selects_all() {
    let (repo, first) = monorepo();
    let ran = plan_push(&repo, "refs/heads/main", ZERO, &first, false);
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
}

#[test]
fn release_tags_select_and_version_images() {
    let (repo, first) = monorepo();
    let ran = plan_push(&repo, "refs/tags/tool-v1.4.0", ZERO, &first, false);
    assert_eq!(ran.selected(), ["tool"]);
    assert_eq!(ran.matrix()[0]["version"], "1.4.0");
    assert_eq!(ran.outputs["version"], "1.4.0");
    let ran = plan_push(&repo, "refs/tags/v2.0.0-rc.1", ZERO, &first, false);
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
    assert!(ran.matrix().iter().all(|e| e["version"] == "2.0.0-rc.1"));
}

#[test]
fn deleting_a_branch_or_tag_plans_nothing_and_succeeds() {
    let (repo, first) = monorepo();
    for (fixture, git_ref) in [
        (
            "github-events/push-branch-deleted.json",
            "refs/heads/feature-branch",
        ),
        (
            "github-events/push-tag-deleted.json",
            "refs/tags/simple-tag",
        ),
    ] {
        let mut event = fixture_json(fixture);
        event["before"] = json!(first);
        let ran = Action::github(repo.path())
            .input("command", "plan")
            .event("push", &event)
            .run();
        ran.assert_ok();
        assert_eq!(ran.outputs["matrix"], "[]");
        assert_eq!(ran.outputs["changed"], "false");
        assert!(
            ran.summary.contains(&format!("`{git_ref}` was deleted")),
            "{}",
            ran.summary
        );
    }
}

#[test]
fn a_pull_request_diffs_from_the_merge_base_to_the_head() {
    let (repo, base_sha) = monorepo();
    repo.git(&["checkout", "-q", "-b", "pr"]);
    repo.write("ops/docker/tool/pr", "x");
    let head = repo.commit("pr work");
    repo.git(&["checkout", "-q", "main"]);
    repo.write("ops/docker/app/main", "y");
    let main_tip = repo.commit("main work");
    let mut event = fixture_json("github-events/pull_request-opened.json");
    event["pull_request"]["base"]["sha"] = json!(main_tip);
    event["pull_request"]["head"]["sha"] = json!(head);
    let _ = base_sha;
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .event("pull_request", &event)
        .env("GITHUB_SHA", "9999999999999999999999999999999999999999")
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["tool"]);
    assert_eq!(
        ran.outputs["sha"], head,
        "the PR head, not the merge commit"
    );
}

#[test]
fn include_exclude_and_rebuild_all_on() {
    let (repo, before) = monorepo();
    repo.write("ops/docker/tool/README.md", "docs\n");
    repo.write("ops/docker/app/main.sh", "code\n");
    let after = repo.commit("docs and code");
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("exclude", "**/*.md\n")
        .event(
            "push",
            &push_event("refs/heads/main", &before, &after, false),
        )
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["app"]);

    repo.write("ci/versions.env", "GO=1.23\n");
    let later = repo.commit("bump toolchain");
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .input("rebuild-all-on", "ci/*.env")
        .event(
            "push",
            &push_event("refs/heads/main", &after, &later, false),
        )
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
    assert!(
        ran.matrix()[0]["reason"]
            .as_str()
            .unwrap()
            .contains("rebuild-all-on `ci/*.env`")
    );
}

#[test]
fn a_workspace_owned_by_another_user_still_works() {
    let (repo, before) = monorepo();
    repo.write("ops/docker/tool/x", "1");
    let after = repo.commit("x");
    let status = std::process::Command::new("chown")
        .args(["-R", "1001:1001"])
        .arg(repo.path())
        .status()
        .expect("chown runs");
    assert!(
        status.success(),
        "chown needs root: the tests run as root, as the action does"
    );
    assert_eq!(
        plan_push(&repo, "refs/heads/main", &before, &after, false).selected(),
        ["tool"]
    );
}

#[test]
fn a_shallow_clone_without_the_api_rebuilds_everything_and_says_why() {
    let (repo, _) = monorepo();
    repo.write("ops/docker/tool/x", "1");
    let after = repo.commit("x");
    let missing = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
    let ran = plan_push(&repo, "refs/heads/main", missing, &after, false);
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
    assert!(
        ran.stdout.contains("not in the local clone"),
        "{}",
        ran.stdout
    );
}

#[test]
fn dispatch_and_all_select_every_image() {
    let (repo, _) = monorepo();
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .event("workflow_dispatch", &json!({"inputs": {}}))
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["base", "tool", "app"]);
    assert_eq!(
        ran.matrix()[0]["reason"],
        "a `workflow_dispatch` event builds every image"
    );
}

#[test]
fn a_merge_group_diffs_base_to_head() {
    let (repo, base) = monorepo();
    repo.write("ops/docker/tool/queued", "1");
    let head = repo.commit("queued change");
    let event = json!({"action": "checks_requested", "merge_group": {
        "head_sha": head, "head_ref": "refs/heads/gh-readonly-queue/main/pr-1",
        "base_sha": base, "base_ref": "refs/heads/main"}});
    let ran = Action::github(repo.path())
        .input("command", "plan")
        .event("merge_group", &event)
        .run();
    ran.assert_ok();
    assert_eq!(ran.selected(), ["tool"]);
    assert_eq!(ran.outputs["sha"], head);
}
