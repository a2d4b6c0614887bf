//! `cleanup` against the real docker-registry: 120 commit-SHA tags with
//! distinct creation times, `latest` and versions sharing manifests with
//! old ones; what goes is computed here independently of the planner.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use registry_action::registry::auth::Credentials;
use registry_action::registry::{Registry, sha256_digest};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::images::Seeder;
use crate::support::proxy::{Fault, Proxy};
use crate::support::run::{Action, Ran};
use crate::support::services::services;

const T0: i64 = 1_700_000_000;
const IMAGES: u32 = 120;

fn sha(n: u32) -> String {
    sha256_digest(format!("commit {n}").as_bytes())[7..47].to_owned()
}

fn unique(name: &str) -> String {
    format!(
        "cleanup-{}/{name}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The repository the tests clean, and what a correct cleanup leaves.
struct Seeded {
    repository: String,
    all_tags: BTreeSet<String>,
    /// Tags of the manifests `keep: 50` deletes.
    doomed: BTreeSet<String>,
    doomed_digests: Vec<String>,
    freed: u64,
}

/// 120 SHA tags an hour apart; `latest` on image 10, `1.0.0` on image 5,
/// `1.1.0` on the newest.
async fn seed(registry: &Registry, repository: &str) -> Seeded {
    let seeder = Seeder::new(registry, repository).await;
    let mut seeded = Seeded {
        repository: repository.to_owned(),
        all_tags: BTreeSet::new(),
        doomed: BTreeSet::new(),
        doomed_digests: Vec::new(),
        freed: 0,
    };
    for n in 0..IMAGES {
        let mut tags = vec![sha(n)];
        match n {
            5 => tags.push("1.0.0".into()),
            10 => tags.push("latest".into()),
            n if n == IMAGES - 1 => tags.push("1.1.0".into()),
            _ => {}
        }
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let image = seeder.image(n, T0 + i64::from(n) * 3600, &refs).await;
        seeded.all_tags.extend(tags.iter().cloned());
        // Newest 50 SHA tags are 70..120; 5 and 10 share a protected tag.
        if n < IMAGES - 50 && n != 5 && n != 10 {
            seeded.doomed.insert(sha(n));
            seeded.doomed_digests.push(image.manifest.digest.clone());
            seeded.freed += image.own_bytes;
        }
    }
    seeded
}

fn cleanup(registry: &str, repository: &str) -> Action {
    let workspace = tempfile::tempdir().unwrap().keep();
    let (namespace, name) = repository.split_once('/').unwrap();
    Action::github(&workspace)
        .input("command", "cleanup")
        .input("registry", registry)
        .input("namespace", namespace)
        .input("images", name)
        .input("keep", "50")
}

async fn tags(registry: &Registry, repository: &str) -> BTreeSet<String> {
    registry
        .tags(repository)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn json(ran: &Ran, output: &str) -> Value {
    serde_json::from_str(
        ran.outputs
            .get(output)
            .unwrap_or_else(|| panic!("no {output}\n{ran}")),
    )
    .unwrap()
}

fn deleted_tags(ran: &Ran, output: &str) -> BTreeSet<String> {
    json(ran, output)
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tag"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_50_of_120_deletes_exactly_the_old_unshared_manifests_once() {
    let s = services();
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let seeded = seed(&registry, &unique("app")).await;
    assert_eq!(seeded.doomed.len(), 68);

    let ran = cleanup(&s.registry_open, &seeded.repository)
        .run_async()
        .await;
    ran.assert_ok();
    let left = tags(&registry, &seeded.repository).await;
    let expected: BTreeSet<String> = seeded
        .all_tags
        .difference(&seeded.doomed)
        .cloned()
        .collect();
    assert_eq!(left, expected);
    for digest in &seeded.doomed_digests {
        assert!(
            registry
                .manifest(&seeded.repository, digest)
                .await
                .unwrap()
                .is_none(),
            "{digest} still there"
        );
    }
    assert_eq!(deleted_tags(&ran, "deleted"), seeded.doomed);
    assert_eq!(
        json(&ran, "deleted").as_array().unwrap()[0]["repository"],
        seeded.repository.as_str()
    );
    assert_eq!(ran.outputs["kept"], expected.len().to_string());
    assert_eq!(ran.outputs["freed-bytes"], seeded.freed.to_string());
    assert!(ran.summary.contains("| 68 | 68 | 55 |"), "{ran}");
    assert!(
        ran.summary.contains(&format!(
            "- kept, same manifest as kept `latest` (deleting it would delete both) (1): `{}`",
            sha(10)
        )),
        "{ran}"
    );
    assert!(
        ran.summary.contains("- kept, among the newest `keep` (50)"),
        "{ran}"
    );

    let again = cleanup(&s.registry_open, &seeded.repository)
        .run_async()
        .await;
    again.assert_ok();
    assert_eq!(json(&again, "deleted"), Value::Array(Vec::new()), "{again}");
    assert_eq!(tags(&registry, &seeded.repository).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_deletes_nothing_and_says_what_would_go() {
    let s = services();
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let seeded = seed(&registry, &unique("dry")).await;
    let ran = cleanup(&s.registry_open, &seeded.repository)
        .input("dry-run", "true")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(tags(&registry, &seeded.repository).await, seeded.all_tags);
    assert_eq!(json(&ran, "deleted"), Value::Array(Vec::new()));
    assert_eq!(deleted_tags(&ran, "planned"), seeded.doomed);
    assert_eq!(ran.outputs["freed-bytes"], seeded.freed.to_string());
    assert!(
        ran.summary.contains("Dry run: nothing was deleted"),
        "{ran}"
    );
    assert!(ran.summary.contains("68 tags would delete"), "{ran}");
}

/// A loopback proxy to `upstream` that lets `allowed` manifest DELETEs
/// through and holds every later one: the run is stuck at a known point.
async fn delete_gate(upstream: String, allowed: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = client_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buffer[..n]);
                    let deletes = text.matches("DELETE /v2/").count();
                    if deletes > 0
                        && counter.fetch_add(deletes, Ordering::SeqCst) + deletes > allowed
                    {
                        // Held: never forwarded.
                        std::future::pending::<()>().await;
                    }
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (address, seen)
}

/// Five SHA tags 60, 40, 20, 10 and 1 days old, `pr-7` (50 days), `pr-8`
/// (30 days) and `1.0.0` (70 days), each on an image of its own; the tags.
async fn seed_by_age(registry: &Registry, repository: &str) -> BTreeSet<String> {
    let now = jiff::Timestamp::now().as_second();
    let seeder = Seeder::new(registry, repository).await;
    let ages = [
        (sha(0), 60),
        (sha(1), 40),
        (sha(2), 20),
        (sha(3), 10),
        (sha(4), 1),
        ("pr-7".into(), 50),
        ("pr-8".into(), 30),
        ("1.0.0".into(), 70),
    ];
    for (n, (tag, days)) in (0..).zip(&ages) {
        seeder.image(n, now - days * 86_400, &[tag]).await;
    }
    ages.into_iter().map(|(tag, _)| tag).collect()
}

/// The summary's line for the tags kept for `reason`, in tag order.
fn kept_line(reason: &str, tags: &[String]) -> String {
    let mut tags: Vec<String> = tags.iter().map(|t| format!("`{t}`")).collect();
    tags.sort();
    format!("- kept, {reason} ({}): {}", tags.len(), tags.join(", "))
}

/// A label, the inputs beside `keep: 1`, the tags deleted, a line of the
/// summary.
type InputsCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<String>, String);

#[tokio::test(flavor = "multi_thread")]
async fn protect_tag_pattern_and_older_than_delete_exactly_what_they_say() {
    let s = services();
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let protect_two = format!("pr-8\n{}", sha(0));
    let (pr7, pr8) = (String::from("pr-7"), String::from("pr-8"));
    let younger = "younger than `older-than`";
    let cases: [InputsCase; 4] = [
        (
            "older-than",
            vec![("older-than", "30d")],
            vec![sha(0), sha(1)],
            kept_line(younger, &[sha(2), sha(3)]),
        ),
        (
            "tag-pattern",
            vec![("tag-pattern", "pr-*")],
            vec![pr7.clone()],
            kept_line(
                "not matched by `tag-pattern`",
                &[sha(0), sha(1), sha(2), sha(3), sha(4)],
            ),
        ),
        (
            "protect",
            vec![("tag-pattern", "*"), ("protect", "pr-*")],
            vec![sha(0), sha(1), sha(2), sha(3)],
            kept_line(
                "protected: protect pattern `pr-*`",
                &[pr7.clone(), pr8.clone()],
            ),
        ),
        (
            "all three",
            vec![
                ("tag-pattern", "*"),
                ("protect", &protect_two),
                ("older-than", "15d"),
            ],
            // `sha(0)` and `pr-8` would go but for `protect`.
            vec![sha(1), sha(2), pr7.clone()],
            kept_line(younger, &[sha(3)]),
        ),
    ];
    for (label, inputs, deleted, line) in cases {
        let repository = unique("inputs");
        let all = seed_by_age(&registry, &repository).await;
        let mut action = cleanup(&s.registry_open, &repository).input("keep", "1");
        for (name, value) in inputs {
            action = action.input(name, value);
        }
        let ran = action.run_async().await;
        ran.assert_ok();
        let deleted: BTreeSet<String> = deleted.into_iter().collect();
        let expected: BTreeSet<String> = all.difference(&deleted).cloned().collect();
        assert_eq!(
            tags(&registry, &repository).await,
            expected,
            "{label}: what remains\n{ran}"
        );
        assert_eq!(deleted_tags(&ran, "deleted"), deleted, "{label}\n{ran}");
        assert!(ran.summary.contains(&line), "{label}: {line}\n{ran}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_midway_then_rerun_converges() {
    let s = services();
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let seeded = seed(&registry, &unique("killed")).await;
    let (gate, seen) = delete_gate(s.registry_open.clone(), 10).await;

    let action = cleanup(&gate, &seeded.repository).input("concurrency", "1");
    let mut child = action
        .command()
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if seen.load(Ordering::SeqCst) > 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.load(Ordering::SeqCst) > 10,
        "the run never reached its 11th delete"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Midway: ten doomed manifests gone, everything kept still there.
    let left = tags(&registry, &seeded.repository).await;
    let gone: BTreeSet<String> = seeded.all_tags.difference(&left).cloned().collect();
    assert_eq!(gone.len(), 10, "{gone:?}");
    assert!(gone.is_subset(&seeded.doomed), "{gone:?}");

    let rerun = cleanup(&s.registry_open, &seeded.repository)
        .run_async()
        .await;
    rerun.assert_ok();
    let expected: BTreeSet<String> = seeded
        .all_tags
        .difference(&seeded.doomed)
        .cloned()
        .collect();
    assert_eq!(tags(&registry, &seeded.repository).await, expected);
    let rest: BTreeSet<String> = seeded.doomed.difference(&gone).cloned().collect();
    assert_eq!(deleted_tags(&rerun, "deleted"), rest);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_asks_for_delete_and_the_password_never_shows() {
    let s = services();
    let credentials = || {
        Some(Credentials {
            username: s.token_user.clone(),
            password: s.token_password.clone(),
        })
    };
    let registry = Registry::new(&s.registry_token, credentials()).unwrap();
    let repository = unique("token");
    let seeder = Seeder::new(&registry, &repository).await;
    for n in 0..4 {
        seeder.image(n, T0 + i64::from(n) * 60, &[&sha(n)]).await;
    }
    let ran = cleanup(&s.registry_token, &repository)
        .input("keep", "1")
        .input("username", &s.token_user)
        .input("password", &s.token_password)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(tags(&registry, &repository).await, BTreeSet::from([sha(3)]));
    ran.assert_secret_masked_only(&s.token_password);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_fail_before_any_request() {
    let s = services();
    let counted = Proxy::start(&s.registry_open, Fault::DieAfter(u64::MAX));
    for (input, value, error) in [
        (
            "older-than",
            "a month",
            "`older-than`: \"a month\" is not an age",
        ),
        (
            "protect",
            "release-[",
            "`protect`: \"release-[\" is not a glob",
        ),
        (
            "tag-pattern",
            "pr-[",
            "`tag-pattern`: \"pr-[\" is not a glob",
        ),
    ] {
        cleanup(&counted.address, "acme/app")
            .input(input, value)
            .run_async()
            .await
            .assert_failed(error);
    }
    assert_eq!(counted.connections(), 0, "no request reached the registry");

    // The count sees a run that does ask the registry.
    cleanup(&counted.address, &unique("counted"))
        .input("dry-run", "true")
        .run_async()
        .await;
    assert!(counted.connections() > 0, "the proxy counts connections");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_refuses_deletes_is_named_with_the_setting_to_change() {
    let own = crate::support::own_registry::OwnRegistry::start(false);
    let registry = Registry::new(&own.address, None).unwrap();
    let repository = unique("nodelete");
    let seeder = Seeder::new(&registry, &repository).await;
    for n in 0..3 {
        seeder.image(n, T0 + i64::from(n) * 60, &[&sha(n)]).await;
    }
    let ran = cleanup(&own.address, &repository)
        .input("keep", "1")
        .run_async()
        .await;
    ran.assert_failed("does not allow deletes (405");
    ran.assert_failed("REGISTRY_STORAGE_DELETE_ENABLED=true");
    assert_eq!(tags(&registry, &repository).await.len(), 3);
}
