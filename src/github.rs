//! What every GitHub REST caller here shares: the octocrab client, one
//! request read in full and bounded ([`send`]), and the reading of GitHub's
//! error bodies. Each caller decides what an answer means to it.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::limits::{self, Cut, TooLarge};

/// A client for `api_url` (GitHub, GHES `…/api/v3`, Forgejo `…/api/v1`),
/// pinned to the REST API version the payloads here were read from. With
/// a token, `api_url` must be a [`crate::web_api::base_url`]: https, or
/// plain http to a loopback host only.
pub fn client(
    api_url: &str,
    token: Option<&str>,
    retry: RetryConfig,
    read_timeout: Duration,
) -> anyhow::Result<Octocrab> {
    // The token would travel in the clear over plain http elsewhere.
    if token.is_some() {
        crate::web_api::base_url(api_url).map_err(|reason| {
            anyhow::anyhow!(
                "GITHUB_API_URL {} is not a GitHub API root ({reason}); set GITHUB_API_URL to the API root, e.g. https://api.github.com",
                crate::web_api::shown(api_url)
            )
        })?;
    }
    let mut builder = Octocrab::builder()
        .base_uri(api_url)
        .with_context(|| {
            format!("invalid GitHub API URL {api_url:?}; set GITHUB_API_URL to the API root, e.g. https://api.github.com")
        })?
        .add_retry_config(retry)
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(read_timeout))
        .add_header(
            http::HeaderName::from_static("x-github-api-version"),
            "2022-11-28".into(),
        );
    if let Some(token) = token {
        builder = builder.personal_token(token.to_owned());
    }
    builder
        .build()
        .context("couldn't set up the GitHub API client")
}

/// A GitHub answer, read in full.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `x-ratelimit-remaining: 0`.
    pub rate_limit_spent: bool,
    /// A `Link` header with a `rel="next"` page.
    pub has_next: bool,
    /// That page's URL, as the header gave it.
    pub next_page: Option<String>,
    /// How long the server asked to wait: `retry-after` (seconds), or
    /// until `x-ratelimit-reset` when the limit is spent.
    pub wait: Option<Duration>,
    pub text: String,
}

/// Why a request got no answer to decide on.
#[derive(Debug)]
pub enum Unanswered {
    /// Not sent, or no status came back.
    Unreachable(String),
    /// The answer took longer than the bound.
    Late(String),
    /// The status came, the body couldn't be read (too large, cut, not UTF-8).
    Unreadable(String),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (Unanswered::Unreachable(why) | Unanswered::Late(why) | Unanswered::Unreadable(why)) =
            self;
        f.write_str(why)
    }
}

impl Answer {
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// GitHub's `message`; empty when there is none.
    pub fn message(&self) -> String {
        error_message(&self.text)
    }

    /// A spent rate limit, which GitHub answers with 429 or with 403 and a
    /// message saying so.
    pub fn rate_limited(&self) -> bool {
        self.rate_limit_spent
            || self.status == 429
            || self.message().to_ascii_lowercase().contains("rate limit")
    }

    /// The body as `T`; the error names `what` was asked.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, String> {
        serde_json::from_str(&self.text)
            .map_err(|e| format!("the GitHub API answered {what} with unexpected JSON: {e}"))
    }
}

/// `method route` (with `body` as JSON, if any), its answer read in full
/// within `bound`: the client's own timeouts are per read, and an answer a
/// byte at a time would pass them.
pub async fn send(
    crab: &Octocrab,
    method: http::Method,
    route: &str,
    body: Option<&Value>,
    bound: Duration,
) -> Result<Answer, Unanswered> {
    let what = match method {
        http::Method::GET => route.to_owned(),
        _ => format!("{method} {route}"),
    };
    within(bound, &what, answer(crab, method, route, body, &what))
        .await
        .map_err(Unanswered::Late)?
}

async fn answer(
    crab: &Octocrab,
    method: http::Method,
    route: &str,
    body: Option<&Value>,
    what: &str,
) -> Result<Answer, Unanswered> {
    let response = match method {
        http::Method::POST => crab._post(route, body).await,
        http::Method::PATCH => crab._patch(route, body).await,
        http::Method::DELETE => crab._delete(route, body).await,
        _ => crab._get(route).await,
    }
    .map_err(|e| {
        Unanswered::Unreachable(format!("couldn't reach the GitHub API for {what}: {e}"))
    })?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(str::to_owned)
    };
    let status = response.status().as_u16();
    let rate_limit_spent = header("x-ratelimit-remaining").is_some_and(|v| v == "0");
    let next_page = header(http::header::LINK.as_str()).and_then(|l| next_link(&l));
    let wait = asked_wait(
        header("retry-after").as_deref(),
        rate_limit_spent
            .then(|| header("x-ratelimit-reset"))
            .flatten()
            .as_deref(),
        crate::time::now(),
    );
    let text = body_text(response, what)
        .await
        .map_err(Unanswered::Unreadable)?;
    Ok(Answer {
        status,
        rate_limit_spent,
        has_next: next_page.is_some(),
        next_page,
        wait,
        text,
    })
}

