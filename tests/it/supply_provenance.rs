//! SLSA build provenance v1: a signed `publish` attests which source,
//! workflow run, Dockerfile, arguments and base images made the digest;
//! cosign 2.5 and 3.1 verify it (`--type slsaprovenance1`) in both
//! formats, the in-toto project's definitions accept it, and a secret
//! build argument's value appears nowhere.

use serde_json::{Value, json};

use crate::publish::{publish, scoped};
use crate::supply::{PASSWORD, open};
use crate::support::git::Repo;
use crate::support::run::Action;
use crate::support::secret::assert_absent;
use crate::support::services::services;
use crate::support::slsa;

const SECRET: &str = "npm_s3cr3t-4f1c9a";
/// A BuildKit secret (`secrets`), which the build may mount.
const MOUNTED: &str = "mnt_s3cr3t-9d2e7b";

#[tokio::test]
async fn a_signed_publish_attests_provenance_that_cosign_2_and_3_verify() {
    let target = open();
    let ns = "prov";
    let cosign = target.cosign();
    let repo = Repo::new();
    repo.write("ops/docker/base/Dockerfile", "FROM scratch\nCOPY f /f\n");
    repo.write("ops/docker/base/f", "base");
    repo.commit("base");
    let base = publish(&repo, ns, "refs/heads/main", &repo.head())
        .input("path", "ops/docker/base")
        .run_async()
        .await;
    base.assert_ok();
    let base_ref = format!(
        "{}/{}:latest",
        services().registry_open,
        scoped(&format!("{ns}/base"))
    );
    repo.write(
        "ops/docker/app/Dockerfile",
        &format!("FROM {base_ref}\nARG VERSION\nARG NPM_TOKEN\nCOPY a /a\n"),
    );
    repo.write("ops/docker/app/a", "app");
    repo.commit("app");
    let head = repo.head();
    let ran = publish(&repo, ns, "refs/heads/main", &head)
        .input("sign-key", &cosign.private_pem())
        .input("sign-key-password", PASSWORD)
        .input("signature-format", "both")
        .input("build-args", &format!("VERSION=1.2\nNPM_TOKEN={SECRET}"))
        .input("secrets", &format!("npm_token={MOUNTED}"))
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_RUN_ATTEMPT", "2")
        .env(
            "GITHUB_WORKFLOW_REF",
            "acme/monorepo/.github/workflows/images.yml@refs/heads/main",
        )
        .run_async()
        .await;
    ran.assert_ok();
    let digest = ran.outputs["digest"].clone();
    let image = target.image(ns, &digest);

    let statements = cosign
        .verify_attestation(&cosign.pub_path(), "slsaprovenance1", &image)
        .unwrap_or_else(|e| panic!("cosign 2.5 refuses the provenance: {e}"));
    assert_eq!(statements.len(), 1, "{statements:?}");
    let statement = &statements[0];
    slsa::check(statement).unwrap();
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest["sha256:".len()..]
    );
    let predicate = &statement["predicate"];
    let external = &predicate["buildDefinition"]["externalParameters"];
    assert_eq!(
        external["source"],
        json!({"repository": "https://github.com/acme/monorepo", "commit": head, "ref": "refs/heads/main"})
    );
    assert_eq!(
        external["workflow"],
        json!({"repository": "acme/monorepo", "path": ".github/workflows/images.yml", "ref": "refs/heads/main"})
    );
    assert_eq!(external["dockerfile"], "ops/docker/app/Dockerfile");
    assert_eq!(external["context"], "ops/docker/app");
    assert_eq!(
        external["buildArgs"],
        json!({"VERSION": "1.2", "NPM_TOKEN": "<redacted>"})
    );
    let base_digest = base.outputs["digest"].as_str();
    let dependencies = predicate["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert_eq!(
        dependencies[0],
        json!({"uri": "git+https://github.com/acme/monorepo@refs/heads/main", "digest": {"gitCommit": head}})
    );
    assert_eq!(
        dependencies[1],
        json!({"uri": format!("pkg:docker/{base_ref}"), "name": base_ref, "digest": {"sha256": &base_digest["sha256:".len()..]}}),
        "{dependencies:?}"
    );
    let run = &predicate["runDetails"];
    assert_eq!(
        run["metadata"]["invocationId"],
        "https://github.com/acme/monorepo/actions/runs/4242/attempts/2"
    );
    assert_eq!(
        run["builder"]["id"],
        "https://github.com/webgrip/registry-action"
    );
    // Run as a binary, not in a container: no image is known, none named.
    assert_eq!(
        run["builder"]["version"],
        json!({"registry-action": env!("CARGO_PKG_VERSION")})
    );
    let started = run["metadata"]["startedOn"].as_str().unwrap();
    let finished = run["metadata"]["finishedOn"].as_str().unwrap();
    assert!(started <= finished, "{started} {finished}");

    // The bundle half, as cosign 3 reads it.
    cosign
        .verify3("verify-attestation", &["--type", "slsaprovenance1", &image])
        .unwrap();

    // And ours, asked for the provenance by cosign's name for it.
    let ours = |predicate_type: &str| {
        target
            .with_login(Action::github(repo.path()).input("command", "verify"))
            .input("image", &image)
            .input("public-key", &cosign.public_pem())
            .input("predicate-type", predicate_type)
            .run()
    };
    let verified = ours("slsaprovenance1");
    verified.assert_ok();
    let key = crate::supply::key_cell(&cosign.pub_path(), "inline PEM");
    let fallback = digest.replacen(':', "-", 1);
    for (format, place) in [
        ("cosign legacy", format!("{fallback}.att layer ")),
        (
            "Sigstore bundle v0.3",
            format!("referrers tag {fallback} (sha256:"),
        ),
    ] {
        crate::supply::assert_row(
            &verified.summary,
            &format!("| attestation | {format} | {place}"),
            &format!(") | {key} | `https://slsa.dev/provenance/v1` | ✅ verified with the key |"),
        );
    }
    ours("slsa").assert_failed("`predicate-type`: \"slsa\" is not a predicate type");
    ours("https://example.com/other/v1")
        .assert_failed("no https://example.com/other/v1 attestation");

    for (place, text) in [
        (
            "the log",
            crate::supply::unmasked(&format!("{}{}", ran.stdout, ran.stderr)),
        ),
        ("the summary", ran.summary.clone()),
        ("the outputs", ran.outputs_raw.clone()),
        ("the provenance", statement.to_string()),
    ] {
        for secret in [SECRET, MOUNTED] {
            assert_absent(&text, secret, place);
        }
    }
    assert!(
        !predicate.to_string().contains("npm_token"),
        "a secret's id is no build parameter either: {predicate}"
    );
}

