//! Harbor's pull counts, which its registry API doesn't tell: its own API
//! (v2.0, `harbor-api`) answers `GET
//! /api/v2.0/projects/{project}/repositories/{name}` with the repository's
//! `pull_count`. Harbor's first path segment is the project; a name with
//! more segments has its slashes encoded twice (`a/b` → `a%252Fb`), as its
//! API reference asks. The registry's `username`/`password` (a Harbor user
//! or robot account) go as basic auth, to that address only.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::Url;
use serde::Deserialize;

use crate::limits::{self, Cut};
use crate::registry::auth::Credentials;

/// Server messages quoted in errors are cut to this many characters.
const MAX_DETAIL: usize = 300;

pub struct Harbor {
    http: reqwest::Client,
    api: Url,
    credentials: Option<Credentials>,
    timeout: Duration,
}

impl Harbor {
    /// A client for the Harbor at `api` (`https://harbor.example.com`).
    pub fn new(
        api: &str,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let parsed = crate::web_api::base_url(api).map_err(|reason| {
            anyhow::anyhow!(
                "`harbor-api`: {:?} is not a Harbor address ({reason}); give its base URL, e.g. https://harbor.example.com, and the login in `username` and `password`",
                crate::web_api::shown(api)
            )
        })?;
        let http = crate::web_api::client().context("couldn't set up an HTTP client for Harbor")?;
        Ok(Harbor {
            http,
            api: parsed,
            credentials,
            timeout,
        })
    }

    /// How many times `repository` (`project/name`) was pulled since it was
    /// made; a repository Harbor doesn't have was never pulled.
    pub async fn pull_count(&self, repository: &str) -> anyhow::Result<u64> {
        let url = self.url(repository)?;
        let mut request = self.http.get(url).timeout(self.timeout);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let what = format!("the pull count of `{repository}`");
        let response = request
            .send()
            .await
            .with_context(|| format!("couldn't reach Harbor (`harbor-api`) for {what}"))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            404 => return Ok(0),
            401 | 403 => bail!(
                "Harbor refused {what} ({status}){}; `username` and `password` must be a Harbor user or robot account that may read the project",
                detail(response).await
            ),
            _ => bail!(
                "Harbor answered {what} with {status}{}",
                detail(response).await
            ),
        }
        let body = limits::response(response, limits::API_ANSWER)
            .await
            .map_err(|cut| match cut {
                Cut::Over => anyhow::anyhow!(
                    "Harbor's answer to {what} is larger than {} bytes; refusing it",
                    limits::API_ANSWER
                ),
                Cut::Failed(e) => anyhow::anyhow!("Harbor's answer to {what} broke off: {e}"),
            })?;
        pull_count_of(&body).with_context(|| {
            format!("Harbor sent an answer to {what} in a form its API doesn't document")
        })
    }

    /// `{api}/api/v2.0/projects/{project}/repositories/{name}`, the name's
    /// slashes encoded twice.
    fn url(&self, repository: &str) -> anyhow::Result<Url> {
        let Some((project, name)) = repository.split_once('/') else {
            bail!("`{repository}` names no Harbor project; give `images` as `project/name`");
        };
        let mut url = self.api.clone();
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| anyhow::anyhow!("`harbor-api` can't take a path"))?;
        segments.pop_if_empty();
        // `push` encodes `%` as `%25`: `a%2Fb` goes out as `a%252Fb`.
        segments.extend(["api", "v2.0", "projects", project, "repositories"]);
        segments.push(&name.replace('/', "%2F"));
        drop(segments);
        Ok(url)
    }
}

/// The `pull_count` of Harbor's `Repository`.
fn pull_count_of(body: &[u8]) -> anyhow::Result<u64> {
    #[derive(Deserialize)]
    struct Repository {
        pull_count: Option<u64>,
    }
    let repository: Repository = serde_json::from_slice(body)?;
    repository
        .pull_count
        .ok_or_else(|| anyhow::anyhow!("no `pull_count`"))
}

/// `: <message>` of Harbor's error answer (`{"errors":[{"code","message"}]}`),
/// cut short; empty when it has none.
async fn detail(response: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(Deserialize)]
    struct Error {
        message: String,
    }
    let body = limits::error_prefix(response).await;
    match serde_json::from_slice::<Errors>(&body) {
        Ok(errors) => errors
            .errors
            .first()
            .map(|e| {
                format!(
                    ": {}",
                    e.message.chars().take(MAX_DETAIL).collect::<String>()
                )
            })
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn harbor(api: &str) -> anyhow::Result<Harbor> {
        Harbor::new(api, None, Duration::from_secs(1))
    }

    #[test]
    fn a_repository_is_its_project_and_its_name_encoded_twice() {
        let h = harbor("https://harbor.example.com").unwrap();
        assert_eq!(
            h.url("library/app").unwrap().as_str(),
            "https://harbor.example.com/api/v2.0/projects/library/repositories/app"
        );
        assert_eq!(
            h.url("acme/team/app").unwrap().as_str(),
            "https://harbor.example.com/api/v2.0/projects/acme/repositories/team%252Fapp"
        );
        let under = harbor("https://example.com/harbor/").unwrap();
        assert_eq!(
            under.url("p/a").unwrap().as_str(),
            "https://example.com/harbor/api/v2.0/projects/p/repositories/a"
        );
        assert!(
            h.url("app")
                .unwrap_err()
                .to_string()
                .contains("project/name")
        );
    }

    #[test]
    fn only_a_base_url_is_an_address() {
        for bad in [
            "harbor.example.com",
            "ftp://h",
            "https://u:p@h",
            "https://h/?q=1",
        ] {
            let err = harbor(bad).err().unwrap().to_string();
            assert!(err.starts_with("`harbor-api`:"), "{err}");
        }
    }

    #[test]
    fn the_count_is_the_repositorys_pull_count() {
        let documented = crate::limits::read_file(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/harbor/repository.json"
            )),
            1 << 20,
        )
        .unwrap()
        .unwrap();
        assert_eq!(pull_count_of(&documented).unwrap(), 1024);
        assert!(pull_count_of(br#"{"name":"a/b"}"#).is_err());
        assert!(pull_count_of(br#"{"pull_count":-1}"#).is_err());
    }
}
