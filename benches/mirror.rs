//! `cargo bench --bench mirror`: `registry-action mirror` beside `skopeo
//! copy` and `skopeo sync` (Debian's skopeo) on the same images, in one run.
//!
//! Two workloads, pushed to the open registry of `scripts/services start`:
//! - one image of 4 layers × 32 MiB of incompressible bytes;
//! - a repository of 200 tags that share a 4 MiB base layer, each with its
//!   own 64 KiB layer and config.
//!
//! Every tool copies into a fresh `docker-registry` of its own (so nothing
//! is already there and no tool can mount from another's copy), through
//! byte-counting loopback proxies on both sides: wall time, bytes sent to
//! the target, and requests to each side. `skopeo copy` copies one tag per
//! process, as it is used; `skopeo sync` and `mirror` take the repository.
//! skopeo runs with `--preserve-digests`, as `mirror` always does.
//!
//! Not a test: it checks that every copy left the target's tags on the
//! source's digests (so no number describes a copy that went wrong), and
//! reports; nothing else is asserted.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../tests/it/support/own_registry.rs"]
mod own_registry;

use own_registry::OwnRegistry;

use common::random::random_bytes;
use common::*;

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use registry_action::registry::{Manifest, Registry, sha256_digest};
use serde_json::json;
use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const BIG_LAYERS: usize = 4;
const BIG_LAYER_BYTES: usize = 32 << 20;
const TAGS: usize = 200;
const BASE_BYTES: usize = 4 << 20;
const OWN_BYTES: usize = 64 << 10;

fn main() -> ExitCode {
    let Some(services) = Services::for_bench("mirror") else {
        return ExitCode::FAILURE;
    };
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("the mirror bench compares with skopeo: apt-get install -y skopeo");
        return ExitCode::FAILURE;
    }
    let rt = Runtime::new().unwrap();
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let source = Registry::new(&services.registry_open, None).unwrap();
    let big = format!("bench-{run_id}/big");
    let many = format!("bench-{run_id}/many");
    let started = Instant::now();
    let big_digests = rt.block_on(seed_big(&source, &big));
    let many_digests = rt.block_on(seed_many(&source, &many));
    println!(
        "seeded {big} (1 tag, {BIG_LAYERS} × {} MiB) and {many} ({TAGS} tags on a shared {} MiB base) on {} in {:.1} s",
        BIG_LAYER_BYTES >> 20,
        BASE_BYTES >> 20,
        services.registry_open,
        started.elapsed().as_secs_f64()
    );

    let mut rows = Vec::new();
    for (workload, repository, digests) in [
        ("4 × 32 MiB image", &big, &big_digests),
        ("200 tags, shared layers", &many, &many_digests),
    ] {
        let mut ours = None;
        for tool in [Tool::Mirror, Tool::SkopeoCopy, Tool::SkopeoSync] {
            let measured = measure(&rt, &services, tool, repository, digests);
            let wall = measured.wall;
            let reference = *ours.get_or_insert(wall);
            rows.push(Row {
                workload,
                tool,
                measured,
                ratio: wall.as_secs_f64() / reference.as_secs_f64(),
            });
        }
    }
    print_table(&rows);
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------
// The images

async fn seed_big(registry: &Registry, repository: &str) -> Vec<(String, String)> {
    let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
    let layers: Vec<Vec<u8>> = (0..BIG_LAYERS)
        .map(|i| random_bytes(seed, i as u64, BIG_LAYER_BYTES))
        .collect();
    let manifest = push_image(registry, repository, "v1", &layers).await;
    vec![("v1".to_owned(), manifest.digest)]
}

async fn seed_many(registry: &Registry, repository: &str) -> Vec<(String, String)> {
    let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
    let base = random_bytes(seed, 0, BASE_BYTES);
    let mut tags = Vec::new();
    for i in 0..TAGS {
        let own = random_bytes(seed, 1 + i as u64, OWN_BYTES);
        let tag = format!("1.{i}");
        let manifest = push_image(registry, repository, &tag, &[base.clone(), own]).await;
        tags.push((tag, manifest.digest));
    }
    tags
}

