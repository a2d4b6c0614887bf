//! `cargo bench --bench bases`: a 6-image, 3-tier monorepo published as one
//! matrix whose jobs all start at once (concurrent `publish` processes,
//! each given its entry's `depends-on`), against the same matrix one job
//! at a time in tier order (`max-parallel: 1`), on the real engine and the
//! open registry that `scripts/services start` runs.
//!
//! Tier 0: `base`, `tool`; tier 1: `runtime` and `web` FROM `base`; tier 2:
//! `app` FROM `runtime`, `worker` FROM `web`. Each image copies 1 MiB of
//! its own and runs a 2-second `RUN` standing for build work that is not
//! CPU-bound (these machines have 2 cores). Every (mode, round) builds a
//! commit of its own, so no build is a cache hit of another.
//!
//! `BASES_BENCH_ROUNDS` (default 2) rounds; who goes first alternates. Not
//! a test: beyond checking that every publish succeeded and that every
//! dependent's layers start with its base's layers of that commit, it
//! asserts nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const BUSYBOX: &str = "/bin/busybox";
const ROUNDS_VAR: &str = "BASES_BENCH_ROUNDS";
/// Image, and the image of this repository it builds FROM.
const IMAGES: [(&str, Option<&str>); 6] = [
    ("base", None),
    ("tool", None),
    ("runtime", Some("base")),
    ("web", Some("base")),
    ("app", Some("runtime")),
    ("worker", Some("web")),
];

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Every job at once, waiting through `depends-on`.
    Parallel,
    /// One job at a time in matrix (tier) order.
    Sequential,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Parallel => "parallel",
            Mode::Sequential => "sequential",
        }
    }
}

fn main() -> ExitCode {
    let Some(services) = Services::for_bench("bases") else {
        return ExitCode::FAILURE;
    };
    let rounds: usize =
        std::env::var(ROUNDS_VAR).map_or(2, |n| n.parse().expect("BASES_BENCH_ROUNDS: a number"));
    let run_id = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let rt = Runtime::new().unwrap();
    let mut walls = [(Mode::Parallel, Vec::new()), (Mode::Sequential, Vec::new())];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let mode = walls[i].0;
            let namespace = format!("{run_id}-{}-{round}", mode.name());
            let monorepo = Monorepo::new(&services, &namespace);
            let matrix = monorepo.plan(&services);
            let wall = monorepo.publish(&services, &matrix, mode);
            rt.block_on(monorepo.check(&services));
            println!("round {round}: {} {:.1} s", mode.name(), wall.as_secs_f64());
            walls[i].1.push(wall);
        }
    }
    let wall = |i: usize| median(&walls[i].1).as_secs_f64();
    println!();
    println!("| 6 images, 3 tiers | wall (median of {rounds}) |");
    println!("| --- | ---: |");
    println!(
        "| one matrix, all at once, `depends-on` | {:.1} s |",
        wall(0)
    );
    println!("| `max-parallel: 1` (sequential) | {:.1} s |", wall(1));
    println!("| sequential / parallel | {:.2}× |", wall(1) / wall(0));
    ExitCode::SUCCESS
}

/// The monorepo checked out at one commit, pushed under `namespace`.
struct Monorepo {
    dir: tempfile::TempDir,
    namespace: String,
    sha: String,
}

