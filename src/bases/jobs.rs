//! This run's jobs, from the GitHub API ("list jobs for a workflow run",
//! `actions: read`), so that a wait for a base whose job failed stops
//! early instead of running into the timeout.

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use serde::Deserialize;

use crate::github::{self, Answer, quoted};

const PER_PAGE: usize = 100;
/// A matrix holds at most 256 jobs; a few more pages cover the run's
/// other jobs.
const MAX_PAGES: usize = 4;
/// The wait looks at the registry between two listings: a jobs API that
/// hangs must not hold those looks up for long, and it is asked again a
/// minute later anyway, so one short try and no retries.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Job {
    pub name: String,
    /// `queued`, `in_progress`, `completed`, …
    pub status: String,
    /// Set once `completed`: `success`, `failure`, `cancelled`, …
    pub conclusion: Option<String>,
}

#[derive(Deserialize)]
struct Listing {
    total_count: usize,
    jobs: Vec<Job>,
}

/// What a base's job says about waiting longer.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Succeeded,
    /// Ended any other way (`failure`, `cancelled`, `timed_out`, `skipped`):
    /// its image of this commit won't come.
    Ended(String),
}

impl Job {
    pub fn outcome(&self) -> Outcome {
        match (self.status.as_str(), self.conclusion.as_deref()) {
            ("completed", Some("success")) => Outcome::Succeeded,
            ("completed", Some(conclusion)) => Outcome::Ended(conclusion.to_owned()),
            _ => Outcome::Running,
        }
    }
}

/// The job of the matrix entry whose `path` is one of `dirs`: a job whose
/// name holds that path as a word. GitHub names a matrix job by its values
/// in parentheses, comma-separated (`publish (ops/docker/base, base, …)`),
/// and a workflow naming its jobs `publish ${{ matrix.path }}` keeps it.
pub fn job_of<'a>(jobs: &'a [Job], dirs: &[String]) -> Option<&'a Job> {
    jobs.iter().find(|job| {
        job.name
            .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ','))
            .any(|word| dirs.iter().any(|dir| dir == word))
    })
}

/// Where a base of `name` may sit: `<context root>/<name>`, with each
/// directory above this image's `path` tried as the context root (an image
/// may be nested, `max-depth` > 1).
pub fn base_dirs(path: &str, name: &str) -> Vec<String> {
    let path = path.trim_matches('/');
    path.match_indices('/')
        .map(|(at, _)| format!("{}/{name}", &path[..at]))
        .rev()
        .collect()
}

/// Why the jobs couldn't be listed.
#[derive(Debug, PartialEq, Eq)]
pub struct Unlisted {
    pub why: String,
    /// Asking again would get the same answer (refused, not understood);
    /// otherwise (timed out, unreachable, a server error) a later try may
    /// get through.
    pub lasting: bool,
}

impl Unlisted {
    fn lasting(why: String) -> Self {
        Unlisted { why, lasting: true }
    }

    fn passing(why: String) -> Self {
        Unlisted {
            why,
            lasting: false,
        }
    }
}

/// The jobs of one workflow run.
pub struct RunJobs {
    crab: Octocrab,
    route: String,
}

