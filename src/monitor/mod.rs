//! `monitor`'s judgement (pure): what was measured per image and for the
//! registry as a whole → a status per image and check, and alerts, worst
//! first. The measuring is the command's; `pull` fetches images as a
//! puller does and `archive` hands them to the scanner.

pub mod archive;
pub mod harbor;
pub mod pull;
pub mod pulls;
pub mod thresholds;
pub mod trend;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::usage;
use pulls::Pulls;
use trend::{Point, monthly_growth};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Auth,
    Pull,
    Storage,
    Scan,
    /// The registry's pull counts: unusual rates.
    Downloads,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Auth => "auth",
            Check::Pull => "pull",
            Check::Storage => "storage",
            Check::Scan => "scan",
            Check::Downloads => "downloads",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Alert {
    pub level: Level,
    pub check: Check,
    /// The image (`namespace/name`) or the registry the alert is about.
    pub subject: String,
    pub message: String,
}

/// What the registry said to the credentials (or to none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// 401/403, with the registry's words.
    Refused(String),
    /// No answer at all: the pull check reports it.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    pub digest: String,
    pub elapsed: Duration,
    /// Config and layers the image is made of, and how many of them this
    /// run fetched for it (the rest came with an earlier image).
    pub blobs: usize,
    pub fetched: usize,
    pub fetched_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pull {
    Done(Pulled),
    /// No manifest under the tag.
    Missing,
    Failed(String),
    /// Not tried: the login was refused.
    Skipped,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scan {
    /// The ids of the critical and high findings, after ignores.
    Done {
        critical: Vec<String>,
        high: Vec<String>,
    },
    Failed(String),
    /// `scanner: none`, or nothing pulled to scan.
    Skipped,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    Measured(usage::Repository),
    Failed(String),
    Skipped,
}

/// Everything measured about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub repository: String,
    pub pull_access: Access,
    /// `None` without `check-push`.
    pub push_access: Option<Access>,
    pub pull: Pull,
    pub storage: Storage,
    pub scan: Scan,
    pub pulls: Pulls,
}

/// The inputs that turn measurements into alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub registry: String,
    pub tag: String,
    /// Whether `username`/`password` were given (the advice differs).
    pub credentials: bool,
    pub max_pull_time: Option<Duration>,
    pub max_growth: f64,
    pub max_storage: Option<u64>,
    pub keep: usize,
    pub min_pass_rate: f64,
}

/// One image's line of the status table; `None` where a check didn't run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Row {
    pub repository: String,
    pub auth: Option<Level>,
    pub pull: Option<Level>,
    pub storage: Option<Level>,
    pub scan: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_seconds: Option<f64>,
    /// The pulled image's config and layers, and how many of them this run
    /// fetched for it (the rest came with an earlier image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<usize>,
    /// `None` where the registry keeps no pull counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<Level>,
    /// The registry's running total of pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulls: Option<u64>,
    /// Since the previous report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulls_per_day: Option<f64>,
    /// This run's rate and the ones before it, oldest first, at most
    /// [`pulls::WINDOW`]: the next run's usual range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_rates: Vec<f64>,
}

/// The registry as a whole: today's total and the growth since the
/// previous report.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub bytes: u64,
    /// The previous report's total and the days since it.
    pub before: Option<(u64, f64)>,
}

/// The report `report-file` writes and `previous-report` reads back: a
/// `usage` report (so either command's report serves as the previous one)
/// with the trend, the table and the alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    #[serde(flatten)]
    pub usage: usage::Report,
    #[serde(default)]
    pub history: Vec<Point>,
    #[serde(default)]
    pub status: Level,
    #[serde(default)]
    pub pass_rate: Option<f64>,
    #[serde(default)]
    pub images: Vec<Row>,
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// The judgement of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub rows: Vec<Row>,
    /// Worst first, then in the order found.
    pub alerts: Vec<Alert>,
    pub status: Level,
    /// Of the images rescanned, the share without critical findings.
    pub pass_rate: Option<f64>,
}

