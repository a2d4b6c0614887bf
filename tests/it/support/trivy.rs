//! A real Trivy binary (scripts/tools) and an offline database written from
//! test advisories by ../shared/tools/trivy-test-db.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::run::Action;

const HOW: &str =
    "run `scripts/tools` (or the tests through `scripts/test`) to install Trivy and boltdb";

/// Test advisories (not real security data) for Alpine 3.19 packages.
const ADVISORIES: &str = r#"[
  {"source": "alpine 3.19", "package": "busybox", "id": "TEST-2026-0001", "fixed": "1.36.1-r16", "severity": "CRITICAL", "title": "test: busybox critical"},
  {"source": "alpine 3.19", "package": "libcrypto3", "id": "TEST-2026-0002", "fixed": "", "severity": "HIGH", "title": "test: libcrypto3 high, no fix"},
  {"source": "alpine 3.19", "package": "zlib", "id": "TEST-2026-0003", "fixed": "1.3.1-r1", "severity": "MEDIUM", "title": "test: zlib medium"}
]"#;

pub struct Trivy {
    pub dir: PathBuf,
    pub cache: PathBuf,
    _keep: tempfile::TempDir,
}

pub fn trivy() -> &'static Trivy {
    static TRIVY: OnceLock<Trivy> = OnceLock::new();
    TRIVY.get_or_init(|| {
        let dir = std::env::var_os("REGISTRY_ACTION_TOOLS").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
            PathBuf::from,
        );
        assert!(
            dir.join("trivy").is_file(),
            "no Trivy binary at {}: {HOW}",
            dir.display()
        );
        let keep = tempfile::tempdir().unwrap();
        let advisories = keep.path().join("advisories.json");
        std::fs::write(&advisories, ADVISORIES).unwrap();
        let cache = keep.path().join("cache");
        let tool = super::fixtures().join("../tools/trivy-test-db");
        let out = Command::new("python3")
            .arg(&tool)
            .arg(&advisories)
            .arg(&cache)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} failed ({}): {HOW}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr)
        );
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
        action
            .env("PATH", &path)
            .env("TRIVY_CACHE_DIR", &self.cache.display().to_string())
            .env("TRIVY_SKIP_DB_UPDATE", "true")
            .env("TRIVY_OFFLINE_SCAN", "true")
            .env("TRIVY_DISABLE_VEX_NOTICE", "true")
    }
}

/// An Alpine 3.19 root filesystem whose package database lists `packages`
/// (`name`, `version`), for images built `FROM scratch`.
pub fn alpine_rootfs(repo: &super::git::Repo, dir: &str, packages: &[(&str, &str)]) {
    repo.write(&format!("{dir}/rootfs/etc/alpine-release"), "3.19.1\n");
    repo.write(
        &format!("{dir}/rootfs/etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n",
    );
    let db: String = packages
        .iter()
        .map(|(name, version)| format!("P:{name}\nV:{version}\nA:x86_64\n\n"))
        .collect();
    repo.write(&format!("{dir}/rootfs/lib/apk/db/installed"), &db);
}
