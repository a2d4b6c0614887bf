//! A registry on loopback whose one repository, `acme/app`, lists the tags
//! a test chooses (names that aren't tags among them); what else it answers
//! is the test's to mount.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub async fn listing_registry<T: AsRef<str>>(tags: &[T]) -> MockServer {
    let tags: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/acme/app/tags/list"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"name": "acme/app", "tags": tags})),
        )
        .mount(&server)
        .await;
    server
}
