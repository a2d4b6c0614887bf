//! `cargo bench --bench multiplatform`: a two-platform publish (linux/amd64
//! and linux/arm64, 4 × 32 MiB of new incompressible bytes per platform)
//! against its baseline, two single-platform publishes with Debian's docker
//! CLI 20.10 and BuildKit (`docker build --platform` then `docker push`,
//! twice: there is no buildx here); and the `merge` step alone (two
//! digests pushed by `push-by-digest` → one index under the SHA tag)
//! against `docker manifest create` + `docker manifest push` over the two
//! images the docker baseline pushed.
//!
//! The real engine and open registry of `scripts/services start`, through
//! one byte-counting proxy; the build cache is pruned before each publish.
//! `MULTIPLATFORM_BENCH_ROUNDS` (default 2) rounds; who goes first
//! alternates. Beyond checking that every run succeeded and that each
//! platform's image is of that platform, it asserts nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::random::random_bytes;
use common::*;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const ROUNDS_VAR: &str = "MULTIPLATFORM_BENCH_ROUNDS";
const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];
const LAYERS: usize = 4;
const LAYER_BYTES: usize = 32 << 20;
const IMAGE: &str = "ops/docker/multi";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn main() -> ExitCode {
    if let Some(code) = measuring_child() {
        return code;
    }
    let Some(services) = Services::for_bench("multiplatform") else {
        return ExitCode::FAILURE;
    };
    let rounds: usize = match std::env::var(ROUNDS_VAR) {
        Ok(n) => n
            .parse()
            .expect("MULTIPLATFORM_BENCH_ROUNDS: a number of rounds"),
        Err(_) => 2,
    };
    assert!(rounds > 0, "{ROUNDS_VAR} must be at least 1");
    let bench = Bench {
        proxy: Proxy::start(&services.registry_open),
        services,
        rt: Runtime::new().unwrap(),
        run_id: format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        docker_config: tempfile::tempdir().unwrap(),
    };
    let (mut publish, mut merge) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..rounds {
        let workspace = workspace();
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for tool in order {
            bench.prune_build_cache();
            publish[tool].push(match tool {
                0 => bench.ours_two_platforms(&workspace, round),
                _ => bench.docker_two_builds(&workspace, round),
            });
        }
        let pushed = bench.pushed_by_digest(&workspace, round);
        for tool in order {
            merge[tool].push(match tool {
                0 => bench.ours_merge(&workspace, &pushed),
                _ => bench.docker_manifest(&workspace, round),
            });
        }
        bench.remove_images(&workspace, round);
    }
    print_table(&publish, &merge);
    ExitCode::SUCCESS
}

struct Bench {
    services: Services,
    proxy: Proxy,
    rt: Runtime,
    run_id: String,
    docker_config: tempfile::TempDir,
}

#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    bytes: u64,
}

/// A git workspace whose image copies 4 files of its target architecture.
struct Workspace {
    dir: tempfile::TempDir,
    head: String,
}

fn workspace() -> Workspace {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join(IMAGE);
    let mut dockerfile = String::from("FROM scratch\nARG TARGETARCH\n");
    let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
    for (p, platform) in PLATFORMS.iter().enumerate() {
        let arch = platform.rsplit('/').next().unwrap();
        std::fs::create_dir_all(image.join(arch)).unwrap();
        for layer in 0..LAYERS {
            let stream = (p * LAYERS + layer) as u64;
            std::fs::write(
                image.join(format!("{arch}/blob-{layer}.bin")),
                random_bytes(seed, stream, LAYER_BYTES),
            )
            .unwrap();
        }
    }
    for layer in 0..LAYERS {
        dockerfile.push_str(&format!(
            "COPY ${{TARGETARCH}}/blob-{layer}.bin /data/blob-{layer}.bin\n"
        ));
    }
    std::fs::write(image.join("Dockerfile"), dockerfile).unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "image"]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    println!(
        "generated and committed {} × {LAYERS} × 32 MiB in {:.1} s",
        PLATFORMS.len(),
        started.elapsed().as_secs_f64()
    );
    Workspace { dir, head }
}

impl Bench {
    fn namespace(&self, what: &str, round: usize) -> String {
        format!("{}-{what}-{round}", self.run_id)
    }

    /// Runs `work`, measuring wall time and bytes sent through the proxy.
    fn measure(&self, work: impl FnOnce() -> Duration) -> Sample {
        let (before, _) = self.proxy.snapshot();
        let wall = work();
        // Let the proxy's threads count the last bytes.
        std::thread::sleep(Duration::from_millis(100));
        Sample {
            wall,
            bytes: self.proxy.snapshot().0 - before,
        }
    }

    fn action(
        &self,
        workspace: &Workspace,
        namespace: &str,
        inputs: &[(&str, &str)],
    ) -> (Duration, std::collections::BTreeMap<String, String>) {
        let runner = Runner::new();
        let mut command = runner.command(
            BINARY,
            workspace.dir.path(),
            &workspace.head,
            &self.services.docker_host,
        );
        command
            .env("INPUT_PATH", IMAGE)
            .env("INPUT_REGISTRY", &self.proxy.addr)
            .env("INPUT_NAMESPACE", namespace)
            .env("INPUT_LATEST", "false")
            .env("INPUT_SCANNER", "none");
        for (name, value) in inputs {
            command.env(format!("INPUT_{}", name.to_uppercase()), value);
        }
        let (run, outputs) = runner.run(command);
        (run.wall, outputs)
    }

    fn ours_two_platforms(&self, workspace: &Workspace, round: usize) -> Sample {
        let namespace = self.namespace("ours", round);
        let sample = self.measure(|| {
            let inputs = [
                ("command", "publish"),
                ("platforms", "linux/amd64,linux/arm64"),
            ];
            self.action(workspace, &namespace, &inputs).0
        });
        let index = self.index(&namespace, &workspace.head);
        assert_eq!(index["mediaType"], INDEX);
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        sample
    }

