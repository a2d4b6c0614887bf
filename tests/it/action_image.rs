//! The action's own image, run the way the runners run a container action:
//! `docker run` with the GitHub runner's flags, mounts and environment (or
//! the Forgejo runner's layout), the Docker socket mounted in, a workspace
//! owned by another uid, a real push event, inputs only as `INPUT_*`.
//!
//! The image is built by `scripts/action-image` (FROM scratch: the binary
//! cargo built for these tests, git, the libraries both load, CA
//! certificates), since no base image can be pulled here. Inside it the scanner runs as a container of the local
//! Trivy image: the export lives in the action container's RUNNER_TEMP,
//! which is no path of the engine's host, so this also proves the archive
//! reaches the scanner through the engine API rather than a bind mount.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::scan_container::scanner_image;
use crate::support::run::parse_file_commands;
use crate::support::services::{Services, services};

/// The tag `scripts/action-image` builds for these tests.
const IMAGE: &str = "registry-action-test/action:e2e";

/// The uid the runner's workspace belongs to (GitHub's hosted `runner`).
const WORKSPACE_OWNER: u32 = 1001;

/// The local Trivy image, an image of its own (another ID than the scan
/// tests'), so that their count of scanner containers is theirs alone.
const SCANNER_IMAGE: &str = "registry-action-test/trivy:0.59.1-action";

/// Stands in for `${{ github.token }}`; nothing here reaches GitHub.
const FAKE_TOKEN: &str = "ghs_e2eFakeTokenForTheContainerTests0000";

/// The image, built once per test process.
fn action_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/action-image");
        // The binary these tests were built with: no release build in CI.
        let out = Command::new(&script)
            .args(["--binary", env!("CARGO_BIN_EXE_registry-action"), IMAGE])
            .env("DOCKER_HOST", &services().docker_host)
            .output()
            .expect("scripts/action-image runs");
        assert!(
            out.status.success(),
            "{} failed; it needs git and the engine of scripts/services:\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IMAGE
}

/// Which runner's layout the container gets.
#[derive(Clone, Copy)]
enum Kind {
    GitHub,
    Forgejo,
}

/// One job's host side: the workspace and the runner's own directories,
/// mounted into each step's container where that runner mounts them.
struct Job {
    kind: Kind,
    host: tempfile::TempDir,
    workspace: PathBuf,
    /// The step's environment besides its inputs: the runner's variables
    /// and the workflow's `env:`.
    env: BTreeMap<String, String>,
    /// The image run; the one `scripts/action-image` built unless set.
    image: Option<String>,
}

/// What one step left behind.
struct Step {
    code: i32,
    log: String,
    outputs: BTreeMap<String, String>,
    outputs_raw: String,
    summary: String,
    /// From `docker run` to the container's first line of output.
    first_output: Duration,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- log\n{}\n--- outputs\n{}\n--- summary\n{}",
            self.code, self.log, self.outputs_raw, self.summary
        )
    }
}

impl Job {
    fn new(kind: Kind, repo: &Demo) -> Self {
        let host = tempfile::tempdir().expect("temp dir");
        let workspace = repo.dir.path().join("monorepo");
        let mut job = Job {
            kind,
            host,
            workspace,
            env: BTreeMap::new(),
            image: None,
        };
        for (host, inside) in job.mounts() {
            if inside != job.workdir() {
                std::fs::create_dir_all(host).expect("runner dir");
            }
        }
        let event = serde_json::json!({
            "ref": "refs/heads/main", "before": repo.before, "after": repo.after,
            "created": false, "deleted": false, "forced": false,
            "repository": {"default_branch": "main", "full_name": "demo/monorepo"},
        });
        write_new(
            &job.host_path(job.event_path()),
            &serde_json::to_vec_pretty(&event).expect("json"),
        );
        job.env = job.runner_env(&repo.after);
        job
    }

