//! cosign's key-based formats, as bytes (SIGNATURE_SPEC and ATTESTATION_SPEC
//! of sigstore/cosign; what cosign 2.x writes with `--tlog-upload=false`):
//! the `sha256-<hex>.sig` / `.att` tags beside the image, an OCI manifest
//! whose layers are one signature each, the simple-signing payload, and
//! the DSSE envelope around an in-toto statement. Pure: no I/O.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::oci::{CONFIG_MEDIA_TYPE, Descriptor, Digest, MANIFEST_MEDIA_TYPE};
use crate::registry::{Manifest, sha256_digest};
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The layer annotation holding the base64 DER signature (empty on
/// attestations: theirs is inside the envelope).
pub const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The attestation layer annotation naming the predicate type.
pub const PREDICATE_TYPE: &str = "predicateType";
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";

/// What an attestation says about the image: its predicate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predicate {
    CycloneDx,
    Spdx,
}

impl Predicate {
    /// in-toto's URIs, the ones `cosign attest --type cyclonedx|spdxjson` writes.
    pub fn uri(self) -> &'static str {
        match self {
            Predicate::CycloneDx => "https://cyclonedx.org/bom",
            Predicate::Spdx => "https://spdx.dev/Document",
        }
    }

    /// The SBOM predicate a URI names, if it names one.
    pub fn from_uri(uri: &str) -> Option<Predicate> {
        [Predicate::CycloneDx, Predicate::Spdx]
            .into_iter()
            .find(|p| p.uri() == uri)
    }

    /// `cosign verify-attestation --type` for the same predicate.
    pub fn cosign_type(self) -> &'static str {
        match self {
            Predicate::CycloneDx => "cyclonedx",
            Predicate::Spdx => "spdxjson",
        }
    }
}

/// Where a digest's signatures or attestations live: `sha256-<hex>.<suffix>`.
pub fn tag(digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", digest.replacen(':', "-", 1))
}

/// The digest a `sha256-<hex>.sig` or `.att` tag is about, or a bare
/// `sha256-<hex>` tag (the OCI referrers tag schema: an index of the
/// digest's referrers, where a registry has no referrers API, as GHCR);
/// `None` for any other tag. Such tags follow their image: copied with it,
/// deleted with it.
pub fn attached_to(tag: &str) -> Option<String> {
    let stem = tag
        .strip_suffix(".sig")
        .or_else(|| tag.strip_suffix(".att"))
        .unwrap_or(tag);
    super::bundle::fallback_subject(stem)
}

/// cosign writes go-containerregistry's `Repository.Name()`: Docker Hub as
/// `index.docker.io`. Verifiers don't check it; it is kept for fidelity.
pub fn docker_reference(registry: &str, repository: &str) -> String {
    let registry = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    format!("{registry}/{repository}")
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// The simple-signing payload naming `digest`; field order as Go's
/// encoder writes it, so the bytes equal cosign's.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let document = SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_owned(),
            },
            image: Image {
                docker_manifest_digest: digest.to_owned(),
            },
            kind: SIGNATURE_TYPE.to_owned(),
        },
        optional: None,
    };
    serde_json::to_vec(&document).unwrap_or_default()
}

/// One layer of a `.sig` or `.att` manifest: an OCI descriptor whose
/// annotations carry cosign's signature and predicate type.
pub type Layer = Descriptor;

/// cosign's layers, read and made (inherent methods of [`Descriptor`],
/// kept beside the format they belong to).
impl Descriptor {
    /// A signature layer: `blob` signed, the signature in the annotation.
    pub fn signature(blob: &[u8], signature_der: &[u8]) -> Layer {
        Layer {
            annotations: BTreeMap::from([(SIGNATURE.to_owned(), B64.encode(signature_der))]),
            ..Layer::new(SIMPLE_SIGNING, Digest::of(blob), blob.len() as u64)
        }
    }

    /// An attestation layer: the envelope is the blob and carries its
    /// own signature.
    pub fn attestation(envelope: &[u8], predicate_type: &str) -> Layer {
        Layer {
            annotations: BTreeMap::from([
                (SIGNATURE.to_owned(), String::new()),
                (PREDICATE_TYPE.to_owned(), predicate_type.to_owned()),
            ]),
            ..Layer::new(DSSE_ENVELOPE, Digest::of(envelope), envelope.len() as u64)
        }
    }

    /// The DER signature in the annotation, if it decodes.
    pub fn signature_der(&self) -> Option<Vec<u8>> {
        B64.decode(self.annotations.get(SIGNATURE)?).ok()
    }

    pub fn predicate_type(&self) -> Option<&str> {
        self.annotations.get(PREDICATE_TYPE).map(String::as_str)
    }
}

#[derive(Serialize, Deserialize)]
struct SignatureManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Layer>,
}

/// The layers of a `.sig`/`.att` manifest as the registry holds it.
pub fn layers(manifest: &Manifest) -> Result<Vec<Layer>, String> {
    serde_json::from_slice::<SignatureManifest>(&manifest.bytes)
        .map(|m| m.layers)
        .map_err(|e| format!("it is not an image manifest with layers ({e})"))
}

/// A signatures manifest: its bytes, and the config blob it names.
pub struct Built {
    pub manifest: Manifest,
    pub config: Vec<u8>,
}

/// The manifest holding `layers`, with the config cosign writes (verifiers
/// ignore it; its diff_ids are the layer digests).
pub fn manifest(layers: Vec<Layer>) -> Built {
    let config = serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.as_str()).collect::<Vec<_>>()},
        "config": {},
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let document = SignatureManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        config: Descriptor::new(CONFIG_MEDIA_TYPE, Digest::of(&config), config.len() as u64),
        layers,
    };
    let bytes = serde_json::to_vec(&document).unwrap_or_default();
    Built {
        manifest: Manifest {
            digest: sha256_digest(&bytes),
            bytes,
            media_type: MANIFEST_MEDIA_TYPE.to_owned(),
        },
        config,
    }
}

