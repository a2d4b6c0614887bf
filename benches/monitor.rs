//! `cargo bench --bench monitor`: `monitor` (the release binary started as
//! a runner starts it) over 50 images that share an 8 MiB base layer, each
//! with a 256 KiB layer of its own, beside two baselines on the same 50
//! images, one after another, in the same run:
//! - `skopeo copy` (Debian's) of each into one OCI layout on disk: the same
//!   work as `monitor`'s pull — manifest, config and layers fetched and
//!   checked against their digests, nothing unpacked — plus writing them
//!   to disk; the layout is shared, so the base can be fetched once;
//! - `docker pull` (Debian's 20.10 CLI, on the private engine of
//!   `scripts/services start`): more work — the layers are also unpacked
//!   into the engine's store and the images registered.
//!
//! skopeo starts one process per image; the time of as many `skopeo
//! --version` runs is measured beside, so that share can be named. All go
//! through one request-counting loopback proxy in front of the open
//! registry. `monitor` runs with `scanner: none`: it also checks the login
//! and measures storage (more requests than a pull). Docker's images and
//! skopeo's layout are removed after every round, so each round is cold;
//! `monitor` keeps nothing between runs anyway. `MONITOR_BENCH_ROUNDS`
//! (default 3) rounds; who goes first rotates.
//!
//! Not a test: it checks only that every run succeeded and that `monitor`
//! pulled every image with the base fetched once, so a number never
//! describes a run that went wrong.

#![allow(clippy::unwrap_used)]

mod common;
#[allow(dead_code)]
#[path = "../tests/it/support/images.rs"]
mod images;

use common::*;
use images::{put_image, tar_gz, upload};

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use registry_action::registry::mount::Upload;
use registry_action::registry::{Registry, sha256_digest};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
/// Debian's 20.10 CLI, as the publish bench uses.
const DOCKER: &str = "/usr/bin/docker";
const IMAGES: usize = 50;
const BASE: usize = 8 << 20;
const OWN: usize = 256 << 10;

