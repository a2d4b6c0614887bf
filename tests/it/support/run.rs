//! Runs the binary as a runner does: only `INPUT_*`, `GITHUB_*` and
//! `RUNNER_*` in its environment, the file-command files in a temp folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");

pub struct Action {
    runner: tempfile::TempDir,
    env: BTreeMap<String, String>,
    args: Vec<String>,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The output file as the GitHub runner parses it.
    pub outputs: BTreeMap<String, String>,
    pub outputs_raw: String,
    pub summary: String,
}

impl Action {
    /// A GitHub runner's environment around `workspace`. The API URL points
    /// at a closed loopback port so nothing can reach the internet.
    pub fn github(workspace: &Path) -> Self {
        let runner = tempfile::tempdir().expect("temp dir");
        let output = runner.path().join("set_output");
        let summary = runner.path().join("step_summary");
        std::fs::write(&output, "").expect("output file");
        std::fs::write(&summary, "").expect("summary file");
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/monorepo"),
            ("GITHUB_REPOSITORY_OWNER", "Acme"),
            ("GITHUB_API_URL", "http://127.0.0.1:9"),
            ("GITHUB_SERVER_URL", "https://github.com"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        env.insert("GITHUB_WORKSPACE".into(), workspace.display().to_string());
        env.insert("GITHUB_OUTPUT".into(), output.display().to_string());
        env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
        env.insert("RUNNER_TEMP".into(), runner.path().display().to_string());
        Action {
            runner,
            env,
            args: Vec::new(),
        }
    }

    /// A laptop: no runner variables at all, run from `dir`.
    pub fn local(dir: &Path) -> Self {
        let runner = tempfile::tempdir().expect("temp dir");
        let mut action = Action {
            runner,
            env: BTreeMap::new(),
            args: Vec::new(),
        };
        action
            .env
            .insert("PWD_FOR_TEST".into(), dir.display().to_string());
        action
    }

    pub fn input(mut self, name: &str, value: &str) -> Self {
        self.env.insert(
            format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
            value.to_owned(),
        );
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Writes the event payload where the runner would and names it.
    pub fn event(mut self, name: &str, payload: &serde_json::Value) -> Self {
        let path = self.runner.path().join("event.json");
        std::fs::write(&path, serde_json::to_vec_pretty(payload).expect("json"))
            .expect("event file");
        self.env.insert("GITHUB_EVENT_NAME".into(), name.to_owned());
        self.env
            .insert("GITHUB_EVENT_PATH".into(), path.display().to_string());
        self
    }

    pub fn runner_dir(&self) -> PathBuf {
        self.runner.path().to_owned()
    }

    /// The process as the runner starts it, for tests that need to stop it
    /// midway; `finish` reads what it left.
    pub fn command(&self) -> Command {
        let cwd = self
            .env
            .get("PWD_FOR_TEST")
            .or_else(|| self.env.get("GITHUB_WORKSPACE"))
            .cloned()
            .unwrap_or_else(|| ".".into());
        let mut command = Command::new(BINARY);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().filter(|(k, _)| *k != "PWD_FOR_TEST"))
            .current_dir(cwd);
        command
    }

    pub fn run(self) -> Ran {
        let out = self.command().output().expect("the binary runs");
        self.finish(out)
    }

    pub fn finish(&self, out: std::process::Output) -> Ran {
        let read = |var: &str| {
            self.env
                .get(var)
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .unwrap_or_default()
        };
        let outputs_raw = read("GITHUB_OUTPUT");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: parse_file_commands(&outputs_raw),
            outputs_raw,
            summary: read("GITHUB_STEP_SUMMARY"),
        }
    }

    /// For tests that serve the API from this process's runtime.
    pub async fn run_async(self) -> Ran {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .expect("join")
    }
}

impl Ran {
    pub fn matrix(&self) -> Vec<serde_json::Value> {
        let text = self
            .outputs
            .get("matrix")
            .unwrap_or_else(|| panic!("no matrix output\n{self}"));
        serde_json::from_str(text).expect("matrix is JSON")
    }

    /// The `name` of each matrix entry, in matrix order.
    pub fn selected(&self) -> Vec<String> {
        self.matrix()
            .iter()
            .map(|e| e["name"].as_str().expect("name").to_owned())
            .collect()
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success\n{self}");
        self
    }

    /// A failed run: exit 1, the message on the log, and no outputs at all.
    pub fn assert_failed(&self, needle: &str) -> &Self {
        assert_eq!(self.code, 1, "expected exit 1\n{self}");
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "expected {needle:?} in the log\n{self}"
        );
        assert!(
            self.outputs_raw.is_empty(),
            "a failed run wrote outputs\n{self}"
        );
        self
    }
}

impl Ran {
    /// The secret is masked, and appears in no other line, in none of its
    /// [`forms`](super::secret::forms): `::add-mask::` lines are where the
    /// runner is told what to hide.
    pub fn assert_secret_masked_only(&self, secret: &str) {
        let mask = format!("::add-mask::{secret}");
        assert!(
            self.stdout.lines().any(|l| l == mask),
            "never masked\n{self}"
        );
        let rest: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect();
        for (what, text) in [
            ("stdout", &rest.join("\n")),
            ("stderr", &self.stderr),
            ("outputs", &self.outputs_raw),
            ("summary", &self.summary),
        ] {
            super::secret::assert_absent(text, secret, what);
        }
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}\n--- outputs\n{}\n--- summary\n{}",
            self.code, self.stdout, self.stderr, self.outputs_raw, self.summary
        )
    }
}

/// The GitHub runner's parser for GITHUB_OUTPUT: `NAME=VALUE` when `=`
/// comes before `<<`, else a heredoc; a missing delimiter is an error.
pub fn parse_file_commands(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                out.insert(line[..e].to_owned(), line[e + 1..].to_owned());
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                let mut value = Vec::new();
                loop {
                    let next = lines.next().unwrap_or_else(|| {
                        panic!("output {name}: delimiter {delimiter} never closes")
                    });
                    if next == delimiter {
                        break;
                    }
                    value.push(next);
                }
                out.insert(name.to_owned(), value.join("\n"));
            }
            _ => panic!("malformed output line {line:?}"),
        }
    }
    out
}
