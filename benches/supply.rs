//! `cargo bench --bench supply`: what an SBOM and a signature add to a
//! publish, against doing the same with the tools after it. On the real
//! engine and the open registry that `scripts/services start` runs, with
//! the offline Trivy and Debian's cosign 2.5 of `scripts/tools`.
//!
//! Every round publishes three new commits of one image (an Alpine root
//! filesystem listing 502 packages, so the SBOM is not trivial), each a new
//! build, scanned by Trivy as the gate:
//! - plain: `scanner: trivy`, nothing else — the baseline;
//! - `sbom: cyclonedx` and a PKCS#8 `sign-key` (no key derivation);
//! - `sbom: cyclonedx` and cosign's encrypted `cosign.key` (scrypt, as
//!   `cosign generate-key-pair` writes it).
//!
//! After the plain publish, the competitor does the same with the tools, as
//! a separate job would: `trivy image` of the pushed digest from the
//! registry (`--list-all-pkgs`), `trivy convert` to CycloneDX, `cosign sign
//! --key cosign.key --tlog-upload=false` and `cosign attest --type
//! cyclonedx`. The table sets what each adds to the plain publish side by
//! side. cosign takes no PKCS#8 key file (`unsupported pem type: PRIVATE
//! KEY`), so the like-for-like ratio is the `cosign.key` row's: the same
//! key, scrypt on both sides (cosign, two processes, opens it twice).
//!
//! Every publish and every `trivy image` starts with a Trivy cache of its
//! own holding only the database: no run reuses another's analysis of the
//! image's layers (the tools' scan would otherwise find the gate's).
//!
//! The tools' time is broken down by what each part costs on its own:
//! `cosign version` (a process start), `cosign public-key --key cosign.key`
//! (a start and scrypt), `trivy --version`.
//!
//! `SUPPLY_BENCH_ROUNDS` (default 3) rounds; who goes first rotates. Not a
//! test: beyond checking that every run succeeded and left its `.sig` and
//! `.att` (so a number never describes a run that went wrong), it asserts
//! nothing.

#![allow(clippy::unwrap_used)]

mod common;
#[allow(dead_code)]
#[path = "../tests/it/support/cosign.rs"]
mod cosign;
#[allow(dead_code)]
#[path = "../tests/it/support/trivy_db.rs"]
mod trivy_db;

use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use tokio::runtime::Runtime;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-action");
const ROUNDS_VAR: &str = "SUPPLY_BENCH_ROUNDS";
/// Packages beside the two the advisories name.
const PACKAGES: usize = 500;
const IMAGE: &str = "ops/docker/app";
const PASSWORD: &str = "bench-password-3c9d";
const REVISION_LABEL: &str = "org.opencontainers.image.revision";

fn main() -> ExitCode {
    if let Some(code) = measuring_child() {
        return code;
    }
    let Some(services) = Services::for_bench("supply") else {
        return ExitCode::FAILURE;
    };
    let trivy = match Trivy::new() {
        Ok(trivy) => trivy,
        Err(e) => {
            eprintln!("the supply bench needs Trivy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rounds = match std::env::var(ROUNDS_VAR) {
        Ok(n) => n.parse().expect("SUPPLY_BENCH_ROUNDS: a number of rounds"),
        Err(_) => 3,
    };
    assert!(rounds > 0, "{ROUNDS_VAR} must be at least 1");
    let bench = Bench {
        cosign: cosign::Cosign::new(PASSWORD, &[]),
        pkcs8: p256::ecdsa::SigningKey::from_slice(&[7; 32])
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .to_string(),
        workspace: Workspace::new(),
        namespace: format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        docker_config: tempfile::tempdir().unwrap(),
        rt: Runtime::new().unwrap(),
        services,
        trivy,
    };
    println!(
        "{rounds} rounds, pushed to {}/{}/app",
        bench.services.registry_open, bench.namespace
    );
    let mut samples = Samples::default();
    for round in 0..rounds {
        let mut order = Variant::ALL;
        order.rotate_left(round % Variant::ALL.len());
        for variant in order {
            let (wall, digest) = bench.publish(variant);
            samples.publish[variant as usize].push(wall);
            if variant == Variant::Plain {
                samples.tools.push(bench.tools(&digest));
                samples.parts.push(bench.parts());
            }
        }
        samples.print_round(round);
    }
    samples.print();
    ExitCode::SUCCESS
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Pkcs8,
    CosignKey,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Plain, Variant::Pkcs8, Variant::CosignKey];

    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "publish, `scanner: trivy` (the baseline)",
            Variant::Pkcs8 => "+ `sbom: cyclonedx`, `sign-key`: PKCS#8",
            Variant::CosignKey => "+ `sbom: cyclonedx`, `sign-key`: cosign.key (scrypt)",
        }
    }
}