    fn docker_two_builds(&self, workspace: &Workspace, round: usize) -> Sample {
        let repository = format!("{}/multi", self.namespace("docker", round));
        let dir = workspace.dir.path().join(IMAGE);
        self.measure(|| {
            let mut wall = Duration::ZERO;
            for platform in PLATFORMS {
                let arch = platform.rsplit('/').next().unwrap();
                let tag = format!("{}/{repository}:{}-{arch}", self.proxy.addr, workspace.head);
                let build = self.docker(&[
                    "build",
                    "--network",
                    "none",
                    "--platform",
                    platform,
                    "-t",
                    &tag,
                    dir.to_str().unwrap(),
                ]);
                let push = self.docker(&["push", &tag]);
                wall += build.wall + push.wall;
            }
            wall
        })
    }

    /// Both platforms pushed by digest (not measured): what `merge` lists.
    fn pushed_by_digest(&self, workspace: &Workspace, round: usize) -> Vec<(String, String)> {
        let namespace = self.namespace("merge", round);
        PLATFORMS
            .iter()
            .map(|platform| {
                let inputs = [
                    ("command", "publish"),
                    ("platforms", platform),
                    ("push-by-digest", "true"),
                ];
                let (_, outputs) = self.action(workspace, &namespace, &inputs);
                assert_eq!(outputs["platform"], *platform);
                assert_eq!(outputs["tags"], "", "pushed untagged");
                (namespace.clone(), outputs["digest"].clone())
            })
            .collect()
    }

    fn ours_merge(&self, workspace: &Workspace, pushed: &[(String, String)]) -> Sample {
        let namespace = &pushed[0].0;
        let digests: Vec<&str> = pushed.iter().map(|(_, d)| d.as_str()).collect();
        let digests = digests.join("\n");
        let sample = self.measure(|| {
            let inputs = [("command", "merge"), ("digests", digests.as_str())];
            self.action(workspace, namespace, &inputs).0
        });
        assert_eq!(
            self.index(namespace, &workspace.head)["manifests"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        sample
    }

    /// `docker manifest create` over the same two digests, then push.
    /// `docker manifest create` over the two images its own publishes
    /// pushed (the 20.10 CLI reads no OCI manifests, which ours are).
    fn docker_manifest(&self, workspace: &Workspace, round: usize) -> Sample {
        let repository = format!(
            "{}/{}/multi",
            self.proxy.addr,
            self.namespace("docker", round)
        );
        let list = format!("{repository}:{}", workspace.head);
        self.measure(|| {
            let mut args = vec!["manifest", "create", "--insecure", list.as_str()];
            let children: Vec<String> = PLATFORMS
                .iter()
                .map(|p| format!("{list}-{}", p.rsplit('/').next().unwrap()))
                .collect();
            args.extend(children.iter().map(String::as_str));
            let create = self.docker(&args);
            let push = self.docker(&["manifest", "push", "--insecure", "--purge", &list]);
            create.wall + push.wall
        })
    }

    fn index(&self, namespace: &str, tag: &str) -> serde_json::Value {
        let url = format!(
            "http://{}/v2/{namespace}/multi/manifests/{tag}",
            self.services.registry_open
        );
        self.rt.block_on(async {
            reqwest::Client::new()
                .get(url)
                .header("accept", INDEX)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    fn docker(&self, args: &[&str]) -> Measured {
        docker(&self.services.docker_host, self.docker_config.path(), args)
    }

    /// What the round left in the engine: docker's two tagged images; ours
    /// untags its images but keeps them as cache, labelled with the commit.
    fn remove_images(&self, workspace: &Workspace, round: usize) {
        let repository = format!(
            "{}/{}/multi",
            self.proxy.addr,
            self.namespace("docker", round)
        );
        for platform in PLATFORMS {
            let arch = platform.rsplit('/').next().unwrap();
            let tag = format!("{repository}:{}-{arch}", workspace.head);
            self.docker(&["image", "rm", "-f", &tag]);
        }
        let label = format!("label=org.opencontainers.image.revision={}", workspace.head);
        self.docker(&["image", "prune", "-af", "--filter", &label]);
    }

    fn prune_build_cache(&self) {
        self.docker(&["builder", "prune", "-af"]);
    }
}

fn print_table(publish: &[Vec<Sample>; 2], merge: &[Vec<Sample>; 2]) {
    println!();
    println!("| step | ours | docker | ours / docker | bytes ours | bytes docker |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, samples, baseline) in [
        (
            "two-platform publish, 4 × 32 MiB each",
            publish,
            "2 × (build --platform + push)",
        ),
        (
            "merge: 2 digests → index + SHA tag",
            merge,
            "manifest create + push",
        ),
    ] {
        let wall = |s: &Vec<Sample>| median(&s.iter().map(|s| s.wall).collect::<Vec<_>>());
        let bytes = |s: &Vec<Sample>| median(&s.iter().map(|s| s.bytes).collect::<Vec<_>>());
        let (ours, docker) = (wall(&samples[0]), wall(&samples[1]));
        println!(
            "| {name} (docker: {baseline}) | {:.2} s | {:.2} s | {:.2} | {} KiB | {} KiB |",
            ours.as_secs_f64(),
            docker.as_secs_f64(),
            ours.as_secs_f64() / docker.as_secs_f64(),
            bytes(&samples[0]) >> 10,
            bytes(&samples[1]) >> 10,
        );
    }
    println!("medians of the rounds; bytes are client → registry through the proxy.");
}
