//! The gate: which findings count, and whether they block the release.

use std::fmt;

use super::ignore::{IgnoreEntry, IgnoreFile, Match};
use super::{Counts, Finding, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Block the release at this severity or above; `None` never blocks.
    pub fail_on: Option<Severity>,
    /// Release, but warn, at this severity or above; `None` never warns.
    pub warn_on: Option<Severity>,
    /// Drop findings that have no fixed version: nothing to upgrade to yet.
    pub ignore_unfixed: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            fail_on: Some(Severity::Critical),
            warn_on: Some(Severity::High),
            ignore_unfixed: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        })
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub result: Outcome,
    /// Of `findings`, i.e. after ignores.
    pub counts: Counts,
    /// Every counted finding, whatever its severity: most severe first, then by id.
    pub findings: Vec<Finding>,
    /// Dropped findings, each with the reason, in the same order.
    pub ignored: Vec<(Finding, String)>,
    /// One message per ignore entry that matched but had expired.
    pub expired: Vec<String>,
}

impl Policy {
    /// What one finding of `severity` does to the release: the rule the
    /// verdict, the annotations and the check run all level by.
    pub fn grade(&self, severity: Severity) -> Outcome {
        if self.fail_on.is_some_and(|t| severity >= t) {
            Outcome::Fail
        } else if self.warn_on.is_some_and(|t| severity >= t) {
            Outcome::Warn
        } else {
            Outcome::Pass
        }
    }
}

/// `now` is seconds since the Unix epoch; it only decides ignore expiry.
pub fn evaluate(
    findings: Vec<Finding>,
    policy: &Policy,
    ignore: Option<&IgnoreFile>,
    now: i64,
) -> Verdict {
    let mut counted = Vec::new();
    let mut ignored = Vec::new();
    // Grouped per entry so each stale entry is reported once, with the
    // findings it no longer hides.
    let mut expired: Vec<(&IgnoreEntry, Vec<String>)> = Vec::new();

    for finding in findings {
        let verdict = ignore.map_or(Match::NotIgnored, |file| file.matches(&finding, now));
        match verdict {
            Match::Ignored(entry) => {
                ignored.push((finding, ignored_by(entry)));
                continue;
            }
            Match::Expired(entry) => {
                let what = format!("{} {}", finding.package, finding.installed);
                match expired.iter_mut().find(|(e, _)| std::ptr::eq(*e, entry)) {
                    Some((_, hits)) => hits.push(what),
                    None => expired.push((entry, vec![what])),
                }
            }
            Match::NotIgnored => {}
        }
        if policy.ignore_unfixed && finding.fixed.is_none() {
            ignored.push((finding, "no fixed version yet (ignore-unfixed)".to_owned()));
        } else {
            counted.push(finding);
        }
    }

    counted.sort_by(order);
    ignored.sort_by(|(a, _), (b, _)| order(a, b));
    let counts = Counts::from_findings(&counted);
    // The most severe finding decides, as it would alone.
    let result = counts.max().map_or(Outcome::Pass, |max| policy.grade(max));
    Verdict {
        result,
        counts,
        findings: counted,
        ignored,
        expired: expired
            .into_iter()
            .map(|(e, hits)| expired_message(e, &hits))
            .collect(),
    }
}

/// Most severe first, then by id; package, version and target only make the
/// order total so reports do not reshuffle between runs.
fn order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then_with(|| a.id.cmp(&b.id))
        .then_with(|| a.package.cmp(&b.package))
        .then_with(|| a.installed.cmp(&b.installed))
        .then_with(|| a.target.cmp(&b.target))
}

fn ignored_by(entry: &IgnoreEntry) -> String {
    let mut why = format!("ignored by .trivyignore.yaml entry {}", entry.id);
    if let Some(until) = &entry.expired_at {
        why.push_str(&format!(" until {until}"));
    }
    match &entry.statement {
        Some(statement) => why.push_str(&format!(": {statement}")),
        None => why.push_str(" (no statement)"),
    }
    why
}