/// The offline Trivy of `scripts/tools`.
struct Trivy {
    dir: PathBuf,
}

impl Trivy {
    fn new() -> Result<Self, String> {
        let trivy = Trivy {
            dir: trivy_db::trivy_dir()?,
        };
        trivy.cold_cache()?;
        Ok(trivy)
    }

    /// A Trivy cache holding the database and nothing else: no layer
    /// analysed before, whoever scanned the image already.
    fn cold_cache(&self) -> Result<tempfile::TempDir, String> {
        let dir = tempfile::tempdir().unwrap();
        trivy_db::write_db(dir.path(), &dir.path().join("cache"))?;
        Ok(dir)
    }

    /// `command` with Trivy first on PATH, offline, reading the database of
    /// `cache` (a [`Trivy::cold_cache`]).
    fn around<'a>(&self, command: &'a mut Command, cache: &Path) -> &'a mut Command {
        let path = std::env::join_paths(std::iter::once(self.dir.clone()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        command
            .env("PATH", path)
            .env("TRIVY_CACHE_DIR", cache.join("cache"))
            .envs(trivy_db::OFFLINE)
    }
}

struct Bench {
    services: Services,
    trivy: Trivy,
    /// cosign's key pair (`cosign.key` encrypted with PASSWORD), for ours
    /// and for cosign itself.
    cosign: cosign::Cosign,
    pkcs8: String,
    workspace: Workspace,
    namespace: String,
    /// An empty DOCKER_CONFIG: no credential helper or user setting.
    docker_config: tempfile::TempDir,
    rt: Runtime,
}

impl Bench {
    /// A publish of a new commit; its wall time and the digest pushed.
    fn publish(&self, variant: Variant) -> (Duration, String) {
        let sha = self.workspace.next_commit();
        let runner = Runner::new();
        let mut command = runner.command(
            BINARY,
            self.workspace.path(),
            &sha,
            &self.services.docker_host,
        );
        let cache = self.trivy.cold_cache().unwrap();
        self.trivy.around(&mut command, cache.path());
        command
            .env("INPUT_COMMAND", "publish")
            .env("INPUT_PATH", IMAGE)
            .env("INPUT_REGISTRY", &self.services.registry_open)
            .env("INPUT_NAMESPACE", &self.namespace)
            .env("INPUT_LATEST", "false")
            .env("INPUT_SCANNER", "trivy");
        let key = match variant {
            Variant::Plain => None,
            Variant::Pkcs8 => Some(self.pkcs8.clone()),
            Variant::CosignKey => Some(self.cosign.private_pem()),
        };
        if let Some(key) = key {
            command
                .env("INPUT_SBOM", "cyclonedx")
                .env("INPUT_SIGN-KEY", key)
                .env("INPUT_SIGN-KEY-PASSWORD", PASSWORD);
        }
        let (run, outputs) = runner.run(command);
        let digest = outputs["digest"].clone();
        if variant != Variant::Plain {
            self.assert_signed(&digest);
        }
        let label = format!("label={REVISION_LABEL}={sha}");
        docker(
            &self.services.docker_host,
            self.docker_config.path(),
            &["image", "prune", "-af", "--filter", &label],
        );
        (run.wall, digest)
    }

