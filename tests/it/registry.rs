//! The registry client against a misbehaving registry: retries on 429/5xx
//! honour `Retry-After` and stop after a bounded number of attempts.

use std::time::{Duration, Instant};

use registry_action::registry::Registry;
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
