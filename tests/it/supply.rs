//! The supply chain end to end: `publish` with `sbom` and `sign-key` on the
//! three real registries, checked by the real verifier (Debian's cosign
//! 2.5, offline, `--insecure-ignore-tlog=true` as the user's cluster runs
//! it), cosign's own signatures beside ours, `verify` on both, the failures
//! each must catch, and Vault Transit served by a local signer.

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use registry_action::registry::auth::Credentials;
use registry_action::registry::{Registry, sha256_digest};
use registry_action::supply::attach::Subject;
use registry_action::supply::cosign::{self, Layer, Predicate};
use registry_action::supply::{Signer, check};
use serde_json::Value;

use crate::publish::{Refused, assert_not_pushed, control, publish, scoped, tags};
use crate::support::cosign::{Cosign, validate_cyclonedx_1_6};
use crate::support::git::Repo;
use crate::support::run::{Action, Ran};
use crate::support::secret::assert_absent;
use crate::support::services::services;
use crate::support::trivy::{alpine_rootfs, trivy};

pub const PASSWORD: &str = "correct-horse-7f3a";

/// Which registry, and its login.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub address: &'a str,
    pub login: Option<(&'a str, &'a str)>,
}

pub fn open() -> Target<'static> {
    Target {
        address: &services().registry_open,
        login: None,
    }
}

pub fn basic() -> Target<'static> {
    let s = services();
    Target {
        address: &s.registry_basic,
        login: Some((&s.basic_user, &s.basic_password)),
    }
}

pub fn token() -> Target<'static> {
    let s = services();
    Target {
        address: &s.registry_token,
        login: Some((&s.token_user, &s.token_password)),
    }
}

/// `$check(target, ns)` as one test per registry (`$check::open`, `::basic`,
/// `::token`), each in a namespace of its own: the issue asks every cosign
/// proof of each registry's authentication.
macro_rules! on_each_registry {
    ($check:ident, $ns:literal) => {
        mod $check {
            #[tokio::test]
            async fn open() {
                super::$check(super::open(), concat!($ns, "-open")).await;
            }

            #[tokio::test]
            async fn basic() {
                super::$check(super::basic(), concat!($ns, "-basic")).await;
            }

            #[tokio::test]
            async fn token() {
                super::$check(super::token(), concat!($ns, "-token")).await;
            }
        }
    };
}

impl Target<'_> {
    pub fn with_login(self, action: Action) -> Action {
        let action = action.input("registry", self.address);
        match self.login {
            Some((user, password)) => action.input("username", user).input("password", password),
            None => action,
        }
    }

    pub fn cosign(self) -> Cosign {
        let logins: Vec<(&str, &str, &str)> = self
            .login
            .map(|(user, password)| (self.address, user, password))
            .into_iter()
            .collect();
        Cosign::new(PASSWORD, &logins)
    }

    pub fn client(self) -> Registry {
        let credentials = self.login.map(|(username, password)| Credentials {
            username: username.into(),
            password: password.into(),
        });
        Registry::new(self.address, credentials).unwrap()
    }

    /// `registry/ns-run/app@digest`.
    pub fn image(self, ns: &str, digest: &str) -> String {
        format!("{}/{}@{digest}", self.address, scoped(&format!("{ns}/app")))
    }
}

/// An image whose root filesystem lists Alpine packages, so the SBOM has
/// components.
pub fn image_repo() -> Repo {
    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nCOPY rootfs/ /\n",
    );
    alpine_rootfs(
        &repo,
        "ops/docker/app",
        &[("libcrypto3", "3.1.4-r0"), ("zlib", "1.3.1-r0")],
    );
    repo.commit("app");
    repo
}

/// `publish` scanned by Trivy, to `target`, signing with `key`.
pub fn signed(repo: &Repo, ns: &str, target: Target, key: &str, sbom: &str) -> Action {
    let action = publish(repo, ns, "refs/heads/main", &repo.head())
        .input("scanner", "trivy")
        .input("sbom", sbom)
        .input("sign-key", key)
        .input("sign-key-password", PASSWORD);
    trivy().around(target.with_login(action))
}

/// A signed, CycloneDX-attested release of `repo` with `cosign`'s key:
/// the run, its digest, and the image by that digest.
pub async fn signed_release(
    repo: &Repo,
    ns: &str,
    target: Target<'_>,
    cosign: &Cosign,
) -> (Ran, String, String) {
    let ran = signed(repo, ns, target, &cosign.private_pem(), "cyclonedx")
        .run_async()
        .await;
    ran.assert_ok();
    let digest = ran.outputs["digest"].clone();
    let image = target.image(ns, &digest);
    (ran, digest, image)
}