    /// The competitor on `digest`: the wall time of each tool.
    fn tools(&self, digest: &str) -> [Duration; 4] {
        let image = format!(
            "{}/{}/app@{digest}",
            self.services.registry_open, self.namespace
        );
        let dir = tempfile::tempdir().unwrap();
        let (report, sbom) = (dir.path().join("report.json"), dir.path().join("sbom.json"));
        let cache = self.trivy.cold_cache().unwrap();
        let scan = self.trivy_run(
            cache.path(),
            &[
                "image",
                "--image-src",
                "remote",
                "--insecure",
                "--format",
                "json",
                "--list-all-pkgs",
                "--quiet",
                "--output",
                report.to_str().unwrap(),
                &image,
            ],
        );
        let convert = self.trivy_run(
            cache.path(),
            &[
                "convert",
                "--format",
                "cyclonedx",
                "--quiet",
                "--output",
                sbom.to_str().unwrap(),
                report.to_str().unwrap(),
            ],
        );
        let sign = self.cosign_run(&[
            "sign",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
            "--yes",
            &image,
        ]);
        let attest = self.cosign_run(&[
            "attest",
            "--key",
            "cosign.key",
            "--type",
            "cyclonedx",
            "--predicate",
            sbom.to_str().unwrap(),
            "--tlog-upload=false",
            "--yes",
            &image,
        ]);
        self.assert_signed(digest);
        let listed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
        let components = listed["components"].as_array().map_or(0, Vec::len);
        assert!(
            components > PACKAGES,
            "trivy's SBOM lists {components} components"
        );
        [scan, convert, sign, attest]
    }

    /// What parts of the tools cost alone: `cosign version` (a process
    /// start), `cosign public-key --key cosign.key` (a start and scrypt) and
    /// `trivy --version` (a start).
    fn parts(&self) -> [Duration; 3] {
        let cosign_start = self.cosign_run(&["version"]);
        let cosign_key = self.cosign_run(&["public-key", "--key", "cosign.key"]);
        let cache = self.trivy.cold_cache().unwrap();
        let trivy_start = self.trivy_run(cache.path(), &["--version"]);
        [cosign_start, cosign_key, trivy_start]
    }

    fn trivy_run(&self, cache: &Path, args: &[&str]) -> Duration {
        let mut command = Command::new(self.trivy.dir.join("trivy"));
        // No login is needed, and none of the user's may be read.
        let home = self.docker_config.path();
        command
            .env_clear()
            .env("HOME", home)
            .env("DOCKER_CONFIG", home)
            .args(args);
        self.trivy.around(&mut command, cache);
        timed(&mut command, "trivy")
    }

    fn cosign_run(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let out = self.cosign.run(args);
        let wall = started.elapsed();
        assert!(
            out.status.success(),
            "cosign {}: {}",
            args[0],
            cosign::text(&out)
        );
        wall
    }

    /// The registry holds a signature and an attestation of `digest`.
    fn assert_signed(&self, digest: &str) {
        let url = format!(
            "http://{}/v2/{}/app/tags/list",
            self.services.registry_open, self.namespace
        );
        let listed: serde_json::Value = self.rt.block_on(async {
            let response = reqwest::get(&url)
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
            response.json().await.unwrap()
        });
        let tags: Vec<&str> = listed["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        let hex = digest.trim_start_matches("sha256:");
        for suffix in ["sig", "att"] {
            let tag = format!("sha256-{hex}.{suffix}");
            assert!(tags.contains(&tag.as_str()), "no {tag} in {tags:?}");
        }
    }
}

/// Runs `command`, failing unless it succeeds; its wall time.
fn timed(command: &mut Command, what: &str) -> Duration {
    let started = Instant::now();
    let out = command.output().unwrap();
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wall
}

/// A repository holding one image directory, `FROM scratch` with an Alpine
/// root filesystem; every commit changes a file in it, so every publish
/// builds and scans.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join(IMAGE);
        std::fs::create_dir_all(&image).unwrap();
        std::fs::write(image.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").unwrap();
        let mut packages: Vec<(String, String)> = (0..PACKAGES)
            .map(|n| (format!("bench-package-{n:03}"), format!("1.{n}.0-r0")))
            .collect();
        // Named by the test advisories: the scan finds something.
        packages.push(("libcrypto3".into(), "3.1.4-r0".into()));
        packages.push(("zlib".into(), "1.3.1-r0".into()));
        trivy_db::alpine_rootfs(&image.join("rootfs"), &packages);
        git(dir.path(), &["init", "-q", "-b", "main"]);
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A new commit with a new file in the image; its SHA.
    fn next_commit(&self) -> String {
        let nonce = self.path().join(IMAGE).join("rootfs/etc/nonce");
        std::fs::write(nonce, uuid::Uuid::new_v4().to_string()).unwrap();
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", "round"]);
        git(self.path(), &["rev-parse", "HEAD"])
    }
}

#[derive(Default)]
struct Samples {
    /// Wall time per publish, in `Variant` order.
    publish: [Vec<Duration>; Variant::ALL.len()],
    /// The competitor's tools after each plain publish: trivy image,
    /// trivy convert, cosign sign, cosign attest.
    tools: Vec<[Duration; 4]>,
    /// [`Bench::parts`] after each round's tools.
    parts: Vec<[Duration; 3]>,
}

impl Samples {
    /// The walls of round `round`, so a median can be read against them.
    fn print_round(&self, round: usize) {
        let publish: Vec<String> = Variant::ALL
            .iter()
            .map(|&v| format!("{:.2}", secs(self.publish[v as usize][round])))
            .collect();
        let tools: Duration = self.tools[round].iter().sum();
        println!(
            "round {}: publish plain / PKCS#8 / cosign.key {} s; the tools {:.2} s",
            round + 1,
            publish.join(" / "),
            secs(tools)
        );
    }

