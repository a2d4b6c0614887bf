//! `cargo bench --bench publish`: `publish` (the release binary started as a
//! GitHub runner starts it) beside the baseline it must beat, on the engine
//! `REGISTRY_ACTION_ENGINE` selects (default 20.10) and the open registry
//! that `scripts/services start` runs. The baseline is what users of that
//! engine run: on Docker 28 (either image store) `docker buildx build
//! --push` (Docker 28's CLI and buildx plugin, the engine's own builder,
//! `--provenance=false` so both push one image manifest); on 20.10
//! `docker build` then `docker push` with its CLI and BuildKit.
//!
//! Both push through one byte-counting TCP proxy in front of the registry,
//! each to a fresh repository of its own, in these scenarios:
//! - cold: 4 × 32 MiB incompressible layers, new bytes every round (the
//!   engine remembers where it pushed a layer and would mount it instead),
//!   the build cache pruned before each run and its images removed after;
//! - unchanged: a new commit that changes nothing in the image directory,
//!   after a publish of the previous one (the baseline's build is cached);
//! - compressible: one layer of text (copies of this project's `src/`),
//!   where the compressed blobs' sizes are compared too;
//! - two platforms, cold (the containerd store only: buildx's docker
//!   driver can't build two platforms into the classic store): the cold
//!   workspace built for linux/amd64 and linux/arm64 (`COPY` only, no
//!   emulation);
//! - unchanged, two platforms (the containerd store only): the cold
//!   workspace for both platforms, a new commit after a publish of the
//!   previous one.
//!
//! - analysis: what the layer analysis adds to ours, the cold workspace
//!   published with it and without it (`REGISTRY_ACTION_BENCH_NO_LAYER_ANALYSIS`,
//!   a switch for this bench only), goal ≤ 1.03.
//!
//! `PUBLISH_BENCH_ROUNDS` (default 3) rounds each; who goes first alternates.
//! `PUBLISH_BENCH_CASES` narrows the scenarios (comma-separated: `cold`,
//! `unchanged`, `compressible`, `two-platforms`,
//! `unchanged-two-platforms`, `analysis`); `PUBLISH_BENCH_STAGES=1` prints
//! each of our runs' stage timings (its `stage …` debug lines).
//! Not a test: beyond checking that every run succeeded and that the digests
//! agree (so a number never describes a publish that went wrong), it
//! asserts nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::random::random_bytes;
use common::*;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const ROUNDS_VAR: &str = "PUBLISH_BENCH_ROUNDS";
const CASES_VAR: &str = "PUBLISH_BENCH_CASES";
const STAGES_VAR: &str = "PUBLISH_BENCH_STAGES";
/// Turns publish's layer analysis off, for the `analysis` scenario.
const NO_ANALYSIS_VAR: &str = "REGISTRY_ACTION_BENCH_NO_LAYER_ANALYSIS";
const LAYERS: usize = 4;
const LAYER_BYTES: usize = 32 << 20;
const TEXT_BYTES: u64 = 6 << 20;
const REVISION_LABEL: &str = "org.opencontainers.image.revision";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// The two-platform scenario's platforms: `COPY` only, so no emulation.
const TWO_PLATFORMS: &str = "linux/amd64,linux/arm64";
/// The engine whose store can hold a multi-platform image.
const CONTAINERD_STORE: &str = "28-containerd";

