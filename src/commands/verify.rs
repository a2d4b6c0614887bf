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
use crate::report::verify::{Seen, Verified, What, summary};
use crate::supply::attach::{Found, Subject};
use crate::supply::bundle;
use crate::supply::check::{self, Attested, Rejected};
use crate::supply::cosign::{self, Layer, Predicate};
use crate::supply::{key, provenance};
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
    let wanted = wanted_predicate(args)?;
    let types: Vec<&str> = match &wanted {
        Some(wanted) => vec![wanted.as_str()],
        None => OURS.to_vec(),
    };
    let checked = attestations(&subject, &key, &types, &bundles).await?;
    let attestation = match &wanted {
        Some(wanted) => {
            let attested = required(&checked, wanted, &subject, &args.image)?;
            Some((wanted.clone(), attested.spec_version, attested.components))
        }
        None => None,
    };
    seen.extend(checked.into_iter().map(|(seen, _)| seen));
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

/// The predicate types `publish` attests: what `verify` lists unasked.
const OURS: [&str; 3] = [
    "https://cyclonedx.org/bom",
    "https://spdx.dev/Document",
    provenance::PREDICATE_TYPE,
];

/// The attestation `predicate-type` (or the older `attestation`) asks
/// for, as a predicate type URI.
fn wanted_predicate(args: &VerifyArgs) -> anyhow::Result<Option<String>> {
    let named = args
        .predicate_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let by_name = match named {
        None => None,
        Some("cyclonedx") => Some(Predicate::CycloneDx.uri().to_owned()),
        Some("spdx" | "spdxjson") => Some(Predicate::Spdx.uri().to_owned()),
        Some("slsaprovenance1") => Some(provenance::PREDICATE_TYPE.to_owned()),
        Some(uri) if uri.starts_with("https://") && !uri.contains(char::is_whitespace) => {
            Some(uri.to_owned())
        }
        Some(other) => bail!(
            "`predicate-type`: {other:?} is not a predicate type; give `cyclonedx`, `spdx`, `slsaprovenance1` or the type's URI (`https://…`)"
        ),
    };
    let by_kind = args
        .attestation
        .map(|kind| kind.predicate().uri().to_owned());
    match (by_name, by_kind) {
        (Some(a), Some(b)) if a != b => bail!(
            "`predicate-type` ({a}) and `attestation` ({b}) ask for different attestations; give one"
        ),
        (a, b) => Ok(a.or(b)),
    }
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
        seen.push(legacy(What::Signature, &tag, number, &layer, None, verdict));
    }
    for found in bundles.iter().filter(|f| is_signature(f)) {
        let statement = check::bundle(key, &found.bytes, subject.digest);
        // Unannotated, a bundle's predicate type is known once it opens.
        let predicate = match &statement {
            Ok(statement) => Some(statement.predicate_type.clone()),
            Err(_) => found.referrer.predicate_type.clone(),
        };
        let verdict = statement.and_then(|statement| match statement.predicate_type.as_str() {
            bundle::SIGNATURE_PREDICATE => Ok(()),
            other => Err(Rejected::OtherPredicate {
                found: other.to_owned(),
                wanted: bundle::SIGNATURE_PREDICATE.to_owned(),
            }),
        });
        seen.push(in_bundle(What::Signature, found, predicate, verdict));
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

/// The attestations of our predicate types (SBOMs, provenance) beside
/// the image, each checked, in either format; only those of `types`.
async fn attestations(
    subject: &Subject<'_>,
    key: &VerifyingKey,
    types: &[&str],
    bundles: &[Found],
) -> anyhow::Result<Vec<(Seen, Option<Attested>)>> {
    let tag = cosign::tag(subject.digest, "att");
    let layers = subject.layers("att").await?.unwrap_or_default();
    let mut checked = Vec::new();
    for (number, layer) in (1..).zip(&layers) {
        // A layer that doesn't say its type is read under each asked.
        let Some(predicate_type) = types
            .iter()
            .find(|t| layer.predicate_type().is_none_or(|found| found == **t))
        else {
            continue;
        };
        let envelope = subject.blob(layer).await?;
        let verdict = check::attestation(key, layer, &envelope, subject.digest, predicate_type);
        let seen = legacy(
            What::Attestation,
            &tag,
            number,
            layer,
            Some(predicate_type),
            verdict.clone().map(drop),
        );
        checked.push((seen, verdict.ok()));
    }
    let typed = bundles.iter().filter(|f| {
        f.referrer
            .predicate_type
            .as_deref()
            .is_some_and(|t| types.contains(&t))
    });
    for found in typed {
        let predicate_type = found.referrer.predicate_type.as_deref().unwrap_or_default();
        let verdict = check::bundle(key, &found.bytes, subject.digest)
            .and_then(|statement| check::bundle_attested(&statement, predicate_type));
        let predicate = Some(predicate_type.to_owned());
        checked.push((
            in_bundle(
                What::Attestation,
                found,
                predicate,
                verdict.clone().map(drop),
            ),
            verdict.ok(),
        ));
    }
    Ok(checked)
}

/// The attestation asked for (`predicate-type`, `attestation`): one of
/// that type must verify.
fn required(
    checked: &[(Seen, Option<Attested>)],
    predicate_type: &str,
    subject: &Subject<'_>,
    image: &str,
) -> anyhow::Result<Attested> {
    let of_type: Vec<&(Seen, Option<Attested>)> = checked
        .iter()
        .filter(|(seen, _)| {
            seen.is_attestation() && seen.predicate.as_deref() == Some(predicate_type)
        })
        .collect();
    if let Some(attested) = of_type.iter().find_map(|(_, a)| a.clone()) {
        return Ok(attested);
    }
    let tag = cosign::tag(subject.digest, "att");
    let name = type_name(predicate_type);
    if of_type.is_empty() {
        bail!(
            "{image} ({}) has no attestation: no {name} attestation (no `{tag}` layer, no bundle among its referrers); attest it (`publish` with `sign-key`: `sbom` for an SBOM, `provenance` for SLSA provenance; or `cosign attest --key --type {name}`)",
            subject.digest,
        );
    }
    let seen: Vec<Seen> = of_type.iter().map(|(s, _)| s.clone()).collect();
    bail!(
        "no {name} attestation of {image} ({}) verifies with the public key: {}",
        subject.digest,
        failures(&seen)
    )
}

/// cosign's `--type` name of a predicate type, or the URI itself.
fn type_name(predicate_type: &str) -> &str {
    if predicate_type == provenance::PREDICATE_TYPE {
        return provenance::COSIGN_TYPE;
    }
    match Predicate::from_uri(predicate_type) {
        Some(sbom) => sbom.cosign_type(),
        None => predicate_type,
    }
}

/// A layer of a legacy `.sig`/`.att` tag, as the summary lists it.
fn legacy(
    what: What,
    tag: &str,
    number: usize,
    layer: &Layer,
    predicate: Option<&str>,
    verdict: Result<(), Rejected>,
) -> Seen {
    Seen {
        what,
        format: "cosign legacy",
        place: format!("{tag} layer {number} ({})", layer.digest),
        predicate: predicate.map(str::to_owned),
        named_key: None,
        verdict: verdict.map_err(|why| why.to_string()),
    }
}

/// A bundle among the referrers, as the summary lists it.
fn in_bundle(
    what: What,
    found: &Found,
    predicate: Option<String>,
    verdict: Result<(), Rejected>,
) -> Seen {
    Seen {
        what,
        format: "Sigstore bundle v0.3",
        place: format!("{} ({})", found.place, found.manifest),
        predicate,
        named_key: bundle::signer(&found.bytes),
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
