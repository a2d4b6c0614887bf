//! Docker Hub's own API (hub.docker.com). Its registry API
//! (registry-1.docker.io) refuses deletes and has no push dates, so `cleanup`
//! on Docker Hub lists tags and deletes them here.
//!
//! Routes, from Docker's reference (docs.docker.com/reference/api/hub/latest)
//! and from Docker's own `hub-tool` where the reference is silent:
//! - login: `POST /v2/auth/token` `{identifier, secret}` → `access_token`;
//!   servers without it get the deprecated `POST /v2/users/login`
//!   `{username, password}` → `token`.
//! - tags: `GET /v2/namespaces/{ns}/repositories/{repo}/tags`, paged by an
//!   absolute `next` URL.
//! - repository: `GET /v2/namespaces/{ns}/repositories/{repo}` →
//!   `pull_count`, the repository's pulls since it was made.
//! - delete: `DELETE /v2/repositories/{ns}/{repo}/tags/{tag}/`, the route
//!   `hub-tool` uses; the reference documents no delete.
//!
//! The password is sent once, in the login body, and never kept; the token
//! never leaves this module, travels only to the API's own origin, and is
//! cut out of every error.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, Url};
use serde::Deserialize;

use crate::limits::{self, Cut, TooLarge};
use crate::names;
use crate::oci::is_index_media_type;
use crate::registry::retry::{self, Deadline};
use crate::retention::TagInfo;

pub const DEFAULT_API: &str = "https://hub.docker.com";

/// The largest page the API serves.
const PAGE_SIZE: &str = "100";
/// 100,000 tags: far beyond any repository, and still a bound.
const MAX_PAGES: usize = 1_000;
/// Server messages quoted in errors are cut to this many characters.
const MAX_DETAIL: usize = 300;

/// The token fix, shared by every credential error.
const TOKEN_FIX: &str = "use a personal access token with the Read, Write & Delete scope \
    (Docker Hub → Account settings → Personal access tokens) as the password, \
    or an organization access token with the organization's name as the username";

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A user error: the API base URL given.
    #[error(
        "`hub-api`: `{api}` is not a Docker Hub API address ({reason}); give a base URL such as {DEFAULT_API}"
    )]
    BadApi { api: String, reason: String },
    /// The machine's TLS set-up, not the user's input.
    #[error("couldn't set up an HTTP client for Docker Hub: {0}")]
    Setup(String),
    /// A user error: wrong username, password or token.
    #[error("Docker Hub rejected the credentials of `{username}` ({status}){detail}; {TOKEN_FIX}")]
    Rejected {
        username: String,
        status: u16,
        detail: String,
    },
    /// The token expired or was never given.
    #[error("Docker Hub refused {what} (401){hint}")]
    Unauthorized { what: String, hint: &'static str },
    /// The account or token lacks rights on the repository.
    #[error(
        "Docker Hub denied {what} (403){detail}; the account needs write access to the repository and the token the Read, Write & Delete scope"
    )]
    Forbidden { what: String, detail: String },
    /// Hub answers 404 for a private repository the login can't see, too.
    #[error(
        "Docker Hub has no repository `{repository}`, or the login can't see it; check the namespace and image name, and log in for a private repository"
    )]
    NoRepository { repository: String },
    #[error(
        "Docker Hub kept rate-limiting {what} (429) for {attempts} attempts; its API allows a limited number of requests per minute, so run again later"
    )]
    RateLimited { what: String, attempts: u32 },
    #[error("Docker Hub answered {what} with {status}{detail}{hint}")]
    Status {
        what: String,
        status: u16,
        detail: String,
        hint: &'static str,
    },
    #[error(
        "couldn't reach Docker Hub for {what}: {source}; check the network and the API address"
    )]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// Docker Hub changed its API, or something else answered.
    #[error("Docker Hub sent {what} in a form its API doesn't document: {detail}")]
    Protocol { what: String, detail: String },
    /// The login goes nowhere but the API's own origin.
    #[error(
        "Docker Hub's tag listing of `{repository}` sent its next page to {next}, away from {api}; refusing to follow it with the login"
    )]
    ForeignPage {
        repository: String,
        next: String,
        api: String,
    },
    #[error("Docker Hub kept paging the tags of `{repository}` past {pages} pages; stopping")]
    TooManyPages { repository: String, pages: usize },
    #[error(
        "Docker Hub lists {count} platform images for `{repository}:{tag}`, more than the {limit} a manifest may list; refusing it"
    )]
    TooManyImages {
        repository: String,
        tag: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "Docker Hub's tags of `{repository}` list more than {limit} platform images in all; refusing to read further"
    )]
    TooManyChildren { repository: String, limit: usize },
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    #[error(
        "Docker Hub didn't answer {what} in full within {} (`request-timeout`); try again later, or raise `request-timeout` if it is only slow",
        crate::units::duration(*after)
    )]
    TimedOut { what: String, after: Duration },
}