/// Our `verify` of `image` with the public key `pem`.
pub fn verify(
    repo: &Repo,
    target: Target,
    image: &str,
    pem: &str,
    attestation: Option<&str>,
) -> Ran {
    let mut action = target
        .with_login(Action::github(repo.path()).input("command", "verify"))
        .input("image", image)
        .input("public-key", pem);
    if let Some(kind) = attestation {
        action = action.input("attestation", kind);
    }
    action.run()
}

/// A row of `verify`'s table: a line beginning `start` (what, format,
/// where) and ending `end` (key, predicate type, verdict); the referrer
/// manifest's digest between them is not known ahead.
pub fn assert_row(summary: &str, start: &str, end: &str) {
    assert!(
        summary
            .lines()
            .any(|line| line.starts_with(start) && line.ends_with(end)),
        "a row `{start}…{end}` in {summary}"
    );
}

/// How `verify`'s table names a key: `sha256:` and 12 hex digits, then
/// where it came from.
pub fn key_cell(public: &std::path::Path, from: &str) -> String {
    format!("`{}` ({from})", &openssl_key_id(public)[..19])
}

pub async fn layers(target: Target<'_>, ns: &str, digest: &str, suffix: &str) -> Vec<Layer> {
    let client = target.client();
    let repository = scoped(&format!("{ns}/app"));
    let manifest = client
        .manifest(&repository, &cosign::tag(digest, suffix))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no .{suffix} for {digest}"));
    cosign::layers(&manifest).unwrap()
}

/// Every byte the run left behind, for the secret grep: log, outputs,
/// summary, the SBOM file, and every blob and manifest of `.sig` and `.att`.
async fn everything(ran: &Ran, repo: &Repo, target: Target<'_>, ns: &str, digest: &str) -> String {
    let mut all = format!("{ran}");
    if let Some(path) = ran.outputs.get("sbom-path") {
        all.push_str(&std::fs::read_to_string(repo.path().join(path)).unwrap());
    }
    let client = target.client();
    let repository = scoped(&format!("{ns}/app"));
    for suffix in ["sig", "att"] {
        let tag = cosign::tag(digest, suffix);
        let Some(manifest) = client.manifest(&repository, &tag).await.unwrap() else {
            continue;
        };
        all.push_str(&String::from_utf8_lossy(&manifest.bytes));
        for layer in cosign::layers(&manifest).unwrap() {
            let blob = client
                .blob(&repository, &layer.digest, layer.size)
                .await
                .unwrap();
            all.push_str(&String::from_utf8_lossy(&blob));
        }
    }
    all
}

/// Everything but the `::add-mask::` lines, the one place a secret may be.
pub fn unmasked(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The key's secret lines (the base64 body of the PEM).
pub fn secret_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_owned)
        .collect()
}

async fn a_signed_release_verifies_with_cosign(target: Target<'_>, ns: &str) {
    let repo = image_repo();
    let cosign = target.cosign();
    let (ran, digest, image) = signed_release(&repo, ns, target, &cosign).await;

    let payloads = cosign.verify(&cosign.pub_path(), &image).unwrap();
    assert_eq!(payloads.len(), 1);
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        digest
    );
    assert_eq!(
        payloads[0]["critical"]["type"],
        "cosign container image signature"
    );

    let statements = cosign
        .verify_attestation(&cosign.pub_path(), "cyclonedx", &image)
        .unwrap();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(statement["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest["sha256:".len()..]
    );
    assert_eq!(statement["predicate"]["specVersion"], "1.6");
    let names: Vec<&str> = statement["predicate"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"libcrypto3") && names.contains(&"zlib"),
        "{names:?}"
    );

    repo.write("keys/cosign.pub", &cosign.public_pem());
    let ours = verify(&repo, target, &image, "keys/cosign.pub", Some("cyclonedx"));
    ours.assert_ok();
    assert!(ours.summary.contains(&digest), "{}", ours.summary);
    let key_id = openssl_key_id(&cosign.pub_path());
    assert_eq!(ours.outputs["key-id"], key_id);
    assert!(
        ours.summary
            .contains(&format!("`{}` (`keys/cosign.pub`)", &key_id[..19])),
        "{}",
        ours.summary
    );
    assert!(
        ours.summary.contains("1 of 1 signatures verified"),
        "{}",
        ours.summary
    );
    assert!(
        ours.summary.contains("1.6, 3 components"),
        "{}",
        ours.summary
    );
    let key = key_cell(&cosign.pub_path(), "`keys/cosign.pub`");
    let tag = digest.replacen(':', "-", 1);
    assert_row(
        &ours.summary,
        &format!("| signature | cosign legacy | {tag}.sig layer 1 (sha256:"),
        &format!(") | {key} | — | ✅ verified with the key |"),
    );
    assert_row(
        &ours.summary,
        &format!("| attestation | cosign legacy | {tag}.att layer "),
        &format!(") | {key} | `https://cyclonedx.org/bom` | ✅ verified with the key |"),
    );

    let all = unmasked(&everything(&ran, &repo, target, ns, &digest).await);
    assert!(all.contains(&digest), "the grep reads what was pushed");
    for secret in secret_lines(&cosign.private_pem())
        .into_iter()
        .chain([PASSWORD.to_owned()])
    {
        assert_absent(&all, &secret, "the run or what it pushed");
    }
}

