//! Registries and archives that lie about names. A tag listing (or an
//! archive's `index.json`) carries `../../../<ns>/victim/manifests/latest`
//! and other names that aren't tags: `mirror`, `restore`, `usage` and
//! `cleanup` skip each with a warning and never request it, and the real
//! registry shows the victim's tag where it was. Inputs that aren't names
//! are refused before anything runs, naming the input.
//!
//! The liars are local servers: one answering as a registry from a fixed
//! image, one in front of the real open registry that only adds names to
//! its tag listings.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use registry_action::actions::workflow::log_line;
use registry_action::registry::Manifest;
use serde_json::{Value, json};
use wiremock::matchers::{any, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::mirror::{OCI_MANIFEST, copied, open, push_image, random_layer, run, run_owned};
use crate::support::images::Seeder;
use crate::support::listing::listing_registry;
use crate::support::run::{Action, Ran};
use crate::support::services::services;

/// A namespace of the real registry no other test (or earlier run) uses.
fn namespace() -> String {
    format!(
        "hostile-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// What a liar lists beside the real tags. None is a tag: in a URL the
/// first two name the victim's `latest` (from `<ns>/<name>` and from
/// `<ns>/<a>/<b>`), the others a query, an encoded path or a log line
/// that is a runner command.
fn lies(ns: &str) -> Vec<String> {
    vec![
        format!("../../../{ns}/victim/manifests/latest"),
        "../../victim/manifests/latest".into(),
        "x\n::stop-commands::pwn".into(),
        "%2e%2e%2fvictim".into(),
        "v1?digest=x".into(),
        ".hidden".into(),
    ]
}

/// Each lie is named in a warning, escaped, and no log line starts with the
/// command one carried.
fn assert_warned_about(ran: &Ran, lies: &[String]) {
    for lie in lies {
        let warning = format!("the tag \"{}\", which is not a tag", log_line(lie));
        assert!(
            ran.stderr.contains(&warning),
            "no warning {warning:?}\n{ran}"
        );
    }
    let injected = ran
        .stdout
        .lines()
        .chain(ran.stderr.lines())
        .find(|line| line.starts_with("::stop-commands::pwn"));
    assert_eq!(injected, None, "{ran}");
}

/// `METHOD path` of every request `server` got.
async fn requests(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

/// Every request stayed inside `/v2/<repository>/` and named no lie.
async fn assert_only_asked_about(server: &MockServer, repository: &str) {
    let inside = format!("/v2/{repository}/");
    let requests = requests(server).await;
    assert!(!requests.is_empty());
    for request in &requests {
        let (_, path) = request.split_once(' ').unwrap();
        assert!(
            path.starts_with(&inside) && !path.contains("victim") && !path.contains(".."),
            "{request} was asked (all: {requests:#?})"
        );
    }
}

/// `victim:latest` (image A) beside `victim:old` (image B) on the real
/// registry: B's blobs are in the victim's repository, so a manifest PUT
/// of B under `latest` there would succeed.
struct Victim {
    latest: Manifest,
    old: Manifest,
}

impl Victim {
    async fn push(ns: &str) -> Self {
        let registry = open();
        let repository = format!("{ns}/victim");
        let layer = |seed| vec![random_layer(seed, 4096)];
        let latest = push_image(&registry, &repository, "latest", "amd64", &layer(1)).await;
        let old = push_image(&registry, &repository, "old", "amd64", &layer(2)).await;
        Victim { latest, old }
    }

    /// `latest` still names image A.
    async fn assert_unmoved(&self, ns: &str) {
        let now = open()
            .manifest_digest(&format!("{ns}/victim"), "latest")
            .await
            .unwrap();
        assert_eq!(
            now.as_deref(),
            Some(self.latest.digest.as_str()),
            "victim:latest moved (image B is {})",
            self.old.digest
        );
    }
}

/// A source registry that lists `tags` for `repository` and answers every
/// manifest request, whatever its path, with `manifest`, and each of its
/// blobs (read from `blobs_from` on the real registry) by digest: what a
/// compromised or malicious registry can do.
async fn lying_source(
    repository: &str,
    tags: &[String],
    manifest: &Manifest,
    blobs_from: &str,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/{repository}/tags/list")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"name": repository, "tags": tags})),
        )
        .mount(&server)
        .await;
    Mock::given(path_regex("/manifests/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(manifest.bytes.clone(), OCI_MANIFEST)
                .insert_header("docker-content-digest", manifest.digest.as_str()),
        )
        .mount(&server)
        .await;
    let value: Value = serde_json::from_slice(&manifest.bytes).unwrap();
    let listed = value["layers"].as_array().unwrap().iter();
    for blob in listed.chain([&value["config"]]) {
        let digest = blob["digest"].as_str().unwrap();
        let size = blob["size"].as_u64().unwrap();
        let bytes = open().blob(blobs_from, digest, size).await.unwrap();
        Mock::given(path_regex(format!("/blobs/{digest}$")))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(bytes, "application/octet-stream"),
            )
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_from_a_registry_listing_path_tags_moves_no_other_tag() {
    let s = services();
    let ns = namespace();
    let victim = Victim::push(&ns).await;
    let lies = lies(&ns);
    let mut tags = vec!["v1".to_owned()];
    tags.extend(lies.iter().cloned());
    let source = lying_source("evil/src", &tags, &victim.old, &format!("{ns}/victim")).await;

    let ran = run(&[
        ("command", "mirror"),
        (
            "from",
            &format!("127.0.0.1:{}/evil/src", source.address().port()),
        ),
        ("to", &format!("{}/{ns}/dummy", s.registry_open)),
    ])
    .await;

    ran.assert_ok();
    victim.assert_unmoved(&ns).await;
    assert_eq!(
        copied(&ran).into_iter().collect::<Vec<_>>(),
        [("v1".to_owned(), json!(victim.old.digest))]
    );
    assert_warned_about(&ran, &lies);
    assert!(!ran.summary.contains("victim"), "{ran}");
    assert_only_asked_about(&source, "evil/src").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_of_an_archive_naming_path_tags_moves_no_other_tag() {
    let s = services();
    let ns = namespace();
    let victim = Victim::push(&ns).await;
    let workspace = tempfile::tempdir().unwrap();
    let backup = Action::github(workspace.path())
        .input("command", "backup")
        .input("from", &format!("{}/{ns}/victim:old", s.registry_open))
        .input("archive", "archive")
        .run_async()
        .await;
    backup.assert_ok();
    // The crafted archive: each lie names image B in index.json.
    let index_path = workspace.path().join("archive/index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"][0].clone();
    let lies = lies(&ns);
    for lie in &lies {
        let mut crafted = entry.clone();
        crafted["annotations"]["org.opencontainers.image.ref.name"] = json!(lie);
        index["manifests"].as_array_mut().unwrap().push(crafted);
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let ran = Action::github(workspace.path())
        .input("command", "restore")
        .input("archive", "archive")
        .input("to", &format!("{}/{ns}/dummy", s.registry_open))
        .run_async()
        .await;

    ran.assert_ok();
    victim.assert_unmoved(&ns).await;
    assert_eq!(
        copied(&ran).into_iter().collect::<Vec<_>>(),
        [("old".to_owned(), json!(victim.old.digest))]
    );
    assert_warned_about(&ran, &lies);
}

/// A registry that lies about its tags only: in front of the real open
/// registry, each tag listing gets `lies` added; every other request is
/// passed on as it came, and its answer back.
async fn lying_front(lies: Vec<String>) -> MockServer {
    let upstream = services().registry_open.clone();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("/tags/list$"))
        .respond_with(Listing {
            upstream: upstream.clone(),
            lies,
        })
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(Forward(upstream))
        .with_priority(u8::MAX)
        .mount(&server)
        .await;
    server
}

struct Forward(String);

impl Respond for Forward {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        ask(&self.0, request).template()
    }
}

struct Listing {
    upstream: String,
    lies: Vec<String>,
}

impl Respond for Listing {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut answer = ask(&self.upstream, request);
        if answer.status == 200 {
            let mut listing: Value = serde_json::from_slice(&answer.body).unwrap();
            let tags = listing["tags"].as_array_mut().unwrap();
            tags.extend(self.lies.iter().map(|lie| json!(lie)));
            answer.body = serde_json::to_vec(&listing).unwrap();
        }
        answer.template()
    }
}

/// An answer of the real registry.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn template(self) -> ResponseTemplate {
        let mut template = ResponseTemplate::new(self.status).set_body_bytes(self.body);
        for (name, value) in self.headers {
            template = template.insert_header(name.as_str(), value.as_str());
        }
        template
    }
}

/// `request` sent on to `upstream` as HTTP/1.0, which the registry answers
/// whole (no chunks) and then closes: the answer is whatever came.
fn ask(upstream: &str, request: &Request) -> Answer {
    let mut stream = TcpStream::connect(upstream).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let target = match request.url.query() {
        Some(query) => format!("{}?{query}", request.url.path()),
        None => request.url.path().to_owned(),
    };
    let mut head = format!(
        "{} {target} HTTP/1.0\r\nHost: {upstream}\r\n",
        request.method
    );
    for (name, value) in &request.headers {
        let skipped = ["host", "connection", "content-length", "transfer-encoding"];
        if !skipped.contains(&name.as_str()) {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&request.body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .filter(|(name, _)| {
            !["content-length", "connection", "transfer-encoding", "date"]
                .contains(&name.to_ascii_lowercase().as_str())
        })
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn sha(n: u32) -> String {
    registry_action::registry::sha256_digest(format!("hostile commit {n}").as_bytes())[7..47]
        .to_owned()
}

/// `<ns>/app` with SHA tags of images 0, 1, 2 (pushed an hour apart), on
/// the real registry.
async fn seed_app(ns: &str) -> Vec<String> {
    let registry = open();
    let seeder = Seeder::new(&registry, &format!("{ns}/app")).await;
    for n in 0..3 {
        seeder
            .image(n, 1_700_000_000 + i64::from(n) * 3600, &[&sha(n)])
            .await;
    }
    (0..3).map(sha).collect()
}

fn on(front: &MockServer, command: &str, ns: &str) -> Action {
    let workspace = tempfile::tempdir().unwrap().keep();
    Action::github(&workspace)
        .input("command", command)
        .input("registry", &format!("127.0.0.1:{}", front.address().port()))
        .input("namespace", ns)
        .input("images", "app")
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_counts_only_the_tags_a_lying_registry_really_has() {
    let ns = namespace();
    seed_app(&ns).await;
    let lies = lies(&ns);
    let front = lying_front(lies.clone()).await;

    let ran = on(&front, "usage", &ns).run_async().await;

    ran.assert_ok();
    let report: Value = serde_json::from_str(&ran.outputs["report"]).unwrap();
    let app = &report["repositories"][0];
    assert_eq!(
        (app["tags"].as_u64(), app["sha-tags"].as_u64()),
        (Some(3), Some(3))
    );
    assert_warned_about(&ran, &lies);
    assert_only_asked_about(&front, &format!("{ns}/app")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_of_a_lying_registry_deletes_only_what_it_really_has() {
    let ns = namespace();
    let shas = seed_app(&ns).await;
    let victim = Victim::push(&ns).await;
    let lies = lies(&ns);
    let front = lying_front(lies.clone()).await;

    // `*`: every listed name would be prunable, the lies too.
    let ran = on(&front, "cleanup", &ns)
        .input("keep", "1")
        .input("tag-pattern", "*")
        .run_async()
        .await;

    ran.assert_ok();
    victim.assert_unmoved(&ns).await;
    let left = open().tags(&format!("{ns}/app")).await.unwrap();
    assert_eq!(left, [shas[2].clone()], "{ran}");
    assert_warned_about(&ran, &lies);
    assert_only_asked_about(&front, &format!("{ns}/app")).await;
    let victim_tags = open().tags(&format!("{ns}/victim")).await.unwrap();
    assert_eq!(victim_tags.len(), 2, "{victim_tags:?}");
}

async fn usage_of(server: &MockServer) -> Ran {
    let workspace = tempfile::tempdir().unwrap();
    Action::github(workspace.path())
        .input("command", "usage")
        .input("registry", &server.address().to_string())
        .input("images", "acme/app")
        .run_async()
        .await
}

/// A listing of 50,000 names that aren't tags: the first ten are named,
/// one line counts the rest, and none is requested.
#[tokio::test]
async fn a_flood_of_names_that_are_not_tags_is_counted_not_logged() {
    let names: Vec<String> = (0..50_000).map(|i| format!("../{i}")).collect();
    let server = listing_registry(&names).await;
    let ran = usage_of(&server).await;
    ran.assert_ok();
    let warned = ran.stderr.matches("which is not a tag").count();
    assert_eq!(warned, 10, "{}", &ran.stderr[..ran.stderr.len().min(4000)]);
    assert!(
        ran.stderr.contains(&format!(
            "127.0.0.1:{}/acme/app lists 49990 more names that are not tags; skipped them too",
            server.address().port()
        )),
        "{}",
        &ran.stderr[..ran.stderr.len().min(4000)]
    );
    assert_eq!(requests(&server).await, ["GET /v2/acme/app/tags/list"]);
}

/// Names that aren't tags count toward the cap of 100,000 a listing may
/// hold: past it the run stops, as it would for tags.
#[tokio::test]
async fn names_that_are_not_tags_count_toward_the_listing_cap() {
    let names: Vec<String> = (0..=100_000).map(|i| format!(".{i}")).collect();
    let server = listing_registry(&names).await;
    let ran = usage_of(&server).await;
    ran.assert_failed("listed more than 100000 tags (or names that aren't tags) for acme/app");
}

/// Docker Hub's API listing names that aren't tags: skipped, never deleted.
#[tokio::test]
async fn docker_hub_tags_that_are_not_tags_are_skipped() {
    let hub = MockServer::start().await;
    let tag = |name: &str| {
        json!({"name": name, "digest": format!("sha256:{}", "ab".repeat(32)),
                                   "tag_last_pushed": "2024-01-01T00:00:00Z", "full_size": 1})
    };
    Mock::given(method("GET"))
        .and(path("/v2/namespaces/acme/repositories/app/tags"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "next": null,
            "results": [tag("v1"), tag("../../../v2/repositories/acme/victim/tags/latest"),
                        tag("x\n::stop-commands::pwn")],
        })))
        .mount(&hub)
        .await;
    let listed = registry_action::hub::Hub::new(&hub.uri())
        .unwrap()
        .tags("acme", "app")
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["v1"]);
}

/// Every input that names something is checked before anything runs: the
/// error names the input and what to write, exit 1, no outputs.
#[tokio::test(flavor = "multi_thread")]
async fn inputs_that_are_not_names_are_refused_naming_the_input() {
    let s = services();
    let workspace = tempfile::tempdir().unwrap();
    let app = workspace.path().join("ops/docker/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), "FROM scratch\n").unwrap();
    let usage = |inputs: &[(&str, &str)]| {
        let mut action = Action::github(workspace.path())
            .input("command", "usage")
            .input("registry", &s.registry_open)
            .input("namespace", "acme")
            .input("images", "app");
        for (name, value) in inputs {
            action = action.input(name, value);
        }
        action
    };
    let publish = |inputs: &[(&str, &str)]| {
        let mut action = Action::github(workspace.path())
            .input("command", "publish")
            .input("path", "ops/docker/app")
            .input("registry", &s.registry_open)
            .input("namespace", "acme")
            .input("push", "false");
        for (name, value) in inputs {
            action = action.input(name, value);
        }
        action
    };
    let cases: Vec<(Action, &str)> = vec![
        (
            usage(&[("registry", "https://x")]),
            "input `registry`: \"https://x\" is not accepted; a registry is a host name or IP address with an optional :port, e.g. ghcr.io or localhost:5000, without a scheme; write `registry: x`",
        ),
        (
            usage(&[("registry", "ghcr.io/acme")]),
            "write `registry: ghcr.io` (the path \"acme\" goes in `namespace` or `image`)",
        ),
        (
            usage(&[("namespace", "Acme")]),
            "input `namespace`: \"Acme\" is not accepted; \"Acme\" has upper-case letters, and OCI repository names are lower-case; write \"acme\"",
        ),
        (
            usage(&[("namespace", "zz/../hp")]),
            "input `namespace`: \"zz/../hp\" is not accepted; \"zz/../hp\" has the path component \"..\";",
        ),
        (
            usage(&[("namespace", "../../v2")]),
            "input `namespace`: \"../../v2\" is not accepted;",
        ),
        (
            usage(&[("namespace", "a b")]),
            "input `namespace`: \"a b\" is not accepted; \"a b\" has the path component \"a b\";",
        ),
        (
            usage(&[("namespace", "a\nb")]),
            "input `namespace`: \"a\\nb\" is not accepted;",
        ),
        (
            usage(&[("images", "Team/App")]),
            "`images`: \"Team/App\" has upper-case letters, and OCI repository names are lower-case; write \"team/app\"",
        ),
        (
            usage(&[("images", "zz/../hp")]),
            "`images`: \"zz/../hp\" has the path component \"..\";",
        ),
        (
            publish(&[("image", "Acme/App")]),
            "input `image`: \"Acme/App\" is not accepted; invalid image reference \"Acme/App\": repository \"Acme/App\" has upper-case letters, and OCI repository names are lower-case; write \"acme/app\"",
        ),
        (
            publish(&[("push", "true"), ("sha", "../../victim/manifests/latest")]),
            "\"../../victim/manifests/latest\" is not a full commit SHA",
        ),
        (
            publish(&[("platforms", "linux/amd64,linux/foo")]),
            "`platforms`: \"linux/foo\" is not a platform: linux images have the architectures 386, amd64, arm, arm64,",
        ),
        (
            publish(&[("platforms", "linux/x86_64")]),
            "not \"x86_64\"; write linux/amd64",
        ),
        (
            Action::github(workspace.path())
                .input("command", "mirror")
                .input("from", &format!("{}/acme/app", s.registry_open))
                .input("to", &format!("{}/acme/copy", s.registry_open))
                .input("tags", "v1\n../../x/manifests/latest"),
            "`tags`: \"../../x/manifests/latest\" is neither a tag nor a glob pattern;",
        ),
        (
            Action::github(workspace.path())
                .input("command", "mirror")
                .input("from", &format!("{}/acme/app", s.registry_basic))
                .input("from-username", &s.basic_user)
                .input("to", &format!("{}/acme/copy", s.registry_open)),
            "`from-username` is set but `from-password` is empty",
        ),
    ];
    for (action, message) in cases {
        let ran = action.run_async().await;
        ran.assert_failed(message);
    }
}

/// A source registry refusing the login names the inputs it came from.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_source_login_names_from_username_and_from_password() {
    let s = services();
    let ran = run_owned(&[
        ("command", "mirror".into()),
        ("from", format!("{}/{}/app", s.registry_basic, namespace())),
        ("from-username", s.basic_user.clone()),
        ("from-password", "not-the-password".into()),
        ("to", format!("{}/{}/copy", s.registry_open, namespace())),
    ])
    .await;
    ran.assert_failed("(401); check `from-username` and `from-password` (a token with pull rights for that repository)");
}
