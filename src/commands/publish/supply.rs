//! `publish`'s supply chain: the SBOM converted from the scan's own report
//! (before the push), then the signature and the SBOM's attestation of the
//! pushed digest (after it). `merge` signs its index the same way.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::actions::boundary::Access;
use crate::actions::context::Forge;
use crate::cli::{ScanArgs, ScannerArg, SignatureFormat, Signing as SignKey};
use crate::commands::Session;
use crate::engine::{Engine, OwnImage};
use crate::gate::Gate;
use crate::registry::Manifest;
use crate::report::publish::{Formats, Published};
use crate::scan::runner;
use crate::supply::attach::Subject;
use crate::supply::cosign::{self, Predicate};
use crate::supply::transit::{self, Transit, Vault};
use crate::supply::{Signer, key, provenance, sbom};

use super::plan::{Attest, Signing};
use super::{Image, Target};

/// The SBOM asked for and who signs: read and checked before anything is
/// built, so a bad key fails the job with nothing pushed.
pub(super) struct Supply {
    sbom: Option<Predicate>,
    /// Attest the build's SLSA provenance (`provenance`).
    provenance: bool,
    format: SignatureFormat,
    /// `scanner-image`: the Trivy that scanned converts too.
    scanner_image: Option<String>,
    signer: Option<Signer>,
    /// The image this binary runs from, for the provenance's builder.
    own_image: Option<OwnImage>,
}

pub(super) async fn supply_inputs(
    session: &Session,
    signing: &SignKey,
    sbom: Option<(Predicate, &ScanArgs)>,
    provenance: Option<bool>,
) -> anyhow::Result<Supply> {
    if provenance == Some(true) && signing.sign_key.is_none() {
        bail!(
            "`provenance: true` attests the build's provenance, which is signed: give `sign-key` too, or set `provenance: false`"
        );
    }
    if let Some((_, scan)) = sbom.filter(|(_, scan)| scan.scanner != ScannerArg::Trivy) {
        bail!(
            "`sbom` is converted from Trivy's report, but `scanner` is `{}`; set `scanner: trivy`, or `sbom: none`",
            format!("{:?}", scan.scanner).to_lowercase()
        );
    }
    let signer = match signing.sign_key.as_deref() {
        Some(value) => Some(signer(value, signing.sign_key_password.as_deref(), session).await?),
        None => None,
    };
    let provenance = provenance.unwrap_or(signer.is_some());
    let own_image = match provenance {
        true => own_image().await,
        false => None,
    };
    Ok(Supply {
        provenance,
        own_image,
        sbom: sbom.map(|(predicate, _)| predicate),
        format: signing.signature_format,
        scanner_image: sbom.and_then(|(_, scan)| scan.scanner_image.clone()),
        signer,
    })
}

impl Supply {
    pub(super) fn signs(&self) -> bool {
        self.signer.is_some()
    }

    pub(super) fn sbom_asked(&self) -> bool {
        self.sbom.is_some()
    }

    pub(super) fn provenance(&self) -> bool {
        self.provenance
    }
}

/// The image this binary runs from, when the engine can tell (a container
/// action with the socket mounted); the provenance leaves out what it can't.
async fn own_image() -> Option<OwnImage> {
    Engine::connect().await.ok()?.own_image().await
}

/// The SLSA provenance of what `target` built between `started` and
/// `finished` (Unix seconds), from the runner's context.
pub(super) fn provenance(
    session: &Session,
    supply: &Supply,
    target: &Target,
    report: &Published,
    started: i64,
    finished: i64,
) -> Value {
    let ctx = &session.ctx;
    let repository = ctx
        .repository
        .as_deref()
        .map(|r| format!("{}/{r}", ctx.server_url.trim_end_matches('/')));
    let source = repository.clone().map(|repository| provenance::Source {
        repository,
        commit: target.image.sha.clone(),
        git_ref: ctx.git_ref.clone(),
    });
    let run = repository.and_then(|repository| {
        let url = match ctx.forge {
            Forge::GitHub => format!(
                "{repository}/actions/runs/{}/attempts/{}",
                ctx.run_id.as_deref()?,
                ctx.run_attempt.as_deref().unwrap_or("1")
            ),
            Forge::Forgejo | Forge::Gitea => format!(
                "{repository}/actions/runs/{}",
                ctx.run_number.as_deref().or(ctx.run_id.as_deref())?
            ),
            Forge::Local => return None,
        };
        Some(provenance::Run {
            url,
            workflow_ref: ctx.workflow_ref.clone(),
        })
    });
    let context = target
        .dir
        .strip_prefix(&ctx.workspace)
        .unwrap_or(&target.dir)
        .to_string_lossy()
        .into_owned();
    provenance::predicate(&provenance::Facts {
        source,
        run,
        dockerfile: &target.dockerfile_rel,
        context: &context,
        target: target.stage.as_deref(),
        platforms: report.platforms.clone(),
        build_args: &target.build_args,
        bases: &report.bases,
        version: env!("CARGO_PKG_VERSION"),
        image: supply
            .own_image
            .as_ref()
            .map(|image| provenance::BuilderImage {
                id: &image.id,
                pulled: image.pulled.as_deref(),
            }),
        started,
        finished,
    })
}

