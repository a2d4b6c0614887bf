//! The SLSA provenance check: scripts/slsa-check.py, which parses a
//! statement with the in-toto project's own definitions (PyPI
//! `in-toto-attestation`, installed by scripts/tools).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// `Ok` when `statement` is a valid in-toto statement of SLSA provenance
/// v1; otherwise what the checker said.
pub fn check(statement: &serde_json::Value) -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slsa-check.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 {script}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(statement.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "{stderr}: run `scripts/tools` (or the tests through `scripts/test`) to install in-toto-attestation"
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr.into_owned())
    }
}
