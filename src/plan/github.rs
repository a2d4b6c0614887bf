//! Changed files from the GitHub REST API, through octocrab.
//!
//! Limits that shape this file: compare lists at most 300 files for a whole
//! comparison (no file pagination), "get a commit" and "list pull request
//! files" page up to 3000. A list that reaches a cap may be cut, and a cut
//! list is never planned on.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use serde::Deserialize;

use crate::github::{self, Unanswered};
use crate::limits;
use crate::plan::source::{ChangeSource, SourceError};
use crate::plan::strategy::{Range, short};

/// The fix for an API that failed or took too long.
const RETRY_LATER: &str =
    "it may be down — re-run the job later, or use `source: git` with a full clone";
const COMPARE_FILE_CAP: usize = 300;
const LIST_FILE_CAP: usize = 3000;
const PER_PAGE: usize = 100;
/// Per-commit fallback stops here: more commits than this and the plan
/// selects every image rather than send hundreds of requests.
const MAX_COMMITS: usize = 100;

pub struct GitHubSource {
    crab: Octocrab,
    repo: String,
    requests: AtomicUsize,
}

#[derive(Deserialize)]
struct Comparison {
    #[serde(default)]
    files: Vec<FileEntry>,
    #[serde(default)]
    commits: Vec<CommitRef>,
    #[serde(default)]
    total_commits: usize,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct CommitRef {
    sha: String,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    files: Vec<FileEntry>,
}

#[derive(Deserialize)]
struct FileEntry {
    filename: String,
    previous_filename: Option<String>,
}

struct Page<T> {
    body: T,
    has_next: bool,
}

/// How a failed response reads to the plan.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// 404/422: the commit or ref isn't there.
    Missing(String),
    Fatal(String),
}

impl GitHubSource {
    pub fn new(api_url: &str, token: Option<&str>, repository: &str) -> anyhow::Result<Self> {
        Ok(GitHubSource {
            crab: github::client(
                api_url,
                token,
                RetryConfig::Simple(2),
                Duration::from_secs(60),
            )?,
            repo: repository.to_owned(),
            requests: AtomicUsize::new(0),
        })
    }

    /// Requests sent so far, retries not counted.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// One request and its answer, within [`limits::GITHUB_REQUEST`].
    async fn get<T: serde::de::DeserializeOwned>(&self, route: &str) -> Result<Page<T>, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = github::send(
            &self.crab,
            http::Method::GET,
            route,
            None,
            limits::GITHUB_REQUEST,
        )
        .await
        .map_err(|unanswered| match unanswered {
            Unanswered::Late(late) => Failure::Fatal(format!("{late}; {RETRY_LATER}")),
            other => Failure::Fatal(other.to_string()),
        })?;
        if !answer.succeeded() {
            return Err(classify(answer.status, &answer.text, route));
        }
        Ok(Page {
            body: answer.json(route).map_err(Failure::Fatal)?,
            has_next: answer.has_next,
        })
    }

    async fn compare(&self, base: &str, head: &str) -> Result<Comparison, Failure> {
        let route = format!(
            "/repos/{}/compare/{}...{}",
            self.repo,
            encode(base),
            encode(head)
        );
        Ok(self.get(&route).await?.body)
    }

    /// Whether `ancestor` is an ancestor of (or the same as) `descendant`,
    /// from the compare status; `None` when GitHub doesn't know a commit.
    pub async fn is_ancestor(
        &self,
        ancestor: &str,
        descendant: &str,
    ) -> anyhow::Result<Option<bool>> {
        match self.compare(ancestor, descendant).await {
            Ok(c) => Ok(Some(matches!(c.status.as_str(), "ahead" | "identical"))),
            Err(Failure::Missing(_)) => Ok(None),
            Err(Failure::Fatal(msg)) => Err(anyhow!(msg)),
        }
    }

    /// A compare that may have been cut at 300 files is completed from the
    /// commits it lists, one "get a commit" request each.
    async fn complete_compare(&self, base: &str, head: &str) -> Result<Vec<String>, SourceError> {
        let comparison = self.compare(base, head).await.map_err(fatal)?;
        if comparison.files.len() < COMPARE_FILE_CAP {
            return Ok(names(comparison.files));
        }
        if comparison.total_commits > comparison.commits.len()
            || comparison.commits.len() > MAX_COMMITS
        {
            return Err(SourceError::Incomplete(format!(
                "the compare API lists at most {COMPARE_FILE_CAP} files and {base}...{head} has {} commits, too many to list one by one",
                comparison.total_commits,
                base = short(base),
                head = short(head),
            )));
        }
        let mut files = BTreeSet::new();
        for commit in &comparison.commits {
            files.extend(self.commit_files(&commit.sha).await?);
        }
        Ok(files.into_iter().collect())
    }

    async fn commit_files(&self, sha: &str) -> Result<Vec<String>, SourceError> {
        // The SHA comes from the compare answer and goes into a route.
        if !crate::names::is_commit_sha(sha) {
            return Err(SourceError::Failed(anyhow!(
                "the GitHub API listed the commit {sha:?} in a comparison, which is not a commit SHA (40 lower-case hex digits); refusing to ask for it"
            )));
        }
        let mut files = Vec::new();
        for page in 1..=LIST_FILE_CAP / COMPARE_FILE_CAP {
            let route = format!(
                "/repos/{}/commits/{}?per_page={COMPARE_FILE_CAP}&page={page}",
                self.repo,
                encode(sha)
            );
            let page: Page<Commit> = self.get(&route).await.map_err(fatal)?;
            files.extend(names(page.body.files));
            if !page.has_next {
                return Ok(files);
            }
        }
        Err(SourceError::Incomplete(format!(
            "commit {} changes more than {LIST_FILE_CAP} files, more than the API lists",
            short(sha)
        )))
    }

    async fn pull_request_files(&self, number: u64) -> Result<Vec<String>, SourceError> {
        let mut files = Vec::new();
        for page in 1..=LIST_FILE_CAP / PER_PAGE {
            let route = format!(
                "/repos/{}/pulls/{number}/files?per_page={PER_PAGE}&page={page}",
                self.repo
            );
            let page: Page<Vec<FileEntry>> = self.get(&route).await.map_err(fatal)?;
            files.extend(names(page.body));
            // The Link header, not the page length, says whether more follow.
            if !page.has_next {
                return Ok(files);
            }
        }
        Err(SourceError::Incomplete(format!(
            "pull request #{number} changes {LIST_FILE_CAP} files or more, more than the API lists"
        )))
    }
}

