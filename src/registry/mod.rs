//! The OCI distribution API over reqwest: auth (basic, bearer token with
//! scopes), manifests, blobs and tags.

pub mod auth;
pub mod contents;
mod delete;
pub mod mount;
pub mod referrers;
pub mod retry;
pub mod stream;

pub use delete::Deleted;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde::Deserialize;
use sha2::Sha256;

use auth::{Challenge, Credentials, Login, parse_challenge};
use retry::Deadline;

use crate::limits::{self, Cut, TooLarge};
use crate::names;
use crate::oci::{Digest, MANIFEST_TYPES};

/// Pages of a tag listing followed at most: a bounded loop.
const MAX_TAG_PAGES: usize = 200;
/// Tags of one repository read at most: far beyond any repository, and a
/// bound on what a listing may cost (as on Docker Hub, see `hub`).
const MAX_TAGS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{registry} refused the credentials for `{repository}` (401); check `{username}` and `{password}` (a token with {rights} rights for that repository)",
        username = .login.username,
        password = .login.password,
        rights = .login.rights
    )]
    Unauthorized {
        registry: String,
        repository: String,
        login: &'static Login,
    },
    #[error(
        "{registry} denied access to `{repository}` ({status}){message}; the account given as `{username}` needs {rights} rights on that repository",
        username = .login.username,
        rights = .login.rights
    )]
    Denied {
        registry: String,
        repository: String,
        status: u16,
        message: String,
        login: &'static Login,
    },
    /// `path` is named without its query: upload sessions carry state
    /// (signed, on some registries) there.
    #[error("{registry} answered {method} {path} with {status}{message}{hint}")]
    Status {
        registry: String,
        method: Method,
        path: String,
        status: u16,
        message: String,
        hint: &'static str,
        /// The seconds the registry asked to wait (`Retry-After`), if it
        /// did; seconds in a `u16` keep the error small.
        retry_after: Option<u16>,
    },
    /// Built by [`Registry::transport`], which keeps queries out of it.
    #[error(
        "couldn't reach {registry} ({url}): {source}; check that the address is right and the registry is up"
    )]
    Transport {
        registry: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{registry} sent {what} whose digest is {actual}, not {expected}; refusing it")]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{registry} does not allow deletes (405 on `{repository}`); enable them in the registry's configuration (`storage: delete: enabled: true`, or REGISTRY_STORAGE_DELETE_ENABLED=true for docker-registry/distribution), or run with `dry-run`"
    )]
    DeleteDisabled {
        registry: String,
        repository: String,
    },
    /// A blob upload that failed for good; the cause is the source.
    #[error(
        "{registry} didn't take blob {digest} for `{repository}` (upload sessions tried: {tries})"
    )]
    Upload {
        registry: String,
        repository: String,
        digest: String,
        tries: u32,
        #[source]
        source: Box<RegistryError>,
    },
    /// A blob whose bytes don't match its descriptor's size.
    #[error(
        "{registry} sent {sent} for {what}, not the {declared} bytes its descriptor declares; refusing it"
    )]
    SizeMismatch {
        registry: String,
        what: String,
        declared: u64,
        /// `more than N bytes`, or the count when it ended short.
        sent: String,
    },
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// A wait that outlasted its bound; never retried: a registry that
    /// didn't answer in time is not given that time again.
    #[error(
        "{registry} {} {} for {url} ({}); check that the registry is up, or raise `request-timeout` if it is only slow",
        wait.what(),
        crate::units::duration(*after),
        wait.bound()
    )]
    TimedOut {
        registry: String,
        url: String,
        wait: Wait,
        after: Duration,
    },
    /// A name that isn't one never reaches a URL: a tag such as
    /// `../../x/manifests/latest` would name another repository.
    #[error("refusing to ask {registry} for the {what} {name:?}: {rule}")]
    InvalidName {
        registry: String,
        what: &'static str,
        name: String,
        rule: &'static str,
    },
    /// A referrers API answer longer than a lookup reads: cut short, it
    /// would lose referrers (see [`referrers::listed`]).
    #[error(
        "{registry} lists {listed} referrers of `{repository}@{subject}`, more than the {limit} read for one manifest; refusing to go on without the rest (a copy would leave signatures behind, a cleanup referrers); delete the referrers no longer needed"
    )]
    TooManyReferrers {
        registry: String,
        repository: String,
        subject: String,
        listed: usize,
        limit: usize,
    },
    #[error("{0}")]
    Protocol(String),
}

