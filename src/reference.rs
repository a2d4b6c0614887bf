//! Container image references (`[registry/]path[:tag][@digest]`), parsed and
//! normalised the way Docker does, so that `ubuntu`, `library/ubuntu` and
//! `index.docker.io/library/ubuntu` all name the same image.
//!
//! Grammar: <https://github.com/distribution/reference> (`reference.go`,
//! `normalize.go`), its parts checked by [`crate::names`]. Unlike Docker,
//! [`Reference::parse`] lower-cases an upper-case repository instead of
//! rejecting it: the plan derives names from directory names. Names a user
//! typed go through [`Reference::parse_exact`], which refuses it.

use std::fmt;
use std::str::FromStr;

use crate::names::{DIGEST_RULE, NAME_MAX, TAG_RULE, is_digest, is_path_component, is_tag};

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// Whether `host` (lower-case) is one of Docker Hub's names.
pub fn is_docker_hub(host: &str) -> bool {
    host == DOCKER_HUB || DOCKER_HUB_ALIASES.contains(&host)
}
const OFFICIAL_PREFIX: &str = "library/";

/// A normalised image reference: the registry is always explicit and Docker
/// Hub official images carry their `library/` namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "invalid image reference \"\": the reference is empty; write it as registry/namespace/name[:tag][@digest], e.g. ghcr.io/org/app:1.0"
    )]
    Empty,
    #[error(
        "invalid image reference {reference:?}: empty path component; write it as registry/namespace/name[:tag]"
    )]
    EmptyComponent { reference: String },
    #[error(
        "invalid image reference {reference:?}: path component {component:?} is not lower-case letters and digits joined by \".\", \"_\", \"__\" or \"-\"; write it as registry/namespace/name[:tag]"
    )]
    InvalidComponent {
        reference: String,
        component: String,
    },
    #[error(
        "invalid image reference {reference:?}: a 64-character hex string is an image ID, not a repository name; name the repository, e.g. org/app@sha256:<hex>"
    )]
    ImageId { reference: String },
    #[error(
        "invalid registry {registry:?} in {reference:?}: a registry is a host name, IPv4 address or [IPv6] address with an optional :port, e.g. ghcr.io or localhost:5000"
    )]
    InvalidRegistry { reference: String, registry: String },
    #[error(
        "invalid port {port:?} in {reference:?}: a registry port is a number from 0 to 65535, e.g. localhost:5000/app"
    )]
    InvalidPort { reference: String, port: String },
    #[error("invalid tag {tag:?} in {reference:?}: {TAG_RULE}")]
    InvalidTag { reference: String, tag: String },
    #[error("invalid digest {digest:?} in {reference:?}: {DIGEST_RULE}")]
    InvalidDigest { reference: String, digest: String },
    #[error("invalid image reference {reference:?}: a reference has no scheme; write {without:?}")]
    Scheme { reference: String, without: String },
    #[error(
        "invalid image reference {reference:?}: the full name is {length} characters long; shorten the registry or repository path to at most 255"
    )]
    TooLong { reference: String, length: usize },
    #[error(
        "invalid image reference {reference:?}: repository {path:?} has upper-case letters, and OCI repository names are lower-case; write {lower:?}"
    )]
    UpperCase {
        reference: String,
        path: String,
        lower: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Lower,
    Exact,
}