    fn print(&self) {
        let plain = median(&self.publish[Variant::Plain as usize]);
        let tools: Vec<Duration> = self.tools.iter().map(|t| t.iter().sum()).collect();
        let theirs = median(&tools);
        println!();
        println!("| run | median wall | added to the plain publish | added: ours / the tools' |");
        println!("| --- | ---: | ---: | ---: |");
        println!(
            "| {} | {:.2} s | — | — |",
            Variant::Plain.name(),
            secs(plain)
        );
        for variant in [Variant::Pkcs8, Variant::CosignKey] {
            let wall = median(&self.publish[variant as usize]);
            let added = secs(wall) - secs(plain);
            let ratio = added / secs(theirs);
            // The tools sign with cosign.key only: cosign takes no PKCS#8 key.
            let ratio = match variant {
                Variant::CosignKey => format!("**{ratio:.2}** (same key)"),
                _ => format!("{ratio:.2} (key kinds differ)"),
            };
            println!(
                "| {} | {:.2} s | {added:+.2} s | {ratio} |",
                variant.name(),
                secs(wall),
            );
        }
        println!(
            "| then trivy image + trivy convert + cosign sign + cosign attest (cosign.key) | {:.2} s | {:+.2} s | 1.00 |",
            secs(plain + theirs),
            secs(theirs)
        );
        println!();
        let part = |i: usize| median(&self.tools.iter().map(|t| t[i]).collect::<Vec<_>>());
        println!(
            "the tools, medians: trivy image {}, trivy convert {}, cosign sign {}, cosign attest {}",
            ms(part(0)),
            ms(part(1)),
            ms(part(2)),
            ms(part(3))
        );
        let alone = |i: usize| median(&self.parts.iter().map(|t| t[i]).collect::<Vec<_>>());
        let (cosign_start, cosign_key, trivy_start) = (alone(0), alone(1), alone(2));
        let scrypt = cosign_key.saturating_sub(cosign_start);
        let ours_scrypt = secs(median(&self.publish[Variant::CosignKey as usize]))
            - secs(median(&self.publish[Variant::Pkcs8 as usize]));
        println!(
            "alone, medians: cosign version {}, cosign public-key --key cosign.key {} \
             (scrypt ≈ {}), trivy --version {}",
            ms(cosign_start),
            ms(cosign_key),
            ms(scrypt),
            ms(trivy_start)
        );
        println!(
            "of the tools' {}: two cosign starts ≈ {}, two scrypt openings ≈ {}, two trivy starts ≈ {}, \
             the rest (the scan, the conversion, the registry work) ≈ {}; ours opens cosign.key once \
             (its row minus the PKCS#8 row: {:+.2} s)",
            ms(theirs),
            ms(cosign_start * 2),
            ms(scrypt * 2),
            ms(trivy_start * 2),
            ms(theirs.saturating_sub((cosign_start + scrypt + trivy_start) * 2)),
            ours_scrypt
        );
        println!(
            "medians of the rounds; \"added\" is a median publish minus the plain one's; \
             the tools' time is theirs alone, after the plain publish; every publish and \
             every trivy image starts with a cache holding only the database"
        );
    }
}

fn secs(wall: Duration) -> f64 {
    wall.as_secs_f64()
}
