//! What a registry's OCI 1.1 referrers API (`GET /v2/<name>/referrers/
//! <digest>`) lists for many subjects at once: the one lookup `mirror`,
//! `backup`, `cleanup` and `usage` share. Where a registry has no such
//! API the referrers sit under the fallback tag `sha256-<hex>`, which
//! these commands read as a tag like any other.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use super::{Registry, RegistryError};
use crate::oci::Descriptor;

/// Referrers of one subject read at most: a bound on the requests one
/// answer can cause.
pub const MAX_REFERRERS: usize = 256;

/// The referrers the API lists for each of `subjects` (an empty list for
/// one nothing refers to), by subject; `None` when the registry has no
/// referrers API, which the first subject's answer tells: the others
/// aren't asked then.
///
/// An answer listing more than [`MAX_REFERRERS`] is an error naming the
/// repository and subject, never cut short: a copy would drop signatures,
/// and a cleanup would leave referrers behind or count too few.
pub async fn listed(
    registry: &Registry,
    repository: &str,
    subjects: &BTreeSet<String>,
    concurrency: usize,
) -> Result<Option<BTreeMap<String, Vec<Descriptor>>>, RegistryError> {
    let mut subjects = subjects.iter();
    let Some(first) = subjects.next() else {
        return Ok(Some(BTreeMap::new()));
    };
    let Some(answer) = registry.referrers(repository, first).await? else {
        return Ok(None);
    };
    let mut found = BTreeMap::new();
    found.insert(first.clone(), read(registry, repository, first, &answer)?);
    let rest = subjects.map(|subject| async move {
        let listed = match registry.referrers(repository, subject).await? {
            Some(answer) => read(registry, repository, subject, &answer)?,
            None => Vec::new(),
        };
        Ok::<_, RegistryError>((subject.clone(), listed))
    });
    let rest: Vec<(String, Vec<Descriptor>)> = stream::iter(rest)
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    found.extend(rest);
    Ok(Some(found))
}

/// Why an answer of the referrers API is not read.
#[derive(Debug, PartialEq, Eq)]
enum Unread {
    NotAnIndex,
    TooMany(usize),
}

/// The referrers an answer lists: an OCI index of at most
/// [`MAX_REFERRERS`] entries.
fn entries(answer: &[u8]) -> Result<Vec<Descriptor>, Unread> {
    let listed = crate::oci::children(answer).ok_or(Unread::NotAnIndex)?;
    match listed.len() {
        n if n > MAX_REFERRERS => Err(Unread::TooMany(n)),
        _ => Ok(listed),
    }
}

fn read(
    registry: &Registry,
    repository: &str,
    subject: &str,
    answer: &[u8],
) -> Result<Vec<Descriptor>, RegistryError> {
    entries(answer).map_err(|why| match why {
        Unread::NotAnIndex => RegistryError::Protocol(format!(
            "{} answered the referrers of `{repository}@{subject}` with something that is not an OCI index",
            registry.name()
        )),
        Unread::TooMany(listed) => RegistryError::TooManyReferrers {
            registry: registry.name().to_owned(),
            repository: repository.to_owned(),
            subject: subject.to_owned(),
            listed,
            limit: MAX_REFERRERS,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn index(count: usize) -> String {
        let listed: Vec<String> = (0..count)
            .map(|n| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{n:064x}","size":3}}"#
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            crate::oci::INDEX_MEDIA_TYPE,
            listed.join(",")
        )
    }

    #[test]
    fn an_answer_is_an_index_of_at_most_the_bound_never_cut_short() {
        assert_eq!(entries(index(0).as_bytes()).unwrap(), []);
        let full = entries(index(MAX_REFERRERS).as_bytes()).unwrap();
        assert_eq!(full.len(), MAX_REFERRERS);
        assert_eq!(full[1].digest.as_str(), format!("sha256:{:064x}", 1));
        assert_eq!(
            entries(index(MAX_REFERRERS + 1).as_bytes()),
            Err(Unread::TooMany(MAX_REFERRERS + 1))
        );
        assert_eq!(entries(b"[]"), Err(Unread::NotAnIndex));
        assert_eq!(entries(b"{}"), Err(Unread::NotAnIndex));
    }
}