impl RunJobs {
    /// `Err` with the reason when the API can't be asked here.
    pub fn new(
        api_url: &str,
        token: Option<&str>,
        repository: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<Self, String> {
        let (Some(token), Some(repository), Some(run_id)) = (token, repository, run_id) else {
            return Err("no token, repository or run id to ask the jobs API with".into());
        };
        // The client's read timeout must not race `list`'s own bound,
        // which says what timed out.
        let read_timeout = crate::limits::GITHUB_REQUEST;
        let crab = github::client(api_url, Some(token), RetryConfig::None, read_timeout)
            .map_err(|e| e.to_string())?;
        Ok(RunJobs {
            crab,
            route: format!("/repos/{repository}/actions/runs/{run_id}/jobs"),
        })
    }

    /// The jobs of the run's latest attempt, within `TIMEOUT`; `Err` says
    /// why they couldn't be listed.
    pub async fn list(&self) -> Result<Vec<Job>, Unlisted> {
        tokio::time::timeout(TIMEOUT, self.pages())
            .await
            .unwrap_or_else(|_| {
                Err(Unlisted::passing(format!(
                    "the GitHub API timed out: no list of the run's jobs ({}) within {}s",
                    self.route,
                    TIMEOUT.as_secs()
                )))
            })
    }

    async fn pages(&self) -> Result<Vec<Job>, Unlisted> {
        let mut jobs = Vec::new();
        for page in 1..=MAX_PAGES {
            let route = format!(
                "{}?filter=latest&per_page={PER_PAGE}&page={page}",
                self.route
            );
            let listing = self.page(&route).await?;
            let last = listing.jobs.len() < PER_PAGE;
            jobs.extend(listing.jobs);
            if last || jobs.len() >= listing.total_count {
                break;
            }
        }
        Ok(jobs)
    }

    async fn page(&self, route: &str) -> Result<Listing, Unlisted> {
        // `list` bounds all pages together, to the shorter `TIMEOUT`.
        let bound = crate::limits::GITHUB_REQUEST;
        let answer = github::send(&self.crab, http::Method::GET, route, None, bound)
            .await
            .map_err(|unanswered| Unlisted::passing(unanswered.to_string()))?;
        if !answer.succeeded() {
            return Err(refusal(&answer, route));
        }
        answer.json(route).map_err(Unlisted::lasting)
    }
}

/// Why an answer other than 2xx lists no jobs, and whether asking again
/// may help: a server error or a spent rate limit passes; any other
/// refusal lasts.
fn refusal(answer: &Answer, route: &str) -> Unlisted {
    let status = answer.status;
    let message = answer.message();
    let rate_limited = answer.rate_limited();
    let hint = match status {
        _ if rate_limited => "; the rate limit is spent: asking again later",
        401 | 403 => "; give the workflow `permissions: actions: read`",
        _ => "",
    };
    let why = format!(
        "the GitHub API answered {status}{} for {route}{hint}",
        quoted(&message)
    );
    match rate_limited || status >= 500 {
        true => Unlisted::passing(why),
        false => Unlisted::lasting(why),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refusals_last_unless_the_server_failed_or_the_rate_limit_is_spent() {
        let refused = |status, spent, body: &str| {
            let answer = Answer {
                status,
                rate_limit_spent: spent,
                has_next: false,
                next_page: None,
                wait: None,
                text: body.into(),
            };
            refusal(&answer, "/r")
        };
        let lasting = |status, spent, body| refused(status, spent, body).lasting;
        assert!(lasting(
            403,
            false,
            r#"{"message":"Resource not accessible by integration"}"#
        ));
        assert!(lasting(401, false, r#"{"message":"Bad credentials"}"#));
        assert!(lasting(404, false, "{}"));
        assert!(!lasting(403, true, "{}"));
        assert!(!lasting(
            403,
            false,
            r#"{"message":"API rate limit exceeded for installation ID 1."}"#
        ));
        assert!(!lasting(429, false, ""));
        assert!(!lasting(502, false, "bad gateway"));
        let why = refused(
            403,
            false,
            r#"{"message":"Resource not accessible by integration"}"#,
        )
        .why;
        assert!(
            why.ends_with("give the workflow `permissions: actions: read`"),
            "{why}"
        );
        let why = refused(403, true, "{}").why;
        assert!(why.contains("rate limit is spent"), "{why}");
    }

    fn job(name: &str, status: &str, conclusion: Option<&str>) -> Job {
        Job {
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(Into::into),
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(job("j", "in_progress", None).outcome(), Outcome::Running);
        assert_eq!(job("j", "queued", None).outcome(), Outcome::Running);
        assert_eq!(
            job("j", "completed", Some("success")).outcome(),
            Outcome::Succeeded
        );
        assert_eq!(
            job("j", "completed", Some("cancelled")).outcome(),
            Outcome::Ended("cancelled".into())
        );
    }

    #[test]
    fn a_base_job_is_found_by_its_path_not_by_a_word_of_another_job() {
        let jobs = [
            job("plan", "completed", Some("success")),
            job(
                "publish (ops/docker/app, app, app, acme/app, ops/docker/app/Dockerfile, ops/docker/app, base image `base` is rebuilt, 1, false)",
                "in_progress",
                None,
            ),
            job(
                "publish (ops/docker/base, base, base, acme/base, ops/docker/base/Dockerfile, ops/docker/base, changed `ops/docker/base/Dockerfile`, 0, false)",
                "completed",
                Some("failure"),
            ),
            job("publish ops/docker/tool", "queued", None),
        ];
        let dirs = base_dirs("ops/docker/app", "base");
        assert_eq!(job_of(&jobs, &dirs), Some(&jobs[2]));
        assert_eq!(
            job_of(&jobs, &base_dirs("ops/docker/app", "tool")),
            Some(&jobs[3])
        );
        assert_eq!(job_of(&jobs, &base_dirs("ops/docker/app", "docker")), None);
    }

    #[test]
    fn base_directories_try_each_ancestor_as_the_context_root() {
        assert_eq!(
            base_dirs("ops/docker/team/app", "team/base"),
            [
                "ops/docker/team/team/base",
                "ops/docker/team/base",
                "ops/team/base"
            ]
        );
        assert_eq!(base_dirs("images/app/", "base"), ["images/base"]);
        assert_eq!(base_dirs("app", "base"), Vec::<String>::new());
    }
}
