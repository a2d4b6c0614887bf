//! `cargo bench --bench monitor`: `monitor` (the release binary started as
//! a runner starts it) over 50 images that share an 8 MiB base layer, each
//! with a 256 KiB layer of its own, beside pulling the same 50 images with
//! `docker pull` (Debian's 20.10 CLI, one after another, on the private
//! engine of `scripts/services start`) in the same run. Both go through one
//! request-counting loopback proxy in front of the open registry.
//!
//! `monitor` runs with `scanner: none`: the pulls, logins and storage
//! measures are what the baseline also does (a pull), or more. Docker's
//! images are removed after every round, so each of its rounds is cold;
//! `monitor` keeps nothing between runs anyway. `MONITOR_BENCH_ROUNDS`
//! (default 3) rounds; who goes first alternates.
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
    let proxy = Proxy::start(&services.registry_open);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            (
                monitor(&proxy, &repositories),
                docker_pulls(&proxy, &services, &repositories),
            )
        } else {
            let b = docker_pulls(&proxy, &services, &repositories);
            (monitor(&proxy, &repositories), b)
        };
        println!(
            "round {}: monitor {:.2} s / {} requests / {:.1} MiB up; docker pull ×{IMAGES} {:.2} s / {} requests / {:.1} MiB up",
            round + 1,
            a.0.as_secs_f64(),
            a.1,
            a.2 as f64 / f64::from(1 << 20),
            b.0.as_secs_f64(),
            b.1,
            b.2 as f64 / f64::from(1 << 20),
        );
        ours.push(a);
        theirs.push(b);
    }
    let wall =
        |runs: &[(Duration, u64, u64)]| median(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let requests =
        |runs: &[(Duration, u64, u64)]| median(&runs.iter().map(|r| r.1).collect::<Vec<_>>());
    println!(
        "median of {rounds}: monitor {:.2} s, {} requests; docker pull {:.2} s, {} requests; monitor/docker time {:.2}×",
        wall(&ours).as_secs_f64(),
        requests(&ours),
        wall(&theirs).as_secs_f64(),
        requests(&theirs),
        wall(&ours).as_secs_f64() / wall(&theirs).as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// One `monitor` run: wall time, requests and bytes sent upstream.
fn monitor(proxy: &Proxy, repositories: &[String]) -> (Duration, u64, u64) {
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

/// `docker pull` of every image, one after another, then their removal
/// (not timed) so that the next round starts cold.
fn docker_pulls(
    proxy: &Proxy,
    services: &Services,
    repositories: &[String],
) -> (Duration, u64, u64) {
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
