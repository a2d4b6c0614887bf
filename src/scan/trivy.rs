//! Trivy's JSON report (`trivy image --format json`, `SchemaVersion: 2`).
//!
//! Only the fields the gate uses are read; everything else (CVSS, layers,
//! misconfigurations, secrets) is skipped, so newer Trivy versions that add
//! fields still parse.

use serde::Deserialize;

use super::{Finding, ScanError, Scanner, non_empty};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    schema_version: u64,
    /// Absent when nothing was scanned (e.g. an image with no packages).
    #[serde(default)]
    results: Option<Vec<TrivyResult>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyResult {
    target: String,
    /// Absent (not empty) when a target has no vulnerabilities.
    #[serde(default)]
    vulnerabilities: Option<Vec<Vulnerability>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(rename = "PrimaryURL", default)]
    primary_url: Option<String>,
    #[serde(default)]
    pkg_identifier: Option<PkgIdentifier>,
    #[serde(default)]
    pkg_path: Option<String>,
}

#[derive(Deserialize)]
struct PkgIdentifier {
    #[serde(rename = "PURL", default)]
    purl: Option<String>,
}

pub fn parse(json: &[u8]) -> Result<Vec<Finding>, ScanError> {
    convert(super::decode(Scanner::Trivy, json)?)
}