fn main() -> ExitCode {
    if let Some(code) = measuring_child() {
        return code;
    }
    let Some(services) = Services::for_bench("publish") else {
        return ExitCode::FAILURE;
    };
    let rounds = match std::env::var(ROUNDS_VAR) {
        Ok(n) => n.parse().expect("PUBLISH_BENCH_ROUNDS: a number of rounds"),
        Err(_) => 3,
    };
    assert!(rounds > 0, "{ROUNDS_VAR} must be at least 1");
    let docker_config = tempfile::tempdir().unwrap();
    let baseline = Baseline::of(&services, docker_config.path());
    let bench = Bench {
        proxy: Proxy::start(&services.registry_open),
        services,
        rt: Runtime::new().unwrap(),
        run_id: format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        docker_config,
        baseline,
    };
    println!(
        "engine {}: {rounds} rounds per scenario, pushed to {} (a counting proxy of {}) under {}-*, \
         against {}",
        bench.services.engine,
        bench.proxy.addr,
        bench.services.registry_open,
        bench.run_id,
        bench.baseline.name()
    );
    let cases = std::env::var(CASES_VAR).ok();
    let wanted = |case: &str| {
        cases
            .as_deref()
            .is_none_or(|cases| cases.split(',').any(|c| c.trim() == case))
    };
    let mut rows = Vec::new();
    if wanted("cold") {
        rows.push(bench.cold(rounds));
    }
    if wanted("unchanged") {
        rows.push(bench.unchanged(rounds, None));
    }
    if wanted("compressible") {
        rows.push(bench.compressible(rounds));
    }
    if wanted("two-platforms") && bench.services.engine == CONTAINERD_STORE {
        rows.push(bench.two_platforms(rounds));
    }
    if wanted("unchanged-two-platforms") && bench.services.engine == CONTAINERD_STORE {
        rows.push(bench.unchanged(rounds, Some(TWO_PLATFORMS)));
    }
    if !rows.is_empty() {
        print_table(&rows, bench.baseline.name());
    }
    if wanted("analysis") {
        bench.analysis_cost(rounds);
    }
    ExitCode::SUCCESS
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ours,
    Docker,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ours => "ours",
            Tool::Docker => "docker",
        }
    }

    /// Who goes first alternates, so neither always meets the warmer caches.
    fn order(round: usize) -> [Tool; 2] {
        if round % 2 == 0 {
            [Tool::Ours, Tool::Docker]
        } else {
            [Tool::Docker, Tool::Ours]
        }
    }
}

/// What users of the engine would run instead.
enum Baseline {
    /// 20.10: its CLI's `docker build`, then `docker push`.
    BuildPush,
    /// Docker 28: `docker buildx build --push` by Docker 28's CLI.
    Buildx { docker: PathBuf },
}

