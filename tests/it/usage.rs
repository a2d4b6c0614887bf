//! `usage` against the real docker-registry: counts, bytes with the shared
//! layer counted once, and growth against the report of an earlier run.

use registry_action::registry::{Registry, sha256_digest};
use serde_json::Value;

use crate::support::images::{BASE_LAYER, Seeder};
use crate::support::run::{Action, Ran};
use crate::support::services::services;

fn sha(n: u32) -> String {
    sha256_digest(format!("usage commit {n}").as_bytes())[7..47].to_owned()
}

fn usage(workspace: &std::path::Path, registry: &str, repository: &str) -> Action {
    Action::github(workspace)
        .input("command", "usage")
        .input("registry", registry)
        .input("images", repository)
        .input("report-file", "usage.json")
}

fn report(ran: &Ran) -> Value {
    serde_json::from_str(ran.outputs.get("report").unwrap_or_else(|| panic!("{ran}"))).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_shared_layers_once_and_measures_growth() {
    let s = services();
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let repository = format!(
        "usage-{}/app",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let seeder = Seeder::new(&registry, &repository).await;
    let mut own = 0;
    let mut biggest = (0, String::new());
    for n in 0..5 {
        let tags = if n == 4 {
            vec![sha(n), "latest".into()]
        } else {
            vec![sha(n)]
        };
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let image = seeder.image(n, 1_700_000_000 + i64::from(n), &refs).await;
        own += image.own_bytes;
        biggest = biggest.max((image.own_bytes, image.manifest.digest.clone()));
    }
    let workspace = tempfile::tempdir().unwrap();
    let first = usage(workspace.path(), &s.registry_open, &repository)
        .run_async()
        .await;
    first.assert_ok();
    let r = &report(&first)["repositories"][0];
    assert_eq!(r["repository"], repository.as_str());
    assert_eq!(
        (
            r["tags"].as_u64(),
            r["sha-tags"].as_u64(),
            r["manifests"].as_u64()
        ),
        (Some(6), Some(5), Some(5))
    );
    assert_eq!(r["bytes"].as_u64(), Some(own + BASE_LAYER as u64));
    assert_eq!(r["largest"][0]["digest"], biggest.1.as_str());
    assert_eq!(
        first.outputs["total-bytes"],
        (own + BASE_LAYER as u64).to_string()
    );
    assert!(
        first
            .summary
            .contains(&format!("| `{repository}` | 6 | 5 | 5 |")),
        "{first}"
    );
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.path().join("usage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written, report(&first));

    std::fs::rename(
        workspace.path().join("usage.json"),
        workspace.path().join("before.json"),
    )
    .unwrap();
    let mut added = 0;
    for n in 5..7 {
        added += seeder
            .image(n, 1_700_000_000 + i64::from(n), &[&sha(n)])
            .await
            .own_bytes;
    }
    let second = usage(workspace.path(), &s.registry_open, &repository)
        .input("previous-report", "before.json")
        .run_async()
        .await;
    second.assert_ok();
    let growth = &report(&second)["repositories"][0]["growth"];
    assert_eq!(growth["bytes"].as_i64(), Some(added as i64));
    assert_eq!(
        (growth["tags"].as_i64(), growth["sha-tags"].as_i64()),
        (Some(2), Some(2))
    );
}

#[tokio::test]
async fn a_previous_report_that_is_not_one_is_named() {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("old.json"), "{\"hello\": 1}").unwrap();
    let ran = usage(workspace.path(), "127.0.0.1:9", "acme/app")
        .input("previous-report", "old.json")
        .run_async()
        .await;
    ran.assert_failed("is not a `usage` or `monitor` report");
}
