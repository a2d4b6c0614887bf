//! Grype's JSON report (`grype -o json`).
//!
//! Grype has no per-package target like Trivy's Results, so every finding's
//! target is what was scanned (`source.target.userInput` for an image).

use serde::Deserialize;

use super::{Finding, ScanError, Scanner, non_empty};

#[derive(Deserialize)]
struct Report {
    matches: Vec<Match>,
    #[serde(default)]
    source: Option<Source>,
}

#[derive(Deserialize)]
struct Source {
    /// An object for images (`userInput`, `imageID`, …), a plain string for
    /// directories and for the empty report (`"unknown"`).
    #[serde(default)]
    target: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    vulnerability: Vulnerability,
    #[serde(default)]
    related_vulnerabilities: Vec<Related>,
    artifact: Artifact,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vulnerability {
    id: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    fix: Fix,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    data_source: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize, Default)]
struct Fix {
    #[serde(default)]
    versions: Vec<String>,
    /// `fixed`, `not-fixed`, `wont-fix`, `unknown` or `""`.
    #[serde(default)]
    state: String,
}

#[derive(Deserialize)]
struct Related {
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    purl: String,
    #[serde(default)]
    locations: Vec<Location>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    path: String,
}

pub fn parse(json: &[u8]) -> Result<Vec<Finding>, ScanError> {
    convert(super::decode(Scanner::Grype, json)?)
}

fn convert(report: Report) -> Result<Vec<Finding>, ScanError> {
    let target = report
        .source
        .map(|s| target_name(&s.target))
        .unwrap_or_default();
    report
        .matches
        .into_iter()
        .map(|m| finding(m, &target))
        .collect()
}

fn target_name(target: &serde_json::Value) -> String {
    match target {
        serde_json::Value::String(s) => s.clone(),
        other => other
            .get("userInput")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

fn finding(m: Match, target: &str) -> Result<Finding, ScanError> {
    let v = m.vulnerability;
    let severity = v.severity.parse().map_err(|reason| ScanError::Severity {
        scanner: Scanner::Grype,
        id: v.id.clone(),
        reason,
    })?;
    // Only a `fixed` state promises the versions are fixes; other states may
    // still list versions that do not resolve this match.
    let fixed =
        (v.fix.state == "fixed" && !v.fix.versions.is_empty()).then(|| v.fix.versions.join(", "));
    // Distro feeds (Wolfi here) often carry no description, while the NVD
    // record it relates to does; the id is the last resort.
    let title = non_empty(v.description)
        .or_else(|| {
            m.related_vulnerabilities
                .into_iter()
                .find_map(|r| non_empty(r.description))
        })
        .unwrap_or_else(|| v.id.clone());
    let url = if v.data_source.trim().is_empty() {
        v.urls.into_iter().find(|u| !u.trim().is_empty())
    } else {
        Some(v.data_source)
    };
    let a = m.artifact;
    Ok(Finding {
        id: v.id,
        package: a.name,
        installed: a.version,
        fixed,
        severity,
        title,
        target: target.to_owned(),
        url,
        purl: non_empty(Some(a.purl)),
        path: a
            .locations
            .into_iter()
            .find_map(|l| non_empty(Some(l.path))),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scan::tests::fixture;
    use crate::scan::{Counts, Severity};

    fn report(name: &str) -> Vec<Finding> {
        parse(&fixture(&format!("grype/{name}"))).unwrap()
    }

    #[test]
    fn image_low_and_critical() {
        let findings = report("grype-image-low-critical.json");
        assert_eq!(findings.len(), 2);
        let (low, critical) = (&findings[0], &findings[1]);

        assert_eq!(low.id, "CVE-1999-0001");
        assert_eq!(low.severity, Severity::Low);
        assert_eq!(low.package, "package-1");
        assert_eq!(low.installed, "1.1.1");
        assert_eq!(low.fixed.as_deref(), Some("1.2.1, 2.1.3, 3.4.0"));
        assert_eq!(low.target, "user-input");
        assert_eq!(low.path.as_deref(), Some("/foo/bar/somefile-1.txt"));
        assert_eq!(low.purl, None); // `"purl": ""`
        assert_eq!(low.url, None); // empty dataSource and urls
        assert_eq!(low.title, "CVE-1999-0001");

        assert_eq!(critical.id, "CVE-1999-0002");
        assert_eq!(critical.severity, Severity::Critical);
        assert_eq!(critical.package, "package-2");
        assert_eq!(critical.installed, "2.2.2");
        assert_eq!(critical.fixed, None); // no versions, state ""
        assert_eq!(critical.purl.as_deref(), Some("pkg:deb/package-2@2.2.2"));
        assert_eq!(critical.path.as_deref(), Some("/foo/bar/somefile-2.txt"));
    }

    #[test]
    fn empty_report() {
        assert!(report("grype-empty.json").is_empty());
    }

    #[test]
    fn chainguard_ruby_three_high_with_fix_states() {
        let findings = report("grype-chainguard-ruby-wolfi.json");
        let counts = Counts::from_findings(&findings);
        assert_eq!((counts.high, counts.total()), (3, 3));
        let rows: Vec<_> = findings
            .iter()
            .map(|f| {
                (
                    f.id.as_str(),
                    f.package.as_str(),
                    f.installed.as_str(),
                    f.fixed.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                // fix.state "fixed"
                ("CVE-2023-28755", "ruby-3.0", "3.0.4-r1", Some("3.0.6-r0")),
                // fix.state "unknown", no versions
                ("CVE-2023-28755", "uri", "0.10.1", None),
                // fix.state "fixed"
                ("GHSA-hv5j-3h9f-99c2", "uri", "0.10.1", Some("0.10.2")),
            ]
        );
        for f in &findings {
            assert_eq!(f.target, "cgr.dev/chainguard/ruby:latest-3.0");
            assert_eq!(f.severity, Severity::High);
        }
        let ruby = &findings[0];
        assert_eq!(
            ruby.purl.as_deref(),
            Some("pkg:apk/wolfi/ruby-3.0@3.0.4-r1?arch=aarch64&distro=wolfi-20221118")
        );
        assert_eq!(ruby.path.as_deref(), Some("/lib/apk/db/installed"));
        assert_eq!(
            ruby.url.as_deref(),
            Some("http://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2023-28755")
        );
        // Wolfi's record has no description; the related NVD one does.
        assert!(
            ruby.title
                .starts_with("A ReDoS issue was discovered in the URI component"),
            "{}",
            ruby.title
        );
        assert_eq!(findings[2].title, "Ruby URI component ReDoS issue");
        assert_eq!(
            findings[2].url.as_deref(),
            Some("https://github.com/advisories/GHSA-hv5j-3h9f-99c2")
        );
        assert_eq!(
            findings[1].path.as_deref(),
            Some("/usr/lib/ruby/gems/3.0.0/specifications/default/uri-0.10.1.gemspec")
        );
    }

    #[test]
    fn malformed_reports_name_the_fix() {
        let err = parse(b"{}").unwrap_err().to_string();
        assert!(err.contains("Grype") && err.contains("matches"), "{err}");
        assert!(err.contains("grype -o json"), "{err}");
    }
}
