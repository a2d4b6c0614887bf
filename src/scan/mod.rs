//! The vulnerability gate between build and push.
//!
//! A scanner's JSON report (`trivy` or `grype`) becomes [`Finding`]s, an
//! optional `.trivyignore.yaml` ([`ignore`]) hides accepted ones until they
//! expire, [`policy::evaluate`] turns what is left into a [`Verdict`]
//! (critical blocks the release, high warns, else pass), and [`sarif`] renders
//! every finding for GitHub code scanning. Those steps are pure, so each is
//! testable on fixtures; [`runner`] runs the scanner, and [`gate`] puts it
//! all together for `publish` and `scan`, with the annotations, the check
//! run and the SARIF file.

pub mod finding;
pub mod grype;
pub mod ignore;
pub mod policy;
pub mod runner;
pub mod sarif;
pub mod trivy;

pub use finding::{Counts, Finding, Severity, threshold};
pub use ignore::{IgnoreEntry, IgnoreFile, Match};
pub use policy::{Outcome, Policy, Verdict, evaluate};

/// Why a report or an ignore file could not be used. Each message names the
/// problem and what to do about it, because it ends up in a failed job's log.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the {scanner} report is not valid {scanner} JSON: {source}; produce it with {hint}")]
    Json {
        scanner: Scanner,
        hint: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the Trivy report has SchemaVersion {0}, only 2 is supported; use Trivy 0.20 or newer with `--format json`"
    )]
    TrivySchema(u64),
    #[error(
        "the report is neither Trivy JSON (`SchemaVersion` and `Results`) nor Grype JSON (`matches`): {0}; produce it with `trivy image --format json` or `grype -o json`"
    )]
    UnknownFormat(String),
    #[error("{scanner} finding {id}: {reason}; the report may come from a newer scanner version")]
    Severity {
        scanner: Scanner,
        id: String,
        reason: String,
    },
    #[error(
        "the ignore file is not valid .trivyignore.yaml: {0}; expected a top-level `vulnerabilities:` list of entries with `id` and optional `paths`, `purls`, `expired_at`, `statement`"
    )]
    IgnoreYaml(#[source] serde_yaml::Error),
    #[error("ignore entry #{index} ({id}): {reason}")]
    IgnoreEntry {
        index: usize,
        id: String,
        reason: String,
    },
}

/// Which scanner wrote a report; `as_str` is the name `sarif::render` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scanner {
    Trivy,
    Grype,
}

impl Scanner {
    pub fn as_str(self) -> &'static str {
        match self {
            Scanner::Trivy => "trivy",
            Scanner::Grype => "grype",
        }
    }

    /// How to make the report this crate reads, for error messages.
    fn report_command(self) -> &'static str {
        match self {
            Scanner::Trivy => "`trivy image --format json --output report.json IMAGE`",
            Scanner::Grype => "`grype -o json --file report.json IMAGE`",
        }
    }
}

/// Deserialises `scanner`'s JSON report; a failure names the scanner and
/// how to produce a report it reads.
/// Scanners write `""` as often as they omit a field; both mean "none".
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn decode<T: serde::de::DeserializeOwned>(scanner: Scanner, json: &[u8]) -> Result<T, ScanError> {
    serde_json::from_slice(json).map_err(|source| ScanError::Json {
        scanner,
        hint: scanner.report_command(),
        source,
    })
}

impl std::fmt::Display for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scanner::Trivy => "Trivy",
            Scanner::Grype => "Grype",
        })
    }
}

/// Parses a report of either scanner, telling them apart by shape: Trivy's
/// has `SchemaVersion`/`Results`, Grype's has `matches`. This serves the
/// `report` input, where the user hands over a file from their own scan.
pub fn detect_and_parse(json: &[u8]) -> Result<(Scanner, Vec<Finding>), ScanError> {
    // Only the top-level keys are read here (values skipped unparsed), then
    // the typed parser reads the file once: no intermediate JSON tree.
    let keys: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
        serde_json::from_slice(json)
            .map_err(|e| ScanError::UnknownFormat(format!("not a JSON object ({e})")))?;
    if keys.contains_key("SchemaVersion") || keys.contains_key("Results") {
        Ok((Scanner::Trivy, trivy::parse(json)?))
    } else if keys.contains_key("matches") {
        Ok((Scanner::Grype, grype::parse(json)?))
    } else {
        let keys: Vec<&str> = keys.keys().map(String::as_str).take(8).collect();
        Err(ScanError::UnknownFormat(format!(
            "top-level keys are [{}]",
            keys.join(", ")
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A finding with everything filled in, for report rendering tests.
    pub(crate) fn finding(id: &str, severity: Severity) -> Finding {
        Finding {
            id: id.into(),
            package: "busybox".into(),
            installed: "1.0".into(),
            fixed: Some("1.1".into()),
            severity,
            title: "bad".into(),
            target: "img (alpine 3.19)".into(),
            url: Some(format!("https://avd.example/{id}")),
            purl: None,
            path: None,
        }
    }

    pub(crate) fn verdict(findings: Vec<Finding>, result: policy::Outcome) -> Verdict {
        Verdict {
            result,
            counts: Counts::from_findings(&findings),
            findings,
            ignored: vec![],
            expired: vec![],
        }
    }

    /// A real report's bytes, from tests/fixtures.
    pub(crate) use crate::fixtures::fixture_bytes as fixture;

    #[test]
    fn detects_trivy_and_grype_by_shape() {
        let (scanner, findings) = detect_and_parse(&fixture("trivy/photon-30.json")).unwrap();
        assert_eq!((scanner, findings.len()), (Scanner::Trivy, 3));
        let (scanner, findings) =
            detect_and_parse(&fixture("grype/grype-chainguard-ruby-wolfi.json")).unwrap();
        assert_eq!((scanner, findings.len()), (Scanner::Grype, 3));
        let (scanner, findings) = detect_and_parse(&fixture("grype/grype-empty.json")).unwrap();
        assert_eq!((scanner, findings.len()), (Scanner::Grype, 0));
        let (scanner, findings) =
            detect_and_parse(&fixture("trivy/sl-micro-rancher5.4.json")).unwrap();
        assert_eq!((scanner, findings.len()), (Scanner::Trivy, 0));
    }

    #[test]
    fn rejects_other_documents_with_a_hint() {
        let sarif = fixture("sarif/grype-image.sarif");
        let err = detect_and_parse(&sarif).unwrap_err().to_string();
        assert!(err.contains("neither Trivy JSON"), "{err}");
        assert!(err.contains("$schema, runs, version"), "{err}");
        assert!(err.contains("grype -o json"), "{err}");
        let err = detect_and_parse(b"[]").unwrap_err().to_string();
        assert!(err.contains("not a JSON object"), "{err}");
        let err = detect_and_parse(b"{oops").unwrap_err().to_string();
        assert!(
            err.contains("not a JSON object") && err.contains("line 1"),
            "{err}"
        );
    }
}