pub fn judge(images: &[Image], totals: &Totals, limits: &Limits) -> Verdict {
    let mut alerts = Vec::new();
    let rows = images
        .iter()
        .map(|image| judge_image(image, totals, limits, &mut alerts))
        .collect();
    let pass_rate = pass_rate(images);
    alerts.extend(registry_alerts(totals, pass_rate, images, limits));
    alerts.sort_by_key(|a| std::cmp::Reverse(a.level));
    let status = alerts.iter().map(|a| a.level).max().unwrap_or_default();
    Verdict {
        rows,
        alerts,
        status,
        pass_rate,
    }
}

fn judge_image(image: &Image, totals: &Totals, limits: &Limits, alerts: &mut Vec<Alert>) -> Row {
    let mut cell = |check: Check, found: Vec<(Level, String)>| -> Level {
        let level = found.iter().map(|(l, _)| *l).max().unwrap_or_default();
        alerts.extend(found.into_iter().map(|(level, message)| Alert {
            level,
            check,
            subject: image.repository.clone(),
            message,
        }));
        level
    };
    let days = totals.before.map(|(_, days)| days);
    let pulled = match &image.pull {
        Pull::Done(pulled) => Some(pulled),
        _ => None,
    };
    let counted = counted_pulls(&image.pulls, days);
    Row {
        repository: image.repository.clone(),
        auth: auth_findings(image, limits).map(|found| cell(Check::Auth, found)),
        pull: pull_findings(image, limits).map(|found| cell(Check::Pull, found)),
        storage: storage_findings(image, days, limits).map(|found| cell(Check::Storage, found)),
        scan: scan_findings(image, limits).map(|found| cell(Check::Scan, found)),
        pull_seconds: pulled.map(|p| p.elapsed.as_secs_f64()),
        blobs: pulled.map(|p| p.blobs),
        fetched: pulled.map(|p| p.fetched),
        downloads: downloads_findings(image, counted.as_ref())
            .map(|found| cell(Check::Downloads, found)),
        pulls: counted.as_ref().map(|c| c.count),
        pulls_per_day: counted.as_ref().and_then(|c| c.rate),
        pull_rates: counted.map(|c| c.rates).unwrap_or_default(),
    }
}

/// An image's pulls as this run reads them.
struct Counted {
    count: u64,
    /// Since the previous report, if it had a count.
    rate: Option<f64>,
    /// The rates before this one.
    earlier: Vec<f64>,
    /// `earlier` and this run's rate, as the next run reads them.
    rates: Vec<f64>,
}

fn counted_pulls(pulls: &Pulls, days: Option<f64>) -> Option<Counted> {
    let Pulls::Counted { count, before } = pulls else {
        return None;
    };
    let (rate, earlier) = match (before, days) {
        (Some((total, earlier)), Some(days)) => {
            (pulls::rate(*total, *count, days), earlier.clone())
        }
        _ => (None, Vec::new()),
    };
    Some(Counted {
        count: *count,
        rate,
        rates: pulls::carry(&earlier, rate),
        earlier,
    })
}

/// `None` where the registry keeps no counts: the summary says so once.
fn downloads_findings(image: &Image, counted: Option<&Counted>) -> Option<Vec<(Level, String)>> {
    match (&image.pulls, counted) {
        (Pulls::NotTold, _) => None,
        (Pulls::Failed(why), _) => Some(vec![(
            Level::Warning,
            format!(
                "couldn't read the pull count of `{}`: {why}",
                image.repository
            ),
        )]),
        (Pulls::Counted { .. }, counted) => Some(
            counted
                .and_then(|c| pulls::judge(&c.earlier, c.rate?))
                .map(|unusual| (Level::Warning, unusual.message(&image.repository)))
                .into_iter()
                .collect(),
        ),
    }
}

