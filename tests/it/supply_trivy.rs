//! Trivy as `publish` runs it for an SBOM: one scan and one `convert`, no
//! second scan, and a process environment holding none of the step's
//! secrets. A `trivy` first on PATH records each run, then execs the real
//! one, so what is checked is what the process was really given.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::supply::{PASSWORD, basic, image_repo, secret_lines, signed};
use crate::support::run::Action;
use crate::support::secret::assert_absent;
use crate::support::trivy::trivy;

/// The arguments and environment of one Trivy run.
struct Run {
    argv: Vec<String>,
    env: String,
}

/// `bin/trivy`, a recorder in front of the real Trivy; every run leaves
/// `runs/<id>/{argv,env}`.
struct Recorder {
    dir: tempfile::TempDir,
}

impl Recorder {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        // The scanner's scrubbed environment keeps PATH (mktemp, env) but
        // nothing that could name the log: the paths are written in.
        let script = format!(
            "#!/bin/sh\nrun=$(mktemp -d '{runs}/XXXXXX')\nprintf '%s\\n' \"$@\" >\"$run/argv\"\nenv >\"$run/env\"\nexec '{real}' \"$@\"\n",
            runs = dir.path().join("runs").display(),
            real = trivy().dir.join("trivy").display(),
        );
        let wrapper = dir.path().join("bin/trivy");
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Recorder { dir }
    }

    /// `action` with Trivy's test settings, the recorder first on PATH.
    fn around(&self, action: Action) -> Action {
        let path = std::env::join_paths(
            [self.dir.path().join("bin"), trivy().dir.clone()]
                .into_iter()
                .chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )),
        )
        .unwrap();
        trivy().around(action).env("PATH", path.to_str().unwrap())
    }

    fn runs(&self) -> Vec<Run> {
        let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs.iter()
            .map(|dir| Run {
                argv: read(dir, "argv").lines().map(str::to_owned).collect(),
                env: read(dir, "env"),
            })
            .collect()
    }
}

#[tokio::test]
async fn trivy_runs_once_plus_one_convert_and_never_sees_a_secret() {
    let target = basic();
    let repo = image_repo();
    let cosign = target.cosign();
    let recorder = Recorder::new();
    const VAULT_TOKEN: &str = "hvs.never-for-trivy-41c2";
    const GITHUB_TOKEN: &str = "ghs_never4trivy0000000000000000000000";
    let ran = recorder
        .around(signed(
            &repo,
            "sc-trivy",
            target,
            &cosign.private_pem(),
            "cyclonedx",
        ))
        .input("github-token", GITHUB_TOKEN)
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .env("VAULT_ADDR", "http://127.0.0.1:9")
        .env("VAULT_TOKEN", VAULT_TOKEN)
        .run_async()
        .await;
    ran.assert_ok();
    assert!(ran.outputs.contains_key("sbom-path"), "{ran}");

    let runs = recorder.runs();
    let commands: Vec<&str> = runs.iter().map(|r| r.argv[0].as_str()).collect();
    assert_eq!(
        commands.iter().filter(|c| **c == "image").count(),
        1,
        "one scan: {commands:?}"
    );
    assert_eq!(
        commands.iter().filter(|c| **c == "convert").count(),
        1,
        "one conversion: {commands:?}"
    );
    assert_eq!(runs.len(), 2, "{commands:?}");
    let scan = runs.iter().find(|r| r.argv[0] == "image").unwrap();
    assert!(
        scan.argv.iter().any(|a| a == "--list-all-pkgs"),
        "the SBOM needs every package: {:?}",
        scan.argv
    );
    let convert = runs.iter().find(|r| r.argv[0] == "convert").unwrap();
    assert!(
        convert
            .argv
            .windows(2)
            .any(|w| w == ["--format", "cyclonedx"]),
        "{:?}",
        convert.argv
    );

    let (_, registry_password) = target.login.unwrap();
    let secrets: Vec<String> = secret_lines(&cosign.private_pem())
        .into_iter()
        .chain([PASSWORD, registry_password, VAULT_TOKEN, GITHUB_TOKEN].map(str::to_owned))
        .collect();
    for run in &runs {
        let names: Vec<&str> = run
            .env
            .lines()
            .filter_map(|l| l.split_once('=').map(|(name, _)| name))
            .collect();
        assert!(
            names.contains(&"TRIVY_CACHE_DIR"),
            "the recorder saw Trivy's own settings: {names:?}"
        );
        for name in &names {
            assert!(
                !name.starts_with("INPUT_")
                    && !name.starts_with("VAULT_")
                    && !name.starts_with("GITHUB_"),
                "{} was given {name}",
                run.argv[0]
            );
        }
        for secret in &secrets {
            let place = format!("`trivy {}`'s environment", run.argv[0]);
            assert_absent(&run.env, secret, &place);
        }
    }
}
