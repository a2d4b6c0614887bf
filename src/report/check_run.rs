//! The scan verdict as a GitHub check run: one annotation per counted
//! finding, with no per-step cap (workflow-command annotations show ten of
//! each level per step).
//!
//! Requests: the check run is created already **completed** (conclusion,
//! output and the first 50 annotations in one `POST`), then every further
//! batch of 50 is a `PATCH` of the same run carrying `output.title`,
//! `output.summary` and the batch; GitHub appends annotations on each
//! update. Creating it completed means a later failed `PATCH` leaves a run
//! with the right conclusion and summary, only fewer annotations. At most
//! [`MAX_ANNOTATIONS`] are sent ([`MAX_REQUESTS`] requests); the summary
//! says how many were left out. Nothing is retried: a retried `POST` could
//! make a second run, a retried `PATCH` would append its batch twice.
//!
//! Needs `permissions: checks: write`; a fork's pull-request token is
//! read-only and gets 403, which is [`CheckRunResult::Unavailable`], not an
//! error: the workflow-command annotations already carry the findings.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{anyhow, bail};
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::github::{self, Answer, Unanswered};
use crate::limits;
use crate::report::finding_message;
use crate::scan::Finding;
use crate::scan::policy::{Outcome, Policy, Verdict};

/// The fix for an API that failed or took too long.
const RETRY_LATER: &str = "it may be down — re-run the job later, or set `check-run: false`";
/// Annotations GitHub takes per create or update request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// Requests per check run, the create included.
pub const MAX_REQUESTS: usize = 20;
pub const MAX_ANNOTATIONS: usize = ANNOTATIONS_PER_REQUEST * MAX_REQUESTS;
/// `output.summary` and `output.text`. GitHub says characters; bytes are
/// never fewer, so counting bytes stays under either reading.
pub const SUMMARY_LIMIT: usize = 65_535;
pub const TITLE_LIMIT: usize = 255;
/// `message` and `raw_details`: 64 KB.
pub const DETAILS_LIMIT: usize = 64 * 1024;

const MARK: &str = "…";

/// What the check run concludes, from the gate's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Success,
    Neutral,
    Failure,
}

impl Conclusion {
    pub fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Pass => Conclusion::Success,
            Outcome::Warn => Conclusion::Neutral,
            Outcome::Fail => Conclusion::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Neutral => "neutral",
            Conclusion::Failure => "failure",
        }
    }
}

/// The check run's name: one per image, so a matrix gets one run each.
pub fn name(image: &str) -> String {
    format!("scan {image}")
}

/// `output.title`: the result and the counts.
pub fn title(scanner: &str, verdict: &Verdict) -> String {
    let c = &verdict.counts;
    fit(
        &format!(
            "{scanner}: {} — {} critical, {} high, {} medium, {} low, {} unknown",
            verdict.result, c.critical, c.high, c.medium, c.low, c.unknown
        ),
        TITLE_LIMIT,
    )
}

/// One annotation per counted finding on `path` (repository-relative) at
/// `line`, levelled by the same thresholds as the workflow-command
/// annotations: `fail-on` → failure, `warn-on` → warning, else notice.
pub fn check_annotations(verdict: &Verdict, policy: &Policy, path: &str, line: u32) -> Vec<Value> {
    let line = line.max(1);
    verdict
        .findings
        .iter()
        .map(|f| {
            json!({
                "path": path,
                "start_line": line,
                "end_line": line,
                "annotation_level": level(f, policy),
                "title": fit(
                    &format!("{} {} in {} {}", f.severity.lowercase(), f.id, f.package, f.installed),
                    TITLE_LIMIT,
                ),
                "message": fit(&finding_message(f), DETAILS_LIMIT),
                "raw_details": fit(&raw_details(f), DETAILS_LIMIT),
            })
        })
        .collect()
}

/// Request-sized batches, in order; none for no annotations.
pub fn batches(annotations: &[Value]) -> Vec<Vec<Value>> {
    annotations
        .chunks(ANNOTATIONS_PER_REQUEST)
        .map(<[Value]>::to_vec)
        .collect()
}