/// What a delete did; a rerun after a partial cleanup sees `AlreadyGone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Now,
    AlreadyGone,
}

/// One tag as Docker Hub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubTag {
    pub name: String,
    /// The manifest (or index) digest; old tags have none.
    pub digest: Option<String>,
    /// Unix seconds of `tag_last_pushed`; `None` when absent or unreadable.
    pub last_pushed: Option<i64>,
    /// Compressed bytes; 0 for multi-arch tags.
    pub full_size: u64,
    /// For a multi-arch index: its per-platform manifests' digests.
    pub children: Vec<String>,
}

impl HubTag {
    /// The tag as retention judges it.
    ///
    /// A tag without a digest can't be matched against the other tags on
    /// its manifest, so retention must never delete it: it goes in without
    /// a push time (kept as `Kept::UnknownAge`) and under a placeholder
    /// digest of its own, so it shares no manifest with any other tag. Its
    /// children still count, so a kept index keeps them.
    pub fn to_tag_info(&self) -> TagInfo {
        match &self.digest {
            Some(digest) => TagInfo {
                tag: self.name.clone(),
                digest: digest.clone(),
                pushed: self.last_pushed,
                children: self.children.clone(),
            },
            None => TagInfo {
                tag: self.name.clone(),
                digest: format!("unknown-digest:{}", self.name),
                pushed: None,
                children: self.children.clone(),
            },
        }
    }
}

#[derive(Deserialize)]
struct Page {
    next: Option<String>,
    #[serde(default)]
    results: Vec<RawTag>,
}

#[derive(Deserialize)]
struct RawTag {
    name: String,
    digest: Option<String>,
    media_type: Option<String>,
    tag_last_pushed: Option<String>,
    full_size: Option<u64>,
    images: Option<Vec<RawImage>>,
}

#[derive(Deserialize)]
struct RepositoryInfo {
    pull_count: Option<u64>,
}

#[derive(Deserialize)]
struct RawImage {
    digest: Option<String>,
}

/// Both login routes: `/v2/auth/token` answers `access_token`,
/// `/v2/users/login` answers `token`.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    token: Option<String>,
}

/// Error bodies carry `detail` or `message` (the reference's `Error` schema).
#[derive(Deserialize)]
struct ErrorBody {
    detail: Option<String>,
    message: Option<String>,
}

/// A digest that isn't one counts as absent: the tag is then never deleted
/// (see [`HubTag::to_tag_info`]), and no such text is passed on.
impl From<RawTag> for HubTag {
    fn from(raw: RawTag) -> Self {
        let digest = raw.digest.filter(|d| names::is_digest(d));
        let mut children: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let images = raw.images.into_iter().flatten().filter_map(|i| i.digest);
        for child in images.filter(|d| names::is_digest(d)) {
            if digest.as_ref() != Some(&child) && seen.insert(child.clone()) {
                children.push(child);
            }
        }
        // A single-platform tag lists itself as its one image. Without a
        // top-level digest that can't be compared, so the media type or a
        // second platform has to show that the tag is an index.
        let index = raw.media_type.as_deref().is_some_and(is_index_media_type)
            || children.len() > 1
            || (digest.is_some() && !children.is_empty());
        if !index {
            children.clear();
        }
        HubTag {
            last_pushed: raw
                .tag_last_pushed
                .as_deref()
                .and_then(crate::time::unix_seconds),
            full_size: raw.full_size.unwrap_or(0),
            name: raw.name,
            digest,
            children,
        }
    }
}

pub struct Hub {
    http: reqwest::Client,
    api: Url,
    token: Option<String>,
    /// `request-timeout`: a request's bound, retries and body included.
    timeout: Duration,
}

