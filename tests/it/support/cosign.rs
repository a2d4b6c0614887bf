//! The reference verifiers: Debian's cosign 2.5 and cosign 3.1
//! (scripts/tools), run offline with keys cosign 2.5 generates, against the
//! loopback registries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HOW: &str = "run `scripts/tools` (or the tests through `scripts/test`) to install cosign 2.5 from Debian's trixie suite and cosign 3.1 from its unstable suite";

/// cosign 2.5.
pub fn cosign() -> PathBuf {
    tool("cosign")
}

/// cosign 3.1, which signs in the Sigstore bundle format.
pub fn cosign3() -> PathBuf {
    tool("cosign3")
}

fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("REGISTRY_ACTION_TOOLS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
        PathBuf::from,
    );
    let binary = dir.join(name);
    assert!(binary.is_file(), "no {name} at {}: {HOW}", binary.display());
    binary
}

/// A key pair from `cosign generate-key-pair`, in its own HOME with a
/// Docker config holding the registries' logins.
pub struct Cosign {
    pub dir: tempfile::TempDir,
    pub password: String,
}

impl Cosign {
    pub fn new(password: &str, logins: &[(&str, &str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auths: serde_json::Map<String, serde_json::Value> = logins
            .iter()
            .map(|(registry, user, password)| {
                use base64::Engine as _;
                let auth =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                (registry.to_string(), serde_json::json!({ "auth": auth }))
            })
            .collect();
        std::fs::create_dir(dir.path().join("docker")).unwrap();
        std::fs::write(
            dir.path().join("docker/config.json"),
            serde_json::json!({ "auths": auths }).to_string(),
        )
        .unwrap();
        let cosign = Cosign {
            dir,
            password: password.to_owned(),
        };
        let out = cosign.run(&["generate-key-pair"]);
        assert!(
            out.status.success(),
            "cosign generate-key-pair: {}",
            text(&out)
        );
        cosign
    }

    pub fn private_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cosign.key")).unwrap()
    }

    pub fn public_pem(&self) -> String {
        std::fs::read_to_string(self.pub_path()).unwrap()
    }

    pub fn pub_path(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(cosign(), args)
    }

    /// cosign 3.1 `sign` or `attest` (`verb`, then `args`) with this key and
    /// no transparency log, Fulcio or timestamp authority (a signing config
    /// without them: cosign 3 refuses `--tlog-upload=false`); it stores a
    /// bundle as a referrer of the image.
    pub fn sign3(&self, verb: &str, args: &[&str]) -> Result<(), String> {
        let config = self.path("signing-config.json");
        if !config.is_file() {
            let out = self.run_with(
                cosign3(),
                &[
                    "signing-config",
                    "create",
                    "--no-default-fulcio",
                    "--no-default-rekor",
                    "--no-default-oidc",
                    "--no-default-tsa",
                    "--out",
                    config.to_str().unwrap(),
                ],
            );
            assert!(
                out.status.success(),
                "cosign3 signing-config: {}",
                text(&out)
            );
        }
        let mut all = vec![
            verb,
            "--yes",
            "--key",
            "cosign.key",
            "--signing-config",
            config.to_str().unwrap(),
            "--allow-insecure-registry",
        ];
        all.extend_from_slice(args);
        let out = self.run_with(cosign3(), &all);
        out.status.success().then_some(()).ok_or_else(|| text(&out))
    }

    /// cosign 3.1 `verify` (or `verify-attestation`, with `--type` in
    /// `args`) with this key, offline.
    pub fn verify3(&self, verb: &str, args: &[&str]) -> Result<(), String> {
        self.verify3_with(Path::new("cosign.pub"), verb, args)
    }

    /// [`Self::verify3`] with another public key.
    pub fn verify3_with(&self, key: &Path, verb: &str, args: &[&str]) -> Result<(), String> {
        let key = key.to_str().unwrap();
        let mut all = vec![
            verb,
            "--key",
            key,
            "--insecure-ignore-tlog=true",
            "--allow-insecure-registry",
        ];
        all.extend_from_slice(args);
        let out = self.run_with(cosign3(), &all);
        out.status.success().then_some(()).ok_or_else(|| text(&out))
    }

    fn run_with(&self, binary: PathBuf, args: &[&str]) -> Output {
        Command::new(binary)
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("COSIGN_PASSWORD", &self.password)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap()
    }

    /// `cosign verify --key <key> --insecure-ignore-tlog=true image`, as the
    /// user's cluster checks; the payloads it prints on success.
    pub fn verify(&self, key: &Path, image: &str) -> Result<Vec<serde_json::Value>, String> {
        let out = self.run(&[
            "verify",
            "--key",
            key.to_str().unwrap(),
            "--insecure-ignore-tlog=true",
            "--output",
            "json",
            image,
        ]);
        if !out.status.success() {
            return Err(text(&out));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out))))
    }

    /// `cosign verify-attestation --type <kind>`: the statements it verified.
    pub fn verify_attestation(
        &self,
        key: &Path,
        kind: &str,
        image: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        let out = self.run(&[
            "verify-attestation",
            "--key",
            key.to_str().unwrap(),
            "--insecure-ignore-tlog=true",
            "--type",
            kind,
            image,
        ]);
        if !out.status.success() {
            return Err(text(&out));
        }
        use base64::Engine as _;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let envelope: serde_json::Value = serde_json::from_str(line).unwrap();
                let statement = base64::engine::general_purpose::STANDARD
                    .decode(envelope["payload"].as_str().unwrap())
                    .unwrap();
                serde_json::from_slice(&statement).unwrap()
            })
            .collect())
    }

    /// `cosign sign --key cosign.key --tlog-upload=false`: cosign's own signature.
    pub fn sign(&self, image: &str) {
        let out = self.run(&[
            "sign",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
            "--yes",
            image,
        ]);
        assert!(out.status.success(), "cosign sign: {}", text(&out));
    }

    /// `cosign attest --type cyclonedx` of `predicate` (a JSON document).
    pub fn attest(&self, image: &str, predicate: &serde_json::Value) {
        let file = self.path("predicate.json");
        std::fs::write(&file, predicate.to_string()).unwrap();
        let out = self.run(&[
            "attest",
            "--key",
            "cosign.key",
            "--type",
            "cyclonedx",
            "--predicate",
            file.to_str().unwrap(),
            "--tlog-upload=false",
            "--yes",
            image,
        ]);
        assert!(out.status.success(), "cosign attest: {}", text(&out));
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Validates `document` against the official CycloneDX 1.6 JSON schema with
/// cyclonedx-python-lib's strict validator (scripts/tools installs it).
pub fn validate_cyclonedx_1_6(document: &Path) -> Result<(), String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\n\
             from cyclonedx.schema import SchemaVersion\n\
             from cyclonedx.validation.json import JsonStrictValidator\n\
             error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
             sys.exit(str(error) if error else 0)\n",
        )
        .arg(document)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} (needs cyclonedx-python-lib[json-validation]: {HOW})",
            text(&out)
        ))
    }
}
