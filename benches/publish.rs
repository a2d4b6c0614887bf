//! `cargo bench --bench publish`: what `publish` costs in time and in bytes
//! sent to the registry, with the release binary started as a GitHub runner
//! starts it, against the real engine and the open registry that
//! `scripts/services start` runs on 127.0.0.1.
//!
//! The image is 4 layers of 32 MiB of incompressible bytes. A byte-counting
//! TCP proxy sits between the binary and the registry, so every phase says
//! how much travelled client → registry: the first publish (every blob), a
//! re-run that adds `latest` and 3 more tags (the build is skipped, only
//! manifests travel), a plain re-run, and a new commit that changes nothing
//! in the image (new SHA tag, blobs already there).
//!
//! Not a test: beyond checking that every run succeeded and that all tags
//! name one digest (so a number never describes a publish that went wrong),
//! it asserts nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const IMAGE_DIR: &str = "ops/docker/big";
const LAYERS: usize = 4;
const LAYER_BYTES: usize = 32 << 20;
const EXTRA_TAGS: [&str; 3] = ["stable", "edge", "bench-extra"];
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

fn main() -> ExitCode {
    let services = match Services::load() {
        Ok(services) => services,
        Err(e) => {
            eprintln!(
                "the publish bench needs the Docker Engine and registries: {e}; \
                 run `scripts/services start` first (as root)"
            );
            return ExitCode::FAILURE;
        }
    };
    let rt = Runtime::new().unwrap();
    let proxy = Proxy::start(&services.registry_open);
    let namespace = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let repository = format!("{namespace}/big");
    let repo = Workspace::generate();
    println!(
        "image {IMAGE_DIR}: {LAYERS} layers x {} MiB, pushed as {}/{repository} (a counting proxy of {})",
        LAYER_BYTES >> 20,
        proxy.addr,
        services.registry_open
    );

    let base = Run {
        workspace: repo.path().to_owned(),
        docker_host: services.docker_host.clone(),
        registry: proxy.addr.clone(),
        namespace: namespace.clone(),
        sha: repo.head.clone(),
        inputs: vec![("LATEST", "false".to_owned())],
    };
    let mut rows = Vec::new();

    let first = base.execute(&proxy);
    assert!(first.built, "the first publish must build");
    let digest = first.outputs["digest"].clone();
    rows.push(first.row("A: first publish (4 × 32 MiB layers)"));

    let retag = Run {
        inputs: vec![
            ("LATEST", "true".to_owned()),
            ("TAGS", EXTRA_TAGS.join("\n")),
        ],
        ..base.clone()
    };
    let second = retag.execute(&proxy);
    assert!(
        !second.built,
        "a re-run of the same commit must skip the build"
    );
    assert_eq!(second.outputs["digest"], digest);
    rows.push(second.row("B: re-run + `latest` + 3 tags"));
    let tags = rt.block_on(check_tags(
        &services.registry_open,
        &repository,
        &repo.head,
        &digest,
    ));

    let rerun = Run {
        inputs: [retag.inputs.clone(), vec![("REBUILD", "false".to_owned())]].concat(),
        ..retag.clone()
    };
    let third = rerun.execute(&proxy);
    assert!(
        !third.built,
        "`rebuild: false` with the SHA tag present builds nothing"
    );
    assert_eq!(third.outputs["digest"], digest);
    rows.push(third.row("C: re-run, `rebuild: false`, nothing new"));

    let next = repo.commit_outside_image();
    let fresh = Run {
        sha: next.clone(),
        ..base.clone()
    };
    let fourth = fresh.execute(&proxy);
    assert!(fourth.built, "a new commit gets its own build");
    rows.push(fourth.row("D: new commit, image dir unchanged"));
    let fresh_digest = rt.block_on(digest_of(&services.registry_open, &repository, &next));
    assert_eq!(
        fresh_digest.as_deref(),
        Some(fourth.outputs["digest"].as_str())
    );

    print_table(&rows);
    println!(
        "after B: {} tags ({}) all name {digest}",
        tags.len(),
        tags.iter()
            .map(|t| if t.len() == 40 { &t[..7] } else { t.as_str() })
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "one run per phase (each depends on the registry state the previous left); bytes and requests are client → registry through the proxy."
    );
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------
// The workspace

struct Workspace {
    dir: tempfile::TempDir,
    head: String,
}

impl Workspace {
    /// `ops/docker/big`: `FROM scratch` and one `COPY` per 32 MiB file.
    /// The seed differs per bench run, so the first publish never finds its
    /// layers in the engine's build cache from an earlier run.
    fn generate() -> Self {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join(IMAGE_DIR);
        std::fs::create_dir_all(&image).unwrap();
        let mut dockerfile = String::from("FROM scratch\n");
        let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        for layer in 0..LAYERS {
            let name = format!("blob-{layer}.bin");
            std::fs::write(image.join(&name), random_bytes(seed, layer as u64)).unwrap();
            dockerfile.push_str(&format!("COPY {name} /data/{name}\n"));
        }
        std::fs::write(image.join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(dir.path().join("README.md"), "bench\n").unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "big image"]);
        let head = git(dir.path(), &["rev-parse", "HEAD"]);
        println!(
            "generated and committed {} MiB in {:.1} s",
            (LAYERS * LAYER_BYTES) >> 20,
            started.elapsed().as_secs_f64()
        );
        Workspace { dir, head }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A commit that touches nothing in the image directory.
    fn commit_outside_image(&self) -> String {
        std::fs::write(self.path().join("README.md"), "bench, again\n").unwrap();
        git(self.path(), &["commit", "-q", "-am", "readme only"]);
        git(self.path(), &["rev-parse", "HEAD"])
    }
}

/// xorshift64*: incompressible enough that gzip can't shrink a layer.
fn random_bytes(seed: u64, stream: u64) -> Vec<u8> {
    let mut state = (seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    let mut out = Vec::with_capacity(LAYER_BYTES);
    while out.len() < LAYER_BYTES {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// The byte-counting proxy

// ---------------------------------------------------------------------------
// Running the binary

/// One publish as the runner starts it.
#[derive(Clone)]
struct Run {
    workspace: PathBuf,
    docker_host: String,
    registry: String,
    namespace: String,
    sha: String,
    /// `INPUT_<NAME>` beyond command, path, registry and namespace.
    inputs: Vec<(&'static str, String)>,
}

struct Measured {
    wall: Duration,
    bytes: u64,
    requests: u64,
    built: bool,
    outputs: BTreeMap<String, String>,
}

impl Run {
    fn execute(&self, proxy: &Proxy) -> Measured {
        let runner = tempfile::tempdir().unwrap();
        let output = runner.path().join("set_output");
        let summary = runner.path().join("step_summary");
        let event = runner.path().join("event.json");
        std::fs::write(&output, "").unwrap();
        std::fs::write(&summary, "").unwrap();
        let payload = json!({
            "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000",
            "after": self.sha,
            "created": false,
            "deleted": false,
            "forced": false,
            "repository": {"full_name": "acme/monorepo", "default_branch": "main"},
        });
        std::fs::write(&event, payload.to_string()).unwrap();
        let mut command = Command::new(BINARY);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", &self.workspace)
            .env("GITHUB_REPOSITORY", "acme/monorepo")
            .env("GITHUB_REPOSITORY_OWNER", "acme")
            .env("GITHUB_EVENT_NAME", "push")
            .env("GITHUB_EVENT_PATH", &event)
            .env("GITHUB_REF", "refs/heads/main")
            .env("GITHUB_SHA", &self.sha)
            // A closed loopback port: publish must not need the GitHub API.
            .env("GITHUB_API_URL", "http://127.0.0.1:9")
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("RUNNER_TEMP", runner.path())
            .env("DOCKER_HOST", &self.docker_host)
            .env("INPUT_COMMAND", "publish")
            .env("INPUT_PATH", IMAGE_DIR)
            .env("INPUT_REGISTRY", &self.registry)
            .env("INPUT_NAMESPACE", &self.namespace)
            .envs(self.inputs.iter().map(|(k, v)| (format!("INPUT_{k}"), v)))
            .current_dir(&self.workspace);
        let (bytes, requests) = proxy.snapshot();
        let started = Instant::now();
        let out = command.output().unwrap();
        let wall = started.elapsed();
        let summary = std::fs::read_to_string(&summary).unwrap();
        assert!(
            out.status.success(),
            "publish failed:\n{}\n{}\n{summary}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The binary has exited, but the proxy's threads may still be
        // counting the last bytes it wrote; let them drain.
        std::thread::sleep(Duration::from_millis(100));
        let (bytes_after, requests_after) = proxy.snapshot();
        Measured {
            wall,
            bytes: bytes_after - bytes,
            requests: requests_after - requests,
            built: !summary.contains("already exists: build skipped"),
            outputs: parse_outputs(&std::fs::read_to_string(&output).unwrap()),
        }
    }
}

impl Measured {
    fn row(&self, phase: &'static str) -> Row {
        Row {
            phase,
            wall: self.wall,
            bytes: self.bytes,
            requests: self.requests,
            built: self.built,
            tags: self.outputs["tags"].lines().count(),
        }
    }
}

async fn check_tags(registry: &str, repository: &str, sha: &str, digest: &str) -> BTreeSet<String> {
    let client = reqwest::Client::new();
    let list: serde_json::Value = client
        .get(format!("http://{registry}/v2/{repository}/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tags: BTreeSet<String> = list["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = [sha, "latest"]
        .into_iter()
        .chain(EXTRA_TAGS)
        .map(str::to_owned)
        .collect();
    assert_eq!(tags, expected, "the tags after phase B");
    for tag in &tags {
        assert_eq!(
            digest_of(registry, repository, tag).await.as_deref(),
            Some(digest),
            "{repository}:{tag} names another digest"
        );
    }
    tags
}

async fn digest_of(registry: &str, repository: &str, tag: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{repository}/manifests/{tag}"))
        .header("accept", MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_owned())
}

// ---------------------------------------------------------------------------
// The report

struct Row {
    phase: &'static str,
    wall: Duration,
    bytes: u64,
    requests: u64,
    built: bool,
    tags: usize,
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| phase | wall time | bytes client → registry | requests | build | tags in outputs |"
    );
    println!("| --- | ---: | ---: | ---: | --- | ---: |");
    for row in rows {
        println!(
            "| {} | {:.2} s | {} | {} | {} | {} |",
            row.phase,
            row.wall.as_secs_f64(),
            human(row.bytes),
            row.requests,
            if row.built { "built" } else { "skipped" },
            row.tags,
        );
    }
    println!();
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB ({b} B)", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB ({b} B)", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
