//! The two ends of a copy as the workflow names them (`from`, `to`,
//! `tags`), checked and opened, and the copy between them.

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::actions::inputs::split_list;
use crate::names::{TAG_RULE, is_tag};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::registry::auth::{Credentials, Login};

use super::select::is_pattern;
use super::{Options, Report, Store};

/// The `from` registry, and the repository (with the tag it may name).
pub fn open_from(
    from: &str,
    credentials: Option<Credentials>,
    timeout: Duration,
) -> anyhow::Result<(Registry, Reference)> {
    let reference = repository("from", from)?;
    let registry = Registry::new(reference.registry(), credentials)?
        .with_login(&Login::SOURCE)
        .with_timeout(timeout)?;
    Ok((registry, reference))
}

/// The `to` registry and repository; tags come from the source.
pub fn open_to(
    to: &str,
    credentials: Option<Credentials>,
    timeout: Duration,
) -> anyhow::Result<(Registry, Reference)> {
    let reference = repository("to", to)?;
    if reference.tag().is_some() {
        bail!("`to`: {to:?} names a tag; give the repository only — the tags are the source's");
    }
    let registry = Registry::new(reference.registry(), credentials)?.with_timeout(timeout)?;
    Ok((registry, reference))
}

/// The repository the input `input` names; a tag may select, a digest not.
pub fn repository(input: &str, value: &str) -> anyhow::Result<Reference> {
    let reference = Reference::parse_exact(value.trim()).with_context(|| {
        format!("`{input}`: {value:?} is not a repository like registry.example/namespace/name")
    })?;
    if reference.digest().is_some() {
        bail!("`{input}`: {value:?} names a digest; name the repository and select with `tags`");
    }
    Ok(reference)
}

/// `tags` as given, else the tag the `from` reference names, else none (all).
pub fn wanted(tags: &[String], named: Option<&str>) -> anyhow::Result<Vec<String>> {
    let given: Vec<String> = tags.iter().flat_map(|t| split_list(t)).collect();
    if let Some(bad) = given.iter().find(|t| !is_pattern(t) && !is_tag(t)) {
        bail!("`tags`: {bad:?} is neither a tag nor a glob pattern; {TAG_RULE}");
    }
    match (given.is_empty(), named) {
        (false, Some(tag)) => {
            bail!("`from` names the tag `{tag}` and `tags` names more; use one of them")
        }
        (true, Some(tag)) => Ok(vec![tag.to_owned()]),
        _ => Ok(given),
    }
}

/// Selects the tags and copies them.
pub async fn copy_wanted(
    from: &Store<'_>,
    to: &Store<'_>,
    wanted: &[String],
    options: &Options,
) -> anyhow::Result<Report> {
    let selection = super::tags_to_copy(from, wanted).await?;
    let report = super::copy(from, to, &selection, options)
        .await
        .with_context(|| {
            format!(
                "copying {} to {} stopped; what was written is whole, and a re-run copies only what is missing",
                from.describe(),
                to.describe()
            )
        })?;
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_from_the_input_or_the_reference_never_both() {
        let given = ["1.*\nlatest".to_owned()];
        assert_eq!(wanted(&given, None).unwrap(), ["1.*", "latest"]);
        assert_eq!(wanted(&[], Some("2.0")).unwrap(), ["2.0"]);
        assert!(wanted(&[], None).unwrap().is_empty());
        let both = wanted(&given, Some("2.0")).unwrap_err().to_string();
        assert!(both.contains("`from` names the tag `2.0`"), "{both}");
        let bad = wanted(&["../x".to_owned()], None).unwrap_err().to_string();
        assert!(bad.starts_with("`tags`: \"../x\""), "{bad}");
    }

    #[test]
    fn a_repository_input_names_no_digest() {
        let digest = format!("r.example/a/b@sha256:{}", "0".repeat(64));
        let err = repository("from", &digest).unwrap_err().to_string();
        assert!(err.contains("names a digest"), "{err}");
        assert_eq!(
            repository("to", " r.example/a/b ").unwrap().repository(),
            "a/b"
        );
    }
}
