//! A local server answering as GitHub's Packages API does for one
//! container package, in front of a real registry that holds its images:
//! a version per manifest the test registered, its tags as the registry
//! names them now, each version shaped as GitHub's documented example
//! (`tests/fixtures/github-api/package-versions-container…`), paged by
//! `Link` headers; deleting a version deletes its manifest from the
//! registry. Faults a test can switch on: refused deletes (403), a spent
//! rate limit, deletes held unanswered from the nth on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use registry_action::registry::Registry;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

pub const TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
const PAGE_SIZE: usize = 5;

/// What the server does besides answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every delete is refused as GitHub refuses a token without
    /// `packages: write`.
    DenyDeletes,
    /// The first listing request meets a spent primary limit, the second a
    /// secondary one; both ask for a short wait.
    RateLimited,
    /// Every listing request meets a primary limit spent for ten minutes.
    SpentForLong,
}

struct Version {
    id: u64,
    created: i64,
    deleted: bool,
}

struct State {
    registry: Registry,
    repository: String,
    /// `orgs` or `users`.
    owner_kind: &'static str,
    versions: BTreeMap<String, Version>,
    fault: Fault,
    limited: usize,
    requests: Vec<String>,
}

pub struct PackagesApi {
    pub url: String,
    state: Arc<Mutex<State>>,
    /// Deletes at or past this count are held unanswered.
    hold_from: Arc<AtomicUsize>,
    deletes: Arc<AtomicUsize>,
}

impl PackagesApi {
    /// Serves `repository` (`owner/name`) of the registry at `registry`,
    /// as an organization's package (`org`) or a user's.
    pub async fn start(registry: &str, repository: &str, org: bool, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            registry: Registry::new(registry, None).unwrap(),
            repository: repository.to_owned(),
            owner_kind: if org { "orgs" } else { "users" },
            versions: BTreeMap::new(),
            fault,
            limited: 0,
            requests: Vec::new(),
        }));
        let hold_from = Arc::new(AtomicUsize::new(usize::MAX));
        let deletes = Arc::new(AtomicUsize::new(0));
        let server = Server {
            url: url.clone(),
            state: state.clone(),
            hold_from: hold_from.clone(),
            deletes: deletes.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        PackagesApi {
            url,
            state,
            hold_from,
            deletes,
        }
    }

    /// A manifest the package holds from now on, pushed at `created`.
    pub async fn add(&self, digest: &str, created: i64) {
        let mut state = self.state.lock().await;
        let id = 1000 + state.versions.len() as u64;
        state.versions.insert(
            digest.to_owned(),
            Version {
                id,
                created,
                deleted: false,
            },
        );
    }

    /// Deletes from the `n`th on (counting from 0) are never answered.
    pub fn hold_deletes_from(&self, n: usize) {
        self.hold_from.store(n, Ordering::SeqCst);
    }

    pub fn release_deletes(&self) {
        self.hold_from.store(usize::MAX, Ordering::SeqCst);
    }

    /// Deletes asked for so far, held ones included.
    pub fn deletes(&self) -> usize {
        self.deletes.load(Ordering::SeqCst)
    }

    /// `METHOD path?query` of every request, in order.
    pub async fn requests(&self) -> Vec<String> {
        self.state.lock().await.requests.clone()
    }

    /// The digests of the versions still there.
    pub async fn live(&self) -> BTreeSet<String> {
        let state = self.state.lock().await;
        state
            .versions
            .iter()
            .filter(|(_, v)| !v.deleted)
            .map(|(d, _)| d.clone())
            .collect()
    }
}