/// Which bound a request outlasted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A request, connecting to the last byte of its answer, retries included.
    Answer,
    /// A blob transfer in which no byte moved.
    Stall,
    /// A blob transfer as a whole (see [`stream`]).
    Transfer,
}

impl Wait {
    fn what(self) -> &'static str {
        match self {
            Wait::Answer => "didn't answer in full within",
            Wait::Stall => "moved no byte for",
            Wait::Transfer => "didn't finish a blob transfer within",
        }
    }

    fn bound(self) -> &'static str {
        match self {
            Wait::Answer | Wait::Stall => "`request-timeout`",
            Wait::Transfer => "`request-timeout` plus a second per 32 KiB of the blob",
        }
    }
}

impl RegistryError {
    /// How long to wait before starting over what failed with this error
    /// at `attempt`, or `None` when it is an answer, not an accident: a
    /// dropped connection, or a registry that is overloaded or fell over.
    pub fn retry_pause(&self, attempt: u32) -> Option<Duration> {
        match self {
            RegistryError::Transport { .. } => Some(retry::after(attempt, None)),
            RegistryError::Status {
                status,
                retry_after,
                ..
            } if retry::retryable(*status) => Some(retry::after(
                attempt,
                retry_after.map(|s| Duration::from_secs(s.into())),
            )),
            _ => None,
        }
    }
}

/// A manifest exactly as the registry holds it: the bytes are what the
/// digest names, so they are never re-serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    Unknown,
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// How long one request may take, unless [`Registry::with_timeout`] says:
/// `request-timeout`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Every request sets its own bound (see [`Registry::send`]); the client
/// bounds only the connect, which no request may spend all its time on.
/// The client's own bound is on connecting only: each request is bounded
/// by [`Registry::send`].
fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(10))
}

fn client(timeout: Duration) -> Result<reqwest::Client, RegistryError> {
    reqwest::Client::builder()
        .user_agent(concat!("registry-action/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout(timeout))
        .build()
        .map_err(|e| RegistryError::Protocol(format!("couldn't set up an HTTP client: {e}")))
}

pub struct Registry {
    http: reqwest::Client,
    /// `request-timeout`: a request's bound, retries included, and a
    /// blob's longest stall (see `stream`).
    timeout: Duration,
    /// As users name it (`docker.io`, `127.0.0.1:5000`).
    name: String,
    /// Where the API lives (`https://registry-1.docker.io`).
    base: String,
    credentials: Option<Credentials>,
    /// The inputs the credentials came from, for errors to name.
    login: &'static Login,
    /// The actions a bearer token is asked for (`pull,push`, more for cleanup).
    token_actions: &'static str,
    auth: Mutex<Auth>,
    tokens: Mutex<HashMap<String, String>>,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    Digest::of(bytes).into()
}

/// `sha256:<hex>` of what `hasher` was fed.
pub fn digest_of(hasher: Sha256) -> String {
    Digest::of_hasher(hasher).into()
}

/// What a manifest's bytes must hash to: the digest it was asked for, and
/// the one the registry says it sent. Either alone is not enough: a
/// registry asked for `@sha256:A` that answers with B, saying B, would pass
/// an older image off as the one pinned.
fn manifest_digests_owed<'a>(
    reference: &'a str,
    told: Option<&'a str>,
) -> impl Iterator<Item = &'a str> {
    names::is_digest(reference)
        .then_some(reference)
        .into_iter()
        .chain(told)
}

/// Docker Hub's registry API host.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The API endpoint for a registry name: Docker Hub's name differs from its
/// API host, and loopback registries speak plain HTTP (as the engine allows).
pub fn endpoint(registry: &str) -> String {
    let host = if crate::reference::is_docker_hub(registry) {
        DOCKER_HUB_API
    } else {
        registry
    };
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = hostname == "localhost"
        || hostname == "[::1]"
        || hostname
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        format!("http://{host}")
    } else {
        format!("https://{host}")
    }
}

