//! Accepted findings: Trivy's `.trivyignore.yaml`, applied to either scanner.
//!
//! ```yaml
//! vulnerabilities:
//!   - id: CVE-2022-40897
//!     paths: ["usr/local/lib/python3.9/site-packages/setuptools-58.1.0.dist-info/METADATA"]
//!     purls: ["pkg:deb/debian/libssl1.1"]
//!     expired_at: 2024-08-20        # or RFC 3339: 2024-08-20T12:00:00+02:00
//!     statement: Accept the risk
//! ```
//!
//! Matching follows Trivy (pkg/result/ignore.go), with one deliberate
//! difference noted below:
//! - `id` must equal the finding's id exactly.
//! - `paths` (optional) are globs (`*` and `?` within one path segment, `**`
//!   across segments, `[…]` classes), tried against the finding's target and
//!   its package path. A leading `/` is ignored on both sides, because Trivy
//!   writes `usr/lib/…` where Grype writes `/usr/lib/…`.
//! - `purls` (optional) match when type, namespace and name are equal, the
//!   version is equal if the entry gives one, and every qualifier the entry
//!   gives is present with the same value. Unlike Trivy, a finding without a
//!   purl does not match an entry narrowed by purls: an entry meant for one
//!   package must not hide a finding we cannot tie to that package.
//! - When both are given, both must match.
//! - `expired_at` is the moment the entry stops applying: a bare date is
//!   midnight UTC at its start, as Trivy reads it. An expired entry that still
//!   matches is reported as [`Match::Expired`] and the finding counts again,
//!   rather than silently ignored as by Trivy, so the stale entry gets noticed.
//! - The other sections (`misconfigurations`, `secrets`, `licenses`) are
//!   accepted and skipped: this gate only sees vulnerabilities.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Finding, ScanError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreFile {
    pub vulnerabilities: Vec<IgnoreEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreEntry {
    pub id: String,
    pub paths: Vec<glob::Pattern>,
    pub purls: Vec<String>,
    /// As written in the file, for messages.
    pub expired_at: Option<String>,
    pub statement: Option<String>,
    /// `expired_at` as seconds since the Unix epoch.
    expires: Option<i64>,
    parsed_purls: Vec<Purl>,
}

/// What the ignore file says about one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match<'a> {
    NotIgnored,
    Ignored(&'a IgnoreEntry),
    /// Only expired entries matched: the finding is reported, and so is the entry.
    Expired(&'a IgnoreEntry),
}

impl IgnoreEntry {
    /// `now` is seconds since the Unix epoch (the caller reads the clock).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|at| at < now)
    }

    fn applies_to(&self, finding: &Finding) -> bool {
        finding.id == self.id && self.path_matches(finding) && self.purl_matches(finding)
    }

    fn path_matches(&self, finding: &Finding) -> bool {
        if self.paths.is_empty() {
            return true;
        }
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let candidates = [Some(finding.target.as_str()), finding.path.as_deref()];
        candidates.into_iter().flatten().any(|candidate| {
            let candidate = candidate.trim_start_matches('/');
            self.paths
                .iter()
                .any(|p| p.matches_with(candidate, options))
        })
    }

    fn purl_matches(&self, finding: &Finding) -> bool {
        if self.parsed_purls.is_empty() {
            return true;
        }
        let Some(target) = finding.purl.as_deref().and_then(Purl::parse) else {
            return false;
        };
        self.parsed_purls.iter().any(|p| p.constrains(&target))
    }
}

impl IgnoreFile {
    /// The first live entry that matches wins; if only expired ones match,
    /// the first of those is reported.
    pub fn matches(&self, finding: &Finding, now: i64) -> Match<'_> {
        let mut expired = None;
        for entry in self
            .vulnerabilities
            .iter()
            .filter(|e| e.applies_to(finding))
        {
            if !entry.is_expired(now) {
                return Match::Ignored(entry);
            }
            expired.get_or_insert(entry);
        }
        expired.map_or(Match::NotIgnored, Match::Expired)
    }
}

/// The other sections are named so `deny_unknown_fields` still catches a
/// misspelt `vulnerabilities:`; their contents are skipped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    vulnerabilities: Option<Vec<RawEntry>>,
    #[serde(default, rename = "misconfigurations")]
    _misconfigurations: Option<IgnoredAny>,
    #[serde(default, rename = "secrets")]
    _secrets: Option<IgnoredAny>,
    #[serde(default, rename = "licenses")]
    _licenses: Option<IgnoredAny>,
}

