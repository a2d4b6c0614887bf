//! `verify`, read as its stages: key → resolve (the digest a tag names) →
//! bundles (cosign 3's, among the referrers) → signatures (every `.sig`
//! layer and signature bundle checked against the key and the digest) →
//! attestation (when asked; `.att` layers and attestation bundles) →
//! finish. Valid only when at least one signature verifies, as cosign has
//! it; otherwise the error says what each one failed.

use anyhow::{Context as _, bail};

use crate::actions::boundary::Access;
use crate::actions::outputs::Outputs;
use crate::cli::VerifyArgs;
use crate::commands::Session;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::report::verify::{Seen, Verified, summary};
use crate::supply::attach::{Found, Subject};
use crate::supply::bundle;
use crate::supply::check::{self, Attested, Rejected};
use crate::supply::cosign::{self, Layer, Predicate};
use crate::supply::key;
use p256::ecdsa::VerifyingKey;

pub async fn run(args: &VerifyArgs, session: &Session) -> anyhow::Result<()> {
    let (key, key_file) = public_key(args, session)?;
    let key_id = key::fingerprint(&key);
    let reference = Reference::parse_exact(args.image.trim())
        .with_context(|| format!("`image`: {:?} is not an image reference", args.image))?;
    let registry = Registry::new(reference.registry(), args.login.credentials()?)?
        .with_timeout(args.timeout.request_timeout)?;
    let digest = resolve(&registry, &reference).await?;
    let subject = Subject {
        registry: &registry,
        repository: reference.repository(),
        digest: &digest,
    };
    let bundles = subject.bundles().await?;
    let mut seen = signatures(&subject, &key, &bundles, &args.image).await?;
    let attestation = match args.attestation {
        Some(kind) => {
            let predicate = kind.predicate();
            let (found, attested) =
                attestation(&subject, &key, predicate, &bundles, &args.image).await?;
            seen.extend(found);
            Some((
                predicate.uri().to_owned(),
                attested.spec_version,
                attested.components,
            ))
        }
        None => None,
    };
    let verified = Verified {
        image: args.image.trim().to_owned(),
        digest,
        key_id,
        key_file,
        seen,
        attestation,
    };
    let mut outputs = Outputs::new();
    outputs.set("digest", verified.digest.clone());
    outputs.set("key-id", verified.key_id.clone());
    session.finish(&outputs, &summary(&verified))
}

/// `public-key`: the PEM itself, or a file in the workspace holding it
/// (then also its name as given, for the summary).
fn public_key(
    args: &VerifyArgs,
    session: &Session,
) -> anyhow::Result<(VerifyingKey, Option<String>)> {
    let given = args.public_key.trim();
    let inline = given.starts_with("-----BEGIN");
    let pem = if inline {
        given.to_owned()
    } else {
        let path = session.input_path("public-key", given, Access::Exchange)?;
        crate::limits::read_input_text(
            "public-key",
            &path,
            crate::limits::PUBLIC_KEY,
            "give a PEM (the contents of `cosign.pub`) or its path in the repository",
        )?
    };
    let key = key::verifying_key(&pem).map_err(|e| anyhow::anyhow!("`public-key`: {e}"))?;
    Ok((key, (!inline).then(|| given.to_owned())))
}

/// The manifest digest the image names (a digest is taken as it is, once
/// the registry proves it has it). The manifest is read, not only its
/// `HEAD`: the digest checked is the one of the bytes the tag serves.
async fn resolve(registry: &Registry, reference: &Reference) -> anyhow::Result<String> {
    let wanted = reference.digest().or(reference.tag()).unwrap_or("latest");
    match registry.manifest(reference.repository(), wanted).await? {
        Some(manifest) => Ok(manifest.digest),
        None => bail!(
            "`image`: {} has no `{wanted}` in {}; check the name and the tag",
            reference.repository(),
            registry.name()
        ),
    }
}

