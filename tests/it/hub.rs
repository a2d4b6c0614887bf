//! The Docker Hub client against a local server replaying Docker Hub's real
//! payloads from `tests/fixtures/docker-hub` (see its README for sources).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use registry_action::hub::{Deleted, Hub, HubError, HubTag};
use registry_action::registry::retry::ATTEMPTS;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TAGS: &str = "/v2/namespaces/acme/repositories/app/tags";
const SHA: &str = "4f2b1c0de7a9e8d6c5b4a3928170f6e5d4c3b2a1";
const USER: &str = "acme-ci";
const PAT: &str = "dckr_pat_124509ugsdjga93";
/// The token both login fixtures carry (Docker's documented example).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

fn fixture(name: &str) -> Value {
    crate::support::fixture_json(&format!("docker-hub/{name}"))
}

/// A server that fails loudly on anything a test did not plan for.
async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(501).set_body_json(json!({"detail": "no replay"})))
        .with_priority(u8::MAX)
        .mount(&server)
        .await;
    server
}

/// Page 1 whose `next` points at this server, as Hub's points at itself.
fn page1_for(server: &MockServer) -> Value {
    let mut page = fixture("tags.page1.json");
    let next = page["next"]
        .as_str()
        .unwrap()
        .replace("https://hub.docker.com", &server.uri());
    page["next"] = json!(next);
    page
}

async fn serve_pages(server: &MockServer, page1: Value) {
    Mock::given(method("GET"))
        .and(path(TAGS))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("tags.page2.json")))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .and(query_param("page_size", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page1))
        .mount(server)
        .await;
}

async fn serve_login(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .and(body_json(json!({"identifier": USER, "secret": PAT})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth-token.json")))
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| match r.url.query() {
            Some(q) => format!("{} {}?{q}", r.method, r.url.path()),
            None => format!("{} {}", r.method, r.url.path()),
        })
        .collect()
}

async fn authorizations(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The four tags of the two fixture pages, as the client must read them.
fn expected_tags() -> Vec<HubTag> {
    let list = "sha256:2ae17aff4c3c8cdb2d3d9c885d7c59ad518bffc89e8351598ff1f3f918183b7c";
    let debian_children = vec![
        "sha256:9340772107855de9351e88e3ba2636d045f730e05b177c5313613894c223b4d4".to_owned(),
        "sha256:eee0d222c03513dcdf8f3a12c6c342add8a6161af09bcb9a38eef9ef7d486122".to_owned(),
    ];
    vec![
        HubTag {
            name: "unstable-slim".into(),
            digest: Some(list.into()),
            // 2023-06-13T04:58:31.821511Z
            last_pushed: Some(1_686_632_311),
            full_size: 29_124_691,
            children: debian_children.clone(),
        },
        HubTag {
            name: "unstable-20230612-slim".into(),
            digest: Some(list.into()),
            // 2023-06-13T04:58:26.736918Z
            last_pushed: Some(1_686_632_306),
            full_size: 29_124_691,
            children: debian_children,
        },
        HubTag {
            name: "1.44.0-slim".into(),
            digest: None,
            // 2020-06-09T20:45:50.400981Z
            last_pushed: Some(1_591_735_550),
            full_size: 0,
            children: vec![
                "sha256:71e1fcc6901b89f329c5cc5d8427d6cba5ef9c31750c5807018d9862571e2e40".into(),
                "sha256:5da86b1b6035bc3d7c307f8ef5d1e7c3f04642253fda21c8c547c208196322fb".into(),
                "sha256:20a44b32ffcadefc668666152a4976e22e074e165e2c62a07353d54a1e6bd963".into(),
                "sha256:cbc5f55f9af251daefb595e67fe7b531e9b12e61037ca6a3878ce6e29e612974".into(),
            ],
        },
        HubTag {
            name: "test-0.15".into(),
            digest: Some(
                "sha256:d45c90ec473226597a2a4dae636b63f0ec06b713cd3233b865d77937fdaa03e0".into(),
            ),
            // 2024-05-14T11:00:47.871694Z
            last_pushed: Some(1_715_684_447),
            full_size: 932_075_519,
            children: vec![],
        },
    ]
}

#[tokio::test]
async fn lists_every_page_with_the_login() {
    let server = server().await;
    serve_login(&server).await;
    serve_pages(&server, page1_for(&server)).await;

    let hub = Hub::new(&server.uri())
        .unwrap()
        .login(USER, PAT)
        .await
        .unwrap();
    let tags = hub.tags("acme", "app").await.unwrap();

    assert_eq!(tags, expected_tags());
    assert_eq!(
        requests(&server).await,
        [
            "POST /v2/auth/token".to_owned(),
            format!("GET {TAGS}?page_size=100"),
            format!("GET {TAGS}?page=2&page_size=100"),
        ]
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        authorizations(&server).await,
        ["-", bearer.as_str(), bearer.as_str()]
    );
}

#[tokio::test]
async fn login_falls_back_to_users_login() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"detail": "Not found."})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/users/login"))
        .and(body_json(json!({"username": USER, "password": PAT})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users-login.json")))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/repositories/acme/app/tags/{SHA}/")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;

    let hub = Hub::new(&server.uri())
        .unwrap()
        .login(USER, PAT)
        .await
        .unwrap();
    assert_eq!(
        hub.delete_tag("acme", "app", SHA).await.unwrap(),
        Deleted::Now
    );
    assert_eq!(
        requests(&server).await,
        [
            "POST /v2/auth/token".to_owned(),
            "POST /v2/users/login".to_owned(),
            format!("DELETE /v2/repositories/acme/app/tags/{SHA}/"),
        ]
    );
}

