//! Release tags (pure): what a tag releases, at which version, and whether
//! the release is a prerelease. Tag pushes, `release` events and the
//! `release-tag` input all read tags this one way.

use semver::Version;

/// The tag forms a release may use, for error messages.
pub const FORMS: &str =
    "`v<semver>` or `<semver>` (every image) or `<image>-v<semver>` (one image)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTag {
    pub tag: String,
    /// `None` for `v<semver>`: every image.
    pub image: Option<String>,
    pub version: Version,
}

impl ReleaseTag {
    /// `None` when `tag` is none of the forms for any of `image_names`. The
    /// longest matching name wins, so `api-v2-v1.0.0` is `api-v2` at 1.0.0.
    /// A bare `1.2.3` counts as `v1.2.3`: GitHub's and Forgejo's release
    /// forms suggest it, and metadata-action's semver reads both.
    pub fn parse(tag: &str, image_names: &[&str]) -> Option<Self> {
        let version = |v: &str| Version::parse(v).ok();
        if let Some(version) = version(tag.strip_prefix('v').unwrap_or(tag)) {
            return Some(ReleaseTag {
                tag: tag.to_owned(),
                image: None,
                version,
            });
        }
        let mut names = image_names.to_vec();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        names.into_iter().find_map(|name| {
            let version = tag
                .strip_prefix(name)?
                .strip_prefix("-v")
                .and_then(version)?;
            Some(ReleaseTag {
                tag: tag.to_owned(),
                image: Some(name.to_owned()),
                version,
            })
        })
    }

    /// The tag a `refs/tags/…` ref names, parsed for one image.
    pub fn from_ref(git_ref: &str, image: &str) -> Option<Self> {
        Self::parse(git_ref.strip_prefix("refs/tags/")?, &[image])
    }

    pub fn releases(&self, image: &str) -> bool {
        self.image.as_deref().is_none_or(|name| name == image)
    }
}

pub fn not_a_release_tag(tag: &str) -> String {
    format!("tag `{tag}` is not a release tag: releases are tagged {FORMS}")
}

/// The `prerelease` input (`Some` when set to `true` or `false`) wins;
/// otherwise a release flagged prerelease is one, and so is a version with
/// a pre-release part (`1.2.0-rc.1`) even when nobody flagged it, so that
/// `latest` never lands on a release candidate unasked.
pub fn is_prerelease(input: Option<bool>, release_flag: Option<bool>, version: &Version) -> bool {
    input.unwrap_or_else(|| release_flag == Some(true) || !version.pre.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn both_forms_parse_and_the_longest_name_wins() {
        let names = ["api", "api-v2", "web"];
        let every = ReleaseTag::parse("v1.2.3", &names).unwrap();
        assert_eq!((every.image, every.version), (None, v("1.2.3")));
        let bare = ReleaseTag::parse("0.0.1", &names).unwrap();
        assert_eq!((bare.image, bare.version), (None, v("0.0.1")));
        let one = ReleaseTag::parse("api-v2-v1.0.0-rc.1", &names).unwrap();
        assert_eq!(
            (one.image.as_deref(), one.version),
            (Some("api-v2"), v("1.0.0-rc.1"))
        );
        for tag in [
            "1.2",
            "vv1.2.3",
            "example",
            "v1",
            "db-v1.0.0",
            "api-1.0.0",
            "apiv1.0.0",
        ] {
            assert_eq!(ReleaseTag::parse(tag, &names), None, "{tag}");
        }
    }

    #[test]
    fn refs_name_tags_only() {
        let tag = ReleaseTag::from_ref("refs/tags/app-v2.0.0", "app").unwrap();
        assert!(tag.releases("app") && !tag.releases("web"));
        assert_eq!(ReleaseTag::from_ref("refs/heads/v1.2.3", "app"), None);
        assert_eq!(ReleaseTag::from_ref("refs/tags/web-v2.0.0", "app"), None);
        assert!(
            ReleaseTag::from_ref("refs/tags/v1.0.0", "app")
                .unwrap()
                .releases("web")
        );
    }

    #[test]
    fn prerelease_input_then_flag_then_version() {
        let final_version = v("1.2.3");
        let rc = v("1.2.3-rc.1");
        assert!(!is_prerelease(None, None, &final_version));
        assert!(is_prerelease(None, None, &rc));
        assert!(is_prerelease(None, Some(true), &final_version));
        assert!(is_prerelease(None, Some(false), &rc));
        assert!(is_prerelease(Some(true), Some(false), &final_version));
        assert!(!is_prerelease(Some(false), Some(true), &rc));
    }
}