impl Monorepo {
    fn new(services: &Services, namespace: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        for (image, from) in IMAGES {
            let root = dir.path().join("ops/docker").join(image);
            std::fs::create_dir_all(&root).unwrap();
            let from = match from {
                Some(base) => format!("FROM {}/{namespace}/{base}\n", services.registry_open),
                None => {
                    std::fs::copy(BUSYBOX, root.join("busybox")).unwrap();
                    "FROM scratch\nCOPY busybox /bin/busybox\n".to_owned()
                }
            };
            let dockerfile = format!(
                "{from}COPY data /data/{image}\nRUN [\"/bin/busybox\", \"sleep\", \"2\"]\n"
            );
            std::fs::write(root.join("Dockerfile"), dockerfile).unwrap();
            std::fs::write(
                root.join("data"),
                format!("{image} {nonce}\n").repeat(1 << 15),
            )
            .unwrap();
        }
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "six images"]);
        let sha = git(dir.path(), &["rev-parse", "HEAD"]);
        Monorepo {
            dir,
            namespace: namespace.to_owned(),
            sha,
        }
    }

    /// `plan` with `all`: the matrix, in tier order.
    fn plan(&self, services: &Services) -> Vec<Value> {
        let runner = Runner::new(self, services);
        let out = runner
            .command(&[("command", "plan"), ("all", "true"), ("source", "git")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let matrix: Vec<Value> = serde_json::from_str(&runner.outputs()["matrix"]).unwrap();
        let tiers: Vec<u64> = matrix.iter().map(|e| e["tier"].as_u64().unwrap()).collect();
        assert_eq!(tiers, [0, 0, 1, 1, 2, 2], "{matrix:?}");
        matrix
    }

    /// Publishes every entry; the wall time from the first start to the
    /// last exit.
    fn publish(&self, services: &Services, matrix: &[Value], mode: Mode) -> Duration {
        let started = Instant::now();
        let jobs: Vec<(Runner, Command)> = matrix
            .iter()
            .map(|entry| {
                let runner = Runner::new(self, services);
                let depends_on = match mode {
                    Mode::Parallel => entry["depends-on"].to_string(),
                    Mode::Sequential => String::new(),
                };
                let path = entry["path"].as_str().unwrap();
                let command = runner.command(&[
                    ("command", "publish"),
                    ("path", path),
                    ("depends-on", &depends_on),
                    ("latest", "true"),
                    ("network", "none"),
                    ("scanner", "none"),
                ]);
                (runner, command)
            })
            .collect();
        match mode {
            Mode::Parallel => {
                let children: Vec<(Runner, Child)> = jobs
                    .into_iter()
                    .map(|(r, mut c)| (r, c.spawn().unwrap()))
                    .collect();
                for (runner, child) in children {
                    runner.succeeded(child.wait_with_output().unwrap());
                }
            }
            Mode::Sequential => {
                for (runner, mut command) in jobs {
                    runner.succeeded(command.output().unwrap());
                }
            }
        }
        started.elapsed()
    }

    /// Every dependent's layers start with its base's layers of this commit.
    async fn check(&self, services: &Services) {
        for (image, from) in IMAGES {
            let Some(base) = from else { continue };
            let base_layers =
                layers(services, &format!("{}/{base}", self.namespace), &self.sha).await;
            let layers = layers(services, &format!("{}/{image}", self.namespace), &self.sha).await;
            assert_eq!(
                layers[..base_layers.len()],
                base_layers[..],
                "{image} is not built on this commit's {base}"
            );
        }
    }
}

async fn layers(services: &Services, repository: &str, tag: &str) -> Vec<String> {
    let manifest: Value = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/{repository}/manifests/{tag}",
            services.registry_open
        ))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// One job's runner: its temp folder and file-command files.
struct Runner {
    temp: tempfile::TempDir,
    workspace: PathBuf,
    env: Vec<(String, String)>,
}

impl Runner {
    fn new(monorepo: &Monorepo, services: &Services) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let path = temp.path().join(name);
            std::fs::write(&path, "").unwrap();
            path.display().to_string()
        };
        let env = [
            ("CI", "true".to_owned()),
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_REPOSITORY", "acme/monorepo".to_owned()),
            ("GITHUB_REF", "refs/heads/main".to_owned()),
            ("GITHUB_SHA", monorepo.sha.clone()),
            // A closed port: the registry alone decides, as on Forgejo.
            ("GITHUB_API_URL", "http://127.0.0.1:9".to_owned()),
            (
                "GITHUB_WORKSPACE",
                monorepo.dir.path().display().to_string(),
            ),
            ("GITHUB_OUTPUT", file("set_output")),
            ("GITHUB_STEP_SUMMARY", file("step_summary")),
            ("RUNNER_TEMP", temp.path().display().to_string()),
            ("DOCKER_HOST", services.docker_host.clone()),
            ("INPUT_REGISTRY", services.registry_open.clone()),
            ("INPUT_NAMESPACE", monorepo.namespace.clone()),
        ];
        Runner {
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            workspace: monorepo.dir.path().to_owned(),
            temp,
        }
    }

    fn command(&self, inputs: &[(&str, &str)]) -> Command {
        let mut command = Command::new(BINARY);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(
                inputs
                    .iter()
                    .map(|(k, v)| (format!("INPUT_{}", k.to_uppercase()), v)),
            )
            .current_dir(&self.workspace);
        command
    }

    fn outputs(&self) -> std::collections::BTreeMap<String, String> {
        parse_outputs(&std::fs::read_to_string(self.path("set_output")).unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }

    fn succeeded(&self, out: std::process::Output) {
        assert!(
            out.status.success(),
            "publish failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.path("step_summary")).unwrap()
        );
    }
}