/// A key from the `sign-key` PEM, or Vault Transit for `hashivault://`.
async fn signer(value: &str, password: Option<&str>, session: &Session) -> anyhow::Result<Signer> {
    if let Some(name) = value.trim().strip_prefix(transit::SCHEME) {
        if name.trim().is_empty() {
            bail!(
                "`sign-key`: `{}` names no Transit key; give its name, e.g. `{}cosign`",
                transit::SCHEME,
                transit::SCHEME
            );
        }
        let vault = vault(session)?;
        let transit = Transit::connect(vault, name)
            .await
            .with_context(|| format!("`sign-key`: hashivault://{name}"))?;
        return Ok(Signer::Transit(transit));
    }
    key::signing_key(value, password.unwrap_or_default())
        .map(Signer::Key)
        .map_err(|e| {
            anyhow::anyhow!(
                "`sign-key` can't be used: {e}. Give the contents of `cosign.key` (from `cosign generate-key-pair`, its password in `sign-key-password`), a PKCS#8 or EC P-256 private key PEM, or `hashivault://<key>`"
            )
        })
}

/// Vault's address and token from the environment, as cosign reads them;
/// the token is masked before anything can print it.
fn vault(session: &Session) -> anyhow::Result<Vault> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (Some(addr), Some(token)) = (var("VAULT_ADDR"), var("VAULT_TOKEN")) else {
        bail!(
            "`sign-key: hashivault://…` needs VAULT_ADDR and VAULT_TOKEN in the step's environment (`env:`), as cosign does"
        );
    };
    session.workflow.add_mask(&token);
    Ok(Vault {
        addr,
        token,
        mount: var("TRANSIT_SECRET_ENGINE_PATH").unwrap_or_else(|| "transit".into()),
    })
}

/// The SBOM written to the workspace.
pub(super) struct Sbom {
    /// Relative to the workspace, as the `sbom-path` output gives it.
    path: String,
    predicate: Predicate,
    document: Value,
}

/// Converts the gate's own report (no second scan) into the SBOM asked
/// for, its component named after the image and digest.
pub(super) async fn sbom(
    session: &Session,
    target: &Target,
    supply: &Supply,
    gate: Option<&Gate>,
    digest: &str,
    work: &Path,
    report: &mut Published,
) -> anyhow::Result<Option<Sbom>> {
    let Some(predicate) = supply.sbom else {
        return Ok(None);
    };
    let Some(raw) = gate.and_then(|g| g.report.as_deref()) else {
        return Ok(None);
    };
    let started = Instant::now();
    let name = target.image.reference.familiar();
    let named = work.join("report.json");
    std::fs::write(
        &named,
        sbom::named_report(raw, &format!("{name}@{digest}"))?,
    )
    .with_context(|| format!("couldn't write {}", named.display()))?;
    let bytes = runner::convert(&named, predicate, supply.scanner_image.as_deref()).await?;
    let document: Value = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("`trivy convert` wrote an SBOM that is not JSON: {e}"))?;
    let path = sbom::file_name(&name, &target.image.sha, predicate);
    // Not through a committed symlink of that name, either.
    let full = session.input_path("sbom", &path, Access::Exchange)?;
    std::fs::write(&full, &bytes)
        .with_context(|| format!("`sbom`: couldn't write {}", full.display()))?;
    report.notes.push(format!(
        "SBOM `{path}`: {} {}, {} components (converted from the scan's report in {:.2} s)",
        predicate.cosign_type(),
        sbom::spec_version(predicate, &document).unwrap_or_default(),
        sbom::components(predicate, &document),
        started.elapsed().as_secs_f64()
    ));
    Ok(Some(Sbom {
        path,
        predicate,
        document,
    }))
}

impl Sbom {
    pub(super) fn path(&self) -> &str {
        &self.path
    }
}

/// What is attested beside the signature: the SBOM, the provenance.
#[derive(Default, Clone, Copy)]
pub(super) struct Attestations<'a> {
    pub sbom: Option<&'a Sbom>,
    pub provenance: Option<&'a Value>,
}

impl Attestations<'_> {
    /// Each as (what the summary calls it, predicate type, predicate); the
    /// SBOM only when the plan attests it.
    fn each(&self, attest: Attest) -> Vec<(String, &'static str, Value)> {
        let sbom = self.sbom.filter(|_| attest == Attest::Sbom).map(|sbom| {
            (
                format!("the {} SBOM", sbom.predicate.cosign_type()),
                sbom.predicate.uri(),
                sbom.document.clone(),
            )
        });
        let provenance = self.provenance.map(|p| {
            (
                "the SLSA build provenance".to_owned(),
                provenance::PREDICATE_TYPE,
                p.clone(),
            )
        });
        sbom.into_iter().chain(provenance).collect()
    }
}