fn main() -> ExitCode {
    let Some(services) = Services::for_bench("monitor") else {
        return ExitCode::FAILURE;
    };
    let rounds: usize = std::env::var("MONITOR_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let namespace = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let repositories: Vec<String> = (0..IMAGES)
        .map(|n| format!("{namespace}/img-{n:02}"))
        .collect();
    let started = Instant::now();
    Runtime::new()
        .unwrap()
        .block_on(seed(&services.registry_open, &repositories));
    println!(
        "seeded {IMAGES} images ({} MiB base shared, {} KiB each of their own) under {namespace} in {:.1} s",
        BASE >> 20,
        OWN >> 10,
        started.elapsed().as_secs_f64()
    );
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("the monitor bench compares with skopeo: apt-get install -y skopeo");
        return ExitCode::FAILURE;
    }
    let proxy = Proxy::start(&services.registry_open);
    let mut runs: [Vec<Run>; 3] = Default::default();
    let mut skopeo_starts = Vec::new();
    for round in 0..rounds {
        let mut order = [0, 1, 2];
        order.rotate_left(round % NAMES.len());
        for who in order {
            runs[who].push(match who {
                0 => monitor(&proxy, &repositories),
                1 => skopeo_copies(&proxy, &repositories),
                _ => docker_pulls(&proxy, &services, &repositories),
            });
        }
        let line: Vec<String> = NAMES
            .iter()
            .zip(&runs)
            .map(|(name, runs)| {
                let run = runs.last().unwrap();
                format!(
                    "{name} {:.2} s / {} requests / {:.1} MiB up",
                    run.0.as_secs_f64(),
                    run.1,
                    run.2 as f64 / f64::from(1 << 20)
                )
            })
            .collect();
        println!("round {}: {}", round + 1, line.join("; "));
        skopeo_starts.push(process_starts("skopeo", IMAGES));
    }
    let wall = |runs: &[Run]| median(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let requests = |runs: &[Run]| median(&runs.iter().map(|r| r.1).collect::<Vec<_>>());
    let ours = wall(&runs[0]).as_secs_f64();
    let line: Vec<String> = NAMES
        .iter()
        .zip(&runs)
        .map(|(name, runs)| {
            format!(
                "{name} {:.2} s, {} requests (monitor/it {:.2}×)",
                wall(runs).as_secs_f64(),
                requests(runs),
                ours / wall(runs).as_secs_f64()
            )
        })
        .collect();
    println!("median of {rounds}: {}", line.join("; "));
    println!(
        "of skopeo's time, its {IMAGES} process starts alone (`skopeo --version` ×{IMAGES}): {:.2} s",
        median(&skopeo_starts).as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Wall time, requests and bytes sent upstream of one run.
type Run = (Duration, u64, u64);

const NAMES: [&str; 3] = [
    "monitor",
    "skopeo copy ×50 to an OCI layout",
    "docker pull ×50",
];

/// One `monitor` run.
fn monitor(proxy: &Proxy, repositories: &[String]) -> Run {
    let runner = tempfile::tempdir().unwrap();
    let output = runner.path().join("output");
    std::fs::write(&output, "").unwrap();
    let before = proxy.snapshot();
    let clock = Instant::now();
    let out = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", runner.path().join("summary"))
        .env("RUNNER_TEMP", runner.path())
        .env("GITHUB_WORKSPACE", runner.path())
        .env("INPUT_COMMAND", "monitor")
        .env("INPUT_REGISTRY", &proxy.addr)
        .env("INPUT_IMAGES", repositories.join("\n"))
        .env("INPUT_SCANNER", "none")
        .env("INPUT_REPORT-FILE", "monitor.json")
        .output()
        .unwrap();
    let wall = clock.elapsed();
    let after = proxy.snapshot();
    assert!(
        out.status.success(),
        "monitor failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(runner.path().join("monitor.json")).unwrap())
            .unwrap();
    let fetched: u64 = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["fetched"].as_u64().unwrap())
        .sum();
    // Each image's config and own layer, and the base once.
    assert_eq!(fetched, 2 * IMAGES as u64 + 1, "{report}");
    (wall, after.1 - before.1, after.0 - before.0)
}

/// `skopeo copy` of every image, one after another, into one new OCI
/// layout (blobs fetched and checked against their digests, none
/// unpacked), removed afterwards.
fn skopeo_copies(proxy: &Proxy, repositories: &[String]) -> Run {
    let layout = tempfile::tempdir().unwrap();
    let before = proxy.snapshot();
    let clock = Instant::now();
    for (n, repository) in repositories.iter().enumerate() {
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/{repository}:latest", proxy.addr))
            .arg(format!("oci:{}:img-{n:02}", layout.path().display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy {repository} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wall = clock.elapsed();
    let after = proxy.snapshot();
    let blobs = std::fs::read_dir(layout.path().join("blobs/sha256"))
        .unwrap()
        .count();
    // Each image's manifest, config and own layer, and the base once.
    assert_eq!(blobs, 3 * IMAGES + 1, "blobs in skopeo's layout");
    (wall, after.1 - before.1, after.0 - before.0)
}

/// The wall time of `n` runs of `program --version`, one after another.
fn process_starts(program: &str, n: usize) -> Duration {
    let clock = Instant::now();
    for _ in 0..n {
        let out = Command::new(program).arg("--version").output().unwrap();
        assert!(out.status.success(), "{program} --version failed");
    }
    clock.elapsed()
}

/// `docker pull` of every image, one after another, then their removal
/// (not timed) so that the next round starts cold.
fn docker_pulls(proxy: &Proxy, services: &Services, repositories: &[String]) -> Run {
    let images: Vec<String> = repositories
        .iter()
        .map(|r| format!("{}/{r}:latest", proxy.addr))
        .collect();
    let before = proxy.snapshot();
    let clock = Instant::now();
    for image in &images {
        docker(services, &["pull", "-q", image]);
    }
    let wall = clock.elapsed();
    let after = proxy.snapshot();
    let mut rm = vec!["image", "rm", "-f"];
    rm.extend(images.iter().map(String::as_str));
    docker(services, &rm);
    (wall, after.1 - before.1, after.0 - before.0)
}

fn docker(services: &Services, args: &[&str]) {
    let out = Command::new(DOCKER)
        .args(args)
        .env("DOCKER_HOST", &services.docker_host)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` bytes that don't compress: SHA-256 of a counter, block after block.
fn noise(seed: &str, n: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(n + 32);
    let mut counter = 0u64;
    while bytes.len() < n {
        bytes.extend(Sha256::new_with_prefix(format!("{seed} {counter}")).finalize());
        counter += 1;
    }
    bytes.truncate(n);
    bytes
}

async fn seed(registry: &str, repositories: &[String]) {
    let registry = Registry::new(registry, None).unwrap();
    let (base, base_diff) = tar_gz(&[("base.bin", &noise("base", BASE))]);
    let base_blob = (sha256_digest(&base), base.len());
    for (n, repository) in repositories.iter().enumerate() {
        // The base travels once; the other repositories mount it.
        let mounted = match repositories.first().filter(|first| *first != repository) {
            Some(first) => {
                registry
                    .start_upload(repository, &base_blob.0, Some(first))
                    .await
                    .unwrap()
                    == Upload::Mounted
            }
            None => false,
        };
        if !mounted {
            upload(&registry, repository, base.clone()).await;
        }
        let (own, own_diff) = tar_gz(&[("own.bin", &noise(repository, OWN))]);
        let own = upload(&registry, repository, own).await;
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench.image": n.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": [base_diff, own_diff]},
        }))
        .unwrap();
        put_image(
            &registry,
            repository,
            config,
            &[base_blob.clone(), own],
            &["latest"],
        )
        .await;
    }
}
