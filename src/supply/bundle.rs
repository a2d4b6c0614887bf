//! Sigstore bundles (v0.3) as cosign 3 and GitHub's `actions/attest` keep
//! them beside an image: an OCI 1.1 referrer — a manifest whose `subject`
//! is the image and whose one layer is the bundle — listed by the
//! registry's referrers API or, on a registry without one, in the index
//! under the fallback tag `sha256-<hex>`. A bundle made with a key holds a
//! DSSE envelope around an in-toto statement: a signature is the statement
//! of predicate type [`SIGNATURE_PREDICATE`], an attestation any other.
//! Pure: no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cosign::{Envelope, IN_TOTO};
use crate::oci::{Descriptor, Digest, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::registry::Manifest;

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of `cosign sign` in the bundle format.
pub const SIGNATURE_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The manifest annotation cosign 3 copies the statement's predicate type to.
const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// The empty JSON object OCI 1.1 artifacts name as their config.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";
const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// The fallback tag of a digest's referrers index (OCI distribution 1.1).
pub fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The digest a fallback tag is about: the tag is exactly `sha256-`
/// and 64 lower-case hex digits, as [`fallback_tag`] spells it; `None`
/// for any other tag. The one reading of that spelling.
pub fn fallback_subject(tag: &str) -> Option<String> {
    let digest = format!("sha256:{}", tag.strip_prefix("sha256-")?);
    crate::names::is_digest(&digest).then_some(digest)
}

/// The referrer manifests an index lists. The index's own `artifactType`
/// entries are not trusted (cosign 3 writes the config's type there): each
/// manifest is read and judged by [`bundle_layer`].
pub fn listed(index: &[u8]) -> Result<Vec<Descriptor>, String> {
    crate::oci::children(index).ok_or_else(|| "it is not an OCI index".to_owned())
}

/// A referrer manifest holding one bundle about `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The bundle blob.
    pub layer: Descriptor,
    /// The predicate type the manifest's annotation tells (checked against
    /// the statement when the bundle is opened).
    pub predicate_type: Option<String>,
}

/// The bundle a referrer manifest holds, when it is a bundle manifest
/// about `subject`; `None` for any other artifact (an SBOM pushed by
/// another tool, a referrer of another digest).
pub fn bundle_layer(manifest: &[u8], subject: &str) -> Result<Option<Referrer>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ReferrerManifest {
        #[serde(default)]
        artifact_type: Option<String>,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        subject: Option<Descriptor>,
        #[serde(default)]
        annotations: std::collections::BTreeMap<String, String>,
    }
    let manifest: ReferrerManifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("it is not an image manifest ({e})"))?;
    let about = manifest
        .subject
        .as_ref()
        .is_some_and(|s| s.digest.as_str() == subject);
    let bundles: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == BUNDLE_MEDIA_TYPE)
        .collect();
    let typed = manifest.artifact_type.as_deref() == Some(BUNDLE_MEDIA_TYPE) || !bundles.is_empty();
    match bundles.as_slice() {
        _ if !about || !typed => Ok(None),
        [layer] => Ok(Some(Referrer {
            layer: (*layer).clone(),
            predicate_type: manifest.annotations.get(PREDICATE_ANNOTATION).cloned(),
        })),
        [] => Err("it is a bundle manifest without a bundle layer".to_owned()),
        _ => Err(format!("it holds {} bundle layers, not one", bundles.len())),
    }
}

/// A bundle opened: the statement its envelope carries (still to be
/// checked against a key) and the signatures over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub statement: Vec<u8>,
    pub signatures: Vec<Vec<u8>>,
    pub payload_type: String,
}