/// Unknown keys are errors: a misspelt `expires_at` would otherwise make a
/// temporary exception permanent without anyone noticing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    purls: Vec<String>,
    #[serde(default)]
    expired_at: Option<String>,
    #[serde(default)]
    statement: Option<String>,
}

pub fn parse(yaml: &str) -> Result<IgnoreFile, ScanError> {
    // An empty (or all-comment) file is a YAML null: nothing is ignored.
    let raw: Option<RawFile> = serde_yaml::from_str(yaml).map_err(ScanError::IgnoreYaml)?;
    let entries = raw.and_then(|r| r.vulnerabilities).unwrap_or_default();
    let vulnerabilities = entries
        .into_iter()
        .enumerate()
        .map(|(i, raw)| entry(i + 1, raw))
        .collect::<Result<_, _>>()?;
    Ok(IgnoreFile { vulnerabilities })
}

fn entry(index: usize, raw: RawEntry) -> Result<IgnoreEntry, ScanError> {
    let fail = |reason: String| ScanError::IgnoreEntry {
        index,
        id: raw.id.clone(),
        reason,
    };
    if raw.id.trim().is_empty() {
        return Err(fail(
            "`id` is empty; give the vulnerability id, e.g. CVE-2024-1234".into(),
        ));
    }
    let paths = raw
        .paths
        .iter()
        .map(|p| {
            glob::Pattern::new(p.trim_start_matches('/'))
                .map_err(|e| fail(format!("path pattern {p:?} is not a valid glob: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let parsed_purls = raw
        .purls
        .iter()
        .map(|p| {
            Purl::parse(p).ok_or_else(|| {
                fail(format!(
                    "{p:?} is not a package URL; write it as pkg:TYPE/NAMESPACE/NAME[@VERSION]"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let expires = match raw.expired_at.as_deref() {
        None => None,
        Some(text) => Some(crate::time::unix_seconds(text).ok_or_else(|| {
            fail(format!(
                "expired_at {text:?} is not a date; write YYYY-MM-DD or RFC 3339 (2024-08-20T12:00:00Z)"
            ))
        })?),
    };
    Ok(IgnoreEntry {
        id: raw.id.trim().to_owned(),
        paths,
        purls: raw.purls,
        expired_at: raw.expired_at,
        statement: raw.statement.filter(|s| !s.trim().is_empty()),
        expires,
        parsed_purls,
    })
}

/// The parts of a package URL that matching compares, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Purl {
    kind: String,
    namespace: String,
    name: String,
    version: String,
    qualifiers: Vec<(String, String)>,
    subpath: String,
}

impl Purl {
    /// `pkg:type/namespace/name@version?qualifiers#subpath`; only what
    /// matching needs, not a validator.
    fn parse(s: &str) -> Option<Purl> {
        let rest = s.trim().strip_prefix("pkg:")?;
        let (rest, subpath) = rest.split_once('#').unwrap_or((rest, ""));
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        // The version's `@` is the one after the last `/`: an unencoded npm
        // scope (`@angular/core`) must not be taken for it.
        let name_start = rest.rfind('/').map_or(0, |i| i + 1);
        let (rest, version) = match rest[name_start..].find('@') {
            Some(at) => (&rest[..name_start + at], &rest[name_start + at + 1..]),
            None => (rest, ""),
        };
        let (kind, path) = rest.trim_matches('/').split_once('/')?;
        let (namespace, name) = path.rsplit_once('/').unwrap_or(("", path));
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let qualifiers = query
            .split('&')
            .filter(|q| !q.is_empty())
            .map(|q| {
                let (k, v) = q.split_once('=').unwrap_or((q, ""));
                (k.to_ascii_lowercase(), decode(v))
            })
            .collect();
        Some(Purl {
            // The spec makes the type case-insensitive.
            kind: kind.to_ascii_lowercase(),
            namespace: decode(namespace),
            name: decode(name),
            version: decode(version),
            qualifiers,
            subpath: decode(subpath.trim_matches('/')),
        })
    }

    /// Whether `target` satisfies this purl used as a constraint.
    fn constrains(&self, target: &Purl) -> bool {
        self.kind == target.kind
            && self.namespace == target.namespace
            && self.name == target.name
            && (self.version.is_empty() || self.version == target.version)
            && (self.subpath.is_empty() || self.subpath == target.subpath)
            && self
                .qualifiers
                .iter()
                .all(|q| target.qualifiers.contains(q))
    }
}

/// Percent-decoding, leaving malformed escapes as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scan::tests::fixture;
    use crate::scan::trivy;

    /// 2024-08-20T00:00:00Z
    const AUG_20: i64 = 1_724_112_000;

    fn findings(report: &str) -> Vec<Finding> {
        trivy::parse(&fixture(report)).unwrap()
    }

    #[test]
    fn parses_trivy_documented_form() {
        let file = parse(
            r#"
vulnerabilities:
  - id: CVE-2022-40897
    paths:
      - "usr/local/lib/python3.9/site-packages/setuptools-58.1.0.dist-info/METADATA"
    statement: Accept the risk
  - id: CVE-2023-3817
    purls:
      - "pkg:deb/debian/libssl1.1"
  - id: CVE-2020-15114
    expired_at: 2024-08-20
    statement: "Review in 6 months"
misconfigurations:
  - id: AVD-AWS-0031
secrets:
licenses:
"#,
        )
        .unwrap();
        let ids: Vec<_> = file.vulnerabilities.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["CVE-2022-40897", "CVE-2023-3817", "CVE-2020-15114"]);
        let first = &file.vulnerabilities[0];
        assert_eq!(first.statement.as_deref(), Some("Accept the risk"));
        assert_eq!(first.paths.len(), 1);
        let third = &file.vulnerabilities[2];
        assert_eq!(third.expired_at.as_deref(), Some("2024-08-20"));
        assert!(!third.is_expired(AUG_20));
        assert!(third.is_expired(AUG_20 + 1));
        assert!(!file.vulnerabilities[0].is_expired(i64::MAX));
    }

    #[test]
    fn empty_files_ignore_nothing() {
        for text in [
            "",
            "# nothing yet\n",
            "vulnerabilities:\n",
            "vulnerabilities: []\n",
        ] {
            assert_eq!(parse(text).unwrap(), IgnoreFile::default(), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_entry_and_the_fix() {
        let cases = [
            (
                "vulnerabilities:\n  - id: CVE-1\n    expires_at: 2024-01-01\n",
                "expires_at",
            ),
            ("vulnerabilites:\n  - id: CVE-1\n", "vulnerabilites"),
            ("CVE-2019-1234\n", "vulnerabilities:"),
            ("vulnerabilities:\n  - statement: x\n", "missing field `id`"),
            (
                "vulnerabilities:\n  - id: CVE-1\n  - id: CVE-2\n    expired_at: 2024-02-30\n",
                "ignore entry #2 (CVE-2): expired_at \"2024-02-30\" is not a date; write YYYY-MM-DD",
            ),
            (
                "vulnerabilities:\n  - id: CVE-1\n    purls: [\"deb/debian/x\"]\n",
                "ignore entry #1 (CVE-1): \"deb/debian/x\" is not a package URL",
            ),
            (
                "vulnerabilities:\n  - id: CVE-1\n    paths: [\"a/[b\"]\n",
                "path pattern \"a/[b\" is not a valid glob",
            ),
            ("vulnerabilities:\n  - id: \" \"\n", "`id` is empty"),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml).unwrap_err().to_string();
            assert!(err.contains(want), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn matching_by_id_path_and_purl() {
        let photon = findings("trivy/photon-30.json");
        let (bash, curl, curl_libs) = (&photon[0], &photon[1], &photon[2]);
        let gems = findings("trivy/fluentd-gems.json");
        let activesupport = &gems[1];

        let file = parse(
            r#"
vulnerabilities:
  - id: CVE-2019-5481
    purls: ["pkg:rpm/photon/curl-libs"]
    statement: only curl-libs
  - id: CVE-2019-18276
    purls: ["pkg:rpm/photon/bash@4.4.18-1.ph3?distro=photon-3.0"]
  - id: CVE-2020-8165
    paths: ["var/lib/gems/*/specifications/activesupport-*.gemspec"]
"#,
        )
        .unwrap();
        let e = &file.vulnerabilities;
        assert_eq!(file.matches(curl, 0), Match::NotIgnored);
        assert_eq!(file.matches(curl_libs, 0), Match::Ignored(&e[0]));
        assert_eq!(file.matches(bash, 0), Match::Ignored(&e[1]));
        assert_eq!(file.matches(activesupport, 0), Match::Ignored(&e[2]));
        assert_eq!(file.matches(&gems[0], 0), Match::NotIgnored);

        // A qualifier or version the finding lacks (or differs in) does not match.
        for purl in [
            "pkg:rpm/photon/bash@4.4.18-2.ph3",
            "pkg:rpm/photon/bash?arch=aarch64",
            "pkg:rpm/photon/bash?epoch=1",
            "pkg:deb/photon/bash",
        ] {
            let file = parse(&format!(
                "vulnerabilities:\n  - id: CVE-2019-18276\n    purls: [\"{purl}\"]\n"
            ))
            .unwrap();
            assert_eq!(file.matches(bash, 0), Match::NotIgnored, "{purl}");
        }

        // `*` stays within a segment; `**` crosses them; a leading `/` is ignored.
        for (pattern, want) in [
            ("var/lib/gems/*/activesupport-6.0.2.1.gemspec", false),
            ("var/lib/gems/**/activesupport-6.0.2.1.gemspec", true),
            (
                "/var/lib/gems/2.5.0/specifications/activesupport-6.0.2.1.gemspec",
                true,
            ),
            ("Ruby", true), // the finding's target
            ("usr/**", false),
        ] {
            let file = parse(&format!(
                "vulnerabilities:\n  - id: CVE-2020-8165\n    paths: [\"{pattern}\"]\n"
            ))
            .unwrap();
            let got = matches!(file.matches(activesupport, 0), Match::Ignored(_));
            assert_eq!(got, want, "{pattern}");
        }
    }

    #[test]
    fn grype_paths_and_findings_without_purl() {
        let grype =
            crate::scan::grype::parse(&fixture("grype/grype-image-low-critical.json")).unwrap();
        let file = parse(
            "vulnerabilities:\n  - id: CVE-1999-0001\n    paths: [\"foo/bar/*.txt\"]\n  - id: CVE-1999-0001\n    purls: [\"pkg:rpm/package-1\"]\n",
        )
        .unwrap();
        // Grype's `/foo/bar/somefile-1.txt` matches the slash-less pattern.
        assert_eq!(
            file.matches(&grype[0], 0),
            Match::Ignored(&file.vulnerabilities[0])
        );
        // package-1 has `"purl": ""`: a purl-narrowed entry cannot vouch for it.
        let only_purl =
            parse("vulnerabilities:\n  - id: CVE-1999-0001\n    purls: [\"pkg:rpm/package-1\"]\n")
                .unwrap();
        assert_eq!(only_purl.matches(&grype[0], 0), Match::NotIgnored);
    }

    #[test]
    fn live_entries_win_over_expired_ones() {
        let photon = findings("trivy/photon-30.json");
        let file = parse(
            r#"
vulnerabilities:
  - id: CVE-2019-5481
    expired_at: 2024-08-20
    statement: old exception
  - id: CVE-2019-5481
    purls: ["pkg:rpm/photon/curl"]
    expired_at: "2030-01-01T00:00:00Z"
"#,
        )
        .unwrap();
        let e = &file.vulnerabilities;
        let after = AUG_20 + 86_400;
        assert_eq!(file.matches(&photon[1], AUG_20), Match::Ignored(&e[0]));
        assert_eq!(file.matches(&photon[1], after), Match::Ignored(&e[1]));
        assert_eq!(file.matches(&photon[2], after), Match::Expired(&e[0]));
        assert_eq!(file.matches(&photon[0], after), Match::NotIgnored);
    }

    #[test]
    fn purl_parsing() {
        let p = Purl::parse(
            "pkg:maven/org.apache%20x/log4j-core@2.14.1?Type=jar&classifier=a%2Fb#sub/path/",
        )
        .unwrap();
        assert_eq!(p.kind, "maven");
        assert_eq!(p.namespace, "org.apache x");
        assert_eq!(p.name, "log4j-core");
        assert_eq!(p.version, "2.14.1");
        assert_eq!(
            p.qualifiers,
            [
                ("type".into(), "jar".into()),
                ("classifier".into(), "a/b".into())
            ]
        );
        assert_eq!(p.subpath, "sub/path");
        let scoped = Purl::parse("pkg:npm/%40angular/core@1.0.0").unwrap();
        assert_eq!(
            (scoped.namespace.as_str(), scoped.name.as_str()),
            ("@angular", "core")
        );
        let raw_scope = Purl::parse("pkg:npm/@angular/core").unwrap();
        assert_eq!(
            (raw_scope.namespace.as_str(), raw_scope.version.as_str()),
            ("@angular", "")
        );
        assert_eq!(Purl::parse("pkg:gem/activesupport").unwrap().version, "");
        assert_eq!(Purl::parse("pkg:gem"), None);
        assert_eq!(Purl::parse("gem/x"), None);
        assert_eq!(decode("100%"), "100%");
    }
}
