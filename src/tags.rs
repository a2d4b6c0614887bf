//! Tag policy (pure): which tags one published image gets.
//!
//! Every image gets the full commit SHA (immutable). `latest` moves only on
//! the default branch or a final release; semantic-version releases get
//! `1.2.3`, `1.2` and `1`, but the floating `1.2` / `1` tags never move to an
//! older version than one already published, and prereleases (a release
//! flagged so, or a version such as `1.2.0-rc.1`) get only their exact
//! version.

use semver::Version;

use crate::names::{TAG_RULE, is_commit_sha, is_tag};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latest {
    /// The default branch or a final release.
    #[default]
    Auto,
    /// Always, except for prereleases.
    Always,
    Never,
}

/// What the tags depend on.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The full 40-character SHA of the commit built.
    pub sha: &'a str,
    /// `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/7/merge`…
    pub git_ref: Option<&'a str>,
    pub default_branch: Option<&'a str>,
    pub pull_request: bool,
    pub version: Option<&'a Version>,
    /// A prerelease gets its exact version tag only, never `latest`.
    pub prerelease: bool,
    pub latest: Latest,
    /// Extra tags the user asked for, already validated.
    pub extra: &'a [String],
    /// Versions already published for this image (from the registry).
    pub published: &'a [Version],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSet {
    /// Pushed first: the immutable tag every other tag is added to.
    pub sha: String,
    /// Every tag, the SHA tag first, without duplicates.
    pub tags: Vec<String>,
    pub latest: bool,
    /// Tags left out on purpose, and why, for the summary.
    pub withheld: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    #[error(
        "{0:?} is not a full commit SHA; the immutable tag is the 40-character SHA of the commit built (GITHUB_SHA, or the `sha` input)"
    )]
    Sha(String),
    #[error("invalid tag {0:?}: {TAG_RULE}; fix the `tags` input")]
    Tag(String),
}

pub fn tags(facts: &Facts<'_>) -> Result<TagSet, TagError> {
    let sha = facts.sha.to_ascii_lowercase();
    if !is_commit_sha(&sha) {
        return Err(TagError::Sha(facts.sha.to_owned()));
    }
    let mut set = TagSet {
        sha: sha.clone(),
        tags: vec![sha],
        latest: false,
        withheld: Vec::new(),
    };
    if let Some(version) = facts.version {
        version_tags(version, facts.prerelease, facts.published, &mut set);
    }
    set.latest = wants_latest(facts, &mut set.withheld);
    if set.latest {
        set.tags.push("latest".into());
    }
    for tag in facts.extra {
        if !is_tag(tag) {
            return Err(TagError::Tag(tag.clone()));
        }
        if !set.tags.contains(tag) {
            set.tags.push(tag.clone());
        }
    }
    Ok(set)
}

fn version_tags(version: &Version, prerelease: bool, published: &[Version], set: &mut TagSet) {
    // `+build` metadata can't stand in a tag and doesn't order versions.
    let exact = Version {
        build: semver::BuildMetadata::EMPTY,
        ..version.clone()
    };
    set.tags.push(exact.to_string());
    if prerelease || !exact.pre.is_empty() {
        set.withheld.push(format!(
            "`{exact}` is a prerelease: no `{}.{}` / `{}` tags",
            exact.major, exact.minor, exact.major
        ));
        return;
    }
    let finals = || published.iter().filter(|v| v.pre.is_empty());
    let minor = format!("{}.{}", exact.major, exact.minor);
    match finals().find(|v| v.major == exact.major && v.minor == exact.minor && **v > exact) {
        Some(newer) => set
            .withheld
            .push(format!("`{minor}` stays on the newer `{newer}`")),
        None => set.tags.push(minor),
    }
    let major = exact.major.to_string();
    match finals().find(|v| v.major == exact.major && **v > exact) {
        Some(newer) => set
            .withheld
            .push(format!("`{major}` stays on the newer `{newer}`")),
        None => set.tags.push(major),
    }
}

