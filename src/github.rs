//! What every GitHub REST caller here shares: the octocrab client and the
//! reading of GitHub's error bodies.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use serde::Deserialize;

use crate::limits::{self, Cut, TooLarge};

/// A client for `api_url` (GitHub, GHES `…/api/v3`, Forgejo `…/api/v1`),
/// pinned to the REST API version the payloads here were read from.
pub fn client(
    api_url: &str,
    token: Option<&str>,
    retry: RetryConfig,
    read_timeout: Duration,
) -> anyhow::Result<Octocrab> {
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

/// The text of a GitHub answer to `route`, read up to
/// [`limits::GITHUB_ANSWER`]; the error says why it couldn't be.
pub async fn body_text(
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
    fn error_bodies() {
        let message = error_message(r#"{"message":"Bad credentials","documentation_url":"x"}"#);
        assert_eq!(message, "Bad credentials");
        assert_eq!(quoted(&message), " (\"Bad credentials\")");
        assert_eq!(error_message("<html>502</html>"), "");
        assert_eq!(quoted(""), "");
    }
}