/// `output.summary`: the markdown, cut to the limit, with a note of the
/// annotations left out (the note is never the part cut).
pub fn output_summary(markdown: &str, omitted: usize) -> String {
    let note = if omitted == 0 {
        String::new()
    } else {
        format!(
            "\n\n{omitted} more finding{} not annotated here (at most {MAX_ANNOTATIONS} per check run); the SARIF file (`sarif`) lists them all.",
            if omitted == 1 { " is" } else { "s are" }
        )
    };
    let mut out = fit(markdown, SUMMARY_LIMIT - note.len());
    out.push_str(&note);
    out
}

/// `text` cut to at most `limit` bytes, at a character boundary, ending in
/// "…" when cut.
pub fn fit(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

fn level(f: &Finding, policy: &Policy) -> &'static str {
    match policy.grade(f.severity) {
        Outcome::Fail => "failure",
        Outcome::Warn => "warning",
        Outcome::Pass => "notice",
    }
}

fn raw_details(f: &Finding) -> String {
    let mut text = format!(
        "package: {}\ninstalled: {}\nfixed: {}\nurl: {}",
        f.package,
        f.installed,
        f.fixed.as_deref().unwrap_or("none yet"),
        f.url.as_deref().unwrap_or("none")
    );
    if !f.target.is_empty() {
        let _ = write!(text, "\ntarget: {}", f.target);
    }
    text
}

/// A check run to publish.
pub struct CheckRun<'a> {
    /// `owner/name`.
    pub repository: &'a str,
    pub head_sha: &'a str,
    pub name: &'a str,
    pub conclusion: Conclusion,
    pub title: &'a str,
    /// Markdown; cut to [`SUMMARY_LIMIT`] here.
    pub summary: &'a str,
    pub annotations: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckRunResult {
    Created {
        id: u64,
        html_url: Option<String>,
        /// Annotations sent, and left out over [`MAX_ANNOTATIONS`].
        annotated: usize,
        omitted: usize,
        requests: usize,
    },
    /// 403 or 404: the token may not write checks (a fork's pull request,
    /// no `checks: write`) or cannot see the repository. The reason says
    /// which request and what GitHub answered.
    Unavailable(String),
}

#[derive(Deserialize)]
struct Created {
    id: u64,
    html_url: Option<String>,
}

enum Failure {
    Unavailable(String),
    Fatal(anyhow::Error),
}

/// Creates the check run completed with the first batch, then `PATCH`es
/// each further batch; see the module docs for the bounds.
pub async fn publish_check_run(
    api_url: &str,
    token: &str,
    run: &CheckRun<'_>,
) -> anyhow::Result<CheckRunResult> {
    let Some((owner, repo)) = run
        .repository
        .split_once('/')
        .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
    else {
        bail!(
            "repository {:?} is not `owner/name`; set GITHUB_REPOSITORY",
            run.repository
        );
    };
    // Not retried: a retried POST could make a second run, a retried
    // PATCH would append its batch twice.
    let crab = github::client(
        api_url,
        Some(token),
        RetryConfig::None,
        Duration::from_secs(30),
    )?;

    let omitted = run.annotations.len().saturating_sub(MAX_ANNOTATIONS);
    let sent = &run.annotations[..run.annotations.len() - omitted];
    let batches = batches(sent);
    let summary = output_summary(run.summary, omitted);
    let output = |annotations: &[Value]| {
        json!({
            "title": run.title,
            "summary": summary,
            "annotations": annotations,
        })
    };

    let route = format!("/repos/{owner}/{repo}/check-runs");
    let create = json!({
        "name": run.name,
        "head_sha": run.head_sha,
        "status": "completed",
        "conclusion": run.conclusion.as_str(),
        "output": output(batches.first().map_or(&[][..], Vec::as_slice)),
    });
    let body = match send(&crab, http::Method::POST, &route, &create).await {
        Ok(body) => body,
        Err(Failure::Unavailable(reason)) => return Ok(CheckRunResult::Unavailable(reason)),
        Err(Failure::Fatal(err)) => return Err(err),
    };
    let created: Created = serde_json::from_str(&body)
        .map_err(|e| anyhow!("the GitHub API answered POST {route} with unexpected JSON: {e}"))?;
    let update = format!("{route}/{}", created.id);
    let mut annotated = batches.first().map_or(0, Vec::len);
    for batch in batches.iter().skip(1) {
        let patch = json!({ "output": output(batch) });
        let partly = |what: String| {
            format!(
                "{what} (check run {} has {annotated} of {} annotations)",
                created.id,
                sent.len()
            )
        };
        match send(&crab, http::Method::PATCH, &update, &patch).await {
            Ok(_) => annotated += batch.len(),
            Err(Failure::Unavailable(reason)) => {
                return Ok(CheckRunResult::Unavailable(partly(reason)));
            }
            Err(Failure::Fatal(err)) => return Err(anyhow!(partly(format!("{err:#}")))),
        }
    }
    Ok(CheckRunResult::Created {
        id: created.id,
        html_url: created.html_url,
        annotated,
        omitted,
        requests: batches.len().max(1),
    })
}

