//! One vulnerability in one package, whichever scanner found it.

use std::fmt;
use std::str::FromStr;

/// Ordered so that thresholds are plain comparisons: `finding >= fail_on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Most severe first: the order reports and summaries list them in.
    pub const DESCENDING: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    /// How prose reads it (summaries, annotations, inputs); Trivy's
    /// upper-case spelling stays in SARIF.
    pub fn lowercase(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Unknown => "unknown",
        }
    }

    /// Trivy's spelling, which is also what SARIF tags and messages show.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a scanner's severity label, case-insensitively: Trivy writes
/// `CRITICAL`, Grype `Critical`. Grype's `Negligible` is below Low but gates
/// nothing either, so it folds into Low rather than into Unknown (which means
/// "not rated", not "harmless").
impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" => Ok(Severity::Critical),
            "high" => Ok(Severity::High),
            "medium" => Ok(Severity::Medium),
            "low" | "negligible" => Ok(Severity::Low),
            "unknown" | "" => Ok(Severity::Unknown),
            _ => Err(format!(
                "unknown severity {s:?}, expected one of critical, high, medium, low, negligible, unknown"
            )),
        }
    }
}

/// Parses a `fail-on`/`warn-on` input. `none` means "never", hence `None`.
/// Only the documented words are accepted (not Grype's `negligible`), so a
/// typo in a workflow fails the run instead of silently moving the gate.
pub fn threshold(s: &str) -> Result<Option<Severity>, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "critical" => Ok(Some(Severity::Critical)),
        "high" => Ok(Some(Severity::High)),
        "medium" => Ok(Some(Severity::Medium)),
        "low" => Ok(Some(Severity::Low)),
        "unknown" => Ok(Some(Severity::Unknown)),
        "none" => Ok(None),
        _ => Err(format!(
            "invalid severity threshold {s:?}: expected one of critical, high, medium, low, unknown, none"
        )),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// CVE-…, GHSA-…: what ignore entries and SARIF rules key on.
    pub id: String,
    pub package: String,
    pub installed: String,
    /// `None` when the scanner knows no fixed version (what `ignore-unfixed` drops).
    pub fixed: Option<String>,
    pub severity: Severity,
    pub title: String,
    /// The scanned thing the finding belongs to (Trivy's Result target, Grype's input).
    pub target: String,
    pub url: Option<String>,
    pub purl: Option<String>,
    /// Where the package was found inside the image, when the scanner says.
    pub path: Option<String>,
}

/// How many findings there are at each severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub unknown: usize,
}

impl Counts {
    pub fn from_findings<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Counts {
        let mut counts = Counts::default();
        for finding in findings {
            *counts.slot(finding.severity) += 1;
        }
        counts
    }

    pub fn get(&self, severity: Severity) -> usize {
        match severity {
            Severity::Unknown => self.unknown,
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Critical => self.critical,
        }
    }

    pub fn total(&self) -> usize {
        self.critical + self.high + self.medium + self.low + self.unknown
    }

    /// The most severe level with at least one finding.
    pub fn max(&self) -> Option<Severity> {
        Severity::DESCENDING.into_iter().find(|&s| self.get(s) > 0)
    }

    /// How many findings are at `severity` or above.
    pub fn at_least(&self, severity: Severity) -> usize {
        Severity::DESCENDING
            .into_iter()
            .filter(|&s| s >= severity)
            .map(|s| self.get(s))
            .sum()
    }

    fn slot(&mut self, severity: Severity) -> &mut usize {
        match severity {
            Severity::Unknown => &mut self.unknown,
            Severity::Low => &mut self.low,
            Severity::Medium => &mut self.medium,
            Severity::High => &mut self.high,
            Severity::Critical => &mut self.critical,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::High > Severity::Medium);
        assert!(Severity::Medium > Severity::Low);
        assert!(Severity::Low > Severity::Unknown);
    }

    #[test]
    fn parses_scanner_labels() {
        for (label, want) in [
            ("CRITICAL", Severity::Critical),
            ("Critical", Severity::Critical),
            ("HIGH", Severity::High),
            ("Medium", Severity::Medium),
            ("LOW", Severity::Low),
            ("Negligible", Severity::Low),
            ("UNKNOWN", Severity::Unknown),
            ("Unknown", Severity::Unknown),
        ] {
            assert_eq!(label.parse::<Severity>().unwrap(), want, "{label}");
        }
        let err = "severe".parse::<Severity>().unwrap_err();
        assert!(
            err.contains("\"severe\"") && err.contains("negligible"),
            "{err}"
        );
    }

    #[test]
    fn thresholds() {
        let cases = [
            ("critical", Some(Severity::Critical)),
            ("HIGH", Some(Severity::High)),
            (" medium ", Some(Severity::Medium)),
            ("low", Some(Severity::Low)),
            ("unknown", Some(Severity::Unknown)),
            ("none", None),
            ("None", None),
        ];
        for (input, want) in cases {
            assert_eq!(threshold(input).unwrap(), want, "{input}");
        }
        for bad in ["", "negligible", "crit", "never"] {
            let err = threshold(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("critical, high, medium, low, unknown, none"),
                "{err}"
            );
        }
    }

    #[test]
    fn counts() {
        let finding = |severity| Finding {
            id: "CVE-1".into(),
            package: "p".into(),
            installed: "1".into(),
            fixed: None,
            severity,
            title: String::new(),
            target: String::new(),
            url: None,
            purl: None,
            path: None,
        };
        let findings = [
            finding(Severity::Critical),
            finding(Severity::Critical),
            finding(Severity::Medium),
            finding(Severity::Unknown),
        ];
        let counts = Counts::from_findings(&findings);
        assert_eq!(
            counts,
            Counts {
                critical: 2,
                medium: 1,
                unknown: 1,
                ..Counts::default()
            }
        );
        assert_eq!(counts.total(), 4);
        assert_eq!(counts.max(), Some(Severity::Critical));
        assert_eq!(counts.at_least(Severity::Medium), 3);
        assert_eq!(counts.at_least(Severity::High), 2);
        assert_eq!(Counts::default().max(), None);
    }
}
