//! The Docker Engine via bollard: build context, our own BuildKit session,
//! builds, `docker save` exports turned into OCI images, containers. Its
//! files are private: what the rest of the crate uses is re-exported here.
//!
//! Inside, imports go one way: `client` (the connection, `EngineError`) is
//! the leaf; `build` (what a build is, its options and logs) stands on it;
//! `run` (containers) and `docker` (the builder) on both. What differs
//! between engines (image store, what BuildKit can output) is `store`'s.

mod bridge;
mod build;
mod buildkit;
mod client;
mod context;
mod docker;
mod dockerignore;
mod export;
mod gzip;
mod hashing;
mod local;
mod own;
mod progress;
mod run;
mod store;

pub use build::{BUILDKIT_NETWORKS, BuildSpec, Builder, Built, no_control_api, refused_session};
pub use buildkit::{BuildKitEngine, BuildKitError, BuildRequest, BuildSecrets, EngineAddress};
pub use client::EngineError;
pub use context::{ContextPlan, IdentityTask};
pub use docker::Engine;
pub use export::{
    Blob, BlobEvent, ExportError, KnownLayer, KnownLayers, LayerTap, OciImage, Source,
    image_manifest, known_layers, manifest_annotation, oci_image, oci_image_streamed,
    oci_image_streamed_tapped, oci_image_tapped, pushed_layers, relabelled_config,
};
pub use own::OwnImage;
pub use run::{CopyIn, Exited, RunError, RunSpec, Runner};
pub use store::{Capabilities, ImageStore};