on_each_registry!(a_signed_release_verifies_with_cosign, "sc");

#[tokio::test]
async fn the_sbom_is_cyclonedx_1_6_named_after_the_image_and_valid() {
    let repo = image_repo();
    let ran = trivy()
        .around(publish(&repo, "sc-sbom", "refs/heads/main", &repo.head()))
        .input("scanner", "trivy")
        .input("sbom", "cyclonedx")
        .run_async()
        .await;
    ran.assert_ok();
    let digest = &ran.outputs["digest"];
    let path = &ran.outputs["sbom-path"];
    assert!(
        path.starts_with("sbom-app-") && path.ends_with(".cdx.json"),
        "{path}"
    );
    let file = repo.path().join(path);
    validate_cyclonedx_1_6(&file).unwrap();
    let sbom: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(sbom["specVersion"], "1.6");
    assert_eq!(
        sbom["metadata"]["component"]["name"],
        format!(
            "{}/{}@{digest}",
            services().registry_open,
            scoped("sc-sbom/app")
        )
    );
    assert_eq!(
        sbom["components"].as_array().unwrap().len(),
        3,
        "the OS and its two packages"
    );
    assert!(
        ran.summary.contains("cyclonedx 1.6, 3 components"),
        "{}",
        ran.summary
    );
    assert_eq!(
        tags(&services().registry_open, "sc-sbom/app", None)
            .await
            .len(),
        2,
        "no signature without `sign-key`"
    );
}

#[tokio::test]
async fn an_spdx_sbom_is_attested_as_an_spdx_document() {
    let target = open();
    let repo = image_repo();
    let cosign = target.cosign();
    let ran = signed(&repo, "sc-spdx", target, &cosign.private_pem(), "spdx")
        .run_async()
        .await;
    ran.assert_ok();
    let digest = &ran.outputs["digest"];
    assert!(ran.outputs["sbom-path"].ends_with(".spdx.json"));
    let image = target.image("sc-spdx", digest);
    let statements = cosign
        .verify_attestation(&cosign.pub_path(), "spdxjson", &image)
        .unwrap();
    assert_eq!(statements[0]["predicateType"], "https://spdx.dev/Document");
    assert_eq!(statements[0]["predicate"]["spdxVersion"], "SPDX-2.3");
    let wrong_type = cosign.verify_attestation(&cosign.pub_path(), "cyclonedx", &image);
    assert!(
        wrong_type.is_err(),
        "a CycloneDX check must not accept SPDX"
    );
    verify(&repo, target, &image, &cosign.public_pem(), Some("spdx")).assert_ok();
    verify(
        &repo,
        target,
        &image,
        &cosign.public_pem(),
        Some("cyclonedx"),
    )
    .assert_failed("no cyclonedx attestation");
}

/// `sha256:` of the public key's DER as openssl writes it: the identity
/// `verify` reports, computed without our key code.
pub fn openssl_key_id(public: &std::path::Path) -> String {
    let public = public.to_str().unwrap();
    sha256_digest(&openssl(&[
        "pkey", "-pubin", "-outform", "DER", "-in", public,
    ]))
}

/// What `openssl args…` writes to stdout; it must succeed.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        crate::support::cosign::text(&out)
    );
    out.stdout
}

pub fn plain_key(seed: u8) -> (SigningKey, String, String) {
    let key = SigningKey::from_slice(&[seed; 32]).unwrap();
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (key, private, public)
}

on_each_registry!(
    cosigns_signatures_and_ours_sit_side_by_side_and_reruns_add_nothing,
    "sc-interop"
);

