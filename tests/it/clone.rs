//! A clone is enough: nothing tracked points outside the repository for its
//! data or tools, and tests/fixtures holds exactly what the tests and benches
//! read, each file documented in its folder's README.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every tracked file, as `git ls-files` lists it.
pub(crate) fn tracked() -> Vec<String> {
    let out = Command::new("git")
        .args(["-c", "safe.directory=*", "ls-files", "-z"])
        .current_dir(root())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git ls-files in {}: {}",
        root().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("file names are UTF-8")
        .split('\0')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_tracked_file_names_the_folder_beside_the_checkout() {
    // Spelt in two pieces, so that this file does not name it either.
    let beside = format!("{}/{}", "..", "shared");
    let files = tracked();
    assert!(files.len() > 100, "git ls-files listed {}", files.len());
    let naming: Vec<&String> = files
        .iter()
        .filter(|name| {
            let bytes = std::fs::read(root().join(name)).unwrap_or_default();
            contains(&bytes, beside.as_bytes())
        })
        .collect();
    assert!(
        naming.is_empty(),
        "these tracked files name {beside}, which a clone from GitHub does not have: {naming:?}"
    );
}

/// `tests/fixtures/<folder>/<file>` of every fixture (READMEs aside).
fn fixture_files() -> Vec<PathBuf> {
    let dir = root().join("tests/fixtures");
    let mut files = Vec::new();
    for folder in std::fs::read_dir(&dir).expect("tests/fixtures is there") {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            if file.file_name().is_some_and(|n| n != "README.md") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

/// The files a README's tables name: their first cell, in backticks.
fn listed(readme: &str) -> BTreeSet<String> {
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[test]
fn every_fixture_is_documented_and_every_documented_one_is_there() {
    let files = fixture_files();
    assert!(files.len() > 30, "{files:?}");
    let folders: BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    for folder in folders {
        let readme = std::fs::read_to_string(folder.join("README.md"))
            .unwrap_or_else(|e| panic!("{}/README.md: {e}", folder.display()));
        let documented = listed(&readme);
        let present: BTreeSet<String> = files
            .iter()
            .filter(|f| f.parent() == Some(folder))
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            present,
            documented,
            "{}: the files and the README's list of them differ",
            folder.display()
        );
    }
}

#[test]
fn every_fixture_is_read_by_a_test_or_bench() {
    let code: Vec<Vec<u8>> = tracked()
        .iter()
        .filter(|name| name.ends_with(".rs"))
        .map(|name| std::fs::read(root().join(name)).unwrap())
        .collect();
    let unused: Vec<PathBuf> = fixture_files()
        .into_iter()
        .filter(|file| {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            !code.iter().any(|text| contains(text, name.as_bytes()))
        })
        .collect();
    assert!(
        unused.is_empty(),
        "no test or bench names these fixtures; remove them and their README rows: {unused:?}"
    );
}

/// What `.ci/fresh-clone` prints of the clone it made: the commit, the
/// folder's neighbours, the environment.
#[test]
fn the_fresh_clone_is_this_commit_alone_with_only_path_and_home() {
    let head = String::from_utf8(
        Command::new("git")
            .args(["-c", "safe.directory=*", "rev-parse", "HEAD"])
            .current_dir(root())
            .output()
            .expect("git runs")
            .stdout,
    )
    .unwrap();
    let probe = "git rev-parse HEAD; pwd; ls -A ..; env; echo ==; git status --porcelain --untracked-files=all";
    let out = Command::new(root().join(".ci/fresh-clone"))
        .args([probe, "exit 3", "echo not reached"])
        .env("REGISTRY_ACTION_LEAK", "must not reach the clone")
        .output()
        .expect(".ci/fresh-clone runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(!stdout.contains("not reached"), "{stdout}");

    let (report, status) = stdout.split_once("==\n").expect("the probe ran whole");
    assert_eq!(status, "", "the clone is the commit, unmodified");
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some(head.trim()), "{stdout}");
    let clone = PathBuf::from(lines.next().unwrap());
    assert_eq!(
        lines.next(),
        clone.file_name().and_then(|n| n.to_str()),
        "the clone's folder holds nothing else\n{stdout}"
    );
    let names: BTreeSet<&str> = lines
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    let shell_own = ["PWD", "OLDPWD", "SHLVL", "_"];
    assert!(
        names.contains("PATH") && names.contains("HOME"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .all(|name| ["PATH", "HOME"].contains(name) || shell_own.contains(name)),
        "only PATH and HOME (and what bash sets itself) reach the commands: {names:?}"
    );
    assert!(!clone.exists(), "{} is removed afterwards", clone.display());
}

/// CI runs exactly the README's two commands, in the fresh clone.
#[test]
fn ci_runs_the_readmes_commands_in_a_fresh_clone() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_, try_it) = readme
        .split_once("## Try it")
        .expect("README has `## Try it`");
    let (_, block) = try_it.split_once("```sh\n").expect("with a sh block");
    let (block, _) = block.split_once("```").unwrap();
    let commands: Vec<&str> = block
        .lines()
        .filter_map(|line| line.split('#').next())
        .map(str::trim)
        .filter(|command| !command.is_empty())
        .collect();
    assert_eq!(commands, ["scripts/demo", "scripts/test"], "{block}");

    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let fresh: Vec<&str> = ci
        .lines()
        .filter(|line| line.starts_with(".ci/fresh-clone "))
        .collect();
    assert_eq!(
        fresh,
        [format!(".ci/fresh-clone {}", commands.join(" "))],
        ".ci/run runs the README's commands, and only in the fresh clone"
    );
    assert!(
        !ci.lines().any(|line| commands.contains(&line.trim())),
        ".ci/run runs them nowhere else"
    );
}
