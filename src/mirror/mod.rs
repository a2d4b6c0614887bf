//! Copies images between stores — registries and OCI image layouts — with
//! their digests unchanged: manifest bytes are moved as they are, indexes
//! with all their children, blobs streamed and verified on the way.
//!
//! A copy is planned before anything is written: every selected tag's
//! manifest tree is read first, then the blobs the target lacks are moved
//! (each once, however many tags share it), then the manifests, children
//! before the index or tag that names them. An interrupted copy leaves only
//! whole blobs behind, and a re-run moves only what is still missing.

mod copy;
pub mod endpoints;
pub mod referrers;
pub mod release;
pub mod select;
mod store;
pub mod summary;

pub use copy::{Listed, Options, ReferrerCopy, Report, State, TagCopy, copy};
pub use store::Store;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::layout::LayoutError;
use crate::registry::{Manifest, RegistryError};
use crate::supply::cosign::attached_to;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Select(#[from] select::SelectError),
    #[error("{store} has no tag `{tag}`; check `tags` against the tags it lists")]
    NoSuchTag { store: String, tag: String },
    #[error(
        "{store} lists manifest {digest} in {parent} but doesn't hold it; nothing of `{tag}` was copied"
    )]
    MissingChild {
        store: String,
        tag: String,
        parent: String,
        digest: String,
    },
    #[error("the referrers of {subject} on {store}: {why}")]
    Referrers {
        store: String,
        subject: String,
        why: String,
    },
    #[error(
        "`{tag}` on {store} nests more than {limit} manifests; refusing to copy what looks like a loop"
    )]
    TooDeep {
        store: String,
        tag: String,
        limit: usize,
    },
}

impl MirrorError {
    /// How long to wait before starting a blob over after this error, or
    /// `None` when it is an answer rather than a dropped connection or a
    /// registry that fell over mid-blob.
    fn retry_pause(&self, attempt: u32) -> Option<Duration> {
        match self {
            MirrorError::Registry(e) => e.retry_pause(attempt),
            _ => None,
        }
    }
}

/// The tags a copy takes ([`tags_to_copy`]), with the manifests read to
/// find their signatures: the copy plans from those rather than read them
/// again.
#[derive(Debug)]
pub struct Selection {
    pub tags: Vec<String>,
    read: HashMap<String, Manifest>,
}

impl Selection {
    /// The manifest `tag` named when it was chosen, if it was read then.
    fn read(&self, tag: &str) -> Option<&Manifest> {
        self.read.get(tag)
    }
}

/// The tags to copy from `source`: `wanted` as given (globs expanded
/// against its tag list), or every tag it has when `wanted` is empty; and
/// with them the cosign signatures and attestations (`sha256-<hex>.sig`,
/// `.att`, and the `sha256-<hex>` index of bundle referrers) of the
/// digests they name and of their platform images, so a signed image stays verifiable
/// where it is copied to, whatever `tags` selects.
pub async fn tags_to_copy(source: &Store<'_>, wanted: &[String]) -> Result<Selection, MirrorError> {
    let available = source.tags().await?;
    let tags = select::select(wanted, Some(&available), &source.describe())?;
    let mut selection = Selection {
        tags,
        read: HashMap::new(),
    };
    add_attachments(source, &mut selection, &available).await?;
    Ok(selection)
}

/// Adds the `.sig`/`.att` tags and referrers fallback indexes
/// (`sha256-<hex>`, cosign 3's bundles) in `available` about the digests
/// the selected tags name, and the platform images of those that are
/// indexes, that the selection doesn't hold yet; keeps the manifests read
/// on the way.
async fn add_attachments(
    source: &Store<'_>,
    selection: &mut Selection,
    available: &[String],
) -> Result<(), MirrorError> {
    let attached: BTreeSet<&str> = available
        .iter()
        .map(String::as_str)
        .filter(|t| attached_to(t).is_some())
        .collect();
    if attached.is_empty() {
        return Ok(());
    }
    let mut extra: Vec<String> = Vec::new();
    for tag in selection.tags.iter().filter(|t| attached_to(t).is_none()) {
        let Some(top) = source.manifest(tag).await? else {
            continue;
        };
        let names = referrers::subjects(&top).into_iter().flat_map(|digest| {
            ["sig", "att"]
                .map(|suffix| crate::supply::cosign::tag(&digest, suffix))
                .into_iter()
                .chain(std::iter::once(crate::supply::bundle::fallback_tag(
                    &digest,
                )))
        });
        for name in names {
            if attached.contains(name.as_str())
                && !selection.tags.contains(&name)
                && !extra.contains(&name)
            {
                extra.push(name);
            }
        }
        selection.read.insert(tag.clone(), top);
    }
    selection.tags.extend(extra);
    Ok(())
}
