//! Helpers the bench binaries share.

#![allow(dead_code)]

pub mod random;

#[path = "../../tests/it/support/fixtures.rs"]
pub mod fixtures;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

const DEFAULT_SERVICES: &str = "/tmp/registry-action-services";

/// GITHUB_OUTPUT as the runner reads it: `NAME=VALUE`, or `NAME<<DELIMITER`
/// then the value's lines up to the delimiter.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let heredoc = line
            .split_once("<<")
            .filter(|(name, _)| !name.contains('='));
        if let Some((name, delimiter)) = heredoc {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            outputs.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_owned(), value.to_owned());
        }
    }
    outputs
}

/// Git without global or system config, so a developer's settings (hooks,
/// fsmonitor, signing) can't change the repository or the timing.
pub fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com");
    command
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_command(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn ms(wall: Duration) -> String {
    format!("{:.1} ms", wall.as_secs_f64() * 1000.0)
}

/// The middle value (the upper of the two middle ones for an even count).
pub fn median<T: Ord + Copy>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

// ---------------------------------------------------------------------------
// Peak RSS of one child process

const PEAK_RSS_ARG: &str = "--peak-rss-of";
const PEAK_RSS_LINE: &str = "\npeak-rss-kib=";

/// `program` started through this bench binary, which runs it and adds its
/// peak RSS to the end of stderr: getrusage(RUSAGE_CHILDREN) in that
/// middle process sees the one program alone. Set env, args and current
/// directory on the returned command as on the program's own; run it with
/// `run_measured`, and call `measuring_child` first thing in `main`.
pub fn measured_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.arg(PEAK_RSS_ARG).arg(program);
    command
}

/// In the middle process `measured_command` starts: runs the program with
/// this process's environment and stdio, and exits with its code.
pub fn measuring_child() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != PEAK_RSS_ARG {
        return None;
    }
    let status = Command::new(args.next().unwrap())
        .args(args)
        .status()
        .unwrap();
    let kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    eprint!("{PEAK_RSS_LINE}{kib}");
    Some(ExitCode::from(status.code().map_or(1, |c| c as u8)))
}

pub struct Measured {
    /// The program's, with the peak RSS line taken off stderr.
    pub output: Output,
    pub wall: Duration,
    pub peak_rss_kib: u64,
}

pub fn run_measured(mut command: Command) -> Measured {
    let started = Instant::now();
    let mut output = command.output().unwrap();
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let (program_stderr, kib) = stderr
        .rsplit_once(PEAK_RSS_LINE)
        .expect("the measuring child reports a peak RSS");
    output.stderr = program_stderr.as_bytes().to_vec();
    Measured {
        output,
        wall,
        peak_rss_kib: kib.trim().parse().unwrap(),
    }
}

/// Debian's 20.10 docker CLI (/usr/bin/docker) with BuildKit, the engine
/// at `docker_host` and an empty DOCKER_CONFIG (`config`: no credential
/// helper or user setting); fails unless it succeeds.
pub fn docker(docker_host: &str, config: &Path, args: &[&str]) -> Measured {
    let run = docker_cli(Path::new("/usr/bin/docker"), docker_host, config, args);
    assert!(
        run.output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&run.output.stderr)
    );
    run
}

/// The docker CLI at `program` with BuildKit, the engine at `docker_host`
/// and the DOCKER_CONFIG `config`, successful or not.
pub fn docker_cli(program: &Path, docker_host: &str, config: &Path, args: &[&str]) -> Measured {
    let mut command = measured_command(program);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DOCKER_HOST", docker_host)
        .env("DOCKER_BUILDKIT", "1")
        .env("DOCKER_CONFIG", config)
        .args(args);
    run_measured(command)
}

// ---------------------------------------------------------------------------
// The action as a GitHub runner starts it