async fn push_image(
    registry: &Registry,
    repository: &str,
    tag: &str,
    layers: &[Vec<u8>],
) -> Manifest {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": tag,
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let mut descriptors = Vec::new();
    for blob in layers.iter().chain([&config]) {
        let digest = sha256_digest(blob);
        if !registry.has_blob(repository, &digest).await.unwrap() {
            registry
                .upload_blob(repository, &digest, Bytes::from(blob.clone()))
                .await
                .unwrap();
        }
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": blob.len(),
        }));
    }
    let mut config_descriptor = descriptors.pop().unwrap();
    config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor, "layers": descriptors,
    }))
    .unwrap();
    let manifest = Manifest {
        digest: sha256_digest(&bytes),
        bytes,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    };
    registry
        .put_manifest(repository, tag, &manifest)
        .await
        .unwrap();
    manifest
}

// ---------------------------------------------------------------------------
// The tools

#[derive(Debug, Clone, Copy)]
enum Tool {
    Mirror,
    SkopeoCopy,
    SkopeoSync,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Mirror => "registry-action mirror",
            Tool::SkopeoCopy => "skopeo copy (one per tag)",
            Tool::SkopeoSync => "skopeo sync",
        }
    }

    /// The processes that copy `repository` (with `tags`) from `from` to
    /// the same repository path on `to`.
    fn commands(self, from: &str, to: &str, repository: &str, tags: &[&str]) -> Vec<Command> {
        let skopeo = || {
            let mut c = Command::new("skopeo");
            c.args(["--insecure-policy"]);
            c
        };
        match self {
            Tool::Mirror => {
                let mut c = Command::new(BINARY);
                c.env_clear()
                    .args(["mirror", "--from", &format!("{from}/{repository}")])
                    .args(["--to", &format!("{to}/{repository}")]);
                vec![c]
            }
            Tool::SkopeoCopy => tags
                .iter()
                .map(|tag| {
                    let mut c = skopeo();
                    c.args(["copy", "--preserve-digests"])
                        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                        .arg(format!("docker://{from}/{repository}:{tag}"))
                        .arg(format!("docker://{to}/{repository}:{tag}"));
                    c
                })
                .collect(),
            Tool::SkopeoSync => {
                let (namespace, _) = repository.rsplit_once('/').unwrap();
                let mut c = skopeo();
                c.args([
                    "sync",
                    "--preserve-digests",
                    "--src",
                    "docker",
                    "--dest",
                    "docker",
                ])
                .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                .arg(format!("{from}/{repository}"))
                .arg(format!("{to}/{namespace}"));
                vec![c]
            }
        }
    }
}

struct Measured {
    wall: Duration,
    bytes_to_target: u64,
    requests_to_target: u64,
    requests_to_source: u64,
}

fn measure(
    rt: &Runtime,
    services: &Services,
    tool: Tool,
    repository: &str,
    digests: &[(String, String)],
) -> Measured {
    let target = OwnRegistry::start(true);
    let (from, to) = (
        Proxy::start(&services.registry_open),
        Proxy::start(&target.address),
    );
    let tags: Vec<&str> = digests.iter().map(|(t, _)| t.as_str()).collect();
    let started = Instant::now();
    for mut command in tool.commands(&from.addr, &to.addr, repository, &tags) {
        let out = command.stdout(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{} failed: {}",
            tool.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wall = started.elapsed();
    // The proxies' threads may still be counting the last bytes.
    std::thread::sleep(Duration::from_millis(100));
    let ((bytes, requests), (_, source_requests)) = (to.snapshot(), from.snapshot());
    let copied = Registry::new(&target.address, None).unwrap();
    rt.block_on(async {
        for (tag, digest) in digests {
            let found = copied.manifest_digest(repository, tag).await.unwrap();
            assert_eq!(
                found.as_deref(),
                Some(digest.as_str()),
                "{}: {repository}:{tag}",
                tool.name()
            );
        }
    });
    Measured {
        wall,
        bytes_to_target: bytes,
        requests_to_target: requests,
        requests_to_source: source_requests,
    }
}

// ---------------------------------------------------------------------------
// The report

struct Row {
    workload: &'static str,
    tool: Tool,
    measured: Measured,
    /// Wall time over `mirror`'s on the same workload.
    ratio: f64,
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| workload | tool | wall time | × mirror's time | bytes to target | requests to target | requests to source |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let m = &row.measured;
        println!(
            "| {} | {} | {:.2} s | {:.2} | {:.1} MiB | {} | {} |",
            row.workload,
            row.tool.name(),
            m.wall.as_secs_f64(),
            row.ratio,
            m.bytes_to_target as f64 / f64::from(1 << 20),
            m.requests_to_target,
            m.requests_to_source,
        );
    }
    println!();
    println!(
        "one run per tool (each into a fresh registry); digests on the target checked equal to the source's after every run."
    );
}
