//! The OCI image-spec vocabulary, written once (pure): media types,
//! digests, descriptors and image indexes. Platforms are `platform`'s.
//!
//! Our own module rather than the `oci-spec` crate: that crate brings
//! eighteen crates (regex, derive_builder, darling, strum, getset,
//! const_format …) to model far more than we read, accepts digests this
//! crate can't verify (sha512, upper case), and its `Platform` lacks the
//! check of what images are built for.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::names::{DIGEST_RULE, is_digest};
use crate::platform::Platform;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
/// Docker's name for the same gzip layer blobs.
pub const DOCKER_LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Every manifest form an image can have (the `Accept` of a manifest
/// request); a registry picks what it holds.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// Whether a media type names a list of images (an OCI index or Docker's
/// manifest list).
pub fn is_index_media_type(media_type: &str) -> bool {
    [INDEX_MEDIA_TYPE, DOCKER_MANIFEST_LIST_MEDIA_TYPE].contains(&media_type)
}

/// `sha256:` and 64 lower-case hex digits: checked when made (by
/// [`names::is_digest`](crate::names::is_digest), the one rule), so a value
/// of this type can go into a URL or a path as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Text that is not a digest; says what one is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a digest ({DIGEST_RULE})")]
pub struct NotADigest(pub String);

impl Digest {
    pub fn parse(text: &str) -> Result<Self, NotADigest> {
        if is_digest(text) {
            Ok(Digest(text.to_owned()))
        } else {
            Err(NotADigest(text.to_owned()))
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::of_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest of what `hasher` was fed.
    pub fn of_hasher(hasher: Sha256) -> Self {
        let mut digest = String::with_capacity(71);
        digest.push_str("sha256:");
        for b in hasher.finalize().iter() {
            digest.push_str(&format!("{b:02x}"));
        }
        Digest(digest)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits: a blob's file name.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl TryFrom<String> for Digest {
    type Error = NotADigest;

    fn try_from(text: String) -> Result<Self, NotADigest> {
        if is_digest(&text) {
            Ok(Digest(text))
        } else {
            Err(NotADigest(text))
        }
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.0
    }
}

impl std::ops::Deref for Digest {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Digest {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Digest> for String {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.0
    }
}

/// One referenced object: a child manifest, a config or a layer. Fields in
/// the image spec's order, which is the order serialised: the bytes of a
/// manifest made here must be the same every time for its digest to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// Where else the blob may be fetched: such a layer is not one a
    /// registry holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// A platform that is not one (no `os`, say) counts as none.
    #[serde(
        default,
        deserialize_with = "platform_if_one",
        skip_serializing_if = "Option::is_none"
    )]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The same descriptor for an image of `platform` (an index's child).
    pub fn for_platform(self, platform: Platform) -> Self {
        Descriptor {
            platform: Some(platform),
            ..self
        }
    }
}

fn platform_if_one<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Platform>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Maybe {
        Platform(Platform),
        Other(IgnoredAny),
    }
    Ok(match Maybe::deserialize(deserializer)? {
        Maybe::Platform(platform) => Some(platform),
        Maybe::Other(_) => None,
    })
}

/// A descriptor as a document from outside lists it: one that is not a
/// descriptor (its digest is not one, say) is kept in its place as
/// [`Listed::Invalid`], for readers that pass such entries over.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Listed {
    Valid(Descriptor),
    Invalid(IgnoredAny),
}

impl Listed {
    pub fn valid(self) -> Option<Descriptor> {
        match self {
            Listed::Valid(descriptor) => Some(descriptor),
            Listed::Invalid(_) => None,
        }
    }
}

/// An OCI image index (or Docker manifest list): a list of manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An OCI image index over `manifests`, in the order given.
    pub fn of(manifests: Vec<Descriptor>) -> Self {
        Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
            manifests,
            annotations: BTreeMap::new(),
        }
    }

    /// The same index with `annotations` on it.
    pub fn annotated(self, annotations: BTreeMap<String, String>) -> Self {
        Index {
            annotations,
            ..self
        }
    }

    /// Compact JSON: the same index always makes the same bytes, so a
    /// re-run makes the same digest.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The children an index lists, each that is not a descriptor passed over
/// (its digest would be requested next); `None` when `bytes` is not an
/// index.
pub fn children(bytes: &[u8]) -> Option<Vec<Descriptor>> {
    #[derive(Deserialize)]
    struct Children {
        manifests: Option<Vec<Listed>>,
    }
    let listed = serde_json::from_slice::<Children>(bytes).ok()?.manifests?;
    Some(listed.into_iter().filter_map(Listed::valid).collect())
}