impl Reference {
    /// Lower-cases the repository: names derived from directories may
    /// carry capitals.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        Self::parse_with(s, Case::Lower)
    }

    /// Refuses an upper-case repository: for names a user typed, where
    /// lower-casing would silently name another repository.
    pub fn parse_exact(s: &str) -> Result<Reference, ReferenceError> {
        Self::parse_with(s, Case::Exact)
    }

    fn parse_with(s: &str, case: Case) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // Docker refuses these so that a reference can never be mistaken for an image ID.
        if is_digest(&format!("sha256:{s}")) {
            return Err(ReferenceError::ImageId {
                reference: s.to_string(),
            });
        }
        if let Some((_, without)) = s.split_once("://") {
            return Err(ReferenceError::Scheme {
                reference: s.to_string(),
                without: without.to_string(),
            });
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (s, None),
        };
        // A ':' before the last '/' is a registry port, not a tag.
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (rest, None),
        };

        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if is_registry(first) => (normalize_registry(first, s)?, path),
            _ => (DOCKER_HUB.to_string(), name),
        };
        let mut repository = path.to_ascii_lowercase();
        // Upper case is judged last: its fix must be a name that is one.
        for (component, given) in repository.split('/').zip(path.split('/')) {
            if component.is_empty() {
                return Err(ReferenceError::EmptyComponent {
                    reference: s.to_string(),
                });
            }
            if !is_path_component(component) {
                return Err(ReferenceError::InvalidComponent {
                    reference: s.to_string(),
                    component: given.to_string(),
                });
            }
        }
        if case == Case::Exact && repository != path {
            return Err(ReferenceError::UpperCase {
                reference: s.to_string(),
                path: path.to_string(),
                lower: s.replacen(path, &repository, 1),
            });
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository.insert_str(0, OFFICIAL_PREFIX);
        }

        if let Some(tag) = tag.filter(|tag| !is_tag(tag)) {
            return Err(ReferenceError::InvalidTag {
                reference: s.to_string(),
                tag: tag.to_string(),
            });
        }
        if let Some(digest) = digest.filter(|digest| !is_digest(digest)) {
            return Err(ReferenceError::InvalidDigest {
                reference: s.to_string(),
                digest: digest.to_string(),
            });
        }
        let length = registry.len() + 1 + repository.len();
        if length > NAME_MAX {
            return Err(ReferenceError::TooLong {
                reference: s.to_string(),
                length,
            });
        }

        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`: the image's identity, whatever tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image at `tag`; a digest, if any, is kept.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                reference: format!("{}:{tag}", self.name()),
                tag: tag.to_string(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// The short form people type: `ubuntu:22.04`, `webgrip/app`, `ghcr.io/o/r`.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        name + &self.suffix()
    }

    fn suffix(&self) -> String {
        let mut suffix = String::new();
        if let Some(tag) = &self.tag {
            suffix.push(':');
            suffix.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            suffix.push('@');
            suffix.push_str(digest);
        }
        suffix
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name(), self.suffix())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Whether `reference` names its registry (`ghcr.io/o/app`,
/// `localhost:5000/app`) rather than leaving it to Docker Hub (`team/app`).
pub fn names_registry(reference: &str) -> bool {
    reference
        .split_once('/')
        .is_some_and(|(first, _)| is_registry(first))
}

/// Docker's rule for telling `ghcr.io/app` from `team/app`.
fn is_registry(first: &str) -> bool {
    first.contains(['.', ':']) || first.eq_ignore_ascii_case("localhost")
}

/// The `registry` input: a registry's `host[:port]`, normalised as the
/// registry of a reference is. The error says what is wrong and what to
/// write, for the caller to name its input.
pub fn registry_name(raw: &str) -> Result<String, String> {
    const FORM: &str = "a registry is a host name or IP address with an optional :port, e.g. ghcr.io or localhost:5000";
    let raw = raw.trim();
    if let Some((_, rest)) = raw.split_once("://") {
        let host = rest.split('/').next().unwrap_or(rest);
        return Err(format!(
            "{FORM}, without a scheme; write `registry: {host}`"
        ));
    }
    if let Some((host, path)) = raw.split_once('/') {
        return Err(format!(
            "{FORM}, without a path; write `registry: {host}` (the path {path:?} goes in `namespace` or `image`)"
        ));
    }
    if !is_registry(raw) {
        return Err(format!(
            "{FORM}; a name without a dot or port is a Docker Hub namespace — for Docker Hub write `registry: docker.io` and `namespace: {raw}`"
        ));
    }
    normalize_registry(raw, raw).map_err(|e| match e {
        ReferenceError::InvalidPort { port, .. } => {
            format!("port {port:?} is not a number from 0 to 65535; {FORM}")
        }
        _ => FORM.to_owned(),
    })
}

fn normalize_registry(raw: &str, reference: &str) -> Result<String, ReferenceError> {
    let registry = raw.to_ascii_lowercase();
    let invalid = || ReferenceError::InvalidRegistry {
        reference: reference.to_string(),
        registry: raw.to_string(),
    };
    let (host_ok, port) = match registry.strip_prefix('[') {
        Some(bracketed) => {
            let (address, tail) = bracketed.split_once(']').ok_or_else(invalid)?;
            let port = match tail {
                "" => None,
                _ => Some(tail.strip_prefix(':').ok_or_else(invalid)?),
            };
            let ipv6 =
                !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
            (ipv6, port)
        }
        None => {
            let (host, port) = match registry.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (registry.as_str(), None),
            };
            (host.split('.').all(is_domain_component), port)
        }
    };
    if !host_ok {
        return Err(invalid());
    }
    if let Some(port) = port.filter(|port| !is_port(port)) {
        return Err(ReferenceError::InvalidPort {
            reference: reference.to_string(),
            port: port.to_string(),
        });
    }
    if DOCKER_HUB_ALIASES.contains(&registry.as_str()) {
        return Ok(DOCKER_HUB.to_string());
    }
    Ok(registry)
}

fn is_port(s: &str) -> bool {
    // `parse` alone would accept a leading '+'.
    s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// input, registry, repository, tag, digest
    type Case<'a> = (String, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_and_normalises() {
        let digest = format!("sha256:{HEX}");
        let cases: Vec<Case> = vec![
            ("ubuntu".into(), "docker.io", "library/ubuntu", None, None),
            (
                "ubuntu:22.04".into(),
                "docker.io",
                "library/ubuntu",
                Some("22.04"),
                None,
            ),
            (
                "WebGrip/Helm-Deploy:latest".into(),
                "docker.io",
                "webgrip/helm-deploy",
                Some("latest"),
                None,
            ),
            (
                "index.docker.io/webgrip/x".into(),
                "docker.io",
                "webgrip/x",
                None,
                None,
            ),
            (
                "registry-1.docker.io/nginx".into(),
                "docker.io",
                "library/nginx",
                None,
                None,
            ),
            (
                "docker.io/library/ubuntu".into(),
                "docker.io",
                "library/ubuntu",
                None,
                None,
            ),
            (
                "localhost:5000/a/b:1.0".into(),
                "localhost:5000",
                "a/b",
                Some("1.0"),
                None,
            ),
            ("localhost/app".into(), "localhost", "app", None, None),
            ("127.0.0.1:5000/a".into(), "127.0.0.1:5000", "a", None, None),
            (
                "[::1]:5000/app:v1".into(),
                "[::1]:5000",
                "app",
                Some("v1"),
                None,
            ),
            ("GHCR.IO/Org/App".into(), "ghcr.io", "org/app", None, None),
            (
                "a/b__c/d-e--f.g_h:TAG_1.x".into(),
                "docker.io",
                "a/b__c/d-e--f.g_h",
                Some("TAG_1.x"),
                None,
            ),
            (
                format!("ghcr.io/o/r@{digest}"),
                "ghcr.io",
                "o/r",
                None,
                Some(&digest),
            ),
            (
                format!("ghcr.io/o/r:1.2@{digest}"),
                "ghcr.io",
                "o/r",
                Some("1.2"),
                Some(&digest),
            ),
            (
                "localhost:5000".into(),
                "docker.io",
                "library/localhost",
                Some("5000"),
                None,
            ),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let reference = Reference::parse(&input).unwrap();
            assert_eq!(reference.registry(), registry, "{input}");
            assert_eq!(reference.repository(), repository, "{input}");
            assert_eq!(reference.tag(), tag, "{input}");
            assert_eq!(reference.digest(), digest, "{input}");
            // The canonical form parses back to the same reference.
            assert_eq!(
                reference.to_string().parse::<Reference>().unwrap(),
                reference
            );
        }
    }

    #[test]
    fn displays_canonical_and_familiar_forms() {
        let cases = [
            (
                "ubuntu:22.04",
                "docker.io/library/ubuntu:22.04",
                "ubuntu:22.04",
            ),
            ("webgrip/app", "docker.io/webgrip/app", "webgrip/app"),
            ("library/a/b", "docker.io/library/a/b", "library/a/b"),
            ("ghcr.io/o/r:1", "ghcr.io/o/r:1", "ghcr.io/o/r:1"),
        ];
        for (input, canonical, familiar) in cases {
            let reference = Reference::parse(input).unwrap();
            assert_eq!(reference.to_string(), canonical);
            assert_eq!(reference.familiar(), familiar);
        }
        let pinned = format!("127.0.0.1:5000/team/app:v2@sha256:{HEX}");
        assert_eq!(Reference::parse(&pinned).unwrap().to_string(), pinned);
    }

    #[test]
    fn exact_parsing_refuses_upper_case_repositories_with_the_fix() {
        let err = Reference::parse_exact("127.0.0.1:5055/UPPER/x:Tag1")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid image reference \"127.0.0.1:5055/UPPER/x:Tag1\": repository \"UPPER/x\" has upper-case letters, and OCI repository names are lower-case; write \"127.0.0.1:5055/upper/x:Tag1\""
        );
        assert_eq!(
            Reference::parse("127.0.0.1:5055/UPPER/x")
                .unwrap()
                .repository(),
            "upper/x"
        );
        let exact = Reference::parse_exact("Registry.Example:5000/team/app:V1").unwrap();
        assert_eq!(exact.to_string(), "registry.example:5000/team/app:V1");
    }

    #[test]
    fn name_ignores_tag_and_digest() {
        let a = Reference::parse("ubuntu:22.04").unwrap();
        let b = Reference::parse(&format!("index.docker.io/library/ubuntu@sha256:{HEX}")).unwrap();
        assert_eq!(a.name(), "docker.io/library/ubuntu");
        assert_eq!(a.name(), b.name());
        assert_ne!(a, b);
    }

    #[test]
    fn with_tag_replaces_the_tag_and_keeps_the_digest() {
        let reference = Reference::parse(&format!("ghcr.io/o/r:old@sha256:{HEX}")).unwrap();
        let retagged = reference.with_tag("new").unwrap();
        assert_eq!(retagged.tag(), Some("new"));
        assert_eq!(retagged.digest(), reference.digest());
        assert_eq!(
            Reference::parse("ghcr.io/o/r")
                .unwrap()
                .with_tag(".bad")
                .unwrap_err()
                .to_string(),
            "invalid tag \".bad\" in \"ghcr.io/o/r:.bad\": a tag starts with a letter, digit or underscore and has at most 128 of [A-Za-z0-9_.-]"
        );
    }

    #[test]
    fn rejects_invalid_references_with_a_fix() {
        let long_tag = format!("app:{}", "t".repeat(129));
        let long_name = format!("ghcr.io/{}", "a".repeat(250));
        // input, variant, part of the message
        let cases: Vec<(String, &str, &str)> = vec![
            ("".into(), "Empty", "the reference is empty"),
            (
                "Foo//bar".into(),
                "EmptyComponent",
                "invalid image reference \"Foo//bar\": empty path component; write it as registry/namespace/name[:tag]",
            ),
            ("ghcr.io/".into(), "EmptyComponent", "empty path component"),
            (":tag".into(), "EmptyComponent", "empty path component"),
            (
                "a/b..c".into(),
                "InvalidComponent",
                "path component \"b..c\"",
            ),
            ("a/-b".into(), "InvalidComponent", "\"-b\""),
            ("a/b_".into(), "InvalidComponent", "\"b_\""),
            ("a/b___c".into(), "InvalidComponent", "\"b___c\""),
            ("a b".into(), "InvalidComponent", "\"a b\""),
            ("Bad Name".into(), "InvalidComponent", "\"Bad Name\""),
            (HEX.into(), "ImageId", "image ID"),
            (
                "bad_host.io/app".into(),
                "InvalidRegistry",
                "invalid registry \"bad_host.io\"",
            ),
            (
                "-x.io/app".into(),
                "InvalidRegistry",
                "e.g. ghcr.io or localhost:5000",
            ),
            ("[::1/app".into(), "InvalidRegistry", "[IPv6]"),
            (
                "localhost:abc/app".into(),
                "InvalidPort",
                "invalid port \"abc\" in \"localhost:abc/app\"",
            ),
            ("localhost:/app".into(), "InvalidPort", "invalid port \"\""),
            (
                "localhost:99999/app".into(),
                "InvalidPort",
                "from 0 to 65535",
            ),
            (
                "app:-x".into(),
                "InvalidTag",
                "invalid tag \"-x\" in \"app:-x\": a tag starts with a letter, digit or underscore and has at most 128 of [A-Za-z0-9_.-]",
            ),
            ("app:".into(), "InvalidTag", "invalid tag \"\""),
            (long_tag, "InvalidTag", "at most 128"),
            ("app@".into(), "InvalidDigest", "invalid digest \"\""),
            (
                "ghcr.io/o/r@sha256:abc".into(),
                "InvalidDigest",
                "64 lower-case hex digits",
            ),
            (
                format!("ghcr.io/o/r@sha256:{}", HEX.to_uppercase()),
                "InvalidDigest",
                "invalid digest",
            ),
            (
                format!("ghcr.io/o/r@{HEX}"),
                "InvalidDigest",
                "a digest is sha256: followed by 64 lower-case hex digits",
            ),
            (
                format!("ghcr.io/o/r@sha512:{HEX}{HEX}"),
                "InvalidDigest",
                "invalid digest \"sha512:",
            ),
            (
                "https://ghcr.io/o/r:1".into(),
                "Scheme",
                "invalid image reference \"https://ghcr.io/o/r:1\": a reference has no scheme; write \"ghcr.io/o/r:1\"",
            ),
            (long_name, "TooLong", "258 characters long; shorten"),
        ];
        for (input, variant, message) in cases {
            let error = Reference::parse(&input).unwrap_err();
            let debug = format!("{error:?}");
            assert_eq!(
                debug.split(' ').next(),
                Some(variant),
                "{input:?} gave {debug}"
            );
            assert!(error.to_string().contains(message), "{input:?}: {error}");
        }
    }

    #[test]
    fn the_registry_input_is_a_host_and_port_and_errors_show_what_to_write() {
        for (raw, name) in [
            ("ghcr.io", "ghcr.io"),
            (" GHCR.IO ", "ghcr.io"),
            ("localhost", "localhost"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("[::1]:5000", "[::1]:5000"),
            ("index.docker.io", "docker.io"),
        ] {
            assert_eq!(registry_name(raw).unwrap(), name, "{raw:?}");
        }
        for (raw, fix) in [
            ("https://x", "without a scheme; write `registry: x`"),
            (
                "http://127.0.0.1:5000/v2/",
                "without a scheme; write `registry: 127.0.0.1:5000`",
            ),
            (
                "ghcr.io/acme",
                "without a path; write `registry: ghcr.io` (the path \"acme\" goes in `namespace` or `image`)",
            ),
            (
                "acme",
                "for Docker Hub write `registry: docker.io` and `namespace: acme`",
            ),
            (
                "localhost:99999",
                "port \"99999\" is not a number from 0 to 65535",
            ),
            ("bad_host.io", "e.g. ghcr.io or localhost:5000"),
            ("a b.io", "e.g. ghcr.io or localhost:5000"),
        ] {
            let err = registry_name(raw).unwrap_err();
            assert!(err.contains(fix), "{raw:?}: {err}");
        }
    }
}