async fn cosigns_signatures_and_ours_sit_side_by_side_and_reruns_add_nothing(
    target: Target<'_>,
    ns: &str,
) {
    let repo = image_repo();
    let ours = target.cosign();
    let (_, digest, image) = signed_release(&repo, ns, target, &ours).await;

    // cosign signs and attests the same digest with its own key.
    let theirs = target.cosign();
    theirs.sign(&image);
    theirs.attest(
        &image,
        &serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}),
    );
    assert_eq!(layers(target, ns, &digest, "sig").await.len(), 2);

    // A re-run (the SHA tag exists: no build) signs again: nothing added.
    let rerun = signed(&repo, ns, target, &ours.private_pem(), "cyclonedx")
        .run_async()
        .await;
    rerun.assert_ok();
    assert!(
        rerun.summary.contains("already signed with this key"),
        "{}",
        rerun.summary
    );
    assert_eq!(
        layers(target, ns, &digest, "sig").await.len(),
        2,
        "idempotent"
    );

    // A third signer with a plain PKCS#8 key appends.
    let (plain, plain_private, plain_public) = plain_key(9);
    signed(&repo, ns, target, &plain_private, "none")
        .run_async()
        .await
        .assert_ok();
    assert_eq!(layers(target, ns, &digest, "sig").await.len(), 3);
    let plain_pub_file = theirs.path("plain.pub");
    std::fs::write(&plain_pub_file, &plain_public).unwrap();
    for key in [ours.pub_path(), theirs.pub_path(), plain_pub_file] {
        ours.verify(&key, &image)
            .unwrap_or_else(|e| panic!("cosign rejects {}: {e}", key.display()));
        let pem = std::fs::read_to_string(&key).unwrap();
        let ran = verify(&repo, target, &image, &pem, None);
        ran.assert_ok();
        assert!(
            ran.summary.contains("1 of 3 signatures verified"),
            "{}",
            ran.summary
        );
        let key_id = openssl_key_id(&key);
        assert_eq!(ran.outputs["key-id"], key_id, "each signer named");
        assert!(
            ran.summary
                .contains(&format!("`{}` (inline PEM)", &key_id[..19])),
            "{}",
            ran.summary
        );
        // The other two are legacy layers, which name no key.
        let rejected = ran
            .summary
            .lines()
            .filter(|l| {
                l.starts_with("| signature | cosign legacy |")
                    && l.contains(") | — | — | ❌ its signature doesn't verify")
            })
            .count();
        assert_eq!(rejected, 2, "{}", ran.summary);
    }

    // An attestation replaces the earlier ones of its predicate type: ours
    // (the SBOM and the build's provenance), then cosign's SBOM.
    let types = |att: Vec<Layer>| -> Vec<String> {
        att.iter()
            .filter_map(Layer::predicate_type)
            .map(str::to_owned)
            .collect()
    };
    const CYCLONEDX: &str = "https://cyclonedx.org/bom";
    const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
    assert_eq!(
        types(layers(target, ns, &digest, "att").await),
        [CYCLONEDX, PROVENANCE, CYCLONEDX]
    );
    let client = target.client();
    let repository = scoped(&format!("{ns}/app"));
    let subject = Subject {
        registry: &client,
        repository: &repository,
        digest: &digest,
    };
    subject
        .attest(
            &Signer::Key(plain),
            Predicate::CycloneDx.uri(),
            serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": "x"}]}),
        )
        .await
        .unwrap();
    assert_eq!(
        types(layers(target, ns, &digest, "att").await),
        [PROVENANCE, CYCLONEDX],
        "both SBOMs replaced, the provenance kept"
    );
    let plain_pub = theirs.path("plain.pub");
    let statements = ours
        .verify_attestation(&plain_pub, "cyclonedx", &image)
        .unwrap_or_else(|e| panic!("cosign rejects the replacement: {e}"));
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(statements[0]["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(
        statements[0]["subject"][0]["digest"]["sha256"],
        digest["sha256:".len()..]
    );
    assert_eq!(
        statements[0]["predicate"],
        serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": "x"}]}),
        "the replacement's own predicate"
    );
    assert!(
        ours.verify_attestation(&theirs.pub_path(), "cyclonedx", &image)
            .is_err()
    );
}

/// Puts a `.sig` holding one layer: `payload` with `signature`.
async fn put_signature(
    target: Target<'_>,
    ns: &str,
    digest: &str,
    payload: &[u8],
    signature: &[u8],
) {
    let layer = Layer::signature(payload, signature);
    put_only(target, ns, digest, "sig", layer, payload).await;
}

/// Makes `layer` (whose blob is `blob`) the only one under `.<suffix>`.
pub async fn put_only(
    target: Target<'_>,
    ns: &str,
    digest: &str,
    suffix: &str,
    layer: Layer,
    blob: &[u8],
) {
    let client = target.client();
    let repository = scoped(&format!("{ns}/app"));
    let built = cosign::manifest(vec![layer]);
    for blob in [blob.to_vec(), built.config] {
        client
            .upload_blob(&repository, &sha256_digest(&blob), blob.into())
            .await
            .unwrap();
    }
    client
        .put_manifest(&repository, &cosign::tag(digest, suffix), &built.manifest)
        .await
        .unwrap();
}