/// A runner's files for one step: outputs, summary, the push event.
pub struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for file in ["set_output", "step_summary"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        Runner { dir }
    }

    /// `binary` (measured) with the environment of a push of `sha` to
    /// `main` in `workspace`; the caller adds the `INPUT_*`.
    pub fn command(&self, binary: &str, workspace: &Path, sha: &str, docker_host: &str) -> Command {
        let event = self.dir.path().join("event.json");
        let payload = serde_json::json!({
            "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000",
            "after": sha,
            "created": false,
            "deleted": false,
            "forced": false,
            "repository": {"full_name": "acme/monorepo", "default_branch": "main"},
        });
        std::fs::write(&event, payload.to_string()).unwrap();
        let mut command = measured_command(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", workspace)
            .env("GITHUB_REPOSITORY", "acme/monorepo")
            .env("GITHUB_REPOSITORY_OWNER", "acme")
            .env("GITHUB_EVENT_NAME", "push")
            .env("GITHUB_EVENT_PATH", &event)
            .env("GITHUB_REF", "refs/heads/main")
            .env("GITHUB_SHA", sha)
            // A closed loopback port: the step must not need the GitHub API.
            .env("GITHUB_API_URL", "http://127.0.0.1:9")
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_OUTPUT", self.dir.path().join("set_output"))
            .env("GITHUB_STEP_SUMMARY", self.dir.path().join("step_summary"))
            .env("RUNNER_TEMP", self.dir.path())
            .env("DOCKER_HOST", docker_host)
            .current_dir(workspace);
        command
    }

    /// Runs `command`, failing with its log and summary unless it succeeds;
    /// the outputs it wrote.
    pub fn run(&self, command: Command) -> (Measured, BTreeMap<String, String>) {
        let run = run_measured(command);
        let summary = std::fs::read_to_string(self.dir.path().join("step_summary")).unwrap();
        assert!(
            run.output.status.success(),
            "the step failed:\n{}\n{}\n{summary}",
            String::from_utf8_lossy(&run.output.stdout),
            String::from_utf8_lossy(&run.output.stderr),
        );
        let outputs = std::fs::read_to_string(self.dir.path().join("set_output")).unwrap();
        (run, parse_outputs(&outputs))
    }
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------
// The services

pub struct Services {
    /// The engine `REGISTRY_ACTION_ENGINE` selects (default `20.10`), as
    /// the integration tests spell it.
    pub engine: String,
    /// That engine's `unix://` socket.
    pub docker_host: String,
    /// Docker 28's CLI and plugins (`bin/docker`, `cli-plugins/docker-buildx`).
    pub docker_28: PathBuf,
    pub registry_open: String,
}

/// `REGISTRY_ACTION_ENGINE`'s names and the env file's key for each socket.
const ENGINES: [(&str, &str); 3] = [
    ("20.10", "DOCKER_HOST"),
    ("28-classic", "DOCKER_HOST_28_CLASSIC"),
    ("28-containerd", "DOCKER_HOST_28_CONTAINERD"),
];

impl Services {
    /// The services for the `bench` bench; when they aren't running, says
    /// how to start them and gives `None`.
    pub fn for_bench(bench: &str) -> Option<Self> {
        Self::load()
            .map_err(|e| {
                eprintln!(
                    "the {bench} bench needs the Docker Engine and the registries: {e}; \
                     run `scripts/services start` first (as root)"
                )
            })
            .ok()
    }

    /// `$REGISTRY_ACTION_SERVICES/env`, as `scripts/services start` writes it.
    pub fn load() -> Result<Self, String> {
        let dir = std::env::var_os("REGISTRY_ACTION_SERVICES")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_SERVICES), PathBuf::from);
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {} ({e})", file.display()))?;
        let env: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |key: &str| {
            env.get(key)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("{} has no {key}", file.display()))
        };
        let engine = std::env::var("REGISTRY_ACTION_ENGINE")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| ENGINES[0].0.to_owned());
        let (_, key) = ENGINES
            .iter()
            .find(|(name, _)| *name == engine)
            .ok_or_else(|| {
                format!("REGISTRY_ACTION_ENGINE is '{engine}', not one of {ENGINES:?}")
            })?;
        let services = Services {
            docker_host: get(key)?,
            docker_28: PathBuf::from(get("DOCKER_28")?),
            registry_open: get("REGISTRY_OPEN")?,
            engine,
        };
        TcpStream::connect(&services.registry_open).map_err(|e| {
            format!(
                "the open registry {} (from {}) does not answer ({e})",
                services.registry_open,
                file.display()
            )
        })?;
        Ok(services)
    }
}

// ---------------------------------------------------------------------------
// A loopback proxy that counts what the client sends

/// Client → registry traffic of every connection, summed.
#[derive(Default)]
pub struct Counters {
    bytes: AtomicU64,
    requests: AtomicU64,
}

pub struct Proxy {
    pub addr: String,
    counters: Arc<Counters>,
}

impl Proxy {
    /// On 127.0.0.1:0, one thread per direction of each connection.
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let counters = Arc::new(Counters::default());
        let (upstream, shared) = (upstream.to_owned(), counters.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2, counters) = (
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    shared.clone(),
                );
                std::thread::spawn(move || pipe(client, server, Some(&counters)));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        Proxy { addr, counters }
    }

    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.counters.bytes.load(Ordering::Relaxed),
            self.counters.requests.load(Ordering::Relaxed),
        )
    }
}

/// Copies until EOF, then half-closes the other side. Client → registry
/// counts bytes and request lines (`… HTTP/1.1\r\n`; a 11-byte match inside
/// random layer bytes is vanishingly unlikely).
fn pipe(mut from: TcpStream, mut to: TcpStream, counters: Option<&Counters>) {
    const LINE_END: &[u8] = b" HTTP/1.1\r\n";
    let mut buf = vec![0; 256 << 10];
    // How much of LINE_END the stream ends with; the pattern's first byte
    // occurs nowhere else in it, so a mismatch restarts at 0 or 1.
    let mut matched = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(counters) = counters {
            counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
            for &b in &buf[..n] {
                matched = if b == LINE_END[matched] {
                    matched + 1
                } else {
                    usize::from(b == LINE_END[0])
                };
                if matched == LINE_END.len() {
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    matched = 0;
                }
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
