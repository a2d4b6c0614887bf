//! SLSA build provenance v1 (predicate type [`PREDICATE_TYPE`]) of what
//! `publish` built: the source repository, commit and ref, the workflow and
//! its run, the Dockerfile, target, platforms and build arguments, every
//! base image with the digest it resolved to, the builder and the build's
//! start and finish. Build-argument values whose names look secret are
//! `<redacted>`; `secrets` are not build arguments and never appear. Pure.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::time::rfc3339;

pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// `cosign verify-attestation --type` for it.
pub const COSIGN_TYPE: &str = "slsaprovenance1";
/// What the external parameters mean: documented where this URI points.
pub const BUILD_TYPE: &str =
    "https://github.com/webgrip/registry-action/blob/main/docs/supply-chain.md#provenance";
/// This action, the builder (the job's runner runs it, the engine builds).
pub const BUILDER_ID: &str = "https://github.com/webgrip/registry-action";
pub const REDACTED: &str = "<redacted>";
/// A build argument whose name holds one of these (any case) has its value
/// recorded as [`REDACTED`].
const SECRET_WORDS: [&str; 5] = ["token", "password", "secret", "key", "credential"];

/// The commit built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `https://github.com/owner/name`.
    pub repository: String,
    pub commit: String,
    pub git_ref: Option<String>,
}

/// The workflow run that published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The run's page on the forge (an attempt of it on GitHub).
    pub url: String,
    /// The workflow file, as `GITHUB_WORKFLOW_REF` names it
    /// (`owner/name/.github/workflows/x.yml@refs/heads/main`).
    pub workflow_ref: Option<String>,
}

/// The builder's image: its ID as the engine names it and, when it was run
/// from a registry's repository, `repository@sha256:…` of its manifest.
#[derive(Debug, Clone, Copy)]
pub struct BuilderImage<'a> {
    pub id: &'a str,
    pub pulled: Option<&'a str>,
}

/// Everything the provenance records.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub source: Option<Source>,
    pub run: Option<Run>,
    /// Relative to the repository.
    pub dockerfile: &'a str,
    pub context: &'a str,
    pub target: Option<&'a str>,
    pub platforms: Vec<String>,
    pub build_args: &'a HashMap<String, String>,
    /// Each base image as the Dockerfile names it → the digest it resolved to.
    pub bases: &'a BTreeMap<String, String>,
    /// This binary's version.
    pub version: &'a str,
    /// The image this binary ran from, where the engine told it.
    pub image: Option<BuilderImage<'a>>,
    pub started: i64,
    pub finished: i64,
}

/// The predicate (`buildDefinition`, `runDetails`) of an in-toto statement
/// about the pushed digest.
pub fn predicate(facts: &Facts) -> Value {
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external_parameters(facts),
            "internalParameters": {},
            "resolvedDependencies": dependencies(facts),
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                "version": builder_version(facts),
            },
            "metadata": metadata(facts),
        },
    })
}

fn external_parameters(facts: &Facts) -> Value {
    let mut parameters = Map::new();
    if let Some(source) = &facts.source {
        let mut entry = json!({"repository": source.repository, "commit": source.commit});
        if let Some(git_ref) = &source.git_ref {
            entry["ref"] = git_ref.clone().into();
        }
        parameters.insert("source".into(), entry);
    }
    if let Some(workflow) = facts.run.as_ref().and_then(|r| r.workflow_ref.as_deref()) {
        parameters.insert("workflow".into(), workflow_parameter(workflow));
    }
    parameters.insert("dockerfile".into(), facts.dockerfile.into());
    parameters.insert("context".into(), facts.context.into());
    if let Some(target) = facts.target {
        parameters.insert("target".into(), target.into());
    }
    parameters.insert("platforms".into(), facts.platforms.clone().into());
    let args: BTreeMap<&str, &str> = facts
        .build_args
        .iter()
        .map(|(name, value)| (name.as_str(), recorded_value(name, value)))
        .collect();
    parameters.insert("buildArgs".into(), json!(args));
    Value::Object(parameters)
}

/// `owner/name/path@ref` split as GitHub's own provenance records it.
fn workflow_parameter(workflow_ref: &str) -> Value {
    let (file, git_ref) = workflow_ref.rsplit_once('@').unwrap_or((workflow_ref, ""));
    let mut parts = file.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(owner), Some(name), Some(path)) => json!({
            "repository": format!("{owner}/{name}"),
            "path": path,
            "ref": git_ref,
        }),
        _ => json!({"ref": workflow_ref}),
    }
}

/// The value a build argument is recorded with.
pub fn recorded_value<'a>(name: &str, value: &'a str) -> &'a str {
    let name = name.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|word| name.contains(word)) {
        REDACTED
    } else {
        value
    }
}

fn dependencies(facts: &Facts) -> Vec<Value> {
    let source = facts.source.iter().map(|source| {
        let uri = match &source.git_ref {
            Some(git_ref) => format!("git+{}@{git_ref}", source.repository),
            None => format!("git+{}", source.repository),
        };
        json!({"uri": uri, "digest": {"gitCommit": source.commit}})
    });
    let bases = facts.bases.iter().map(|(reference, digest)| {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        json!({
            "uri": format!("pkg:docker/{reference}"),
            "name": reference,
            "digest": {algorithm: hex},
        })
    });
    source.chain(bases).collect()
}