/// Reads a bundle's DSSE envelope. A bundle signing a message digest
/// instead (`cosign sign-blob`) names no image: it is refused.
pub fn open(bytes: &[u8]) -> Result<Opened, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Bundle {
        media_type: String,
        #[serde(default)]
        dsse_envelope: Option<Envelope>,
        #[serde(default)]
        message_signature: Option<serde::de::IgnoredAny>,
    }
    let bundle: Bundle =
        serde_json::from_slice(bytes).map_err(|e| format!("it is not a Sigstore bundle ({e})"))?;
    if bundle.media_type != BUNDLE_MEDIA_TYPE {
        return Err(format!(
            "its media type is {:?}, not {BUNDLE_MEDIA_TYPE}",
            bundle.media_type
        ));
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return Err(if bundle.message_signature.is_some() {
            "it signs a message digest (`cosign sign-blob`), not an image statement".to_owned()
        } else {
            "it holds no DSSE envelope".to_owned()
        });
    };
    let statement = B64
        .decode(&envelope.payload)
        .map_err(|_| "its envelope's payload is not base64".to_owned())?;
    let signatures = envelope
        .signatures
        .iter()
        .filter_map(|s| B64.decode(&s.sig).ok())
        .collect();
    Ok(Opened {
        statement,
        signatures,
        payload_type: envelope.payload_type,
    })
}

/// The key a bundle names as its signer (`verificationMaterial.publicKey.hint`),
/// as a fingerprint `sha256:<hex>` when the hint is cosign 3's (base64 of
/// the SHA-256 of the key's DER); any other hint is not shown. Only a
/// name: the signature is what proves a key.
pub fn signer(bytes: &[u8]) -> Option<String> {
    let bundle: Value = serde_json::from_slice(bytes).ok()?;
    let hint = bundle
        .pointer("/verificationMaterial/publicKey/hint")?
        .as_str()?;
    let hash = B64.decode(hint).ok().filter(|h| h.len() == 32)?;
    Some(hash.iter().fold(String::from("sha256:"), |mut hex, b| {
        hex.push_str(&format!("{b:02x}"));
        hex
    }))
}

/// The in-toto statement (v1) that `predicate` of `predicate_type` is about
/// `digest`; cosign 3's signature is [`SIGNATURE_PREDICATE`] with `{}`.
pub fn statement(digest: &str, predicate_type: &str, predicate: Value) -> Vec<u8> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    let document = json!({
        "_type": STATEMENT_V1,
        "subject": [{"digest": {algorithm: hex}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&document).unwrap_or_default()
}

/// What a bundle's envelope signature covers: DSSE's PAE of `statement`.
pub fn message(statement: &[u8]) -> Vec<u8> {
    super::cosign::pae(IN_TOTO, statement)
}

/// A bundle v0.3 around `statement` and its signature, naming the key by
/// its hint (base64 of the SHA-256 of its DER, as cosign 3 writes it).
pub fn make(statement: &[u8], signature_der: &[u8], key_hint: &str) -> Vec<u8> {
    let document = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint}},
        "dsseEnvelope": {
            "payload": B64.encode(statement),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": B64.encode(signature_der)}],
        },
    });
    serde_json::to_vec(&document).unwrap_or_default()
}

/// The referrer manifest holding `bundle` about `subject`, as cosign 3
/// writes it (the empty config, the bundle as its one layer, the predicate
/// type in an annotation).
pub fn referrer(
    subject: &Descriptor,
    bundle: &[u8],
    predicate_type: &str,
    created: &str,
) -> Manifest {
    let document = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "size": EMPTY_CONFIG.len(),
            "digest": Digest::of(EMPTY_CONFIG).as_str(),
        },
        "layers": [{
            "mediaType": BUNDLE_MEDIA_TYPE,
            "size": bundle.len(),
            "digest": Digest::of(bundle).as_str(),
        }],
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            PREDICATE_ANNOTATION: predicate_type,
            "org.opencontainers.image.created": created,
        },
        "subject": {
            "mediaType": subject.media_type,
            "size": subject.size,
            "digest": subject.digest.as_str(),
        },
    });
    let bytes = serde_json::to_vec(&document).unwrap_or_default();
    Manifest {
        digest: Digest::of(&bytes).as_str().to_owned(),
        bytes,
        media_type: MANIFEST_MEDIA_TYPE.to_owned(),
    }
}