fn expired_message(entry: &IgnoreEntry, hits: &[String]) -> String {
    let statement = entry
        .statement
        .as_ref()
        .map(|s| format!(" ({s:?})"))
        .unwrap_or_default();
    format!(
        "ignore entry {} expired at {}{statement}; it no longer hides {}: fix them, or renew or remove the entry",
        entry.id,
        entry.expired_at.as_deref().unwrap_or("?"),
        hits.join(", "),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scan::tests::fixture;
    use crate::scan::{detect_and_parse, ignore};

    /// 2024-08-20T00:00:00Z
    const NOW: i64 = 1_724_112_000;

    fn load(report: &str) -> Vec<Finding> {
        detect_and_parse(&fixture(report)).unwrap().1
    }

    const HIDE_MUSL: &str =
        "vulnerabilities:\n  - id: CVE-2019-14697\n    statement: musl is not reachable\n";
    const HIDE_MUSL_EXPIRED: &str = "vulnerabilities:\n  - id: CVE-2019-14697\n    expired_at: 2024-08-01\n    statement: musl is not reachable\n";
    const HIDE_MUSL_LATER: &str =
        "vulnerabilities:\n  - id: CVE-2019-14697\n    expired_at: 2024-09-01T00:00:00Z\n";

    struct Case {
        name: &'static str,
        report: &'static str,
        policy: Policy,
        ignore: Option<&'static str>,
        result: Outcome,
        /// critical, high, medium, low, unknown
        counts: [usize; 5],
        ignored: usize,
        expired: usize,
    }

    fn policy(
        fail_on: Option<Severity>,
        warn_on: Option<Severity>,
        ignore_unfixed: bool,
    ) -> Policy {
        Policy {
            fail_on,
            warn_on,
            ignore_unfixed,
        }
    }

    #[test]
    fn table() {
        use Severity::*;
        let defaults = Policy::default();
        let cases = [
            Case {
                name: "photon-30: critical blocks",
                report: "trivy/photon-30.json",
                policy: defaults,
                ignore: None,
                result: Outcome::Fail,
                counts: [2, 1, 0, 0, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "centos-7: low and medium pass the defaults",
                report: "trivy/centos-7.json",
                policy: defaults,
                ignore: None,
                result: Outcome::Pass,
                counts: [0, 0, 1, 2, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "chainguard: high only warns",
                report: "grype/grype-chainguard-ruby-wolfi.json",
                policy: defaults,
                ignore: None,
                result: Outcome::Warn,
                counts: [0, 3, 0, 0, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "fluentd-gems: critical in one target blocks",
                report: "trivy/fluentd-gems.json",
                policy: defaults,
                ignore: None,
                result: Outcome::Fail,
                counts: [1, 1, 0, 0, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "sl-micro: nothing found",
                report: "trivy/sl-micro-rancher5.4.json",
                policy: policy(Some(Unknown), Some(Unknown), false),
                ignore: None,
                result: Outcome::Pass,
                counts: [0; 5],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "grype-empty",
                report: "grype/grype-empty.json",
                policy: defaults,
                ignore: None,
                result: Outcome::Pass,
                counts: [0; 5],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "ubuntu-1804: fail-on medium",
                report: "trivy/ubuntu-1804.json",
                policy: policy(Some(Medium), None, false),
                ignore: None,
                result: Outcome::Fail,
                counts: [0, 0, 4, 1, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "alpine-39: fail-on none only warns",
                report: "trivy/alpine-39.json",
                policy: policy(None, Some(High), false),
                ignore: None,
                result: Outcome::Warn,
                counts: [2, 0, 4, 0, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "photon-30: none/none always passes",
                report: "trivy/photon-30.json",
                policy: policy(None, None, false),
                ignore: None,
                result: Outcome::Pass,
                counts: [2, 1, 0, 0, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "grype low/critical: ignore-unfixed drops the unfixed critical",
                report: "grype/grype-image-low-critical.json",
                policy: policy(Some(Critical), Some(High), true),
                ignore: None,
                result: Outcome::Pass,
                counts: [0, 0, 0, 1, 0],
                ignored: 1,
                expired: 0,
            },
            Case {
                name: "grype low/critical: without ignore-unfixed it blocks",
                report: "grype/grype-image-low-critical.json",
                policy: defaults,
                ignore: None,
                result: Outcome::Fail,
                counts: [1, 0, 0, 1, 0],
                ignored: 0,
                expired: 0,
            },
            Case {
                name: "chainguard: ignore-unfixed drops the uri CVE (state unknown)",
                report: "grype/grype-chainguard-ruby-wolfi.json",
                policy: policy(Some(Critical), Some(High), true),
                ignore: None,
                result: Outcome::Warn,
                counts: [0, 2, 0, 0, 0],
                ignored: 1,
                expired: 0,
            },
            Case {
                name: "alpine-39: an ignore entry hides both musl criticals",
                report: "trivy/alpine-39.json",
                policy: defaults,
                ignore: Some(HIDE_MUSL),
                result: Outcome::Pass,
                counts: [0, 0, 4, 0, 0],
                ignored: 2,
                expired: 0,
            },
            Case {
                name: "alpine-39: an entry not yet expired still hides them",
                report: "trivy/alpine-39.json",
                policy: defaults,
                ignore: Some(HIDE_MUSL_LATER),
                result: Outcome::Pass,
                counts: [0, 0, 4, 0, 0],
                ignored: 2,
                expired: 0,
            },
            Case {
                name: "alpine-39: the same entry, expired, blocks and is reported",
                report: "trivy/alpine-39.json",
                policy: defaults,
                ignore: Some(HIDE_MUSL_EXPIRED),
                result: Outcome::Fail,
                counts: [2, 0, 4, 0, 0],
                ignored: 0,
                expired: 1,
            },
        ];
        for case in cases {
            let file = case.ignore.map(|y| ignore::parse(y).unwrap());
            let v = evaluate(load(case.report), &case.policy, file.as_ref(), NOW);
            let c = v.counts;
            assert_eq!(v.result, case.result, "{}", case.name);
            assert_eq!(
                [c.critical, c.high, c.medium, c.low, c.unknown],
                case.counts,
                "{}",
                case.name
            );
            assert_eq!(v.findings.len(), c.total(), "{}", case.name);
            assert_eq!(v.ignored.len(), case.ignored, "{}", case.name);
            assert_eq!(v.expired.len(), case.expired, "{}", case.name);
        }
    }

    #[test]
    fn findings_are_sorted_most_severe_first_then_by_id() {
        let v = evaluate(load("trivy/photon-30.json"), &Policy::default(), None, NOW);
        let order: Vec<_> = v
            .findings
            .iter()
            .map(|f| (f.severity, f.id.as_str(), f.package.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (Severity::Critical, "CVE-2019-5481", "curl"),
                (Severity::Critical, "CVE-2019-5481", "curl-libs"),
                (Severity::High, "CVE-2019-18276", "bash"),
            ]
        );
        let v = evaluate(load("trivy/alpine-39.json"), &Policy::default(), None, NOW);
        let ids: Vec<_> = v.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "CVE-2019-14697",
                "CVE-2019-14697",
                "CVE-2019-1549",
                "CVE-2019-1549",
                "CVE-2019-1551",
                "CVE-2019-1551",
            ]
        );
    }

    #[test]
    fn reasons_and_expiry_messages() {
        let file = ignore::parse(HIDE_MUSL).unwrap();
        let v = evaluate(
            load("trivy/alpine-39.json"),
            &Policy::default(),
            Some(&file),
            NOW,
        );
        let ignored: Vec<_> = v
            .ignored
            .iter()
            .map(|(f, why)| (f.package.as_str(), why.as_str()))
            .collect();
        let why = "ignored by .trivyignore.yaml entry CVE-2019-14697: musl is not reachable";
        assert_eq!(ignored, [("musl", why), ("musl-utils", why)]);
        assert!(v.expired.is_empty());

        let file = ignore::parse(HIDE_MUSL_EXPIRED).unwrap();
        let v = evaluate(
            load("trivy/alpine-39.json"),
            &Policy::default(),
            Some(&file),
            NOW,
        );
        assert_eq!(
            v.expired,
            [
                "ignore entry CVE-2019-14697 expired at 2024-08-01 (\"musl is not reachable\"); \
                 it no longer hides musl 1.1.20-r4, musl-utils 1.1.20-r4: \
                 fix them, or renew or remove the entry"
            ]
        );
        // Before the expiry the same file hides them, and says until when.
        let before = evaluate(
            load("trivy/alpine-39.json"),
            &Policy::default(),
            Some(&file),
            0,
        );
        assert_eq!(before.result, Outcome::Pass);
        assert!(
            before.ignored[0].1.contains("until 2024-08-01: musl"),
            "{}",
            before.ignored[0].1
        );

        let v = evaluate(
            load("grype/grype-image-low-critical.json"),
            &policy(Some(Severity::Critical), None, true),
            None,
            NOW,
        );
        assert_eq!(v.ignored[0].0.id, "CVE-1999-0002");
        assert_eq!(v.ignored[0].1, "no fixed version yet (ignore-unfixed)");
    }

    #[test]
    fn outcome_display() {
        let shown: Vec<_> = [Outcome::Pass, Outcome::Warn, Outcome::Fail]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["pass", "warn", "fail"]);
        assert_eq!(serde_json::to_value(Outcome::Warn).unwrap(), "warn");
    }
}