fn der(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::Signer as _;
    let signature: p256::ecdsa::Signature = key.sign(message);
    signature.to_der().as_bytes().to_vec()
}

on_each_registry!(
    verify_fails_on_unsigned_wrong_key_tampered_and_mismatched_digests,
    "sc-negative"
);

async fn verify_fails_on_unsigned_wrong_key_tampered_and_mismatched_digests(
    target: Target<'_>,
    ns: &str,
) {
    let repo = image_repo();
    let cosign = target.cosign();
    let ran = target
        .with_login(publish(&repo, ns, "refs/heads/main", &repo.head()))
        .run_async()
        .await;
    ran.assert_ok();
    let digest = ran.outputs["digest"].clone();
    let image = target.image(ns, &digest);
    let tag_image = format!("{}/{}:latest", target.address, scoped(&format!("{ns}/app")));

    // Keys that can't be used.
    verify(&repo, target, &tag_image, "nope.pub", None)
        .assert_failed("`public-key`: couldn't read");
    verify(&repo, target, &tag_image, &cosign.private_pem(), None)
        .assert_failed("give the public key (`cosign.pub`), not the private one");

    // Unsigned.
    verify(&repo, target, &tag_image, &cosign.public_pem(), None).assert_failed("has no signature");
    let refused = cosign.verify(&cosign.pub_path(), &image).unwrap_err();
    assert!(refused.contains("no signatures found"), "{refused}");

    // Another key.
    let (key, _, public) = plain_key(3);
    let payload = cosign::payload(
        &format!("{}/{}", target.address, scoped(&format!("{ns}/app"))),
        &digest,
    );
    put_signature(target, ns, &digest, &payload, &der(&key, &payload)).await;
    verify(&repo, target, &tag_image, &public, None).assert_ok();
    verify(&repo, target, &tag_image, &cosign.public_pem(), None)
        .assert_failed("doesn't verify with the public key");
    assert!(cosign.verify(&cosign.pub_path(), &image).is_err());

    // A payload altered after signing.
    let mut tampered = payload.clone();
    let at = tampered.len() - 20;
    tampered[at] ^= 0x01;
    put_signature(target, ns, &digest, &tampered, &der(&key, &payload)).await;
    let pub_file = cosign.path("other.pub");
    std::fs::write(&pub_file, &public).unwrap();
    verify(&repo, target, &tag_image, &public, None)
        .assert_failed("doesn't verify with the public key");
    assert!(
        cosign.verify(&pub_file, &image).is_err(),
        "cosign takes a tampered payload"
    );

    // A valid signature of another digest, filed under this one.
    let other = format!("sha256:{}", "ab".repeat(32));
    let elsewhere = cosign::payload("r/ns/app", &other);
    put_signature(target, ns, &digest, &elsewhere, &der(&key, &elsewhere)).await;
    verify(&repo, target, &tag_image, &public, None)
        .assert_failed(&format!("names digest {other}, not the image's {digest}"));
    assert!(
        cosign.verify(&pub_file, &image).is_err(),
        "cosign takes another digest's payload"
    );

    // No attestation.
    let signed_payload = payload;
    put_signature(
        target,
        ns,
        &digest,
        &signed_payload,
        &der(&key, &signed_payload),
    )
    .await;
    verify(&repo, target, &tag_image, &public, Some("cyclonedx"))
        .assert_failed("has no attestation");
    assert!(check::verifies(
        key.verifying_key(),
        &signed_payload,
        &der(&key, &signed_payload)
    ));
}

/// A namespace, the inputs given, and what the error must say.
type BadCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn bad_signing_inputs_fail_before_anything_is_pushed() {
    let repo = image_repo();
    let cosign = open().cosign();
    let cases: [BadCase; 5] = [
        (
            "sc-bad-pem",
            &[("sign-key", "not-a-key-5e1f")],
            "`sign-key` can't be used: it is not PEM",
        ),
        (
            "sc-bad-password",
            &[
                ("sign-key", &cosign.private_pem()),
                ("sign-key-password", "wrong-password-99"),
            ],
            "the password doesn't open the key",
        ),
        (
            "sc-bad-scanner",
            &[("sbom", "cyclonedx"), ("scanner", "none")],
            "set `scanner: trivy`",
        ),
        (
            "sc-bad-vault",
            &[("sign-key", "hashivault://cosign")],
            "needs VAULT_ADDR and VAULT_TOKEN",
        ),
        (
            "sc-bad-transit-key",
            &[("sign-key", "hashivault://")],
            "`sign-key`: `hashivault://` names no Transit key; give its name, e.g. `hashivault://cosign`",
        ),
    ];
    for (ns, inputs, message) in cases {
        let mut action = publish(&repo, ns, "refs/heads/main", &repo.head());
        for (name, value) in inputs {
            action = action.input(name, value);
        }
        let ran = action.run_async().await;
        ran.assert_failed(message);
        let all = unmasked(&format!("{ran}"));
        for (name, value) in inputs.iter().filter(|(n, _)| n.starts_with("sign-key")) {
            if !value.starts_with("hashivault://") {
                for secret in secret_lines(value)
                    .into_iter()
                    .chain([value.trim().to_owned()])
                {
                    assert!(!all.contains(&secret), "{name} leaked\n{ran}");
                }
            }
        }
    }
    let control = control(&repo, "sc-bad-control/app", Refused::BeforeBuilding).await;
    for (ns, _, _) in cases {
        assert_not_pushed(&control, &format!("{ns}/app")).await;
    }
}

