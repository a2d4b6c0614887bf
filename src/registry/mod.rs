//! The OCI distribution API over reqwest: auth (basic, bearer token with
//! scopes), manifests, blobs and tags.

pub mod auth;
pub mod contents;
mod delete;
pub mod mount;
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
use sha2::{Digest as _, Sha256};

use auth::{Challenge, Credentials, parse_challenge};

/// Every manifest form an image can have; a registry picks what it holds.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// Pages of a tag listing followed at most: a bounded loop.
const MAX_TAG_PAGES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{registry} refused the credentials for `{repository}` (401); check `username` and `password` (a token with push rights for that repository)"
    )]
    Unauthorized {
        registry: String,
        repository: String,
    },
    #[error(
        "{registry} denied access to `{repository}` ({status}){message}; the account needs push rights on that repository"
    )]
    Denied {
        registry: String,
        repository: String,
        status: u16,
        message: String,
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
    #[error("{0}")]
    Protocol(String),
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

/// How long one request may take, unless [`Registry::with_timeout`] says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

fn client(timeout: Duration) -> Result<reqwest::Client, RegistryError> {
    reqwest::Client::builder()
        .user_agent(concat!("registry-action/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .build()
        .map_err(|e| RegistryError::Protocol(format!("couldn't set up an HTTP client: {e}")))
}

pub struct Registry {
    http: reqwest::Client,
    /// A request's bound; blobs get more per byte (see `stream`).
    timeout: Duration,
    /// As users name it (`docker.io`, `127.0.0.1:5000`).
    name: String,
    /// Where the API lives (`https://registry-1.docker.io`).
    base: String,
    credentials: Option<Credentials>,
    /// The actions a bearer token is asked for (`pull,push`, more for cleanup).
    token_actions: &'static str,
    auth: Mutex<Auth>,
    tokens: Mutex<HashMap<String, String>>,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    digest_of(Sha256::new_with_prefix(bytes))
}

/// `sha256:<hex>` of what `hasher` was fed.
pub fn digest_of(hasher: Sha256) -> String {
    let mut digest = String::with_capacity(71);
    digest.push_str("sha256:");
    for b in hasher.finalize().iter() {
        digest.push_str(&format!("{b:02x}"));
    }
    digest
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
            token_actions: "pull,push",
            auth: Mutex::new(Auth::Unknown),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every request, and every blob's first byte, within `timeout`
    /// (instead of 300 s): for checks that must report a hung registry
    /// rather than wait on it.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, RegistryError> {
        self.http = client(timeout)?;
        self.timeout = timeout;
        Ok(self)
    }

    /// Proves the credentials work for `repository` before anything is built.
    pub async fn check_access(&self, repository: &str) -> Result<(), RegistryError> {
        // A tags listing needs pull; a 404 (no repository yet) still means
        // the credentials were accepted.
        let path = format!("/v2/{repository}/tags/list?n=1");
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
        let path = format!("/v2/{repository}/manifests/{reference}");
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
        let bytes = self.body(&path, response).await?;
        let digest = sha256_digest(&bytes);
        let expected = told.unwrap_or_else(|| {
            if reference.starts_with("sha256:") {
                reference.to_owned()
            } else {
                digest.clone()
            }
        });
        if expected != digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                what: format!("the manifest of {repository}:{reference}"),
                expected,
                actual: digest,
            });
        }
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// Puts `manifest` under `tag`. Registry-side tagging: the blobs are
    /// already there, so nothing but the manifest travels.
    pub async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &Manifest,
    ) -> Result<(), RegistryError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let response = self
            .send(Method::PUT, &path, repository, |r| {
                r.header(header::CONTENT_TYPE, &manifest.media_type)
                    .body(manifest.bytes.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.failure(Method::PUT, &path, repository, response).await);
        }
        let told = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        match told {
            Some(told) if told != manifest.digest => Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                what: format!("the manifest stored as {repository}:{tag}"),
                expected: manifest.digest.clone(),
                actual: told.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// A blob's bytes, verified against its digest.
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self.send(Method::GET, &path, repository, |r| r).await?;
        if !response.status().is_success() {
            return Err(self.failure(Method::GET, &path, repository, response).await);
        }
        let bytes = self.body(&path, response).await?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                what: format!("blob {digest} of {repository}"),
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Whether the repository already holds a blob (then it is not sent).
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
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

    /// Every tag of a repository, following `Link` pages.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let mut tags = Vec::new();
        let mut path = format!("/v2/{repository}/tags/list?n=1000");
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
            let bytes = self.body(&path, response).await?;
            let page: TagList = serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::Protocol(format!(
                    "{} sent a tag list that is not JSON: {e}",
                    self.name
                ))
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => path = next,
                None => return Ok(tags),
            }
        }
        Err(RegistryError::Protocol(format!(
            "{} kept paging the tags of {repository} past {MAX_TAG_PAGES} pages; stopping",
            self.name
        )))
    }

    async fn body(&self, path: &str, response: Response) -> Result<Vec<u8>, RegistryError> {
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(self.transport(path))
    }

    /// A request that never got its answer. Neither `path`'s query nor
    /// reqwest's copy of the URL is kept: either can carry signed state.
    fn transport(&self, path: &str) -> impl Fn(reqwest::Error) -> RegistryError + Send + 'static {
        let registry = self.name.clone();
        let url = format!("{}{}", self.base, without_query(path));
        move |source| RegistryError::Transport {
            registry: registry.clone(),
            url: url.clone(),
            source: source.without_url(),
        }
    }

    /// Sends with auth and bounded retries. A 401 asks the challenge for a
    /// token (or switches to basic) once, then tries again.
    async fn send(
        &self,
        method: Method,
        path: &str,
        repository: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut authenticated_again = false;
        let mut attempt = 0;
        loop {
            let request =
                self.authorize(build(self.http.request(method.clone(), &url)), repository);
            let response = request.send().await.map_err(self.transport(path))?;
            let status = response.status().as_u16();
            if status == 401 && !authenticated_again {
                authenticated_again = true;
                if self.authenticate(&response, repository).await? {
                    continue;
                }
            }
            if retry::retryable(status) && attempt + 1 < retry::ATTEMPTS {
                let pause = retry::pause(attempt, response.headers());
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
                    .fetch_token(&realm, service.as_deref(), repository)
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
        let mut request = self.http.get(realm).query(&query);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        // The realm URL is named without its query: the query can carry
        // account details, never worth printing.
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                registry: self.name.clone(),
                url: without_query(realm).to_owned(),
                source: source.without_url(),
            })?;
        match response.status().as_u16() {
            200..=299 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    registry: self.name.clone(),
                    repository: repository.to_owned(),
                });
            }
            status => {
                return Err(RegistryError::Protocol(format!(
                    "the token service of {} answered {status}; try again later",
                    self.name
                )));
            }
        }
        let answer: TokenAnswer = response.json().await.map_err(|e| {
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
        let body = response.bytes().await.unwrap_or_default();
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
            },
            403 => RegistryError::Denied {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                status,
                message,
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
    fn digests() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