#[tokio::test]
async fn rejected_credentials_name_the_user_and_the_fix() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("login-failed.401.json")))
        .mount(&server)
        .await;

    let err = Hub::new(&server.uri())
        .unwrap()
        .login(USER, PAT)
        .await
        .unwrap_err();

    assert!(
        matches!(err, HubError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    for part in [
        "Docker Hub rejected the credentials of `acme-ci` (401)",
        ": Incorrect authentication credentials",
        "personal access token with the Read, Write & Delete scope",
    ] {
        assert!(message.contains(part), "{message}");
    }
    // A refusal is an answer: the legacy route is not tried with the same
    // credentials.
    assert_eq!(requests(&server).await, ["POST /v2/auth/token"]);
}

#[tokio::test]
async fn waits_out_a_rate_limit_as_x_retry_after_says() {
    let server = server().await;
    // Docker Hub's reset time, already reached: an immediate retry. Without
    // the header the client would back off for half a second.
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-retry-after", (now() - 1).to_string().as_str())
                .set_body_json(fixture("rate-limited.429.json")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let mut page = fixture("tags.page2.json");
    page["previous"] = Value::Null;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&server)
        .await;

    let started = Instant::now();
    let tags = Hub::new(&server.uri())
        .unwrap()
        .tags("acme", "app")
        .await
        .unwrap();

    assert!(
        started.elapsed().as_millis() < 450,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(tags, expected_tags()[2..]);
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {TAGS}?page_size=100"),
            format!("GET {TAGS}?page_size=100")
        ]
    );
}

#[tokio::test]
async fn gives_up_on_a_rate_limit_that_never_lifts() {
    let server = server().await;
    Mock::given(method("DELETE"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(fixture("rate-limited.429.json")),
        )
        .mount(&server)
        .await;

    let err = Hub::new(&server.uri())
        .unwrap()
        .delete_tag("acme", "app", SHA)
        .await
        .unwrap_err();

    assert!(
        matches!(err, HubError::RateLimited { attempts, .. } if attempts == ATTEMPTS),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "Docker Hub kept rate-limiting deleting `acme/app:{SHA}` (429) for {ATTEMPTS} attempts"
        )),
        "{message}"
    );
    assert!(message.contains("run again later"), "{message}");
    assert_eq!(requests(&server).await.len(), ATTEMPTS as usize);
}

