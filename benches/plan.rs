//! `cargo bench --bench plan`: how long `plan` takes, and how much memory it
//! needs, on a monorepo of 1,000 images and 100,000 files, with the release
//! binary started as a GitHub runner starts it: once reading local git, once
//! reading a local replay of the GitHub REST API.
//!
//! Not a test: beyond checking that each plan selected the images it should
//! (so a number never describes a plan that went wrong), it asserts nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use wiremock::matchers::{any, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const REPO: &str = "acme/monorepo";
const IMAGES: usize = 1_000;
/// The Dockerfile and 99 more.
const FILES_PER_IMAGE: usize = 100;
const CHANGED_IMAGES: usize = 300;
const CHANGED_FILES: usize = 5_000;
const RUNS: usize = 10;
/// Files per page, both in a compare and in the plan's "get a commit" pages.
const PAGE: usize = 300;
/// The most files the plan reads from "get a commit" (GitHub's own cap,
/// `LIST_FILE_CAP` in src/plan/github.rs); past it the list may be cut, so
/// the plan rebuilds every image instead.
const API_LIST_CAP: usize = 3_000;
/// First argument of the bench re-run as a measuring child (see `measure`).
const MEASURE: &str = "--measure-scenario";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(MEASURE) {
        let scenario: Scenario = serde_json::from_str(&args[2]).unwrap();
        println!(
            "{}",
            serde_json::to_string(&run_scenario(&scenario)).unwrap()
        );
        return;
    }

    let repo = Monorepo::generate();
    let event = push_event(&repo);
    let rt = Runtime::new().unwrap();
    let small_push = small_push();
    let rows = [
        git_row(&repo, &event),
        api_row(
            &rt,
            &repo,
            &event,
            "api, push of 10 files in 3 images",
            &small_push,
            3,
        ),
        api_row(
            &rt,
            &repo,
            &event,
            "api, push of 5,000 files in 300 images",
            &repo.changed,
            // Past the cap the plan can't see the whole list and rebuilds all.
            if CHANGED_FILES > API_LIST_CAP {
                IMAGES
            } else {
                CHANGED_IMAGES
            },
        ),
    ];
    print_table(&rows);
}

// ---------------------------------------------------------------------------
// The monorepo

struct Monorepo {
    dir: tempfile::TempDir,
    base: String,
    head: String,
    /// The files the second commit changed.
    changed: Vec<String>,
}