/// The target of a `Link` header's `rel="next"` page.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let next = pieces.any(|param| param.trim().replace(' ', "") == "rel=\"next\"");
        next.then(|| {
            target
                .strip_prefix('<')?
                .strip_suffix('>')
                .map(str::to_owned)
        })
        .flatten()
    })
}

/// `retry-after` in seconds, else the time until `x-ratelimit-reset` (a
/// unix time) when the limit is spent; `None` when neither says.
fn asked_wait(retry_after: Option<&str>, reset: Option<&str>, now: i64) -> Option<Duration> {
    let seconds = |v: &str| v.trim().parse::<u64>().ok();
    retry_after
        .and_then(seconds)
        .or_else(|| {
            let at = reset.and_then(seconds)?;
            Some(at.saturating_sub(now.max(0).unsigned_abs()))
        })
        .map(Duration::from_secs)
}

/// The text of a GitHub answer to `route`, read up to
/// [`limits::GITHUB_ANSWER`]; the error says why it couldn't be.
async fn body_text(
    response: http::Response<BoxBody<Bytes, octocrab::Error>>,
    route: &str,
) -> Result<String, String> {
    let chunks = response.into_body().into_data_stream();
    let bytes = limits::read(chunks, None, limits::GITHUB_ANSWER)
        .await
        .map_err(|cut| match cut {
            Cut::Over => TooLarge {
                url: format!("the GitHub API's {route}"),
                what: "an answer of the GitHub API",
                limit: limits::GITHUB_ANSWER,
            }
            .to_string(),
            Cut::Failed(e) => format!("couldn't read the GitHub API answer for {route}: {e}"),
        })?;
    String::from_utf8(bytes)
        .map_err(|_| format!("the GitHub API answered {route} with text that is not UTF-8"))
}

/// What `work` (requests to the GitHub API about `what`) gives, or, when it
/// takes longer than `bound`, the error saying so. The client's own
/// timeouts are per read: an answer a byte at a time would pass them.
pub async fn within<T>(
    bound: Duration,
    what: &str,
    work: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(bound, work).await.map_err(|_| {
        format!(
            "the GitHub API didn't answer {what} in full within {}",
            crate::units::duration(bound)
        )
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// GitHub's `message` from an error body; empty when there is none.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_default()
}

/// ` ("message")` for an error line, or nothing.
pub fn quoted(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message:?})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(
                r#"<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last""#
            )
            .as_deref(),
            Some("https://api.github.com/x?page=2")
        );
        assert_eq!(
            next_link(
                r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#
            ),
            None
        );
    }

    #[test]
    fn waits_asked_for() {
        let wait = |r, reset| asked_wait(r, reset, 1_000);
        assert_eq!(wait(Some("7"), Some("1060")), Some(Duration::from_secs(7)));
        assert_eq!(wait(None, Some("1060")), Some(Duration::from_secs(60)));
        assert_eq!(wait(None, Some("900")), Some(Duration::ZERO));
        assert_eq!(wait(Some("soon"), None), None);
        assert_eq!(wait(None, None), None);
    }

    fn answer(status: u16, spent: bool, text: &str) -> Answer {
        Answer {
            status,
            rate_limit_spent: spent,
            has_next: false,
            next_page: None,
            wait: None,
            text: text.into(),
        }
    }

    #[test]
    fn a_spent_rate_limit_reads_as_one_whatever_the_status() {
        assert!(answer(403, true, "{}").rate_limited());
        assert!(answer(429, false, "{}").rate_limited());
        let said = r#"{"message":"API rate limit exceeded for installation"}"#;
        assert!(answer(403, false, said).rate_limited());
        assert!(!answer(403, false, r#"{"message":"Resource not accessible"}"#).rate_limited());
        assert!(answer(204, false, "").succeeded() && !answer(404, false, "").succeeded());
    }

    #[test]
    fn error_bodies() {
        let message = error_message(r#"{"message":"Bad credentials","documentation_url":"x"}"#);
        assert_eq!(message, "Bad credentials");
        assert_eq!(quoted(&message), " (\"Bad credentials\")");
        assert_eq!(error_message("<html>502</html>"), "");
        assert_eq!(quoted(""), "");
    }
}
