//! The registry client against a misbehaving registry: retries on 429/5xx
//! honour `Retry-After` and stop after a bounded number of attempts; a
//! manifest asked for by digest is that digest's, whatever the registry says.

use std::time::{Duration, Instant};

use registry_action::registry::{Registry, RegistryError, sha256_digest};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TAGS: &str = "/v2/acme/app/tags/list";

fn registry(server: &MockServer) -> Registry {
    let address = server.address();
    Registry::new(&format!("127.0.0.1:{}", address.port()), None).unwrap()
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "acme/app", "tags": ["a", "b"]})),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let tags = registry(&server).tags("acme/app").await.unwrap();
    assert_eq!(tags, ["a", "b"]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_registry_that_keeps_failing_is_given_up_on_with_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "0")
                .set_body_json(
                    json!({"errors": [{"code": "UNAVAILABLE", "message": "maintenance"}]}),
                ),
        )
        .mount(&server)
        .await;
    let err = registry(&server)
        .tags("acme/app")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("503") && err.contains("UNAVAILABLE maintenance"),
        "{err}"
    );
    assert!(err.contains("try again later"), "{err}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "bounded attempts"
    );
}

#[tokio::test]
async fn tag_listings_follow_link_pages_on_the_same_registry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .and(wiremock::matchers::query_param("last", "b"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"name": "acme/app", "tags": ["c"]})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "acme/app", "tags": ["a", "b"]}))
                // An absolute link to another host: only its path is followed.
                .insert_header(
                    "link",
                    "<https://elsewhere.example/v2/acme/app/tags/list?n=2&last=b>; rel=\"next\"",
                ),
        )
        .mount(&server)
        .await;
    assert_eq!(
        registry(&server).tags("acme/app").await.unwrap(),
        ["a", "b", "c"]
    );
}

/// A registry asked for one digest that answers with another manifest,
/// naming that other one in `Docker-Content-Digest`, is caught: `verify`
/// or `merge` of `@sha256:A` would otherwise judge B.
#[tokio::test]
async fn a_manifest_asked_for_by_digest_must_hash_to_it_whatever_the_registry_says() {
    let server = MockServer::start().await;
    let pinned = br#"{"schemaVersion":2,"layers":[],"pinned":true}"#;
    let other = br#"{"schemaVersion":2,"layers":[],"pinned":false}"#;
    let (asked, sent) = (sha256_digest(pinned), sha256_digest(other));
    Mock::given(method("GET"))
        .and(path(format!("/v2/acme/app/manifests/{asked}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(other.to_vec(), "application/vnd.oci.image.manifest.v1+json")
                .insert_header("docker-content-digest", sent.as_str()),
        )
        .mount(&server)
        .await;
    let err = registry(&server)
        .manifest("acme/app", &asked)
        .await
        .unwrap_err();
    match err {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => assert_eq!((expected, actual), (asked, sent)),
        other => panic!("{other}"),
    }
}
