//! The names that go into registry URLs and file paths, by the OCI
//! distribution spec's grammar: repository names, tags and digests — and
//! Git's commit SHAs, which become tags. One validator each, used wherever
//! such a name comes in (an input, a registry's or Docker Hub's listing, an
//! archive's `index.json`, a manifest), so `../`, `?`, `%` or a line break
//! never reaches a request or a path.
//!
//! Digests are `sha256:` and 64 lower-case hex digits, nothing else: that is
//! what registries write and the one algorithm this crate verifies, and the
//! image spec allows only lower case for it, so upper case is refused rather
//! than folded (a folded digest would name bytes it was never checked
//! against).

/// The longest repository name; with its registry in front it must still
/// fit, as Docker's reference grammar counts.
pub const NAME_MAX: usize = 255;
/// The longest tag.
pub const TAG_MAX: usize = 128;

/// What a repository name is, for errors and warnings.
pub const REPOSITORY_RULE: &str = "an OCI repository name is path components of lower-case letters and digits joined by \".\", \"_\", \"__\" or \"-\", separated by \"/\", at most 255 characters";
/// What a tag is, for errors and warnings.
pub const TAG_RULE: &str =
    "a tag starts with a letter, digit or underscore and has at most 128 of [A-Za-z0-9_.-]";
/// What a digest is, for errors and warnings.
pub const DIGEST_RULE: &str = "a digest is sha256: followed by 64 lower-case hex digits";
/// What names a manifest, for errors.
pub const TAG_OR_DIGEST_RULE: &str = "a manifest is named by a tag (a letter, digit or underscore, then at most 127 of [A-Za-z0-9_.-]) or a digest (sha256: followed by 64 lower-case hex digits)";

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: one component of a repository name.
pub fn is_path_component(s: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(alphanumeric)
        && s.ends_with(alphanumeric)
        // What lies between runs of alphanumerics must be one allowed separator.
        && s.split(alphanumeric).all(|separator| {
            matches!(separator, "" | "." | "_" | "__") || separator.bytes().all(|c| c == b'-')
        })
}

/// Path components joined by `/`, at most [`NAME_MAX`] long.
pub fn is_repository(s: &str) -> bool {
    s.len() <= NAME_MAX && s.split('/').all(is_path_component)
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    s.len() <= TAG_MAX
        && s.bytes().next().is_some_and(word)
        && s.bytes().all(|c| word(c) || c == b'.' || c == b'-')
}

/// `sha256:` and 64 lower-case hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| is_lower_hex(hex, 64))
}

/// What a manifest URL may end in: a tag or a digest.
pub fn is_tag_or_digest(s: &str) -> bool {
    is_tag(s) || is_digest(s)
}

/// A full commit SHA as Git writes it and `publish` tags it: 40 lower-case
/// hex digits.
pub fn is_commit_sha(s: &str) -> bool {
    is_lower_hex(s, 40)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why a repository name (or a namespace, its leading components) is not
/// one; the message names the value, what is wrong and, where there is one,
/// the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty; {REPOSITORY_RULE}")]
    Empty,
    #[error(
        "{name:?} has upper-case letters, and OCI repository names are lower-case; write {lower:?}"
    )]
    UpperCase { name: String, lower: String },
    #[error(
        "{name:?} has an empty path component (a leading, trailing or doubled \"/\"); {REPOSITORY_RULE}"
    )]
    EmptyComponent { name: String },
    #[error("{name:?} has the path component {component:?}; {REPOSITORY_RULE}")]
    InvalidComponent { name: String, component: String },
    #[error("{name:?} is {length} characters long; {REPOSITORY_RULE}")]
    TooLong { name: String, length: usize },
}

/// Whether `name` is a repository name, exactly as given: upper case is
/// refused with the lower-case name to write, not folded.
pub fn check_repository(name: &str) -> Result<(), NameError> {
    if is_repository(name) {
        return Ok(());
    }
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let lower = name.to_ascii_lowercase();
    if lower != name && lower.split('/').all(is_path_component) {
        return Err(NameError::UpperCase {
            name: name.to_owned(),
            lower,
        });
    }
    Err(match name.split('/').find(|c| !is_path_component(c)) {
        Some("") => NameError::EmptyComponent {
            name: name.to_owned(),
        },
        Some(component) => NameError::InvalidComponent {
            name: name.to_owned(),
            component: component.to_owned(),
        },
        None => NameError::TooLong {
            name: name.to_owned(),
            length: name.len(),
        },
    })
}

/// Names that aren't tags one source may name in a warning each; past
/// that they are counted, so a listing of millions can't flood the log.
const WARNED_NAMES: usize = 10;

/// The names one source (a tag listing, an archive's index) lists, sorted
/// into tags and the rest. A name that isn't a tag is skipped: it would go
/// into a URL or a path, where `../` or `?` names something else. The
/// first few are named in a warning (the log's writer escapes them: they
/// are untrusted text); when the listing is dropped, one more line counts
/// the others.
pub struct ListedNames {
    source: String,
    skipped: usize,
}

impl ListedNames {
    pub fn new(source: impl Into<String>) -> Self {
        ListedNames {
            source: source.into(),
            skipped: 0,
        }
    }