/// The child an index offers for `wanted`: the first that serves it,
/// skipping entries without a platform (attestations, signatures) and
/// entries that are not descriptors.
pub fn child_for(index: &[u8], wanted: &Platform) -> Option<Digest> {
    children(index)?
        .into_iter()
        .find(|c| c.platform.as_ref().is_some_and(|p| p.serves(wanted)))
        .map(|c| c.digest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    fn d(hex_digit: char) -> Digest {
        Digest::parse(&format!("sha256:{}", hex_digit.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn a_digest_is_made_only_from_a_digest() {
        let text = format!("sha256:{}", "a".repeat(64));
        let digest = Digest::parse(&text).unwrap();
        assert_eq!(digest, text);
        assert_eq!(digest.hex(), "a".repeat(64));
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            "sha256:../../etc".to_owned(),
            "latest".to_owned(),
        ] {
            assert_eq!(Digest::parse(&bad), Err(NotADigest(bad.clone())));
            let json = serde_json::to_vec(&bad).unwrap();
            let error = serde_json::from_slice::<Digest>(&json).unwrap_err();
            assert!(error.to_string().contains(DIGEST_RULE), "{error}");
        }
        assert_eq!(
            Digest::of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_accepted_manifest_types_are_the_four_forms() {
        let listed: Vec<&str> = MANIFEST_TYPES.split(", ").collect();
        assert_eq!(
            listed,
            [
                MANIFEST_MEDIA_TYPE,
                INDEX_MEDIA_TYPE,
                DOCKER_MANIFEST_MEDIA_TYPE,
                DOCKER_MANIFEST_LIST_MEDIA_TYPE
            ]
        );
        assert!(is_index_media_type(DOCKER_MANIFEST_LIST_MEDIA_TYPE));
        assert!(!is_index_media_type(MANIFEST_MEDIA_TYPE));
    }

    #[test]
    fn an_index_lists_its_entries_with_their_platforms_and_picks_children() {
        let entry = |digest: Digest, platform: &str| {
            Descriptor::new(MANIFEST_MEDIA_TYPE, digest, 7).for_platform(p(platform))
        };
        let (a, b) = (d('a'), d('b'));
        let index = Index::of(vec![
            entry(a.clone(), "linux/amd64"),
            entry(b.clone(), "linux/arm64"),
        ]);
        let bytes = index.to_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{INDEX_MEDIA_TYPE}","manifests":[{{"mediaType":"{MANIFEST_MEDIA_TYPE}","digest":"{a}","size":7,"platform":{{"os":"linux","architecture":"amd64"}}}},{{"mediaType":"{MANIFEST_MEDIA_TYPE}","digest":"{b}","size":7,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
            )
        );
        assert_eq!(index.to_bytes(), bytes, "the same bytes every time");
        let annotated = index
            .clone()
            .annotated(BTreeMap::from([("k".to_owned(), "v".to_owned())]))
            .to_bytes();
        assert_eq!(
            annotated,
            [&bytes[..bytes.len() - 1], br#","annotations":{"k":"v"}}"#].concat(),
            "annotations last, as the image spec orders an index's fields"
        );
        assert_eq!(child_for(&bytes, &p("linux/arm64")), Some(b.clone()));
        assert_eq!(child_for(&bytes, &p("linux/arm64/v8")), Some(b.clone()));
        assert_eq!(child_for(&bytes, &p("linux/amd64")), Some(a));
        assert_eq!(child_for(&bytes, &p("linux/s390x")), None);
        let mut lying: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        lying["manifests"][0]["digest"] = "latest".into();
        lying["manifests"][1]["platform"] =
            serde_json::json!({"os": "linux", "architecture": "amd64"});
        let lying = serde_json::to_vec(&lying).unwrap();
        assert_eq!(child_for(&lying, &p("linux/amd64")), Some(b));
        assert_eq!(children(br#"{"schemaVersion":2,"layers":[]}"#), None);
    }

    #[test]
    fn a_real_index_picks_by_variant() {
        let bytes = crate::fixtures::fixture_bytes("oci/docker-manifest-list-ubuntu-17.10.json");
        let v7 = child_for(&bytes, &p("linux/arm/v7")).unwrap();
        let amd64 = child_for(&bytes, &p("linux/amd64")).unwrap();
        assert_ne!(v7, amd64);
    }

    #[test]
    fn a_descriptor_reads_what_it_knows_and_keeps_annotations() {
        let text = format!(
            r#"{{"mediaType":"m","digest":"{}","size":3,"annotations":{{"k":"v"}},"data":"x"}}"#,
            d('c')
        );
        let read: Descriptor = serde_json::from_str(&text).unwrap();
        assert_eq!(read.annotations["k"], "v");
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            format!(
                r#"{{"mediaType":"m","digest":"{}","size":3,"annotations":{{"k":"v"}}}}"#,
                d('c')
            )
        );
    }
}
