//! Real git repositories, built commit by commit.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// A new repository on branch `main`.
    pub fn new() -> Self {
        let repo = Repo {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn write(&self, path: &str, content: &str) -> &Self {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
        self
    }

    /// An image directory with a Dockerfile building `from`.
    pub fn image(&self, name: &str, from: &str) -> &Self {
        self.write(
            &format!("ops/docker/{name}/Dockerfile"),
            &format!("FROM {from}\nCOPY . /\n"),
        )
    }

    pub fn remove(&self, path: &str) -> &Self {
        self.git(&["rm", "-rq", path]);
        self
    }

    pub fn rename(&self, from: &str, to: &str) -> &Self {
        let target = self.dir.path().join(to);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        self.git(&["mv", from, to]);
        self
    }

    /// Commits everything and returns the new commit's SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn join(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }
}

/// `ops/docker/app` built by `dockerfile` next to a 1 MiB file `noise` of
/// fresh random text, committed: a layer no upload can hide among requests.
pub fn noisy_app(dockerfile: &str) -> Repo {
    let repo = Repo::new();
    let noise: String = (0..(1 << 20) / 32)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    repo.write("ops/docker/app/Dockerfile", dockerfile)
        .write("ops/docker/app/noise", &noise);
    repo.commit("app");
    repo
}
