//! Runs a scanner binary on an exported image and returns its JSON report.
//!
//! The scanner runs with a scrubbed environment: only what it needs to work
//! (PATH, HOME, temp and proxy settings, and its own `TRIVY_*` / `GRYPE_*`
//! settings), never the action's inputs, tokens or registry passwords.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::scan::{ScanError, Scanner};

const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// The scanner's JSON report for the `docker save` archive at `archive`.
pub async fn scan_archive(scanner: Scanner, archive: &Path) -> anyhow::Result<Vec<u8>> {
    let (program, args): (&str, Vec<String>) = match scanner {
        Scanner::Trivy => (
            "trivy",
            vec![
                "image".into(),
                "--input".into(),
                archive.display().to_string(),
                "--format".into(),
                "json".into(),
                "--quiet".into(),
                "--exit-code".into(),
                "0".into(),
            ],
        ),
        Scanner::Grype => (
            "grype",
            vec![
                format!("docker-archive:{}", archive.display()),
                "--output".into(),
                "json".into(),
                "--quiet".into(),
            ],
        ),
    };
    let own_prefix = match scanner {
        Scanner::Trivy => "TRIVY_",
        Scanner::Grype => "GRYPE_",
    };
    let env = std::env::vars()
        .filter(|(k, _)| PASSED_THROUGH.contains(&k.as_str()) || k.starts_with(own_prefix));
    let output = Command::new(program)
        .args(&args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "couldn't run `{program}` ({e}); install {scanner} on the runner's PATH, or set `scanner: none` to skip the scan"
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        anyhow::bail!(
            "{scanner} failed on the image ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(output.stdout)
}

/// Parses a report with the parser for the scanner that wrote it.
pub fn parse(scanner: Scanner, report: &[u8]) -> Result<Vec<crate::scan::Finding>, ScanError> {
    match scanner {
        Scanner::Trivy => crate::scan::trivy::parse(report),
        Scanner::Grype => crate::scan::grype::parse(report),
    }
}
