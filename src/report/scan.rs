//! Scan results for people: the job-summary section and the annotations on
//! the image's Dockerfile (pure).

use std::fmt::Write as _;

use crate::actions::workflow::{Annotation, Level};
use crate::report::{cell, code, finding_message, link, prose};
use crate::scan::policy::{Outcome, Policy, Verdict};
use crate::scan::{Counts, Finding, Scanner, Severity};

/// The runner attaches this many annotations of each level per step; more
/// are logged but not shown, so the overflow is folded into the last one.
pub const ANNOTATIONS_PER_LEVEL: usize = 10;
/// Rows of the findings table; the rest are counted.
const TABLE_ROWS: usize = 50;
/// Ids listed in a folded annotation before "…".
const FOLDED_IDS: usize = 40;

pub struct Scanned<'a> {
    pub image: &'a str,
    pub scanner: Scanner,
    pub verdict: &'a Verdict,
    pub policy: &'a Policy,
}

pub fn summary(s: &Scanned<'_>) -> String {
    let v = s.verdict;
    let mut md = format!(
        "#### {} scan of {}: **{}**\n\n",
        s.scanner,
        code(s.image),
        match v.result {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn — released",
            Outcome::Fail => "fail — not pushed",
        }
    );
    let _ = writeln!(
        md,
        "| critical | high | medium | low | unknown | ignored |\n|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} |\n",
        v.counts.critical,
        v.counts.high,
        v.counts.medium,
        v.counts.low,
        v.counts.unknown,
        v.ignored.len()
    );
    let _ = writeln!(
        md,
        "Policy: fail on {}, warn on {}{}.\n",
        threshold(s.policy.fail_on),
        threshold(s.policy.warn_on),
        if s.policy.ignore_unfixed {
            ", unfixed findings ignored"
        } else {
            ""
        }
    );
    for expired in &v.expired {
        let _ = writeln!(md, "> ⚠️ {}\n", prose(expired));
    }
    if !v.findings.is_empty() {
        md.push_str("| severity | id | package | installed → fixed |\n|---|---|---|---|\n");
        for f in v.findings.iter().take(TABLE_ROWS) {
            let id = match &f.url {
                Some(url) => link(&f.id, url),
                None => cell(&f.id),
            };
            let _ = writeln!(
                md,
                "| {} | {id} | {} | {} → {} |",
                f.severity.lowercase(),
                code(&f.package),
                cell(&f.installed),
                f.fixed
                    .as_deref()
                    .map_or_else(|| "no fix yet".to_owned(), cell)
            );
        }
        if v.findings.len() > TABLE_ROWS {
            let _ = writeln!(
                md,
                "\n{} more finding{} not listed; the SARIF file has them all.",
                v.findings.len() - TABLE_ROWS,
                if v.findings.len() - TABLE_ROWS == 1 {
                    ""
                } else {
                    "s"
                }
            );
        }
    }
    md
}

/// A row per platform of a multi-platform image: what each one's scan
/// counted (the verdict above grades their union).
pub fn platform_rows(rows: &[(String, Counts)]) -> String {
    let mut md = String::from(
        "\n| platform | critical | high | medium | low | unknown |\n|---|---|---|---|---|---|\n",
    );
    for (platform, c) in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            code(platform),
            c.critical,
            c.high,
            c.medium,
            c.low,
            c.unknown
        );
    }
    md
}

fn threshold(t: Option<Severity>) -> &'static str {
    t.map_or("nothing", Severity::lowercase)
}