    /// Whether `name` is a tag; if not, it is counted and maybe named.
    pub fn is_tag(&mut self, name: &str) -> bool {
        if is_tag(name) {
            return true;
        }
        self.skipped += 1;
        if self.skipped <= WARNED_NAMES {
            tracing::warn!(
                "{} lists the tag \"{name}\", which is not a tag ({TAG_RULE}); skipped it",
                self.source
            );
        }
        false
    }

    /// How many names were skipped: they count toward a listing's caps.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

impl Drop for ListedNames {
    fn drop(&mut self) {
        if self.skipped > WARNED_NAMES {
            tracing::warn!(
                "{} lists {} more names that are not tags; skipped them too",
                self.source,
                self.skipped - WARNED_NAMES
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn path_components_follow_the_spec() {
        for good in [
            "a",
            "a0",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "0",
            "a.b-c_d__e",
        ] {
            assert!(is_path_component(good), "{good:?}");
        }
        for bad in [
            "", "A", "a..b", "a___b", "-a", "a-", ".a", "a.", "_a", "a_", "a b", "a/b", "..",
            "a\nb", "a%2f", "é",
        ] {
            assert!(!is_path_component(bad), "{bad:?}");
        }
    }

    #[test]
    fn repositories_are_components_joined_by_slashes_up_to_255() {
        for good in ["app", "acme/app", "a/b/c-d/e.f", &"a".repeat(255)] {
            assert!(is_repository(good), "{good:?}");
        }
        let cases = [
            ("", NameError::Empty),
            (
                "Acme/App",
                NameError::UpperCase {
                    name: "Acme/App".into(),
                    lower: "acme/app".into(),
                },
            ),
            (
                "acme//app",
                NameError::EmptyComponent {
                    name: "acme//app".into(),
                },
            ),
            (
                "/app",
                NameError::EmptyComponent {
                    name: "/app".into(),
                },
            ),
            (
                "zz/../hp",
                NameError::InvalidComponent {
                    name: "zz/../hp".into(),
                    component: "..".into(),
                },
            ),
            (
                "a b",
                NameError::InvalidComponent {
                    name: "a b".into(),
                    component: "a b".into(),
                },
            ),
            (
                "Acme Corp",
                NameError::InvalidComponent {
                    name: "Acme Corp".into(),
                    component: "Acme Corp".into(),
                },
            ),
            (
                &"a".repeat(256),
                NameError::TooLong {
                    name: "a".repeat(256),
                    length: 256,
                },
            ),
        ];
        for (name, error) in cases {
            assert_eq!(check_repository(name), Err(error), "{name:?}");
        }
        assert_eq!(
            check_repository("Acme").unwrap_err().to_string(),
            "\"Acme\" has upper-case letters, and OCI repository names are lower-case; write \"acme\""
        );
        assert_eq!(
            check_repository("../../v2").unwrap_err().to_string(),
            format!("\"../../v2\" has the path component \"..\"; {REPOSITORY_RULE}")
        );
    }

    #[test]
    fn tags_follow_the_spec() {
        let longest = "t".repeat(128);
        for good in ["latest", "1.2.3", "_x", "A-b.C_d", "0", &longest] {
            assert!(is_tag(good), "{good:?}");
        }
        let too_long = "t".repeat(129);
        for bad in [
            "",
            ".x",
            "-x",
            "a/b",
            "../../../acme/victim/manifests/latest",
            "a b",
            "a:b",
            "a@b",
            "a?b",
            "a%2F",
            "x\n::stop-commands::pwn",
            "é",
            &too_long,
        ] {
            assert!(!is_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn digests_are_sha256_in_lower_case_hex() {
        assert!(is_digest(&format!("sha256:{HEX}")));
        for bad in [
            format!("sha256:{}", HEX.to_uppercase()),
            format!("SHA256:{HEX}"),
            format!("sha256:{}", &HEX[1..]),
            format!("sha256:{HEX}0"),
            format!("sha512:{HEX}{HEX}"),
            format!("sha256:../{}", &HEX[3..]),
            HEX.to_owned(),
            "sha256:".to_owned(),
            String::new(),
        ] {
            assert!(!is_digest(&bad), "{bad:?}");
        }
        assert!(is_tag_or_digest("v1") && is_tag_or_digest(&format!("sha256:{HEX}")));
        assert!(!is_tag_or_digest("sha256:abc/.."));
    }

    #[test]
    fn commit_shas_are_40_lower_case_hex_digits() {
        assert!(is_commit_sha(&HEX[..40]));
        assert!(!is_commit_sha(&HEX[..40].to_uppercase()));
        assert!(!is_commit_sha(&HEX[..39]));
        assert!(!is_commit_sha(&HEX[..41]));
        assert!(!is_commit_sha("g123456789abcdef0123456789abcdef01234567"));
    }

    #[test]
    fn a_listing_keeps_its_tags_and_drops_the_rest() {
        let listing = [
            "v1",
            "../../x/manifests/latest",
            "x\n::stop-commands::y",
            "v2",
        ];
        let mut listed = ListedNames::new("r/app");
        let kept: Vec<&str> = listing.into_iter().filter(|t| listed.is_tag(t)).collect();
        assert_eq!(kept, ["v1", "v2"]);
        assert_eq!(listed.skipped(), 2);
    }
}