/// How many tries an answer took, kept on it for the error that quotes it.
#[derive(Debug, Clone, Copy)]
struct Tries(u32);

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("api", &self.api.as_str())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Hub {
    /// A client for the API at `api` (`DEFAULT_API`, or a local server in
    /// tests), not yet logged in.
    pub fn new(api: &str) -> Result<Self, HubError> {
        let parsed = crate::web_api::base_url(api).map_err(|reason| HubError::BadApi {
            api: crate::web_api::shown(api),
            reason,
        })?;
        let http = crate::web_api::client().map_err(|e| HubError::Setup(e.to_string()))?;
        Ok(Hub {
            http,
            api: parsed,
            token: None,
            timeout: crate::registry::DEFAULT_TIMEOUT,
        })
    }

    /// Every request within `timeout`, its body and retries included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Exchanges a username and a password or access token for a bearer
    /// token; `username` is the organization for an organization token.
    pub async fn login(mut self, username: &str, secret: &str) -> Result<Self, HubError> {
        let what = format!("the login of `{username}`");
        let url = self.endpoint(&["v2", "auth", "token"]);
        let body = serde_json::json!({ "identifier": username, "secret": secret });
        let mut response = self
            .send(&what, || self.http.post(url.clone()).json(&body))
            .await?;
        if matches!(response.status().as_u16(), 404 | 405) {
            let url = self.endpoint(&["v2", "users", "login"]);
            let body = serde_json::json!({ "username": username, "password": secret });
            response = self
                .send(&what, || self.http.post(url.clone()).json(&body))
                .await?;
        }
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            401 | 403 => {
                let body = limits::error_prefix(response).await;
                return Err(HubError::Rejected {
                    username: username.to_owned(),
                    status,
                    detail: detail(&body, &[secret]),
                });
            }
            _ => return Err(self.failure(&what, response, &[secret]).await),
        }
        let answer: TokenAnswer = self.json(&what, response, &[secret]).await?;
        let token = answer
            .access_token
            .or(answer.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| HubError::Protocol {
                what: format!("an answer to {what}"),
                detail: "no `access_token` or `token`".into(),
            })?;
        self.token = Some(token);
        Ok(self)
    }

    /// Every tag of `namespace/repository`, following `next` pages.
    pub async fn tags(&self, namespace: &str, repository: &str) -> Result<Vec<HubTag>, HubError> {
        let name = format!("{namespace}/{repository}");
        let what = format!("the tag listing of `{name}`");
        let mut url = self.endpoint(&[
            "v2",
            "namespaces",
            namespace,
            "repositories",
            repository,
            "tags",
        ]);
        url.query_pairs_mut().append_pair("page_size", PAGE_SIZE);
        let mut listed_names = names::ListedNames::new(format!("Docker Hub's {name}"));
        let mut tags = Vec::new();
        let mut children = 0;
        for _ in 0..MAX_PAGES {
            let response = self.get_of_repository(&what, &url, &name).await?;
            let page: Page = self.json(&what, response, &[]).await?;
            for raw in page.results {
                if !listed_names.is_tag(&raw.name) {
                    continue;
                }
                let count = raw.images.as_ref().map_or(0, Vec::len);
                if count > limits::MANIFEST_DESCRIPTORS {
                    return Err(HubError::TooManyImages {
                        repository: name,
                        tag: raw.name,
                        count,
                        limit: limits::MANIFEST_DESCRIPTORS,
                    });
                }
                let tag = HubTag::from(raw);
                children += tag.children.len();
                tags.push(tag);
            }
            // Children are kept for every tag of every page.
            if children > limits::REPOSITORY_DESCRIPTORS {
                return Err(HubError::TooManyChildren {
                    repository: name,
                    limit: limits::REPOSITORY_DESCRIPTORS,
                });
            }
            match page.next.filter(|next| !next.is_empty()) {
                Some(next) => url = self.same_origin(&name, &next)?,
                None => return Ok(tags),
            }
        }
        Err(HubError::TooManyPages {
            repository: name,
            pages: MAX_PAGES,
        })
    }

    /// A successful `GET` of `url`, about repository `name`: a 404 is
    /// `NoRepository`, any other refusal a failure naming `what`.
    async fn get_of_repository(
        &self,
        what: &str,
        url: &Url,
        name: &str,
    ) -> Result<Response, HubError> {
        let response = self
            .send(what, || self.authorized(self.http.get(url.clone())))
            .await?;
        match response.status().as_u16() {
            200..=299 => Ok(response),
            404 => Err(HubError::NoRepository {
                repository: name.to_owned(),
            }),
            _ => Err(self.failure(what, response, &[]).await),
        }
    }

    /// How many times `namespace/repository` was pulled since it was made.
    pub async fn pull_count(&self, namespace: &str, repository: &str) -> Result<u64, HubError> {
        let name = format!("{namespace}/{repository}");
        let what = format!("the pull count of `{name}`");
        let url = self.endpoint(&["v2", "namespaces", namespace, "repositories", repository]);
        let response = self.get_of_repository(&what, &url, &name).await?;
        let info: RepositoryInfo = self.json(&what, response, &[]).await?;
        info.pull_count.ok_or_else(|| HubError::Protocol {
            what: format!("an answer to {what}"),
            detail: "no `pull_count`".into(),
        })
    }

    /// Deletes one tag (not the manifest: Docker Hub keeps untagged images
    /// under its own retention). A tag already gone is not an error, so a
    /// rerun converges; Hub answers the same 404 for a repository the login
    /// can't see, which `tags` has already reported by then.
    pub async fn delete_tag(
        &self,
        namespace: &str,
        repository: &str,
        tag: &str,
    ) -> Result<Deleted, HubError> {
        let what = format!("deleting `{namespace}/{repository}:{tag}`");
        // The trailing slash is part of the route (Django); without it Hub
        // redirects.
        let url = self.endpoint(&["v2", "repositories", namespace, repository, "tags", tag, ""]);
        let response = self
            .send(&what, || self.authorized(self.http.delete(url.clone())))
            .await?;
        match response.status().as_u16() {
            200..=299 => Ok(Deleted::Now),
            404 => Ok(Deleted::AlreadyGone),
            _ => Err(self.failure(&what, response, &[]).await),
        }
    }

    /// `api` with path segments appended, each escaped.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        // `new` refused URLs that can't take a path.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A `next` URL, if it is on the API's own scheme, host and port.
    fn same_origin(&self, repository: &str, next: &str) -> Result<Url, HubError> {
        let foreign = || HubError::ForeignPage {
            repository: repository.to_owned(),
            next: next.to_owned(),
            api: self.api.origin().ascii_serialization(),
        };
        let url = self.api.join(next).map_err(|_| foreign())?;
        if url.origin() == self.api.origin() {
            Ok(url)
        } else {
            Err(foreign())
        }
    }

    /// Sends with bounded retries on 429 and 5xx, waiting as `Retry-After`
    /// or Docker Hub's `X-Retry-After` says. All of it, and the answer's
    /// body, within `request-timeout`: a retry whose pause wouldn't leave
    /// time is not made. The last answer is returned whatever it is;
    /// callers map it.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, HubError> {
        let deadline = Deadline::after(self.timeout);
        let mut attempt = 0;
        loop {
            let left = deadline.left().ok_or_else(|| self.timed_out(what))?;
            let mut response = build()
                .timeout(left)
                .send()
                .await
                .map_err(|source| self.transport(what, source))?;
            let status = response.status().as_u16();
            let pause = retry::pause(attempt, response.headers());
            if !retry::retryable(status)
                || attempt + 1 >= retry::ATTEMPTS
                || !deadline.allows(pause)
            {
                response.extensions_mut().insert(Tries(attempt + 1));
                return Ok(response);
            }
            tracing::warn!("Docker Hub answered {status} to {what}; retrying in {pause:?}");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn transport(&self, what: &str, source: reqwest::Error) -> HubError {
        if source.is_timeout() {
            return self.timed_out(what);
        }
        HubError::Transport {
            what: what.to_owned(),
            source,
        }
    }

    fn timed_out(&self, what: &str) -> HubError {
        HubError::TimedOut {
            what: what.to_owned(),
            after: self.timeout,
        }
    }

    /// An answer's JSON, its body read up to [`limits::API_ANSWER`].
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        response: Response,
        secrets: &[&str],
    ) -> Result<T, HubError> {
        let mut url = response.url().clone();
        url.set_query(None);
        let body = limits::response(response, limits::API_ANSWER)
            .await
            .map_err(|cut| match cut {
                Cut::Over => TooLarge {
                    url: url.to_string(),
                    what: "an answer of Docker Hub's API",
                    limit: limits::API_ANSWER,
                }
                .into(),
                Cut::Failed(source) => self.transport(what, source),
            })?;
        serde_json::from_slice(&body).map_err(|e| HubError::Protocol {
            what: format!("an answer to {what}"),
            detail: self.redact(&e.to_string(), secrets),
        })
    }

    /// The error for an answer that isn't success, after retries.
    async fn failure(&self, what: &str, response: Response, secrets: &[&str]) -> HubError {
        let status = response.status().as_u16();
        let tries = response
            .extensions()
            .get::<Tries>()
            .map_or(retry::ATTEMPTS, |t| t.0);
        let body = limits::error_prefix(response).await;
        let mut secrets = secrets.to_vec();
        secrets.extend(self.token.as_deref());
        let detail = detail(&body, &secrets);
        let what = what.to_owned();
        match status {
            401 => HubError::Unauthorized {
                what,
                hint: if self.token.is_some() {
                    "; the login token expired or lacks the scope: log in again, and use a personal access token with the Read, Write & Delete scope"
                } else {
                    "; log in first: set the username and a personal access token with the Read, Write & Delete scope"
                },
            },
            403 => HubError::Forbidden { what, detail },
            429 => HubError::RateLimited {
                what,
                attempts: tries,
            },
            _ => HubError::Status {
                what,
                status,
                detail,
                hint: match status {
                    300..=399 => {
                        "; a redirect, which this client doesn't follow: check the API address"
                    }
                    500..=599 => "; Docker Hub failed on every attempt, so try again later",
                    _ => "",
                },
            },
        }
    }

    fn redact(&self, text: &str, secrets: &[&str]) -> String {
        let mut secrets = secrets.to_vec();
        secrets.extend(self.token.as_deref());
        redact(text, &secrets)
    }
}