impl Baseline {
    /// Docker 28's CLI gets the buildx plugin in `config`, its private
    /// DOCKER_CONFIG.
    fn of(services: &Services, config: &Path) -> Self {
        if services.engine == "20.10" {
            return Baseline::BuildPush;
        }
        let plugins = config.join("cli-plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let plugin = services.docker_28.join("cli-plugins/docker-buildx");
        std::fs::copy(&plugin, plugins.join("docker-buildx"))
            .unwrap_or_else(|e| panic!("{}: {e}", plugin.display()));
        Baseline::Buildx {
            docker: services.docker_28.join("bin/docker"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Baseline::BuildPush => "docker build + push",
            Baseline::Buildx { .. } => "docker buildx build --push",
        }
    }

    fn program(&self) -> &Path {
        match self {
            Baseline::BuildPush => Path::new("/usr/bin/docker"),
            Baseline::Buildx { docker } => docker,
        }
    }
}

struct Bench {
    services: Services,
    proxy: Proxy,
    rt: Runtime,
    /// Prefix of every namespace this run pushes to.
    run_id: String,
    /// DOCKER_CONFIG with no credential helper or user setting (and, for
    /// Docker 28's CLI, the buildx plugin).
    docker_config: tempfile::TempDir,
    baseline: Baseline,
}

/// One publish by one tool, as the registry has it afterwards.
struct Published {
    tool: Tool,
    sha: String,
    sample: Sample,
    digest: String,
    manifest: Value,
}

impl Published {
    /// The images an index lists.
    fn children(&self) -> usize {
        self.manifest["manifests"].as_array().unwrap().len()
    }

    fn config(&self) -> &str {
        self.manifest["config"]["digest"].as_str().unwrap()
    }

    /// (digest, size) of each layer blob.
    fn layers(&self) -> Vec<(String, u64)> {
        let layers = self.manifest["layers"].as_array().unwrap();
        layers
            .iter()
            .map(|l| {
                let digest = l["digest"].as_str().unwrap().to_owned();
                (digest, l["size"].as_u64().unwrap())
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    /// Client → registry through the proxy.
    bytes: u64,
    peak_rss_kib: u64,
}

// ---------------------------------------------------------------------------
// The scenarios

impl Bench {
    fn cold(&self, rounds: usize) -> Row {
        let mut row = Row::new("cold: 4 × 32 MiB, no cache, new bytes", Some(1.0));
        for round in 0..rounds {
            let workspace = Workspace::random_layers();
            for tool in Tool::order(round) {
                self.prune_build_cache();
                let published = self.publish(tool, &workspace, &workspace.head, "cold", None);
                assert_eq!(published.layers().len(), LAYERS, "{}", tool.name());
                self.remove_images(&published);
                row.add(tool, published.sample);
            }
        }
        row
    }

    /// After a publish of commit A, commit B (new SHA, same image dir), for
    /// `platforms` (comma-separated) or the engine's own.
    fn unchanged(&self, rounds: usize, platforms: Option<&str>) -> Row {
        let (title, scenario) = match platforms {
            None => ("unchanged: new commit, same files", "unchanged"),
            Some(_) => ("unchanged, two platforms", "unchanged-two"),
        };
        let mut row = Row::new(title, Some(0.35));
        let workspace = Workspace::random_layers();
        let first = [Tool::Ours, Tool::Docker]
            .map(|tool| self.publish(tool, &workspace, &workspace.head, scenario, platforms));
        let mut ours = Vec::new();
        for round in 0..rounds {
            let sha = workspace.commit_outside_image(round);
            for tool in Tool::order(round) {
                let published = self.publish(tool, &workspace, &sha, scenario, platforms);
                let before = &first[tool as usize];
                match platforms {
                    None => assert_eq!(published.layers(), before.layers(), "{}", tool.name()),
                    // Ours relabels each platform's config: new children.
                    Some(_) => assert_eq!(published.children(), 2, "{}", tool.name()),
                }
                if tool == Tool::Docker {
                    assert_eq!(published.digest, before.digest, "docker rebuilt");
                }
                row.add(tool, published.sample);
                if tool == Tool::Ours {
                    ours.push(published);
                }
            }
        }
        // Docker's are one image, ours one per commit.
        for published in first.iter().chain(&ours) {
            self.remove_images(published);
        }
        row
    }

    /// One layer of text: the compressed blob sizes count as much as time.
    fn compressible(&self, rounds: usize) -> Row {
        let mut row = Row::new("compressible: 1 text layer", None);
        for round in 0..rounds {
            let workspace = Workspace::text(round);
            let mut sizes = [0; 2];
            for tool in Tool::order(round) {
                self.prune_build_cache();
                let published = self.publish(tool, &workspace, &workspace.head, "text", None);
                let layers = published.layers();
                assert_eq!(layers.len(), 1, "{}", tool.name());
                sizes[tool as usize] = layers[0].1;
                self.remove_images(&published);
                row.add(tool, published.sample);
            }
            row.blobs.push((sizes[0], sizes[1]));
        }
        row
    }

    /// Ours on the cold workspace with the layer analysis and without:
    /// what the analysis adds, as a ratio of medians in this run.
    fn analysis_cost(&self, rounds: usize) {
        let mut walls: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let workspace = Workspace::random_layers();
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for analysed in order {
                self.prune_build_cache();
                let scenario = if analysed { "analysed" } else { "bare" };
                let namespace = format!("{}-ours-{scenario}", self.run_id);
                let (runs, _) =
                    self.ours_with(&workspace, &workspace.head, &namespace, None, analysed);
                let repository = format!("{namespace}/{}", workspace.image_name());
                let (digest, manifest) = self.rt.block_on(manifest(
                    &self.services.registry_open,
                    &repository,
                    &workspace.head,
                ));
                let published = Published {
                    tool: Tool::Ours,
                    sha: workspace.head.clone(),
                    sample: Sample {
                        wall: runs[0].wall,
                        bytes: 0,
                        peak_rss_kib: runs[0].peak_rss_kib,
                    },
                    digest,
                    manifest,
                };
                assert_eq!(published.layers().len(), LAYERS, "{scenario}");
                self.remove_images(&published);
                walls[usize::from(!analysed)].push(runs[0].wall);
            }
        }
        let (with, without) = (median(&walls[0]), median(&walls[1]));
        let ratio = with.as_secs_f64() / without.as_secs_f64();
        println!(
            "\nlayer analysis, cold publish (4 × 32 MiB): with {:.2} s, without {:.2} s (medians of {rounds}; each round {:?} / {:?}); with / without {ratio:.3}, {}",
            with.as_secs_f64(),
            without.as_secs_f64(),
            walls[0],
            walls[1],
            verdict(ratio, 1.03)
        );
    }

    /// The cold workspace for two platforms: one index of two images.
    fn two_platforms(&self, rounds: usize) -> Row {
        let mut row = Row::new("cold, two platforms: 4 × 32 MiB each", Some(1.0));
        for round in 0..rounds {
            let workspace = Workspace::random_layers();
            for tool in Tool::order(round) {
                self.prune_build_cache();
                let published = self.publish(
                    tool,
                    &workspace,
                    &workspace.head,
                    "two",
                    Some(TWO_PLATFORMS),
                );
                assert_eq!(published.children(), 2, "{}", tool.name());
                self.remove_images(&published);
                row.add(tool, published.sample);
            }
        }
        row
    }
}

// ---------------------------------------------------------------------------
// Running the tools

impl Bench {
    /// One publish into `<run_id>-<tool>-<scenario>/<image>:<sha>` (for
    /// `platforms`, comma-separated, or the engine's own), checked against
    /// what the registry then holds.
    fn publish(
        &self,
        tool: Tool,
        workspace: &Workspace,
        sha: &str,
        scenario: &str,
        platforms: Option<&str>,
    ) -> Published {
        let namespace = format!("{}-{}-{scenario}", self.run_id, tool.name());
        let repository = format!("{namespace}/{}", workspace.image_name());
        let (bytes_before, _) = self.proxy.snapshot();
        let (runs, digest) = match (tool, &self.baseline) {
            (Tool::Ours, _) => self.ours(workspace, sha, &namespace, platforms),
            (Tool::Docker, Baseline::BuildPush) => {
                assert!(platforms.is_none(), "docker build makes one platform");
                self.docker_build_push(workspace, &repository, sha)
            }
            (Tool::Docker, Baseline::Buildx { .. }) => {
                self.buildx(workspace, &repository, sha, platforms)
            }
        };
        // The tools have exited, but the proxy's threads may still be
        // counting the last bytes they wrote; let them drain.
        std::thread::sleep(Duration::from_millis(100));
        let (found, manifest) =
            self.rt
                .block_on(manifest(&self.services.registry_open, &repository, sha));
        assert_eq!(found, digest, "{}: {repository}:{sha}", tool.name());
        Published {
            tool,
            sha: sha.to_owned(),
            sample: Sample {
                wall: runs.iter().map(|r| r.wall).sum(),
                bytes: self.proxy.snapshot().0 - bytes_before,
                peak_rss_kib: runs.iter().map(|r| r.peak_rss_kib).max().unwrap(),
            },
            digest,
            manifest,
        }
    }

    /// `registry-action publish` as the runner starts it; the digest it
    /// reports.
    fn ours(
        &self,
        workspace: &Workspace,
        sha: &str,
        namespace: &str,
        platforms: Option<&str>,
    ) -> (Vec<Measured>, String) {
        self.ours_with(workspace, sha, namespace, platforms, true)
    }

    /// [`Bench::ours`], with or without the layer analysis.
    fn ours_with(
        &self,
        workspace: &Workspace,
        sha: &str,
        namespace: &str,
        platforms: Option<&str>,
        analysed: bool,
    ) -> (Vec<Measured>, String) {
        let runner = Runner::new();
        let mut command = runner.command(BINARY, workspace.path(), sha, &self.services.docker_host);
        command
            .env("INPUT_COMMAND", "publish")
            .env("INPUT_PATH", workspace.image)
            .env("INPUT_REGISTRY", &self.proxy.addr)
            .env("INPUT_NAMESPACE", namespace)
            .env("INPUT_LATEST", "false")
            .env("INPUT_SCANNER", "none");
        if let Some(platforms) = platforms {
            command.env("INPUT_PLATFORMS", platforms);
        }
        if !analysed {
            command.env(NO_ANALYSIS_VAR, "1");
        }
        let stages = std::env::var_os(STAGES_VAR).is_some();
        if stages {
            command.env("RUST_LOG", "registry_action=debug");
        }
        let (run, outputs) = runner.run(command);
        if stages {
            let log = String::from_utf8_lossy(&run.output.stderr);
            let timed: Vec<&str> = log
                .lines()
                .filter_map(|line| line.split_once("stage ").map(|(_, stage)| stage))
                .collect();
            println!("  ours, {namespace}: {}", timed.join("; "));
        }
        (vec![run], outputs["digest"].clone())
    }

    /// `docker build` then `docker push`; the digest push reports.
    fn docker_build_push(
        &self,
        workspace: &Workspace,
        repository: &str,
        sha: &str,
    ) -> (Vec<Measured>, String) {
        let tag = format!("{}/{repository}:{sha}", self.proxy.addr);
        let dir = workspace.path().join(workspace.image);
        let build = self.docker(&[
            "build",
            "--network",
            "none",
            "-t",
            &tag,
            dir.to_str().unwrap(),
        ]);
        let push = self.docker(&["push", &tag]);
        // `<tag>: digest: sha256:… size: 1234`
        let digest = String::from_utf8_lossy(&push.output.stdout)
            .split("digest: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("docker push names the digest")
            .to_owned();
        (vec![build, push], digest)
    }

    /// `docker buildx build --push` with the engine's own builder; the
    /// digest its metadata file names.
    fn buildx(
        &self,
        workspace: &Workspace,
        repository: &str,
        sha: &str,
        platforms: Option<&str>,
    ) -> (Vec<Measured>, String) {
        let tag = format!("{}/{repository}:{sha}", self.proxy.addr);
        let dir = workspace.path().join(workspace.image);
        let metadata = workspace.path().join("buildx-metadata.json");
        let metadata_arg = metadata.to_str().unwrap();
        let mut args = vec![
            "buildx",
            "build",
            "--push",
            "--provenance=false",
            "--network",
            "none",
            "--metadata-file",
            metadata_arg,
            "-t",
            &tag,
        ];
        if let Some(platforms) = platforms {
            args.extend(["--platform", platforms]);
        }
        args.push(dir.to_str().unwrap());
        let build = self.docker(&args);
        let written: Value = serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
        let digest = written["containerimage.digest"]
            .as_str()
            .expect("buildx's metadata names the digest")
            .to_owned();
        (vec![build], digest)
    }

    /// The baseline's CLI; fails unless it succeeds.
    fn docker(&self, args: &[&str]) -> Measured {
        let run = self.docker_unchecked(args);
        assert!(
            run.output.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&run.output.stderr)
        );
        run
    }

    fn docker_unchecked(&self, args: &[&str]) -> Measured {
        docker_cli(
            self.baseline.program(),
            &self.services.docker_host,
            self.docker_config.path(),
            args,
        )
    }

    fn prune_build_cache(&self) {
        self.docker(&["builder", "prune", "-af"]);
    }

    /// What a publish left in the engine, untagged parents included:
    /// docker's tagged image (the containerd store names it by its
    /// manifest's digest, the classic one by its config's; buildx may have
    /// stored none); ours untags its image but keeps it, and the legacy
    /// builder's per-step images, as cache, all labelled with the commit.
    fn remove_images(&self, published: &Published) {
        match published.tool {
            Tool::Ours => {
                let label = format!("label={REVISION_LABEL}={}", published.sha);
                self.docker(&["image", "prune", "-af", "--filter", &label]);
            }
            Tool::Docker if self.services.engine == CONTAINERD_STORE => {
                self.docker_unchecked(&["image", "rm", "-f", &published.digest]);
            }
            Tool::Docker => {
                self.docker_unchecked(&["image", "rm", "-f", published.config()]);
            }
        }
    }
}

async fn manifest(registry: &str, repository: &str, tag: &str) -> (String, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{repository}/manifests/{tag}"))
        .header("accept", MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let digest = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    (digest, response.json().await.unwrap())
}

// ---------------------------------------------------------------------------
// The workspaces

struct Workspace {
    dir: tempfile::TempDir,
    /// The image directory, relative to the workspace.
    image: &'static str,
    head: String,
}

impl Workspace {
    /// `ops/docker/big`: `FROM scratch` and one `COPY` per 32 MiB file of
    /// bytes no earlier run has produced.
    fn random_layers() -> Self {
        let started = Instant::now();
        let workspace = Self::new("ops/docker/big");
        let image = workspace.path().join(workspace.image);
        let mut dockerfile = String::from("FROM scratch\n");
        let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        for layer in 0..LAYERS {
            let name = format!("blob-{layer}.bin");
            std::fs::write(
                image.join(&name),
                random_bytes(seed, layer as u64, LAYER_BYTES),
            )
            .unwrap();
            dockerfile.push_str(&format!("COPY {name} /data/{name}\n"));
        }
        workspace.commit(&dockerfile, (LAYERS * LAYER_BYTES) as u64, started)
    }

    /// `ops/docker/text`: one `COPY` of copies of this project's `src/`,
    /// and a file naming the round so the layer is new to the engine.
    fn text(round: usize) -> Self {
        let started = Instant::now();
        let workspace = Self::new("ops/docker/text");
        let tree = workspace.path().join(workspace.image).join("tree");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let (mut copies, mut copied) = (0, 0);
        while copied < TEXT_BYTES {
            copied += copy_tree(&src, &tree.join(format!("src-{copies}")));
            copies += 1;
        }
        let nonce = format!("{round} {}\n", uuid::Uuid::new_v4());
        std::fs::write(tree.join("round"), nonce).unwrap();
        workspace.commit("FROM scratch\nCOPY tree /tree\n", copied, started)
    }

    fn new(image: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(image)).unwrap();
        std::fs::write(dir.path().join("README.md"), "bench\n").unwrap();
        Workspace {
            dir,
            image,
            head: String::new(),
        }
    }

    fn commit(mut self, dockerfile: &str, bytes: u64, started: Instant) -> Self {
        std::fs::write(self.path().join(self.image).join("Dockerfile"), dockerfile).unwrap();
        git(self.path(), &["init", "-q", "-b", "main"]);
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", "image"]);
        self.head = git(self.path(), &["rev-parse", "HEAD"]);
        println!(
            "generated and committed {} ({}) in {:.1} s",
            self.image,
            human(bytes),
            started.elapsed().as_secs_f64()
        );
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn image_name(&self) -> &str {
        self.image.rsplit('/').next().unwrap()
    }

    /// A commit that touches nothing in the image directory; its SHA.
    fn commit_outside_image(&self, round: usize) -> String {
        std::fs::write(self.path().join("README.md"), format!("bench {round}\n")).unwrap();
        git(self.path(), &["commit", "-q", "-am", "readme only"]);
        git(self.path(), &["rev-parse", "HEAD"])
    }
}

/// Copies the tree at `from` to `to`; the bytes copied.
fn copy_tree(from: &Path, to: &Path) -> u64 {
    std::fs::create_dir_all(to).unwrap();
    let entries = std::fs::read_dir(from).unwrap();
    entries
        .map(|entry| {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &target)
            } else {
                std::fs::copy(entry.path(), target).unwrap()
            }
        })
        .sum()
}

// ---------------------------------------------------------------------------
// The report

struct Row {
    scenario: &'static str,
    /// The most ours/docker wall time may be.
    goal: Option<f64>,
    /// Samples per tool, in `Tool` order.
    samples: [Vec<Sample>; 2],
    /// Compressed layer blob sizes per round: (ours, docker).
    blobs: Vec<(u64, u64)>,
}

impl Row {
    fn new(scenario: &'static str, goal: Option<f64>) -> Self {
        Row {
            scenario,
            goal,
            samples: [Vec::new(), Vec::new()],
            blobs: Vec::new(),
        }
    }

    fn add(&mut self, tool: Tool, sample: Sample) {
        self.samples[tool as usize].push(sample);
    }

    fn median_wall(&self, tool: Tool) -> Duration {
        let walls: Vec<Duration> = self.samples[tool as usize].iter().map(|s| s.wall).collect();
        median(&walls)
    }

    fn median_bytes(&self, tool: Tool) -> u64 {
        let bytes: Vec<u64> = self.samples[tool as usize]
            .iter()
            .map(|s| s.bytes)
            .collect();
        median(&bytes)
    }

    fn peak_rss_kib(&self, tool: Tool) -> u64 {
        let samples = self.samples[tool as usize].iter();
        samples.map(|s| s.peak_rss_kib).max().unwrap()
    }
}

fn print_table(rows: &[Row], baseline: &str) {
    println!();
    println!(
        "| scenario | ours | {baseline} | ours / docker | goal | bytes ours | bytes docker | peak RSS ours | peak RSS docker CLI |"
    );
    println!("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |");
    for row in rows {
        let (ours, docker) = (row.median_wall(Tool::Ours), row.median_wall(Tool::Docker));
        let ratio = ours.as_secs_f64() / docker.as_secs_f64();
        println!(
            "| {} | {:.2} s | {:.2} s | {ratio:.2} | {} | {} | {} | {} | {} |",
            row.scenario,
            ours.as_secs_f64(),
            docker.as_secs_f64(),
            row.goal.map_or("—".into(), |goal| verdict(ratio, goal)),
            human(row.median_bytes(Tool::Ours)),
            human(row.median_bytes(Tool::Docker)),
            human(row.peak_rss_kib(Tool::Ours) << 10),
            human(row.peak_rss_kib(Tool::Docker) << 10),
        );
    }
    println!();
    for row in rows.iter().filter(|r| !r.blobs.is_empty()) {
        let ratios: Vec<f64> = row
            .blobs
            .iter()
            .map(|&(ours, docker)| ours as f64 / docker as f64)
            .collect();
        let worst = ratios.iter().copied().fold(0.0, f64::max);
        let (ours, docker) = row.blobs[0];
        println!(
            "{}: compressed layer blob ours {ours} B, docker {docker} B (round 1); \
             ours / docker per round {ratios:.3?}, the worst {}",
            row.scenario,
            verdict(worst, 1.05)
        );
    }
    println!(
        "times and bytes are medians of the rounds; bytes are client → registry through the proxy; \
         peak RSS is the largest single process of any round (getrusage RUSAGE_CHILDREN), \
         for docker the CLI's (build or push), not the engine's."
    );
}

fn verdict(ratio: f64, goal: f64) -> String {
    let met = if ratio <= goal { "met" } else { "missed" };
    format!("≤ {goal:.2}: {met}")
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
