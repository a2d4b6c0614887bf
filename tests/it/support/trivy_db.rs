//! The offline Trivy the tests and the benches run (which include this
//! file by path): where scripts/tools put the binaries, a database written
//! from test advisories by our trivy-test-db (tools/trivy-test-db), the
//! settings that keep Trivy offline, and Alpine root filesystems for it to
//! find packages in.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const HOW: &str =
    "run `scripts/tools` (or the tests through `scripts/test`) to install Trivy and trivy-test-db";

/// Test advisories (not real security data) for Alpine 3.19 packages.
pub const ADVISORIES: &str = r#"[
  {"source": "alpine 3.19", "package": "busybox", "id": "TEST-2026-0001", "fixed": "1.36.1-r16", "severity": "CRITICAL", "title": "test: busybox critical"},
  {"source": "alpine 3.19", "package": "libcrypto3", "id": "TEST-2026-0002", "fixed": "", "severity": "HIGH", "title": "test: libcrypto3 high, no fix"},
  {"source": "alpine 3.19", "package": "zlib", "id": "TEST-2026-0003", "fixed": "1.3.1-r1", "severity": "MEDIUM", "title": "test: zlib medium"}
]"#;

/// Trivy's settings beside `TRIVY_CACHE_DIR`: the database is never
/// fetched, and nothing else is either.
pub const OFFLINE: [(&str, &str); 3] = [
    ("TRIVY_SKIP_DB_UPDATE", "true"),
    ("TRIVY_OFFLINE_SCAN", "true"),
    ("TRIVY_DISABLE_VEX_NOTICE", "true"),
];

/// `$REGISTRY_ACTION_TOOLS`, else `target/tools`: Trivy, trivy-test-db and cosign.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("REGISTRY_ACTION_TOOLS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
        PathBuf::from,
    )
}

/// The directory holding the `trivy` binary.
pub fn trivy_dir() -> Result<PathBuf, String> {
    let dir = tools_dir();
    if dir.join("trivy").is_file() {
        Ok(dir)
    } else {
        Err(format!("no Trivy binary at {}: {HOW}", dir.display()))
    }
}

/// Writes the database of [`ADVISORIES`] into the Trivy cache `cache`;
/// `scratch` holds the advisories file.
pub fn write_db(scratch: &Path, cache: &Path) -> Result<(), String> {
    let advisories = scratch.join("advisories.json");
    std::fs::write(&advisories, ADVISORIES).map_err(|e| e.to_string())?;
    write_db_of(&advisories, cache)
}

/// Writes the database of the advisories file `advisories` (the format
/// tools/trivy-test-db describes) into the Trivy cache `cache`.
pub fn write_db_of(advisories: &Path, cache: &Path) -> Result<(), String> {
    let tool = tools_dir().join("trivy-test-db");
    let out = Command::new(&tool)
        .arg(advisories)
        .arg(cache)
        .output()
        .map_err(|e| format!("{}: {e}; {HOW}", tool.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {HOW}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An Alpine 3.19 root filesystem under `rootfs`, whose package database
/// lists `packages` (`name`, `version`).
pub fn alpine_rootfs<S: AsRef<str>>(rootfs: &Path, packages: &[(S, S)]) {
    let write = |path: &str, text: &str| {
        let full = rootfs.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    };
    write("etc/alpine-release", "3.19.1\n");
    write(
        "etc/os-release",
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n",
    );
    let db: String = packages
        .iter()
        .map(|(name, version)| format!("P:{}\nV:{}\nA:x86_64\n\n", name.as_ref(), version.as_ref()))
        .collect();
    write("lib/apk/db/installed", &db);
}