/// `: <detail or message>` from an error body, cut short and with every
/// secret replaced; empty when the body has neither.
fn detail(body: &[u8], secrets: &[&str]) -> String {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return String::new();
    };
    match parsed.detail.or(parsed.message) {
        Some(text) if !text.trim().is_empty() => format!(": {}", redact(text.trim(), secrets)),
        _ => String::new(),
    }
}

/// Servers may echo what they were sent; nothing secret gets into an error.
fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    if text.chars().count() > MAX_DETAIL {
        text = text.chars().take(MAX_DETAIL).collect::<String>() + "…";
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw(digest: Option<&str>, media_type: &str, images: &[&str]) -> RawTag {
        RawTag {
            name: "t".into(),
            digest: digest.map(str::to_owned),
            media_type: Some(media_type.into()),
            tag_last_pushed: Some("2023-06-13T04:58:31.821511Z".into()),
            full_size: None,
            images: Some(
                images
                    .iter()
                    .map(|d| RawImage {
                        digest: Some((*d).to_owned()),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn children_only_for_an_index() {
        use crate::oci::{
            DOCKER_CONFIG_MEDIA_TYPE as IMAGE, DOCKER_MANIFEST_LIST_MEDIA_TYPE as LIST,
            INDEX_MEDIA_TYPE as INDEX,
        };
        const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        const I: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
        const UPPER: &str =
            "sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB";
        const LOWER: &str =
            "sha256:abababababababababababababababababababababababababababababababab";
        // (case, raw, children)
        let cases: [(&str, RawTag, &[&str]); 6] = [
            (
                "single platform lists itself",
                raw(Some(A), IMAGE, &[A]),
                &[],
            ),
            ("multi-arch list", raw(Some(I), LIST, &[A, B, A]), &[A, B]),
            (
                "one-platform OCI index (buildx with attestations)",
                raw(Some(I), INDEX, &[A]),
                &[A],
            ),
            ("no digest, index media type", raw(None, LIST, &[A]), &[A]),
            ("no digest, single platform", raw(None, IMAGE, &[A]), &[]),
            (
                "an upper-case digest is no digest: nothing to tell an index by",
                raw(Some(UPPER), IMAGE, &[LOWER]),
                &[],
            ),
        ];
        for (case, raw, children) in cases {
            let tag = HubTag::from(raw);
            assert_eq!(tag.children, children, "{case}");
            assert_eq!(tag.last_pushed, Some(1_686_632_311), "{case}");
            assert_eq!(tag.full_size, 0, "{case}");
        }
        let not_a_digest = HubTag::from(raw(Some("sha256:../../x"), LIST, &[A, "../y"]));
        assert_eq!(not_a_digest.digest, None);
        assert_eq!(not_a_digest.children, [A]);
    }

    #[test]
    fn a_tag_without_a_digest_is_never_deleted() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let now = 1_800_000_000;
        let old = |name: &str, digest: Option<&str>| HubTag {
            name: name.into(),
            digest: digest.map(str::to_owned),
            last_pushed: Some(1_600_000_000),
            full_size: 0,
            children: vec!["sha256:child".into()],
        };
        let listing = [
            old(sha, None).to_tag_info(),
            old(&sha.replace('0', "1"), Some("sha256:b")).to_tag_info(),
        ];
        assert_eq!(listing[0].digest, format!("unknown-digest:{sha}"));
        assert_eq!(listing[0].pushed, None);
        assert_eq!(listing[0].children, ["sha256:child"]);
        assert_eq!(listing[1].digest, "sha256:b");
        assert_eq!(listing[1].pushed, Some(1_600_000_000));
        let rules = crate::retention::Rules {
            keep: 0,
            ..crate::retention::Rules::new(now)
        };
        let plan = crate::retention::plan(&listing, &rules);
        assert_eq!(
            plan.deleted_tags().collect::<Vec<_>>(),
            [sha.replace('0', "1")]
        );
        assert_eq!(
            plan.kept,
            [(sha.to_owned(), crate::retention::Kept::UnknownAge)]
        );
    }

    #[test]
    fn next_pages_stay_on_the_api_origin() {
        let hub = Hub::new("http://127.0.0.1:8080").unwrap();
        let accepted = [
            "http://127.0.0.1:8080/v2/namespaces/a/repositories/b/tags?page=2",
            "/v2/namespaces/a/repositories/b/tags?page=2",
        ];
        for next in accepted {
            assert_eq!(
                hub.same_origin("a/b", next).unwrap().as_str(),
                "http://127.0.0.1:8080/v2/namespaces/a/repositories/b/tags?page=2"
            );
        }
        let refused = [
            "https://127.0.0.1:8080/v2/x",
            "http://127.0.0.1:8081/v2/x",
            "http://localhost:8080/v2/x",
            "https://hub.docker.com/v2/x",
            "//evil.example/v2/x",
        ];
        for next in refused {
            assert!(
                matches!(
                    hub.same_origin("a/b", next),
                    Err(HubError::ForeignPage { .. })
                ),
                "{next}"
            );
        }
    }

    #[test]
    fn endpoints_escape_their_segments() {
        let hub = Hub::new("https://hub.docker.com").unwrap();
        assert_eq!(
            hub.endpoint(&["v2", "repositories", "a", "b", "tags", "x/y?", ""])
                .as_str(),
            "https://hub.docker.com/v2/repositories/a/b/tags/x%2Fy%3F/"
        );
        let prefixed = Hub::new("http://127.0.0.1:9/hub/").unwrap();
        assert_eq!(
            prefixed.endpoint(&["v2", "auth", "token"]).as_str(),
            "http://127.0.0.1:9/hub/v2/auth/token"
        );
    }

    #[test]
    fn bad_api_addresses() {
        for api in [
            "hub.docker.com",
            "ftp://hub.docker.com",
            "mailto:x@y",
            "https://u:p@hub.docker.com",
            "http://hub.docker.com",
        ] {
            let err = Hub::new(api).unwrap_err();
            assert!(matches!(err, HubError::BadApi { .. }), "{api}");
            assert!(err.to_string().starts_with("`hub-api`: "), "{err}");
            assert!(err.to_string().contains(DEFAULT_API), "{err}");
        }
    }

    #[test]
    fn secrets_are_cut_out_of_details() {
        let body = br#"{"detail": "bad secret hunter22 for user"}"#;
        assert_eq!(detail(body, &["hunter22", ""]), ": bad secret *** for user");
        assert_eq!(detail(b"<html>", &[]), "");
        let long = format!(r#"{{"message": "{}"}}"#, "x".repeat(1000));
        assert_eq!(
            detail(long.as_bytes(), &[]).chars().count(),
            2 + MAX_DETAIL + 1
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let mut hub = Hub::new(DEFAULT_API).unwrap();
        hub.token = Some("eyJ-secret-token".into());
        let shown = format!("{hub:?}");
        assert!(!shown.contains("eyJ-secret-token"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