/// This action's version, and its image's where known: `image` the
/// registry's manifest digest, `imageId` the engine's ID (also known for an
/// image the runner built from the action's Dockerfile). Unknown, they are
/// left out.
fn builder_version(facts: &Facts) -> Value {
    let mut version = json!({"registry-action": facts.version});
    if let Some(image) = facts.image {
        if let Some(pulled) = image.pulled {
            version["image"] = pulled.into();
        }
        version["imageId"] = image.id.into();
    }
    version
}

fn metadata(facts: &Facts) -> Value {
    let mut metadata = json!({
        "startedOn": rfc3339(facts.started),
        "finishedOn": rfc3339(facts.finished),
    });
    if let Some(run) = &facts.run {
        metadata["invocationId"] = run.url.clone().into();
    }
    metadata
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn facts<'a>(
        build_args: &'a HashMap<String, String>,
        bases: &'a BTreeMap<String, String>,
    ) -> Facts<'a> {
        Facts {
            source: Some(Source {
                repository: "https://github.com/acme/mono".into(),
                commit: "a".repeat(40),
                git_ref: Some("refs/heads/main".into()),
            }),
            run: Some(Run {
                url: "https://github.com/acme/mono/actions/runs/7/attempts/2".into(),
                workflow_ref: Some("acme/mono/.github/workflows/images.yml@refs/heads/main".into()),
            }),
            dockerfile: "ops/docker/app/Dockerfile",
            context: "ops/docker/app",
            target: Some("runtime"),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            build_args,
            bases,
            version: "1.2.3",
            image: Some(BuilderImage {
                id: "sha256:c0",
                pulled: Some("ghcr.io/webgrip/registry-action@sha256:d1"),
            }),
            started: 1_795_824_000,
            finished: 1_795_824_042,
        }
    }

    #[test]
    fn the_predicate_records_source_run_inputs_bases_and_times() {
        let args = HashMap::from([
            ("VERSION".to_owned(), "1.0".to_owned()),
            ("NPM_TOKEN".to_owned(), "t0ps3cret".to_owned()),
            ("api_Key".to_owned(), "k".to_owned()),
        ]);
        let bases = BTreeMap::from([(
            "alpine:3.20".to_owned(),
            format!("sha256:{}", "b".repeat(64)),
        )]);
        let p = predicate(&facts(&args, &bases));
        let definition = &p["buildDefinition"];
        assert_eq!(definition["buildType"], BUILD_TYPE);
        let external = &definition["externalParameters"];
        assert_eq!(external["source"]["commit"], "a".repeat(40));
        assert_eq!(external["source"]["ref"], "refs/heads/main");
        assert_eq!(
            external["workflow"],
            json!({"repository": "acme/mono", "path": ".github/workflows/images.yml", "ref": "refs/heads/main"})
        );
        assert_eq!(external["dockerfile"], "ops/docker/app/Dockerfile");
        assert_eq!(external["target"], "runtime");
        assert_eq!(external["platforms"], json!(["linux/amd64", "linux/arm64"]));
        assert_eq!(
            external["buildArgs"],
            json!({"NPM_TOKEN": REDACTED, "VERSION": "1.0", "api_Key": REDACTED})
        );
        assert!(!p.to_string().contains("t0ps3cret"));
        assert_eq!(
            definition["resolvedDependencies"],
            json!([
                {"uri": "git+https://github.com/acme/mono@refs/heads/main", "digest": {"gitCommit": "a".repeat(40)}},
                {"uri": "pkg:docker/alpine:3.20", "name": "alpine:3.20", "digest": {"sha256": "b".repeat(64)}},
            ])
        );
        let run = &p["runDetails"];
        assert_eq!(run["builder"]["id"], BUILDER_ID);
        assert_eq!(
            run["builder"]["version"],
            json!({
                "registry-action": "1.2.3",
                "image": "ghcr.io/webgrip/registry-action@sha256:d1",
                "imageId": "sha256:c0",
            })
        );
        assert_eq!(
            run["metadata"],
            json!({
                "invocationId": "https://github.com/acme/mono/actions/runs/7/attempts/2",
                "startedOn": "2026-11-28T00:00:00Z",
                "finishedOn": "2026-11-28T00:00:42Z",
            })
        );
    }

    #[test]
    fn off_a_runner_only_what_is_known_is_recorded() {
        let (args, bases) = (HashMap::new(), BTreeMap::new());
        let p = predicate(&Facts {
            source: None,
            run: None,
            target: None,
            image: None,
            ..facts(&args, &bases)
        });
        let external = &p["buildDefinition"]["externalParameters"];
        assert!(external.get("source").is_none() && external.get("workflow").is_none());
        assert!(external.get("target").is_none());
        assert_eq!(p["buildDefinition"]["resolvedDependencies"], json!([]));
        assert!(p["runDetails"]["metadata"].get("invocationId").is_none());
        assert_eq!(
            p["runDetails"]["builder"]["version"],
            json!({"registry-action": "1.2.3"})
        );
        // Built on the runner: the ID only.
        let built = predicate(&Facts {
            image: Some(BuilderImage {
                id: "sha256:c0",
                pulled: None,
            }),
            ..facts(&args, &bases)
        });
        assert_eq!(
            built["runDetails"]["builder"]["version"],
            json!({"registry-action": "1.2.3", "imageId": "sha256:c0"})
        );
    }
}
