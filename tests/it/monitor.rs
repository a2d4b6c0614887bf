//! `monitor` against the real registries, a delaying proxy, a registry
//! whose stored bytes were damaged, and a real Trivy on an offline test
//! database; asserted on the outputs, the report and the exit code.

use std::time::{Duration, Instant};

use registry_action::registry::Registry;
use registry_action::registry::auth::Credentials;
use serde_json::{Value, json};

use crate::support::images::{Seeder, put_image, tar_gz, upload};
use crate::support::mermaid;
use crate::support::own_registry::OwnRegistry;
use crate::support::proxy::{Fault, Proxy};
use crate::support::run::{Action, Ran};
use crate::support::secret::assert_absent;
use crate::support::services::services;
use crate::support::trivy::trivy;

fn namespace(what: &str) -> String {
    format!(
        "mon-{what}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn monitor(workspace: &std::path::Path, registry: &str, images: &[&str]) -> Action {
    Action::github(workspace)
        .input("command", "monitor")
        .input("registry", registry)
        .input("images", &images.join("\n"))
        .input("scanner", "none")
        .input("report-file", "monitor.json")
}

fn alerts(ran: &Ran) -> Vec<Value> {
    let text = ran
        .outputs
        .get("alerts")
        .unwrap_or_else(|| panic!("no alerts output\n{ran}"));
    serde_json::from_str::<Vec<Value>>(text).unwrap()
}

/// `(level, check, subject)` of each alert, in output order.
fn kinds(ran: &Ran) -> Vec<(String, String, String)> {
    alerts(ran)
        .iter()
        .map(|a| {
            let field = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (field("level"), field("check"), field("subject"))
        })
        .collect()
}

fn messages(ran: &Ran) -> Vec<String> {
    alerts(ran)
        .iter()
        .map(|a| a["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A critical alert: `status` says so, and the step failed after writing
/// its outputs.
fn assert_critical(ran: &Ran) {
    assert_eq!(ran.code, 1, "{ran}");
    assert_eq!(ran.outputs["status"], "critical", "{ran}");
}

fn kind(level: &str, check: &str, subject: &str) -> (String, String, String) {
    (level.into(), check.into(), subject.into())
}

fn report(workspace: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(workspace.join("monitor.json")).unwrap()).unwrap()
}

async fn seed(registry: &Registry, repositories: &[&str]) {
    for (n, repository) in repositories.iter().enumerate() {
        let seeder = Seeder::new(registry, repository).await;
        seeder
            .image(n as u32, 1_700_000_000 + n as i64, &["latest"])
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_images_are_ok_and_growth_since_the_previous_report_warns() {
    let s = services();
    let ns = namespace("growth");
    let (a, b) = (format!("{ns}/a"), format!("{ns}/b"));
    let registry = Registry::new(&s.registry_open, None).unwrap();
    seed(&registry, &[&a, &b]).await;
    let workspace = tempfile::tempdir().unwrap();

    let first = monitor(workspace.path(), &s.registry_open, &[&a, &b])
        .run_async()
        .await;
    first.assert_ok();
    assert_eq!(first.outputs["status"], "ok", "{first}");
    assert_eq!(alerts(&first), Vec::<Value>::new());
    let today = report(workspace.path());
    let rows = today["images"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(
            (&row["auth"], &row["pull"], &row["storage"], &row["scan"]),
            (&json!("ok"), &json!("ok"), &json!("ok"), &Value::Null),
            "{row}"
        );
    }
    // Config, base layer and own layer each; the base layer, the same
    // bytes in both repositories, travelled once.
    assert_eq!(
        (rows[0]["blobs"].as_u64(), rows[0]["fetched"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (rows[1]["blobs"].as_u64(), rows[1]["fetched"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(
        first
            .summary
            .contains(&format!("| `{a}` | ✅ ok | ✅ ok (")),
        "{first}"
    );
    assert!(first.summary.contains("No alerts."), "{first}");
    // The distribution API counts no pulls: said once, not per image.
    assert_eq!(
        first.summary.matches("keeps no pull counts").count(),
        1,
        "{first}"
    );
    assert_eq!(rows[0]["downloads"], Value::Null);

    // A report from 30 days ago holding half of today: 100 % a month.
    let total = today["total-bytes"].as_u64().unwrap();
    let mut previous = today.clone();
    let month_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(30 * 24);
    previous["generated"] = json!(month_ago.round(jiff::Unit::Second).unwrap().to_string());
    previous["total-bytes"] = json!(total / 2);
    previous["history"] = json!([{"generated": previous["generated"], "total-bytes": total / 2}]);
    std::fs::write(
        workspace.path().join("previous.json"),
        serde_json::to_vec(&previous).unwrap(),
    )
    .unwrap();
    let second = monitor(workspace.path(), &s.registry_open, &[&a, &b])
        .input("previous-report", "previous.json")
        .run_async()
        .await;
    second.assert_ok();
    assert_eq!(second.outputs["status"], "warning", "{second}");
    assert_eq!(
        kinds(&second),
        [kind("warning", "storage", &s.registry_open)]
    );
    let message = messages(&second)[0].clone();
    assert!(
        message.starts_with("storage grows 100% a month (")
            && message.ends_with("over `max-growth` (10%)"),
        "{message}"
    );
    assert!(second.stdout.contains("::warning::storage · "), "{second}");
    let report_file = second.outputs["report-file"].clone();
    assert!(report_file.ends_with("monitor.json"), "{second}");
    let history = report(workspace.path())["history"].clone();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history[1]["total-bytes"].as_u64(), Some(total));
    assert!(
        second.summary.contains("```mermaid\nxychart-beta\n"),
        "{second}"
    );
    assert_eq!(
        mermaid::check(&second.summary),
        Ok(vec!["ok xychart".to_owned()])
    );
}

#[test]
fn mermaids_parser_refuses_a_broken_chart() {
    let broken = "```mermaid\nxychart-beta\n    x-axis [a b]\n    line [1, x]\n```\n";
    let lines = mermaid::check(broken).unwrap_err();
    assert!(
        lines[0].starts_with("error Parse error on line 3"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_is_critical_names_the_registry_and_never_shows_the_password() {
    let s = services();
    let ns = namespace("auth");
    let app = format!("{ns}/app");
    let registry = Registry::new(
        &s.registry_basic,
        Some(Credentials {
            username: s.basic_user.clone(),
            password: s.basic_password.clone(),
        }),
    )
    .unwrap();
    seed(&registry, &[&app]).await;
    let workspace = tempfile::tempdir().unwrap();

    let allowed = monitor(workspace.path(), &s.registry_basic, &[&app])
        .input("username", &s.basic_user)
        .input("password", &s.basic_password)
        .input("check-push", "true")
        .run_async()
        .await;
    allowed.assert_ok();
    assert_eq!(allowed.outputs["status"], "ok", "{allowed}");
    allowed.assert_secret_masked_only(&s.basic_password);

    let wrong = "not-the-password-4711";
    let refused = monitor(workspace.path(), &s.registry_basic, &[&app])
        .input("username", &s.basic_user)
        .input("password", wrong)
        .input("check-push", "true")
        .run_async()
        .await;
    assert_critical(&refused);
    assert_eq!(
        kinds(&refused),
        [
            kind("critical", "auth", &app),
            kind("critical", "auth", &app)
        ]
    );
    let messages = messages(&refused);
    assert_eq!(
        messages[0],
        format!(
            "{} refused to let `{app}` be pulled (401 unauthorized): renew the token in the secret passed as `password`, or give the account (`username`) that right",
            s.registry_basic
        )
    );
    assert!(
        messages[1].contains("be pushed (401 unauthorized)"),
        "{refused}"
    );
    assert!(refused.stdout.contains("::error::auth · "), "{refused}");
    assert!(
        refused
            .summary
            .contains(&format!("| `{app}` | ❌ critical | — | — | — |")),
        "{refused}"
    );
    refused.assert_secret_masked_only(wrong);
    let written = std::fs::read_to_string(workspace.path().join("monitor.json")).unwrap();
    for secret in [wrong, &s.basic_password] {
        assert_absent(&written, secret, "monitor.json");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_flow_proves_pull_and_push_and_a_refused_token_is_critical() {
    let s = services();
    let app = format!("{}/app", namespace("token"));
    let credentials = Credentials {
        username: s.token_user.clone(),
        password: s.token_password.clone(),
    };
    seed(
        &Registry::new(&s.registry_token, Some(credentials)).unwrap(),
        &[&app],
    )
    .await;
    let workspace = tempfile::tempdir().unwrap();
    let run = |password: &str| {
        monitor(workspace.path(), &s.registry_token, &[&app])
            .input("username", &s.token_user)
            .input("password", password)
            .input("check-push", "true")
            .run_async()
    };

    let allowed = run(&s.token_password).await;
    allowed.assert_ok();
    assert_eq!(allowed.outputs["status"], "ok", "{allowed}");
    allowed.assert_secret_masked_only(&s.token_password);

    let wrong = "expired-token-0815";
    let refused = run(wrong).await;
    assert_critical(&refused);
    assert_eq!(
        messages(&refused)[0],
        format!(
            "{} refused to let `{app}` be pulled (401 unauthorized): renew the token in the secret passed as `password`, or give the account (`username`) that right",
            s.registry_token
        )
    );
    refused.assert_secret_masked_only(wrong);
}

/// How long the hung registry takes to answer anything.
const HUNG: Duration = Duration::from_secs(10);
/// The run against it, from start to exit: the 1 s `request-timeout` plus
/// what starting the binary and reporting may take on a busy machine (the
/// whole run takes about 1.2 s on an idle one); well short of [`HUNG`].
const HUNG_RUN_BOUND: Duration = Duration::from_secs(3);

/// A signature whose image is gone: `usage` proves it with a `HEAD` of
/// the image's digest; `monitor`, which reports no orphans, sends none.
/// Both go through a proxy that notes every request.
#[tokio::test(flavor = "multi_thread")]
async fn monitor_sends_no_orphan_checks_that_usage_does() {
    let s = services();
    let app = format!("{}/app", namespace("orphan"));
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let seeder = Seeder::new(&registry, &app).await;
    seeder.image(0, 1_700_000_000, &["latest"]).await;
    let gone = format!("sha256:{}", "e0".repeat(32));
    let signature = format!("{}.sig", gone.replacen(':', "-", 1));
    seeder.image(1, 1_700_000_001, &[&signature]).await;
    let proxy = Proxy::start(&s.registry_open, Fault::None);
    let check = format!("HEAD /v2/{app}/manifests/{gone}");
    let workspace = tempfile::tempdir().unwrap();

    let ran = monitor(workspace.path(), &proxy.address, &[&app])
        .run_async()
        .await;
    ran.assert_ok();
    let monitored = proxy.requests();
    assert!(
        monitored.contains(&format!("GET /v2/{app}/manifests/{signature}")),
        "the storage was measured, its signature tag read: {monitored:?}"
    );
    assert!(!monitored.contains(&check), "{monitored:?}");
    let measured = &report(workspace.path())["repositories"][0];
    assert_eq!(
        (&measured["signatures"], measured.get("orphans")),
        (&json!(1), None),
        "{measured}"
    );

    let usage = Action::github(workspace.path())
        .input("command", "usage")
        .input("registry", &proxy.address)
        .input("images", &app)
        .run_async()
        .await;
    usage.assert_ok();
    let used = proxy.requests()[monitored.len()..].to_vec();
    assert_eq!(used.iter().filter(|r| **r == check).count(), 1, "{used:?}");
    let report: Value = serde_json::from_str(&usage.outputs["report"]).unwrap();
    assert_eq!(report["repositories"][0]["orphans"], json!(1), "{usage}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_registry_warns_and_a_hung_one_fails_within_the_request_timeout() {
    let s = services();
    let ns = namespace("slow");
    let app = format!("{ns}/app");
    seed(&Registry::new(&s.registry_open, None).unwrap(), &[&app]).await;
    let workspace = tempfile::tempdir().unwrap();

    // Every answer waits 600 ms: a pull of three blobs after its manifest
    // can't take less than 1.2 s.
    let slow = Proxy::start(&s.registry_open, Fault::Delay(Duration::from_millis(600)));
    let ran = monitor(workspace.path(), &slow.address, &[&app])
        .input("max-pull-time", "1s")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["status"], "warning", "{ran}");
    assert_eq!(kinds(&ran), [kind("warning", "pull", &app)]);
    let message = messages(&ran)[0].clone();
    assert!(
        message.starts_with(&format!("pulling `{app}:latest` took "))
            && message.ends_with("over `max-pull-time` (1 s)"),
        "{message}"
    );

    // Answers that come after the request timeout: the image fails, the
    // run ends, long before the first answer would have come.
    let hung = Proxy::start(&s.registry_open, Fault::Delay(HUNG));
    let started = Instant::now();
    let ran = monitor(workspace.path(), &hung.address, &[&app])
        .input("request-timeout", "1s")
        .run_async()
        .await;
    let took = started.elapsed();
    assert_critical(&ran);
    assert!(
        took >= Duration::from_secs(1) && took < HUNG_RUN_BOUND,
        "a run with `request-timeout: 1s` against a registry answering after {HUNG:?} took {took:?}"
    );
    assert_eq!(kinds(&ran), [kind("critical", "pull", &app)]);
    let message = messages(&ran)[0].clone();
    assert!(
        message.starts_with(&format!(
            "pulling `{app}:latest` failed: {} didn't answer in full within 1s for http://{}/v2/{app}/",
            hung.address, hung.address
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_registry_and_a_missing_image_are_reported_per_image() {
    let s = services();
    let ns = namespace("dead");
    let (app, gone) = (format!("{ns}/app"), format!("{ns}/never-published"));
    seed(&Registry::new(&s.registry_open, None).unwrap(), &[&app]).await;
    let workspace = tempfile::tempdir().unwrap();

    let ran = monitor(workspace.path(), &s.registry_open, &[&app, &gone])
        .run_async()
        .await;
    assert_critical(&ran);
    assert_eq!(kinds(&ran), [kind("critical", "pull", &gone)]);
    assert!(
        messages(&ran)[0].starts_with(&format!(
            "`{gone}:latest` is not in {}: pulls of it fail",
            s.registry_open
        )),
        "{ran}"
    );
    let rows = report(workspace.path())["images"].clone();
    assert_eq!(
        (rows[0]["pull"].as_str(), rows[1]["pull"].as_str()),
        (Some("ok"), Some("critical"))
    );

    // Nothing listens on port 9.
    let ran = monitor(workspace.path(), "127.0.0.1:9", &[&app, &gone])
        .run_async()
        .await;
    assert_critical(&ran);
    assert_eq!(
        kinds(&ran),
        [
            kind("critical", "pull", &app),
            kind("critical", "pull", &gone)
        ]
    );
    assert!(
        ran.stderr.contains("monitor raised 2 critical alert(s)")
            || ran.stdout.contains("monitor raised 2 critical alert(s)"),
        "{ran}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_whose_bytes_dont_match_its_digest_fails_the_pull() {
    let own = OwnRegistry::start(true);
    let ns = namespace("digest");
    let app = format!("{ns}/app");
    let registry = Registry::new(&own.address, None).unwrap();
    let seeder = Seeder::new(&registry, &app).await;
    let image = seeder.image(1, 1_700_000_000, &["latest"]).await;
    let own_layer = image.manifest.contents().unwrap();
    let registry_action::registry::contents::Contents::Image { layers, .. } = own_layer else {
        panic!("an image manifest");
    };
    let layer = layers.last().unwrap().digest.clone();
    // The same length, other bytes: what a failing disk hands back.
    let data = own.blob_data(&layer);
    let size = std::fs::metadata(&data).unwrap().len() as usize;
    std::fs::write(&data, vec![b'x'; size]).unwrap();
    let workspace = tempfile::tempdir().unwrap();

    let ran = monitor(workspace.path(), &own.address, &[&app])
        .run_async()
        .await;
    assert_critical(&ran);
    assert_eq!(kinds(&ran), [kind("critical", "pull", &app)]);
    let message = messages(&ran)[0].clone();
    assert!(
        message.contains(&format!(
            "sent blob {layer} of {app} whose digest is sha256:"
        )) && message.contains(&format!("not {layer}; refusing it")),
        "{message}"
    );
}

/// An image whose one layer is a real gzipped tar of an Alpine 3.19
/// package database listing `packages`: what Trivy reads.
async fn push_alpine(registry: &Registry, repository: &str, packages: &[(&str, &str)]) {
    let db: String = packages
        .iter()
        .map(|(name, version)| format!("P:{name}\nV:{version}\nA:x86_64\n\n"))
        .collect();
    let (layer, diff_id) = tar_gz(&[
        ("etc/alpine-release", b"3.19.1\n"),
        (
            "etc/os-release",
            b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n",
        ),
        ("lib/apk/db/installed", db.as_bytes()),
    ]);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let layer = upload(registry, repository, layer).await;
    put_image(registry, repository, config, &[layer], &["latest"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_critical_advisory_in_a_published_image_is_critical() {
    let s = services();
    let ns = namespace("scan");
    let (vulnerable, clean) = (format!("{ns}/vulnerable"), format!("{ns}/clean"));
    let registry = Registry::new(&s.registry_open, None).unwrap();
    // busybox 1.36.1-r15 has the test database's critical advisory and
    // libcrypto3 its high one; zlib 1.3.1-r1 is the fixed version.
    push_alpine(
        &registry,
        &vulnerable,
        &[("busybox", "1.36.1-r15"), ("libcrypto3", "3.1.4-r0")],
    )
    .await;
    push_alpine(&registry, &clean, &[("zlib", "1.3.1-r1")]).await;
    let workspace = tempfile::tempdir().unwrap();

    let ran = trivy()
        .around(monitor(
            workspace.path(),
            &s.registry_open,
            &[&vulnerable, &clean],
        ))
        .input("scanner", "trivy")
        .run_async()
        .await;
    assert_critical(&ran);
    assert_eq!(
        kinds(&ran),
        [
            kind("critical", "scan", &vulnerable),
            kind("warning", "scan", &vulnerable),
            kind("warning", "scan", &s.registry_open),
        ]
    );
    let messages = messages(&ran);
    assert!(
        messages[0].starts_with(&format!(
            "`{vulnerable}:latest` has 1 critical finding(s): TEST-2026-0001;"
        )),
        "{ran}"
    );
    assert!(
        messages[1].contains("1 high finding(s): TEST-2026-0002"),
        "{ran}"
    );
    assert_eq!(
        messages[2],
        "1 of 2 images pass their rescan (50%), under `min-pass-rate` (95%)"
    );
    let written = report(workspace.path());
    assert_eq!(written["pass-rate"].as_f64(), Some(0.5));
    assert_eq!(
        (
            written["images"][0]["scan"].as_str(),
            written["images"][1]["scan"].as_str()
        ),
        (Some("ok"), Some("critical")),
        "images are listed sorted: clean, then vulnerable"
    );
    assert!(
        ran.summary.contains("**Pulled:** 2 of 2 · **stored:** "),
        "{ran}"
    );
    assert!(ran.summary.contains(" · **scan pass rate:** 50%"), "{ran}");
}

#[test]
fn bad_thresholds_name_the_input() {
    let workspace = tempfile::tempdir().unwrap();
    for (input, value, expected) in [
        (
            "max-growth",
            "ten",
            "input `max-growth`: \"ten\" is not accepted; \"ten\" is not a percentage",
        ),
        (
            "max-storage",
            "50 parsecs",
            "input `max-storage`: \"50 parsecs\" is not accepted; \"50 parsecs\" is not a size",
        ),
        (
            "max-pull-time",
            "soon",
            "input `max-pull-time`: \"soon\" is not accepted; \"soon\" is not a duration",
        ),
        (
            "request-timeout",
            "0s",
            "input `request-timeout`: \"0s\" is not accepted; \"0s\" is no time at all: give at least `1s`",
        ),
    ] {
        let ran = monitor(workspace.path(), "127.0.0.1:9", &["acme/app"])
            .input(input, value)
            .run();
        ran.assert_failed(expected);
    }
}

/// Older builds list the empty layer more than once: one fetch, no race.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_listing_one_layer_twice_pulls_cleanly() {
    let s = services();
    let ns = namespace("twice");
    let app = format!("{ns}/app");
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let (layer, diff_id) = tar_gz(&[("etc/empty", b"")]);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]},
    }))
    .unwrap();
    let layer = upload(&registry, &app, layer).await;
    put_image(
        &registry,
        &app,
        config,
        &[layer.clone(), layer],
        &["latest"],
    )
    .await;
    let workspace = tempfile::tempdir().unwrap();

    let ran = monitor(workspace.path(), &s.registry_open, &[&app])
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["status"], "ok", "{ran}");
    assert_eq!(kinds(&ran), []);
}