impl ChangeSource for GitHubSource {
    fn name(&self) -> &'static str {
        "github"
    }

    async fn changed_files(&self, range: &Range) -> Result<Vec<String>, SourceError> {
        let what = format!("the changed files of {range}");
        github::within(limits::GITHUB_LISTING, &what, self.list(range))
            .await
            .map_err(|late| SourceError::Failed(anyhow!("{late}; {RETRY_LATER}")))?
    }
}

impl GitHubSource {
    async fn list(&self, range: &Range) -> Result<Vec<String>, SourceError> {
        match range {
            Range::Diff { base, head } | Range::Since { base, head } => {
                self.complete_compare(base, head).await
            }
            Range::PullRequest { number, .. } => self.pull_request_files(*number).await,
            Range::Forced { old, new } => {
                // new...old lists what the old tip had that the new one
                // dropped; with old...new that covers the whole tree diff.
                let mut files = BTreeSet::new();
                for (base, head) in [(old, new), (new, old)] {
                    let comparison = self.compare(base, head).await.map_err(|f| match f {
                        Failure::Missing(msg) => SourceError::Unavailable(msg),
                        Failure::Fatal(msg) => SourceError::Failed(anyhow!(msg)),
                    })?;
                    if comparison.files.len() >= COMPARE_FILE_CAP {
                        return Err(SourceError::Incomplete(format!(
                            "the forced push {}...{} changes {COMPARE_FILE_CAP} files or more, more than the compare API lists",
                            short(old),
                            short(new)
                        )));
                    }
                    files.extend(names(comparison.files));
                }
                Ok(files.into_iter().collect())
            }
        }
    }
}

fn fatal(failure: Failure) -> SourceError {
    match failure {
        Failure::Missing(msg) | Failure::Fatal(msg) => SourceError::Failed(anyhow!(msg)),
    }
}

fn names(files: Vec<FileEntry>) -> Vec<String> {
    files
        .into_iter()
        .flat_map(|f| std::iter::once(f.filename).chain(f.previous_filename))
        .collect()
}

fn classify(status: u16, body: &str, route: &str) -> Failure {
    let said = github::quoted(&github::error_message(body));
    match status {
        401 => Failure::Fatal(format!(
            "the GitHub API refused the token for {route}: 401{said}; pass a valid `github-token` (the default `${{{{ github.token }}}}` works for this repository)"
        )),
        403 | 429 => Failure::Fatal(format!(
            "the GitHub API refused {route}: {status}{said}; a rate limit or a token without `contents: read` / `pull-requests: read` — wait for the limit to reset or grant the permission"
        )),
        404 | 422 => Failure::Missing(format!(
            "the GitHub API found nothing at {route}: {status}{said}; check that the repository and commits exist and that `github-token` can read them"
        )),
        _ => Failure::Fatal(format!(
            "the GitHub API failed on {route}: {status}{said}; {RETRY_LATER}"
        )),
    }
}

/// Percent-encodes what may not stand in a path segment; `/` stays, as
/// GitHub takes branch names like `feature/x` whole.
fn encode(rev: &str) -> String {
    let mut out = String::with_capacity(rev.len());
    for b in rev.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_failures_with_the_fix() {
        let body = r#"{"message":"Bad credentials","documentation_url":"x"}"#;
        let Failure::Fatal(msg) = classify(401, body, "/repos/o/r/compare/a...b") else {
            panic!("401 must be fatal")
        };
        assert!(
            msg.contains("\"Bad credentials\"") && msg.contains("github-token"),
            "{msg}"
        );
        assert!(matches!(classify(404, "", "/x"), Failure::Missing(_)));
        assert!(matches!(classify(502, "<html>", "/x"), Failure::Fatal(m) if m.contains("502")));
    }

    #[test]
    fn encoding_keeps_branch_slashes() {
        assert_eq!(encode("feature/x y#1"), "feature/x%20y%231");
    }
}