/// A key made by openssl as SEC1 (`EC PRIVATE KEY`), not by cosign, and
/// the file of its public half (`PUBLIC KEY`) in `dir`.
fn openssl_sec1_key(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let pem = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
    let (key, public) = (dir.join("ec.key"), dir.join("ec.pub"));
    std::fs::write(&key, &pem).unwrap();
    let pub_pem = openssl(&["ec", "-pubout", "-in", key.to_str().unwrap()]);
    std::fs::write(&public, pub_pem).unwrap();
    let pem = String::from_utf8(pem).unwrap();
    assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----"), "SEC1");
    (pem, public)
}

#[tokio::test]
async fn an_openssl_sec1_key_signs_and_attests_what_cosign_verifies() {
    let target = open();
    let ns = "sc-sec1";
    let repo = image_repo();
    let cosign = target.cosign();
    let (key, public) = openssl_sec1_key(cosign.dir.path());
    let ran = trivy().around(
        target.with_login(
            publish(&repo, ns, "refs/heads/main", &repo.head())
                .input("scanner", "trivy")
                .input("sbom", "cyclonedx")
                .input("sign-key", &key)
                .input("signature-format", "both"),
        ),
    );
    let ran = ran.run_async().await;
    ran.assert_ok();
    let image = target.image(ns, &ran.outputs["digest"]);
    cosign.verify(&public, &image).unwrap();
    cosign
        .verify_attestation(&public, "cyclonedx", &image)
        .unwrap();
    bundles_verify_with_cosign3(&cosign, &public, &image);
    let pem = std::fs::read_to_string(&public).unwrap();
    verify(&repo, target, &image, &pem, Some("cyclonedx")).assert_ok();
    let all = unmasked(&format!("{ran}"));
    for secret in secret_lines(&key) {
        assert_absent(&all, &secret, "the run");
    }
}

#[tokio::test]
async fn a_pkcs8_key_signs_bundles_that_cosign_3_and_verify_accept() {
    let target = open();
    let ns = "sc-pkcs8-bundle";
    let repo = image_repo();
    let cosign = target.cosign();
    let (_, private, public) = plain_key(11);
    let ran = target
        .with_login(publish(&repo, ns, "refs/heads/main", &repo.head()))
        .input("sign-key", &private)
        .input("signature-format", "bundle")
        .run_async()
        .await;
    ran.assert_ok();
    let image = target.image(ns, &ran.outputs["digest"]);
    let pub_file = cosign.path("pkcs8.pub");
    std::fs::write(&pub_file, &public).unwrap();
    cosign
        .verify3_with(&pub_file, "verify", &[&image])
        .unwrap_or_else(|e| panic!("cosign 3 on {image}: {e}"));
    cosign
        .verify3_with(
            &pub_file,
            "verify-attestation",
            &["--type", "slsaprovenance1", &image],
        )
        .unwrap_or_else(|e| panic!("cosign 3 on {image}: {e}"));
    let ours = verify(&repo, target, &image, &public, None);
    ours.assert_ok();
    assert_row(
        &ours.summary,
        "| signature | Sigstore bundle v0.3 |",
        "✅ verified with the key |",
    );
    assert_row(
        &ours.summary,
        "| attestation | Sigstore bundle v0.3 |",
        "| `https://slsa.dev/provenance/v1` | ✅ verified with the key |",
    );
    let all = unmasked(&format!("{ran}"));
    for secret in secret_lines(&private) {
        assert_absent(&all, &secret, "the run");
    }
}

/// cosign 3.1 verifies the signature and the CycloneDX attestation of
/// `image` with the public key `public` (both in bundles, where `publish`
/// wrote `signature-format: both`).
fn bundles_verify_with_cosign3(cosign: &Cosign, public: &std::path::Path, image: &str) {
    cosign
        .verify3_with(public, "verify", &[image])
        .unwrap_or_else(|e| panic!("cosign 3 on {image}: {e}"));
    cosign
        .verify3_with(
            public,
            "verify-attestation",
            &["--type", "cyclonedx", image],
        )
        .unwrap_or_else(|e| panic!("cosign 3 on {image}: {e}"));
}