/// `None` when the registry never answered: the pull check says so.
fn auth_findings(image: &Image, limits: &Limits) -> Option<Vec<(Level, String)>> {
    if image.pull_access == Access::Unreachable {
        return None;
    }
    let refusals = [
        ("pull", Some(&image.pull_access)),
        ("push", image.push_access.as_ref()),
    ];
    Some(
        refusals
            .into_iter()
            .filter_map(|(action, access)| match access {
                Some(Access::Refused(why)) => Some((
                    Level::Critical,
                    refused(
                        &limits.registry,
                        &image.repository,
                        action,
                        why,
                        limits.credentials,
                    ),
                )),
                _ => None,
            })
            .collect(),
    )
}

fn refused(registry: &str, repository: &str, action: &str, why: &str, credentials: bool) -> String {
    let fix = if credentials {
        "renew the token in the secret passed as `password`, or give the account (`username`) that right"
    } else {
        "set the `username` and `password` inputs (a secret)"
    };
    format!("{registry} refused to let `{repository}` be {action}ed ({why}): {fix}")
}

fn pull_findings(image: &Image, limits: &Limits) -> Option<Vec<(Level, String)>> {
    let target = format!("{}:{}", image.repository, limits.tag);
    let found = match &image.pull {
        Pull::Skipped => return None,
        Pull::Done(pulled) => match limits.max_pull_time {
            Some(max) if pulled.elapsed > max => vec![(
                Level::Warning,
                format!(
                    "pulling `{target}` took {:.1} s, over `max-pull-time` ({} s)",
                    pulled.elapsed.as_secs_f64(),
                    max.as_secs()
                ),
            )],
            _ => Vec::new(),
        },
        Pull::Missing => vec![(
            Level::Critical,
            format!(
                "`{target}` is not in {}: pulls of it fail; publish it, or leave the image out of `images`",
                limits.registry
            ),
        )],
        Pull::Failed(why) => vec![(Level::Critical, format!("pulling `{target}` failed: {why}"))],
    };
    Some(found)
}

fn storage_findings(
    image: &Image,
    days: Option<f64>,
    limits: &Limits,
) -> Option<Vec<(Level, String)>> {
    let repo = match &image.storage {
        Storage::Skipped => return None,
        Storage::Failed(why) => {
            return Some(vec![(
                Level::Warning,
                format!(
                    "couldn't measure the storage of `{}`: {why}",
                    image.repository
                ),
            )]);
        }
        Storage::Measured(repo) => repo,
    };
    let mut found = Vec::new();
    if repo.sha_tags > limits.keep {
        found.push((
            Level::Warning,
            format!(
                "`{}` holds {} commit-SHA tags, more than `keep` ({}): run `cleanup`",
                image.repository, repo.sha_tags, limits.keep
            ),
        ));
    }
    let growth = repo.growth.zip(days).and_then(|(g, days)| {
        let before = u64::try_from(repo.bytes as i64 - g.bytes).ok()?;
        monthly_growth(before, repo.bytes, days)
    });
    if let Some(rate) = growth.filter(|rate| *rate > limits.max_growth) {
        found.push((
            Level::Warning,
            format!(
                "`{}` grows {} a month, over `max-growth` ({})",
                image.repository,
                percent(rate),
                percent(limits.max_growth)
            ),
        ));
    }
    Some(found)
}

fn scan_findings(image: &Image, limits: &Limits) -> Option<Vec<(Level, String)>> {
    let target = format!("{}:{}", image.repository, limits.tag);
    let (critical, high) = match &image.scan {
        Scan::Skipped => return None,
        Scan::Failed(why) => {
            return Some(vec![(
                Level::Warning,
                format!("couldn't rescan `{target}`: {why}"),
            )]);
        }
        Scan::Done { critical, high } => (critical, high),
    };
    let named = |severity: &str, ids: &[String]| {
        let shown: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
        let more = ids.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(
            "`{target}` has {} {severity} finding(s): {}{more}; rebuild it on a fixed base, or see the scan",
            ids.len(),
            shown.join(", ")
        )
    };
    let mut found = Vec::new();
    if !critical.is_empty() {
        found.push((Level::Critical, named("critical", critical)));
    }
    if !high.is_empty() {
        found.push((Level::Warning, named("high", high)));
    }
    Some(found)
}

