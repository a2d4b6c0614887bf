//! Runs a scanner on an exported image and returns its JSON report: the
//! scanner's binary from PATH, or the scanner's image as a container
//! through the Docker Engine.
//!
//! Which one: `scanner-image` given → always the container; otherwise the
//! binary when it is on PATH, else the container of the pinned default image
//! ([`default_image`]).
//!
//! Either way the scanner sees a scrubbed environment, never the action's
//! inputs, tokens or registry passwords. The binary gets what it needs to
//! work (PATH, HOME, temp and proxy settings) and its own `TRIVY_*` /
//! `GRYPE_*` settings; the container gets only those own settings (and
//! `TMPDIR=/scan`), a copy of the archive under `/scan`, a copy of the scanner's cache directory
//! (`TRIVY_CACHE_DIR` / `GRYPE_DB_CACHE_DIR`) at the same path when one is
//! set, and no network at all when the scanner is told to stay offline.
//! Copies, sent through the engine API, rather than bind mounts: inside the
//! action's own container our paths are not paths of the engine's host.
//! What the scanner adds to its cache in there is not kept.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::Command;

use crate::engine::{CopyIn, RunError, RunSpec, Runner};
use crate::scan::{ScanError, Scanner};
use crate::supply::cosign::Predicate;

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

/// Where the archive is copied to inside a scanner container.
const IN_CONTAINER: &str = "/scan";

/// How long a scanner container may run before it is stopped and removed.
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// stderr lines quoted when the scanner fails.
const STDERR_LINES: usize = 10;

/// The image run when the scanner's binary is not on PATH and no
/// `scanner-image` is given. Pinned by version; pinning `scanner-image` by
/// digest is better still.
pub fn default_image(scanner: Scanner) -> &'static str {
    match scanner {
        Scanner::Trivy => "aquasec/trivy:0.59.1",
        Scanner::Grype => "anchore/grype:v0.87.0",
    }
}

/// How the scanner runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// This binary, found on PATH.
    Binary(PathBuf),
    /// This image, as a container; `explicit` when `scanner-image` named it.
    Container { image: String, explicit: bool },
}

/// The rule: `scanner-image` given → the container; else the binary on
/// `path` (a PATH value), else the default image.
pub fn choose(scanner: Scanner, scanner_image: Option<&str>, path: Option<&OsStr>) -> Via {
    if let Some(image) = scanner_image.map(str::trim).filter(|i| !i.is_empty()) {
        return Via::Container {
            image: image.to_owned(),
            explicit: true,
        };
    }
    match path.and_then(|p| find_on_path(program(scanner), p)) {
        Some(binary) => Via::Binary(binary),
        None => Via::Container {
            image: default_image(scanner).to_owned(),
            explicit: false,
        },
    }
}

/// An executable file called `program` in one of `path`'s directories.
fn find_on_path(program: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn program(scanner: Scanner) -> &'static str {
    match scanner {
        Scanner::Trivy => "trivy",
        Scanner::Grype => "grype",
    }
}

/// The scanner's own settings: the environment variables with this prefix.
fn own_prefix(scanner: Scanner) -> &'static str {
    match scanner {
        Scanner::Trivy => "TRIVY_",
        Scanner::Grype => "GRYPE_",
    }
}

/// The variable naming the scanner's cache (its vulnerability database).
fn cache_variable(scanner: Scanner) -> &'static str {
    match scanner {
        Scanner::Trivy => "TRIVY_CACHE_DIR",
        Scanner::Grype => "GRYPE_DB_CACHE_DIR",
    }
}

/// What the scanner does with the file it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    /// Scan a `docker save` archive into a JSON report; listing every
    /// package only when an SBOM is made from it (the report grows large).
    Scan { every_package: bool },
    /// Turn Trivy's JSON report into an SBOM (`trivy convert`), no rescan.
    Convert(Predicate),
}

impl Task {
    fn doing(self) -> &'static str {
        match self {
            Task::Scan { .. } => "on the image",
            Task::Convert(_) => "converting the scan's report to an SBOM",
        }
    }
}