    /// `(host, container)` mounts besides the Docker socket.
    fn mounts(&self) -> Vec<(PathBuf, String)> {
        let host = self.host.path();
        match self.kind {
            Kind::GitHub => vec![
                (host.join("_temp"), "/github/runner_temp".into()),
                (host.join("_temp/_github_home"), "/github/home".into()),
                (
                    host.join("_temp/_github_workflow"),
                    "/github/workflow".into(),
                ),
                (
                    host.join("_temp/_runner_file_commands"),
                    "/github/file_commands".into(),
                ),
                (self.workspace.clone(), self.workdir().into()),
            ],
            // act copies these in and out of the container; a bind mount
            // gives the test the same files.
            Kind::Forgejo => vec![
                (host.join("act"), "/var/run/act".into()),
                (self.workspace.clone(), self.workdir().into()),
            ],
        }
    }

    fn workdir(&self) -> &'static str {
        match self.kind {
            Kind::GitHub => "/github/workspace",
            Kind::Forgejo => "/workspace/demo/monorepo",
        }
    }

    fn event_path(&self) -> &'static str {
        match self.kind {
            Kind::GitHub => "/github/workflow/event.json",
            Kind::Forgejo => "/var/run/act/workflow/event.json",
        }
    }

    /// The file-command files: GitHub makes fresh ones per step, act
    /// keeps fixed names.
    fn file_commands(&self) -> Vec<(&'static str, String)> {
        match self.kind {
            Kind::GitHub => {
                let id = uuid::Uuid::new_v4();
                [
                    ("GITHUB_OUTPUT", "set_output"),
                    ("GITHUB_STEP_SUMMARY", "step_summary"),
                    ("GITHUB_ENV", "set_env"),
                    ("GITHUB_PATH", "add_path"),
                    ("GITHUB_STATE", "save_state"),
                ]
                .into_iter()
                .map(|(var, prefix)| (var, format!("/github/file_commands/{prefix}_{id}")))
                .collect()
            }
            Kind::Forgejo => [
                ("GITHUB_OUTPUT", "outputcmd.txt"),
                ("GITHUB_STEP_SUMMARY", "SUMMARY.md"),
                ("GITHUB_ENV", "envs.txt"),
                ("GITHUB_PATH", "pathcmd.txt"),
                ("GITHUB_STATE", "statecmd.txt"),
            ]
            .into_iter()
            .map(|(var, name)| (var, format!("/var/run/act/workflow/{name}")))
            .collect(),
        }
    }

    /// A path inside the container → the host file behind it.
    fn host_path(&self, inside: &str) -> PathBuf {
        self.mounts()
            .into_iter()
            .filter_map(|(host, mount)| {
                inside
                    .strip_prefix(&mount)
                    .map(|rest| host.join(rest.trim_start_matches('/')))
            })
            .next()
            .unwrap_or_else(|| panic!("{inside} is on no mount"))
    }

    /// What each runner exports to a container action's step.
    fn runner_env(&self, sha: &str) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "demo-user"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_JOB", "publish"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_REF_TYPE", "branch"),
            ("GITHUB_REPOSITORY", "demo/monorepo"),
            ("GITHUB_REPOSITORY_OWNER", "demo"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_RUN_ID", "4242"),
            ("GITHUB_RUN_NUMBER", "7"),
            ("GITHUB_WORKFLOW", "images"),
            ("RUNNER_ARCH", "X64"),
            ("RUNNER_OS", "Linux"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut set = |k: &str, v: &str| env.insert(k.to_owned(), v.to_owned());
        set("GITHUB_SHA", sha);
        set("GITHUB_WORKSPACE", self.workdir());
        set("GITHUB_EVENT_PATH", self.event_path());
        match self.kind {
            Kind::GitHub => {
                // Closed ports: nothing may reach the internet.
                set("GITHUB_API_URL", "http://127.0.0.1:9");
                set("GITHUB_SERVER_URL", "https://github.com");
                set("HOME", "/github/home");
                set("RUNNER_TEMP", "/github/runner_temp");
                // Host paths the runner does not translate: absent inside.
                set("RUNNER_TOOL_CACHE", "/opt/hostedtoolcache");
                set("RUNNER_WORKSPACE", "/home/runner/work/monorepo");
            }
            Kind::Forgejo => {
                set("GITHUB_API_URL", "http://127.0.0.1:9/api/v1");
                set("GITHUB_SERVER_URL", "http://127.0.0.1:9");
                set("GITEA_ACTIONS", "true");
                set("FORGEJO_ACTIONS", "true");
                set("GITHUB_TOKEN", FAKE_TOKEN);
                set("FORGEJO_TOKEN", FAKE_TOKEN);
                // Private to the step container: the image's own /tmp.
                set("RUNNER_TEMP", "/tmp");
            }
        }
        env
    }

    /// The workflow's `env:`: Trivy offline on the demo's database, copied
    /// where the container sees it.
    fn with_trivy(mut self, cache: &Path) -> Self {
        let (host_cache, inside) = match self.kind {
            Kind::GitHub => (
                self.host.path().join("_temp/trivy-cache"),
                "/github/runner_temp/trivy-cache",
            ),
            Kind::Forgejo => (
                self.workspace.join(".trivy-cache"),
                "/workspace/demo/monorepo/.trivy-cache",
            ),
        };
        copy_dir(cache, &host_cache);
        // A file that is all hole, as scanner databases often partly are:
        // the copy into the scanner container must take sparse files.
        std::fs::File::create(host_cache.join("sparse-probe"))
            .and_then(|f| f.set_len(1 << 20))
            .expect("sparse file");
        for (k, v) in [
            ("TRIVY_CACHE_DIR", inside),
            ("TRIVY_SKIP_DB_UPDATE", "true"),
            ("TRIVY_OFFLINE_SCAN", "true"),
            ("TRIVY_DISABLE_VEX_NOTICE", "true"),
        ] {
            self.env.insert(k.to_owned(), v.to_owned());
        }
        self
    }

    /// One step: every input of action.yml at its default (as the runner
    /// exports them), `with` on top, then `docker run` as the runner does.
    fn step(&self, with: &[(&str, &str)]) -> Step {
        let files = self.file_commands();
        for (_, inside) in &files {
            write_new(&self.host_path(inside), b"");
        }
        let mut env = self.env.clone();
        env.extend(files.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env.extend(action_defaults().iter().map(|(name, default)| {
            let value = default.replace("${{ github.token }}", FAKE_TOKEN);
            (input_var(name), value)
        }));
        for (name, value) in with {
            env.insert(input_var(name), (*value).to_owned());
        }
        let args = self.run_args(&env);
        let (code, log, first_output) = docker_run(&args, &env);
        let read = |var: &str| {
            let inside = &files.iter().find(|(k, _)| *k == var).expect("file").1;
            std::fs::read_to_string(self.host_path(inside)).expect("file-command file")
        };
        let outputs_raw = read("GITHUB_OUTPUT");
        Step {
            code,
            log,
            outputs: parse_file_commands(&outputs_raw),
            outputs_raw,
            summary: read("GITHUB_STEP_SUMMARY"),
            first_output,
        }
    }

    /// The runner's `docker run` arguments: each variable as a bare
    /// `-e NAME` (the value comes from the client's environment, unparsed).
    fn run_args(&self, env: &BTreeMap<String, String>) -> Vec<String> {
        let s = services();
        let name = format!(
            "registry-action-e2e-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut args: Vec<String> = [
            "run",
            "--name",
            &name,
            "--label",
            "registry-action-e2e",
            "--workdir",
            self.workdir(),
            "--rm",
            // The engine has no bridge network; the registries are on loopback.
            "--network",
            "host",
        ]
        .map(str::to_owned)
        .to_vec();
        for key in env.keys() {
            args.extend(["-e".to_owned(), key.clone()]);
        }
        let socket = (s.docker_socket.clone(), "/var/run/docker.sock".to_owned());
        for (host, inside) in std::iter::once(socket).chain(self.mounts()) {
            args.extend(["-v".to_owned(), format!("{}:{inside}", host.display())]);
        }
        args.push(
            self.image
                .clone()
                .unwrap_or_else(|| action_image().to_owned()),
        );
        args
    }
}

/// `docker run …`: exit code, stdout and stderr together, and how long
/// until the first byte of output.
fn docker_run(args: &[String], env: &BTreeMap<String, String>) -> (i32, String, Duration) {
    use std::io::Read as _;
    let started = Instant::now();
    let mut child = Command::new("docker")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DOCKER_HOST", &services().docker_host)
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the docker client runs");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    let read = stdout.read(&mut first).expect("stdout");
    let first_output = started.elapsed();
    let mut log = String::from_utf8_lossy(&first[..read]).into_owned();
    stdout.read_to_string(&mut log).expect("stdout");
    let status = child.wait().expect("docker run ends");
    log.push_str(&err_reader.join().expect("stderr reader"));
    (status.code().unwrap_or(-1), log, first_output)
}

/// `INPUT_` + the id upper-cased, spaces to `_`, hyphens kept.
fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

/// action.yml's inputs with their defaults (`""` when none).
fn action_defaults() -> &'static BTreeMap<String, String> {
    static DEFAULTS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"))
            .expect("action.yml");
        let yml: serde_yaml::Value = serde_yaml::from_str(&text).expect("action.yml is YAML");
        yml["inputs"]
            .as_mapping()
            .expect("inputs")
            .iter()
            .map(|(name, spec)| {
                let default = match &spec["default"] {
                    serde_yaml::Value::String(s) => s.clone(),
                    serde_yaml::Value::Null => String::new(),
                    other => serde_yaml::to_string(other)
                        .expect("yaml")
                        .trim()
                        .to_owned(),
                };
                (name.as_str().expect("input id").to_owned(), default)
            })
            .collect()
    })
}

