//! A registry with the OCI 1.1 referrers API, which none that runs here
//! has (Debian's docker-registry is distribution 2.8; zot and distribution
//! 3 are not packaged): a loopback HTTP server in front of a real
//! docker-registry that passes every request through and adds what the
//! distribution spec (v1.1, "Listing Referrers", "Pushing Manifests with
//! Subject") has such a registry do:
//!
//! - a manifest put with a `subject` is answered with `OCI-Subject: <the
//!   subject's digest>` and listed under that subject;
//! - `GET /v2/<name>/referrers/<digest>` answers an OCI image index of
//!   what is listed (each entry: media type, digest, size, `artifactType` —
//!   the manifest's, else its config's media type — and its annotations;
//!   an empty list for a digest nothing refers to), filtered by
//!   `?artifactType=` with `OCI-Filters-Applied: artifactType`;
//! - a deleted manifest leaves the list.
//!
//! The lists live in memory: the registry behind must be the test's own
//! (`OwnRegistry`), written to only through this server.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::own_registry::OwnRegistry;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// (repository, subject digest) → the referrers' descriptors, in push order.
type Listed = Arc<Mutex<BTreeMap<(String, String), Vec<Value>>>>;

pub struct ReferrersRegistry {
    /// `127.0.0.1:port`: the registry's name for clients.
    pub address: String,
    _behind: OwnRegistry,
}

impl ReferrersRegistry {
    pub fn start() -> Self {
        let behind = OwnRegistry::start(true);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let upstream = behind.address.clone();
        let front = address.clone();
        // Its own runtime: a test blocked on the binary it runs must not
        // stop the registry the binary talks to.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(listener, upstream, front));
        });
        ReferrersRegistry {
            address,
            _behind: behind,
        }
    }
}

async fn serve(listener: std::net::TcpListener, upstream: String, front: String) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let listed = Listed::default();
    while let Ok((stream, _)) = listener.accept().await {
        let (client, listed, upstream, front) = (
            client.clone(),
            listed.clone(),
            upstream.clone(),
            front.clone(),
        );
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (client, listed, upstream, front) = (
                    client.clone(),
                    listed.clone(),
                    upstream.clone(),
                    front.clone(),
                );
                async move {
                    Ok::<_, Infallible>(answer(request, &client, &listed, &upstream, &front).await)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    client: &reqwest::Client,
    listed: &Listed,
    upstream: &str,
    front: &str,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let method = request.method().clone();
    if let Some((name, digest)) = route(&path, "/referrers/") {
        if method == hyper::Method::GET {
            return referrers(listed, name, digest, &query);
        }
    }
    let headers = request.headers().clone();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    let url = match query.is_empty() {
        true => format!("http://{upstream}{path}"),
        false => format!("http://{upstream}{path}?{query}"),
    };
    let mut forwarded = client.request(method.clone(), url).body(body.clone());
    for (name, value) in &headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            forwarded = forwarded.header(name, value);
        }
    }
    let Ok(upstream_answer) = forwarded.send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let code = upstream_answer.status();
    let mut response = Response::builder().status(code);
    for (name, value) in upstream_answer.headers() {
        if name == hyper::header::TRANSFER_ENCODING || name == hyper::header::CONNECTION {
            continue;
        }
        // Upload locations point back at this server.
        let value = match name == hyper::header::LOCATION {
            true => value
                .to_str()
                .unwrap_or_default()
                .replace(upstream, front)
                .parse()
                .unwrap(),
            false => value.clone(),
        };
        if name != hyper::header::CONTENT_LENGTH || method == hyper::Method::HEAD {
            response = response.header(name, value);
        }
    }
    if code.is_success() {
        if let Some((name, reference)) = route(&path, "/manifests/") {
            if method == hyper::Method::PUT {
                if let Some(subject) = note(listed, name, &headers, &body) {
                    response = response.header("OCI-Subject", subject);
                }
            } else if method == hyper::Method::DELETE {
                for entries in listed.lock().unwrap().values_mut() {
                    entries.retain(|e| e["digest"] != reference);
                }
            }
        }
    }
    let bytes = upstream_answer.bytes().await.unwrap_or_default();
    if method == hyper::Method::HEAD {
        return response.body(Full::new(Bytes::new())).unwrap();
    }
    response.body(Full::new(bytes)).unwrap()
}

/// `/v2/<name><marker><rest>` as (name, rest).
fn route<'a>(path: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    path.strip_prefix("/v2/")?.rsplit_once(marker)
}

/// Lists a manifest put with a `subject` under it; the subject's digest.
fn note(listed: &Listed, name: &str, headers: &hyper::HeaderMap, body: &[u8]) -> Option<String> {
    let manifest: Value = serde_json::from_slice(body).ok()?;
    let subject = manifest.pointer("/subject/digest")?.as_str()?.to_owned();
    let media_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| manifest["mediaType"].as_str().map(str::to_owned))?;
    let mut entry = json!({
        "mediaType": media_type,
        "digest": registry_action::registry::sha256_digest(body),
        "size": body.len(),
    });
    let artifact_type = manifest
        .get("artifactType")
        .or_else(|| manifest.pointer("/config/mediaType"));
    if let Some(artifact_type) = artifact_type {
        entry["artifactType"] = artifact_type.clone();
    }
    if let Some(annotations) = manifest.get("annotations") {
        entry["annotations"] = annotations.clone();
    }
    let mut listed = listed.lock().unwrap();
    let entries = listed
        .entry((name.to_owned(), subject.clone()))
        .or_default();
    entries.retain(|e| e["digest"] != entry["digest"]);
    entries.push(entry);
    Some(subject)
}

fn referrers(listed: &Listed, name: &str, digest: &str, query: &str) -> Response<Full<Bytes>> {
    let wanted: Option<String> = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("artifactType="))
        .map(|t| t.replace("%2B", "+").replace("%2F", "/"));
    let entries: Vec<Value> = listed
        .lock()
        .unwrap()
        .get(&(name.to_owned(), digest.to_owned()))
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| wanted.as_deref().is_none_or(|t| e["artifactType"] == t))
        .collect();
    let body = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries});
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, INDEX);
    if wanted.is_some() {
        response = response.header("OCI-Filters-Applied", "artifactType");
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