#[tokio::test]
async fn deletes_converge_on_a_rerun() {
    let server = server().await;
    serve_login(&server).await;
    let route = format!("/v2/repositories/acme/app/tags/{SHA}/");
    Mock::given(method("DELETE"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("tag-not-found.404.json")))
        .mount(&server)
        .await;

    let hub = Hub::new(&server.uri())
        .unwrap()
        .login(USER, PAT)
        .await
        .unwrap();
    assert_eq!(
        hub.delete_tag("acme", "app", SHA).await.unwrap(),
        Deleted::Now
    );
    assert_eq!(
        hub.delete_tag("acme", "app", SHA).await.unwrap(),
        Deleted::AlreadyGone
    );
    let delete = format!("DELETE {route}");
    assert_eq!(
        requests(&server).await,
        ["POST /v2/auth/token", delete.as_str(), delete.as_str()]
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        authorizations(&server).await,
        ["-", bearer.as_str(), bearer.as_str()]
    );
}

#[tokio::test]
async fn a_next_page_on_another_host_is_refused() {
    let server = server().await;
    serve_login(&server).await;
    // The fixture's own `next`: https://hub.docker.com, not this server.
    serve_pages(&server, fixture("tags.page1.json")).await;

    let hub = Hub::new(&server.uri())
        .unwrap()
        .login(USER, PAT)
        .await
        .unwrap();
    let err = hub.tags("acme", "app").await.unwrap_err();

    assert!(matches!(err, HubError::ForeignPage { .. }), "{err:?}");
    let message = err.to_string();
    for part in [
        "`acme/app`",
        "https://hub.docker.com/v2/namespaces/acme/repositories/app/tags?page=2&page_size=100",
        &server.uri(),
        "refusing to follow it",
    ] {
        assert!(message.contains(part), "{message}");
    }
    assert_eq!(
        requests(&server).await,
        [
            "POST /v2/auth/token".to_owned(),
            format!("GET {TAGS}?page_size=100")
        ]
    );
}

#[tokio::test]
async fn errors_never_show_the_password_or_the_token() {
    let server = server().await;
    // Servers that echo what they were sent, at every step.
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .and(body_json(
            json!({"identifier": "someone-else", "secret": PAT}),
        ))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"detail": format!("bad secret {PAT}"), "message": PAT})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .and(body_json(json!({"identifier": "broken", "secret": PAT})))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("retry-after", "0")
                .set_body_json(json!({"detail": format!("crashed on {PAT}")})),
        )
        .mount(&server)
        .await;
    serve_login(&server).await;
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"detail": format!("expired {TOKEN}")})),
        )
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"detail": format!("no delete for {TOKEN}")})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/namespaces/acme/repositories/odd/tags"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!("{{\"results\": \"{TOKEN}\"")),
        )
        .with_priority(1)
        .mount(&server)
        .await;

    let api = server.uri();
    let mut errors: Vec<HubError> = Vec::new();
    errors.push(
        Hub::new(&api)
            .unwrap()
            .login("someone-else", PAT)
            .await
            .unwrap_err(),
    );
    errors.push(
        Hub::new(&api)
            .unwrap()
            .login("broken", PAT)
            .await
            .unwrap_err(),
    );
    let hub = Hub::new(&api).unwrap().login(USER, PAT).await.unwrap();
    errors.push(hub.tags("acme", "app").await.unwrap_err());
    errors.push(hub.delete_tag("acme", "app", SHA).await.unwrap_err());
    errors.push(hub.tags("acme", "odd").await.unwrap_err());

    let kinds: Vec<&str> = errors
        .iter()
        .map(|e| match e {
            HubError::Rejected { .. } => "rejected",
            HubError::Status { status: 500, .. } => "500",
            HubError::Unauthorized { .. } => "unauthorized",
            HubError::Forbidden { .. } => "forbidden",
            HubError::Protocol { .. } => "protocol",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["rejected", "500", "unauthorized", "forbidden", "protocol"]
    );
    for err in &errors {
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(PAT), "{shown}");
            assert!(!shown.contains(TOKEN), "{shown}");
            // A recognisable piece of each, too.
            assert!(!shown.contains("124509ugsdjga93"), "{shown}");
            assert!(
                !shown.contains("SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
                "{shown}"
            );
        }
    }
    assert!(
        errors[0].to_string().contains(": bad secret ***"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].to_string().contains(": crashed on ***"),
        "{}",
        errors[1]
    );
    // serde quotes the string it could not read.
    assert!(errors[4].to_string().contains("***"), "{}", errors[4]);
    assert!(
        errors[3].to_string().contains(": no delete for ***"),
        "{}",
        errors[3]
    );
    let shown = format!("{hub:?}");
    assert!(!shown.contains(TOKEN) && shown.contains("***"), "{shown}");
}