/// Writes `path`, making its folder first.
fn write_new(path: &Path, content: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("folder");
    }
    std::fs::write(path, content).expect("file");
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        status.success(),
        "cp -r {} {}",
        from.display(),
        to.display()
    );
}

/// examples/monorepo as a git repository: everything imported, then a
/// push changing `base`, the way scripts/demo makes it.
struct Demo {
    dir: tempfile::TempDir,
    before: String,
    after: String,
    namespace: String,
}

impl Demo {
    /// `namespace` is unique to the run: `app` builds FROM
    /// `${REGISTRY}/<namespace>/base`, so its Dockerfile is made to say so.
    fn new(namespace: &str) -> Self {
        let namespace = format!(
            "{namespace}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("monorepo");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo"),
            &repo,
        );
        let app = repo.join("ops/docker/app/Dockerfile");
        let text = std::fs::read_to_string(&app).expect("app's Dockerfile");
        assert!(text.contains("/demo/base:latest"), "{text}");
        std::fs::write(
            &app,
            text.replace("/demo/base:", &format!("/{namespace}/base:")),
        )
        .expect("app's Dockerfile");
        let git = |args: &[&str]| git(&repo, args);
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "-A"]);
        git(&["commit", "-qm", "initial import"]);
        let before = git(&["rev-parse", "HEAD"]);
        std::fs::write(repo.join("ops/docker/base/rootfs/etc/motd"), "revised\n").expect("motd");
        git(&["commit", "-qam", "base: new motd"]);
        let after = git(&["rev-parse", "HEAD"]);
        // The runner's checkout belongs to its own user, not to root.
        let status = Command::new("chown")
            .args(["-R", &format!("{WORKSPACE_OWNER}:{WORKSPACE_OWNER}")])
            .arg(&repo)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown the workspace");
        Demo {
            dir,
            before,
            after,
            namespace,
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The demo's made-up advisories as an offline Trivy database.
fn demo_trivy_db() -> &'static Path {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = dir.path().join("cache");
        let advisories = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/advisories.json");
        crate::support::trivy_db::write_db_of(&advisories, &cache)
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, cache)
    })
    .1
}