#[derive(Clone)]
struct Server {
    url: String,
    state: Arc<Mutex<State>>,
    hold_from: Arc<AtomicUsize>,
    deletes: Arc<AtomicUsize>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

impl Server {
    async fn serve(&self, mut stream: TcpStream) {
        let Some((method, target, authorization)) = read_head(&mut stream).await else {
            return;
        };
        let answer = self
            .answer(&method, &target, authorization.as_deref())
            .await;
        let Some(answer) = answer else {
            // Held: the client waits until it is killed.
            std::future::pending::<()>().await;
            return;
        };
        let reason = match answer.status {
            200 => "OK",
            204 => "No Content",
            401 => "Unauthorized",
            403 => "Forbidden",
            _ => "Not Found",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
            answer.status,
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(answer.body.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    async fn answer(
        &self,
        method: &str,
        target: &str,
        authorization: Option<&str>,
    ) -> Option<Answer> {
        let mut state = self.state.lock().await;
        state.requests.push(format!("{method} {target}"));
        let token_ok = authorization.and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        }) == Some(TOKEN);
        if !token_ok {
            return Some(answer(
                401,
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            ));
        }
        let (owner, name) = state.repository.split_once('/').unwrap();
        let base = format!(
            "/{}/{owner}/packages/container/{}/versions",
            state.owner_kind,
            name.replace('/', "%2F")
        );
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if method == "GET" && path == base {
            return Some(self.list(&mut state, &base, query).await);
        }
        if method == "DELETE" {
            if let Some(id) = path.strip_prefix(&format!("{base}/")) {
                let n = self.deletes.fetch_add(1, Ordering::SeqCst);
                if n >= self.hold_from.load(Ordering::SeqCst) {
                    return None;
                }
                return Some(delete(&mut state, id).await);
            }
        }
        Some(answer(
            404,
            json!({"message": "Package not found.", "documentation_url": "https://docs.github.com/rest/packages/packages"}),
        ))
    }

    async fn list(&self, state: &mut State, base: &str, query: &str) -> Answer {
        if state.fault == Fault::SpentForLong {
            let reset = jiff::Timestamp::now().as_second() + 600;
            return Answer {
                status: 403,
                headers: vec![
                    ("x-ratelimit-limit".into(), "5000".into()),
                    ("x-ratelimit-remaining".into(), "0".into()),
                    ("x-ratelimit-reset".into(), reset.to_string()),
                ],
                body: json!({"message": "API rate limit exceeded for installation ID 1."})
                    .to_string(),
            };
        }
        if state.fault == Fault::RateLimited && state.limited < 2 {
            state.limited += 1;
            let now = jiff::Timestamp::now().as_second();
            return if state.limited == 1 {
                Answer {
                    status: 403,
                    headers: vec![
                        ("x-ratelimit-limit".into(), "5000".into()),
                        ("x-ratelimit-remaining".into(), "0".into()),
                        ("x-ratelimit-reset".into(), (now + 1).to_string()),
                    ],
                    body: json!({"message": "API rate limit exceeded for installation ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}).to_string(),
                }
            } else {
                Answer {
                    status: 403,
                    headers: vec![("retry-after".into(), "1".into())],
                    body: json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}).to_string(),
                }
            };
        }
        let page: usize = query
            .split('&')
            .find_map(|p| p.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let tags = tags_by_digest(state).await;
        let mut live: Vec<(&String, &Version)> =
            state.versions.iter().filter(|(_, v)| !v.deleted).collect();
        // Newest first, as GitHub lists them.
        live.sort_by_key(|(_, v)| (std::cmp::Reverse(v.created), std::cmp::Reverse(v.id)));
        let pages = live.len().div_ceil(PAGE_SIZE).max(1);
        let template = crate::support::fixture_json(
            "github-api/package-versions-container.rest-api-description-example.json",
        )[0]
        .clone();
        let (owner, name) = state.repository.split_once('/').unwrap();
        let body: Vec<Value> = live
            .iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|(digest, v)| {
                let mut entry = template.clone();
                let time = jiff::Timestamp::from_second(v.created).unwrap().to_string();
                entry["id"] = json!(v.id);
                entry["name"] = json!(digest);
                entry["url"] = json!(format!("{}{base}/{}", self.url, v.id));
                entry["package_html_url"] = json!(format!("https://github.com/{owner}/{name}"));
                entry["html_url"] = json!(format!("https://github.com/{owner}/{name}/{}", v.id));
                entry["created_at"] = json!(time);
                entry["updated_at"] = json!(time);
                entry["metadata"]["container"]["tags"] =
                    json!(tags.get(digest.as_str()).cloned().unwrap_or_default());
                entry
            })
            .collect();
        let link = |n: usize, rel: &str| {
            format!("<{}{base}?per_page=100&page={n}>; rel=\"{rel}\"", self.url)
        };
        let mut links = Vec::new();
        if page < pages {
            links.push(link(page + 1, "next"));
            links.push(link(pages, "last"));
        }
        if page > 1 {
            links.push(link(1, "first"));
            links.push(link(page - 1, "prev"));
        }
        let headers = if links.is_empty() {
            Vec::new()
        } else {
            vec![("link".to_owned(), links.join(", "))]
        };
        Answer {
            status: 200,
            headers,
            body: Value::Array(body).to_string(),
        }
    }
}

/// The tags each digest has in the registry now.
async fn tags_by_digest(state: &State) -> BTreeMap<String, Vec<String>> {
    let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tag in state.registry.tags(&state.repository).await.unwrap() {
        if let Some(digest) = state
            .registry
            .manifest_digest(&state.repository, &tag)
            .await
            .unwrap()
        {
            by_digest.entry(digest).or_default().push(tag);
        }
    }
    by_digest
}

async fn delete(state: &mut State, id: &str) -> Answer {
    if state.fault == Fault::DenyDeletes {
        return answer(
            403,
            json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/packages/packages#delete-package-version-for-an-organization"}),
        );
    }
    let found = state
        .versions
        .iter()
        .find(|(_, v)| v.id.to_string() == id && !v.deleted)
        .map(|(d, _)| d.clone());
    let Some(digest) = found else {
        return answer(404, json!({"message": "Package version not found."}));
    };
    state
        .registry
        .delete_manifest(&state.repository, &digest)
        .await
        .unwrap();
    if let Some(v) = state.versions.get_mut(&digest) {
        v.deleted = true;
    }
    Answer {
        status: 204,
        headers: Vec::new(),
        body: String::new(),
    }
}

/// The request line's method and target, and the `authorization` header.
async fn read_head(stream: &mut TcpStream) -> Option<(String, String, Option<String>)> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let authorization = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_owned())
    });
    Some((method, target, authorization))
}