/// The `cleanup` command on Docker Hub, run as a runner runs it: six SHA
/// tags an hour apart, `latest` on the oldest; `keep: 2` deletes the four
/// oldest SHA tags by name, waiting out a 429 on the first delete.
#[tokio::test]
async fn cleanup_deletes_the_oldest_sha_tags_by_name() {
    let server = server().await;
    serve_login(&server).await;
    let template = fixture("tags.page1.json")["results"][0].clone();
    let sha = |n: u8| format!("{n:02x}").repeat(20);
    let mut results: Vec<Value> = (0..6u8)
        .map(|n| {
            let mut tag = template.clone();
            tag["name"] = json!(sha(n));
            tag["digest"] = json!(format!("sha256:{}", format!("{n:02x}").repeat(32)));
            tag["tag_last_pushed"] = json!(format!("2026-01-01T0{n}:00:00Z"));
            tag["images"] = json!([]);
            tag
        })
        .collect();
    // `latest` rolled back to the oldest image: Hub deletes tags, not
    // manifests, so its SHA tag still goes.
    let mut latest = results[0].clone();
    latest["name"] = json!("latest");
    results.push(latest);
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"count": results.len(), "next": null, "previous": null, "results": results}),
        ))
        .mount(&server)
        .await;
    let first = format!("/v2/repositories/acme/app/tags/{}/", sha(0));
    Mock::given(method("DELETE"))
        .and(path(first.as_str()))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(fixture("rate-limited.429.json"))
                .insert_header("x-retry-after", now().to_string()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;

    let workspace = tempfile::tempdir().unwrap();
    let ran = crate::support::run::Action::github(workspace.path())
        .input("command", "cleanup")
        .input("registry", "docker.io")
        .input("hub-api", &server.uri())
        .input("namespace", "acme")
        .input("images", "app")
        .input("keep", "2")
        .input("username", USER)
        .input("password", PAT)
        .run_async()
        .await;
    ran.assert_ok();
    ran.assert_secret_masked_only(PAT);
    let deletes: Vec<String> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.starts_with("DELETE"))
        .collect();
    let expected: Vec<String> = [0, 0, 1, 2, 3]
        .iter()
        .map(|&n| format!("DELETE /v2/repositories/acme/app/tags/{}/", sha(n)))
        .collect();
    let mut sorted = deletes.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "the 429 was retried once, then each went once"
    );
    let deleted: Value = serde_json::from_str(&ran.outputs["deleted"]).unwrap();
    let names: Vec<&str> = deleted
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tag"].as_str().unwrap())
        .collect();
    assert_eq!(names, [sha(0), sha(1), sha(2), sha(3)]);
    assert_eq!(ran.outputs["kept"], "3");
    let tokens = authorizations(&server).await;
    assert!(
        tokens.iter().filter(|a| a.starts_with("Bearer ")).count() >= 6,
        "{tokens:?}"
    );
}

