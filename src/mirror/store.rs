//! One side of a copy: a repository on a registry, or an image layout.

use std::collections::{BTreeMap, BTreeSet};

use crate::layout::Layout;
use crate::oci::Descriptor;
use crate::registry::mount::Upload;
use crate::registry::stream::BlobStream;
use crate::registry::{Manifest, Registry, referrers};

use super::MirrorError;

pub enum Store<'a> {
    Registry {
        registry: &'a Registry,
        repository: &'a str,
    },
    Layout(&'a Layout),
}

/// How a blob reached the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Moved {
    Present,
    Mounted,
    Sent(u64),
    /// Missing, and left so on a dry run.
    Missing(u64),
}

impl Store<'_> {
    /// As a person would name it: `registry/repository`, or the layout's path.
    pub fn describe(&self) -> String {
        match self {
            Store::Registry {
                registry,
                repository,
            } => format!("{}/{repository}", registry.name()),
            Store::Layout(layout) => layout.root().display().to_string(),
        }
    }

    pub(super) async fn tags(&self) -> Result<Vec<String>, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } => registry.tags(repository).await?,
            Store::Layout(layout) => layout.tags(),
        })
    }

    pub(super) async fn manifest(&self, reference: &str) -> Result<Option<Manifest>, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } => registry.manifest(repository, reference).await?,
            Store::Layout(layout) => layout.manifest(reference)?,
        })
    }

    pub(super) async fn manifest_digest(&self, tag: &str) -> Result<Option<String>, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } => registry.manifest_digest(repository, tag).await?,
            Store::Layout(layout) => layout.manifest_digest(tag),
        })
    }

    pub(super) async fn has_blob(&self, blob: &Descriptor) -> Result<bool, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } => registry.has_blob(repository, &blob.digest).await?,
            Store::Layout(layout) => layout.has_blob(&blob.digest, blob.size)?,
        })
    }

    async fn blob(&self, blob: &Descriptor) -> Result<BlobStream, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } => {
                registry
                    .blob_stream(repository, &blob.digest, blob.size)
                    .await?
            }
            Store::Layout(layout) => layout.blob_stream(&blob.digest, blob.size).await?,
        })
    }

    /// Moves one blob from `source` into this store: mounted when both are
    /// repositories of one registry, else streamed through.
    pub(super) async fn receive(
        &self,
        source: &Store<'_>,
        blob: &Descriptor,
    ) -> Result<Moved, MirrorError> {
        match self {
            Store::Registry {
                registry,
                repository,
            } => {
                let from = match source {
                    Store::Registry {
                        registry: other,
                        repository: from,
                    } if other.name() == registry.name() && from != repository => Some(*from),
                    _ => None,
                };
                match registry
                    .start_upload(repository, &blob.digest, from)
                    .await?
                {
                    Upload::Mounted => Ok(Moved::Mounted),
                    Upload::Session(session) => {
                        let chunks = source.blob(blob).await?;
                        registry
                            .finish_upload(repository, &session, &blob.digest, blob.size, chunks)
                            .await?;
                        Ok(Moved::Sent(blob.size))
                    }
                }
            }
            Store::Layout(layout) => {
                let chunks = source.blob(blob).await?;
                Ok(Moved::Sent(layout.write_blob(&blob.digest, chunks).await?))
            }
        }
    }

    /// Puts a manifest under `reference` (a tag, or its own digest);
    /// whether the registry answered `OCI-Subject`: it has the referrers
    /// API and lists the manifest under its subject. A layout has no API.
    pub(super) async fn put_manifest(
        &self,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<bool, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } if reference == manifest.digest => {
                registry.put_referrer(repository, manifest).await?
            }
            Store::Registry {
                registry,
                repository,
            } => {
                registry
                    .put_manifest(repository, reference, manifest)
                    .await?;
                false
            }
            Store::Layout(layout) => {
                layout.put_manifest(reference, manifest)?;
                false
            }
        })
    }

    /// The index the referrers API answers for `digest`; `None` where
    /// there is no such API (a layout; a registry answering 404).
    pub(super) async fn referrers(&self, digest: &str) -> Result<Option<Vec<u8>>, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } => registry.referrers(repository, digest).await?,
            Store::Layout(_) => None,
        })
    }

    /// What the referrers API lists for each of `subjects` (see
    /// [`referrers::listed`]); `None` where there is no such API.
    pub(super) async fn listed_referrers(
        &self,
        subjects: &BTreeSet<String>,
        concurrency: usize,
    ) -> Result<Option<BTreeMap<String, Vec<Descriptor>>>, MirrorError> {
        Ok(match self {
            Store::Registry {
                registry,
                repository,
            } => referrers::listed(registry, repository, subjects, concurrency).await?,
            Store::Layout(_) => None,
        })
    }

    /// What must happen after the last manifest: a layout's index.
    pub(super) fn finish(&self) -> Result<(), MirrorError> {
        match self {
            Store::Registry { .. } => Ok(()),
            Store::Layout(layout) => Ok(layout.save_index()?),
        }
    }
}
