//! `verify`, read as its stages: key → resolve (the digest a tag names) →
//! signatures (every `.sig` layer checked against the key and the digest)
//! → attestation (when asked) → finish. Valid only when at least one
//! signature layer verifies, as cosign has it; otherwise the error says
//! what each layer failed.

use anyhow::{Context as _, bail};

use crate::actions::boundary::Access;
use crate::actions::outputs::Outputs;
use crate::cli::VerifyArgs;
use crate::commands::Session;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::report::verify::{Verified, summary};
use crate::supply::attach::Subject;
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
    let (signatures, layers) = signatures(&subject, &key, &args.image).await?;
    let attestation = match args.attestation {
        Some(kind) => Some(attestation(&subject, &key, kind.predicate(), &args.image).await?),
        None => None,
    };
    let verified = Verified {
        image: args.image.trim().to_owned(),
        digest,
        key_id,
        key_file,
        signatures,
        layers,
        attestation: attestation.map(|(p, a)| (p.uri().to_owned(), a.spec_version, a.components)),
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

/// Every signature layer checked; the count that verified, of how many.
async fn signatures(
    subject: &Subject<'_>,
    key: &VerifyingKey,
    image: &str,
) -> anyhow::Result<(usize, usize)> {
    let Some(layers) = subject.layers("sig").await? else {
        bail!(
            "{image} ({}) has no signature: no `{}` tag; sign it (`publish` with `sign-key`, or `cosign sign --key`)",
            subject.digest,
            cosign::tag(subject.digest, "sig")
        );
    };
    let mut rejected = Vec::new();
    for (number, layer) in (1..).zip(&layers) {
        let payload = subject.blob(layer).await?;
        if let Err(why) = check::signature(key, layer, &payload, subject.digest) {
            rejected.push((number, layer, why));
        }
    }
    if rejected.len() == layers.len() {
        bail!(
            "no signature of {image} ({}) verifies with the public key: {}",
            subject.digest,
            failures(&rejected)
        );
    }
    Ok((layers.len() - rejected.len(), layers.len()))
}

/// The attestation of `predicate`: one such layer must verify. Layers of
/// other predicate types are not read.
async fn attestation(
    subject: &Subject<'_>,
    key: &VerifyingKey,
    predicate: Predicate,
    image: &str,
) -> anyhow::Result<(Predicate, Attested)> {
    let Some(layers) = subject.layers("att").await? else {
        bail!(
            "{image} ({}) has no attestation: no `{}` tag; attest an SBOM (`publish` with `sbom` and `sign-key`, or `cosign attest --key --type {}`)",
            subject.digest,
            cosign::tag(subject.digest, "att"),
            predicate.cosign_type()
        );
    };
    let of_type = |layer: &&Layer| layer.predicate_type().is_none_or(|t| t == predicate.uri());
    if !layers.iter().any(|l| of_type(&l)) {
        let found: Vec<&str> = layers.iter().filter_map(Layer::predicate_type).collect();
        bail!(
            "{image} ({}) has no {} attestation, only {}",
            subject.digest,
            predicate.cosign_type(),
            found.join(", ")
        );
    }
    let mut rejected = Vec::new();
    for (number, layer) in (1..).zip(&layers).filter(|(_, l)| of_type(l)) {
        let envelope = subject.blob(layer).await?;
        match check::attestation(key, layer, &envelope, subject.digest, predicate) {
            Ok(attested) => return Ok((predicate, attested)),
            Err(why) => rejected.push((number, layer, why)),
        }
    }
    bail!(
        "no {} attestation of {image} ({}) verifies with the public key: {}",
        predicate.cosign_type(),
        subject.digest,
        failures(&rejected)
    )
}

/// "layer 1 (sha256:…): why; layer 2 …"
fn failures(rejected: &[(usize, &Layer, Rejected)]) -> String {
    rejected
        .iter()
        .map(|(number, layer, why)| format!("layer {number} ({}): {why}", layer.digest))
        .collect::<Vec<_>>()
        .join("; ")
}