/// A tag whose `images` are `count` distinct digests, as Hub lists an
/// index's platforms.
fn tag_with_images(name: &str, first: usize, count: usize) -> Value {
    let images: Vec<Value> = (first..first + count)
        .map(|n| json!({"digest": format!("sha256:{n:064x}")}))
        .collect();
    json!({
        "name": name,
        "media_type": "application/vnd.oci.image.index.v1+json",
        "images": images,
    })
}

/// What listing `acme/app`'s tags says when every page is `page`.
async fn listing_error(server: &MockServer, page: Value) -> String {
    Mock::given(method("GET"))
        .and(path(TAGS))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(server)
        .await;
    Hub::new(&server.uri())
        .unwrap()
        .tags("acme", "app")
        .await
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn a_tag_listing_more_platform_images_than_a_manifest_may_is_refused() {
    let server = server().await;
    let page = json!({"next": null, "results": [tag_with_images("multi", 0, 10_001)]});
    assert_eq!(
        listing_error(&server, page).await,
        "Docker Hub lists 10001 platform images for `acme/app:multi`, more than the 10000 a manifest may list; refusing it"
    );
}

/// Children are kept across pages: the listing stops once they pass the
/// budget, here on the 11th page of 50,000.
#[tokio::test]
async fn platform_images_past_the_repository_budget_stop_the_listing() {
    let server = server().await;
    let tags: Vec<Value> = (0..5)
        .map(|t| tag_with_images(&format!("t{t}"), t * 10_000, 10_000))
        .collect();
    let next = format!("{}{TAGS}?page=2&page_size=100", server.uri());
    let page = json!({"next": next, "results": tags});
    assert_eq!(
        listing_error(&server, page).await,
        "Docker Hub's tags of `acme/app` list more than 500000 platform images in all; refusing to read further"
    );
    assert_eq!(requests(&server).await.len(), 11);
}

const REPOSITORY: &str = "/v2/namespaces/acme/repositories/app";

/// The documented repository answer, with `pull_count` set.
async fn serve_pull_count(server: &MockServer, pull_count: u64) {
    let mut info = fixture("repository.json");
    info["pull_count"] = json!(pull_count);
    Mock::given(method("GET"))
        .and(path(REPOSITORY))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_pull_count_is_read_from_the_repository_answer() {
    let server = server().await;
    serve_pull_count(&server, 15_722_123).await;
    let hub = Hub::new(&server.uri()).unwrap();
    assert_eq!(hub.pull_count("acme", "app").await.unwrap(), 15_722_123);
    Mock::given(method("GET"))
        .and(path("/v2/namespaces/acme/repositories/gone"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    assert_eq!(
        hub.pull_count("acme", "gone")
            .await
            .unwrap_err()
            .to_string(),
        "Docker Hub has no repository `acme/gone`, or the login can't see it; check the namespace and image name, and log in for a private repository"
    );

    server.reset().await;
    let mut info = fixture("repository.json");
    info.as_object_mut().unwrap().remove("pull_count");
    Mock::given(method("GET"))
        .and(path(REPOSITORY))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .mount(&server)
        .await;
    assert_eq!(
        hub.pull_count("acme", "app").await.unwrap_err().to_string(),
        "Docker Hub sent an answer to the pull count of `acme/app` in a form its API doesn't document: no `pull_count`"
    );
}

/// One nightly `monitor` of `acme/app` on Docker Hub, its previous report
/// in `previous.json` (if any), with Hub's API answering `pull_count`.
/// registry-1.docker.io can't be reached here, so every run's pull check
/// is critical; the pull counts come from Hub's API all the same.
async fn monitor_hub(
    server: &MockServer,
    workspace: &std::path::Path,
    pull_count: u64,
) -> crate::support::run::Ran {
    server.reset().await;
    serve_pull_count(server, pull_count).await;
    let mut action = crate::support::run::Action::github(workspace)
        .input("command", "monitor")
        .input("registry", "docker.io")
        .input("hub-api", &server.uri())
        .input("namespace", "acme")
        .input("images", "app")
        .input("scanner", "none")
        .input("request-timeout", "10s")
        .input("report-file", "monitor.json");
    if workspace.join("previous.json").is_file() {
        action = action.input("previous-report", "previous.json");
    }
    let ran = action.run_async().await;
    assert_eq!(ran.outputs["status"], "critical", "{ran}");
    std::fs::copy(
        workspace.join("monitor.json"),
        workspace.join("previous.json"),
    )
    .unwrap();
    ran
}

/// The downloads alerts of a run.
fn download_alerts(ran: &crate::support::run::Ran) -> Vec<String> {
    let alerts: Vec<Value> = serde_json::from_str(&ran.outputs["alerts"]).unwrap();
    alerts
        .iter()
        .filter(|a| a["check"] == "downloads")
        .map(|a| {
            format!(
                "{} {}",
                a["level"].as_str().unwrap(),
                a["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// Runs minutes apart count as a day apart (as for storage growth), so
/// each rate is the difference of two counts.
#[tokio::test(flavor = "multi_thread")]
async fn monitor_warns_when_docker_hubs_pull_rate_leaves_its_usual_range() {
    let server = server().await;
    let workspace = tempfile::tempdir().unwrap();
    let dir = workspace.path();
    // Rates: -, 100, 90, 1100 (too little history to judge), 100 (usual),
    // 600 (a spike), 10 (a drop).
    let counts = [1000, 1100, 1190, 2290, 2390, 2990, 3000];
    let mut runs = Vec::new();
    for count in counts {
        runs.push(monitor_hub(&server, dir, count).await);
    }
    let said: Vec<Vec<String>> = runs.iter().map(download_alerts).collect();
    let quiet: Vec<Vec<String>> = vec![Vec::new(); 5];
    assert_eq!(said[..5], quiet[..], "no history, too little, then usual");
    assert_eq!(
        said[5],
        [
            "warning `acme/app` was pulled 600 times a day since the last run, 6× its usual 100 (the median of the last 4 runs); more than 5× is unusual: look for a runaway job or a leaked credential pulling it"
        ]
    );
    assert_eq!(
        said[6],
        [
            "warning `acme/app` was pulled 10 times a day since the last run, 0.1× its usual 100 (the median of the last 5 runs); less than 0.2× is unusual: check that its users can still pull it"
        ]
    );
    let last = &runs[6];
    assert!(
        last.stdout
            .contains("::warning::downloads · acme/app: `acme/app` was pulled 10 times"),
        "{last}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("monitor.json")).unwrap()).unwrap();
    let row = &report["images"][0];
    assert_eq!(
        (&row["downloads"], &row["pulls"], &row["pulls-per-day"]),
        (&json!("warning"), &json!(3000), &json!(10.0)),
        "{row}"
    );
    assert_eq!(
        row["pull-rates"],
        json!([100.0, 90.0, 1100.0, 100.0, 600.0, 10.0])
    );
    let history = report["history"].as_array().unwrap();
    let rates: Vec<&Value> = history.iter().map(|p| &p["pulls-per-day"]).collect();
    assert_eq!(history.len(), 7);
    assert_eq!(rates[0], &Value::Null, "the first night has no rate");
    assert!(
        last.summary
            .contains("| `acme/app` | — | ❌ critical | — | — | ⚠️ warning (10) |"),
        "{last}"
    );
    assert!(!last.summary.contains("keeps no pull counts"), "{last}");
    assert!(
        last.summary
            .contains("    line [100.0, 90.0, 1100.0, 100.0, 600.0, 10.0]\n"),
        "{last}"
    );
    assert_eq!(
        crate::support::mermaid::check(&last.summary),
        Ok(vec!["ok xychart".to_owned(), "ok xychart".to_owned()])
    );
}
