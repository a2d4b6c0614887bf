//! A real Trivy binary (scripts/tools) and an offline database written from
//! test advisories by trivy-test-db (see `trivy_db`), once
//! per test run.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::run::Action;
use super::trivy_db::{OFFLINE, trivy_dir, write_db};

pub struct Trivy {
    pub dir: PathBuf,
    pub cache: PathBuf,
    _keep: tempfile::TempDir,
}

pub fn trivy() -> &'static Trivy {
    static TRIVY: OnceLock<Trivy> = OnceLock::new();
    TRIVY.get_or_init(|| {
        let dir = trivy_dir().unwrap_or_else(|e| panic!("{e}"));
        let keep = tempfile::tempdir().unwrap();
        let cache = keep.path().join("cache");
        write_db(keep.path(), &cache).unwrap_or_else(|e| panic!("{e}"));
        Trivy {
            dir,
            cache,
            _keep: keep,
        }
    })
}

impl Trivy {
    /// Trivy on the PATH, offline, reading the test database.
    pub fn around(&self, action: Action) -> Action {
        let path = format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        OFFLINE.iter().fold(
            action
                .env("PATH", &path)
                .env("TRIVY_CACHE_DIR", &self.cache.display().to_string()),
            |action, (name, value)| action.env(name, value),
        )
    }
}

/// An Alpine 3.19 root filesystem whose package database lists `packages`
/// (`name`, `version`), for images built `FROM scratch`.
pub fn alpine_rootfs(repo: &super::git::Repo, dir: &str, packages: &[(&str, &str)]) {
    super::trivy_db::alpine_rootfs(&repo.join(&format!("{dir}/rootfs")), packages);
}
