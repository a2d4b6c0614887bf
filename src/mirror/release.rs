//! `publish`'s `mirror-to`: a release copied from the registry it was
//! pushed to onto further registries.

use crate::actions::inputs::split_list;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::registry::auth::{Credentials, Login};

use super::endpoints::repository;
use super::summary::Mirrored;
use super::{Options, Store};

/// `publish` has no `concurrency` input of its own: the `mirror` default.
const RELEASE_MIRROR_CONCURRENCY: usize = 8;

/// The release's tags copied from `repository` on `primary` onto each
/// `mirror-to` target in turn: `registry` (same repository path) or
/// `registry/namespace/name`. A target that fails is recorded, not
/// raised: the caller decides what it means for the job.
pub async fn mirror_release(
    mirror_to: &[String],
    credentials: Option<Credentials>,
    primary: &Registry,
    repository: &str,
    tags: &[String],
) -> anyhow::Result<Vec<Mirrored>> {
    let mut targets = Vec::new();
    for given in mirror_to.iter().flat_map(|t| split_list(t)) {
        let name = if given.contains('/') {
            given
        } else {
            format!("{given}/{repository}")
        };
        let reference = self::repository("mirror-to", &name)?;
        targets.push((
            name,
            Registry::new(reference.registry(), credentials.clone())?
                .with_login(&Login::MIRROR)
                .with_timeout(primary.timeout())?,
            reference,
        ));
    }
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let from = Store::Registry {
        registry: primary,
        repository,
    };
    let options = Options {
        concurrency: RELEASE_MIRROR_CONCURRENCY,
        dry_run: false,
    };
    // With the signatures and attestations of the release's digest. The
    // release is pushed by now: a failure here is every mirror's, recorded.
    let selection = match super::tags_to_copy(&from, tags).await {
        Ok(selection) => selection,
        Err(e) => {
            let failed = |(target, _, _): &(String, Registry, Reference)| Mirrored {
                target: target.clone(),
                result: Err(e.to_string()),
            };
            return Ok(targets.iter().map(failed).collect());
        }
    };
    let mut mirrored = Vec::new();
    for (target, registry, reference) in &targets {
        let to = Store::Registry {
            registry,
            repository: reference.repository(),
        };
        let result = super::copy(&from, &to, &selection, &options)
            .await
            .map_err(|e| e.to_string());
        mirrored.push(Mirrored {
            target: target.clone(),
            result,
        });
    }
    Ok(mirrored)
}