fn wants_latest(facts: &Facts<'_>, withheld: &mut Vec<String>) -> bool {
    if facts.latest == Latest::Never {
        return false;
    }
    if facts.prerelease {
        withheld.push(match facts.version {
            Some(version) => format!("`latest`: `{version}` is a prerelease"),
            None => "`latest`: this is a prerelease".into(),
        });
        return false;
    }
    if let Some(version) = facts.version {
        if let Some(newer) = facts
            .published
            .iter()
            .filter(|v| v.pre.is_empty())
            .find(|v| *v > version)
        {
            withheld.push(format!("`latest`: the newer `{newer}` is already released"));
            return false;
        }
    }
    if facts.pull_request {
        withheld.push("`latest`: pull requests never move it".into());
        return false;
    }
    if facts.latest == Latest::Always {
        return true;
    }
    let on_default = match (facts.git_ref, facts.default_branch) {
        (Some(git_ref), Some(default)) => git_ref.strip_prefix("refs/heads/") == Some(default),
        _ => false,
    };
    let release = facts.version.is_some();
    if !on_default && !release {
        withheld.push(match facts.git_ref {
            Some(git_ref) => format!("`latest`: `{git_ref}` is not the default branch"),
            None => "`latest`: no branch to tell whether this is the default branch".into(),
        });
    }
    on_default || release
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn facts<'a>(
        git_ref: &'a str,
        version: Option<&'a Version>,
        published: &'a [Version],
    ) -> Facts<'a> {
        Facts {
            sha: SHA,
            git_ref: Some(git_ref),
            default_branch: Some("main"),
            version,
            published,
            ..Facts::default()
        }
    }

    #[test]
    fn default_branch_gets_sha_and_latest() {
        let set = tags(&facts("refs/heads/main", None, &[])).unwrap();
        assert_eq!(set.tags, [SHA, "latest"]);
        assert_eq!(set.sha, SHA);
        assert!(set.latest);
    }

    #[test]
    fn other_branches_and_pull_requests_get_the_sha_only() {
        let set = tags(&facts("refs/heads/feature", None, &[])).unwrap();
        assert_eq!(set.tags, [SHA]);
        assert_eq!(
            set.withheld,
            ["`latest`: `refs/heads/feature` is not the default branch"]
        );
        let pr = Facts {
            pull_request: true,
            latest: Latest::Always,
            ..facts("refs/pull/7/merge", None, &[])
        };
        assert_eq!(tags(&pr).unwrap().tags, [SHA]);
    }

    #[test]
    fn a_release_gets_semver_tags_and_latest() {
        let version = v("1.2.3");
        let set = tags(&facts(
            "refs/tags/v1.2.3",
            Some(&version),
            &[v("1.2.2"), v("0.9.0")],
        ))
        .unwrap();
        assert_eq!(set.tags, [SHA, "1.2.3", "1.2", "1", "latest"]);
    }

    #[test]
    fn a_prerelease_gets_its_exact_version_only() {
        let version = v("2.0.0-rc.1");
        let set = tags(&Facts {
            latest: Latest::Always,
            prerelease: true,
            ..facts("refs/tags/v2.0.0-rc.1", Some(&version), &[])
        })
        .unwrap();
        assert_eq!(set.tags, [SHA, "2.0.0-rc.1"]);
        assert!(!set.latest);
        assert_eq!(set.withheld.len(), 2, "{:?}", set.withheld);
    }

    #[test]
    fn a_release_flagged_prerelease_gets_its_exact_version_only() {
        let version = v("3.1.0");
        let set = tags(&Facts {
            prerelease: true,
            ..facts("refs/tags/app-v3.1.0", Some(&version), &[])
        })
        .unwrap();
        assert_eq!(set.tags, [SHA, "3.1.0"]);
        assert_eq!(
            set.withheld,
            [
                "`3.1.0` is a prerelease: no `3.1` / `3` tags",
                "`latest`: `3.1.0` is a prerelease"
            ]
        );
    }

    #[test]
    fn a_candidate_declared_final_moves_latest_but_no_floating_tags() {
        let version = v("4.0.0-rc.2");
        let set = tags(&facts("refs/tags/v4.0.0-rc.2", Some(&version), &[])).unwrap();
        assert_eq!(set.tags, [SHA, "4.0.0-rc.2", "latest"]);
    }

    #[test]
    fn floating_tags_and_latest_never_move_back() {
        let version = v("1.1.5");
        let published = [v("1.2.0"), v("1.1.4"), v("2.0.0-beta.1")];
        let set = tags(&facts("refs/tags/app-v1.1.5", Some(&version), &published)).unwrap();
        assert_eq!(set.tags, [SHA, "1.1.5", "1.1"]);
        assert_eq!(
            set.withheld,
            [
                "`1` stays on the newer `1.2.0`",
                "`latest`: the newer `1.2.0` is already released"
            ]
        );
    }

    #[test]
    fn build_metadata_is_dropped_from_tags() {
        let version = v("1.0.0+build.5");
        let set = tags(&facts("refs/tags/v1.0.0+build.5", Some(&version), &[])).unwrap();
        assert_eq!(set.tags[1], "1.0.0");
    }

    #[test]
    fn extra_tags_are_validated_and_deduplicated() {
        let extra = vec!["stable".to_string(), "latest".to_string()];
        let set = tags(&Facts {
            extra: &extra,
            ..facts("refs/heads/main", None, &[])
        })
        .unwrap();
        assert_eq!(set.tags, [SHA, "latest", "stable"]);
        let bad = vec![".hidden".to_string()];
        assert_eq!(
            tags(&Facts {
                extra: &bad,
                ..facts("refs/heads/main", None, &[])
            })
            .unwrap_err(),
            TagError::Tag(".hidden".into())
        );
    }

    #[test]
    fn the_sha_must_be_full() {
        let short = Facts {
            sha: "0123456",
            ..facts("refs/heads/main", None, &[])
        };
        assert_eq!(tags(&short).unwrap_err(), TagError::Sha("0123456".into()));
    }

    #[test]
    fn latest_never_and_always() {
        let never = Facts {
            latest: Latest::Never,
            ..facts("refs/heads/main", None, &[])
        };
        assert_eq!(tags(&never).unwrap().tags, [SHA]);
        let always = Facts {
            latest: Latest::Always,
            ..facts("refs/heads/feature", None, &[])
        };
        assert_eq!(tags(&always).unwrap().tags, [SHA, "latest"]);
    }
}