/// One request and its answer, within [`limits::GITHUB_REQUEST`].
async fn send(
    crab: &Octocrab,
    method: http::Method,
    route: &str,
    body: &Value,
) -> Result<String, Failure> {
    let what = format!("{method} {route}");
    let answer = github::send(crab, method, route, Some(body), limits::GITHUB_REQUEST)
        .await
        .map_err(|unanswered| Failure::Fatal(anyhow!(unanswered_fix(unanswered))))?;
    match answer.succeeded() {
        true => Ok(answer.text),
        false => Err(classify(&answer, &what)),
    }
}

fn unanswered_fix(unanswered: Unanswered) -> String {
    match unanswered {
        Unanswered::Unreachable(why) => {
            format!("{why}; check GITHUB_API_URL and the network, or set `check-run: false`")
        }
        Unanswered::Late(why) => format!("{why}; {RETRY_LATER}"),
        Unanswered::Unreadable(why) => why,
    }
}

fn classify(answer: &Answer, what: &str) -> Failure {
    let said = github::quoted(&answer.message());
    let rate_limited = answer.rate_limited();
    let status = answer.status;
    match status {
        403 if !rate_limited => Failure::Unavailable(format!("{what}: 403{said}")),
        404 => Failure::Unavailable(format!("{what}: 404{said}")),
        401 => Failure::Fatal(anyhow!(
            "the GitHub API refused the token for {what}: 401{said}; pass a valid `github-token` (the default `${{{{ github.token }}}}` works with `permissions: checks: write`)"
        )),
        403 | 429 => Failure::Fatal(anyhow!(
            "the GitHub API rate-limited {what}: {status}{said}; re-run when the limit resets, or set `check-run: false`"
        )),
        422 => Failure::Fatal(anyhow!(
            "the GitHub API rejected {what}: 422{said}; the head SHA must be a commit pushed to the repository — set `sha` to it"
        )),
        _ => Failure::Fatal(anyhow!(
            "the GitHub API failed on {what}: {status}{said}; {RETRY_LATER}"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scan::Severity;
    use crate::scan::tests::{finding, verdict};

    #[test]
    fn one_annotation_per_finding_levelled_by_the_policy() {
        let v = verdict(
            vec![
                finding("C-1", Severity::Critical),
                finding("H-1", Severity::High),
                finding("M-1", Severity::Medium),
                finding("U-1", Severity::Unknown),
            ],
            Outcome::Fail,
        );
        let a = check_annotations(&v, &Policy::default(), "ops/docker/app/Dockerfile", 3);
        let levels: Vec<&str> = a
            .iter()
            .map(|a| a["annotation_level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["failure", "warning", "notice", "notice"]);
        assert_eq!(
            a[0],
            json!({
                "path": "ops/docker/app/Dockerfile",
                "start_line": 3,
                "end_line": 3,
                "annotation_level": "failure",
                "title": "critical C-1 in busybox 1.0",
                "message": "C-1 in busybox 1.0 (fixed in 1.1): bad\nhttps://avd.example/C-1",
                "raw_details": "package: busybox\ninstalled: 1.0\nfixed: 1.1\nurl: https://avd.example/C-1\ntarget: img (alpine 3.19)",
            })
        );

        let lenient = Policy {
            fail_on: None,
            warn_on: Some(Severity::Medium),
            ignore_unfixed: false,
        };
        let a = check_annotations(&v, &lenient, "Dockerfile", 0);
        let levels: Vec<&str> = a
            .iter()
            .map(|a| a["annotation_level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["warning", "warning", "warning", "notice"]);
        assert_eq!(a[0]["start_line"], 1, "lines start at 1");
    }

    #[test]
    fn unfixed_findings_say_so() {
        let mut f = finding("C-1", Severity::Critical);
        f.fixed = None;
        f.url = None;
        f.title = "C-1".into();
        let a = check_annotations(
            &verdict(vec![f], Outcome::Fail),
            &Policy::default(),
            "Dockerfile",
            1,
        );
        assert_eq!(a[0]["message"], "C-1 in busybox 1.0 (no fix yet)");
        assert!(
            a[0]["raw_details"]
                .as_str()
                .unwrap()
                .contains("fixed: none yet\nurl: none"),
            "{}",
            a[0]["raw_details"]
        );
    }

    #[test]
    fn fields_are_cut_to_the_api_limits() {
        let mut f = finding(&"X".repeat(300), Severity::High);
        f.title = "é".repeat(40_000);
        let a = check_annotations(
            &verdict(vec![f], Outcome::Warn),
            &Policy::default(),
            "Dockerfile",
            1,
        );
        let title = a[0]["title"].as_str().unwrap();
        let message = a[0]["message"].as_str().unwrap();
        assert!(
            title.len() <= TITLE_LIMIT && title.ends_with('…'),
            "{title}"
        );
        assert!(message.len() <= DETAILS_LIMIT && message.ends_with('…'));

        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("ééééé", 7), "éé…", "cut at a character boundary");
    }

    #[test]
    fn batches_of_fifty() {
        let all: Vec<Value> = (0..120).map(|i| json!(i)).collect();
        let sizes: Vec<usize> = batches(&all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [50, 50, 20]);
        assert_eq!(batches(&all[..50]).len(), 1);
        assert!(batches(&[]).is_empty());
        let flat: Vec<Value> = batches(&all).concat();
        assert_eq!(flat, all, "order kept");
    }

    #[test]
    fn the_summary_fits_and_keeps_its_note() {
        assert_eq!(output_summary("# ok", 0), "# ok");
        let long = "x".repeat(100_000);
        let s = output_summary(&long, 3);
        assert!(s.len() <= SUMMARY_LIMIT, "{}", s.len());
        assert!(s.ends_with("3 more findings are not annotated here (at most 1000 per check run); the SARIF file (`sarif`) lists them all."));
        assert!(output_summary(&long, 0).len() <= SUMMARY_LIMIT);
    }

    #[test]
    fn conclusions_names_and_titles() {
        assert_eq!(Conclusion::from_outcome(Outcome::Pass).as_str(), "success");
        assert_eq!(Conclusion::from_outcome(Outcome::Warn).as_str(), "neutral");
        assert_eq!(Conclusion::from_outcome(Outcome::Fail).as_str(), "failure");
        assert_eq!(name("acme/app"), "scan acme/app");
        let v = verdict(vec![finding("C-1", Severity::Critical)], Outcome::Fail);
        assert_eq!(
            title("Trivy", &v),
            "Trivy: fail — 1 critical, 0 high, 0 medium, 0 low, 0 unknown"
        );
    }

    fn classified(status: u16, body: &str, spent: bool, what: &str) -> Failure {
        let answer = Answer {
            status,
            rate_limit_spent: spent,
            has_next: false,
            next_page: None,
            wait: None,
            text: body.into(),
        };
        classify(&answer, what)
    }

    #[test]
    fn statuses() {
        let forbidden =
            r#"{"message":"Resource not accessible by integration","documentation_url":"x"}"#;
        let Failure::Unavailable(reason) = classified(403, forbidden, false, "POST /r") else {
            panic!("a fork's 403 is unavailable, not fatal")
        };
        assert_eq!(
            reason,
            "POST /r: 403 (\"Resource not accessible by integration\")"
        );
        assert!(matches!(
            classified(404, "", false, "x"),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            classified(403, forbidden, true, "x"),
            Failure::Fatal(e) if e.to_string().contains("rate-limited")
        ));
        assert!(matches!(
            classified(
                403,
                r#"{"message":"You have exceeded a secondary rate limit"}"#,
                false,
                "x"
            ),
            Failure::Fatal(_)
        ));
        assert!(matches!(
            classified(401, "", false, "x"),
            Failure::Fatal(e) if e.to_string().contains("github-token")
        ));
        assert!(matches!(
            classified(422, r#"{"message":"No commit found for SHA: abc"}"#, false, "x"),
            Failure::Fatal(e) if e.to_string().contains("`sha`")
        ));
        assert!(matches!(
            classified(502, "<html>", false, "x"),
            Failure::Fatal(e) if e.to_string().contains("502")
        ));
    }
}