/// Every signature checked, in both of cosign's formats: the layers of the
/// `.sig` tag (cosign 2, `publish`) and the bundles among the referrers
/// (cosign 3). Valid when one of them verifies.
async fn signatures(
    subject: &Subject<'_>,
    key: &VerifyingKey,
    bundles: &[Found],
    image: &str,
) -> anyhow::Result<Vec<Seen>> {
    let mut seen = Vec::new();
    let tag = cosign::tag(subject.digest, "sig");
    for (number, layer) in (1..).zip(subject.layers("sig").await?.unwrap_or_default()) {
        let payload = subject.blob(&layer).await?;
        let verdict = check::signature(key, &layer, &payload, subject.digest);
        seen.push(legacy(&tag, number, &layer, None, verdict));
    }
    for found in bundles.iter().filter(|f| is_signature(f)) {
        let verdict =
            check::bundle(key, &found.bytes, subject.digest).and_then(|statement| match statement
                .predicate_type
                .as_str()
            {
                bundle::SIGNATURE_PREDICATE => Ok(()),
                other => Err(Rejected::OtherPredicate {
                    found: other.to_owned(),
                    wanted: bundle::SIGNATURE_PREDICATE.to_owned(),
                }),
            });
        seen.push(in_bundle(found, verdict));
    }
    if seen.is_empty() {
        bail!(
            "{image} ({}) has no signature: no `{tag}` tag and no signature bundle among its referrers; sign it (`publish` with `sign-key`, or `cosign sign --key`)",
            subject.digest,
        );
    }
    if !seen.iter().any(Seen::verified) {
        bail!(
            "no signature of {image} ({}) verifies with the public key: {}",
            subject.digest,
            failures(&seen)
        );
    }
    Ok(seen)
}

/// A bundle whose manifest says it is a signature (or says nothing).
fn is_signature(found: &Found) -> bool {
    found
        .referrer
        .predicate_type
        .as_deref()
        .is_none_or(|t| t == bundle::SIGNATURE_PREDICATE)
}

/// The attestation of `predicate`, in either format: one must verify.
/// Attestations of other predicate types are not read.
async fn attestation(
    subject: &Subject<'_>,
    key: &VerifyingKey,
    predicate: Predicate,
    bundles: &[Found],
    image: &str,
) -> anyhow::Result<(Vec<Seen>, Attested)> {
    let tag = cosign::tag(subject.digest, "att");
    let layers = subject.layers("att").await?.unwrap_or_default();
    let of_type = |layer: &Layer| layer.predicate_type().is_none_or(|t| t == predicate.uri());
    let mut seen = Vec::new();
    let mut attested = None;
    for (number, layer) in (1..).zip(&layers).filter(|(_, l)| of_type(l)) {
        let envelope = subject.blob(layer).await?;
        let verdict = check::attestation(key, layer, &envelope, subject.digest, predicate);
        attested = attested.or(verdict.as_ref().ok().cloned());
        seen.push(legacy(
            &tag,
            number,
            layer,
            Some(predicate.uri()),
            verdict.map(drop),
        ));
    }
    let bundles = bundles
        .iter()
        .filter(|f| f.referrer.predicate_type.as_deref() == Some(predicate.uri()));
    for found in bundles {
        let verdict = check::bundle(key, &found.bytes, subject.digest)
            .and_then(|statement| check::bundle_attested(&statement, predicate));
        attested = attested.or(verdict.as_ref().ok().cloned());
        seen.push(in_bundle(found, verdict.map(drop)));
    }
    if seen.is_empty() {
        let found: Vec<&str> = layers.iter().filter_map(Layer::predicate_type).collect();
        bail!(
            "{image} ({}) has no attestation: no {} attestation (no `{tag}` layer, no bundle among its referrers{}); attest an SBOM (`publish` with `sbom` and `sign-key`, or `cosign attest --key --type {}`)",
            subject.digest,
            predicate.cosign_type(),
            if found.is_empty() {
                String::new()
            } else {
                format!("; only {}", found.join(", "))
            },
            predicate.cosign_type()
        );
    }
    match attested {
        Some(attested) => Ok((seen, attested)),
        None => bail!(
            "no {} attestation of {image} ({}) verifies with the public key: {}",
            predicate.cosign_type(),
            subject.digest,
            failures(&seen)
        ),
    }
}

/// A layer of a legacy `.sig`/`.att` tag, as the summary lists it.
fn legacy(
    tag: &str,
    number: usize,
    layer: &Layer,
    predicate: Option<&str>,
    verdict: Result<(), Rejected>,
) -> Seen {
    Seen {
        format: "cosign legacy",
        place: format!("{tag} layer {number} ({})", layer.digest),
        predicate: predicate.map(str::to_owned),
        verdict: verdict.map_err(|why| why.to_string()),
    }
}

/// A bundle among the referrers, as the summary lists it.
fn in_bundle(found: &Found, verdict: Result<(), Rejected>) -> Seen {
    let predicate = found.referrer.predicate_type.clone();
    Seen {
        format: "Sigstore bundle v0.3",
        place: format!("{} ({})", found.place, found.manifest),
        predicate: predicate.filter(|p| p != bundle::SIGNATURE_PREDICATE),
        verdict: verdict.map_err(|why| why.to_string()),
    }
}

/// "`sha256-….sig` layer 1 (sha256:…): why; …"
fn failures(seen: &[Seen]) -> String {
    seen.iter()
        .filter_map(|s| {
            s.verdict
                .as_ref()
                .err()
                .map(|why| format!("{}: {why}", s.place))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
