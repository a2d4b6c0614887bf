//! The fixture's services answer as the other tests expect: the engine on
//! its own socket, the open, basic-auth and token-auth registries, and the
//! token issuer's whole flow.

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::Value;

use crate::support::services::{TOKEN_LIFETIME, services};

const REPOSITORY: &str = "services-test/probe";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The `key="value"` parameters of a `Bearer` challenge.
fn bearer_params(challenge: &str) -> Vec<(String, String)> {
    let params = challenge
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer challenge: {challenge}"));
    params
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {params:?}"))
}

/// Asks the issuer at `realm` for a token, as a registry client does.
async fn token(realm: &str, service: &str, scope: &str) -> String {
    let s = services();
    let response = client()
        .get(realm)
        .query(&[("service", service), ("scope", scope)])
        .basic_auth(&s.token_user, Some(&s.token_password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], TOKEN_LIFETIME);
    assert_eq!(body["token"], body["access_token"]);
    body["token"].as_str().unwrap().to_owned()
}

#[test]
fn engine_answers_version_on_its_own_socket() {
    let s = services();
    assert!(s.docker_host.starts_with("unix://"), "{}", s.docker_host);
    let (status, body) = s.engine_get("/version");
    assert_eq!(status, 200, "{body}");
    let version: Value = serde_json::from_str(&body).unwrap();
    assert!(version["ApiVersion"].is_string(), "{version}");
    assert!(version["Version"].is_string(), "{version}");
}

#[tokio::test]
async fn open_registry_answers_v2_without_credentials() {
    let response = client()
        .get(format!("{}/v2/", services().open_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn basic_registry_wants_its_credentials() {
    let s = services();
    let url = format!("{}/v2/", s.basic_url());

    let anonymous = client().get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");

    let wrong = client()
        .get(&url)
        .basic_auth(&s.basic_user, Some("not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let right = client()
        .get(&url)
        .basic_auth(&s.basic_user, Some(&s.basic_password))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_registry_challenges_with_its_realm_and_service() {
    let s = services();
    let response = client()
        .get(format!("{}/v2/", s.token_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    let params = bearer_params(challenge);
    assert_eq!(param(&params, "realm"), s.token_realm());
    assert_eq!(param(&params, "service"), s.token_service);
}

#[tokio::test]
async fn token_flow_reaches_the_token_registry() {
    let s = services();
    let http = client();

    // As a client does: the challenge of the manifest names the realm,
    // the service and the scope to ask for.
    let manifest = format!("{}/v2/{REPOSITORY}/manifests/latest", s.token_url());
    let challenged = http.head(&manifest).send().await.unwrap();
    assert_eq!(challenged.status(), StatusCode::UNAUTHORIZED);
    let params = bearer_params(challenged.headers()[WWW_AUTHENTICATE].to_str().unwrap());
    assert_eq!(
        param(&params, "scope"),
        format!("repository:{REPOSITORY}:pull")
    );

    let token = token(
        param(&params, "realm"),
        param(&params, "service"),
        &format!("repository:{REPOSITORY}:pull,push"),
    )
    .await;

    let base = http
        .get(format!("{}/v2/", s.token_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(base.status(), StatusCode::OK);

    // Nothing was pushed there: not found, but not refused.
    let head = http
        .head(&manifest)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_for_another_repository_is_refused() {
    let s = services();
    let token = token(
        &s.token_realm(),
        &s.token_service,
        "repository:services-test/other:pull",
    )
    .await;
    let head = client()
        .head(format!(
            "{}/v2/{REPOSITORY}/manifests/latest",
            s.token_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_issuer_wants_its_credentials() {
    let s = services();
    let scope = [
        ("service", s.token_service.as_str()),
        ("scope", "repository:services-test/probe:pull"),
    ];
    let anonymous = client()
        .get(s.token_realm())
        .query(&scope)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let wrong = client()
        .get(s.token_realm())
        .query(&scope)
        .basic_auth(&s.token_user, Some("not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}