/// Vault Transit's answers, made by a real P-256 key: `GET keys/<key>` and
/// `POST sign/<key>/sha2-256` with a prehashed input (shapes from Vault's
/// Transit API documentation).
mod transit {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    pub const TOKEN: &str = "hvs.test-token-0b8e4c";

    struct Sign(SigningKey);

    impl Respond for Sign {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            assert_eq!(
                body["prehashed"], true,
                "cosign's hashivault sends the SHA-256"
            );
            let digest = B64.decode(body["input"].as_str().unwrap()).unwrap();
            let signature: p256::ecdsa::Signature = self.0.sign_prehash(&digest).unwrap();
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "request_id": "5b3ce8c5-7b8a-4e4a-a1a3-0e3f9d5f0a11",
                "lease_id": "",
                "renewable": false,
                "lease_duration": 0,
                "data": {
                    "key_version": 1,
                    "signature": format!("vault:v1:{}", B64.encode(signature.to_der().as_bytes())),
                },
                "wrap_info": null,
                "warnings": null,
                "auth": null,
            }))
        }
    }

    pub async fn server(key: &SigningKey, public: &str) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/transit/keys/cosign-webgrip"))
            .and(header("X-Vault-Token", TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "data": {
                    "type": "ecdsa-p256",
                    "name": "cosign-webgrip",
                    "latest_version": 1,
                    "min_decryption_version": 1,
                    "supports_signing": true,
                    "keys": {"1": {"creation_time": "2026-11-01T10:00:00Z", "name": "P-256", "public_key": public}},
                }
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/transit/sign/cosign-webgrip/sha2-256"))
            .and(header("X-Vault-Token", TOKEN))
            .respond_with(Sign(key.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_json(serde_json::json!({"errors": ["permission denied"]})),
            )
            .mount(&server)
            .await;
        server
    }
}

#[tokio::test]
async fn vault_transit_signs_what_cosign_verifies() {
    let target = open();
    let repo = image_repo();
    let (key, _, public) = plain_key(5);
    let server = transit::server(&key, &public).await;
    let cosign = target.cosign();
    let pub_file = cosign.path("transit.pub");
    std::fs::write(&pub_file, &public).unwrap();

    let ran = signed(
        &repo,
        "sc-transit",
        target,
        "hashivault://cosign-webgrip",
        "cyclonedx",
    )
    .input("signature-format", "both")
    .env("VAULT_ADDR", &server.uri())
    .env("VAULT_TOKEN", transit::TOKEN)
    .run_async()
    .await;
    ran.assert_ok();
    let digest = &ran.outputs["digest"];
    let image = target.image("sc-transit", digest);
    cosign.verify(&pub_file, &image).unwrap();
    cosign
        .verify_attestation(&pub_file, "cyclonedx", &image)
        .unwrap();
    bundles_verify_with_cosign3(&cosign, &pub_file, &image);
    verify(&repo, target, &image, &public, Some("cyclonedx")).assert_ok();
    ran.assert_secret_masked_only(transit::TOKEN);

    let refused = signed(
        &repo,
        "sc-transit-denied",
        target,
        "hashivault://cosign-webgrip",
        "none",
    )
    .env("VAULT_ADDR", &server.uri())
    .env("VAULT_TOKEN", "hvs.wrong-token-77")
    .run_async()
    .await;
    refused.assert_failed("check VAULT_TOKEN");
    assert!(
        tags(&services().registry_open, "sc-transit-denied/app", None)
            .await
            .is_empty()
    );
    refused.assert_secret_masked_only("hvs.wrong-token-77");
}

/// `mirror`, `backup`, `restore` of `tags: latest` of the repository `ns`
/// on the open registry, into `to` on the basic-auth one.
pub fn copy_command(repo: &Repo, command: &str, ns: &str, to_ns: &str, archive: &str) -> Action {
    let s = services();
    let from = format!("{}/{}", s.registry_open, scoped(&format!("{ns}/app")));
    let to = format!("{}/{}", s.registry_basic, scoped(&format!("{to_ns}/app")));
    let action = Action::github(repo.path())
        .input("command", command)
        .input("tags", "latest");
    match command {
        "mirror" => basic()
            .with_login(action)
            .input("from", &from)
            .input("to", &to),
        "backup" => action.input("from", &from).input("archive", archive),
        _ => basic()
            .with_login(action)
            .input("archive", archive)
            .input("to", &to),
    }
}

#[tokio::test]
async fn signatures_travel_with_mirror_backup_and_restore_and_go_with_cleanup() {
    let ns = "sc-carry";
    let repo = image_repo();
    let cosign = basic().cosign();
    let first = signed(&repo, ns, open(), &cosign.private_pem(), "cyclonedx")
        .run_async()
        .await;
    first.assert_ok();
    let digest = first.outputs["digest"].clone();

    // Copies of `latest` alone carry its signature and attestation along.
    copy_command(&repo, "mirror", ns, "sc-carry-mirror", "")
        .run_async()
        .await
        .assert_ok();
    copy_command(&repo, "backup", ns, "", "backup")
        .run_async()
        .await
        .assert_ok();
    copy_command(&repo, "restore", ns, "sc-carry-restore", "backup")
        .run_async()
        .await
        .assert_ok();
    for copy in ["sc-carry-mirror", "sc-carry-restore"] {
        let image = basic().image(copy, &digest);
        cosign
            .verify(&cosign.pub_path(), &image)
            .unwrap_or_else(|e| panic!("{copy}: {e}"));
        cosign
            .verify_attestation(&cosign.pub_path(), "cyclonedx", &image)
            .unwrap_or_else(|e| panic!("{copy}: {e}"));
    }

    // A second commit, signed too; cleanup keeps one SHA tag.
    repo.write("ops/docker/app/rootfs/etc/app.conf", "v=2\n");
    repo.commit("second");
    // Released with `mirror-to`: the mirror gets the signatures too.
    let s = services();
    let release_mirror = format!("{}/{}", s.registry_basic, scoped("sc-carry-release/app"));
    let second = signed(&repo, ns, open(), &cosign.private_pem(), "cyclonedx")
        .input("mirror-to", &release_mirror)
        .input("mirror-username", &s.basic_user)
        .input("mirror-password", &s.basic_password)
        .input("mirror-required", "true")
        .run_async()
        .await;
    second.assert_ok();
    let digests = [digest, second.outputs["digest"].clone()];
    let mirrored = basic().image("sc-carry-release", &digests[1]);
    cosign.verify(&cosign.pub_path(), &mirrored).unwrap();
    cosign
        .verify_attestation(&cosign.pub_path(), "cyclonedx", &mirrored)
        .unwrap();
    let usage = Action::github(repo.path())
        .input("command", "usage")
        .input("registry", &services().registry_open)
        .input("images", &scoped(&format!("{ns}/app")))
        .run_async()
        .await;
    usage.assert_ok();
    let report: Value = serde_json::from_str(&usage.outputs["report"]).unwrap();
    let counted = &report["repositories"][0];
    assert_eq!(
        (&counted["sha-tags"], &counted["signatures"]),
        (&Value::from(2), &Value::from(4)),
        "{usage}"
    );
    assert_eq!(
        counted["tags"],
        Value::from(3),
        "two SHA tags and `latest`, signatures apart: {usage}"
    );

    let (namespace, _) = scoped(&format!("{ns}/app"))
        .split_once('/')
        .map(|(n, r)| (n.to_owned(), r.to_owned()))
        .unwrap();
    let cleaned = Action::github(repo.path())
        .input("command", "cleanup")
        .input("registry", &services().registry_open)
        .input("namespace", &namespace)
        .input("images", "app")
        .input("keep", "1")
        .run_async()
        .await;
    cleaned.assert_ok();
    // `keep: 1` keeps the second commit's SHA tag, the newer: the first
    // image goes, and its signature and attestation with it.
    let [older, newer] = &digests;
    let left = tags(&services().registry_open, &format!("{ns}/app"), None).await;
    let shas: Vec<&String> = left.iter().filter(|t| t.len() == 40).collect();
    assert_eq!(shas, [&repo.head()], "{left:?}\n{cleaned}");
    for suffix in ["sig", "att"] {
        assert!(
            !left.contains(&cosign::tag(older, suffix)),
            "the deleted image's .{suffix} went with it: {left:?}\n{cleaned}"
        );
        assert!(
            left.contains(&cosign::tag(newer, suffix)),
            "the kept image kept its .{suffix}: {left:?}\n{cleaned}"
        );
    }
    let client = open().client();
    let repository = scoped(&format!("{ns}/app"));
    assert!(
        client.manifest(&repository, older).await.unwrap().is_none(),
        "the first image is deleted"
    );
    let kept = open().image(ns, newer);
    cosign
        .verify(&cosign.pub_path(), &kept)
        .unwrap_or_else(|e| panic!("the kept image's signature: {e}"));
    cosign
        .verify_attestation(&cosign.pub_path(), "cyclonedx", &kept)
        .unwrap_or_else(|e| panic!("the kept image's attestation: {e}"));
}