/// Of the images rescanned, the share without critical findings.
fn pass_rate(images: &[Image]) -> Option<f64> {
    let scanned: Vec<bool> = images
        .iter()
        .filter_map(|i| match &i.scan {
            Scan::Done { critical, .. } => Some(critical.is_empty()),
            _ => None,
        })
        .collect();
    if scanned.is_empty() {
        return None;
    }
    let passed = scanned.iter().filter(|p| **p).count();
    Some(passed as f64 / scanned.len() as f64)
}

fn registry_alerts(
    totals: &Totals,
    pass_rate: Option<f64>,
    images: &[Image],
    limits: &Limits,
) -> Vec<Alert> {
    let alert = |level, check, message| Alert {
        level,
        check,
        subject: limits.registry.clone(),
        message,
    };
    let mut alerts = Vec::new();
    if let Some(max) = limits.max_storage.filter(|max| totals.bytes > *max) {
        alerts.push(alert(
            Level::Critical,
            Check::Storage,
            format!(
                "the images store {}, over `max-storage` ({}): run `cleanup`, or raise the quota",
                crate::units::bytes(totals.bytes),
                crate::units::bytes(max)
            ),
        ));
    }
    let growth = totals
        .before
        .and_then(|(before, days)| monthly_growth(before, totals.bytes, days));
    if let Some(rate) = growth.filter(|rate| *rate > limits.max_growth) {
        alerts.push(alert(
            Level::Warning,
            Check::Storage,
            format!(
                "storage grows {} a month ({} now), over `max-growth` ({})",
                percent(rate),
                crate::units::bytes(totals.bytes),
                percent(limits.max_growth)
            ),
        ));
    }
    if let Some(rate) = pass_rate.filter(|rate| *rate < limits.min_pass_rate) {
        let scanned = images
            .iter()
            .filter(|i| matches!(i.scan, Scan::Done { .. }))
            .count();
        alerts.push(alert(
            Level::Warning,
            Check::Scan,
            format!(
                "{} of {scanned} images pass their rescan ({}), under `min-pass-rate` ({})",
                (rate * scanned as f64).round() as usize,
                percent(rate),
                percent(limits.min_pass_rate)
            ),
        ));
    }
    alerts
}