/// The registry's answer for `GET /v2/<path>`: status, digest header, body.
async fn registry_get(
    registry: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, Option<String>, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{path}"))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        );
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.expect("the registry answers");
    let status = response.status().as_u16();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, digest, response.json().await.unwrap_or_default())
}

/// Where a job pushes, and with what credentials.
struct Target<'a> {
    registry: &'a str,
    auth: Option<(&'a str, &'a str)>,
}

/// plan → publish (build, scan in a scanner container, dual tags) for each
/// selected image, bases first; then the registry holds exactly that.
async fn the_push_pipeline(job: Job, demo: &Demo, target: &Target<'_>) {
    let scanner = scanner_image(SCANNER_IMAGE).await;
    let build_args = format!("REGISTRY={}", target.registry);
    let common = [
        ("registry", target.registry),
        ("namespace", demo.namespace.as_str()),
        ("build-args", build_args.as_str()),
    ];
    let credentials = target.auth.map_or(vec![], |(user, password)| {
        vec![("username", user), ("password", password)]
    });

    let plan = tokio::task::block_in_place(|| {
        job.step(&[common.as_slice(), &[("command", "plan")]].concat())
    });
    assert_eq!(plan.code, 0, "plan failed\n{plan}");
    eprintln!(
        "action container: first output {} ms after `docker run`",
        plan.first_output.as_millis()
    );
    let matrix: Vec<serde_json::Value> =
        serde_json::from_str(&plan.outputs["matrix"]).expect("matrix is JSON");
    let paths: Vec<&str> = matrix.iter().filter_map(|e| e["path"].as_str()).collect();
    assert_eq!(paths, ["ops/docker/base", "ops/docker/app"], "{plan}");
    assert_eq!(plan.outputs["changed"], "true");
    assert_eq!(plan.outputs["count"], "2");
    assert_eq!(plan.outputs["sha"], demo.after);
    assert!(plan.summary.contains("### registry-action plan"), "{plan}");
    assert_act_parses(&plan);
    assert!(!plan.log.contains("dubious ownership"), "{plan}");

    for path in paths {
        let with = [
            common.as_slice(),
            &credentials,
            &[
                ("command", "publish"),
                ("path", path),
                ("scanner-image", scanner),
            ],
        ]
        .concat();
        let published = tokio::task::block_in_place(|| job.step(&with));
        assert_eq!(published.code, 0, "publish {path} failed\n{published}");
        let name = format!("{}/{}", demo.namespace, path.rsplit('/').next().unwrap());
        assert_pushed(&published, &name, demo, target).await;
    }

    let (status, _, _) = registry_get(
        target.registry,
        &format!("{}/tool/tags/list", demo.namespace),
        target.auth,
    )
    .await;
    assert_eq!(status, 404, "tool did not change and is not pushed");
}