/// The arguments that make the scanner do `task` on `file` (a path as the
/// scanner sees it) and write the result to stdout.
fn arguments(scanner: Scanner, task: Task, file: &str) -> Vec<String> {
    match (scanner, task) {
        (Scanner::Trivy, Task::Convert(predicate)) => vec![
            "convert".into(),
            "--format".into(),
            match predicate {
                Predicate::CycloneDx => "cyclonedx",
                Predicate::Spdx => "spdx-json",
            }
            .into(),
            "--quiet".into(),
            file.to_owned(),
        ],
        (Scanner::Trivy, Task::Scan { every_package }) => [
            "image",
            "--input",
            file,
            "--format",
            "json",
            "--quiet",
            "--exit-code",
            "0",
        ]
        .into_iter()
        .chain(every_package.then_some("--list-all-pkgs"))
        .map(str::to_owned)
        .collect(),
        // Only Trivy converts (`convert` asks it by name).
        (Scanner::Grype, _) => vec![
            format!("docker-archive:{file}"),
            "--output".into(),
            "json".into(),
            "--quiet".into(),
        ],
    }
}

/// Go's `strconv.ParseBool` true values, which both scanners accept.
fn truthy(value: &str) -> bool {
    matches!(value.trim(), "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// The scanner was told not to fetch anything, so its container gets no
/// network at all.
fn offline(scanner: Scanner, env: &[(String, String)]) -> bool {
    let set = |name: &str| env.iter().any(|(k, v)| k == name && truthy(v));
    match scanner {
        Scanner::Trivy => set("TRIVY_OFFLINE_SCAN") || set("TRIVY_SKIP_DB_UPDATE"),
        Scanner::Grype => env
            .iter()
            .any(|(k, v)| k == "GRYPE_DB_AUTO_UPDATE" && v.trim().eq_ignore_ascii_case("false")),
    }
}

/// The scanner's JSON report for the `docker save` archive at `archive`.
/// `scanner_image` is the `scanner-image` input.
pub async fn scan_archive(
    scanner: Scanner,
    archive: &Path,
    every_package: bool,
    scanner_image: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    run(
        scanner,
        Task::Scan { every_package },
        archive,
        scanner_image,
    )
    .await
}

/// The SBOM of the image Trivy's JSON `report` (made with every package
/// listed) is about, converted without a rescan, by the same Trivy.
pub async fn convert(
    report: &Path,
    predicate: Predicate,
    scanner_image: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    run(
        Scanner::Trivy,
        Task::Convert(predicate),
        report,
        scanner_image,
    )
    .await
}

async fn run(
    scanner: Scanner,
    task: Task,
    file: &Path,
    scanner_image: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    match choose(scanner, scanner_image, std::env::var_os("PATH").as_deref()) {
        Via::Binary(binary) => scan_with_binary(scanner, &binary, task, file).await,
        Via::Container { image, explicit } => {
            let how = if explicit {
                "`scanner-image`".to_owned()
            } else {
                format!(
                    "no `{0}` on PATH: install it there, or set `scanner: none` to skip the scan",
                    program(scanner)
                )
            };
            tracing::info!("{scanner} runs in a container of {image}");
            scan_in_container(scanner, &image, task, file)
                .await
                .with_context(|| format!("{scanner} in a container of {image} ({how})"))
        }
    }
}

async fn scan_with_binary(
    scanner: Scanner,
    binary: &Path,
    task: Task,
    archive: &Path,
) -> anyhow::Result<Vec<u8>> {
    let prefix = own_prefix(scanner);
    let env = std::env::vars()
        .filter(|(k, _)| PASSED_THROUGH.contains(&k.as_str()) || k.starts_with(prefix));
    let output = Command::new(binary)
        .args(arguments(scanner, task, &archive.display().to_string()))
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "couldn't run `{}` ({e}); install {scanner} on the runner's PATH, or set `scanner: none` to skip the scan",
                binary.display()
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(STDERR_LINES).collect();
        anyhow::bail!(
            "{scanner} failed {} ({}): {}",
            task.doing(),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(output.stdout)
}

/// What the container is given: the archive in `/scan`, the cache
/// directory (when there is one) at its own path, the scanner's own
/// variables only.
fn container_spec<'a>(
    scanner: Scanner,
    image: &'a str,
    task: Task,
    archive: &Path,
    our_env: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<RunSpec<'a>> {
    let archive = std::path::absolute(archive)
        .with_context(|| format!("couldn't resolve {}", archive.display()))?;
    let Some(file) = archive.file_name() else {
        anyhow::bail!("{} is not a file path", archive.display());
    };
    let target = format!("{IN_CONTAINER}/{}", file.to_string_lossy());
    let prefix = own_prefix(scanner);
    let mut env: Vec<(String, String)> = our_env.filter(|(k, _)| k.starts_with(prefix)).collect();
    let mut copies = vec![CopyIn {
        source: archive.clone(),
        target: target.clone(),
    }];
    let cache_name = cache_variable(scanner);
    if let Some((_, value)) = env
        .iter_mut()
        .find(|(k, v)| k == cache_name && !v.trim().is_empty())
    {
        let cache = std::path::absolute(value.trim())
            .with_context(|| format!("couldn't resolve {cache_name}={value}"))?;
        // At the same path, so the variable means the same inside; a cache
        // not made yet is the scanner's to make in there.
        *value = cache.display().to_string();
        if cache.is_dir() {
            copies.push(CopyIn {
                target: value.clone(),
                source: cache,
            });
        }
    }
    let network_none = offline(scanner, &env);
    // Scratch space beside the archive: a minimal scanner image may have
    // no /tmp, and the copies no longer make one on the way.
    env.push(("TMPDIR".to_owned(), IN_CONTAINER.to_owned()));
    Ok(RunSpec {
        image,
        cmd: arguments(scanner, task, &target),
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        copies,
        network_none,
        timeout: CONTAINER_TIMEOUT,
    })
}

async fn scan_in_container(
    scanner: Scanner,
    image: &str,
    task: Task,
    archive: &Path,
) -> anyhow::Result<Vec<u8>> {
    let spec = container_spec(scanner, image, task, archive, std::env::vars())?;
    let runner = Runner::connect().await?;
    match runner.ensure_image(image).await {
        Ok(()) => {}
        Err(RunError::ImageUnavailable { reason, .. }) => anyhow::bail!(
            "the scanner image {image} is not on the Docker Engine and couldn't be pulled ({reason}); load or pull it onto the engine first (`docker pull {image}`, after `docker login` for a private registry), or set `scanner-image` to an image the engine has"
        ),
        Err(e) => return Err(e.into()),
    }
    let exited = runner.run(&spec).await?;
    if exited.code != 0 {
        anyhow::bail!(
            "{scanner} failed {} (exit code {}): {}",
            task.doing(),
            exited.code,
            exited.stderr_tail(STDERR_LINES)
        );
    }
    Ok(exited.stdout)
}

/// Parses a report with the parser for the scanner that wrote it.
pub fn parse(scanner: Scanner, report: &[u8]) -> Result<Vec<crate::scan::Finding>, ScanError> {
    match scanner {
        Scanner::Trivy => crate::scan::trivy::parse(report),
        Scanner::Grype => crate::scan::grype::parse(report),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_explicit_image_wins_else_the_binary_else_the_default_image() {
        let dir = tempfile::tempdir().unwrap();
        let trivy = dir.path().join("trivy");
        std::fs::write(&trivy, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&trivy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();

        assert_eq!(
            choose(Scanner::Trivy, Some("scan/trivy:1"), Some(&path)),
            Via::Container {
                image: "scan/trivy:1".into(),
                explicit: true
            }
        );
        assert_eq!(
            choose(Scanner::Trivy, Some("  "), Some(&path)),
            Via::Binary(trivy.clone()),
            "an empty input is unset"
        );
        assert_eq!(
            choose(Scanner::Grype, None, Some(&path)),
            Via::Container {
                image: "anchore/grype:v0.87.0".into(),
                explicit: false
            }
        );
        assert_eq!(
            choose(Scanner::Trivy, None, None),
            Via::Container {
                image: "aquasec/trivy:0.59.1".into(),
                explicit: false
            }
        );

        std::fs::set_permissions(&trivy, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(
            matches!(
                choose(Scanner::Trivy, None, Some(&path)),
                Via::Container { .. }
            ),
            "a file that can't be executed is not the binary"
        );
    }

    #[test]
    fn the_container_gets_copies_of_the_archive_and_the_cache_and_its_own_settings_only() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("work/image.tar");
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let spec = container_spec(
            Scanner::Trivy,
            "aquasec/trivy:0.59.1",
            Task::Scan {
                every_package: true,
            },
            &archive,
            env(&[
                ("TRIVY_CACHE_DIR", cache.to_str().unwrap()),
                ("TRIVY_OFFLINE_SCAN", "true"),
                ("INPUT_PASSWORD", "hunter2"),
                ("GITHUB_TOKEN", "ghs_secret"),
                ("GRYPE_DB_CACHE_DIR", "/elsewhere"),
                ("PATH", "/usr/bin"),
            ])
            .into_iter(),
        )
        .unwrap();
        assert_eq!(
            spec.cmd,
            [
                "image",
                "--input",
                "/scan/image.tar",
                "--format",
                "json",
                "--quiet",
                "--exit-code",
                "0",
                "--list-all-pkgs"
            ]
        );
        let convert = container_spec(
            Scanner::Trivy,
            "aquasec/trivy:0.59.1",
            Task::Convert(Predicate::Spdx),
            &dir.path().join("report.json"),
            env(&[]).into_iter(),
        )
        .unwrap();
        assert_eq!(
            convert.cmd,
            [
                "convert",
                "--format",
                "spdx-json",
                "--quiet",
                "/scan/report.json"
            ]
        );
        assert_eq!(
            spec.env,
            [
                format!("TRIVY_CACHE_DIR={}", cache.display()),
                "TRIVY_OFFLINE_SCAN=true".to_owned(),
                "TMPDIR=/scan".to_owned()
            ]
        );
        assert_eq!(
            spec.copies,
            [
                CopyIn {
                    source: archive.clone(),
                    target: "/scan/image.tar".into(),
                },
                CopyIn {
                    source: cache.clone(),
                    target: cache.display().to_string(),
                }
            ]
        );
        assert!(spec.network_none);

        let spec = container_spec(
            Scanner::Grype,
            "anchore/grype:v0.87.0",
            Task::Scan {
                every_package: false,
            },
            &archive,
            env(&[("TRIVY_OFFLINE_SCAN", "true"), ("GRYPE_LOG_LEVEL", "warn")]).into_iter(),
        )
        .unwrap();
        assert_eq!(spec.cmd[0], "docker-archive:/scan/image.tar");
        assert_eq!(spec.env, ["GRYPE_LOG_LEVEL=warn", "TMPDIR=/scan"]);
        assert_eq!(spec.copies.len(), 1, "no cache set, none copied");

        let spec = container_spec(
            Scanner::Trivy,
            "aquasec/trivy:0.59.1",
            Task::Scan {
                every_package: false,
            },
            &archive,
            env(&[(
                "TRIVY_CACHE_DIR",
                dir.path().join("absent").to_str().unwrap(),
            )])
            .into_iter(),
        )
        .unwrap();
        assert_eq!(spec.copies.len(), 1, "a cache not made yet is not copied");
        assert!(spec.env[0].ends_with("/absent"), "but still named");
        assert!(!spec.network_none, "the engine's default network");
        assert!(
            !spec.cmd.iter().any(|a| a == "--list-all-pkgs"),
            "every package only for an SBOM: {:?}",
            spec.cmd
        );
    }

    #[test]
    fn offline_settings_cut_the_network() {
        assert!(offline(
            Scanner::Trivy,
            &env(&[("TRIVY_SKIP_DB_UPDATE", "1")])
        ));
        assert!(!offline(
            Scanner::Trivy,
            &env(&[("TRIVY_OFFLINE_SCAN", "false")])
        ));
        assert!(offline(
            Scanner::Grype,
            &env(&[("GRYPE_DB_AUTO_UPDATE", "false")])
        ));
        assert!(!offline(Scanner::Grype, &env(&[])));
    }
}