/// The platform images an index lists (not its attestation manifests);
/// none for an image.
fn platform_images(manifest: &Manifest) -> Vec<String> {
    if !crate::oci::is_index_media_type(&manifest.media_type) {
        return Vec::new();
    }
    crate::oci::children(&manifest.bytes)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.platform.as_ref().is_some_and(|p| p.os != "unknown"))
        .map(|c| c.digest.as_str().to_owned())
        .collect()
}

/// cosign 2's format: the `.sig` tag, and the attestations in `.att`.
async fn sign_legacy(
    subject: &Subject<'_>,
    signer: &Signer,
    attestations: &[(String, &'static str, Value)],
    report: &mut Published,
) -> anyhow::Result<()> {
    let digest = subject.digest;
    let signature = cosign::tag(digest, "sig");
    let added = subject.sign(signer).await?;
    report.notes.push(if added {
        format!("signed {digest}: `{signature}`")
    } else {
        format!("{digest} was already signed with this key: `{signature}` unchanged")
    });
    for (what, predicate_type, predicate) in attestations {
        subject
            .attest(signer, predicate_type, predicate.clone())
            .await?;
        report.notes.push(format!(
            "attested {what} ({predicate_type}): `{}`",
            cosign::tag(digest, "att")
        ));
    }
    Ok(())
}

/// cosign 3's format: Sigstore bundles as referrers of the digest.
async fn sign_bundle(
    subject: &Subject<'_>,
    signer: &Signer,
    attestations: &[(String, &'static str, Value)],
    report: &mut Published,
) -> anyhow::Result<()> {
    let digest = subject.digest;
    report.notes.push(match subject.sign_bundle(signer).await? {
        Some(place) => format!("signed {digest} in a Sigstore bundle: {place}"),
        None => format!("{digest} already has a signature bundle by this key: unchanged"),
    });
    for (what, predicate_type, predicate) in attestations {
        let place = subject
            .attest_bundle(signer, predicate_type, predicate.clone())
            .await?;
        report.notes.push(format!(
            "attested {what} ({predicate_type}) in a Sigstore bundle: {place}"
        ));
    }
    Ok(())
}

/// Which images of an index `sign` signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The index and each platform's image, with its provenance: this run
    /// built them (a verifier given a platform's digest finds them too).
    WithPlatformImages,
    /// The index only: its images are other jobs' (`merge`).
    IndexOnly,
}

/// Signs the pushed digest and attests its SBOM and provenance (and, by
/// `scope`, an index's platform images). A failure here leaves the image
/// pushed but unsigned; a re-run skips the build and signs it.
pub(super) async fn sign(
    image: &Image,
    plan: Signing,
    supply: &Supply,
    (manifest, scope): (&Manifest, Scope),
    attestations: Attestations<'_>,
    report: &mut Published,
) -> anyhow::Result<()> {
    let attest = match plan {
        Signing::Unsigned => return Ok(()),
        Signing::NothingPushed => {
            report
                .notes
                .push("not signed: nothing was pushed (`push: false`)".into());
            return Ok(());
        }
        Signing::Digest { attest } => attest,
    };
    // The plan signs only when a key was given.
    let Some(signer) = &supply.signer else {
        return Ok(());
    };
    let started = Instant::now();
    let digest = manifest.digest.as_str();
    let unsigned = || {
        format!(
            "{}@{digest} is pushed, but signing it failed; re-run the job to sign it (what is pushed is not built or pushed again)",
            image.reference.familiar()
        )
    };
    let each = attestations.each(attest);
    let provenance_only: Vec<_> = each
        .iter()
        .filter(|(_, predicate_type, _)| *predicate_type == provenance::PREDICATE_TYPE)
        .cloned()
        .collect();
    report.signed = Some(Formats {
        legacy: supply.format.legacy(),
        bundle: supply.format.bundle(),
    });
    let children = match scope {
        Scope::WithPlatformImages => platform_images(manifest),
        Scope::IndexOnly => Vec::new(),
    };
    let subjects = std::iter::once((digest, each.as_slice())).chain(
        children
            .iter()
            .map(|c| (c.as_str(), provenance_only.as_slice())),
    );
    for (digest, attestations) in subjects {
        let subject = Subject {
            registry: &image.registry,
            repository: &image.repository,
            digest,
        };
        if supply.format.legacy() {
            sign_legacy(&subject, signer, attestations, report)
                .await
                .with_context(unsigned)?;
        }
        if supply.format.bundle() {
            sign_bundle(&subject, signer, attestations, report)
                .await
                .with_context(unsigned)?;
        }
    }
    if matches!(attest, Attest::Sbom | Attest::NoScan) && attestations.sbom.is_none() {
        // Asked for, but no scan made one.
        report.notes.push(
            "no attestation: the build was skipped, so there is no scan to make the SBOM from; `rebuild: true` builds and attests again (on this commit only a build that makes the same digest: `cache: false` and a fixed `org.opencontainers.image.created` label)".into(),
        );
    }
    report.notes.push(format!(
        "signing took {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