/// act (Forgejo's runner) stops at a blank line between entries and
/// silently at a line over 64 KiB; GitHub's parser takes both.
fn assert_act_parses(step: &Step) {
    assert!(!step.outputs_raw.contains("\n\n"), "{step}");
    assert!(step.outputs_raw.lines().all(|l| l.len() < 64 * 1024));
}

/// The outputs, the summary and the registry agree: both tags name the
/// digest published; the scan warned (the demo's HIGH busybox) and released.
async fn assert_pushed(step: &Step, name: &str, demo: &Demo, target: &Target<'_>) {
    assert_act_parses(step);
    let digest = &step.outputs["digest"];
    assert!(digest.starts_with("sha256:"), "{step}");
    assert_eq!(step.outputs["pushed"], "true", "{step}");
    assert_eq!(step.outputs["scan-result"], "warn", "{step}");
    assert_eq!(step.outputs["high"], "1", "{step}");
    assert_eq!(step.outputs["medium"], "1", "{step}");
    assert_eq!(step.outputs["critical"], "0", "{step}");
    let image = format!("{}/{name}", target.registry);
    assert_eq!(step.outputs["image"], image, "{step}");
    assert_eq!(step.outputs["sha-tag"], format!("{image}:{}", demo.after));
    let mut tags: Vec<&str> = step.outputs["tags"].lines().collect();
    tags.sort_unstable();
    let mut want = [format!("{image}:{}", demo.after), format!("{image}:latest")];
    want.sort_unstable();
    assert_eq!(tags, want, "{step}");
    assert!(
        step.summary.contains("### registry-action publish"),
        "{step}"
    );
    assert!(step.summary.contains(digest.as_str()), "{step}");

    let (_, _, listed) =
        registry_get(target.registry, &format!("{name}/tags/list"), target.auth).await;
    let mut listed: Vec<&str> = listed["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    listed.sort_unstable();
    let mut want = vec![demo.after.as_str(), "latest"];
    want.sort_unstable();
    assert_eq!(listed, want, "{name}");
    for tag in want {
        let (status, served, _) = registry_get(
            target.registry,
            &format!("{name}/manifests/{tag}"),
            target.auth,
        )
        .await;
        assert_eq!(status, 200, "{name}:{tag}");
        assert_eq!(served.as_deref(), Some(digest.as_str()), "{name}:{tag}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_github_runner_runs_the_image_on_the_demo_monorepo() {
    let s: &Services = services();
    let demo = Demo::new("e2e-gh");
    let job = Job::new(Kind::GitHub, &demo).with_trivy(demo_trivy_db());
    let target = Target {
        registry: &s.registry_open,
        auth: None,
    };
    the_push_pipeline(job, &demo, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_forgejo_runner_layout_works_too_with_a_registry_login() {
    let s: &Services = services();
    let demo = Demo::new("e2e-fj");
    let job = Job::new(Kind::Forgejo, &demo).with_trivy(demo_trivy_db());
    let target = Target {
        registry: &s.registry_basic,
        auth: Some((&s.basic_user, &s.basic_password)),
    };
    the_push_pipeline(job, &demo, &target).await;
}

/// A signed publish by the action's container: the provenance names the
/// image the engine ran it from — the ID always (here, as on GitHub with
/// `image: Dockerfile`, the image was built on the runner: no registry
/// digest), and the manifest digest once the image comes from a registry
/// (`docker://…`).
#[tokio::test(flavor = "multi_thread")]
async fn the_provenance_names_the_action_image_the_container_ran_from() {
    let s: &Services = services();
    let cosign = crate::support::cosign::Cosign::new(crate::supply::PASSWORD, &[]);
    let signed_publish = |job: &Job, demo: &Demo| {
        let with = [
            ("registry", s.registry_open.as_str()),
            ("namespace", demo.namespace.as_str()),
            ("command", "publish"),
            ("path", "ops/docker/base"),
            ("scanner", "none"),
            ("sbom", "none"),
            ("sign-key", &cosign.private_pem()),
            ("sign-key-password", crate::supply::PASSWORD),
        ];
        let published = tokio::task::block_in_place(|| job.step(&with));
        assert_eq!(published.code, 0, "publish failed\n{published}");
        let image = format!(
            "{}/{}/base@{}",
            s.registry_open, demo.namespace, published.outputs["digest"]
        );
        let statements = cosign
            .verify_attestation(&cosign.pub_path(), "slsaprovenance1", &image)
            .unwrap_or_else(|e| panic!("cosign 2.5 refuses the provenance: {e}"));
        assert_eq!(statements.len(), 1, "{statements:?}");
        statements[0]["predicate"]["runDetails"]["builder"]["version"].clone()
    };
    let image_id = docker(&["image", "inspect", "--format", "{{.Id}}", action_image()]);

    let demo = Demo::new("e2e-prov");
    let version = signed_publish(&Job::new(Kind::GitHub, &demo), &demo);
    assert_eq!(
        version,
        serde_json::json!({"registry-action": env!("CARGO_PKG_VERSION"), "imageId": image_id})
    );

    // The same image, pushed and run by its registry name.
    let demo = Demo::new("e2e-prov-pulled");
    let pushed = format!("{}/{}/action:e2e", s.registry_open, demo.namespace);
    docker(&["tag", action_image(), &pushed]);
    docker(&["push", "--quiet", &pushed]);
    let (_, manifest, _) = registry_get(
        &s.registry_open,
        &format!("{}/action/manifests/e2e", demo.namespace),
        None,
    )
    .await;
    let manifest = manifest.expect("the registry names the digest");
    let mut job = Job::new(Kind::GitHub, &demo);
    job.image = Some(pushed.clone());
    let version = signed_publish(&job, &demo);
    docker(&["rmi", "--no-prune", &pushed]);
    assert_eq!(
        version,
        serde_json::json!({
            "registry-action": env!("CARGO_PKG_VERSION"),
            "image": format!("{}/{}/action@{manifest}", s.registry_open, demo.namespace),
            "imageId": image_id,
        })
    );
}

/// `docker args…` on the tests' engine; its trimmed stdout.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", &services().docker_host)
        .output()
        .expect("docker runs");
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
