//! `monitor`'s pull counts from Harbor: its API (which can't run here) is a
//! local server answering from the documented `Repository` answer
//! (`tests/fixtures/harbor`), beside the real registry the images are
//! pulled from; the rate, the unusual-pull warning, a refused login and a
//! bad `harbor-api`, asserted on the outputs, the report and the requests.

use base64::Engine as _;
use registry_action::registry::Registry;
use registry_action::registry::auth::Credentials;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fixture_json;
use crate::support::images::Seeder;
use crate::support::run::{Action, Ran};
use crate::support::services::services;

/// The repository `<ns>/team/app`: a name Harbor's API wants encoded twice.
fn repository() -> String {
    format!(
        "mon-harbor-{}/team/app",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn route(repository: &str) -> String {
    let (project, name) = repository.split_once('/').unwrap();
    format!(
        "/api/v2.0/projects/{project}/repositories/{}",
        name.replace('/', "%252F")
    )
}

/// Harbor answering `pull_count` for `repository`, to the registry's login only.
async fn serve(server: &MockServer, repository: &str, pull_count: u64) {
    server.reset().await;
    let s = services();
    let login = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", s.basic_user, s.basic_password));
    let mut answer = fixture_json("harbor/repository.json");
    answer["name"] = json!(repository);
    answer["pull_count"] = json!(pull_count);
    Mock::given(method("GET"))
        .and(path(route(repository)))
        .and(header("authorization", format!("Basic {login}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture_json("harbor/unauthorized.json")),
        )
        .mount(server)
        .await;
}

fn monitor(workspace: &std::path::Path, repository: &str, harbor: &str, password: &str) -> Action {
    let s = services();
    let mut action = Action::github(workspace)
        .input("command", "monitor")
        .input("registry", &s.registry_basic)
        .input("username", &s.basic_user)
        .input("password", password)
        .input("harbor-api", harbor)
        .input("images", repository)
        .input("scanner", "none")
        .input("report-file", "monitor.json");
    if workspace.join("previous.json").is_file() {
        action = action.input("previous-report", "previous.json");
    }
    action
}

/// One nightly run; its report becomes the next one's previous report.
async fn night(
    server: &MockServer,
    workspace: &std::path::Path,
    repository: &str,
    count: u64,
) -> Ran {
    serve(server, repository, count).await;
    let ran = monitor(
        workspace,
        repository,
        &server.uri(),
        &services().basic_password,
    )
    .run_async()
    .await;
    ran.assert_ok();
    std::fs::copy(
        workspace.join("monitor.json"),
        workspace.join("previous.json"),
    )
    .unwrap();
    ran
}

fn downloads(ran: &Ran) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread")]
async fn harbors_pull_counts_give_the_rate_and_an_unusual_one_warns() {
    let s = services();
    let repository = repository();
    let credentials = Credentials {
        username: s.basic_user.clone(),
        password: s.basic_password.clone(),
    };
    let registry = Registry::new(&s.registry_basic, Some(credentials)).unwrap();
    Seeder::new(&registry, &repository)
        .await
        .image(1, 1_700_000_000, &["latest"])
        .await;
    let server = MockServer::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let dir = workspace.path();

    // Rates: -, 100, 90, 110 (usual), then 1300: 13× the median.
    let counts = [1000, 1100, 1190, 1300, 2600];
    let mut runs = Vec::new();
    for count in counts {
        runs.push(night(&server, dir, &repository, count).await);
    }
    let said: Vec<Vec<String>> = runs.iter().map(downloads).collect();
    assert_eq!(said[..4], vec![Vec::<String>::new(); 4][..], "{said:?}");
    assert_eq!(
        said[4],
        [format!(
            "warning `{repository}` was pulled 1300 times a day since the last run, 13× its usual 100 (the median of the last 3 runs); more than 5× is unusual: look for a runaway job or a leaked credential pulling it"
        )]
    );
    let last = &runs[4];
    assert_eq!(last.outputs["status"], "warning", "{last}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("monitor.json")).unwrap()).unwrap();
    let row = &report["images"][0];
    assert_eq!(
        (&row["pull"], &row["pulls"], &row["pulls-per-day"]),
        (&json!("ok"), &json!(2600), &json!(1300.0)),
        "{row}"
    );
    assert_eq!(row["pull-rates"], json!([100.0, 90.0, 110.0, 1300.0]));
    assert!(!last.summary.contains("keeps no pull counts"), "{last}");
    last.assert_secret_masked_only(&s.basic_password);

    // Another password: Harbor refuses it, the registry too; Harbor's
    // message is quoted and the fix named.
    let refused = monitor(dir, &repository, &server.uri(), "wrong-password-3c9")
        .run_async()
        .await;
    assert!(
        downloads(&refused).contains(&format!(
            "warning couldn't read the pull count of `{repository}`: Harbor refused the pull count of `{repository}` (401): unauthorized: authentication required; `username` and `password` must be a Harbor user or robot account that may read the project"
        )),
        "{refused}"
    );
    refused.assert_secret_masked_only("wrong-password-3c9");

    let bad = monitor(dir, &repository, "harbor.example.com", &s.basic_password).run();
    bad.assert_failed("`harbor-api`: \"harbor.example.com\" is not a Harbor address");
}

/// Plain http to a host that isn't loopback would carry the login in the
/// clear: refused before any request. Every request the binary would send
/// goes to an HTTP proxy (`HTTP_PROXY`), which sees none.
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_harbor_elsewhere_is_refused_before_any_request() {
    let s = services();
    let proxy = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"pull_count": 1})))
        .mount(&proxy)
        .await;
    let workspace = tempfile::tempdir().unwrap();
    let ran = monitor(
        workspace.path(),
        &repository(),
        "http://harbor.example.com",
        &s.basic_password,
    )
    .env("HTTP_PROXY", &proxy.uri())
    .env("http_proxy", &proxy.uri())
    .run_async()
    .await;
    ran.assert_failed(
        "`harbor-api`: \"http://harbor.example.com/\" is not a Harbor address (plain http sends the login in the clear: use https; http is for a loopback host only, 127.0.0.0/8, ::1 or localhost);",
    );
    ran.assert_secret_masked_only(&s.basic_password);
    let sent: Vec<String> = proxy
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert_eq!(sent, Vec::<String>::new());
}
