//! A local HTTP server replaying the real GitHub REST payloads from
//! `tests/fixtures/github-api`, reshaped to the test's files and commits.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::fixture_json;

pub const REPO: &str = "acme/monorepo";

pub struct Replay {
    pub server: MockServer,
}

impl Replay {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        // Anything the test did not plan for fails loudly instead of reading
        // as a 404, which the plan may take for "commit not found".
        Mock::given(wiremock::matchers::any())
            .respond_with(
                ResponseTemplate::new(501)
                    .set_body_json(json!({"message": "no replay for this request"})),
            )
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        Replay { server }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// `GET /repos/{repo}/compare/{base}...{head}` listing `files` and `commits`.
    pub async fn compare(&self, base: &str, head: &str, files: &[String], commits: &[&str]) {
        let mut body = fixture_json("github-api/compare-commits.go-scm.json");
        body["files"] = file_entries(&body["files"][0], files);
        let template = body["commits"][0].clone();
        body["commits"] = Value::Array(
            commits
                .iter()
                .map(|sha| {
                    let mut c = template.clone();
                    c["sha"] = json!(sha);
                    c
                })
                .collect(),
        );
        body["total_commits"] = json!(commits.len());
        self.get(
            &format!("/repos/{REPO}/compare/{base}...{head}"),
            None,
            200,
            body,
            None,
        )
        .await;
    }

    /// `GET /repos/{repo}/commits/{sha}`, paged 300 files a page.
    pub async fn commit(&self, sha: &str, pages: &[Vec<String>]) {
        let template = fixture_json("github-api/compare-commits.go-scm.json")["files"][0].clone();
        for (i, files) in pages.iter().enumerate() {
            let page = (i + 1).to_string();
            let next = (i + 1 < pages.len()).then(|| {
                format!(
                    "<{}/repos/{REPO}/commits/{sha}?page={}>; rel=\"next\"",
                    self.uri(),
                    i + 2
                )
            });
            let body = json!({"sha": sha, "files": file_entries(&template, files)});
            self.get(
                &format!("/repos/{REPO}/commits/{sha}"),
                Some(&page),
                200,
                body,
                next,
            )
            .await;
        }
    }

    /// `GET /repos/{repo}/pulls/{n}/files`, one page per body, with Link headers.
    pub async fn pull_request_files(&self, number: u64, pages: &[Value]) {
        for (i, body) in pages.iter().enumerate() {
            let page = (i + 1).to_string();
            let next = (i + 1 < pages.len()).then(|| {
                format!(
                    "<{}/repos/{REPO}/pulls/{number}/files?page={}>; rel=\"next\"",
                    self.uri(),
                    i + 2
                )
            });
            self.get(
                &format!("/repos/{REPO}/pulls/{number}/files"),
                Some(&page),
                200,
                body.clone(),
                next,
            )
            .await;
        }
    }

    /// `GET /repos/{repo}/actions/runs/{run}/jobs`: the documented job, once
    /// per `(name, status, conclusion)`.
    pub async fn run_jobs(&self, run: u64, jobs: &[(&str, &str, Option<&str>)]) {
        self.run_jobs_after(run, jobs, Duration::ZERO).await;
    }

    /// `run_jobs`, answered only after `delay`: an API that hangs.
    pub async fn run_jobs_after(
        &self,
        run: u64,
        jobs: &[(&str, &str, Option<&str>)],
        delay: Duration,
    ) {
        let mut body =
            fixture_json("github-api/actions-run-jobs.rest-api-description-example.json");
        let template = body["jobs"][0].clone();
        body["jobs"] = jobs
            .iter()
            .map(|(name, status, conclusion)| {
                let mut job = template.clone();
                job["name"] = json!(name);
                job["status"] = json!(status);
                job["conclusion"] = json!(conclusion);
                job
            })
            .collect();
        body["total_count"] = json!(jobs.len());
        Mock::given(method("GET"))
            .and(path(format!("/repos/{REPO}/actions/runs/{run}/jobs")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(body)
                    .set_delay(delay),
            )
            .mount(&self.server)
            .await;
    }

    /// Any status with GitHub's error body on a path.
    pub async fn fail(&self, route: &str, status: u16, message: &str) {
        let body = json!({"message": message, "documentation_url": "https://docs.github.com/rest"});
        self.get(route, None, status, body, None).await;
    }

    async fn get(
        &self,
        route: &str,
        page: Option<&str>,
        status: u16,
        body: Value,
        link: Option<String>,
    ) {
        let mut response = ResponseTemplate::new(status).set_body_json(body);
        if let Some(link) = link {
            response = response.insert_header("link", link.as_str());
        }
        let mock = Mock::given(method("GET")).and(path(route));
        let mock = match page {
            Some(page) => mock.and(query_param("page", page)),
            None => mock,
        };
        mock.respond_with(response).mount(&self.server).await;
    }

    /// The paths (with query) of every request received, in order.
    pub async fn requests(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| match r.url.query() {
                Some(q) => format!("{}?{q}", r.url.path()),
                None => r.url.path().to_owned(),
            })
            .collect()
    }

    /// The Authorization headers the server saw.
    pub async fn authorizations(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// The fixture's file entry, once per path.
pub fn file_entries(template: &Value, files: &[String]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|f| {
                let mut entry = template.clone();
                entry["filename"] = json!(f);
                entry
            })
            .collect(),
    )
}