/// `0.125` → `12.5%`.
pub fn percent(fraction: f64) -> String {
    let text = format!("{:.1}", fraction * 100.0);
    format!("{}%", text.strip_suffix(".0").unwrap_or(&text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::usage::Growth;

    fn limits() -> Limits {
        Limits {
            registry: "registry.example".into(),
            tag: "latest".into(),
            credentials: true,
            max_pull_time: Some(Duration::from_secs(30)),
            max_growth: 0.1,
            max_storage: Some(10_000),
            keep: 2,
            min_pass_rate: 0.95,
        }
    }

    fn healthy(name: &str) -> Image {
        Image {
            repository: format!("acme/{name}"),
            pull_access: Access::Granted,
            push_access: None,
            pull: Pull::Done(Pulled {
                digest: "sha256:m".into(),
                elapsed: Duration::from_secs(2),
                blobs: 3,
                fetched: 3,
                fetched_bytes: 300,
            }),
            storage: Storage::Measured(usage::Repository {
                repository: format!("acme/{name}"),
                tags: 2,
                sha_tags: 1,
                signatures: 0,
                orphans: 0,
                manifests: 1,
                bytes: 1000,
                largest: Vec::new(),
                versions: None,
                growth: None,
            }),
            scan: Scan::Done {
                critical: Vec::new(),
                high: Vec::new(),
            },
            pulls: Pulls::NotTold,
        }
    }

    fn totals(bytes: u64) -> Totals {
        Totals {
            bytes,
            before: None,
        }
    }

    fn levels(verdict: &Verdict) -> Vec<(Level, Check, &str)> {
        verdict
            .alerts
            .iter()
            .map(|a| (a.level, a.check, a.subject.as_str()))
            .collect()
    }

    #[test]
    fn healthy_images_raise_nothing() {
        let verdict = judge(&[healthy("a"), healthy("b")], &totals(2000), &limits());
        assert_eq!(verdict.status, Level::Ok);
        assert!(verdict.alerts.is_empty(), "{:?}", verdict.alerts);
        assert_eq!(verdict.pass_rate, Some(1.0));
        let row = &verdict.rows[0];
        assert_eq!(
            (row.auth, row.pull, row.storage, row.scan, row.pull_seconds),
            (
                Some(Level::Ok),
                Some(Level::Ok),
                Some(Level::Ok),
                Some(Level::Ok),
                Some(2.0)
            )
        );
    }

    #[test]
    fn a_refused_login_is_critical_and_names_the_registry_and_the_input() {
        let mut image = healthy("a");
        image.pull_access = Access::Refused("401 unauthorized".into());
        image.pull = Pull::Skipped;
        image.storage = Storage::Skipped;
        image.scan = Scan::Skipped;
        let verdict = judge(&[image.clone()], &totals(0), &limits());
        assert_eq!(verdict.status, Level::Critical);
        assert_eq!(
            verdict.alerts[0].message,
            "registry.example refused to let `acme/a` be pulled (401 unauthorized): renew the token in the secret passed as `password`, or give the account (`username`) that right"
        );
        assert_eq!(
            (verdict.rows[0].auth, verdict.rows[0].pull),
            (Some(Level::Critical), None)
        );
        let anonymous = Limits {
            credentials: false,
            ..limits()
        };
        let verdict = judge(&[image], &totals(0), &anonymous);
        assert!(
            verdict.alerts[0]
                .message
                .ends_with("set the `username` and `password` inputs (a secret)")
        );
    }

    #[test]
    fn push_refusal_is_critical_too() {
        let mut image = healthy("a");
        image.push_access = Some(Access::Refused("403 denied".into()));
        let verdict = judge(&[image], &totals(1000), &limits());
        assert_eq!(levels(&verdict), [(Level::Critical, Check::Auth, "acme/a")]);
        assert!(verdict.alerts[0].message.contains("be pushed (403 denied)"));
    }

    #[test]
    fn slow_missing_and_failed_pulls() {
        let mut slow = healthy("slow");
        if let Pull::Done(p) = &mut slow.pull {
            p.elapsed = Duration::from_millis(31_500);
        }
        let mut missing = healthy("missing");
        missing.pull = Pull::Missing;
        let mut dead = healthy("dead");
        dead.pull_access = Access::Unreachable;
        dead.pull = Pull::Failed("couldn't reach registry.example".into());
        let verdict = judge(&[slow, missing, dead], &totals(3000), &limits());
        assert_eq!(
            levels(&verdict),
            [
                (Level::Critical, Check::Pull, "acme/missing"),
                (Level::Critical, Check::Pull, "acme/dead"),
                (Level::Warning, Check::Pull, "acme/slow"),
            ],
            "worst first, then in order found"
        );
        assert_eq!(
            verdict.alerts[2].message,
            "pulling `acme/slow:latest` took 31.5 s, over `max-pull-time` (30 s)"
        );
        assert_eq!(verdict.rows[2].auth, None, "no answer is not a refusal");
    }

    #[test]
    fn storage_growth_quota_and_tags_to_clean() {
        let mut image = healthy("a");
        if let Storage::Measured(repo) = &mut image.storage {
            repo.sha_tags = 3;
            repo.bytes = 1200;
            repo.growth = Some(Growth {
                bytes: 200,
                tags: 1,
                sha_tags: 1,
            });
        }
        let verdict = judge(
            &[image],
            &Totals {
                bytes: 12_000,
                before: Some((10_000, 30.0)),
            },
            &limits(),
        );
        let messages: Vec<&str> = verdict.alerts.iter().map(|a| a.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "the images store 11.7 KiB, over `max-storage` (9.8 KiB): run `cleanup`, or raise the quota",
                "`acme/a` holds 3 commit-SHA tags, more than `keep` (2): run `cleanup`",
                "`acme/a` grows 20% a month, over `max-growth` (10%)",
                "storage grows 20% a month (11.7 KiB now), over `max-growth` (10%)",
            ]
        );
        assert_eq!(verdict.alerts[0].subject, "registry.example");
    }

    #[test]
    fn rescans_grade_and_give_the_pass_rate() {
        let mut critical = healthy("c");
        critical.scan = Scan::Done {
            critical: (1..=5).map(|n| format!("CVE-{n}")).collect(),
            high: vec!["CVE-9".into()],
        };
        let mut failed = healthy("f");
        failed.scan = Scan::Failed("trivy is not installed".into());
        let verdict = judge(&[critical, healthy("ok"), failed], &totals(3000), &limits());
        assert_eq!(verdict.pass_rate, Some(0.5));
        assert_eq!(
            levels(&verdict),
            [
                (Level::Critical, Check::Scan, "acme/c"),
                (Level::Warning, Check::Scan, "acme/c"),
                (Level::Warning, Check::Scan, "acme/f"),
                (Level::Warning, Check::Scan, "registry.example"),
            ]
        );
        assert_eq!(
            verdict.alerts[0].message,
            "`acme/c:latest` has 5 critical finding(s): CVE-1, CVE-2, CVE-3 and 2 more; rebuild it on a fixed base, or see the scan"
        );
        assert_eq!(
            verdict.alerts[3].message,
            "1 of 2 images pass their rescan (50%), under `min-pass-rate` (95%)"
        );
    }

    #[test]
    fn pull_counts_give_a_rate_and_an_unusual_one_warns() {
        let counted = |name: &str, count: u64, before: Option<(u64, Vec<f64>)>| Image {
            pulls: Pulls::Counted { count, before },
            ..healthy(name)
        };
        let mut failed = healthy("f");
        failed.pulls = Pulls::Failed("Docker Hub answered 503".into());
        let images = [
            counted("spike", 2200, Some((1000, vec![100.0, 90.0, 110.0]))),
            counted("quiet", 1200, Some((1000, vec![100.0, 90.0, 110.0]))),
            counted("new", 50, None),
            failed,
            healthy("oci"),
        ];
        let two_days = Totals {
            bytes: 5000,
            before: Some((5000, 2.0)),
        };
        let verdict = judge(&images, &two_days, &limits());
        let rows: Vec<_> = verdict
            .rows
            .iter()
            .map(|r| (r.downloads, r.pulls, r.pulls_per_day, r.pull_rates.clone()))
            .collect();
        assert_eq!(
            rows,
            [
                (
                    Some(Level::Warning),
                    Some(2200),
                    Some(600.0),
                    vec![100.0, 90.0, 110.0, 600.0]
                ),
                (
                    Some(Level::Ok),
                    Some(1200),
                    Some(100.0),
                    vec![100.0, 90.0, 110.0, 100.0]
                ),
                (Some(Level::Ok), Some(50), None, vec![]),
                (Some(Level::Warning), None, None, vec![]),
                (None, None, None, vec![]),
            ]
        );
        let messages: Vec<(Check, &str)> = verdict
            .alerts
            .iter()
            .map(|a| (a.check, a.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                (
                    Check::Downloads,
                    "`acme/spike` was pulled 600 times a day since the last run, 6× its usual 100 (the median of the last 3 runs); more than 5× is unusual: look for a runaway job or a leaked credential pulling it"
                ),
                (
                    Check::Downloads,
                    "couldn't read the pull count of `acme/f`: Docker Hub answered 503"
                ),
            ]
        );
    }

    #[test]
    fn the_report_reads_a_usage_report_as_the_previous_one() {
        let text = r#"{"registry":"r","generated":"2026-11-01T00:00:00Z","total-bytes":5,"repositories":[]}"#;
        let report: Report = serde_json::from_str(text).unwrap();
        assert_eq!((report.usage.total_bytes, report.status), (5, Level::Ok));
        assert!(report.history.is_empty() && report.alerts.is_empty());
    }
}
