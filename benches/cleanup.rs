//! `cargo bench --bench cleanup`: pruning 1,000 commit-SHA tags from the
//! real docker-registry that `scripts/services start` runs, by the release
//! binary (as a runner starts it) and by a sequential `skopeo delete` loop
//! on an identical repository in the same run. Both go through the same
//! request-counting loopback proxy.
//!
//! Not a test: it checks only that each side left exactly the tags it
//! should, so a number never describes a cleanup that went wrong.

#![allow(clippy::unwrap_used)]

mod common;
#[allow(dead_code)]
#[path = "../tests/it/support/images.rs"]
mod images;

use common::*;

use std::collections::BTreeSet;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use registry_action::registry::{Registry, sha256_digest};
use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const TAGS: u32 = 1_000;
const T0: i64 = 1_700_000_000;

fn sha(n: u32) -> String {
    sha256_digest(format!("commit {n}").as_bytes())[7..47].to_owned()
}

fn main() -> ExitCode {
    let Some(services) = Services::for_bench("cleanup") else {
        return ExitCode::FAILURE;
    };
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("the cleanup bench compares with skopeo: apt-get install -y skopeo");
        return ExitCode::FAILURE;
    }
    let rt = Runtime::new().unwrap();
    let namespace = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ours = format!("{namespace}/ours");
    let theirs = format!("{namespace}/skopeo");
    let registry = Registry::new(&services.registry_open, None).unwrap();
    let started = Instant::now();
    for repository in [&ours, &theirs] {
        rt.block_on(seed(&registry, repository));
    }
    println!(
        "seeded {TAGS} SHA tags (+ latest) in {ours} and {theirs} on {} in {:.1} s",
        services.registry_open,
        started.elapsed().as_secs_f64()
    );
    let proxy = Proxy::start(&services.registry_open);

    let before = proxy.snapshot();
    let clock = Instant::now();
    let out = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INPUT_COMMAND", "cleanup")
        .env("INPUT_REGISTRY", &proxy.addr)
        .env("INPUT_IMAGES", &ours)
        .env("INPUT_KEEP", "0")
        .output()
        .unwrap();
    let ours_wall = clock.elapsed();
    let ours_requests = proxy.snapshot().1 - before.1;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deleted = outputs["deleted"].as_array().map_or(0, Vec::len);

    let before = proxy.snapshot();
    let clock = Instant::now();
    for n in 0..TAGS {
        let status = Command::new("skopeo")
            .args(["delete", "--tls-verify=false"])
            .arg(format!("docker://{}/{theirs}:{}", proxy.addr, sha(n)))
            .status()
            .unwrap();
        assert!(status.success(), "skopeo delete {n}");
    }
    let theirs_wall = clock.elapsed();
    let theirs_requests = proxy.snapshot().1 - before.1;

    let left_ours: BTreeSet<String> = rt
        .block_on(registry.tags(&ours))
        .unwrap()
        .into_iter()
        .collect();
    let left_theirs: BTreeSet<String> = rt
        .block_on(registry.tags(&theirs))
        .unwrap()
        .into_iter()
        .collect();
    let expected = BTreeSet::from(["latest".to_owned(), sha(TAGS - 1)]);
    assert_eq!(left_ours, expected, "registry-action left the wrong tags");
    assert_eq!(deleted, TAGS as usize - 1);
    // skopeo deleted the manifest `latest` shares too: it doesn't know.
    assert!(left_theirs.is_empty(), "skopeo left {left_theirs:?}");

    println!();
    println!("| prune {TAGS} SHA tags | wall time | requests | tags/s |");
    println!("| --- | ---: | ---: | ---: |");
    row(
        "registry-action cleanup (keep 0, concurrency 8)",
        ours_wall,
        ours_requests,
        deleted,
    );
    row(
        "`skopeo delete` loop, sequential",
        theirs_wall,
        theirs_requests,
        TAGS as usize,
    );
    println!();
    println!(
        "ratio: {:.1}x faster; registry-action also listed, read every manifest and config, planned and re-checked; \
         it kept `latest`'s manifest (and so its SHA tag), which the skopeo loop deleted with it.",
        theirs_wall.as_secs_f64() / ours_wall.as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// `TAGS` images an hour apart, `latest` on the newest.
async fn seed(registry: &Registry, repository: &str) {
    let seeder = images::Seeder::new(registry, repository).await;
    for n in 0..TAGS {
        let tag = sha(n);
        let tags: Vec<&str> = if n == TAGS - 1 {
            vec![&tag, "latest"]
        } else {
            vec![&tag]
        };
        seeder.image(n, T0 + i64::from(n) * 3600, &tags).await;
    }
}

fn row(what: &str, wall: Duration, requests: u64, deleted: usize) {
    println!(
        "| {what} | {:.2} s | {requests} | {:.0} |",
        wall.as_secs_f64(),
        deleted as f64 / wall.as_secs_f64()
    );
}
