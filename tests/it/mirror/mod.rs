//! `mirror`, `backup` and `restore` against the real registries: images
//! made of random layers are pushed straight through the crate's client,
//! copied, and compared byte for byte on the other side.

mod copy;
mod faults;

mod layout;
mod publish;
mod referrers;

use bytes::Bytes;
use registry_action::registry::auth::Credentials;
use registry_action::registry::{Manifest, Registry, sha256_digest};
use serde_json::json;

use crate::support::run::{Action, Ran};
use crate::support::services::services;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A repository name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "mirror-it/{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub fn open() -> Registry {
    Registry::new(&services().registry_open, None).unwrap()
}

pub fn basic() -> Registry {
    let s = services();
    Registry::new(
        &s.registry_basic,
        Some(Credentials {
            username: s.basic_user.clone(),
            password: s.basic_password.clone(),
        }),
    )
    .unwrap()
}

pub fn token() -> Registry {
    let s = services();
    Registry::new(
        &s.registry_token,
        Some(Credentials {
            username: s.token_user.clone(),
            password: s.token_password.clone(),
        }),
    )
    .unwrap()
}

#[path = "../../../benches/common/random.rs"]
mod random;

/// Incompressible bytes, different for every seed.
pub fn random_layer(seed: u64, size: usize) -> Vec<u8> {
    random::random_bytes(0, seed, size)
}

/// Pushes an image of `layers` (and a config naming `arch`) as `tag`.
pub async fn push_image(
    registry: &Registry,
    repository: &str,
    tag: &str,
    arch: &str,
    layers: &[Vec<u8>],
) -> Manifest {
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let mut descriptors = Vec::new();
    for blob in layers.iter().chain([&config]) {
        let digest = sha256_digest(blob);
        if !registry.has_blob(repository, &digest).await.unwrap() {
            registry
                .upload_blob(repository, &digest, Bytes::from(blob.clone()))
                .await
                .unwrap();
        }
        descriptors.push(json!({"mediaType": LAYER, "digest": digest, "size": blob.len()}));
    }
    let mut config_descriptor = descriptors.pop().unwrap();
    config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config_descriptor, "layers": descriptors,
    }))
    .unwrap();
    put(registry, repository, tag, bytes, OCI_MANIFEST).await
}

/// Pushes an index of `children` (already in the repository) as `tag`.
pub async fn push_index(
    registry: &Registry,
    repository: &str,
    tag: &str,
    children: &[(&Manifest, &str)],
) -> Manifest {
    let manifests: Vec<_> = children
        .iter()
        .map(|(m, arch)| {
            json!({"mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len(),
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    // Pretty-printed: a copy that re-serialised would change the digest.
    let bytes = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
    }))
    .unwrap();
    put(registry, repository, tag, bytes, OCI_INDEX).await
}

async fn put(
    registry: &Registry,
    repository: &str,
    tag: &str,
    bytes: Vec<u8>,
    media_type: &str,
) -> Manifest {
    let manifest = Manifest {
        digest: sha256_digest(&bytes),
        bytes,
        media_type: media_type.into(),
    };
    registry
        .put_manifest(repository, tag, &manifest)
        .await
        .unwrap();
    manifest
}

/// Every blob and child manifest `manifest` names is in `to` with the same
/// bytes as in `from`, and the manifest itself is, under `reference`.
pub async fn assert_same_tree(from: (&Registry, &str), to: (&Registry, &str), reference: &str) {
    let source = from.0.manifest(from.1, reference).await.unwrap().unwrap();
    let target =
        to.0.manifest(to.1, reference)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}/{}:{reference} is missing", to.0.name(), to.1));
    assert_eq!(target.bytes, source.bytes, "manifest {reference} differs");
    assert_eq!(target.digest, source.digest);
    let value: serde_json::Value = serde_json::from_slice(&source.bytes).unwrap();
    for child in value["manifests"].as_array().into_iter().flatten() {
        let digest = child["digest"].as_str().unwrap();
        Box::pin(assert_same_tree(from, to, digest)).await;
    }
    let blobs = value["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(value.get("config"));
    for blob in blobs {
        let digest = blob["digest"].as_str().unwrap();
        let size = blob["size"].as_u64().unwrap();
        assert_eq!(
            to.0.blob(to.1, digest, size).await.unwrap(),
            from.0.blob(from.1, digest, size).await.unwrap(),
            "blob {digest}"
        );
    }
}

/// The binary as a runner starts it, with `inputs`.
pub async fn run(inputs: &[(&str, &str)]) -> Ran {
    let workspace = tempfile::tempdir().unwrap();
    run_in(workspace.path(), inputs).await
}

/// [`run`] in `workspace`, where the paths given must lie.
pub async fn run_in(workspace: &std::path::Path, inputs: &[(&str, &str)]) -> Ran {
    let mut action = Action::github(workspace);
    for (name, value) in inputs {
        action = action.input(name, value);
    }
    action.run_async().await
}

/// [`run`] with owned values.
pub async fn run_owned(inputs: &[(&str, String)]) -> Ran {
    let workspace = tempfile::tempdir().unwrap();
    run_owned_in(workspace.path(), inputs).await
}

/// [`run_in`] with owned values.
pub async fn run_owned_in(workspace: &std::path::Path, inputs: &[(&str, String)]) -> Ran {
    let borrowed: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_in(workspace, &borrowed).await
}

/// The `copied` output: tag → digest.
pub fn copied(ran: &Ran) -> serde_json::Map<String, serde_json::Value> {
    let text = ran
        .outputs
        .get("copied")
        .unwrap_or_else(|| panic!("no `copied`\n{ran}"));
    serde_json::from_str(text).unwrap()
}

pub fn output(ran: &Ran, name: &str) -> u64 {
    ran.outputs
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}`\n{ran}"))
        .parse()
        .unwrap()
}