impl Monorepo {
    /// Both commits go through one `git fast-import` stream: writing 100,000
    /// files and `git add`-ing them is far slower. The work tree is then
    /// checked out at the second commit, as actions/checkout leaves it, since
    /// the plan finds the images on disk.
    fn generate() -> Self {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        let changed = changed_files();
        fast_import(dir.path(), &changed);
        let imported = started.elapsed();
        git(dir.path(), &["reset", "-q", "--hard"]);
        let repo = Monorepo {
            base: git(dir.path(), &["rev-parse", "main~1"]),
            head: git(dir.path(), &["rev-parse", "main"]),
            dir,
            changed,
        };
        println!(
            "generated {} files in {IMAGES} images, then {CHANGED_FILES} changed in {CHANGED_IMAGES}, in {:.1} s (fast-import {:.1} s, checkout {:.1} s)",
            IMAGES * FILES_PER_IMAGE,
            started.elapsed().as_secs_f64(),
            imported.as_secs_f64(),
            (started.elapsed() - imported).as_secs_f64(),
        );
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// File 0 of an image is its Dockerfile.
fn image_file(image: usize, file: usize) -> String {
    let name = match file {
        0 => "Dockerfile".to_owned(),
        n => format!("file-{n:02}.txt"),
    };
    format!("ops/docker/img-{image:04}/{name}")
}

fn content(path: &str, version: u32) -> String {
    if path.ends_with("/Dockerfile") {
        "FROM scratch\n".to_owned()
    } else {
        format!("{path} v{version}\n")
    }
}

/// 5,000 files in 300 images spread along the tree, 16 or 17 in each;
/// Dockerfiles stay as they are, so every image still builds FROM scratch.
fn changed_files() -> Vec<String> {
    (0..CHANGED_IMAGES)
        .flat_map(|i| {
            let image = i * IMAGES / CHANGED_IMAGES;
            let files =
                CHANGED_FILES / CHANGED_IMAGES + usize::from(i < CHANGED_FILES % CHANGED_IMAGES);
            (1..=files).map(move |file| image_file(image, file))
        })
        .collect()
}

fn fast_import(dir: &Path, changed: &[String]) {
    let mut child = git_command(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = BufWriter::new(child.stdin.take().unwrap());
    let every_file = (0..IMAGES).flat_map(|i| (0..FILES_PER_IMAGE).map(move |f| image_file(i, f)));
    write_commit(&mut stream, "1,000 images", every_file, 1).unwrap();
    write_commit(&mut stream, "change 300 images", changed.iter().cloned(), 2).unwrap();
    // Closing stdin ends the stream.
    drop(stream.into_inner().unwrap());
    assert!(child.wait().unwrap().success(), "git fast-import failed");
}

/// A commit on `main` with every file inline; the second commit in the
/// stream continues from the first by itself.
fn write_commit(
    out: &mut impl Write,
    message: &str,
    files: impl Iterator<Item = String>,
    version: u32,
) -> std::io::Result<()> {
    writeln!(out, "commit refs/heads/main")?;
    writeln!(
        out,
        "committer Bench <bench@example.com> {} +0000",
        1_700_000_000 + version
    )?;
    writeln!(out, "data {}\n{message}", message.len())?;
    for path in files {
        let text = content(&path, version);
        writeln!(out, "M 100644 inline {path}\ndata {}\n{text}", text.len())?;
    }
    writeln!(out)
}

/// The push of the second commit onto `main`, as the runner writes it.
/// API mode never reads the clone, so every scenario uses the same event.
fn push_event(repo: &Monorepo) -> tempfile::NamedTempFile {
    let payload = json!({
        "ref": "refs/heads/main",
        "before": repo.base,
        "after": repo.head,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": {"full_name": REPO, "default_branch": "main"},
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), payload.to_string()).unwrap();
    file
}

// ---------------------------------------------------------------------------
// Running the binary

/// A scenario as the runner starts the binary: its environment, besides PATH
/// and the file-command files each run gets afresh.
#[derive(Serialize, Deserialize)]
struct Scenario {
    workspace: PathBuf,
    env: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Measured {
    walls: Vec<Duration>,
    /// The `count` output: how many images the plan selected.
    count: usize,
    /// The largest process among the runs: the binary or a git it waited for.
    peak_rss_kib: i64,
}

fn scenario(repo: &Monorepo, event: &Path, source: &str, api_url: &str) -> Scenario {
    let env = [
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_WORKSPACE", &repo.path().display().to_string()),
        ("GITHUB_REPOSITORY", REPO),
        ("GITHUB_REPOSITORY_OWNER", "acme"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_EVENT_PATH", &event.display().to_string()),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_SHA", &repo.head),
        ("GITHUB_API_URL", api_url),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("INPUT_COMMAND", "plan"),
        ("INPUT_SOURCE", source),
    ];
    Scenario {
        workspace: repo.path().to_owned(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Runs the scenario in a fresh copy of this bench, because `RUSAGE_CHILDREN`
/// keeps the peak of every process a parent ever waited for: here it would
/// also hold `git fast-import` and the other scenarios.
fn measure(scenario: &Scenario) -> Measured {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([MEASURE, &serde_json::to_string(scenario).unwrap()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the measuring child failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// In the measuring child: one warm-up run (page cache, the binary loaded),
/// then the timed runs.
fn run_scenario(scenario: &Scenario) -> Measured {
    let count = run_once(scenario).1;
    let walls = (0..RUNS)
        .map(|_| {
            let (wall, again) = run_once(scenario);
            assert_eq!(again, count, "the plan changed its mind between runs");
            wall
        })
        .collect();
    Measured {
        walls,
        count,
        peak_rss_kib: getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss(),
    }
}

/// One plan: its wall time and the `count` it wrote to GITHUB_OUTPUT.
fn run_once(scenario: &Scenario) -> (Duration, usize) {
    let runner = tempfile::tempdir().unwrap();
    let output = runner.path().join("set_output");
    let summary = runner.path().join("step_summary");
    std::fs::write(&output, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&scenario.env)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("RUNNER_TEMP", runner.path())
        .current_dir(&scenario.workspace);
    let started = Instant::now();
    let out = command.output().unwrap();
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "plan failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs = parse_outputs(&std::fs::read_to_string(&output).unwrap());
    (wall, outputs["count"].parse().unwrap())
}

struct Row {
    scenario: &'static str,
    measured: Measured,
    /// Per run; `None` where the plan doesn't use the API.
    requests: Option<usize>,
    note: Option<String>,
}

fn git_row(repo: &Monorepo, event: &tempfile::NamedTempFile) -> Row {
    // A closed loopback port: `source: git` must not need the API at all.
    let measured = measure(&scenario(repo, event.path(), "git", "http://127.0.0.1:9"));
    check_count("git", &measured, CHANGED_IMAGES);
    Row {
        scenario: "git, push of 5,000 files in 300 images",
        measured,
        requests: None,
        note: None,
    }
}

/// 10 files in 3 images, at both ends of the tree and in the middle.
fn small_push() -> Vec<String> {
    [(7, 4), (420, 3), (999, 3)]
        .into_iter()
        .flat_map(|(image, files)| (1..=files).map(move |file| image_file(image, file)))
        .collect()
}

fn api_row(
    rt: &Runtime,
    repo: &Monorepo,
    event: &tempfile::NamedTempFile,
    name: &'static str,
    files: &[String],
    expected: usize,
) -> Row {
    rt.block_on(async {
        let server = replay(&repo.base, &repo.head, files).await;
        let scenario = scenario(repo, event.path(), "github", &server.uri());
        // The binary runs off the runtime's threads, so the server keeps serving.
        let measured = tokio::task::spawn_blocking(move || measure(&scenario))
            .await
            .unwrap();
        check_count(name, &measured, expected);
        let total = server.received_requests().await.unwrap().len();
        assert_eq!(total % (RUNS + 1), 0, "{name}: runs sent different requests");
        let note = (files.len() > API_LIST_CAP).then(|| {
            format!("{name}: the plan reads at most {API_LIST_CAP} files of a commit, so it selected every image")
        });
        Row {
            scenario: name,
            measured,
            requests: Some(total / (RUNS + 1)),
            note,
        }
    })
}

fn check_count(name: &str, measured: &Measured, expected: usize) {
    assert_eq!(
        measured.count, expected,
        "{name}: the plan selected {} images, not {expected}",
        measured.count
    );
}

// ---------------------------------------------------------------------------
// The GitHub API replay

/// Answers as GitHub does: compare lists the first 300 files and the one
/// commit; "get a commit" lists all its files, 300 a page, with a
/// `rel="next"` link on every page but the last.
async fn replay(base: &str, head: &str, files: &[String]) -> MockServer {
    let server = MockServer::start().await;
    // Anything unplanned fails loudly, not as a 404 the plan may take for
    // "commit not found".
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(501).set_body_json(json!({"message": "no replay for this"})),
        )
        .with_priority(u8::MAX)
        .mount(&server)
        .await;

    let fixture = fixture();
    let entry = &fixture["files"][0];
    let mut commit = fixture["commits"][0].clone();
    commit["sha"] = json!(head);

    let mut compare = fixture.clone();
    compare["files"] = file_entries(entry, &files[..files.len().min(PAGE)]);
    compare["commits"] = json!([commit]);
    compare["total_commits"] = json!(1);
    let route = format!("/repos/{REPO}/compare/{base}...{head}");
    mount(&server, &route, None, compare, None).await;

    let route = format!("/repos/{REPO}/commits/{head}");
    let pages = files.chunks(PAGE).count();
    for (i, chunk) in files.chunks(PAGE).enumerate() {
        let page = i + 1;
        let next = (page < pages).then(|| {
            format!(
                "<{}{route}?per_page={PAGE}&page={}>; rel=\"next\"",
                server.uri(),
                page + 1
            )
        });
        let mut body = commit.clone();
        body["files"] = file_entries(entry, chunk);
        mount(&server, &route, Some(page), body, next).await;
    }
    server
}

async fn mount(
    server: &MockServer,
    route: &str,
    page: Option<usize>,
    body: Value,
    next: Option<String>,
) {
    let mut response = ResponseTemplate::new(200).set_body_json(body);
    if let Some(link) = next {
        response = response.insert_header("link", link.as_str());
    }
    let mock = Mock::given(method("GET")).and(path(route));
    let mock = match page {
        Some(page) => mock.and(query_param("page", page.to_string())),
        None => mock,
    };
    mock.respond_with(response).mount(server).await;
}

/// The real compare payload the integration tests replay too.
fn fixture() -> Value {
    let path = fixtures::fixture("github-api/compare-commits.go-scm.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's file entry, once per path.
fn file_entries(template: &Value, files: &[String]) -> Value {
    files
        .iter()
        .map(|file| {
            let mut entry = template.clone();
            entry["filename"] = json!(file);
            entry
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The report

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| scenario | wall min | wall median | wall max | peak RSS | API requests / run | selected |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let mut walls = row.measured.walls.clone();
        walls.sort();
        println!(
            "| {} | {} | {} | {} | {:.1} MiB | {} | {} |",
            row.scenario,
            ms(walls[0]),
            ms(median(&walls)),
            ms(walls[walls.len() - 1]),
            row.measured.peak_rss_kib as f64 / 1024.0,
            row.requests.map_or("—".to_owned(), |n| n.to_string()),
            row.measured.count,
        );
    }
    println!();
    for note in rows.iter().filter_map(|row| row.note.as_ref()) {
        println!("{note}");
    }
    println!(
        "{RUNS} timed runs each after one warm-up; peak RSS is the largest process of a scenario's runs (getrusage RUSAGE_CHILDREN)."
    );
}

/// Of sorted walls.
fn median(walls: &[Duration]) -> Duration {
    let mid = walls.len() / 2;
    if walls.len() % 2 == 0 {
        (walls[mid - 1] + walls[mid]) / 2
    } else {
        walls[mid]
    }
}