fn convert(report: Report) -> Result<Vec<Finding>, ScanError> {
    if report.schema_version != 2 {
        return Err(ScanError::TrivySchema(report.schema_version));
    }
    let mut findings = Vec::new();
    for result in report.results.unwrap_or_default() {
        for v in result.vulnerabilities.unwrap_or_default() {
            let severity = v.severity.parse().map_err(|reason| ScanError::Severity {
                scanner: Scanner::Trivy,
                id: v.vulnerability_id.clone(),
                reason,
            })?;
            findings.push(Finding {
                // Some advisories (e.g. Alpine's musl in alpine-39) carry no
                // Title; the id is the best short name left.
                title: non_empty(v.title).unwrap_or_else(|| v.vulnerability_id.clone()),
                id: v.vulnerability_id,
                package: v.pkg_name,
                installed: v.installed_version,
                fixed: non_empty(v.fixed_version),
                severity,
                target: result.target.clone(),
                url: non_empty(v.primary_url),
                purl: non_empty(v.pkg_identifier.and_then(|p| p.purl)),
                path: non_empty(v.pkg_path),
            });
        }
    }
    Ok(findings)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scan::tests::fixture;
    use crate::scan::{Counts, Severity};

    fn report(name: &str) -> Vec<Finding> {
        parse(&fixture(&format!("trivy/{name}"))).unwrap()
    }

    fn ids(findings: &[Finding]) -> Vec<(&str, &str, Severity)> {
        findings
            .iter()
            .map(|f| (f.id.as_str(), f.package.as_str(), f.severity))
            .collect()
    }

    #[test]
    fn photon_30() {
        let findings = report("photon-30.json");
        assert_eq!(
            ids(&findings),
            [
                ("CVE-2019-18276", "bash", Severity::High),
                ("CVE-2019-5481", "curl", Severity::Critical),
                ("CVE-2019-5481", "curl-libs", Severity::Critical),
            ]
        );
        let counts = Counts::from_findings(&findings);
        assert_eq!((counts.critical, counts.high, counts.total()), (2, 1, 3));
        let bash = &findings[0];
        assert_eq!(bash.installed, "4.4.18-1.ph3");
        assert_eq!(bash.fixed.as_deref(), Some("4.4.18-2.ph3"));
        assert_eq!(
            bash.title,
            "bash: when effective UID is not equal to its real UID the saved UID is not dropped"
        );
        assert_eq!(
            bash.target,
            "testdata/fixtures/images/photon-30.tar.gz (photon 3.0)"
        );
        assert_eq!(
            bash.url.as_deref(),
            Some("https://avd.aquasec.com/nvd/cve-2019-18276")
        );
        assert_eq!(
            bash.purl.as_deref(),
            Some("pkg:rpm/photon/bash@4.4.18-1.ph3?arch=x86_64&distro=photon-3.0")
        );
        assert_eq!(bash.path, None);
    }

    #[test]
    fn fluentd_gems_has_two_targets() {
        let findings = report("fluentd-gems.json");
        assert_eq!(
            ids(&findings),
            [
                ("CVE-2019-18224", "libidn2-0", Severity::Critical),
                ("CVE-2020-8165", "activesupport", Severity::High),
            ]
        );
        assert_eq!(
            findings[0].target,
            "testdata/fixtures/images/fluentd-multiple-lockfiles.tar.gz (debian 10.2)"
        );
        assert_eq!(findings[1].target, "Ruby");
        assert_eq!(findings[1].fixed.as_deref(), Some("6.0.3.1, 5.2.4.3"));
        assert_eq!(
            findings[1].path.as_deref(),
            Some("var/lib/gems/2.5.0/specifications/activesupport-6.0.2.1.gemspec")
        );
        assert_eq!(
            findings[1].purl.as_deref(),
            Some("pkg:gem/activesupport@6.0.2.1")
        );
    }

    #[test]
    fn alpine_39() {
        let findings = report("alpine-39.json");
        let counts = Counts::from_findings(&findings);
        assert_eq!((counts.critical, counts.medium, counts.total()), (2, 4, 6));
        assert_eq!(
            ids(&findings),
            [
                ("CVE-2019-1549", "libcrypto1.1", Severity::Medium),
                ("CVE-2019-1551", "libcrypto1.1", Severity::Medium),
                ("CVE-2019-1549", "libssl1.1", Severity::Medium),
                ("CVE-2019-1551", "libssl1.1", Severity::Medium),
                ("CVE-2019-14697", "musl", Severity::Critical),
                ("CVE-2019-14697", "musl-utils", Severity::Critical),
            ]
        );
        // musl's advisory has no Title: the id stands in.
        assert_eq!(findings[4].title, "CVE-2019-14697");
        assert_eq!(findings[4].fixed.as_deref(), Some("1.1.20-r5"));
    }

    #[test]
    fn centos_7() {
        let findings = report("centos-7.json");
        assert_eq!(
            ids(&findings),
            [
                ("CVE-2019-18276", "bash", Severity::Low),
                ("CVE-2019-1559", "openssl-libs", Severity::Medium),
                ("CVE-2018-0734", "openssl-libs", Severity::Low),
            ]
        );
        // bash is `will_not_fix`: no FixedVersion at all.
        assert_eq!(findings[0].fixed, None);
        assert_eq!(findings[1].installed, "1:1.0.2k-16.el7");
        assert_eq!(findings[1].fixed.as_deref(), Some("1:1.0.2k-19.el7"));
    }

    #[test]
    fn ubuntu_1804() {
        let findings = report("ubuntu-1804.json");
        let counts = Counts::from_findings(&findings);
        assert_eq!((counts.medium, counts.low, counts.total()), (4, 1, 5));
        assert_eq!(
            ids(&findings),
            [
                ("CVE-2019-18276", "bash", Severity::Low),
                ("CVE-2019-5094", "e2fsprogs", Severity::Medium),
                ("CVE-2019-5094", "libcom-err2", Severity::Medium),
                ("CVE-2019-5094", "libext2fs2", Severity::Medium),
                ("CVE-2019-5094", "libss2", Severity::Medium),
            ]
        );
        assert_eq!(findings[0].fixed, None);
    }

    #[test]
    fn sl_micro_has_no_vulnerabilities_key() {
        assert!(report("sl-micro-rancher5.4.json").is_empty());
    }

    #[test]
    fn empty_and_malformed_reports() {
        assert!(parse(br#"{"SchemaVersion": 2}"#).unwrap().is_empty());
        assert!(
            parse(br#"{"SchemaVersion": 2, "Results": null}"#)
                .unwrap()
                .is_empty()
        );
        let err = parse(br#"{"SchemaVersion": 1, "Results": []}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SchemaVersion 1") && err.contains("--format json"),
            "{err}"
        );
        let err = parse(b"{}").unwrap_err().to_string();
        assert!(
            err.contains("SchemaVersion") && err.contains("trivy image"),
            "{err}"
        );
        let err = parse(
            br#"{"SchemaVersion": 2, "Results": [{"Target": "t", "Vulnerabilities": [
                {"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": "SEVERE"}]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CVE-1") && err.contains("\"SEVERE\""), "{err}");
    }
}