impl Registry {
    pub fn new(registry: &str, credentials: Option<Credentials>) -> Result<Self, RegistryError> {
        Ok(Registry {
            http: client(DEFAULT_TIMEOUT)?,
            timeout: DEFAULT_TIMEOUT,
            name: registry.to_owned(),
            base: endpoint(registry),
            credentials,
            login: &Login::TARGET,
            token_actions: "pull,push",
            auth: Mutex::new(Auth::Unknown),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names `login`'s inputs in errors about the credentials, instead of
    /// `username` and `password`.
    pub fn with_login(mut self, login: &'static Login) -> Self {
        self.login = login;
        self
    }

    /// Every request within `timeout`, its body and retries included, and
    /// no blob transfer idle for longer (instead of [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, RegistryError> {
        // A client loads the system's certificates: made again only when
        // it would differ.
        if connect_timeout(timeout) != connect_timeout(self.timeout) {
            self.http = client(timeout)?;
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The bound [`Registry::with_timeout`] set, for another registry the
    /// same run talks to.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Proves the credentials work for `repository` before anything is built.
    pub async fn check_access(&self, repository: &str) -> Result<(), RegistryError> {
        // A tags listing needs pull; a 404 (no repository yet) still means
        // the credentials were accepted.
        let path = self.path(repository, Route::Tags)? + "?n=1";
        let response = self.send(Method::GET, &path, repository, |r| r).await?;
        match response.status().as_u16() {
            200 | 404 => Ok(()),
            _ => Err(self.failure(Method::GET, &path, repository, response).await),
        }
    }

    /// The manifest a tag or digest names, or `None` when there is none.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let path = self.path(repository, Route::Manifest(reference))?;
        let response = self
            .send(Method::GET, &path, repository, |r| {
                r.header(header::ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(self.failure(Method::GET, &path, repository, response).await),
        }
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let told = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = self
            .body(&path, response, limits::MANIFEST, "a manifest")
            .await?;
        let digest = sha256_digest(&bytes);
        if let Some(expected) =
            manifest_digests_owed(reference, told.as_deref()).find(|e| *e != digest)
        {
            return Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                what: format!("the manifest of {repository}:{reference}"),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// The index the referrers API answers for `digest`, or `None` when the
    /// registry has no such API (a 404: distribution 2.8, GHCR; or a 405,
    /// how others say they don't serve it), where the referrers live
    /// under the fallback tag instead.
    pub async fn referrers(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = self.path(repository, Route::Referrers(digest))?;
        let response = self
            .send(Method::GET, &path, repository, |r| {
                r.header(header::ACCEPT, crate::oci::INDEX_MEDIA_TYPE)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => Ok(None),
            s if s.is_success() => self
                .body(&path, response, limits::MANIFEST, "a referrers index")
                .await
                .map(Some),
            _ => Err(self.failure(Method::GET, &path, repository, response).await),
        }
    }

    /// Puts `manifest` under `tag`. Registry-side tagging: the blobs are
    /// already there, so nothing but the manifest travels.
    pub async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &Manifest,
    ) -> Result<(), RegistryError> {
        self.put_manifest_at(repository, tag, manifest)
            .await
            .map(drop)
    }

    /// Puts a manifest that has a `subject` (a signature bundle, an
    /// attestation) by its digest; returns whether the registry took the
    /// subject in hand (its `OCI-Subject` answer: it has the referrers
    /// API). Otherwise the fallback tag's index must list it.
    pub async fn put_referrer(
        &self,
        repository: &str,
        manifest: &Manifest,
    ) -> Result<bool, RegistryError> {
        let headers = self
            .put_manifest_at(repository, &manifest.digest, manifest)
            .await?;
        Ok(headers.contains_key("oci-subject"))
    }

    async fn put_manifest_at(
        &self,
        repository: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<header::HeaderMap, RegistryError> {
        let path = self.path(repository, Route::Manifest(reference))?;
        let response = self
            .send(Method::PUT, &path, repository, |r| {
                r.header(header::CONTENT_TYPE, &manifest.media_type)
                    .body(manifest.bytes.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.failure(Method::PUT, &path, repository, response).await);
        }
        let headers = response.headers().clone();
        let told = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        match told {
            Some(told) if told != manifest.digest => Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                what: format!("the manifest stored as {repository}:{reference}"),
                expected: manifest.digest.clone(),
                actual: told.to_owned(),
            }),
            _ => Ok(headers),
        }
    }

    /// A small blob's bytes (a config, a signature), verified against its
    /// descriptor's `size` and `digest` as they arrive; one larger than
    /// [`limits::IN_MEMORY_BLOB`] is refused unread.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let path = self.path(repository, Route::Blob(digest))?;
        if size > limits::IN_MEMORY_BLOB {
            return Err(TooLarge {
                url: self.shown(&path),
                what: "a blob read into memory (a config, a signature, an attestation)",
                limit: limits::IN_MEMORY_BLOB,
            }
            .into());
        }
        let mut chunks = self.blob_stream(repository, digest, size).await?;
        // `verified` stops at `size`: this never holds more.
        let mut bytes = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        while let Some(chunk) = chunks.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        Ok(bytes)
    }

    /// Whether the repository already holds a blob (then it is not sent).
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let path = self.path(repository, Route::Blob(digest))?;
        let response = self.send(Method::HEAD, &path, repository, |r| r).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .failure(Method::HEAD, &path, repository, response)
                .await),
        }
    }

    /// Uploads a blob held in memory; see [`Registry::upload_blob_file`]
    /// for one on disk and for the retries both get.
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        let size = bytes.len() as u64;
        self.upload(repository, digest, size, || {
            let chunk: Result<Bytes, RegistryError> = Ok(bytes.clone());
            std::future::ready(Ok(futures_util::stream::iter([chunk]).boxed()))
        })
        .await
    }

    /// Every tag of a repository, following `Link` pages. A listed name
    /// that is not a tag is left out, with a warning: it is never requested.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let mut tags = Vec::new();
        let listing = self.path(repository, Route::Tags)?;
        let mut path = format!("{listing}?n=1000");
        let mut listed_names = names::ListedNames::new(format!("{}/{repository}", self.name));
        for _ in 0..MAX_TAG_PAGES {
            let response = self.send(Method::GET, &path, repository, |r| r).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(tags);
            }
            if !response.status().is_success() {
                return Err(self.failure(Method::GET, &path, repository, response).await);
            }
            let next = response
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let bytes = self
                .body(&path, response, limits::TAG_PAGE, "a page of a tag list")
                .await?;
            let page: TagList = serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::Protocol(format!(
                    "{} sent a tag list that is not JSON: {e}",
                    self.name
                ))
            })?;
            let listed = page.tags.unwrap_or_default().into_iter();
            tags.extend(listed.filter(|tag| listed_names.is_tag(tag)));
            if tags.len() + listed_names.skipped() > MAX_TAGS {
                return Err(RegistryError::Protocol(format!(
                    "{} listed more than {MAX_TAGS} tags (or names that aren't tags) for {repository}; stopping",
                    self.name
                )));
            }
            match next {
                Some(next) if without_query(&next) == listing => path = next,
                Some(next) => {
                    return Err(RegistryError::Protocol(format!(
                        "{} sent the next page of the tags of {repository} to {:?}, another path; refusing to follow it",
                        self.name,
                        without_query(&next)
                    )));
                }
                None => return Ok(tags),
            }
        }
        Err(RegistryError::Protocol(format!(
            "{} kept paging the tags of {repository} past {MAX_TAG_PAGES} pages; stopping",
            self.name
        )))
    }

    /// [`api_path`], or the error naming what it refused.
    fn path(&self, repository: &str, route: Route<'_>) -> Result<String, RegistryError> {
        api_path(repository, route).map_err(|refused| self.refused(refused))
    }

    fn refused(&self, refused: Refused) -> RegistryError {
        RegistryError::InvalidName {
            registry: self.name.clone(),
            what: refused.what,
            name: refused.name,
            rule: refused.rule,
        }
    }

    /// The body of `response` to `path`, at most `limit` bytes of `what`;
    /// [`Registry::send`]'s deadline bounds the time it takes.
    async fn body(
        &self,
        path: &str,
        response: Response,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, RegistryError> {
        limits::response(response, limit)
            .await
            .map_err(|cut| match cut {
                Cut::Over => TooLarge {
                    url: self.shown(path),
                    what,
                    limit,
                }
                .into(),
                Cut::Failed(e) => self.transport(path, Wait::Answer, self.timeout)(e),
            })
    }

    /// `path` on this registry as errors name it: without its query (see
    /// [`without_query`]).
    fn shown(&self, path: &str) -> String {
        format!("{}{}", self.base, without_query(path))
    }

    /// A request that never got its answer, or not within `after` (the
    /// `wait` it was given). Neither `path`'s query nor reqwest's copy of
    /// the URL is kept: either can carry signed state.
    fn transport(
        &self,
        path: &str,
        wait: Wait,
        after: Duration,
    ) -> impl Fn(reqwest::Error) -> RegistryError + Send + 'static {
        let registry = self.name.clone();
        let url = self.shown(path);
        move |source| {
            if source.is_timeout() {
                RegistryError::TimedOut {
                    registry: registry.clone(),
                    url: url.clone(),
                    wait,
                    after,
                }
            } else {
                RegistryError::Transport {
                    registry: registry.clone(),
                    url: url.clone(),
                    source: source.without_url(),
                }
            }
        }
    }

    fn timed_out(&self, path: &str, wait: Wait, after: Duration) -> RegistryError {
        RegistryError::TimedOut {
            registry: self.name.clone(),
            url: self.shown(path),
            wait,
            after,
        }
    }

    /// Sends with auth and bounded retries. A 401 asks the challenge for a
    /// token (or switches to basic) once, then tries again. All of it, and
    /// the answer's body, within `request-timeout`: a retry whose pause
    /// wouldn't leave time is not made. `build` may give the body longer
    /// (a blob's); the answer's head still comes within the deadline.
    async fn send(
        &self,
        method: Method,
        path: &str,
        repository: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let deadline = Deadline::after(self.timeout);
        let url = format!("{}{path}", self.base);
        let mut authenticated_again = false;
        let mut attempt = 0;
        loop {
            let late = || self.timed_out(path, Wait::Answer, deadline.bound);
            let left = deadline.left().ok_or_else(late)?;
            let request = self.authorize(
                build(self.http.request(method.clone(), &url).timeout(left)),
                repository,
            );
            let response = tokio::time::timeout(left, request.send())
                .await
                .map_err(|_| late())?
                .map_err(self.transport(path, Wait::Answer, deadline.bound))?;
            let status = response.status().as_u16();
            if status == 401 && !authenticated_again {
                authenticated_again = true;
                if self.authenticate(&response, repository, &deadline).await? {
                    continue;
                }
            }
            let pause = retry::pause(attempt, response.headers());
            if retry::retryable(status) && attempt + 1 < retry::ATTEMPTS && deadline.allows(pause) {
                tracing::warn!(
                    "{} answered {status} to {method} {}; retrying in {pause:?}",
                    self.name,
                    without_query(path)
                );
                tokio::time::sleep(pause).await;
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    fn authorize(&self, request: RequestBuilder, repository: &str) -> RequestBuilder {
        let auth = self.auth.lock().map(|a| a.clone()).unwrap_or(Auth::Unknown);
        match (auth, &self.credentials) {
            (Auth::Basic, Some(c)) => request.basic_auth(&c.username, Some(&c.password)),
            (Auth::Bearer { .. }, _) => match self
                .tokens
                .lock()
                .ok()
                .and_then(|t| t.get(repository).cloned())
            {
                Some(token) => request.bearer_auth(token),
                None => request,
            },
            _ => request,
        }
    }

    /// Learns how to authenticate from a 401. `false` when there is nothing
    /// more to try (no credentials for basic, an unknown scheme).
    async fn authenticate(
        &self,
        response: &Response,
        repository: &str,
        deadline: &Deadline,
    ) -> Result<bool, RegistryError> {
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let auth = match challenge {
            Some(Challenge::Basic) if self.credentials.is_some() => Auth::Basic,
            Some(Challenge::Bearer { realm, service }) => {
                let token = self
                    .fetch_token(&realm, service.as_deref(), repository, deadline)
                    .await?;
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(repository.to_owned(), token);
                }
                Auth::Bearer { realm, service }
            }
            _ => Auth::Anonymous,
        };
        let usable = auth != Auth::Anonymous;
        if let Ok(mut current) = self.auth.lock() {
            *current = auth;
        }
        Ok(usable)
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        repository: &str,
        deadline: &Deadline,
    ) -> Result<String, RegistryError> {
        let actions = if self.credentials.is_some() {
            self.token_actions
        } else {
            "pull"
        };
        // `target source` (a mount) asks for pull on the source as well.
        let mut scopes = repository.split(' ');
        let mut query: Vec<(&str, String)> = scopes
            .next()
            .map(|target| ("scope", format!("repository:{target}:{actions}")))
            .into_iter()
            .chain(scopes.map(|source| ("scope", format!("repository:{source}:pull"))))
            .collect();
        if let Some(service) = service {
            query.push(("service", service.to_owned()));
        }
        // The realm URL is named without its query: the query can carry
        // account details, never worth printing.
        let shown = without_query(realm).to_owned();
        let late = || RegistryError::TimedOut {
            registry: self.name.clone(),
            url: shown.clone(),
            wait: Wait::Answer,
            after: deadline.bound,
        };
        let failed = |source: reqwest::Error| match source.is_timeout() {
            true => late(),
            false => RegistryError::Transport {
                registry: self.name.clone(),
                url: shown.clone(),
                source: source.without_url(),
            },
        };
        let left = deadline.left().ok_or_else(late)?;
        let mut request = self.http.get(realm).query(&query).timeout(left);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let response = request.send().await.map_err(failed)?;
        match response.status().as_u16() {
            200..=299 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    registry: self.name.clone(),
                    repository: repository.to_owned(),
                    login: self.login,
                });
            }
            status => {
                return Err(RegistryError::Protocol(format!(
                    "the token service of {} answered {status}; try again later",
                    self.name
                )));
            }
        }
        let body = limits::response(response, limits::TOKEN)
            .await
            .map_err(|cut| match cut {
                Cut::Over => TooLarge {
                    url: shown.clone(),
                    what: "a token service's answer",
                    limit: limits::TOKEN,
                }
                .into(),
                Cut::Failed(e) => failed(e),
            })?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Protocol(format!(
                "the token service of {} sent no token: {e}",
                self.name
            ))
        })?;
        answer.token.or(answer.access_token).ok_or_else(|| {
            RegistryError::Protocol(format!("the token service of {} sent no token", self.name))
        })
    }

    async fn failure(
        &self,
        method: Method,
        path: &str,
        repository: &str,
        response: Response,
    ) -> RegistryError {
        let status = response.status().as_u16();
        let retry_after = retry::asked(response.headers())
            .map(|wait| u16::try_from(wait.as_secs()).unwrap_or(u16::MAX));
        // Only quoted: its start, and no longer than a request may take.
        let body = tokio::time::timeout(self.timeout, limits::error_prefix(response))
            .await
            .unwrap_or_default();
        let message = serde_json::from_slice::<ErrorEnvelope>(&body)
            .ok()
            .and_then(|e| e.errors.into_iter().next())
            .map(|e| {
                format!(
                    ": {} {}",
                    e.code.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        match status {
            401 => RegistryError::Unauthorized {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                login: self.login,
            },
            403 => RegistryError::Denied {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                status,
                message,
                login: self.login,
            },
            _ => RegistryError::Status {
                registry: self.name.clone(),
                method,
                path: without_query(path).to_owned(),
                status,
                message,
                hint: match status {
                    405 => {
                        "; the registry does not allow this operation (for deletes: storage.delete.enabled)"
                    }
                    429 => "; rate-limited even after retries — try again later",
                    500..=599 => "; the registry failed even after retries — try again later",
                    _ => "",
                },
                retry_after,
            },
        }
    }
}

/// What an API path of a repository leads to.
#[derive(Debug, Clone, Copy)]
enum Route<'a> {
    Tags,
    /// A manifest by tag or digest.
    Manifest(&'a str),
    Blob(&'a str),
    Uploads,
    /// OCI 1.1's referrers of a manifest digest.
    Referrers(&'a str),
}

/// A part of a path that isn't what it should be, refused.
#[derive(Debug, PartialEq, Eq)]
struct Refused {
    what: &'static str,
    name: String,
    rule: &'static str,
}

/// The API path of `route` in `repository`, built from validated parts
/// only: anything else is refused before a request is made.
fn api_path(repository: &str, route: Route<'_>) -> Result<String, Refused> {
    let refuse = |what, name: &str, rule| {
        Err(Refused {
            what,
            name: name.to_owned(),
            rule,
        })
    };
    if !names::is_repository(repository) {
        return refuse("repository", repository, names::REPOSITORY_RULE);
    }
    match route {
        Route::Tags => Ok(format!("/v2/{repository}/tags/list")),
        Route::Uploads => Ok(format!("/v2/{repository}/blobs/uploads/")),
        Route::Manifest(r) if names::is_tag_or_digest(r) => {
            Ok(format!("/v2/{repository}/manifests/{r}"))
        }
        Route::Manifest(r) => refuse("tag or digest", r, names::TAG_OR_DIGEST_RULE),
        Route::Blob(d) if names::is_digest(d) => Ok(format!("/v2/{repository}/blobs/{d}")),
        Route::Blob(d) => refuse("blob digest", d, names::DIGEST_RULE),
        Route::Referrers(d) if names::is_digest(d) => Ok(format!("/v2/{repository}/referrers/{d}")),
        Route::Referrers(d) => refuse("manifest digest", d, names::DIGEST_RULE),
    }
}

/// The path of the `rel="next"` page of a `Link` header (RFC 5988).
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| same_host_path(target)).flatten()
    })
}