#[tokio::test]
async fn provenance_true_without_a_key_is_refused_before_anything_is_built() {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY a /a\n");
    repo.write("ops/docker/app/a", "app");
    repo.commit("app");
    let ran = publish(&repo, "prov-nokey", "refs/heads/main", &repo.head())
        .input("provenance", "true")
        .run_async()
        .await;
    ran.assert_failed("`provenance: true`");
    ran.assert_failed("give `sign-key` too, or set `provenance: false`");
    let pushed = crate::publish::tags(&services().registry_open, "prov-nokey/app", None).await;
    assert!(pushed.is_empty(), "{pushed:?}");
}

#[tokio::test]
async fn provenance_false_attests_only_the_signature() {
    let target = open();
    let cosign = target.cosign();
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY a /a\n");
    repo.write("ops/docker/app/a", "app");
    repo.commit("app");
    let ran = publish(&repo, "prov-off", "refs/heads/main", &repo.head())
        .input("sign-key", &cosign.private_pem())
        .input("sign-key-password", PASSWORD)
        .input("provenance", "false")
        .run_async()
        .await;
    ran.assert_ok();
    let image = target.image("prov-off", &ran.outputs["digest"]);
    cosign.verify(&cosign.pub_path(), &image).unwrap();
    let none: Result<Vec<Value>, String> =
        cosign.verify_attestation(&cosign.pub_path(), "slsaprovenance1", &image);
    assert!(none.is_err(), "{none:?}");
}

#[tokio::test]
async fn each_platform_image_of_a_signed_index_is_signed_and_has_its_provenance() {
    let target = open();
    let ns = "prov-multi";
    let cosign = target.cosign();
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY a /a\n");
    repo.write("ops/docker/app/a", "app");
    repo.commit("app");
    let ran = publish(&repo, ns, "refs/heads/main", &repo.head())
        .input("platforms", "linux/amd64,linux/arm64")
        .input("sign-key", &cosign.private_pem())
        .input("sign-key-password", PASSWORD)
        .run_async()
        .await;
    ran.assert_ok();
    let index = ran.outputs["digest"].clone();
    let repository = scoped(&format!("{ns}/app"));
    let manifest = target
        .client()
        .manifest(&repository, &index)
        .await
        .unwrap()
        .unwrap();
    let children: Vec<String> = registry_action::oci::children(&manifest.bytes)
        .unwrap()
        .into_iter()
        .map(|c| c.digest.as_str().to_owned())
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    for digest in std::iter::once(&index).chain(&children) {
        let image = target.image(ns, digest);
        cosign
            .verify(&cosign.pub_path(), &image)
            .unwrap_or_else(|e| panic!("{digest} is not signed: {e}"));
        let statements = cosign
            .verify_attestation(&cosign.pub_path(), "slsaprovenance1", &image)
            .unwrap_or_else(|e| panic!("{digest} has no provenance: {e}"));
        assert_eq!(
            statements[0]["predicate"]["buildDefinition"]["externalParameters"]["platforms"],
            json!(["linux/amd64", "linux/arm64"])
        );
        assert_eq!(
            statements[0]["subject"][0]["digest"]["sha256"],
            digest["sha256:".len()..]
        );
    }
}