/// DSSE's pre-authentication encoding: what an envelope's signature signs.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub kind: String,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub subject: Vec<Subject>,
    pub predicate: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Subject {
    /// cosign 3's statements name the digest only.
    #[serde(default)]
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

/// The in-toto statement that `predicate` (an SBOM, a provenance) of
/// `predicate_type` is about `digest`.
pub fn statement(
    docker_reference: &str,
    digest: &str,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Vec<u8> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    let document = Statement {
        kind: STATEMENT_TYPE.to_owned(),
        predicate_type: predicate_type.to_owned(),
        subject: vec![Subject {
            name: docker_reference.to_owned(),
            digest: BTreeMap::from([(algorithm.to_owned(), hex.to_owned())]),
        }],
        predicate,
    };
    serde_json::to_vec(&document).unwrap_or_default()
}

/// What an attestation's signature covers: the PAE of the statement.
pub fn envelope_message(statement: &[u8]) -> Vec<u8> {
    pae(IN_TOTO, statement)
}

/// The envelope around `statement`, with its signature.
pub fn envelope(statement: &[u8], signature_der: &[u8]) -> Vec<u8> {
    let document = Envelope {
        payload_type: IN_TOTO.to_owned(),
        payload: B64.encode(statement),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: B64.encode(signature_der),
        }],
    };
    serde_json::to_vec(&document).unwrap_or_default()
}

/// An envelope read back: its statement bytes and DER signatures.
pub fn open_envelope(bytes: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| format!("it is not a DSSE envelope ({e})"))?;
    if envelope.payload_type != IN_TOTO {
        return Err(format!(
            "its payload type is {:?}, not {IN_TOTO}",
            envelope.payload_type
        ));
    }
    let statement = B64
        .decode(&envelope.payload)
        .map_err(|_| "its payload is not base64".to_owned())?;
    let signatures = envelope
        .signatures
        .iter()
        .filter_map(|s| B64.decode(&s.sig).ok())
        .collect();
    Ok((statement, signatures))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn tags_sit_beside_the_digest() {
        assert_eq!(
            tag(DIGEST, "sig"),
            "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig"
        );
        assert_eq!(
            docker_reference("docker.io", "ns/app"),
            "index.docker.io/ns/app"
        );
        assert_eq!(
            docker_reference("127.0.0.1:5000", "ns/app"),
            "127.0.0.1:5000/ns/app"
        );
    }

    #[test]
    fn attached_tags_name_their_digest() {
        assert_eq!(attached_to(&tag(DIGEST, "sig")).as_deref(), Some(DIGEST));
        assert_eq!(attached_to(&tag(DIGEST, "att")).as_deref(), Some(DIGEST));
        let referrers = DIGEST.replacen(':', "-", 1);
        assert_eq!(attached_to(&referrers).as_deref(), Some(DIGEST));
        for other in [
            "latest",
            "sha256-0123.sig",
            &tag(DIGEST, "sbom"),
            &tag(DIGEST, "sig").to_uppercase(),
            &tag(DIGEST, "sig").replace("sha256-", "sha512-"),
        ] {
            assert_eq!(attached_to(other), None, "{other}");
        }
    }

    #[test]
    fn the_payload_is_cosigns_bytes() {
        assert_eq!(
            String::from_utf8(payload("127.0.0.1:5000/ns/app", DIGEST)).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/ns/app"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
    }

    #[test]
    fn the_manifest_and_config_are_cosigns_shape() {
        let blob = payload("r/ns/app", DIGEST);
        let layer = Layer::signature(&blob, b"der");
        let built = manifest(vec![layer.clone()]);
        let config = String::from_utf8(built.config.clone()).unwrap();
        assert_eq!(
            config,
            format!(
                r#"{{"architecture":"","config":{{}},"created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"diff_ids":["{}"],"type":"layers"}}}}"#,
                layer.digest
            )
        );
        let json: serde_json::Value = serde_json::from_slice(&built.manifest.bytes).unwrap();
        assert_eq!(json["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(json["config"]["digest"], sha256_digest(&built.config));
        assert_eq!(json["layers"][0]["mediaType"], SIMPLE_SIGNING);
        assert_eq!(
            json["layers"][0]["annotations"][SIGNATURE],
            B64.encode(b"der")
        );
        assert_eq!(layers(&built.manifest).unwrap(), vec![layer]);
        assert_eq!(built.manifest.digest, sha256_digest(&built.manifest.bytes));
    }

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
        );
    }

    #[test]
    fn an_envelope_round_trips_its_statement() {
        let statement = statement(
            "r/ns/app",
            DIGEST,
            Predicate::CycloneDx.uri(),
            serde_json::json!({"specVersion": "1.6"}),
        );
        let json: serde_json::Value = serde_json::from_slice(&statement).unwrap();
        assert_eq!(json["_type"], STATEMENT_TYPE);
        assert_eq!(json["predicateType"], "https://cyclonedx.org/bom");
        assert_eq!(json["subject"][0]["digest"]["sha256"], &DIGEST[7..]);
        let sealed = envelope(&statement, b"sig");
        let (read, signatures) = open_envelope(&sealed).unwrap();
        assert_eq!(read, statement);
        assert_eq!(signatures, vec![b"sig".to_vec()]);
        let layer = Layer::attestation(&sealed, Predicate::Spdx.uri());
        assert_eq!(layer.predicate_type(), Some("https://spdx.dev/Document"));
        assert_eq!(layer.annotations[SIGNATURE], "");
    }
}