/// `path` as logs and errors may name it: an upload session keeps its
/// state, signed on some registries, in its path and query, so only the
/// upload endpoint is shown.
fn without_query(path: &str) -> &str {
    const UPLOADS: &str = "/blobs/uploads/";
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    match path.find(UPLOADS) {
        Some(at) => &path[..at + UPLOADS.len()],
        None => path,
    }
}

/// The path and query of a URL the registry sent: requests (and the
/// credentials they carry) never follow it to another host.
fn same_host_path(target: &str) -> Option<String> {
    let path = match target.find("://") {
        Some(i) => &target[target[i + 3..].find('/').map(|j| i + 3 + j)?..],
        None => target,
    };
    path.starts_with('/').then(|| path.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("docker.io"), "https://registry-1.docker.io");
        assert_eq!(endpoint("ghcr.io"), "https://ghcr.io");
        assert_eq!(endpoint("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(endpoint("127.8.0.3:80"), "http://127.8.0.3:80");
        assert_eq!(endpoint("localhost:5000"), "http://localhost:5000");
        assert_eq!(
            endpoint("registry.example:5000"),
            "https://registry.example:5000"
        );
    }

    #[test]
    fn next_links_from_the_real_headers() {
        let bytes =
            crate::fixtures::fixture_bytes("oci/tags-list-pagination-headers.next-link.json");
        let headers: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let link = headers["link"].as_str().unwrap_or_default();
        let next = next_link(link);
        assert!(
            next.as_deref()
                .is_some_and(|p| p.starts_with("/v2/") && p.contains("last=")),
            "{link} → {next:?}"
        );
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="prev""#),
            None
        );
    }

    #[test]
    fn dropped_connections_and_overload_are_worth_starting_over() {
        let status = |status, retry_after| RegistryError::Status {
            registry: "r".into(),
            method: Method::PUT,
            path: "/v2/a/blobs/uploads/".into(),
            status,
            message: String::new(),
            hint: "",
            retry_after,
        };
        assert_eq!(
            status(503, Some(3)).retry_pause(0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            status(429, None).retry_pause(1),
            Some(Duration::from_secs(1))
        );
        assert_eq!(status(400, None).retry_pause(0), None);
        assert_eq!(RegistryError::Protocol("x".into()).retry_pause(0), None);
    }

    #[test]
    fn errors_name_paths_without_their_query_or_upload_session() {
        assert_eq!(
            without_query("/v2/a/blobs/uploads/u1?_state=s1&digest=sha256:x"),
            "/v2/a/blobs/uploads/"
        );
        assert_eq!(
            without_query("/v2/a/blobs/uploads/?from=b&mount=sha256:x"),
            "/v2/a/blobs/uploads/"
        );
        assert_eq!(without_query("/v2/a/tags/list"), "/v2/a/tags/list");
    }

    #[test]
    fn api_paths_are_built_from_names_only() {
        let digest = sha256_digest(b"");
        let cases = [
            (Route::Tags, "/v2/acme/app/tags/list".to_owned()),
            (Route::Uploads, "/v2/acme/app/blobs/uploads/".to_owned()),
            (
                Route::Manifest("v1.0"),
                "/v2/acme/app/manifests/v1.0".to_owned(),
            ),
            (
                Route::Manifest(&digest),
                format!("/v2/acme/app/manifests/{digest}"),
            ),
            (Route::Blob(&digest), format!("/v2/acme/app/blobs/{digest}")),
        ];
        for (route, path) in cases {
            assert_eq!(api_path("acme/app", route), Ok(path));
        }
        let refused = |repository, route| api_path(repository, route).unwrap_err();
        let upper = digest.to_uppercase();
        for repository in [
            "acme/../victim",
            "Acme/app",
            "acme/app?n=1",
            "acme/app/",
            "",
        ] {
            let error = refused(repository, Route::Tags);
            assert_eq!(
                (error.what, error.name.as_str()),
                ("repository", repository)
            );
        }
        for reference in [
            "../../../acme/victim/manifests/latest",
            "latest?x",
            "latest#x",
            "%2e%2e",
            "",
            &upper,
        ] {
            let error = refused("acme/app", Route::Manifest(reference));
            assert_eq!(error.name, reference);
            assert_eq!(error.rule, names::TAG_OR_DIGEST_RULE);
        }
        for blob in [
            "latest",
            "sha256:../../x",
            &digest.replace("sha256", "sha512"),
        ] {
            let error = refused("acme/app", Route::Blob(blob));
            assert_eq!((error.what, error.name.as_str()), ("blob digest", blob));
        }
    }

    /// Port 9 of loopback is closed: a request would fail as a transport
    /// error, so an `InvalidName` shows none was made.
    #[tokio::test]
    async fn an_invalid_name_is_refused_before_any_request() {
        let registry = Registry::new("127.0.0.1:9", None).unwrap();
        let tag = "../../../acme/victim/manifests/latest";
        let manifest = Manifest {
            bytes: b"{}".to_vec(),
            media_type: "application/json".into(),
            digest: sha256_digest(b"{}"),
        };
        let error = registry
            .put_manifest("acme/dummy", tag, &manifest)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "refusing to ask 127.0.0.1:9 for the tag or digest \"{tag}\": {}",
                names::TAG_OR_DIGEST_RULE
            )
        );
        let errors = [
            registry.manifest("acme/dummy", tag).await.unwrap_err(),
            registry.tags("acme/../victim").await.unwrap_err(),
            registry
                .delete_manifest("acme/dummy", tag)
                .await
                .unwrap_err(),
            registry.has_blob("acme/dummy", "x").await.unwrap_err(),
            registry
                .start_upload("acme/dummy", &manifest.digest, Some("../victim"))
                .await
                .unwrap_err(),
        ];
        for error in errors {
            assert!(
                matches!(error, RegistryError::InvalidName { .. }),
                "{error:?}"
            );
        }
    }

    #[test]
    fn digests() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