/// The fallback index with `added` listed and the manifests in `dropped`
/// no longer: an index made from nothing when there was none. Entries of
/// others are kept as they are, fields this code doesn't know included.
pub fn with_referrer(
    index: Option<&[u8]>,
    added: &Manifest,
    predicate_type: &str,
    dropped: &[&str],
) -> Result<Manifest, String> {
    let mut document: Value = match index {
        Some(bytes) => {
            serde_json::from_slice(bytes).map_err(|e| format!("it is not JSON ({e})"))?
        }
        None => json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}),
    };
    let Some(manifests) = document.get_mut("manifests").and_then(Value::as_array_mut) else {
        return Err("it is not an OCI index".to_owned());
    };
    manifests.retain(|entry| {
        let digest = entry
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or_default();
        digest != added.digest && !dropped.contains(&digest)
    });
    manifests.push(json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "size": added.bytes.len(),
        "digest": added.digest,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "annotations": {PREDICATE_ANNOTATION: predicate_type},
    }));
    let bytes = serde_json::to_vec(&document).unwrap_or_default();
    Ok(Manifest {
        digest: Digest::of(&bytes).as_str().to_owned(),
        bytes,
        media_type: INDEX_MEDIA_TYPE.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cosign3");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn subject() -> String {
        String::from_utf8(fixture("subject-digest"))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn a_fallback_tag_is_read_back_only_as_spelled() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let tag = fallback_tag(&digest);
        assert_eq!(fallback_subject(&tag).as_deref(), Some(digest.as_str()));
        for other in [
            format!("{tag}.sig"),
            format!("{tag}x"),
            format!(" {tag}"),
            tag.to_uppercase(),
            tag.replace("sha256-", "sha512-"),
            tag[..tag.len() - 1].to_owned(),
            format!("sha256-{}", "g".repeat(64)),
            "sha256-".to_owned(),
            "latest".to_owned(),
        ] {
            assert_eq!(fallback_subject(&other), None, "{other}");
        }
    }

    #[test]
    fn cosign3s_fallback_index_lists_both_referrers() {
        let referrers = listed(&fixture("fallback-index.json")).unwrap();
        let digests: Vec<&str> = referrers.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(
            digests,
            [
                "sha256:7fe1279c6533996cb2644147996cdc61090df9d1fe25ac9023897b111040b776",
                "sha256:f905b6a984f114523fa42b5994adfb50b53f30f91dab56e58124ac063f424985"
            ]
        );
        assert!(listed(b"{\"layers\":[]}").is_err());
    }

    #[test]
    fn a_referrer_manifest_names_its_bundle_and_predicate() {
        let referrer = bundle_layer(&fixture("signature-manifest.json"), &subject())
            .unwrap()
            .unwrap();
        assert_eq!(
            referrer.layer.digest.as_str(),
            "sha256:71610087782a378ac3e3b5b1de6def10c63e32eedcc09591ed0100bc7817616f"
        );
        assert_eq!(referrer.layer.size, 659);
        assert_eq!(
            referrer.predicate_type.as_deref(),
            Some(SIGNATURE_PREDICATE)
        );
        let attestation = bundle_layer(&fixture("attestation-manifest.json"), &subject())
            .unwrap()
            .unwrap();
        assert_eq!(
            attestation.predicate_type.as_deref(),
            Some("https://cyclonedx.org/bom")
        );
        let other = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            bundle_layer(&fixture("signature-manifest.json"), &other).unwrap(),
            None
        );
    }

    #[test]
    fn a_bundle_opens_to_its_statement_and_signature() {
        let opened = open(&fixture("signature-bundle.json")).unwrap();
        assert_eq!(opened.payload_type, "application/vnd.in-toto+json");
        assert_eq!(opened.signatures.len(), 1);
        let statement: serde_json::Value = serde_json::from_slice(&opened.statement).unwrap();
        assert_eq!(statement["predicateType"], SIGNATURE_PREDICATE);
        assert_eq!(
            format!(
                "sha256:{}",
                statement["subject"][0]["digest"]["sha256"]
                    .as_str()
                    .unwrap()
            ),
            subject()
        );
        let blob = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}"#;
        assert!(open(blob).unwrap_err().contains("sign-blob"));
        let old = br#"{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1"}"#;
        assert!(open(old).unwrap_err().contains("media type"));
    }

    #[test]
    fn a_bundle_names_its_signer_by_the_keys_fingerprint() {
        // cosign 3.1.1's hint, and `openssl pkey -pubin -outform DER |
        // sha256sum` of the fixture's `cosign.pub`.
        let named = signer(&fixture("signature-bundle.json")).unwrap();
        assert_eq!(
            named,
            "sha256:eda96e14c842668182ac7f8a009b7cb0cba732f6f5d0b11f923d84b3310eb35c"
        );
        let pem = String::from_utf8(fixture("cosign.pub")).unwrap();
        let key = crate::supply::key::verifying_key(&pem).unwrap();
        assert_eq!(named, crate::supply::key::fingerprint(&key));
        assert_eq!(signer(&make(b"{}", b"der", "not base64!")), None);
        assert_eq!(signer(&make(b"{}", b"der", "AAAA")), None);
        assert_eq!(signer(b"[]"), None);
    }

    #[test]
    fn what_we_make_reads_back_as_cosign3s_does() {
        let digest = subject();
        let image = Descriptor::new(
            crate::oci::DOCKER_MANIFEST_MEDIA_TYPE,
            Digest::parse(&digest).unwrap(),
            1165,
        );
        let statement = statement(&digest, SIGNATURE_PREDICATE, json!({}));
        let made = make(&statement, b"der", "hint");
        let opened = open(&made).unwrap();
        assert_eq!(opened.statement, statement);
        assert_eq!(opened.signatures, [b"der".to_vec()]);
        assert_eq!(opened.payload_type, IN_TOTO);
        let manifest = referrer(&image, &made, SIGNATURE_PREDICATE, "2026-12-07T00:00:00Z");
        let read = bundle_layer(&manifest.bytes, &digest).unwrap().unwrap();
        assert_eq!(read.layer.digest, Digest::of(&made));
        assert_eq!(read.predicate_type.as_deref(), Some(SIGNATURE_PREDICATE));

        // Into cosign 3's own fallback index: its two entries kept, ours added.
        let index = with_referrer(
            Some(&fixture("fallback-index.json")),
            &manifest,
            SIGNATURE_PREDICATE,
            &[],
        )
        .unwrap();
        let digests: Vec<String> = listed(&index.bytes)
            .unwrap()
            .iter()
            .map(|d| d.digest.as_str().to_owned())
            .collect();
        assert_eq!(digests.len(), 3);
        assert_eq!(digests[2], manifest.digest);
        // Added again: listed once; an old one dropped.
        let old = "sha256:7fe1279c6533996cb2644147996cdc61090df9d1fe25ac9023897b111040b776";
        let again =
            with_referrer(Some(&index.bytes), &manifest, SIGNATURE_PREDICATE, &[old]).unwrap();
        let digests: Vec<String> = listed(&again.bytes)
            .unwrap()
            .iter()
            .map(|d| d.digest.as_str().to_owned())
            .collect();
        assert_eq!(
            digests,
            [
                "sha256:f905b6a984f114523fa42b5994adfb50b53f30f91dab56e58124ac063f424985"
                    .to_owned(),
                manifest.digest.clone()
            ]
        );
        // None before: a new index.
        let fresh = with_referrer(None, &manifest, SIGNATURE_PREDICATE, &[]).unwrap();
        assert_eq!(listed(&fresh.bytes).unwrap().len(), 1);
        assert!(with_referrer(Some(b"{}"), &manifest, SIGNATURE_PREDICATE, &[]).is_err());
    }
}