/// Annotations on `file` (the Dockerfile, repository-relative) at `line`
/// (its final `FROM`): blocking findings as errors, warned ones as
/// warnings, the rest as notices — at most ten of each, the tenth folding
/// in whatever did not fit, so nothing is silently dropped.
pub fn annotations(s: &Scanned<'_>, file: &str, line: u32) -> Vec<Annotation> {
    let level_of = |f: &Finding| match s.policy.grade(f.severity) {
        Outcome::Fail => Level::Error,
        Outcome::Warn => Level::Warning,
        Outcome::Pass => Level::Notice,
    };
    let mut out = Vec::new();
    for level in [Level::Error, Level::Warning, Level::Notice] {
        let mut of_level: Vec<&Finding> = s
            .verdict
            .findings
            .iter()
            .filter(|f| level_of(f) == level)
            .collect();
        let mut extra = Vec::new();
        if level == Level::Warning {
            extra.extend(
                s.verdict
                    .expired
                    .iter()
                    .map(|e| (format!("expired ignore entry in {}", s.image), e.clone())),
            );
        }
        let room = ANNOTATIONS_PER_LEVEL.saturating_sub(extra.len());
        let folded: Vec<&Finding> = if of_level.len() > room {
            of_level.split_off(room.saturating_sub(1))
        } else {
            Vec::new()
        };
        for f in of_level {
            out.push(
                Annotation::new(level, finding_message(f))
                    .with_title(format!(
                        "{} {} in {}",
                        f.severity.lowercase(),
                        f.id,
                        s.image
                    ))
                    .with_file(file)
                    .with_line(line),
            );
        }
        if !folded.is_empty() {
            let mut ids: Vec<&str> = folded
                .iter()
                .take(FOLDED_IDS)
                .map(|f| f.id.as_str())
                .collect();
            if folded.len() > FOLDED_IDS {
                ids.push("…");
            }
            out.push(
                Annotation::new(
                    level,
                    format!(
                        "{} more finding{} at this level: {}. The job summary and the SARIF file list them all.",
                        folded.len(),
                        if folded.len() == 1 { "" } else { "s" },
                        ids.join(", ")
                    ),
                )
                .with_title(format!("{} more in {}", folded.len(), s.image))
                .with_file(file)
                .with_line(line),
            );
        }
        for (title, text) in extra {
            out.push(
                Annotation::new(level, text)
                    .with_title(title)
                    .with_file(file)
                    .with_line(line),
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scan::Severity;
    use crate::scan::tests::{finding, verdict};

    #[test]
    fn levels_follow_the_policy() {
        let v = verdict(
            vec![
                finding("C-1", Severity::Critical),
                finding("H-1", Severity::High),
                finding("M-1", Severity::Medium),
            ],
            Outcome::Fail,
        );
        let policy = Policy::default();
        let s = Scanned {
            image: "acme/app",
            scanner: Scanner::Trivy,
            verdict: &v,
            policy: &policy,
        };
        let a = annotations(&s, "ops/docker/app/Dockerfile", 3);
        let levels: Vec<Level> = a.iter().map(|a| a.level).collect();
        assert_eq!(levels, [Level::Error, Level::Warning, Level::Notice]);
        assert_eq!(
            a[0].to_command(),
            "::error file=ops/docker/app/Dockerfile,line=3,title=critical C-1 in acme/app::C-1 in busybox 1.0 (fixed in 1.1): bad%0Ahttps://avd.example/C-1"
        );
    }

    #[test]
    fn more_than_ten_are_folded_into_the_tenth() {
        let findings = (0..25)
            .map(|i| finding(&format!("C-{i:02}"), Severity::Critical))
            .collect();
        let v = verdict(findings, Outcome::Fail);
        let policy = Policy::default();
        let s = Scanned {
            image: "acme/app",
            scanner: Scanner::Trivy,
            verdict: &v,
            policy: &policy,
        };
        let a = annotations(&s, "Dockerfile", 1);
        assert_eq!(a.len(), ANNOTATIONS_PER_LEVEL);
        assert!(
            a[9].message
                .starts_with("16 more findings at this level: C-09, C-10"),
            "{}",
            a[9].message
        );
        assert!(a[9].message.contains("C-24"));
    }

    #[test]
    fn hostile_report_fields_stay_in_their_cells() {
        let mut f = finding("CVE-1]|x", Severity::High);
        f.url = Some("https://avd.example/a\n\n| forged | row | x | y |\n".into());
        f.package = "pkg|a\nb".into();
        f.installed = "1\r\n|".into();
        f.fixed = Some("`2`|".into());
        let mut v = verdict(vec![f], Outcome::Warn);
        v.expired.push("entry\n| x |".into());
        let policy = Policy::default();
        let md = summary(&Scanned {
            image: "acme/app\n| y |",
            scanner: Scanner::Trivy,
            verdict: &v,
            policy: &policy,
        });
        crate::report::tests::assert_tables_whole(&md);
        assert!(!md.contains("forged"), "{md}");
        assert!(
            md.contains("| high | CVE-1\\]\\|x | <code>pkg\\|a b</code> | 1  \\| → \\`2\\`\\| |"),
            "{md}"
        );
    }

    #[test]
    fn summary_counts_and_lists() {
        let mut v = verdict(vec![finding("H-1", Severity::High)], Outcome::Warn);
        v.expired.push("entry CVE-1 expired on 2020-01-01".into());
        let policy = Policy::default();
        let s = Scanned {
            image: "acme/app",
            scanner: Scanner::Trivy,
            verdict: &v,
            policy: &policy,
        };
        let md = summary(&s);
        assert!(
            md.starts_with("#### Trivy scan of `acme/app`: **warn — released**"),
            "{md}"
        );
        assert!(md.contains("| 0 | 1 | 0 | 0 | 0 | 0 |"), "{md}");
        assert!(
            md.contains("Policy: fail on critical, warn on high."),
            "{md}"
        );
        assert!(
            md.contains("> ⚠️ entry CVE-1 expired on 2020-01-01"),
            "{md}"
        );
        assert!(
            md.contains("| high | [H-1](https://avd.example/H-1) | `busybox` | 1.0 → 1.1 |"),
            "{md}"
        );
        let a = annotations(&s, "Dockerfile", 1);
        assert_eq!(
            a.iter().filter(|a| a.level == Level::Warning).count(),
            2,
            "the finding and the expired entry"
        );
    }
}
